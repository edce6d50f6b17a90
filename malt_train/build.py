"""Per-role SFT and DPO sets from a labelled tree (TRL conversational formats)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from harness.core.roles import ROLES
from harness.spec import option
from malt_train.tree import Tree, write_jsonl


@dataclass
class BuildConfig:
    """Options of ``malt-train build``."""

    pairs_per_parent: int | None = option(None, "Cap on DPO pairs per parent (default all).", type=int)
    seed: int = 0  # which pairs are kept when capped


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_rows(tree: Tree, role: str) -> list[dict]:
    """Prompt/completion rows of the positive nodes of ``role``."""
    return [
        {"prompt": n["prompt"], "completion": _assistant(n["text"]), "id": n["id"]}
        for n in tree.nodes.values()
        if n["role"] == role and n.get("label") is True
    ]


def dpo_rows(tree: Tree, role: str, cfg: BuildConfig | None = None) -> list[dict]:
    """Prompt/chosen/rejected pairs: a positive and a negative sibling (same parent, same prompt).

    Generator nodes are siblings when they answer the same question. Parents whose children are
    all positive or all negative give no pair.
    """
    cfg = cfg or BuildConfig()
    rng = random.Random(cfg.seed)
    groups: dict[tuple, list[dict]] = {}
    for n in tree.nodes.values():
        if n["role"] == role and n.get("label") is not None:
            groups.setdefault((n["question_id"], n["parent"]), []).append(n)
    rows = []
    for (_, parent), kids in groups.items():
        pos = [k for k in kids if k["label"]]
        neg = [k for k in kids if not k["label"]]
        pairs = [(p, q) for p in pos for q in neg]
        if cfg.pairs_per_parent is not None and len(pairs) > cfg.pairs_per_parent:
            pairs = rng.sample(pairs, cfg.pairs_per_parent)
        rows += [
            {
                "prompt": p["prompt"],
                "chosen": _assistant(p["text"]),
                "rejected": _assistant(q["text"]),
                "parent": parent,
                "chosen_id": p["id"],
                "rejected_id": q["id"],
            }
            for p, q in pairs
        ]
    return rows


def build_sets(tree: Tree, out: str | Path, cfg: BuildConfig | None = None) -> dict[str, dict[str, int]]:
    """Write ``out/<role>/{sft,dpo}.jsonl`` for every role; return their sizes."""
    out = Path(out)
    counts = {}
    for role in ROLES:
        counts[role] = {
            "sft": write_jsonl(out / role / "sft.jsonl", sft_rows(tree, role)),
            "dpo": write_jsonl(out / role / "dpo.jsonl", dpo_rows(tree, role, cfg)),
        }
    return counts
