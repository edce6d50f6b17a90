"""Backend registry: one name -> class map, one registration point (``@register_backend``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from harness.core.errors import MaltError
from harness.inference.backends.base import Backend, Completion, Messages, SamplingParams

__all__ = ["Backend", "Completion", "Messages", "SamplingParams", "get_backend", "register_backend"]

BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator that registers a backend under ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        if name in BACKENDS and BACKENDS[name] is not cls:
            raise ValueError(f"backend {name!r} already registered")
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``; a clear error with suggestions otherwise."""
    _load_builtin()
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise MaltError(f"unknown backend {name!r}{hint}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def _load_builtin() -> None:
    from harness.inference.backends import hf, openai, scripted, vllm  # noqa: F401 - registration side effect
