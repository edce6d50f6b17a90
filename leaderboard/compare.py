"""``compare A B``: pair two systems' logged answers on the questions both answered."""

from __future__ import annotations

from dataclasses import dataclass

from tabulate import tabulate

from leaderboard.board import Row, build_board
from leaderboard.collect import ResultsError, Run, load_runs, load_samples, question_key
from leaderboard.stats import FLIP_NAMES, Paired, compare_paired


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a single system and, per task, the newest run holding it."""

    name: str
    row: Row
    runs: dict[str, Run]


def load_side(name: str, path: str) -> Side:
    """The system stored at ``path`` (a result folder or results file); several systems are an error."""
    runs = load_runs([path])
    board = build_board(runs)
    if len(board.rows) > 1:
        labels = "; ".join(r.label for r in board.rows)
        raise ResultsError(f"{name} ({path}) holds {len(board.rows)} systems ({labels}): pass one system's folder")
    by_task = {t: r for r in runs for t in r.tasks}  # runs are oldest first: the newest wins
    return Side(name, board.rows[0], by_task)


def _correct_by_question(run: Run, task: str) -> dict[tuple[int, int], bool]:
    return {question_key(s): bool(s["acc"]) for s in load_samples(run, task)}


def compare_sides(a: Side, b: Side, resamples: int = 10_000, seed: int = 0) -> list[Paired]:
    """Per common task, the paired comparison on the (seed, doc_id) questions both sides logged."""
    tasks = [t for t in a.runs if t in b.runs]
    if not tasks:
        raise ResultsError(f"A ({', '.join(a.runs)}) and B ({', '.join(b.runs)}) share no task")
    out = []
    for task in tasks:
        ca, cb = _correct_by_question(a.runs[task], task), _correct_by_question(b.runs[task], task)
        keys = sorted(set(ca) & set(cb))
        if keys:
            out.append(compare_paired(task, [ca[k] for k in keys], [cb[k] for k in keys], resamples, seed))
    if not out:
        raise ResultsError(f"A and B have no common questions (seed, doc_id) on {', '.join(tasks)}")
    return out


def format_comparison(a: Side, b: Side, results: list[Paired]) -> str:
    """Flip tables and significance lines, one block per task."""
    lines = [f"A: {a.row.label}", f"B: {b.row.label}", ""]
    for p in results:
        ci = p.ci
        rows = [[name, p.flips[name], f"{100 * p.flips[name] / p.n:.1f}"] for name in FLIP_NAMES.values()]
        lines += [
            f"## {p.task}: {p.n} common questions (seed, doc_id)",
            "",
            tabulate(rows, headers=["A → B", "questions", "%"], tablefmt="github", disable_numparse=True),
            "",
            f"accuracy A {100 * p.acc_a:.1f}%, B {100 * p.acc_b:.1f}%; B − A {100 * ci.diff:+.1f} points, "
            f"{100 * ci.level:.0f}% paired bootstrap CI [{100 * ci.low:+.1f}, {100 * ci.high:+.1f}] "
            f"({ci.resamples:,} resamples, seed {ci.seed})",
            f"McNemar exact p = {p.p_mcnemar:.4g} ({p.flips['incorrect→correct']} incorrect→correct vs "
            f"{p.flips['correct→incorrect']} correct→incorrect)",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
