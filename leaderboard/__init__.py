"""leaderboard: tables, a web page, plots and paired comparisons from ``malt-eval`` results.

Public API: :func:`load_runs` (read and check result folders), :func:`build_board` (one row per system),
:func:`check_strict` (refuse mixed columns), :func:`compare_paired` (flips, paired bootstrap, McNemar),
:func:`turn_accuracy` (after G / V / R).
"""

from leaderboard.board import Board, Cell, Row, build_board, check_strict
from leaderboard.collect import ResultsError, Run, load_runs, load_samples
from leaderboard.stats import compare_paired, flips, mcnemar_exact, paired_bootstrap
from leaderboard.turns import TurnAccuracy, turn_accuracy

__all__ = [
    "Board",
    "Cell",
    "ResultsError",
    "Row",
    "Run",
    "TurnAccuracy",
    "build_board",
    "check_strict",
    "compare_paired",
    "flips",
    "load_runs",
    "load_samples",
    "mcnemar_exact",
    "paired_bootstrap",
    "turn_accuracy",
]
