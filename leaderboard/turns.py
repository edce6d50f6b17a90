"""Turn-wise accuracy (the paper's Figure 3): the answer after G, after V (when stated) and after R.

Read from the grades the evaluation wrote into every sample row (``turn_grades``: per turn, the
majority-voted answer over the votes and whether it was right); nothing is graded here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.core.roles import ROLES
from leaderboard.board import Board
from leaderboard.collect import ResultsError, Run, load_samples
from leaderboard.stats import flips

#: Turns a row of an older sample log into one with ``turn_grades`` (given by the apps, which may grade).
Upgrade = Callable[[str, dict], dict]


@dataclass(frozen=True)
class TurnAccuracy:
    """Per-turn accuracy of one system on one task over its logged questions."""

    task: str
    n: int  # questions (seed, doc_id) with a log
    correct: dict[str, int]  # role -> questions whose (voted) answer after that turn is right
    stated: dict[str, int]  # role -> questions where that turn states an answer
    final_correct: int
    g_to_final: dict[str, int]  # answer flips from the generator's answer to the system's final one

    def acc(self, role: str) -> float | None:
        """Accuracy after ``role`` over the questions where it states an answer (None: role absent/silent)."""
        stated = self.stated.get(role, 0)
        return self.correct[role] / stated if stated else None

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "n": self.n,
            "acc": {r: self.acc(r) for r in self.correct},
            "correct": self.correct,
            "stated": self.stated,
            "final_acc": self.final_correct / self.n if self.n else None,
            "g_to_final": self.g_to_final,
        }


def turn_accuracy(task: str, rows: list[dict]) -> TurnAccuracy:
    """Count, per role, the questions whose majority-voted answer after that turn was graded right.

    Every role is counted on the questions where it states an answer; for the generator and the
    refiner a question without one counts as wrong (they are asked for one), and ``stated`` is ``n``.

    Raises:
        ResultsError: for a row without ``turn_grades`` (a log written before evaluations graded each turn).
    """
    correct: dict[str, int] = {}
    stated: dict[str, int] = {}
    g_ok, final_ok = [], []
    for row in rows:
        grades = row.get("turn_grades")
        if not isinstance(grades, dict):
            raise ResultsError(
                f"{task} sample row {row.get('doc_id')} has no per-turn grades (a log older than this malt-eval: "
                "rerun it, or read it with malt-leaderboard, which grades old logs)"
            )
        for role in ROLES:
            if role not in grades:
                continue
            ok = bool(grades[role]["correct"])
            correct[role] = correct.get(role, 0) + ok
            said = grades[role]["answer"] is not None or role != "verifier"
            stated[role] = stated.get(role, 0) + said
            if role == "generator":
                g_ok.append(ok)
        final_ok.append(bool(row.get("acc")))
    return TurnAccuracy(
        task=task,
        n=len(rows),
        correct=correct,
        stated=stated,
        final_correct=sum(final_ok),
        g_to_final=flips(g_ok, final_ok) if len(g_ok) == len(final_ok) else {},
    )


def board_turns(
    board: Board, runs: list[Run], strict: bool = False, upgrade: Upgrade | None = None
) -> list[tuple[str, TurnAccuracy]]:
    """Turn-wise accuracy of every (system, benchmark) cell whose run has a sample log.

    Cells without a log (or, without ``upgrade``, with a log older than per-turn grades) are skipped, or
    with ``strict`` raise ``ResultsError``. ``upgrade(task, row)`` adds grades to the rows of older logs.
    """
    by_path = {str(r.path): r for r in runs}
    out, ungraded = [], []
    for row in board.rows:
        for task in board.tasks:
            cell = row.cells.get(task)
            if cell is None:
                continue
            run = by_path[cell.source]
            if not run.samples_path(task).is_file() and not strict:
                continue
            rows = load_samples(run, task)
            if run.lm_eval_column(task) and not all(isinstance(r.get("turn_grades"), dict) for r in rows):
                ungraded.append(task)  # lm-eval's sample lines: the task's filters scored the final text only
                continue
            if upgrade is not None:
                rows = [upgrade(task, r) for r in rows]
            try:
                out.append((row.label, turn_accuracy(task, rows)))
            except ResultsError:
                if strict:
                    raise
    if strict and ungraded and not out:
        raise ResultsError(
            f"{', '.join(dict.fromkeys(ungraded))}: lm-eval sample lines carry no per-turn grades (turn_grades: the "
            "task's filters score the final text only); turn-wise accuracy is read for the malt_* tasks"
        )
    return out
