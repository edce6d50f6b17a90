"""lm-eval's own tasks (the stock registry and ``--include-path`` folders) as seen by the solver.

The malt_* tasks (``tasks/``) have tuned role prompts and graders; every other ``generate_until`` task runs
through lm-eval itself (its context, few-shot, filters and metrics) with the solver as the model
(:class:`harness.lmeval.model.MaltLM`). This module finds such tasks and refuses, before any model loads, what the
solver cannot answer: a name lm-eval does not know (with close names) or a loglikelihood/multiple-choice task
(with generative variants, where lm-eval has some).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.core.errors import DataError, UnknownTaskError
from harness.lmeval.compat import task_index
from harness.tasks.prompts import tasks_dir
from harness.tasks.taskinfo import TASKS

GENERATIVE = "generate_until"
_GENERATIVE_HINTS = ("_cot", "_gen", "generative", "_flan", "_zeroshot", "_fewshot")


def is_malt_task(name: str) -> bool:
    """Whether ``name`` is one of our tuned tasks (exact name: no alias is remapped)."""
    return name in TASKS


def include_paths(include_path: str | Sequence[str] | None) -> list[str]:
    """Our ``tasks/`` folder plus the user's ``--include-path`` folders (comma-separated or a list)."""
    given = include_path.split(",") if isinstance(include_path, str) else list(include_path or ())
    paths = [str(tasks_dir())]
    for p in given:
        p = p.strip()
        if p and not Path(p).is_dir():
            raise UnknownTaskError(f"--include-path {p}: no such folder")
        if p:
            paths.append(p)
    return list(dict.fromkeys(paths))


@lru_cache(maxsize=4)
def _manager(paths: tuple[str, ...]):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths))


def task_manager(include_path: str | Sequence[str] | None = None):
    """lm-eval's ``TaskManager`` over its stock tasks, our ``tasks/`` and ``include_path`` (cached per paths)."""
    return _manager(tuple(include_paths(include_path)))


def _raw_config(entry) -> dict:
    """A task's YAML with its includes merged (functions left unresolved: nothing is imported or built)."""
    from harness.lmeval.compat import load_yaml

    if entry.yaml_path is None:
        return dict(entry.cfg or {})
    try:
        return load_yaml(entry.yaml_path, resolve_func=False)
    except (OSError, ValueError):
        return dict(entry.cfg or {})


def leaf_tasks(tm, name: str, _seen: frozenset = frozenset()) -> list[tuple[str, dict]]:
    """``(task, raw config)`` of every task a task, group or tag name stands for."""
    from harness.lmeval.compat import Kind

    entry = task_index(tm).get(name)
    if entry is None or name in _seen:
        return []
    seen = _seen | {name}
    if entry.kind in (Kind.TASK, Kind.PY_TASK):
        return [(name, _raw_config(entry))]
    if entry.kind == Kind.TAG:
        members = [n for n, e in task_index(tm).items() if name in (e.tags or ())]
        return [leaf for m in members for leaf in leaf_tasks(tm, m, seen)]
    cfg = _raw_config(entry)
    out = []
    for item in cfg.get("task") or []:
        if isinstance(item, str):
            out += leaf_tasks(tm, item, seen)
        elif isinstance(item, dict) and isinstance(item.get("task"), str):
            base = leaf_tasks(tm, item["task"], seen)
            out += [(n, {**c, **item}) for n, c in base] or [(item["task"], item)]
    return out


def output_type(cfg: dict) -> str:
    """A raw task config's output type (lm-eval's default: ``generate_until``)."""
    return str(cfg.get("output_type") or GENERATIVE)


def generative_variants(tm, name: str, limit: int = 3) -> list[str]:
    """Generative tasks or groups named like ``name`` (``mmlu`` -> ``mmlu_generative``, ``mmlu_flan_cot_zeroshot``...):
    names holding all of its ``_``-separated words, shortest first; else names sharing its first word."""
    words = set(name.split("_"))

    def generative(cand: str) -> bool:
        leaves = leaf_tasks(tm, cand)
        return bool(leaves) and output_type(leaves[0][1]) == GENERATIVE

    every = [c for c in tm.all_tasks if c != name and words <= set(c.split("_"))]
    first = [c for c in tm.all_tasks if c != name and c.split("_")[0] == name.split("_")[0]]
    found: list[str] = []
    for pool in (every, first):
        for cand in sorted(pool, key=lambda c: (not any(h in c for h in _GENERATIVE_HINTS), len(c), c)):
            if cand not in found and generative(cand):
                found.append(cand)
                if len(found) >= limit:
                    return found
        if found:
            return found
    return found


def check_tasks(
    names: Iterable[str], include_path: str | Sequence[str] | None = None, confirm_unsafe: bool = False
) -> list[str]:
    """The names of lm-eval tasks the solver can answer, in order; a one-line error otherwise.

    Args:
        confirm_unsafe: ``--confirm-run-unsafe-code`` was given (tasks that run the model's code may run).

    Raises:
        UnknownTaskError: a name lm-eval does not know (with close names), or one that stands for a task
            whose output type is not ``generate_until`` (with generative variants where there are some).
        TaskCodeError: a task whose own code cannot run here (:func:`harness.lmeval.needs.check_task_code`).
    """
    from harness.lmeval.needs import check_task_code

    names = [n for n in names if n]
    tm = task_manager(include_path)
    for name in names:
        if name not in task_index(tm):
            close = difflib.get_close_matches(name, tm.all_tasks, n=5, cutoff=0.6)
            hint = f"; close names: {', '.join(close)}" if close else ""
            where = " (add its folder with --include-path)" if not close else ""
            raise UnknownTaskError(
                f"unknown task {name!r}: lm-eval has no task, group or tag of this name{where}{hint}"
            )
        for task, cfg in leaf_tasks(tm, name):
            kind = output_type(cfg)
            if kind != GENERATIVE:
                part = "" if task == name else f" (in {name})"
                variants = generative_variants(tm, task)
                hint = f"; generative variants: {', '.join(variants)}" if variants else "; use a generate_until variant"
                raise UnknownTaskError(
                    f"task {task!r}{part} is {kind}: the multi-agent solver answers generate_until tasks only{hint}"
                )
            entry = task_index(tm).get(task)
            check_task_code(task, entry and entry.yaml_path, bool(cfg.get("unsafe_code")), confirm_unsafe)
    return names


#: How to point an lm-eval task at local rows (said in every dataset error).
LOCAL_ROWS_HINT = (
    "point the task at local files with a YAML in --include-path: `include: <the task's YAML>`, a new `task:` name, "
    "`dataset_path: json`, `dataset_name: null`, `dataset_kwargs: {data_files: {<split>: FILE.jsonl}}`"
)
_SPLITS = ("test_split", "validation_split", "training_split", "fewshot_split")
_DATA_PACKAGES = ("datasets", "huggingface_hub", "fsspec", "requests", "urllib3")


def load_task_objects(tm, specs: Sequence[str | dict]) -> dict[str, Any]:
    """lm-eval's task objects (their datasets built, as ``simple_evaluate`` builds them) for ``specs`` (names or
    configs), by task name: what runs before any model is loaded, so that data problems stop the run first.

    Raises:
        DataError: a dataset that cannot be loaded (hub unreachable, offline, missing file, ...) or a split the
            task reads that its dataset does not have: one line naming the task, the dataset and the fix.
    """
    try:
        loaded = dict(tm.load(list(specs))["tasks"])
    except Exception as exc:
        failed = _failing_task(exc)
        if failed is None:
            raise
        raise DataError(_dataset_error(failed, exc)) from None
    for task in loaded.values():
        _check_splits(task)
    return loaded


def _failing_task(exc: BaseException) -> Any:
    """The lm-eval task whose dataset raised ``exc`` (a data library's frame below the task's), else ``None``."""
    from lm_eval.api.task import Task

    task, in_data = None, False
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self")
        if isinstance(owner, Task):
            task, in_data = owner, False
        elif task is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in _DATA_PACKAGES:
            in_data = True
        tb = tb.tb_next
    return task if in_data else None


def _dataset_name(task: Any) -> str:
    """``path[/name]`` of a task's dataset, with its local files where the YAML names them."""
    cfg = task.config
    name = str(cfg.dataset_path) + (f"/{cfg.dataset_name}" if cfg.dataset_name else "")
    files = (cfg.dataset_kwargs or {}).get("data_files")
    return f"{name} ({files})" if files else name


def _dataset_error(task: Any, exc: BaseException) -> str:
    head = f"task {task.config.task!r}: "
    dataset = getattr(task, "dataset", None)
    if isinstance(exc, KeyError) and dataset is not None and hasattr(dataset, "keys"):  # a split it lacks
        have = ", ".join(dataset.keys())
        return f"{head}dataset {_dataset_name(task)} has no split {exc.args[0]!r} (it has: {have}); {LOCAL_ROWS_HINT}"
    text = str(exc).splitlines()[0] if str(exc).strip() else ""
    why = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"{head}cannot load dataset {_dataset_name(task)} ({why}); {LOCAL_ROWS_HINT}"


def _check_splits(task: Any) -> None:
    """Every split the task reads (test, validation, training, few-shot) is in its dataset."""
    dataset = getattr(task, "dataset", None)
    if dataset is None or not hasattr(dataset, "keys"):
        return
    have = list(dataset.keys())
    for attr in _SPLITS:
        split = getattr(task.config, attr, None)
        if split and split not in have:
            raise DataError(
                f"task {task.config.task!r}: dataset {_dataset_name(task)} has no split {split!r} ({attr}; it has: "
                f"{', '.join(have)}); {LOCAL_ROWS_HINT}"
            )
