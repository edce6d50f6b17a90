"""Sharded tree generation: ``generate --shard i/k`` runs a range of the batches; ``merge`` joins runs.

A shard takes the i-th of k contiguous ranges of the *batches* of the seeded question sample, and
keeps their global batch numbers. Batches and their seeds are therefore exactly those of the
unsharded run, so shards 1..k merged in order give the same ``tree.jsonl`` as one run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.core.errors import MaltError
from harness.core.identity import identity_diff
from harness.core.maltrun import CONFIG_FILE, TREE_FILE
from malt_train.tree import read_tree


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"i/k"`` (1-based, 1 <= i <= k) -> ``(i, k)``; ``None`` stays ``None``."""
    if shard is None:
        return None
    try:
        i, k = (int(x) for x in shard.split("/"))
    except ValueError:
        raise MaltError(f"--shard: expected i/k such as 1/4, got {shard!r}") from None
    if not 1 <= i <= k:
        raise MaltError(f"--shard {shard}: need 1 <= i <= k")
    return i, k


def shard_batches(batches: list[list[int]], shard: str | None) -> list[tuple[int, list[int]]]:
    """``(global batch number, batch)`` for the batches of ``shard`` (all of them without one)."""
    numbered = list(enumerate(batches))
    parsed = parse_shard(shard)
    if parsed is None:
        return numbered
    i, k = parsed
    return numbered[(i - 1) * len(batches) // k : i * len(batches) // k]


def _load(run: Path) -> tuple[dict, list[str]]:
    cfg, tree = run / CONFIG_FILE, run / TREE_FILE
    if not cfg.is_file() or not tree.is_file():
        raise MaltError(f"{run} is not a malt-train generate run (needs {CONFIG_FILE} and {TREE_FILE})")
    read_tree(tree)  # validates the file: unique ids, parents, roles, rewards
    return json.loads(cfg.read_text()), tree.read_text(encoding="utf-8").splitlines(keepends=True)


def _shard_key(cfg: dict) -> tuple[int, int]:
    parsed = parse_shard(cfg.get("shard"))
    return (parsed[1], parsed[0]) if parsed else (0, 0)


def merge_runs(runs: list[Path], out: Path) -> dict[str, int | list[str]]:
    """Concatenate the trees of ``runs`` (shards of one run) into ``out/tree.jsonl``.

    The runs must share their config (model, task, seed, branching, ...; only ``shard`` may differ),
    hold complete questions only, and have disjoint question ids. Shards are written in shard order.
    ``out/generate.json`` is the common config without a shard, so ``out`` reads like one run.
    """
    if not runs:
        raise MaltError("merge: give the run folders to merge")
    if (out / TREE_FILE).exists():
        raise MaltError(f"{out} already holds a tree; use another --out")
    loaded = [(run, *_load(run)) for run in runs]
    loaded.sort(key=lambda x: _shard_key(x[1]))
    per_run = ("shard", "merged_from")  # what may differ between shards of one run
    first, base = loaded[0][0], {k: v for k, v in loaded[0][1].items() if k not in per_run}
    n = base.get("branching", 3)
    per_question = n + n**2 + n**3
    owner: dict[str, Path] = {}
    lines: list[str] = []
    for run, cfg, rows in loaded:
        diff = identity_diff(base, cfg, ignore=per_run)
        if diff:
            raise MaltError(f"{run} is not a shard of the same run as {first} (differs in: {', '.join(diff)})")
        counts = Counter(json.loads(x)["question_id"] for x in rows)
        for qid, c in counts.items():
            if qid in owner:
                raise MaltError(f"question {qid} is in both {owner[qid]} and {run}: shards must be disjoint")
            if c != per_question:
                raise MaltError(f"{run}: question {qid} has {c} of {per_question} nodes; finish the run first")
            owner[qid] = run
        lines += rows
    ids = Counter(json.loads(x)["id"] for x in lines)
    dup = next((i for i, c in ids.items() if c > 1), None)
    if dup is not None:
        raise MaltError(f"node id {dup!r} occurs more than once across the runs")
    from harness.core.runfiles import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    shards = [cfg.get("shard") for _, cfg, _ in loaded]
    merged = {
        **base,
        "shard": None,
        "merged_from": [f"{run} ({cfg.get('shard') or 'whole'})" for run, cfg, _ in loaded],
    }
    atomic_write(out / CONFIG_FILE, json.dumps(merged, indent=2))
    atomic_write(out / TREE_FILE, "".join(lines))
    return {"questions": len(owner), "nodes": len(lines), "missing": _missing_shards(shards)}


def _missing_shards(shards: list[str | None]) -> list[str]:
    """Shards ``i/k`` absent from the merge when all runs are shards of the same k."""
    parsed = [parse_shard(s) for s in shards]
    ks = {p[1] for p in parsed if p}
    if None in parsed or len(ks) != 1:
        return []
    (k,) = ks
    have = {p[0] for p in parsed if p}
    return [f"{i}/{k}" for i in range(1, k + 1) if i not in have]
