"""The grader audit (``malt-leaderboard audit``) and regrading from sample logs (``malt-leaderboard regrade``).

The fixture ``tests/fixtures/audit`` holds real logs: rows of the audit runs of ``bench/audit_runs.sh``
(SmolLM2-135M and Qwen2.5-Coder-0.5B at temperature 0.7, prompts dropped to keep it small), one finished run
per task and one unfinished run (its ``checkpoint.jsonl`` only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard.audit import READERS, Reading, disagreement
from tests.conftest import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "audit"
GSM = {"question": "q", "answer": "work\n#### 18"}


def leaderboard(*args):
    return run_cli("leaderboard.cli", *args, timeout=300)


def assert_one_line_error(r, message: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("malt-leaderboard: error: ") and message in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("ours", "theirs", "kind"),
    [
        (Reading("18", True), Reading("18", True), "agree"),
        (Reading(None, False), Reading(None, False), "agree"),
        (Reading("18", True), Reading("17", False), "ours_right"),
        (Reading("18", True), Reading(None, False), "ours_right"),
        (Reading(None, False), Reading("18", True), "reader_right"),
        (Reading("17", False), Reading(None, False), "only_ours_found"),
        (Reading(None, False), Reading("17", False), "only_reader_found"),
        (Reading("17", False), Reading("16", False), "other_answer"),
        (Reading("17", False), Reading("17.00", False), "agree"),  # the same number, written differently
    ],
)
def test_disagreement_kinds(ours, theirs, kind):
    assert disagreement("malt_gsm8k", ours, theirs) == kind


def test_gsm8k_readers_are_lm_evals_filters():
    """strict-match needs lm-eval's "#### N"; flexible-extract takes the last number; both graded by exact_match."""
    got = READERS["malt_gsm8k"]("The total is 18.\n#### 18", GSM)
    assert got["strict-match"] == Reading("18", True) and got["flexible-extract"] == Reading("18", True)
    got = READERS["malt_gsm8k"]("Final Answer: $18.\nThat took 2 days.", GSM)
    assert got["strict-match"] == Reading(None, False)
    assert got["flexible-extract"] == Reading("2", False)


def test_math_and_csqa_readers():
    half = {"problem": "p", "answer": "\\frac{1}{2}"}
    assert READERS["malt_math"]("so $x = 3$, then \\boxed{0.5}", half)["math-verify"].correct
    assert not READERS["malt_math"]("so \\boxed{0.5} and finally $x = 3$", {"problem": "p", "answer": "3"})[
        "math-verify"
    ].correct  # the last \boxed{} comes first
    texts = ["bank", "library", "mall", "park", "zoo"]
    choices = [{"label": k, "text": t} for k, t in zip("ABCDE", texts, strict=True)]
    csqa = {"answerKey": "B", "question": {"stem": "Where are books?", "choices": choices}}
    (reading,) = READERS["malt_csqa"]("Books are kept in a library.", csqa).values()
    assert reading == Reading("B", True)  # the choice text, mapped to its letter
    (reading,) = READERS["malt_csqa"]("It is (C).", csqa).values()
    assert reading == Reading("C", False)
