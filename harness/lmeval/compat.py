"""What we take from lm-eval that changes between its versions: the one module touching lm-eval's
private names.

lm-eval is imported inside each function (importing this module stays cheap). Covered: the task YAML loader
(``lm_eval.tasks._yaml_loader.load_yaml``), the task index and its kinds (``TaskManager.task_index``, renamed
``_task_index`` in lm-eval 0.5; ``lm_eval.tasks._index.Kind``), a task's filter pipelines (``task._filters``),
building an ``Instance`` (lm-eval 0.5 takes ``task_name`` and a keyword-only ``doc_id``), lm-eval's CLI
(``lm_eval._cli.HarnessCLI``) and the model registry's entries (``model_registry._objs``, to stand in for a
registered model for a while: :func:`collecting_model`). The evaluator's ``doc_hash`` needs only public helpers
(:func:`harness.core.digests.doc_hash`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

#: names looked up in lm-eval on first use: ``from harness.lmeval.compat import Kind``.
_LAZY = {"Kind": ("lm_eval.tasks._index", "Kind"), "HarnessCLI": ("lm_eval._cli", "HarnessCLI")}


def __getattr__(name: str) -> Any:
    """lm-eval's ``Kind`` (task index entry kinds) and ``HarnessCLI`` (its command line), imported when first used."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)


def load_yaml(path: str | Path, resolve_func: bool = True, recursive: bool = True) -> dict:
    """A task YAML as lm-eval reads it, includes merged (``resolve_func=False``: ``!function`` names unresolved)."""
    from lm_eval.tasks._yaml_loader import load_yaml as lm_eval_load_yaml

    return lm_eval_load_yaml(path, resolve_func=resolve_func, recursive=recursive)


def task_index(tm: Any) -> Mapping[str, Any]:
    """A ``TaskManager``'s index: task, group and tag name -> entry (``yaml_path``, ``cfg``, ``kind``, ``tags``)."""
    index = getattr(tm, "task_index", None)
    return index if index is not None else tm._task_index


def task_filters(task: Any) -> list:
    """A built task's filter pipelines (lm-eval's ``FilterEnsemble`` objects, each with a ``name``)."""
    return list(getattr(task, "_filters", None) or [])


def make_instance(
    request_type: str, doc: dict, arguments: tuple, idx: int, task_name: str | None = None, doc_id: int | None = None
) -> Any:
    """An lm-eval request ``Instance`` (lm-eval 0.4: task and doc id in ``metadata``; 0.5: keyword arguments)."""
    from lm_eval.api.instance import Instance

    names = {f.name for f in dataclasses.fields(Instance)}
    if "metadata" in names:
        return Instance(request_type, doc, arguments, idx, metadata=(task_name, doc_id, None))
    return Instance(request_type, doc, arguments, idx, task_name=task_name, doc_id=doc_id)


@contextlib.contextmanager
def collecting_model(name: str, cls: type, collect: Callable[[Any], None]) -> Iterator[None]:
    """Within the block lm-eval's model ``name`` is a subclass of ``cls`` that hands each instance it builds
    to ``collect``; at the end the registry holds what it held before (lm-eval's registry has no public way
    to replace or remove an entry)."""
    from lm_eval.api.registry import model_registry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, *args, **kwargs)
        collect(self)

    collected = type(
        cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    )
    absent = object()
    with model_registry._lock:
        before = model_registry._objs.get(name, absent)
        model_registry._objs[name] = collected
    try:
        yield
    finally:
        with model_registry._lock:
            if before is absent:
                model_registry._objs.pop(name, None)
            else:
                model_registry._objs[name] = before
