"""Regrading logged runs with the current grader, from their sample logs (no generation).

Every role's answer is extracted again from its logged text, each pipeline's answer is chosen as
during the run (:attr:`harness.solver.state.SolveState.answer`), the votes are counted again and the result is
graded against the logged raw row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.run.evaluate import regrade_row
from harness.tasks.grading import canonical_task
from leaderboard.collect import ResultsError
from malt_apps.audit import LogSource, log_sources


@dataclass
class Regraded:
    """One run's task: accuracy as logged and as regraded now, and the questions whose grade changed."""

    run: str
    task: str
    agents: str
    n: int
    logged: int
    regraded: int
    changed: list[dict] = field(default_factory=list)  # {"seed", "doc_id", "was", "now", "logged", "answer"}

    def to_dict(self) -> dict:
        return vars(self)


def regrade_rows(task: str, rows: list[dict]) -> list[tuple[dict, str | None, bool]]:
    """``(row, voted answer, correct)`` of every logged row, graded again from its texts
    (:func:`harness.run.evaluate.regrade_row`, as a resumed run grades its checkpoint)."""
    task = canonical_task(task)
    out = []
    for row in rows:
        if not isinstance(row.get("doc"), dict) or not row.get("samples"):
            raise ResultsError(
                f"sample log row {row.get('doc_id')}: no logged doc and texts (rerun with --log-samples)"
            )
        try:
            new = regrade_row(task, row["doc"], row)
        except ValueError as exc:
            raise ResultsError(f"sample log {exc}") from None
        out.append((row, new["answer"], bool(new["acc"])))
    return out


def regrade_source(src: LogSource) -> Regraded:
    """Regrade one run's logged task."""
    graded = regrade_rows(src.task, src.rows)
    res = Regraded(src.where, src.task, src.agents, len(graded), 0, 0)
    for row, voted, ok in graded:
        was = bool(row.get("acc"))
        res.logged += was
        res.regraded += ok
        if was != ok:
            res.changed.append(
                {
                    "seed": int(row.get("seed", 0)),
                    "doc_id": row["doc_id"],
                    "was": was,
                    "now": ok,
                    "logged": row.get("answer"),
                    "answer": voted,
                }
            )
    return res


def regrade(dirs: list[str]) -> list[Regraded]:
    """Regrade every logged task under ``dirs`` (finished runs' sample logs, unfinished runs' checkpoints)."""
    return [regrade_source(src) for src in log_sources(dirs)]
