"""Benchmark rows: local JSONL (``--data-dir`` / ``MALT_DATA_DIR``) or the Hugging Face hub.

Rows keep their original fields (GSM8K ``question``/``answer``; MATH ``problem``/``solution``/
``answer``; CSQA ``answerKey``/``question.stem``/``question.choices``). Hub rows of CommonsenseQA
are converted to that original layout so every consumer sees one shape.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import DataError
from harness.runfiles import iter_jsonl
from harness.taskinfo import TASKS, canonical_task, task_info

#: File names as laid out in ``shared/data`` (and the original releases), per task and split.
DATA_FILES: dict[str, dict[str, str]] = {t.name: t.files for t in TASKS.values()}


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data folder: the explicit one, else ``$MALT_DATA_DIR``, else ``None`` (hub)."""
    value = explicit or os.environ.get("MALT_DATA_DIR")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder not found: {path}")
    return path


def _check_row(task: str, row: object, where: str) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    info = task_info(task)
    missing = [f for f in info.fields if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} for {task}")
    problem = info.layout_error(row) if info.layout_error else None
    if problem:
        raise DataError(f"{where}: {problem}")
    return row


def read_jsonl(task: str, path: Path) -> list[dict]:
    """Read and validate a JSONL file; a bad line raises ``DataError`` naming ``file:line``."""
    task = canonical_task(task)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = [_check_row(task, row, f"{path}:{lineno}") for lineno, row in iter_jsonl(path, DataError)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def load_split(task: str, split: str = "test", data_dir_: str | os.PathLike | None = None) -> list[dict]:
    """Rows of ``task``'s ``split`` ("test" = the evaluation split, or "train")."""
    task = canonical_task(task)
    if split not in DATA_FILES[task]:
        raise DataError(f"{task} has no split {split!r} (have: {', '.join(DATA_FILES[task])})")
    folder = data_dir(data_dir_)
    if folder is not None:
        return read_jsonl(task, folder / DATA_FILES[task][split])
    path, name, splits = task_info(task).hub
    if split not in splits:
        raise DataError(f"{task} split {split!r} is not on the hub: set --data-dir / MALT_DATA_DIR")
    try:
        import datasets

        ds = datasets.load_dataset(path, name, split=splits[split])
    except Exception as exc:  # noqa: BLE001 - offline, missing dataset, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot load {path} from the hub ({msg}); set --data-dir or MALT_DATA_DIR") from None
    convert = task_info(task).from_hub or dict
    rows = [convert(dict(r)) for r in ds]
    return [_check_row(task, r, f"{path}[{i}]") for i, r in enumerate(rows)]
