"""Turn-wise accuracy (the paper's Figure 3): the answer after G, after V (when stated) and after R."""

from __future__ import annotations

from dataclasses import dataclass

from harness.grading import answers_match, canonical_task
from harness.voting import majority_vote
from leaderboard.board import Board
from leaderboard.collect import Run, load_samples
from leaderboard.stats import flips

ROLES = ("generator", "verifier", "refiner")


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


def _doc(task: str, row: dict) -> dict:
    """The raw row logged with the sample, else one rebuilt from its target (enough for grading)."""
    if isinstance(row.get("doc"), dict):
        return row["doc"]
    target = str(row.get("target", ""))
    return {"malt_gsm8k": {"answer": f"#### {target}"}, "malt_csqa": {"answerKey": target}}.get(
        canonical_task(task), {"answer": target}
    )


def turn_accuracy(task: str, rows: list[dict]) -> TurnAccuracy:
    """Grade, per question, the majority-voted answer of each role's turn with the harness grader.

    Every role is graded on the questions where it states an answer; for the generator and the
    refiner a question without one counts as wrong (they are asked for one), and ``stated`` is ``n``.
    """
    correct: dict[str, int] = {}
    stated: dict[str, int] = {}
    g_ok, final_ok = [], []
    for row in rows:
        doc = _doc(task, row)
        by_role = row.get("answers_by_role") or {}
        for role in ROLES:
            if role not in by_role:
                continue
            voted, _ = majority_vote(task, by_role[role])
            ok = answers_match(task, voted, doc)
            correct[role] = correct.get(role, 0) + ok
            said = voted is not None or role != "verifier"
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


def board_turns(board: Board, runs: list[Run], strict: bool = False) -> list[tuple[str, TurnAccuracy]]:
    """Turn-wise accuracy of every (system, benchmark) cell whose run has a sample log.

    Cells without a log are skipped, or with ``strict`` raise ``ResultsError``.
    """
    by_path = {str(r.path): r for r in runs}
    out = []
    for row in board.rows:
        for task in board.tasks:
            cell = row.cells.get(task)
            if cell is None:
                continue
            run = by_path[cell.source]
            if not run.samples_path(task).is_file() and not strict:
                continue
            out.append((row.label, turn_accuracy(task, load_samples(run, task))))
    return out
