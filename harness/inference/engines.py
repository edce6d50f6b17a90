"""Build one engine per role; roles that share a base model share one loaded backend.

Inside ``with shared_backends():`` (``malt-eval suite``, ``demo.py``) loaded backends are also kept across
calls of :func:`build_engines`, keyed by (backend, model, options), so many evaluations in one process load
each base model once. The block's :class:`BackendPool` is held in a ``contextvars.ContextVar``: the evaluations
run through CLI entry points that take no pool argument, so the pool is scoped to the block's context (this
thread, or a task copying its context), not kept in a module-level variable. Adapters are loaded under a name
derived from their path, so the SFT and the final adapter of one role can sit on one shared model side by side.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import ModelError
from harness.inference.backends import Backend, get_backend
from harness.inference.models import DEFAULT_MODEL, check_adapter_base, resolve_adapter, resolve_model


@dataclass
class RoleEngine:
    """Where one role runs: a backend and, optionally, the name of a loaded adapter."""

    backend: Backend
    adapter: str | None = None


@dataclass
class BackendPool:
    """Loaded backends kept for reuse, keyed by (backend name, model, options)."""

    backends: dict[tuple, Backend] = field(default_factory=dict)

    def get(self, cls: type[Backend], ref: str | None, kwargs: dict, fresh: bool = False) -> Backend:
        """The pool's backend for ``ref`` with ``kwargs``, loaded on first use (``fresh``: close the kept one
        and load anew)."""
        key = (cls.name, ref, json.dumps(kwargs, sort_keys=True, default=str))
        if fresh and key in self.backends:
            self.backends.pop(key).close()
        if key not in self.backends:
            self.backends[key] = cls(ref, **kwargs)
        return self.backends[key]

    def close(self) -> None:
        """Close every kept backend and forget them."""
        kept, self.backends = self.backends, {}
        for be in kept.values():
            be.close()


#: The pool of the innermost :func:`shared_backends` block in this context (``None`` outside one).
_POOL: contextvars.ContextVar[BackendPool | None] = contextvars.ContextVar("malt_backend_pool", default=None)


@contextlib.contextmanager
def shared_backends() -> Iterator[BackendPool]:
    """Keep loaded backends for every :func:`build_engines` call in the block; close them at its end. A nested
    block uses (and leaves open) the outer block's pool."""
    outer = _POOL.get()
    if outer is not None:
        yield outer
        return
    pool = BackendPool()
    token = _POOL.set(pool)
    try:
        yield pool
    finally:
        _POOL.reset(token)
        pool.close()


def adapter_name(path: str) -> str:
    """The name an adapter is loaded under: its folder name and a hash of its path (unique per path)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', Path(str(path)).name) or 'adapter'}_{digest}"


def _with_adapters(cls: type[Backend], ref: str | None, kwargs: dict, wanted: dict[str, str]) -> Backend:
    """A backend for ``ref`` holding the ``wanted`` adapters (name -> path), from the context's pool if any."""
    pool = _POOL.get()

    def load(be: Backend) -> Backend:
        for name, path in wanted.items():
            if name not in getattr(be, "adapters", ()):
                be.load_adapter(name, path)
        return be

    if pool is None:
        return load(cls(ref, **kwargs))
    try:
        return load(pool.get(cls, ref, kwargs))
    except ModelError:  # a shared engine may take no new adapter once it has generated (vllm): start a fresh one
        return load(pool.get(cls, ref, kwargs, fresh=True))


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
