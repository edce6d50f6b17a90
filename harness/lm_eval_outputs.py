"""Our additions to the files lm-eval writes for the ``malt`` model: every pipeline's turns on each sample line
(``malt.pipelines``) and the system on the results file (``malt``), added after lm-eval has written them.

``malt-eval lm-eval`` (lm-eval's own CLI) writes its files itself; :func:`add_turns` then rewrites the ones this
run wrote, matching each sample line to the model's records by lm-eval's ``doc_hash`` (robust to ``--samples``
and ``--limit``). lm-eval's fields are left as they are, so its loaders read the files as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.runfiles import atomic_write


def doc_hash(doc: Any) -> str:
    """lm-eval's ``doc_hash`` of a document (as its evaluator computes it for a sample line)."""
    from lm_eval.utils import handle_non_serializable, hash_string

    return hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))


def system_block(lm: Any) -> dict:
    """The ``malt`` block of an lm-eval results file: the system that answered (agents, votes, roles, models)."""
    spec = lm.spec
    return {
        "agents": lm.plan.name,
        "votes": int(getattr(lm, "votes", 1)),
        "roles": list(lm.plan.roles),
        "model": spec.model,
        "role_models": {r: m for r, m in spec.role_models.items() if m},
        "role_adapters": {r: a for r, a in spec.role_adapters.items() if a},
        "temperature": float(spec.temperature) if lm.temperature_given else None,  # None: each task's own
    }


def pipelines(lm: Any, task: str, line: dict) -> list[dict]:
    """Every pipeline's states (turns: messages, text, answer, issues) for the document of ``line``."""
    doc_id = lm.doc_ids.get((task, line.get("doc_hash")), line.get("doc_id"))
    return lm.records.get((task, doc_id), [])


def add_turns(output_path: str | Path, lm: Any, since: float) -> list[Path]:
    """Add ``malt.pipelines`` to each line of the sample files, and ``malt`` to the results files, that lm-eval
    wrote under ``output_path`` (a folder, or a ``.json`` name as lm-eval takes it) at or after ``since``."""
    from lm_eval.utils import get_file_task_name

    root = Path(output_path)
    root = root.parent if root.suffix == ".json" else root
    if not root.is_dir():
        return []
    changed = []
    for path in sorted(root.rglob("*.json*")):
        if not path.is_file() or path.stat().st_mtime < since:
            continue
        if path.name.startswith("samples_") and path.suffix == ".jsonl":
            task = get_file_task_name(path.name)
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            for row in rows:
                row["malt"] = {"pipelines": pipelines(lm, task, row)}
            atomic_write(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
        elif path.suffix == ".json" and "results" in path.name:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or "results" not in doc:
                continue
            doc["malt"] = system_block(lm)
            atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        else:
            continue
        changed.append(path)
    return changed
