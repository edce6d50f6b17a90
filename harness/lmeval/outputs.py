"""Our additions to the files lm-eval writes for the ``malt`` model: every pipeline's turns on each sample line
(``malt.pipelines``) and the system on the results file (``malt``), added after lm-eval has written them.

``malt-eval lm-eval`` (lm-eval's own CLI) writes its files itself; :func:`add_turns` then rewrites the ones this
run wrote, matching each sample line to the model's records by lm-eval's ``doc_hash`` (robust to ``--samples``
and ``--limit``). lm-eval's fields are left as they are, so its loaders read the files as before.

Every turn is graded as lm-eval grades the final text (:func:`turn_grades`): each role's texts go through the
line's filter pipeline (the task's own ``FilterEnsemble``) and the task's own ``process_results``; the line gets
``turn_grades`` (per role: the filtered answer, ``None`` for lm-eval's ``[invalid]``, and whether its first metric
is non-zero), which the leaderboard's turn-wise tables read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.core.runfiles import atomic_write
from harness.lmeval.compat import task_filters


def system_block(
    lm: Any,
    prov: Any = None,
    tasks: Mapping[str, Any] | None = None,
    votes: int | None = None,
    seeds: int = 1,
    subset: int | None = None,
    label: str | None = None,
) -> dict:
    """The ``malt`` block of an lm-eval results file: the system that answered
    (:func:`harness.provenance.system_fields`: agents, votes, roles, temperature, seeds, subset, label, provenance)
    and this path's own fields, the models and adapters per role (``model``, ``role_models``, ``role_adapters``).

    ``prov``: a :class:`harness.provenance.Provenance` (default: built from ``lm`` and the documents its requests
    carried, ``tasks``: lm-eval's task objects by name for their templates); ``votes``: lm-eval's repeats
    (default: the model's own); ``seeds``, ``subset``, ``label``: the protocol and the row's name."""
    from harness.provenance import system_fields

    spec = lm.spec
    if prov is None:
        prov = _provenance_of(lm, tasks or {})
    temperature = float(spec.temperature) if lm.temperature_given else None  # None: each task's own
    votes = int(getattr(lm, "votes", 1)) if votes is None else votes
    block = system_fields(
        lm.plan.name,
        votes,
        roles=list(lm.plan.roles),
        temperature=temperature,
        provenance=prov.to_dict(),
        seeds=seeds,
        subset=subset,
        label=label,
    )
    block.update(
        model=spec.model,
        role_models={r: m for r, m in spec.role_models.items() if m},
        role_adapters={r: a for r, a in spec.role_adapters.items() if a},
    )
    return block


def _settings_of_cli(doc: dict, prov: dict) -> None:
    """lm-eval's own CLI flags (chat template, system instruction, gen_kwargs, limit), read from its results file
    into a provenance record built from the model's arguments."""
    config = doc.get("config") or {}
    gen = prov["generation"]
    gen["apply_chat_template"] = bool(doc.get("chat_template"))
    gen["fewshot_as_multiturn"] = bool(doc.get("fewshot_as_multiturn"))
    gen["system_instruction"] = doc.get("system_instruction")
    gen["gen_kwargs"] = config.get("gen_kwargs") or None
    prov["protocol"]["limit"] = config.get("limit")


def _provenance_of(lm: Any, tasks: Mapping[str, Any]) -> Any:
    """The provenance of a run lm-eval's own CLI drove: per task the doc hashes its requests carried, in
    document order (a request answered from lm-eval's request cache never reaches the model: not counted)."""
    import harness.provenance as provenance
    from harness.lmeval.solver import role_prompts_digest

    seen: dict[str, list[tuple[int, str]]] = {}
    for (task, digest), doc_id in lm.doc_ids.items():
        seen.setdefault(task, []).append((doc_id, digest))
    hashes = {t: [h for _, h in sorted(pairs)] for t, pairs in seen.items()}
    records = provenance.doc_hashes_tasks(hashes, tasks, role_prompts_digest(lm.spec))
    return provenance.from_lm(lm, records)


def pipelines(lm: Any, task: str, line: dict) -> list[dict]:
    """Every pipeline's states (turns: messages, text, answer, issues) for the document of a written ``line``:
    the model's records, else lm-eval's request cache (``--use_cache``: a request answered from it)."""
    doc_id = lm.doc_ids.get((task, line.get("doc_hash")), line.get("doc_id"))
    found = lm.records.get((task, doc_id))
    if not found:
        args = (line.get("arguments") or {}).get("gen_args_0") or {}  # lm-eval writes req.args as arg_0, arg_1
        found = lm.cached_pipelines(tuple(args[k] for k in sorted(args))) if args else []
    return [{**p, "doc_id": line.get("doc_id")} for p in found]


#: lm-eval's regex filters' answer when nothing matched.
INVALID = "[invalid]"


def turn_grades(task: Any, line: dict) -> dict[str, dict] | None:
    """Per role, the line's filter applied to that role's texts (all pipelines) and the task's first metric on it;
    ``None`` when the line has no turns or the task has no such filter."""
    from harness.lmeval.compat import make_instance

    ensemble = next((f for f in task_filters(task) if f.name == line.get("filter")), None)
    pipes = (line.get("malt") or {}).get("pipelines") or []
    if ensemble is None or not pipes or not line.get("metrics"):
        return None
    out = {}
    for role in dict.fromkeys(r for p in pipes for r in p.get("turns") or {}):
        texts = [p["turns"][role]["text"] for p in pipes if role in (p.get("turns") or {})]
        inst = make_instance("generate_until", line["doc"], (texts[0], {}), idx=0)
        inst.resps = texts
        ensemble.apply([inst])
        answer = inst.filtered_resps[ensemble.name]
        score = task.process_results(line["doc"], [answer]).get(line["metrics"][0])
        shown = None if answer in (INVALID, "") else answer
        out[role] = {"answer": shown if shown is None else str(shown), "correct": bool(score)}
    return out


def add_turn_grades(samples: Mapping[str, list[dict]], tasks: Mapping[str, Any]) -> None:
    """Give each sample line (with ``malt.pipelines``) of a task in ``tasks`` its ``turn_grades``."""
    for name, rows in samples.items():
        for row in rows if name in tasks else []:
            grades = turn_grades(tasks[name], row)
            if grades is not None:
                row["turn_grades"] = grades


def load_tasks(include_path: Any, names: Any) -> dict[str, Any]:
    """lm-eval's task objects for ``names`` (names or configs, as ``simple_evaluate`` takes them), by name.

    Raises:
        DataError: a dataset that cannot be loaded, or a split its task reads that it lacks (one line).
    """
    from harness.lmeval.tasks import load_task_objects, task_manager

    return load_task_objects(task_manager(include_path), names)


def add_turns(output_path: str | Path, lm: Any, since: float, tasks: Mapping[str, Any] | None = None) -> list[Path]:
    """Add ``malt.pipelines`` to each line of the sample files, and ``malt`` to the results files, that lm-eval
    wrote under ``output_path`` (a folder, or a ``.json`` name as lm-eval takes it) at or after ``since``.

    ``tasks``: lm-eval's task objects by name; their lines also get ``turn_grades`` (:func:`turn_grades`)."""
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
            add_turn_grades({task: rows}, tasks or {})
            atomic_write(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
        elif path.suffix == ".json" and "results" in path.name:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or "results" not in doc:
                continue
            doc["malt"] = system_block(lm, tasks=tasks)
            _settings_of_cli(doc, doc["malt"]["provenance"])
            atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        else:
            continue
        changed.append(path)
    return changed
