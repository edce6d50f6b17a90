"""When a new results file replaces an earlier one in the same folder: one rule for every results writer.

An earlier ``results_<stamp>.json`` beside a new one is *superseded* only when it was read, parses as a results
document, describes the same run and covers only tasks of the new file (:func:`same_run`). Superseded files and
their ``samples_*_<stamp>.jsonl`` are moved into ``OUT/superseded/`` with ``.old`` added to their names (so no
reader that looks for ``results_*.json`` counts them again), never deleted. A file that cannot be read or parsed
is kept where it is and named in a one-line warning (``harness`` logger); a readable file of another run is kept
silently.

"The same run": both files' ``malt.provenance`` are the same run by :func:`harness.core.identity.record_diff`
(equal but ``git``; the tasks both have equal, tasks only one has compared by name). When either file has no
provenance (results written before it existed), the older identity fields of the ``malt`` block are compared
instead (:data:`LEGACY_KEYS`, and per task :data:`LEGACY_TASK_KEYS` on the earlier file's tasks).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from harness.core.identity import record_diff

SUPERSEDED_DIR = "superseded"
#: ``malt`` keys that named a run before results carried a provenance record.
LEGACY_KEYS = (
    "format", "agents", "roles", "role_models", "role_adapters", "model", "votes", "temperature", "top_p",
    "seeds", "subset", "limit", "label", "debate",
)  # fmt: skip
#: per-task ``malt`` keys compared on the earlier file's tasks.
LEGACY_TASK_KEYS = ("prompt_hash", "max_new_tokens")

_log = logging.getLogger("harness")


def read_results(path: Path) -> dict | None:
    """The results document in ``path``; ``None`` when it cannot be read or is not a JSON object with ``results``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("results"), dict) else None


def _provenance(doc: dict) -> dict | None:
    prov = (doc.get("malt") or {}).get("provenance") if isinstance(doc.get("malt"), dict) else None
    return prov if isinstance(prov, dict) else None


def _legacy_key(doc: dict, tasks: set[str]) -> dict:
    malt = doc.get("malt") if isinstance(doc.get("malt"), dict) else {}
    key = {k: malt.get(k) for k in LEGACY_KEYS}
    for k in LEGACY_TASK_KEYS:
        per_task = malt.get(k) if isinstance(malt.get(k), dict) else {}
        key[k] = {t: per_task.get(t) for t in sorted(tasks)}
    return {"has_malt": "malt" in doc, **key}


def same_run(old: dict, new: dict) -> bool:
    """Whether the results document ``new`` supersedes ``old``: the same run (see the module's notes), and
    ``old``'s tasks all among ``new``'s."""
    tasks = set(old["results"])
    if not tasks <= set(new["results"]):
        return False
    a, b = _provenance(old), _provenance(new)
    if a is not None and b is not None:  # harness.provenance's rule: the record but git, tasks in common
        return not record_diff({"provenance": a}, {"provenance": b})
    return json.dumps(_legacy_key(old, tasks), sort_keys=True, default=str) == json.dumps(
        _legacy_key(new, tasks), sort_keys=True, default=str
    )


def superseded_by(folder: Path, new: dict, keep: Path | None = None) -> list[Path]:
    """The results files directly in ``folder`` that ``new`` supersedes (``keep``: the new file itself). Each
    unreadable one is named in a warning and left out."""
    out = []
    for path in sorted(Path(folder).glob("results_*.json")):
        if keep is not None and path.resolve() == Path(keep).resolve():
            continue
        old = read_results(path)
        if old is None:
            _log.warning("kept %s: it cannot be read as a results file, so it is not superseded", path)
        elif same_run(old, new):
            out.append(path)
    return out


def move_aside(paths: list[Path]) -> None:
    """Move each results file and its sample files into ``superseded/`` beside it (``.old`` added to the names)."""
    for path in paths:
        stamp = path.stem.removeprefix("results_")
        dest = path.parent / SUPERSEDED_DIR
        dest.mkdir(exist_ok=True)
        for f in [path, *path.parent.glob(f"samples_*_{stamp}.jsonl")]:
            if f.exists():
                os.replace(f, dest / f"{f.name}.old")
