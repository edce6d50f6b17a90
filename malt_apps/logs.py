"""Sample logs of any age for the leaderboard: rows written before evaluations graded each turn get their
``turn_grades`` from the harness grader here, so the leaderboard library itself only reads grades."""

from __future__ import annotations

from harness.run.evaluate import with_turn_grades
from leaderboard import turns
from leaderboard.board import Board
from leaderboard.collect import Run


def turn_accuracy(task: str, rows: list[dict]) -> turns.TurnAccuracy:
    """:func:`leaderboard.turns.turn_accuracy` of rows of any age."""
    return turns.turn_accuracy(task, [with_turn_grades(task, r) for r in rows])


def board_turns(board: Board, runs: list[Run], strict: bool = False) -> list[tuple[str, turns.TurnAccuracy]]:
    """:func:`leaderboard.turns.board_turns` of logs of any age."""
    return turns.board_turns(board, runs, strict, upgrade=with_turn_grades)
