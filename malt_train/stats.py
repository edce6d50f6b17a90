"""What a tree holds: nodes, generated tokens and answers per role, and how many leaves are right.

``malt-train stats RUN`` prints it; the numbers an experiment report needs before labelling (the yield
of right leaves decides how many SFT examples and DPO pairs a tree gives).
"""

from __future__ import annotations

from harness.core.roles import ROLES
from malt_train.tree import Tree


def tree_stats(tree: Tree, max_new_tokens: int | None = None) -> dict:
    """Counts per role and per question; ``at_limit`` counts nodes that used all ``max_new_tokens``."""
    roles: dict[str, dict] = {}
    for role in ROLES:
        nodes = tree.by_role(role)
        lengths = [n["n_tokens"] for n in nodes if isinstance(n.get("n_tokens"), int)]
        roles[role] = {
            "nodes": len(nodes),
            "tokens": sum(lengths),
            "mean_tokens": round(sum(lengths) / len(lengths), 1) if lengths else None,
            "at_limit": sum(t >= max_new_tokens for t in lengths) if max_new_tokens else None,
            "no_answer": sum(n.get("answer") is None for n in nodes),
        }
    leaves: dict[str, list[float]] = {}
    for node in tree.by_role("refiner"):
        leaves.setdefault(node["question_id"], []).append(float(node["reward"]))
    questions = {n["question_id"] for n in tree.nodes.values()}
    right = sum(sum(r) for r in leaves.values())
    n_leaves = sum(len(r) for r in leaves.values())
    return {
        "questions": len(questions),
        "nodes": len(tree.nodes),
        "roles": roles,
        "leaves": n_leaves,
        "leaves_right": int(right),
        "leaf_accuracy": round(right / n_leaves, 4) if n_leaves else None,
        "questions_any_right": sum(any(r) for r in leaves.values()),
        "questions_all_right": sum(all(r) for r in leaves.values()),
    }


def format_stats(stats: dict) -> str:
    """A table per role and one line per tree-wide count."""
    from tabulate import tabulate

    rows = [[role, *s.values()] for role, s in stats["roles"].items()]
    head = ["role", "nodes", "tokens", "mean tokens", "at limit", "no answer"]
    acc = stats["leaf_accuracy"]
    share = f" ({100 * acc:.1f}%)" if acc is not None else ""
    lines = [
        tabulate(rows, head, tablefmt="github"),
        f"questions: {stats['questions']}, nodes: {stats['nodes']}",
        f"leaves right: {stats['leaves_right']} / {stats['leaves']}{share}",
        f"questions with a right leaf: {stats['questions_any_right']}, "
        f"all leaves right: {stats['questions_all_right']}",
    ]
    return "\n".join(lines)
