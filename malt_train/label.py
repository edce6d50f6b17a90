"""Credit assignment by value iteration over the tree (MALT section 3).

Refiner value = its reward. Verifier value = mean of its refiner children's values. Generator
value = mean over all leaves below it (``global`` pooling, the paper's choice) or the mean of its
children's binary labels (``local`` pooling, for ablation). ``label`` = value > threshold, strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from harness.core.roles import ROLES
from harness.spec import option
from malt_train.tree import Tree, TreeError, read_tree, write_jsonl


@dataclass
class LabelConfig:
    """Options of ``malt-train label``."""

    threshold: float = option(0.5, "label = value > threshold (a tie at exactly 0.5 is negative).")
    pooling: str = option(
        "global",
        "global: a node's value is the mean of all leaves below it (the paper's); local: of its children's labels.",
        choices=("global", "local"),
    )


def _leaves(tree: Tree, nid: str) -> list[dict]:
    kids = tree.children.get(nid, [])
    if not kids:
        node = tree.nodes[nid]
        return [node] if node["role"] == "refiner" else []
    return [leaf for k in kids for leaf in _leaves(tree, k)]


def label_tree(tree: Tree, cfg: LabelConfig | None = None) -> Tree:
    """Add ``value`` and ``label`` to every node (in place) and return the tree."""
    cfg = cfg or LabelConfig()
    if cfg.pooling not in ("global", "local"):
        raise TreeError(f"unknown pooling {cfg.pooling!r} (use global or local)")
    order = {role: i for i, role in enumerate(reversed(ROLES))}  # bottom-up: refiners first
    for node in sorted(tree.nodes.values(), key=lambda n: order[n["role"]]):
        kids = [tree.nodes[k] for k in tree.children.get(node["id"], [])]
        if node["role"] == "refiner":
            value = float(node["reward"])
        elif not kids:
            value = None  # a branch with no leaves carries no evidence
        elif node["role"] == "verifier" or cfg.pooling == "local":
            scored = [
                float(k["label"]) if cfg.pooling == "local" and node["role"] == "generator" else k["value"]
                for k in kids
                if k["value"] is not None
            ]
            value = fmean(scored) if scored else None
        else:
            leaves = _leaves(tree, node["id"])
            value = fmean(float(leaf["reward"]) for leaf in leaves) if leaves else None
        node["value"] = value
        node["label"] = None if value is None else bool(value > cfg.threshold)
    return tree


def label_file(src: str | Path, out: str | Path, cfg: LabelConfig | None = None) -> dict[str, dict[str, int]]:
    """Label ``src`` into ``out``; return counts of positive/negative nodes per role."""
    tree = label_tree(read_tree(src), cfg)
    write_jsonl(Path(out), tree.nodes.values())
    counts: dict[str, dict[str, int]] = {}
    for node in tree.nodes.values():
        c = counts.setdefault(node["role"], {"positive": 0, "negative": 0, "unlabelled": 0})
        key = "unlabelled" if node["label"] is None else ("positive" if node["label"] else "negative")
        c[key] += 1
    return counts
