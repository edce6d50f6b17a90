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
from typing import Any

from harness.core.errors import MaltError
from harness.core.runfiles import atomic_write

_MISSING = object()
#: Parts of a provenance record (:mod:`harness.provenance`) left out of "same run".
RUN_EXCLUDES = ("git",)


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


def differing_paths(records: list[Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths (in record order) of the settings whose values are not the same in every record: the one walk
    over records that "what differs" uses (folder refusals, leaderboard labels). A key only some records have
    differs."""
    if all(isinstance(r, Mapping) for r in records):
        keys = list(dict.fromkeys(k for r in records for k in r))
        return [p for k in keys for p in differing_paths([r.get(k, _ABSENT) for r in records], (*path, str(k)))]
    first = records[0]
    same = all(r is first if _ABSENT in (first, r) else r == first for r in records[1:])
    return [] if same else [path]


def differences(have: Mapping, want: Mapping, ignore: Iterable[str] = RUN_EXCLUDES) -> list[str]:
    """The dotted paths on which two records differ (``generation.temperature``), sorted; ``ignore``: top keys."""
    skip = set(ignore)
    a = {k: v for k, v in as_json(have).items() if k not in skip}
    b = {k: v for k, v in as_json(want).items() if k not in skip}
    return sorted(".".join(p) for p in differing_paths([a, b]))


_ABSENT = object()


def record_diff(have: Mapping, want: Mapping) -> list[str]:
    """What differs between two run records ``{"provenance": ...}`` (an evaluation folder's ``provenance.json``),
    as dotted paths; ``["provenance"]`` for a record written before provenance existed (it cannot be compared).

    Tasks only one side has do not count (a folder's finished batches are per task: adding a task to the same
    run reuses the others'); a task both have counts with all its fields.
    """
    if not isinstance(have.get("provenance"), Mapping):
        return ["provenance"]
    a, b = have["provenance"], want["provenance"]
    common = set(a.get("tasks") or {}) & set(b.get("tasks") or {})

    def shared(p: Mapping) -> dict:
        return {**p, "tasks": {t: v for t, v in (p.get("tasks") or {}).items() if t in common}}

    return differences(shared(a), shared(b))
