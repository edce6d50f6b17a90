"""Reading the provenance record of a results file (``malt.provenance``): the system it describes, the settings
in which systems differ, and short readable values of those settings for row labels."""

from __future__ import annotations

import json
import re
from typing import Any

from harness.provenance import PROVENANCE_FORMAT, SYSTEM_EXCLUDES, system_of

#: The ``malt.provenance.format`` this leaderboard reads.
SUPPORTED_FORMAT = PROVENANCE_FORMAT
#: Parts of the record that are not the system (harness.provenance's rule).
NOT_SYSTEM = SYSTEM_EXCLUDES
#: A differing setting left out of a label when the named sibling differs too (the sibling names it).
_SHOWN_INSTEAD = {"adapter": "adapter_digest", "weights": "model"}
_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{16,})$")
_MISSING = object()
_LONGEST = 40


def check_record(record: object) -> str | None:
    """Why ``record`` is not a provenance record this leaderboard reads (``None`` when it is)."""
    if not isinstance(record, dict):
        return "malt.provenance is not an object"
    if record.get("format") != SUPPORTED_FORMAT:
        return f"provenance format {record.get('format')!r} is not supported (this malt-leaderboard reads format 1)"
    if not isinstance(record.get("tasks", {}), dict):
        return "malt.provenance.tasks is not an object"
    return None


def system(record: dict) -> dict:
    """The system of a run: its record minus the tasks, package versions and git commit."""
    return system_of(record)


def system_id(record: dict) -> str:
    """A canonical text of the system (equal exactly when the systems are equal)."""
    return json.dumps(system(record), sort_keys=True, default=str)


def shown(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """``paths`` without those whose sibling that names them (an adapter's digest, a model's name) is there too."""
    present = set(paths)
    return [p for p in paths if not (p and p[-1] in _SHOWN_INSTEAD and (*p[:-1], _SHOWN_INSTEAD[p[-1]]) in present)]


def value_at(record: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict) or key not in record:
            return _MISSING
        record = record[key]
    return record


def short_value(value: Any) -> str:
    """A setting's value for a label: digests as 8 hex characters, numbers as ``%g``, long texts shortened."""
    if value is _MISSING:
        return "unset"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(short_value(v) for v in value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{short_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    digest = _DIGEST.match(text)
    if digest:
        return digest.group(1)[:8]
    return text if len(text) <= _LONGEST else "…" + text[-(_LONGEST - 1) :]


def settings_text(record: dict, paths: list[tuple[str, ...]]) -> str:
    """``generation.temperature=0.7, engine.dtype=bfloat16``: the given settings of one record."""
    return ", ".join(f"{'.'.join(p)}={short_value(value_at(record, p))}" for p in paths)
