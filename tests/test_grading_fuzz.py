"""The graders fuzzed: never raise, return within 5 s, and extraction/normalisation are idempotent."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.tasks.grading import answers_match, extract_answer, is_correct, normalize_answer

TASKS = ["malt_gsm8k", "malt_math", "malt_csqa"]
DOCS = {
    "malt_gsm8k": {"question": "q", "answer": "so\n#### 1,234"},
    "malt_math": {"problem": "p", "solution": "\\boxed{\\frac{1}{2}}", "answer": "\\frac{1}{2}"},
    "malt_csqa": {
        "answerKey": "B",
        "question": {"stem": "s", "choices": [{"label": c, "text": f"choice {c}"} for c in "ABCDE"]},
    },
}
PIECES = [
    "\\boxed{", "}", "{", "\\frac", "\\dfrac", "\\sqrt", "^", "_", "$", "\\(", "\\)", "Final Answer:", "####",
    "The answer is", "\n", " ", ",", ".", "-", "/", "%", "(", ")", "B", "x", "\\pi", "\\left(", "\\right)",
    "1", "2", "0", "9", "1,000", "3.5", "ⅷ", "٣", "\u200b", "\\infty", "\\text{", "**", "Answer: (C)",
]  # fmt: skip
latexish = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
texts = st.one_of(st.text(max_size=400), latexish, st.tuples(st.text(max_size=50), latexish).map("".join))
# Deterministic in CI (a fixed example set); MALT_FUZZ_RANDOM=1 MALT_FUZZ_EXAMPLES=5000 explores new ones.
FUZZ = settings(
    max_examples=int(os.environ.get("MALT_FUZZ_EXAMPLES", "400")),
    derandomize=not os.environ.get("MALT_FUZZ_RANDOM"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(task=st.sampled_from(TASKS), text=texts)
def test_extract_and_normalise_never_raise_and_are_idempotent(task, text):
    answer = extract_answer(task, text)
    assert answer is None or (isinstance(answer, str) and answer.strip())
    if answer is not None:
        assert extract_answer(task, f"Final Answer: {answer}") == answer
    norm = normalize_answer(task, answer)
    assert norm is None or isinstance(norm, str)
    assert normalize_answer(task, norm) == norm


@FUZZ
@given(task=st.sampled_from(TASKS), text=texts)
def test_correctness_never_raises_and_is_quick(task, text):
    start = time.monotonic()
    assert is_correct(task, text, DOCS[task]) in (True, False)
    assert answers_match(task, text, DOCS[task]) in (True, False)
    assert time.monotonic() - start < 5


PATHOLOGICAL = [
    "\\boxed{" * 5000,
    "\\boxed{" * 3000 + "1" + "}" * 3000,
    "{" * 100_000,
    "Final Answer: " + "9" * 100_000,
    "Final Answer: " + "\\frac{" * 400 + "1" + "}{2}" * 400,
    "Final Answer: " + "(" * 2000 + "x" + ")" * 2000,
    "Final Answer: " + "x^" * 3000 + "2",
    "Final Answer: " + "\\sqrt{" * 300 + "2" + "}" * 300,
    "Final Answer: 10^{10^{10^{10^{10}}}}",
    "#### " + "1" * 5000 + "/" + "7" * 5000,
    "".join(chr(c) for c in range(0x20, 0x3000, 7)),
    "\x00\ud7ff\ufffe" * 1000,
]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("text", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_inputs_return_within_5_s(task, text):
    start = time.monotonic()
    answer = extract_answer(task, text)
    assert answer is None or isinstance(answer, str)
    assert normalize_answer(task, normalize_answer(task, answer)) == normalize_answer(task, answer)
    assert is_correct(task, text, DOCS[task]) in (True, False)
    assert time.monotonic() - start < 5


def test_wrappers_are_unwrapped_to_a_fixed_point():
    assert extract_answer("malt_math", "Final Answer: $\\boxed{**\\frac{1}{2}**}$.") == "\\frac{1}{2}"
    assert extract_answer("malt_csqa", "$*$") is None  # found by hypothesis: wrappers around nothing
    deep = "Final Answer: " + "\\boxed{" * 3000 + "1" + "}" * 3000
    start = time.monotonic()
    assert extract_answer("malt_math", deep) is None and time.monotonic() - start < 5
