"""``malt-train run`` keys every step on its settings and input digests (RUN/steps.json), like DVC.

One finished run on the tiny model (rewards set so that every role trains) is copied for each test; a copy
reuses everything (records hold relative paths and content digests), and each test reruns it with one change.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from malt_apps.train_cli import main as malt_train_main
from tests.test_train import FAST, set_rewards

ROLES = ("generator", "verifier", "refiner")
# g0: 3/4 leaves right (0.75), g1: 1/4; verifiers 1.0, 0.5 (g0) and 0.0, 0.5 (g1). At threshold 0.5 g0 and
# g0/v0 are the positives; at 0.2 g1, g0/v1 and g1/v1 are too: the generator's and verifier's sets change,
# the refiner's (0/1 rewards) do not.
RIGHT = ("g0/v0/r0", "g0/v0/r1", "g0/v1/r0", "g1/v1/r1")


def gen_args(model: Path, data: Path, run: Path) -> list:
    sizes = ["--questions", 1, "--branching", 2, "--max-new-tokens", 4]
    return ["--model", model, "--data-dir", data, *sizes, "--out", run]


def invoke(*args) -> str:
    r = CliRunner().invoke(malt_train_main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def base(tiny_model_dir, tmp_path_factory, shared_data):
    """A finished ``malt-train run`` (threshold 0.5) whose SFT and final adapters are all trained."""
    root = tmp_path_factory.mktemp("steps")
    data = root / "data"
    (data / "gsm8k").mkdir(parents=True)
    with (shared_data / "gsm8k" / "train.jsonl").open() as fh:
        (data / "gsm8k" / "train.jsonl").write_text("".join(next(fh) for _ in range(6)))
    run = root / "run"
    invoke("generate", *gen_args(tiny_model_dir, data, run))
    set_rewards(run, lambda nid: nid.endswith(RIGHT))
    out = invoke("run", *gen_args(tiny_model_dir, data, run), *FAST, "--generator-dpo")
    assert ": rerun (" not in out  # a first run has nothing to redo
    return {"run": run, "data": data, "model": tiny_model_dir}


@pytest.fixture
def copy(base, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)  # copy2: the files keep their times
    return run


def rerun(base, run: Path, *extra) -> str:
    return invoke("run", *gen_args(base["model"], base["data"], run), *FAST, "--generator-dpo", *extra)


def snapshot(run: Path) -> dict[str, tuple[int, bytes]]:
    """Every output file (not the records) by path: modification time and bytes."""
    skip = {"steps.json", "run.json", ".malt.lock"}
    return {
        str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def no_work(monkeypatch) -> None:
    """Building a backend, growing a tree or training fails the test."""

    def refuse(*a, **k):
        raise AssertionError("recomputed")

    for target in ("harness.spec.EngineSpec.load_engines", "malt_train.generate.generate"):
        monkeypatch.setattr(target, refuse)
    for name in ("train_sft", "train_dpo"):
        monkeypatch.setattr(f"malt_train.train.{name}", refuse)


def weights(run: Path, stage: str, role: str) -> bytes:
    return (run / stage / role / "adapter_model.safetensors").read_bytes()


def test_identical_rerun_recomputes_nothing(base, copy, monkeypatch):
    before = snapshot(copy)
    assert {f"{s}/{r}/adapter_model.safetensors" for s in ("adapters-sft", "adapters") for r in ROLES} <= set(before)
    no_work(monkeypatch)
    out = rerun(base, copy)
    assert changed(before, snapshot(copy)) == set()
    steps = ["tree", "label", "build", *(f"{k}-{r}" for k in ("sft", "final") for r in ROLES)]
    assert all(f"{s}: unchanged, reused" in out for s in steps), out
    assert ": rerun (" not in out


def test_another_threshold_redoes_labels_sets_and_adapters(base, copy):
    before = snapshot(copy)
    old = {(s, r): weights(copy, s, r) for s in ("adapters-sft", "adapters") for r in ROLES}
    out = rerun(base, copy, "--threshold", 0.2)
    lines = [x for x in out.splitlines() if ": rerun (" in x]
    assert lines[0] == "label: rerun (threshold 0.5 -> 0.2)", out
    assert "build: rerun (labeled.jsonl changed)" in lines
    diff = changed(before, snapshot(copy))
    assert "tree.jsonl" not in diff and "generate.json" not in diff
    assert {"labeled.jsonl", "data/generator/sft.jsonl", "data/verifier/sft.jsonl", "data/verifier/dpo.jsonl"} <= diff
    for role in ("generator", "verifier"):  # their sets changed: SFT and DPO ran again
        assert f"sft-{role}: rerun (data/{role}/sft.jsonl changed)" in lines
        for stage in ("adapters-sft", "adapters"):
            assert weights(copy, stage, role) != old[stage, role]
    # the refiner's sets are the same bytes (rewritten by build): its adapters are kept untouched
    assert "sft-refiner: unchanged, reused" in out and "final-refiner: unchanged, reused" in out
    assert not any(k.startswith(("adapters-sft/refiner", "adapters/refiner")) for k in diff)
    summary = json.loads((copy / "run.json").read_text())
    assert summary["config"]["threshold"] == 0.2 and summary["config"]["pooling"] == "global"
    assert summary["counts"]["generator"]["sft"] == 2 and summary["counts"]["verifier"]["sft"] == 3
    steps = json.loads((copy / "steps.json").read_text())["steps"]
    assert steps["label"]["settings"] == {"threshold": 0.2, "pooling": "global"}


def test_another_sft_setting_reruns_training_only(base, copy, monkeypatch):
    before = snapshot(copy)
    old = {(s, r): weights(copy, s, r) for s in ("adapters-sft", "adapters") for r in ROLES}
    monkeypatch.setattr("harness.spec.EngineSpec.load_engines", lambda *a, **k: pytest.fail("a backend was built"))
    out = rerun(base, copy, "--sft-lr", 0.01)
    for step in ("tree", "label", "build"):
        assert f"{step}: unchanged, reused" in out
    diff = changed(before, snapshot(copy))
    assert all(k.startswith(("adapters", "work/")) for k in diff), diff
    for role in ROLES:
        assert f"sft-{role}: rerun (learning_rate 0.05 -> 0.01)" in out
        assert f"final-{role}: rerun (adapters-sft/{role} changed)" in out  # DPO starts from the new SFT adapter
        assert weights(copy, "adapters-sft", role) != old["adapters-sft", role]
        assert weights(copy, "adapters", role) != old["adapters", role]
    config = json.loads((copy / "run.json").read_text())["config"]
    assert config["sft"]["learning_rate"] == 0.01 and config["dpo"]["learning_rate"] == 0.05
    assert config["threshold"] == 0.5 and config["dpo_roles"] == list(ROLES)


def test_an_output_edited_by_hand_is_moved_aside_not_deleted(base, copy, monkeypatch):
    labeled = copy / "labeled.jsonl"
    original = labeled.read_text()
    labeled.write_text(original.replace('"label": true', '"label": false'))
    no_work(monkeypatch)
    out = rerun(base, copy)
    assert "label: rerun (labeled.jsonl changed since it was written)" in out
    (kept,) = (copy / "replaced").glob("*/labeled.jsonl")
    assert '"label": true' not in kept.read_text() and labeled.read_text() == original
    assert "build: unchanged, reused" in out  # the labels came out as before: nothing after them reruns


def test_a_tree_of_other_settings_or_questions_is_moved_aside_and_grown_again(base, tmp_path):
    """The random model gets nothing right, so nothing trains: the tree step alone is at stake."""
    data = tmp_path / "data"
    shutil.copytree(base["data"], data)
    run = tmp_path / "run"
    args = [*gen_args(base["model"], data, run), *FAST]
    invoke("run", *args)
    first = json.loads((run / "generate.json").read_text())
    assert first["data"] and first["weights"] and first["prompts"]  # what the tree keys on, besides its options
    out = invoke("run", *args, "--temperature", 0.9)
    assert "tree: rerun (temperature 0.3 -> 0.9); the earlier tree is in " in out
    (kept,) = (run / "replaced").glob("*/generate.json")
    assert json.loads(kept.read_text()) == first and (kept.parent / "tree.jsonl").is_file()
    assert json.loads((run / "generate.json").read_text())["temperature"] == 0.9
    rows = (data / "gsm8k" / "train.jsonl").read_text().splitlines(keepends=True)
    (data / "gsm8k" / "train.jsonl").write_text("".join(reversed(rows)))  # other questions drawn
    out = invoke("run", *args, "--temperature", 0.9)
    assert "tree: rerun (data changed)" in out
    assert len(list((run / "replaced").glob("*/tree.jsonl"))) == 2


def _shard(folder: Path, shard: str, qid: int, data: str) -> Path:
    """A finished one-question shard (branching 1) whose record names ``data`` as its questions' digest."""
    nodes = [
        {"id": f"q:{qid}/g0", "parent": None, "role": "generator"},
        {"id": f"q:{qid}/g0/v0", "parent": f"q:{qid}/g0", "role": "verifier"},
        {"id": f"q:{qid}/g0/v0/r0", "parent": f"q:{qid}/g0/v0", "role": "refiner", "reward": 1},
    ]
    folder.mkdir()
    rows = [{**n, "question_id": f"q:{qid}", "text": "t", "prompt": []} for n in nodes]
    (folder / "tree.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = {"model": "m", "branching": 1, "seed": 0, "shard": shard, "data": data, "weights": "w"}
    (folder / "generate.json").write_text(json.dumps(record))
    return folder


def test_shards_of_other_questions_do_not_merge(tmp_path):
    from harness.core.errors import MaltError
    from malt_train.shard import merge_runs

    one = _shard(tmp_path / "s1", "1/2", 0, "digest-a")
    assert merge_runs([one, _shard(tmp_path / "s2", "2/2", 1, "digest-a")], tmp_path / "ok")["questions"] == 2
    with pytest.raises(MaltError, match="differs in: data"):
        merge_runs([one, _shard(tmp_path / "s3", "2/2", 1, "digest-b")], tmp_path / "bad")
