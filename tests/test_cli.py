"""malt-eval end to end on a tiny random Llama, and every bad input through the real CLI."""

import json

import pytest
import yaml

from tests.conftest import malt_eval, write_jsonl


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
    from harness.engines import build_engines

    engines, desc = build_engines(str(tiny_model_dir), ("generator", "verifier", "refiner"))
    assert len({id(e.backend) for e in engines.values()}) == 1
    assert desc["verifier"]["path"] == str(tiny_model_dir)


BAD_INPUTS = [
    (["--tasks", "malt_nope"], "unknown task 'malt_nope'"),
    (["--agents", "g,x"], "unknown agent letter 'x'"),
    (["--agents", ""], "empty agent list"),
    (["--agents", "v,r"], "bad agent list"),
    (["--votes", "0"], "--votes must be at least 1"),
    (["--subset", "5000"], "larger than malt_gsm8k's split"),
    (["--data-dir", "/nonexistent/data"], "data folder not found"),
    (["--model", "/nonexistent/model"], "model not found"),
    (["--generator-adapter", "/nonexistent/adapter"], "adapter not found"),
    (["--max-new-tokens", "critic=3"], "unknown role 'critic'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2(args, message, small_data, tiny_model_dir):
    model_args = [] if "--model" in args else ["--model", tiny_model_dir]
    r = malt_eval(*model_args, *args, env_data=small_data)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_malformed_data_row_names_file_and_line(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "gsm8k/test.jsonl", [{"question": "q", "answer": "#### 1"}, '{"question": '])
    r = malt_eval("--model", tiny_model_dir, "--limit", 1, env_data=tmp_path)
    assert r.returncode == 2 and "gsm8k/test.jsonl:2: malformed JSON" in r.stderr
    assert "Traceback" not in r.stderr


def test_prompts_file_missing_role(tmp_path, tiny_model_dir, small_data):
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump({"generator": {"user": "{{ question }}"}}))
    r = malt_eval("--model", tiny_model_dir, "--prompts", bad, env_data=small_data)
    assert r.returncode == 2 and "'verifier' is missing" in r.stderr
