"""Models that misbehave: the pipeline finishes, grades the question wrong and logs why."""

from __future__ import annotations

import json

import pytest

from harness.inference.backends.base import Completion, SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.run.evaluate import run_task
from harness.solver.protocol import EvalConfig
from harness.solver.steps import SolveContext
from harness.tasks.prompts import load_prompts
from tests.conftest import malt_eval

DOCS = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(4)]
ROLES = ("generator", "verifier", "refiner")


def _ctx(responder) -> SolveContext:
    be = ScriptedBackend(responder)
    return SolveContext(
        {"malt_gsm8k": load_prompts("malt_gsm8k")},
        {r: RoleEngine(be) for r in ROLES},
        dict.fromkeys(ROLES, SamplingParams(16)),
    )


def _repeat_question(messages, i):
    return messages[-1]["content"]


MISBEHAVIOURS = {
    "empty": (lambda m, i: "", "empty output"),
    "whitespace": (lambda m, i: " \n\t \n", "whitespace-only output"),
    "never-stops": (lambda m, i: Completion("and so on " * 8, 16, truncated=True), "hit the token limit"),
    "repeats-question": (_repeat_question, "no answer found"),
    "huge": (lambda m, i: "blah " * 50_000, "no answer found"),
}


@pytest.mark.parametrize("kind", MISBEHAVIOURS)
def test_pipeline_finishes_grades_wrong_and_logs_why(kind):
    responder, issue = MISBEHAVIOURS[kind]
    result = run_task("malt_gsm8k", DOCS, _ctx(responder), EvalConfig(roles=ROLES, log_samples=True, batch_size=2))
    assert result.acc == 0.0 and len(result.samples) == len(DOCS)
    for row in result.samples:
        assert row["answer"] is None and row["acc"] == 0.0
        turns = row["samples"][0]["turns"]
        assert set(turns) == set(ROLES)
        assert all(any(issue in i for i in t["issues"]) for t in turns.values()), turns["generator"]["issues"]
        json.dumps(row)  # the sample log stays writable


def test_a_good_turn_has_no_issues():
    result = run_task(
        "malt_gsm8k", DOCS[:1], _ctx(lambda m, i: "Final Answer: 1"), EvalConfig(roles=ROLES, log_samples=True)
    )
    turns = result.samples[0]["samples"][0]["turns"]
    assert all(t["issues"] == [] for t in turns.values())


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory, tiny_model_dir):
    """The tiny Llama with a 96-token context: every prompt of the pipeline overflows it."""
    out = tmp_path_factory.mktemp("short-ctx")
    for f in tiny_model_dir.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "max_position_embeddings": 96}))
    return out


def test_prompts_longer_than_the_context_are_cut_and_counted(short_context_model, small_data, tmp_path):
    out = tmp_path / "out"
    r = malt_eval(
        "--model", short_context_model, "--agents", "g,v,r", "--tasks", "malt_gsm8k", "--limit", 2,
        "--max-new-tokens", 24, "--batch-size", 2, "--output-path", out, "--log-samples",
        env_data=small_data,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "prompts did not fit the model's context" in r.stdout
    (res,) = out.glob("results_*.json")
    doc = json.loads(res.read_text())
    assert doc["malt"]["prompts_truncated"]["malt_gsm8k"] == 6  # 2 questions x 3 roles
    (samples,) = out.glob("samples_malt_gsm8k_*.jsonl")
    for line in samples.open():
        for turn in json.loads(line)["samples"][0]["turns"].values():
            assert turn["prompt_truncated"] and any("prompt cut" in i for i in turn["issues"])
            assert turn["n_tokens"] <= 24


def test_hf_backend_keeps_the_prompt_tail(short_context_model):
    from harness.inference.backends.hf import HFBackend

    be = HFBackend(str(short_context_model), batch_size=2)
    assert be.context == 96
    long = [{"role": "user", "content": "word " * 400}]
    short = [{"role": "user", "content": "hi"}]
    (c_long,), (c_short,) = be.generate([long, short], SamplingParams(max_new_tokens=200))
    assert c_long.prompt_truncated and not c_short.prompt_truncated
    assert c_long.n_tokens <= 48 and c_short.n_tokens <= 48  # max_new_tokens capped at half the context
