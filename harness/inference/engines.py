"""Build one engine per role; roles that share a base model share one loaded backend.

Inside ``with shared_backends():`` (``malt-eval suite``) loaded backends are also kept across calls
of :func:`build_engines`, keyed by (backend, model, options), so many evaluations in one process
load each base model once. Adapters are loaded under a name derived from their path, so the SFT
and the final adapter of one role can sit on one shared model side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import ModelError
from harness.inference.backends import Backend, get_backend
from harness.inference.models import DEFAULT_MODEL, check_adapter_base, resolve_adapter, resolve_model

_SHARED: dict[tuple, Backend] | None = None  # the backends kept by shared_backends(), None outside it


@dataclass
class RoleEngine:
    """Where one role runs: a backend and, optionally, the name of a loaded adapter."""

    backend: Backend
    adapter: str | None = None


@contextlib.contextmanager
def shared_backends() -> Iterator[None]:
    """Keep loaded backends for every :func:`build_engines` call in the block; close them at its end."""
    global _SHARED
    if _SHARED is not None:  # nested: the outer block owns them
        yield
        return
    _SHARED = {}
    try:
        yield
    finally:
        kept, _SHARED = _SHARED, None
        for be in kept.values():
            be.close()


def adapter_name(path: str) -> str:
    """The name an adapter is loaded under: its folder name and a hash of its path (unique per path)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', Path(str(path)).name) or 'adapter'}_{digest}"


def _backend(cls: type[Backend], ref: str | None, kwargs: dict, fresh: bool = False) -> Backend:
    if _SHARED is None:
        return cls(ref, **kwargs)
    key = (cls.name, ref, json.dumps(kwargs, sort_keys=True, default=str))
    if fresh and key in _SHARED:
        _SHARED.pop(key).close()
    if key not in _SHARED:
        _SHARED[key] = cls(ref, **kwargs)
    return _SHARED[key]


def _with_adapters(cls: type[Backend], ref: str | None, kwargs: dict, wanted: dict[str, str]) -> Backend:
    """A backend for ``ref`` holding the ``wanted`` adapters (name -> path)."""

    def load(be: Backend) -> Backend:
        for name, path in wanted.items():
            if name not in getattr(be, "adapters", ()):
                be.load_adapter(name, path)
        return be

    be = _backend(cls, ref, kwargs)
    try:
        return load(be)
    except ModelError:
        if _SHARED is None:
            raise
        # a shared engine may take no new adapter once it has generated (vllm): start a fresh one
        return load(_backend(cls, ref, kwargs, fresh=True))


def build_engines(
    model: str | None,
    roles: tuple[str, ...],
    role_models: Mapping[str, str | None] | None = None,
    role_adapters: Mapping[str, str | None] | None = None,
    backend: str = "hf",
    **backend_kwargs,
) -> tuple[dict[str, RoleEngine], dict[str, dict[str, str | None]]]:
    """Engines for ``roles`` and a description of what each role runs (for the results).

    ``role_models`` overrides the base model per role; ``role_adapters`` adds a LoRA adapter per
    role (loaded on that role's base model under :func:`adapter_name` of its path).
    """
    role_models = role_models or {}
    role_adapters = role_adapters or {}
    cls = get_backend(backend)
    loaded: dict[str, Backend] = {}
    engines: dict[str, RoleEngine] = {}
    described: dict[str, dict[str, str | None]] = {}
    # Validate every path before loading anything heavy (a remote backend takes the server's names).
    model_ref, adapter_ref = (_as_named, _as_named) if cls.remote else (resolve_model, resolve_adapter)
    refs = {r: model_ref(role_models.get(r) or model) for r in roles}
    adapters = {r: adapter_ref(a) for r in roles if (a := role_adapters.get(r))}
    if not cls.remote:
        for r, a in adapters.items():
            check_adapter_base(a, refs[r], role_models.get(r) or model or DEFAULT_MODEL)
    for ref in dict.fromkeys(refs.values()):
        wanted = {adapter_name(a): a for r, a in adapters.items() if refs[r] == ref}
        loaded[ref] = _with_adapters(cls, ref, backend_kwargs, wanted)
    for role in roles:
        be = loaded[refs[role]]
        engines[role] = RoleEngine(be, adapter_name(adapters[role]) if role in adapters else None)
        described[role] = {
            "model": role_models.get(role) or model or (be.model_id if cls.remote else DEFAULT_MODEL),
            "path": refs[role],
            "adapter": adapters.get(role),
        }
    return engines, described


def _as_named(name: str | None) -> str | None:
    """A served model or adapter name, used as given (``None``: the server's default model)."""
    return name


def backend_options(backend: str, base_url: str | None, api_key: str | None) -> dict[str, str | None]:
    """Extra backend arguments of the CLIs: ``--base-url`` and ``--api-key`` go to remote backends only."""
    from harness.core.errors import MaltError

    if get_backend(backend).remote:
        return {"base_url": base_url, "api_key": api_key}
    if base_url:
        raise MaltError(f"--base-url is for --backend openai, not {backend!r}")
    return {}
