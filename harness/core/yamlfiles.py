"""How we read our own YAML files (prompts files, accelerate configs): one reader, one-line errors.

lm-eval's task YAML is read by lm-eval's own loader (:func:`harness.lmeval.compat.load_yaml`), never here.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.core.errors import MaltError


def read_yaml_mapping(path: str | os.PathLike, what: str) -> dict:
    """The mapping a YAML file holds (an empty file: ``{}``).

    Args:
        path: the file.
        what: what the file is, for the errors (``"prompts file"``, ``"accelerate config"``).

    Raises:
        MaltError: one line naming the file: it is missing, is not valid YAML (the parser's problem and its line),
            or holds something other than a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MaltError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MaltError(f"{path}: {what} is not valid YAML ({_problem(exc)})") from None
    except UnicodeDecodeError as exc:
        raise MaltError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MaltError(f"{path}: {what} must hold a mapping, not a {type(data).__name__}")
    return data


def _problem(exc: Exception) -> str:
    """A YAML parser error in one line: its problem and where (``could not find expected ':', line 3 column 1``)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem}, line {mark.line + 1} column {mark.column + 1}" if mark is not None else problem
