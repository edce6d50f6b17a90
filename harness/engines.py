"""Build one engine per role; roles that share a base model share one loaded backend."""

from __future__ import annotations

from collections.abc import Mapping

from harness.backends import Backend, get_backend
from harness.models import DEFAULT_MODEL, check_adapter_base, resolve_adapter, resolve_model
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
    # Validate every path before loading anything heavy (a remote backend takes the server's names).
    model_ref, adapter_ref = (_as_named, _as_named) if cls.remote else (resolve_model, resolve_adapter)
    refs = {r: model_ref(role_models.get(r) or model) for r in roles}
    adapters = {r: adapter_ref(a) for r in roles if (a := role_adapters.get(r))}
    if not cls.remote:
        for r, a in adapters.items():
            check_adapter_base(a, refs[r], role_models.get(r) or model or DEFAULT_MODEL)
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
        described[role] = {
            "model": role_models.get(role) or model or (be.model_id if cls.remote else DEFAULT_MODEL),
            "path": ref,
            "adapter": adapters.get(role),
        }
    return engines, described


def _as_named(name: str | None) -> str | None:
    """A served model or adapter name, used as given (``None``: the server's default model)."""
    return name


def backend_options(backend: str, base_url: str | None, api_key: str | None) -> dict[str, str | None]:
    """Extra backend arguments of the CLIs: ``--base-url`` and ``--api-key`` go to remote backends only."""
    from harness.errors import MaltError

    if get_backend(backend).remote:
        return {"base_url": base_url, "api_key": api_key}
    if base_url:
        raise MaltError(f"--base-url is for --backend openai, not {backend!r}")
    return {}
