"""A grader's error is not a wrong answer: counted per row and task (grader_errors, grader_timeouts), raised in
strict mode (the suite's), and counted again when a resumed run grades its rows anew."""

from __future__ import annotations

import time

import pytest

from harness.inference.backends.base import SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.run.checkpoint import Checkpoint
from harness.run.evaluate import regrade_row, run_task
from harness.run.results import summary_table
from harness.solver.protocol import EvalConfig
from harness.solver.steps import SolveContext
from harness.tasks.grading import GraderFaults, MathGrader, NumberGrader, answers_match, extract_answer, is_correct
from harness.tasks.prompts import load_prompts

ROOT8 = {"problem": "p", "answer": "\\sqrt{8}"}  # "2\\sqrt{2}" equals it only by math-verify
DOCS = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(4)]


@pytest.fixture
def lenient(monkeypatch):
    """Graders as a run has them (not the test suite's strict mode)."""
    monkeypatch.delenv("MALT_GRADER_STRICT", raising=False)


def _broken_math_verify(monkeypatch):
    import math_verify

    def boom(*args, **kwargs):
        raise RuntimeError("broken dependency")

    monkeypatch.setattr(math_verify, "parse", boom)


def test_a_raising_dependency_is_counted_not_scored_wrong_silently(monkeypatch, lenient):
    assert is_correct("malt_math", "\\boxed{2\\sqrt{2}}", ROOT8)
    _broken_math_verify(monkeypatch)
    faults = GraderFaults()
    assert answers_match("malt_math", "2\\sqrt{2}", ROOT8, faults) is False
    assert faults.counts() == {"grader_errors": 1, "grader_timeouts": 0}
    assert answers_match("malt_math", "\\sqrt{8}", ROOT8, faults)  # equal as written: no math-verify needed
    assert faults.counts()["grader_errors"] == 1


def test_strict_mode_raises_the_graders_error(monkeypatch):
    monkeypatch.setenv("MALT_GRADER_STRICT", "1")
    _broken_math_verify(monkeypatch)
    with pytest.raises(RuntimeError, match="broken dependency"):
        answers_match("malt_math", "2\\sqrt{2}", ROOT8)
    monkeypatch.setattr(NumberGrader, "extract", lambda self, text, stated: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        extract_answer("malt_gsm8k", "Final Answer: 3")
    monkeypatch.setenv("MALT_GRADER_STRICT", "0")
    assert extract_answer("malt_gsm8k", "Final Answer: 3") is None


def test_a_math_verify_timeout_is_counted_in_either_mode(monkeypatch):
    import math_verify

    real = math_verify.verify

    def slow(*args, **kwargs):
        time.sleep(2)
        return real(*args, **kwargs)

    monkeypatch.setattr(math_verify, "verify", slow)
    monkeypatch.setattr("harness.tasks.grading.MATH_VERIFY_BUDGET_S", 0.2)
    faults = GraderFaults()
    start = time.monotonic()
    assert answers_match("malt_math", "2\\sqrt{2}", ROOT8, faults) is False  # strict mode: still not raised
    assert time.monotonic() - start < 1.5
    assert faults.counts() == {"grader_errors": 0, "grader_timeouts": 1}


def _ctx(responder) -> SolveContext:
    be = ScriptedBackend(responder)
    return SolveContext(
        {"malt_gsm8k": load_prompts("malt_gsm8k")}, {"generator": RoleEngine(be)}, {"generator": SamplingParams(16)}
    )


def _answer(messages, i) -> str:
    q = int(messages[-1]["content"].split("What is ")[1].split(" ")[0])
    return f"Final Answer: {q + 1}" + (" BOOM" if q == 1 else "")


def test_rows_tasks_and_the_summary_count_grader_errors(monkeypatch, lenient, tmp_path):
    real = NumberGrader.extract

    def extract(self, text, stated):
        if "BOOM" in text:
            raise ValueError("grader bug")
        return real(self, text, stated)

    monkeypatch.setattr(NumberGrader, "extract", extract)
    cfg = EvalConfig(roles=("generator",), limit=4, batch_size=2, log_samples=True)
    res = run_task("malt_gsm8k", DOCS, _ctx(_answer), cfg, checkpoint=Checkpoint(tmp_path, {"model": "m"}))
    assert [r["grader_errors"] for r in res.samples] == [0, 1, 0, 0]
    assert [r["acc"] for r in res.samples] == [1.0, 0.0, 1.0, 1.0]
    assert res.grader_faults == (1, 0)
    turn = res.samples[1]["samples"][0]["turns"]["generator"]
    assert turn["grader_fault"] == "error" and any("grader" in i for i in turn["issues"])

    # a resumed run grades its rows again from their texts: the same count
    def must_not_run(messages, i):
        raise AssertionError("a batch on record was generated again")

    again = run_task("malt_gsm8k", DOCS, _ctx(must_not_run), cfg, checkpoint=Checkpoint(tmp_path, {"model": "m"}))
    assert [r["grader_errors"] for r in again.samples] == [0, 1, 0, 0]
    assert regrade_row("malt_gsm8k", DOCS[1], res.samples[1])["grader_errors"] == 1

    doc = {
        "results": {"malt_gsm8k": {"acc,none": 0.75, "acc_stderr,none": 0.25}},
        "n-samples": {"malt_gsm8k": {"effective": 4}},
        "malt": {
            "limited": True, "agents": "g", "votes": 1, "per_seed": {"malt_gsm8k": [{}]},
            "calls_per_question": {"malt_gsm8k": 1.0}, "tokens_per_question": {"malt_gsm8k": 5.0},
            "grader_errors": {"malt_gsm8k": 1}, "grader_timeouts": {"malt_gsm8k": 0},
        },
    }  # fmt: skip
    assert "malt_gsm8k: the grader raised on 1 and ran out of time on 0 answers" in summary_table(doc)
    doc["malt"]["grader_errors"]["malt_gsm8k"] = 0
    assert "grader" not in summary_table(doc)


def test_a_raising_match_is_counted_once_per_answer(monkeypatch, lenient):
    """Each distinct answer of a question counts once, however often voting and the turn grades compare it."""
    monkeypatch.setattr(MathGrader, "match", lambda self, answer, gold, doc: 1 / 0)
    cfg = EvalConfig(roles=("generator",), votes=3, limit=1, log_samples=True)
    ctx = SolveContext(
        {"malt_math": load_prompts("malt_math")},
        {"generator": RoleEngine(ScriptedBackend(lambda m, i: f"\\boxed{{{i % 2}}}"))},
        {"generator": SamplingParams(16)},
    )
    res = run_task("malt_math", [{"problem": "p", "answer": "1"}], ctx, cfg)
    assert res.samples[0]["grader_errors"] == 2 and res.samples[0]["acc"] == 0.0  # answers "0" and "1"
