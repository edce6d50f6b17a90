import json
from pathlib import Path

import pytest

from harness.tasks.grading import extract_answer, gold_answer, is_correct, normalize_answer

GSM = {"question": "q", "answer": "work\n#### 1,000"}
MATH_HALF = {"problem": "p", "answer": "\\frac{1}{2}", "solution": "\\boxed{\\frac{1}{2}}"}
CSQA = {
    "answerKey": "B",
    "question": {
        "stem": "Where are books?",
        "choices": [
            {"label": k, "text": t} for k, t in zip("ABCDE", ["bank", "library", "mall", "park", "zoo"], strict=True)
        ],
    },
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So she pays $1,000.00.\nFinal Answer: $1,000.00", "1000"),
        ("The answer is 18 dollars.", "18"),
        ("#### 42", "42"),
        ("Thus \\boxed{7}.", "7"),
        ("Final Answer: 5\nWait, recheck. Final Answer: 6", "6"),  # the last stated answer wins
        ("Final Answer: 3 ... and so \\boxed{4}", "4"),
        ("**Final Answer:** 12%", "12"),
        ("Final Answer: -3.50", "-3.5"),
        ("Final answer: 18.00", "18"),
        ("I think it is 5", None),  # no stated final answer
        ("", None),
    ],
)
def test_gsm8k_extraction(text, expected):
    assert extract_answer("malt_gsm8k", text) == expected


def test_gsm8k_correctness_is_numeric():
    assert is_correct("malt_gsm8k", "Final Answer: 1000", GSM)
    assert is_correct("gsm8k", "The answer is $1,000.", GSM)
    assert not is_correct("malt_gsm8k", "Final Answer: 100", GSM)
    assert not is_correct("malt_gsm8k", "no answer here", GSM)


def test_math_extraction_nested_braces_and_final_answer():
    assert extract_answer("malt_math", "so $\\boxed{\\frac{\\sqrt{3}}{2}}$.") == "\\frac{\\sqrt{3}}{2}"
    assert extract_answer("malt_math", "Final Answer: $\\frac{1}{2}$") == "\\frac{1}{2}"
    assert extract_answer("malt_math", "\\boxed{1} then \\boxed{2") == "1"  # unbalanced tail ignored


@pytest.mark.parametrize("pred", ["\\frac12", "\\frac{1}{2}", "0.5", "\\dfrac{1}{2}", "1/2"])
def test_math_equivalent_forms(pred):
    assert is_correct("malt_math", f"Final Answer: ${pred}$", MATH_HALF)


def test_math_math_verify_symbolic():
    doc = {"problem": "p", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)"}
    assert is_correct("malt_math", "\\boxed{(3, \\pi/2)}", doc)
    assert not is_correct("malt_math", "\\boxed{(3, \\pi)}", doc)
    assert is_correct("malt_math", "\\boxed{2\\sqrt{2}}", {"problem": "p", "answer": "\\sqrt{8}"})


@pytest.mark.parametrize(
    "text",
    ["Final Answer: B", "The answer is (B).", "Final Answer: B: library", "final answer: b", "Final Answer: library"],
)
def test_csqa_forms(text):
    assert is_correct("malt_csqa", text, CSQA)


def test_csqa_wrong_and_letter_extraction():
    assert not is_correct("malt_csqa", "Final Answer: A", CSQA)
    assert extract_answer("malt_csqa", "Final Answer: (C)") == "C"


def test_hub_csqa_layout_is_graded_too():
    hub = {"answerKey": "B", "choices": {"label": list("ABCDE"), "text": ["x", "library", "y", "z", "w"]}}
    assert is_correct("malt_csqa", "Final Answer: library", hub)


def test_normalisation():
    assert normalize_answer("malt_gsm8k", "1,000") == normalize_answer("malt_gsm8k", "1000") == "1000"
    assert normalize_answer("malt_math", "\\frac12") == normalize_answer("malt_math", "0.5") == "0.5"
    assert normalize_answer("malt_math", "\\left(1,2\\right)") == "(1,2)"
    assert normalize_answer("malt_csqa", "(b)") == "B"


def test_gold_answers():
    assert gold_answer("malt_gsm8k", GSM) == "1,000"
    assert gold_answer("malt_math", {"problem": "p", "answer": "", "solution": "x \\boxed{3}"}) == "3"
    assert gold_answer("malt_csqa", CSQA) == "B"


@pytest.mark.parametrize(
    "text", [None, 123, "\\boxed{" * 5000, "9" * 5000, "Final Answer: " + "{" * 3000, "\x00\udcff"]
)
def test_never_raises(text):
    for task in ("malt_gsm8k", "malt_math", "malt_csqa"):
        extract_answer(task, text)
        assert is_correct(task, text, {"answer": "#### 1", "problem": "", "answerKey": "A"}) in (True, False)


def test_unknown_task_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown task"):
        gold_answer("nope", {})
    with pytest.raises(ValueError, match="unknown task"):  # strict mode (the test suite's): the error is raised
        extract_answer("nope", "Final Answer: 1")
    monkeypatch.delenv("MALT_GRADER_STRICT")
    assert extract_answer("nope", "Final Answer: 1") is None


# --------------------------------------------------------------------------- real texts (the grader audit)

_REAL = Path(__file__).parent / "fixtures" / "grading_real.jsonl"
REAL = [json.loads(line) for line in _REAL.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("case", REAL, ids=[c["source"] for c in REAL])
def test_real_texts_the_audit_found(case):
    """Texts of real runs that the grader misread before the audit (``was``), read as a person reads them."""
    assert extract_answer(case["task"], case["text"]) == case["answer"], case["why"]
    assert is_correct(case["task"], case["text"], case["doc"]) is case["correct"], case["why"]


@pytest.mark.parametrize(
    ("task", "text", "expected"),
    [
        ("malt_csqa", "Final Answer: B or C", None),  # a hedge between two letters is no answer
        ("malt_csqa", "Final Answer: (B)/(C)", None),
        ("malt_csqa", "Final Answer: B\nOn reflection it could be B or C.", "B"),  # no statement: the last one counts
        ("malt_csqa", "Final Answer: B: rock and roll", "B"),  # "and" inside a choice's text is no hedge
        ("malt_csqa", "Final Answer: Option C", "C"),
        ("malt_csqa", "Final Answer: The answer is (C) garden", "C"),  # a marker inside a statement
        ("malt_csqa", "The answer is (B). Final Answer: C", "C"),  # the last marker of a line
        ("malt_csqa", "Final Answer: B\nSo the answer is not A: classroom.", "B"),  # a negation states nothing
        ("malt_gsm8k", "Final Answer: 18, the answer is correct", "18"),
        ("malt_math", "**Final Answer:** The final answer is $\\boxed{5}$. I hope it is correct.", "5"),
        ("malt_gsm8k", "Final Answer: 5\nWait, that is wrong. Final Answer: 6", "6"),  # two final answers: the last
        ("malt_gsm8k", "**Final Answer**\n\n18 apples", "18"),  # a heading states the paragraph under it
        ("malt_gsm8k", "Final Answer: 18\nThe answer is correct.", "18"),  # a verdict states nothing
        ("malt_math", "\\boxed{3}\nThe final answer is correct.", "3"),
        ("malt_math", "\\boxed{3}\nFinal Answer: $<correct answer in LaTeX>$", "3"),  # the prompt's placeholder
        ("malt_csqa", 'The correct answer is "E"', "E"),  # quotes around a stated answer are dropped
        ("malt_gsm8k", 'Final Answer: "18"', "18"),
        ("malt_csqa", "Step 3: Select the correct answer, which is C: building", "C"),
        ("malt_csqa", "A: coffee shop\nC: table\nD: kitchen", None),  # a list of choices states nothing
        ("malt_csqa", "Answer:\nB", "B"),  # a short reply of one choice still counts
        ("malt_csqa", "B: cabinet is incorrect.", None),  # a statement calling itself incorrect states nothing
        ("malt_gsm8k", "The answer is 20.\nFinal Answer: 18 is incorrect.", "20"),
        ("malt_csqa", "D: solemn", "D"),  # a letter with another choice's text: the letter counts
        ("malt_csqa", "Final Answer: B rope", "B"),
        ("malt_csqa", "Final Answer: A snow storm is formed when a snowflake falls below the freezing point.", None),
        ("malt_math", "So, the answer is 20.\n\nNow, check if the answer is correct:\n\nTotal = 36 feet", "20"),
        ("malt_math", "So the final answer is $5$.\nNote: so no final answer is achieved.", "5"),  # negated
        ("malt_math", "Final Answer: $7$\n\nFinal Answer:\n\nFinal Answer:", "7"),  # a repeated marker states nothing
    ],
)
def test_documented_rules(task, text, expected):
    assert extract_answer(task, text) == expected


def test_csqa_text_answer_with_an_article():
    """'A' followed by a word is the article: "a snow storm" names the choice "snow storm", not choice A."""
    doc = {
        "answerKey": "B",
        "question": {
            "stem": "q",
            "choices": [
                {"label": "A", "text": "cloud"},
                {"label": "B", "text": "snow storm"},
                {"label": "C", "text": "billow"},
            ],
        },
    }
    assert is_correct("malt_csqa", "Final Answer: A snow storm", doc)
    assert not is_correct("malt_csqa", "Final Answer: A", doc)
    assert is_correct("malt_csqa", "Final Answer: the snow storm.", doc)


def test_math_answer_stated_in_a_sentence():
    """math-verify reads a stated sentence as text (its last math), not as one LaTeX expression."""
    doc = {"problem": "p", "answer": "72"}
    assert is_correct("malt_math", "Final Answer:\nThe minimum number of degrees is 72 degrees.", doc)
    assert not is_correct("malt_math", "Final Answer:\nThe minimum number of degrees is 208 degrees.", doc)


# --------------------------------------------------------------------------- graders are per-task facts


def test_each_task_names_a_registered_grader():
    from harness.tasks.grading import GRADERS, task_grader
    from harness.tasks.taskinfo import TASKS

    assert {t.grader for t in TASKS.values()} <= set(GRADERS)
    assert [task_grader(t).kind for t in ("gsm8k", "malt_math", "csqa")] == ["number", "math", "choice"]


def test_grading_dispatches_through_taskinfo(monkeypatch):
    """The grader is what the task's entry names: no task name is special-cased in the grading code."""
    import dataclasses

    from harness.tasks.taskinfo import TASKS

    assert extract_answer("malt_gsm8k", "B") is None
    monkeypatch.setitem(TASKS, "malt_gsm8k", dataclasses.replace(TASKS["malt_gsm8k"], grader="choice"))
    assert extract_answer("gsm8k", "B") == "B"
    assert is_correct("malt_gsm8k", "Final Answer: (B)", {"answerKey": "b"})


def test_a_grader_kind_registers_once():
    from harness.core.errors import MaltError
    from harness.tasks.grading import Grader, register_grader

    with pytest.raises(MaltError, match="registered twice"):
        register_grader("number")(type("Again", (Grader,), {}))


# --------------------------------------------------------------------------- multi-part boxes, choices in prose


@pytest.mark.parametrize(
    ("text", "expected", "gold"),
    [
        ("So the solutions are \\boxed{3} and \\boxed{5}.", "3, 5", "3, 5"),
        ("The roots are $\\boxed{-2}$, $\\boxed{7}$", "-2, 7", "7, -2"),
        ("x=\\boxed{2}, y=\\boxed{-1}", "x=2, y=-1", "(2,-1)"),
        ("Hence $x = \\boxed{2}$ and $y = \\boxed{-1}$.", "x=2, y=-1", "x=2, y=-1"),
        ("Final Answer: \\boxed{1}; \\boxed{4}", "1, 4", "1,4"),
        ("a = \\boxed{\\frac{1}{2}}\n\nb = \\boxed{3}", "a=\\frac{1}{2}, b=3", "\\left(\\frac12, 3\\right)"),
    ],
)
def test_boxes_in_a_row_are_one_multi_part_answer(text, expected, gold):
    assert extract_answer("malt_math", text) == expected
    assert is_correct("malt_math", text, {"problem": "p", "answer": gold})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{5}\n\nWait, recheck: the answer is \\boxed{6}", "6"),  # prose between boxes: the last one
        ("\\boxed{12} \\boxed{12}", "12"),  # the same box twice is one part
        ("\\boxed{3} and \\boxed{5}\nFinal Answer: 5", "5"),  # a later statement still wins
        ("\\boxed{3} or \\boxed{5}", "5"),  # "or" joins no parts
        ("\\boxed{1} then \\boxed{2", "1"),
    ],
)
def test_boxes_apart_are_not_joined(text, expected):
    assert extract_answer("malt_math", text) == expected


def test_gsm8k_boxes_stay_one_number():
    assert extract_answer("malt_gsm8k", "\\boxed{3} and \\boxed{5}") == "5"


@pytest.mark.parametrize(
    "text",
    [
        "I think it's (B) bookstore, because that is where books are sold.",
        "B) bookstore is where you would buy it.",
        "The best option is B, bookstore.",
        "(B) bookstore: that's where people go to buy a novel.",
        "I'd go with B: bookstore, since it sells books.",
        "Looking at the choices, my answer is (B).",
        "A library lends books but doesn't sell them. I believe it is (B) bookstore.",
        "The generator said A. I think it's not A, it must be B.",
    ],
)
def test_a_choice_named_in_prose_with_its_letter(text):
    doc = {**CSQA, "answerKey": "B"}
    assert extract_answer("malt_csqa", text) == "B"
    assert is_correct("malt_csqa", text, doc)


@pytest.mark.parametrize(
    "text",
    [
        "Let's consider (A) bank, (B) library and (C) mall before deciding.",
        "Options A, B and C are all places where books can be found.",
        "I think it's (B) bookstore or (C) library, hard to say.",
        "I think A, B and C all fit the question somewhat.",
        "A) bank\nB) library\nC) mall\nD) park",
        "B: cabinet is incorrect because it holds dishes, not books.",
        "I think it is a place where books are kept for people to read.",
        "It's not (B) bookstore, since nothing is bought in the question.",
    ],
)
def test_prose_that_picks_no_single_choice_states_nothing(text):
    assert extract_answer("malt_csqa", text) is None
