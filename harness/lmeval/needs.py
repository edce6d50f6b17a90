"""What an lm-eval task's own code needs beyond lm-eval, checked before any model loads.

A task's ``!function`` code (its ``utils.py``) may import packages of one of lm-eval's extras (``minerva_math``:
``math``; ``ifeval``: ``ifeval``), read data that a package downloads at run time (``ifeval``: NLTK's
``punkt_tab``, which no PyPI package ships) or run the model's code (``humaneval``, ``mbpp``: lm-eval's
``unsafe_code``, Hugging Face evaluate's ``code_eval`` metric with ``HF_ALLOW_CODE_EVAL=1``).
:func:`check_task_code` imports that code as lm-eval will and turns each missing piece into one line naming
what to install or set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from harness.core.errors import MaltError

#: Hugging Face evaluate's ``code_eval`` metric runs generated code only with this variable set to ``1``.
CODE_EVAL_ENV = "HF_ALLOW_CODE_EVAL"
#: NLTK data a stock task folder's code reads: folder -> (resource path, NLTK package name).
NLTK_DATA = {"ifeval": ("tokenizers/punkt_tab/english/", "punkt_tab")}
_SKIP_EXTRAS = ("tasks", "dev")


class TaskCodeError(MaltError):
    """A task whose own code cannot run here: a missing package, data file or opt-in."""


def lm_eval_extra(text: str) -> str | None:
    """lm-eval's extra (``math``, ``ifeval``...) that installs a package named in ``text``, or ``None``."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("lm_eval") or []
    except PackageNotFoundError:
        return None
    words = set(re.findall(r"[a-z0-9][a-z0-9_.]*", text.lower().replace("-", "_")))
    for req in reqs:
        m = re.match(r"\s*([A-Za-z0-9._-]+).*extra\s*==\s*[\"']([^\"']+)[\"']", req)
        if m and m.group(2) not in _SKIP_EXTRAS and m.group(1).lower().replace("-", "_") in words:
            return m.group(2)
    return None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


def explain(task: str, exc: BaseException) -> TaskCodeError:
    """One line for an exception raised while importing ``task``'s code: which extra, variable or file it needs."""
    text = str(exc)
    if CODE_EVAL_ENV in text:
        return TaskCodeError(
            f"task {task!r} runs the model's code: set {CODE_EVAL_ENV}=1 for its code_eval metric "
            "(and pass --confirm-run-unsafe-code)"
        )
    hub = re.search(r"Module '([^']+)' doesn't exist on the Hugging Face Hub", text)
    if hub:
        return TaskCodeError(
            f"task {task!r}: its metric {hub.group(1)!r} is a Hugging Face evaluate module, fetched from the Hub "
            "on first use and cached (HF_MODULES_CACHE); the Hub is not reachable and it is not cached: run the "
            f"task once with internet access, or put the module's folder at ./{hub.group(1)}/"
        )
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if isinstance(exc, ImportError | AssertionError):
        extra = lm_eval_extra(f"{missing or ''} {text}")
        if extra:
            return TaskCodeError(
                f"task {task!r} needs packages that are missing ({_first_line(exc)}): pip install 'lm-eval[{extra}]'"
            )
        if missing:
            return TaskCodeError(f"task {task!r} needs the package {missing!r}, which is not installed")
    return TaskCodeError(f"task {task!r}: its code does not load ({_first_line(exc)})")


def _code_folders(value: object) -> set[str]:
    """Folder names of the files defining the functions in a resolved task config."""
    if callable(value) and hasattr(value, "__code__"):
        return {Path(value.__code__.co_filename).parent.name}
    if isinstance(value, dict):
        return set().union(*(_code_folders(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_code_folders(v) for v in value))
    return set()


def check_nltk_data(task: str, folders: Iterable[str]) -> None:
    """Raise :class:`TaskCodeError` when code in ``folders`` (stock task folders) reads NLTK data that is missing."""
    for folder in folders:
        if folder not in NLTK_DATA:
            continue
        resource, package = NLTK_DATA[folder]
        import nltk

        try:
            nltk.data.find(resource)
        except LookupError:
            raise TaskCodeError(
                f"task {task!r} needs NLTK's {package!r} data, which no PyPI package ships: on a machine with "
                f"internet run `python -m nltk.downloader {package}` and copy its nltk_data folder here "
                "(~/nltk_data, or any folder named by $NLTK_DATA)"
            ) from None


def check_task_code(task: str, yaml_path: str | Path | None, unsafe: bool, confirm_unsafe: bool) -> None:
    """Refuse, in one line, a task whose own code cannot run: not confirmed to run the model's code, a missing
    package (with lm-eval's extra to install), an unreachable metric module or missing NLTK data.

    Args:
        yaml_path: the task's YAML (its ``!function`` code is imported, as lm-eval will); ``None``: no code.
        unsafe: the task's ``unsafe_code`` (it executes what the model writes).
        confirm_unsafe: ``--confirm-run-unsafe-code`` was given.
    """
    if unsafe and not confirm_unsafe:
        raise TaskCodeError(
            f"task {task!r} runs the model's code: pass --confirm-run-unsafe-code "
            f"(lm-eval's --confirm_run_unsafe_code) and set {CODE_EVAL_ENV}=1"
        )
    if yaml_path is None:
        return
    from harness.lmeval.compat import load_yaml

    try:
        cfg = load_yaml(yaml_path, resolve_func=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the task's own code is reported in one line
        raise explain(task, exc) from None
    check_nltk_data(task, _code_folders(cfg))
