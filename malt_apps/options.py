"""Click options made from a config dataclass's fields, so that an option is declared once (with its help).

A field becomes ``--field-name`` (or its ``flag`` metadata) with the value under its name (or its ``dest``
metadata: two configs' ``learning_rate`` as ``--sft-lr`` and ``--dpo-lr``), typed by its default (or its ``type``),
with its ``help``; a bool is a flag (``--x/--no-x`` when it defaults to true); a field with ``per_role``
metadata (a role -> value mapping) becomes one option per role, ``--<role>-<per_role>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from harness.core.roles import ROLES


def _click_option(f: dataclasses.Field, default: Any, help_text: str | None) -> list[Callable]:
    meta = f.metadata
    text = help_text or meta.get("help", "")
    dash = f.name.replace("_", "-")
    if meta.get("per_role"):
        kind = meta["per_role"]
        return [
            click.option(f"--{role}-{kind}", f"{role}_{kind}", default=None, help=text.format(role=role))
            for role in ROLES
        ]
    flag = meta.get("flag") or f"--{dash}"
    dest = meta.get("dest") or f.name
    kwargs: dict[str, Any] = {"default": default, "help": text}
    if isinstance(default, bool):
        if default:
            flag = f"{flag}/--no-{flag[2:]}"
            kwargs["show_default"] = True
        else:
            kwargs["is_flag"] = True
        return [click.option(flag, dest, **kwargs)]
    if meta.get("choices"):
        kwargs["type"] = click.Choice(list(meta["choices"]))
    elif meta.get("type") is not None:
        kwargs["type"] = meta["type"]
    elif default is not None:
        kwargs["type"] = type(default)
    if isinstance(default, (tuple, list)):
        kwargs["default"], kwargs["type"] = ",".join(default), str
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    kwargs["show_default"] = kwargs["default"] not in (None, "")
    if meta.get("required"):
        kwargs["required"] = True
    return [click.option(flag, dest, **kwargs)]


def options_from(
    cls: type,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
) -> Callable[[Callable], Callable]:
    """A decorator adding one click option per field of the dataclass ``cls`` (in field order).

    ``only``/``exclude`` pick fields by name; ``defaults`` and ``helps`` override a field's default and help
    text for this command (say, the suite's four seeds).
    """
    wanted = None if only is None else list(only)
    defaults, helps = dict(defaults or {}), dict(helps or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [n for n in [*(wanted or []), *exclude, *defaults, *helps] if n not in fields]
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    names = wanted if wanted is not None else [n for n in fields if n not in set(exclude)]
    decorators = []
    for name in names:
        f = fields[name]
        default = defaults.get(name, _default(f))
        decorators += _click_option(f, default, helps.get(name))

    def apply(fn: Callable) -> Callable:
        for deco in reversed(decorators):
            fn = deco(fn)
        return fn

    return apply


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def field_values(cls: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """The values in ``options`` (keyed by option name) of the fields of ``cls``, keyed by field name; per-role
    ones stay ``<role>_<kind>``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("per_role"):
            keys = {f"{r}_{f.metadata['per_role']}": f"{r}_{f.metadata['per_role']}" for r in ROLES}
        else:
            keys = {f.metadata.get("dest") or f.name: f.name}
        out |= {name: options[key] for key, name in keys.items() if key in options}
    return out
