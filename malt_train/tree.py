"""The MALT tree format: one JSON object per node in ``tree.jsonl`` (see docs/training.md).

Fields: ``id``, ``parent`` (null for generator nodes), ``question_id``, ``role``
(generator|verifier|refiner), ``prompt`` (chat messages), ``text``, ``answer`` and, on refiner
nodes, ``reward`` (0 or 1). Labelled trees add ``value`` and ``label``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import MaltError
from harness.core.roles import ROLE_PARENT
from harness.core.runfiles import iter_jsonl


class TreeError(MaltError):
    """A tree file that cannot be used (names the file and line)."""


@dataclass
class Tree:
    """Nodes by id and children by parent id."""

    nodes: dict[str, dict]
    children: dict[str | None, list[str]]

    def by_role(self, role: str) -> list[dict]:
        return [n for n in self.nodes.values() if n["role"] == role]


def _parse(path: Path) -> tuple[list[dict], list[int]]:
    if not path.is_file():
        raise TreeError(f"tree file not found: {path}")
    pairs = list(iter_jsonl(path, TreeError))
    return [node for _, node in pairs], [lineno for lineno, _ in pairs]


def _check_node(node: dict, where: str) -> None:
    for key in ("id", "parent", "question_id", "role", "text"):
        if key not in node:
            raise TreeError(f"{where}: missing field {key!r}")
    if node["role"] not in ROLE_PARENT:
        raise TreeError(f"{where}: unknown role {node['role']!r}")
    if node["role"] == "refiner" and node.get("reward") not in (0, 1, 0.0, 1.0, True, False):
        raise TreeError(f"{where}: refiner node {node['id']!r} has no reward (0 or 1)")


def read_tree(path: str | Path) -> Tree:
    """Read and validate a tree: unique ids, known roles, rewards, existing parents, no cycles."""
    path = Path(path)
    raw, linenos = _parse(path)
    nodes: dict[str, dict] = {}
    lines: dict[str, int] = {}
    for node, lineno in zip(raw, linenos, strict=True):
        where = f"{path}:{lineno}"
        _check_node(node, where)
        if node["id"] in nodes:
            raise TreeError(f"{where}: duplicate id {node['id']!r}")
        nodes[node["id"]] = node
        lines[node["id"]] = lineno
    children: dict[str | None, list[str]] = {}
    for nid, node in nodes.items():
        where = f"{path}:{lines[nid]}"
        parent = node["parent"]
        if parent is not None and parent not in nodes:
            raise TreeError(f"{where}: node {nid!r} has a missing parent {parent!r}")
        seen, cur = {nid}, parent
        while cur is not None:  # walk up: a revisit is a cycle
            if cur in seen:
                raise TreeError(f"{where}: node {nid!r} is on a cycle")
            seen.add(cur)
            cur = nodes[cur]["parent"] if cur in nodes else None
        want = ROLE_PARENT[node["role"]]
        got = nodes[parent]["role"] if parent is not None else None
        if got != want:
            raise TreeError(f"{where}: a {node['role']} node needs a {want or 'null'} parent, got {got or 'null'}")
        children.setdefault(parent, []).append(nid)
    return Tree(nodes, children)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write rows atomically (temp file + rename); return how many."""
    from harness.core.runfiles import atomic_write

    rows = list(rows)
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
