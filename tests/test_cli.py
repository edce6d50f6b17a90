"""malt-eval end to end on a tiny random Llama, and every bad input through the real CLI."""

import json

import pytest

from tests.conftest import malt_eval


@pytest.mark.parametrize("agents", ["g", "g,v", "g,r", "g,v,r"])
def test_end_to_end_on_tiny_model(agents, tiny_model_dir, small_data, tmp_path):
    out = tmp_path / "out"
    r = malt_eval(
        "--model",
        tiny_model_dir,
        "--agents",
        agents,
        "--tasks",
        "malt_gsm8k,malt_csqa",
        "--limit",
        2,
        "--max-new-tokens",
        6,
        "--batch-size",
        4,
        "--output-path",
        out,
        "--log-samples",
        env_data=small_data,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "malt_gsm8k (limit)" in r.stdout and "malt_csqa (limit)" in r.stdout
    (res_file,) = out.glob("results_*.json")
    res = json.loads(res_file.read_text())
    assert set(res["results"]) == {"malt_gsm8k", "malt_csqa"}
    for key in ("results", "configs", "versions", "n-samples", "config"):
        assert key in res
    malt = res["malt"]
    n_roles = len(agents.split(","))
    assert malt["agents"] == agents and malt["limited"] is True
    assert malt["calls_per_question"]["malt_gsm8k"] == n_roles
    assert 0 < malt["tokens_per_question"]["malt_gsm8k"] <= 6 * n_roles
    assert len(malt["prompt_hash"]["malt_gsm8k"]) == 16
    samples = [json.loads(line) for line in (out / next(p.name for p in out.glob("samples_malt_gsm8k_*"))).open()]
    assert len(samples) == 2
    turns = samples[0]["samples"][0]["turns"]
    assert list(turns) == [{"g": "generator", "v": "verifier", "r": "refiner"}[a] for a in agents.split(",")]
    assert all(t["messages"] and isinstance(t["text"], str) for t in turns.values())


def test_votes_seeds_and_subset_on_tiny_model(tiny_model_dir, small_data):
    r = malt_eval(
        "--model",
        tiny_model_dir,
        "--agents",
        "g",
        "--votes",
        2,
        "--seeds",
        2,
        "--subset",
        3,
        "--max-new-tokens",
        4,
        env_data=small_data,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    row = next(line for line in r.stdout.splitlines() if line.startswith("| malt_gsm8k"))
    assert "(std)" in row and "|       2 |" in row  # two votes, std over two seeds


def test_shared_base_model_is_loaded_once(tiny_model_dir):
    from harness.inference.engines import build_engines

    engines, desc = build_engines(str(tiny_model_dir), ("generator", "verifier", "refiner"))
    assert len({id(e.backend) for e in engines.values()}) == 1
    assert desc["verifier"]["path"] == str(tiny_model_dir)


def test_flags_are_made_from_the_spec_fields():
    """An option is declared once: malt-eval's flags are the spec's fields, the suite's shared ones too."""
    from harness.spec import EvalSpec
    from malt_apps.eval_cli import main
    from malt_apps.suite import SHARED, SHARED_DEFAULTS, suite

    assert {p.name: p.default for p in main.params} == EvalSpec().options()
    spec_help = {p.name: p.help for p in main.params}
    shared = {p.name: p for p in suite.params if p.name in SHARED}
    assert set(shared) == set(SHARED) and all(shared[n].help == spec_help[n] for n in SHARED)
    assert {n: shared[n].default for n in SHARED_DEFAULTS} == SHARED_DEFAULTS
    assert EvalSpec.from_options({p.name: p.default for p in main.params}) == EvalSpec()
