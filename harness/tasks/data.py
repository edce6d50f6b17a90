"""Benchmark rows: local JSONL (``--data-dir`` / ``MALT_DATA_DIR``) or the Hugging Face hub.

Rows keep their original fields (GSM8K ``question``/``answer``; MATH ``problem``/``solution``/
``answer``; CSQA ``answerKey``/``question.stem``/``question.choices``). Hub rows of CommonsenseQA
are converted to that original layout so every consumer sees one shape.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.core.errors import DataError
from harness.core.runfiles import iter_jsonl
from harness.tasks.taskinfo import TASKS, canonical_task, task_info

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


def local_files_hint(task: str, split: str) -> str:
    """How to point ``task`` at local rows: the data folder and the file it must hold."""
    return (
        f"point it at local files: --data-dir DIR (or MALT_DATA_DIR=DIR) holding {DATA_FILES[task][split]} (JSONL rows)"
    )


def load_split(task: str, split: str = "test", data_dir_: str | os.PathLike | None = None) -> list[dict]:
    """Rows of ``task``'s ``split`` ("test" = the evaluation split, or "train").

    Raises:
        DataError: an unknown split, a missing file, or hub rows that cannot be loaded (offline, unreachable):
            one line naming the task, the dataset and how to point the task at local files.
    """
    task = canonical_task(task)
    if split not in DATA_FILES[task]:
        raise DataError(f"{task} has no split {split!r} (have: {', '.join(DATA_FILES[task])})")
    folder = data_dir(data_dir_)
    if folder is not None:
        path = folder / DATA_FILES[task][split]
        if not path.is_file():
            raise DataError(f"{task}: {split} file not found: {path}; {local_files_hint(task, split)}")
        return read_jsonl(task, path)
    path, name, splits = task_info(task).hub
    dataset = path + (f"/{name}" if name else "")
    if split not in splits:
        raise DataError(f"{task}: dataset {dataset} has no {split} split on the hub; {local_files_hint(task, split)}")
    try:
        import datasets

        ds = datasets.load_dataset(path, name, split=splits[split])
    except Exception as exc:  # noqa: BLE001 - offline, unreachable, missing dataset or split, ...
        msg = str(exc).splitlines()[0] if str(exc) else ""
        why = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
        raise DataError(
            f"{task}: cannot load dataset {dataset} ({splits[split]} split) from the hub ({why}); "
            f"{local_files_hint(task, split)}"
        ) from None
    convert = task_info(task).from_hub or dict
    rows = [convert(dict(r)) for r in ds]
    return [_check_row(task, r, f"{path}[{i}]") for i, r in enumerate(rows)]
