"""Is this folder the same run? One check for evaluation checkpoints, MALT trees, shards and suite rows.

A run records what defines it (model, options, prompt hashes...) as a JSON object when it starts; a
later command on the same folder compares its own record with it, key by key, and continues only when
nothing differs. Keys named in ``ignore`` (an output folder, a shard number) do not count; a key only one
side has counts unless its value there is the key's ``defaults`` value (an option added since the other
record was written, left at its default).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from harness.core.errors import MaltError
from harness.core.runfiles import atomic_write

_MISSING = object()


def as_json(record: Mapping) -> dict:
    """``record`` as it reads back from JSON (tuples as lists, paths and other objects as strings)."""
    return json.loads(json.dumps(record, default=str))


def identity_diff(
    have: Mapping, want: Mapping, ignore: Iterable[str] = (), defaults: Mapping | None = None
) -> list[str]:
    """The keys on which two run records differ, sorted (empty: the same run)."""
    have, want, defaults = as_json(have), as_json(want), as_json(defaults or {})
    skip = set(ignore)
    diff = []
    for key in sorted(set(have) | set(want)):
        if key in skip:
            continue
        a, b = have.get(key, _MISSING), want.get(key, _MISSING)
        if a is _MISSING:
            a = defaults.get(key, _MISSING)
        if b is _MISSING:
            b = defaults.get(key, _MISSING)
        if a is _MISSING or b is _MISSING or a != b:
            diff.append(key)
    return diff


def read_identity(path: Path, what: str) -> dict | None:
    """The run record in ``path`` (``None`` when there is none yet); an unreadable one is a ``MaltError``."""
    if not path.exists():
        return None
    try:
        have = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise MaltError(f"{path} is unreadable: not a {what} folder?") from None
    if not isinstance(have, dict):
        raise MaltError(f"{path} is not a run record: not a {what} folder?")
    return have


def check_same_run(
    path: Path,
    want: Mapping,
    refusal: str,
    what: str,
    ignore: Iterable[str] = (),
    defaults: Mapping | None = None,
    write: bool = False,
    compare: Callable[[dict, dict], list[str]] | None = None,
) -> dict:
    """Refuse a folder whose record ``path`` describes another run; return ``want`` in its JSON form.

    ``refusal`` is the one-line error, with ``{diff}`` where the differing keys go. With ``write``, a
    missing record is written now (otherwise the caller writes it when the first result is kept).
    ``compare``: another rule than :func:`identity_diff` (``(have, want) -> differing names``).
    """
    have = read_identity(path, what)
    ident = as_json(want)
    if have is not None:
        diff = compare(have, ident) if compare else identity_diff(have, ident, ignore, defaults)
        if diff:
            raise MaltError(refusal.format(diff=", ".join(diff)))
    elif write:
        atomic_write(path, json.dumps(ident, indent=2))
    return ident
