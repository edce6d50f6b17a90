"""The lm-eval task families users run most, through the solver on local rows in each task's own schema
(tests/lm_eval_local.py), scored by each task's own filters and metrics; and the one-line refusals of a task
whose own code cannot run (a missing extra, NLTK data, the code-execution opt-in)."""

import importlib.metadata
import sys

import pytest

from harness.api import run_eval
from harness.core.roles import ROLES
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.lmeval.needs import TaskCodeError, explain, lm_eval_extra
from harness.spec import EvalSpec
from tests.lm_eval_local import FAMILY_TASKS, write_family_tasks

#: The refiner's right answer to row 0 of each family (found by a phrase of its question); everything else is wrong.
RIGHT = {
    "Tom has 3 apples": "3 + 4 = 7. The answer is 7.\n#### 7",
    "What is $2+3$": "$2+3=5$.\nFinal Answer: The final answer is $5$. I hope it is correct.",
    "not ( False ) is": "not False is True. So the answer is True.",
    "Describe the sea": "the sea is blue and deep and wide",
    "capital of France": "Paris",
    "Return the sum of a and b": "    return a + b\n",
}
WRONG = "I do not know. Sorry. Ask again. Maybe later."  # four sentences, no number, not code

#: family -> {metric key: value on the two rows} (lm-eval's own keys: metric,filter)
EXPECTED = {
    "gsm8k": {"exact_match,strict-match": 0.5, "exact_match,flexible-extract": 0.5},
    "math": {"exact_match,none": 0.5, "math_verify,none": 0.5},
    "bbh": {"exact_match,get-answer": 0.5},
    "ifeval": {
        "prompt_level_strict_acc,none": 0.5,
        "inst_level_strict_acc,none": 2 / 3,
        "prompt_level_loose_acc,none": 0.5,
    },
    "triviaqa": {"exact_match,remove_whitespace": 0.5},
    "humaneval": {"pass@1,create_test": 0.5},
}

#: A stand-in for Hugging Face evaluate's ``code_eval`` metric, which evaluate fetches from the Hub (offline here):
#: the same interface and opt-in; it runs each candidate program with its test in a subprocess.
CODE_EVAL = """
import os
import subprocess
import sys

import datasets
import evaluate

class CodeEval(evaluate.Metric):
    def _info(self):
        features = {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
        return evaluate.MetricInfo(description="", citation="", inputs_description="",
                                   features=datasets.Features(features))

    def _compute(self, predictions, references, k=(1,), num_workers=1, timeout=20.0):
        if os.getenv("HF_ALLOW_CODE_EVAL", "0") != "1":
            raise ValueError("code_eval runs untrusted code: set HF_ALLOW_CODE_EVAL=1")
        assert list(k) == [1]
        passed = []
        for cands, test in zip(predictions, references):
            runs = [subprocess.run([sys.executable, "-c", c + "\\n" + test], capture_output=True, timeout=timeout)
                    for c in cands]
            passed.append(sum(r.returncode == 0 for r in runs) / len(runs))
        return {"pass@1": sum(passed) / len(passed)}, {}
"""


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """One folder with every family's local tasks (one lm-eval task index for the module's tests)."""
    folder = tmp_path_factory.mktemp("families")
    for family in FAMILY_TASKS:
        write_family_tasks(folder, family)
    return folder


def _tasks(family):
    return [name for name, _ in FAMILY_TASKS[family]]


def responder(prompt, i):
    """Generator (lm-eval's context, a string) and verifier: wrong; refiner: right on each family's row 0."""
    if isinstance(prompt, str):
        return WRONG
    text = prompt[-1]["content"]
    if "Critique" not in text:
        return "The initial answer is wrong."
    return next((answer for phrase, answer in RIGHT.items() if phrase in text), WRONG)


@pytest.fixture
def nltk_data(tmp_path, monkeypatch):
    """An NLTK data folder with an (empty-parameter) English punkt_tab, the only one nltk reads."""
    import nltk

    english = tmp_path / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    english.mkdir(parents=True)
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        (english / name).write_text("")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    return tmp_path / "nltk_data"


@pytest.fixture
def code_eval(tmp_path, monkeypatch):
    """``code_eval`` where Hugging Face evaluate looks first (./code_eval/code_eval.py) and its opt-in set."""
    (tmp_path / "cwd" / "code_eval").mkdir(parents=True)
    (tmp_path / "cwd" / "code_eval" / "code_eval.py").write_text(CODE_EVAL)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def _run(folder, tasks, **spec):
    be = ScriptedBackend(responder)
    spec = EvalSpec(agents="g,v,r", tasks=",".join(tasks), include_path=str(folder), limit=2, **spec)
    return run_eval(spec, engines={r: RoleEngine(be) for r in ROLES}, progress=False).lm_eval


@pytest.mark.parametrize("family", ["gsm8k", "math", "bbh", "ifeval", "triviaqa", "humaneval"])
def test_family_scored_by_its_own_metrics(family, families, request):
    if family == "ifeval":
        request.getfixturevalue("nltk_data")
    if family == "humaneval":
        request.getfixturevalue("code_eval")
    tasks = _tasks(family)
    doc = _run(families, tasks, log_samples=True, confirm_run_unsafe_code=family == "humaneval")
    for task in tasks:
        got = {k: doc["results"][task].get(k) for k in EXPECTED[family]}
        assert got == pytest.approx(EXPECTED[family]), (task, doc["results"][task])
        assert doc["n-samples"][task]["effective"] == 2
        turns = doc["samples"][task][0]["malt"]["pipelines"][0]["turns"]
        assert list(turns) == list(ROLES)


def test_minerva_math_context_and_answer(families):
    """minerva_math's own 4-shot prompt reaches the generator; its process_results read the refiner's text."""
    [task, _] = _tasks("math")
    doc = _run(families, [task], log_samples=True)
    sample = doc["samples"][task][0]
    context = sample["arguments"][0][0]  # as simple_evaluate returns it
    assert context.count("Problem:") == 5 and context.endswith("What is $2+3$?\n\nSolution:")
    assert sample["target"] == "5" and sample["metrics"] == ["exact_match", "math_verify"]


def test_code_task_needs_the_opt_in(families, code_eval):
    with pytest.raises(TaskCodeError, match="runs the model's code: pass --confirm-run-unsafe-code"):
        EvalSpec(tasks=_tasks("humaneval")[0], include_path=str(families)).check()


def test_missing_nltk_data_is_one_line(families, tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setattr(nltk, "download", lambda *a, **k: False)  # offline: lm-eval's download attempt fails
    with pytest.raises(TaskCodeError) as err:
        EvalSpec(tasks=_tasks("ifeval")[0], include_path=str(families)).check()
    msg = str(err.value)
    assert "'punkt_tab'" in msg and "python -m nltk.downloader punkt_tab" in msg and "\n" not in msg


def _forget(monkeypatch, prefix):
    """Drop lm-eval's cached task modules under ``prefix`` so the task's code is imported again."""
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        monkeypatch.delitem(sys.modules, name)


def test_missing_extra_names_it(families, monkeypatch, nltk_data):
    """minerva_math under antlr 4.13 (lm-eval's assert) and ifeval without langdetect: one line, the extra."""
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda n: "4.13.2" if n == "antlr4-python3-runtime" else real(n))
    _forget(monkeypatch, "lm_eval.tasks.minerva_math")
    with pytest.raises(TaskCodeError, match=r"needs packages that are missing \(AssertionError: .*lm-eval\[math\]"):
        EvalSpec(tasks=_tasks("math")[0], include_path=str(families)).check()
    monkeypatch.setitem(sys.modules, "langdetect", None)
    _forget(monkeypatch, "lm_eval.tasks.ifeval")
    with pytest.raises(TaskCodeError, match=r"ModuleNotFoundError.*langdetect.*pip install 'lm-eval\[ifeval\]'"):
        EvalSpec(tasks=_tasks("ifeval")[0], include_path=str(families)).check()


def test_lm_eval_extra_reads_lm_evals_own_extras():
    assert lm_eval_extra("antlr4-python3-runtime==4.11 is required") == "math"
    assert lm_eval_extra("langdetect") == "ifeval" and lm_eval_extra("no such package") is None
    assert "package 'foo', which is not installed" in str(explain("t", ModuleNotFoundError("No module", name="foo")))
    assert str(explain("t", ValueError("bad\nyaml"))) == "task 't': its code does not load (ValueError: bad yaml)"


def test_every_family_has_a_task():
    assert set(FAMILY_TASKS) == set(EXPECTED)
