"""End to end on a tiny model: generate -> label -> build -> sft -> dpo -> malt-eval --malt-run."""

import json

import pytest
import torch
from click.testing import CliRunner

from malt_apps.train_cli import main as malt_train_main
from tests.conftest import malt_eval, malt_train

FAST = ["--max-steps", 2, "--batch-size-train", 2, "--max-length", 256, "--sft-lr", 5e-2, "--dpo-lr", 5e-2]


def eval_run(run, out, data, *extra):
    """``malt-eval --malt-run RUN`` g,v,r on one question with 4 new tokens, results in ``out``."""
    args = ["--malt-run", run, *extra, "--agents", "g,v,r", "--limit", 1, "--max-new-tokens", 4]
    return malt_eval(*args, "--output-path", out, env_data=data)


def set_rewards(run, is_right) -> None:
    """Rewrite the leaf rewards of ``RUN/tree.jsonl``: 1 where ``is_right(node id)``, else 0."""
    tree = [json.loads(x) for x in (run / "tree.jsonl").read_text().splitlines()]
    for n in tree:
        if n["role"] == "refiner":
            n["reward"] = int(is_right(n["id"]))
    (run / "tree.jsonl").write_text("".join(json.dumps(n) + "\n" for n in tree))


def invoke(*args):
    r = CliRunner().invoke(malt_train_main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def logprob(model_dir, adapter, text="Final Answer: 42"):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return -model(ids, labels=ids).loss.item()


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("malt") / "run"
    r = malt_train(
        "generate",
        "--model",
        tiny_model_dir,
        "--questions",
        2,
        "--branching",
        2,
        "--max-new-tokens",
        6,
        "--out",
        run,
        data=shared_data,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # A random model never answers right: set rewards so every role has positives and sibling pairs
    # (g0: 3/4 positive, g1: 1/4 negative; g0/v0 positive vs g0/v1 at 0.5 negative; g0/v1's refiners split).
    right = ("g0/v0/r0", "g0/v0/r1", "g0/v1/r0", "g1/v1/r1")
    set_rewards(run, lambda nid: nid.endswith(right))
    invoke("label", run / "tree.jsonl", "--out", run / "labeled.jsonl")
    out = invoke("build", run / "labeled.jsonl", "--out", run / "data")
    assert "verifier:" in out and "DPO pairs" in out
    for role in ("generator", "verifier", "refiner"):
        invoke("sft", run, "--role", role, *FAST)
    for role in ("verifier", "refiner"):
        invoke("dpo", run, "--role", role, *FAST)
    return run


def test_adapters_exist_and_change_log_probs(trained_run, tiny_model_dir):
    counts = json.loads((trained_run / "data" / "counts.json").read_text())
    assert all(c["sft"] > 0 for c in counts.values()) and counts["refiner"]["dpo"] > 0
    base = logprob(tiny_model_dir, None)
    for sub, role in (("adapters-sft", "generator"), ("adapters", "verifier"), ("adapters", "refiner")):
        adapter = trained_run / sub / role
        assert (adapter / "adapter_config.json").is_file()
        assert logprob(tiny_model_dir, adapter) != pytest.approx(base, abs=1e-6)
    sft_v = logprob(tiny_model_dir, trained_run / "adapters-sft" / "verifier")
    assert logprob(tiny_model_dir, trained_run / "adapters" / "verifier") != pytest.approx(sft_v, abs=1e-6)


def test_malt_eval_uses_the_run(trained_run, small_data, tmp_path):
    for stage in ("final", "sft"):
        out = tmp_path / stage
        r = eval_run(trained_run, out, small_data, "--stage", stage)
        assert r.returncode == 0, r.stderr[-3000:]
        roles = json.loads(next(out.glob("results_*.json")).read_text())["malt"]["roles"]
        sub = "adapters" if stage == "final" else "adapters-sft"
        assert roles["verifier"]["adapter"] == str(trained_run / sub / "verifier")
        if stage == "final":
            assert "no final adapter for generator" in r.stderr  # generator DPO is opt-in (--generator-dpo)


def test_run_chains_steps_and_reports_empty_sets(tiny_model_dir, small_data, tmp_path):
    run = tmp_path / "run"
    args = [
        "run",
        "--model",
        tiny_model_dir,
        "--questions",
        1,
        "--branching",
        2,
        "--max-new-tokens",
        4,
        "--out",
        run,
        *FAST,
    ]
    r = malt_train(*args, data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((run / "run.json").read_text())
    assert summary["steps"]["sft-generator"] == "skipped (empty set)"  # a random model gets nothing right
    assert "malt-eval --malt-run" in r.stdout
    r = malt_train(*args, data=small_data)  # finished steps are not redone
    assert r.returncode == 0 and "skipped (empty set)" in r.stdout
    # nothing was trained: malt-eval --malt-run evaluates the base model in every role, and says so
    out = tmp_path / "eval"
    r = eval_run(run, out, small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trained no final adapter" in r.stderr and "the base model plays every role" in r.stderr
    roles = json.loads(next(out.glob("results_*.json")).read_text())["malt"]["roles"]
    assert not any(d["adapter"] for d in roles.values())
    (run / "run.json").unlink()  # an unfinished run is still an error
    r = malt_eval("--malt-run", run, "--agents", "g", "--limit", 1, env_data=small_data)
    assert r.returncode == 2 and "holds no adapters: run malt-train first" in r.stderr


def test_role_without_dpo_pairs_keeps_its_sft_adapter_as_final(tiny_model_dir, small_data, tmp_path):
    """Refiner: positives but no sibling pair (its one positive parent's children all right): final = SFT."""
    run = tmp_path / "run"
    gen = ["--model", tiny_model_dir, "--questions", 1, "--branching", 2, "--max-new-tokens", 4, "--out", run]
    assert malt_train("generate", *gen, data=small_data).returncode == 0
    set_rewards(run, lambda nid: "/g0/v0/" in nid)  # g0/v0's two refiners right, every other leaf wrong
    r = malt_train("run", *gen, *FAST, data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    counts = json.loads((run / "data" / "counts.json").read_text())
    assert counts["refiner"]["sft"] == 2 and counts["refiner"]["dpo"] == 0 and counts["verifier"]["dpo"] == 1
    steps = json.loads((run / "run.json").read_text())["steps"]
    assert steps["final-refiner"] == str(run / "adapters" / "refiner")  # not "skipped": MALT keeps the SFT refiner
    sft, final = run / "adapters-sft" / "refiner", run / "adapters" / "refiner"
    assert (final / "adapter_model.safetensors").read_bytes() == (sft / "adapter_model.safetensors").read_bytes()
    assert logprob(tiny_model_dir, str(final)) != logprob(tiny_model_dir, None)
    verifier = run / "adapters" / "verifier" / "adapter_model.safetensors"  # DPO-trained from its SFT adapter
    assert verifier.read_bytes() != (run / "adapters-sft" / "verifier" / "adapter_model.safetensors").read_bytes()


def test_options_are_the_configs_fields():
    """The training, labelling and building options are made from the config fields: a default lives in one
    place, and every option reaches its field (``--batch-size-train`` its own, not generation's ``--batch-size``)."""
    from collections import Counter

    from malt_apps.options import field_values
    from malt_apps.train_cli import step_configs
    from malt_train.build import BuildConfig
    from malt_train.label import LabelConfig
    from malt_train.train import DPOStepConfig, SFTStepConfig

    for name, cmd in malt_train_main.commands.items():
        assert [n for n, k in Counter(p.name for p in cmd.params).items() if k > 1] == [], name
    run = malt_train_main.commands["run"]
    assert step_configs(run.make_context("run", ["--out", "R"]).params) == (SFTStepConfig(), DPOStepConfig())
    given = ["--out", "R", "--sft-lr", "0.001", "--dpo-lr", "0.002", "--batch-size-train", "4", "--batch-size", "3"]
    given += ["--beta", "0.5", "--pooling", "local", "--pairs-per-parent", "2"]
    o = run.make_context("run", given).params
    sft, dpo = step_configs(o)
    assert (sft.learning_rate, dpo.learning_rate, sft.batch_size, dpo.batch_size, dpo.beta) == (1e-3, 2e-3, 4, 4, 0.5)
    assert o["batch_size"] == 3  # generation's
    assert LabelConfig(**field_values(LabelConfig, o)) == LabelConfig(pooling="local")
    assert BuildConfig(**field_values(BuildConfig, o)) == BuildConfig(pairs_per_parent=2)
    label = malt_train_main.commands["label"].make_context("label", ["T", "--out", "L"]).params
    assert LabelConfig(**field_values(LabelConfig, label)) == LabelConfig()
