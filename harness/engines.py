"""Build one engine per role; roles that share a base model share one loaded backend."""

from __future__ import annotations

from collections.abc import Mapping

from harness.backends import Backend, get_backend
from harness.models import resolve_adapter, resolve_model
from harness.solver import RoleEngine


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
    role (loaded under the role's name on that role's base model).
    """
    role_models = role_models or {}
    role_adapters = role_adapters or {}
    cls = get_backend(backend)
    loaded: dict[str, Backend] = {}
    engines: dict[str, RoleEngine] = {}
    described: dict[str, dict[str, str | None]] = {}
    # Validate every path before loading anything heavy.
    refs = {r: resolve_model(role_models.get(r) or model) for r in roles}
    adapters = {r: resolve_adapter(a) for r in roles if (a := role_adapters.get(r))}
    for role in roles:
        ref = refs[role]
        if ref not in loaded:
            loaded[ref] = cls(ref, **backend_kwargs)
        be = loaded[ref]
        adapter = None
        if role in adapters:
            be.load_adapter(role, adapters[role])
            adapter = role
        engines[role] = RoleEngine(be, adapter)
        described[role] = {"model": role_models.get(role) or model, "path": ref, "adapter": adapters.get(role)}
    return engines, described
