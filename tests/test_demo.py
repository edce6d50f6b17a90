"""``demo.py`` (``make demo``) end to end: on a scripted backend whose roles are right or wrong by design,
and on the tiny random Llama; a second run reuses every evaluation and builds no model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import demo
from harness.inference.backends import register_backend
from harness.inference.backends.scripted import ScriptedBackend
from harness.tasks.grading import gold_answer
from harness.tasks.prompts import load_prompts

PROMPTS = load_prompts("malt_gsm8k")
ROLES = ("generator", "verifier", "refiner")


@register_backend("demo-scripted")
class DemoBackend(ScriptedBackend):
    """The generator is right on every other question of the data folder, the verifier states the
    gold answer and the refiner gives it: g,v,r turns each of the generator's misses into a hit."""

    remote = True  # the model is a name, nothing to resolve or load
    docs: list[dict] = []
    built = 0

    def __init__(self, model: str | None = None, **options) -> None:
        super().__init__(self.answer)
        type(self).built += 1
        self.model_id = model

    def answer(self, messages, i: int) -> str:
        index = next(k for k, d in enumerate(self.docs) if d["question"] in messages[-1]["content"])
        gold = int(gold_answer("malt_gsm8k", self.docs[index]))
        role = next(r for r in ROLES if PROMPTS.templates[r]["system"] == messages[0]["content"])
        if role == "generator" and index % 2:
            return f"A slip somewhere. Final Answer: {gold + 1}"
        return f"Checked step by step. Final Answer: {gold}"


def run_demo(*args) -> tuple[str, str]:
    r = CliRunner().invoke(demo.main, [str(a) for a in args])
    assert r.exit_code == 0, (r.output[-3000:], r.stderr[-3000:])
    return r.stdout, r.stderr


def no_engines(*args, **kwargs):
    raise AssertionError("a finished evaluation built a model")


def rows(out: str, first_cell: str) -> list[list[str]]:
    """The cells of every printed markdown row whose first cell is ``first_cell``, in order."""
    lines = [x for x in out.splitlines() if x.startswith(f"| {first_cell} ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def printed_path(out: str, prefix: str) -> Path:
    (line,) = [x for x in out.splitlines() if x.startswith(prefix)]
    return Path(line.rsplit(": ", 1)[1])


def stable(out: str) -> str:
    """The output without the sample log's timestamp (each run rewrites the results files)."""
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d", "TIME", out)


@pytest.fixture
def data(small_data, monkeypatch) -> Path:
    monkeypatch.setenv("MALT_DATA_DIR", str(small_data))
    lines = (small_data / "gsm8k" / "test.jsonl").read_text().splitlines()
    monkeypatch.setattr(DemoBackend, "docs", [json.loads(x) for x in lines])
    return small_data


def test_demo_prints_rows_turns_flips_and_paths_then_reuses_everything(data, tmp_path, monkeypatch):
    import harness.inference.engines

    args = ["--backend", "demo-scripted", "--model", "scripted", "--questions", 6, "--out", tmp_path / "demo"]
    monkeypatch.setattr(DemoBackend, "built", 0)
    out, _ = run_demo(*args)
    assert DemoBackend.built == 1  # g and g,v,r share one backend
    # both systems side by side (the board), then turn-wise: after G, after V (6 of 6 stated), after R, final
    assert rows(out, "scripted g")[0][:4] == ["scripted g", "g", "1", "50.0 ± 22.4 (n=6)"]
    board, turns = rows(out, "scripted g,v,r")
    assert board[:5] == ["scripted g,v,r", "g,v,r", "1", "100.0 ± 0.0 (n=6)", "3.0"]  # 3 LLM calls per question
    assert turns == ["scripted g,v,r", "malt_gsm8k", "6", "50.0", "100.0 (6/6 stated)", "100.0", "100.0", "3 / 0"]
    # answer flips from g to g,v,r on the same questions
    flips = {row[0]: row[1] for row in rows(out, "incorrect→correct") + rows(out, "correct→incorrect")}
    flips |= {row[0]: row[1] for row in rows(out, "correct→correct") + rows(out, "incorrect→incorrect")}
    assert flips == {
        "incorrect→correct": "3",
        "correct→incorrect": "0",
        "correct→correct": "3",
        "incorrect→incorrect": "0",
    }
    assert "B − A +50.0 points" in out
    html = printed_path(out, "HTML board")
    samples = printed_path(out, "What each role said")
    assert html.name == "leaderboard.html" and "<html" in html.read_text()[:200].lower()
    logged = [json.loads(x) for x in samples.read_text().splitlines()]
    assert len(logged) == 6 and all(set(s["answers_by_role"]) == {"generator", "verifier", "refiner"} for s in logged)

    # the second run: every evaluation is on record, no backend is built, the same output
    monkeypatch.setattr(DemoBackend, "built", 0)
    monkeypatch.setattr(harness.inference.engines, "build_engines", no_engines)
    again, err = run_demo(*args)
    assert DemoBackend.built == 0 and err.count("malt-eval: resuming") == 2
    assert stable(again) == stable(out)


def test_demo_on_the_tiny_model(tiny_model_dir, data, tmp_path, monkeypatch):
    import harness.inference.engines

    args = ["--model", tiny_model_dir, "--questions", 2, "--max-new-tokens", 4, "--out", tmp_path / "demo"]
    out, _ = run_demo(*args)
    name = tiny_model_dir.name
    assert rows(out, f"{name} g")[0][3].endswith("(n=2)") and rows(out, f"{name} g,v,r")[0][4] == "3.0"
    assert "after G" in out and "after V" in out and "after R" in out
    assert "incorrect→correct" in out and "McNemar" in out
    assert printed_path(out, "HTML board").is_file() and printed_path(out, "What each role said").is_file()
    monkeypatch.setattr(harness.inference.engines, "build_engines", no_engines)
    again, _ = run_demo(*args)
    assert stable(again) == stable(out)


def test_a_failing_evaluation_ends_the_demo_with_its_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("MALT_DATA_DIR", str(tmp_path / "no-data"))
    r = CliRunner().invoke(demo.main, ["--out", str(tmp_path / "demo")])
    assert r.exit_code == 2 and "malt-eval: error: " in r.stderr and "== Both systems" not in r.stdout


@pytest.mark.parametrize("option", [["--questions", "0"], ["--max-new-tokens", "x"], ["--bogus"]])
def test_a_bad_option_is_one_line_and_exit_2(option, tmp_path):
    r = CliRunner().invoke(demo.main, [*option, "--out", str(tmp_path / "demo")])
    assert r.exit_code == 2 and r.stderr.startswith("demo.py: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == "" and not (tmp_path / "demo").exists()


@pytest.mark.parametrize(("native_bf16", "questions"), [(True, 10), (False, 4)])
def test_the_first_run_is_sized_for_the_processor_and_estimated_before_it_starts(
    native_bf16, questions, tmp_path, monkeypatch
):
    import harness.inference.backends.device as device

    monkeypatch.setattr(device, "has_cuda", lambda: False)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda cpuinfo=None: native_bf16)
    assert demo.budget().questions == questions
    monkeypatch.setenv("MALT_DATA_DIR", str(tmp_path / "no-data"))  # stops at the first evaluation
    r = CliRunner().invoke(demo.main, ["--out", str(tmp_path / "demo")])
    assert f"The same {questions} GSM8K test questions" in r.stdout
    kind = "native bf16" if native_bf16 else "fp32"
    minutes = re.search(r"Estimate on this processor \(([^)]*)\)[^:]*: about (\d+) min", r.stdout)
    assert minutes and minutes.group(1).startswith(kind) and int(minutes.group(2)) >= 1, r.stdout
