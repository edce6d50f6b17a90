"""Sharded tree generation: shards merged equal the unsharded run; merge refuses what does not fit."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import malt_train

# as in test_generate: 3 questions, branching 2, one question per batch, sampled at temperature 0.7
ARGS = ["--task", "malt_gsm8k", "--questions", 3, "--branching", 2, "--batch-size", 1]
ARGS += ["--max-new-tokens", 5, "--temperature", 0.7, "--seed", 3]


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory, shared_data):
    """An unsharded generate run and its two shards (1/2: one batch, 2/2: two batches)."""
    root = tmp_path_factory.mktemp("shards")
    data = root / "data"
    (data / "gsm8k").mkdir(parents=True)
    with (shared_data / "gsm8k" / "train.jsonl").open() as fh:  # 6 training questions
        (data / "gsm8k" / "train.jsonl").write_text("".join(next(fh) for _ in range(6)))
    out = {}
    for name, extra in (("full", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        r = malt_train("generate", "--model", tiny_model_dir, *ARGS, *extra, "--out", root / name, data=data)
        assert r.returncode == 0, r.stderr[-3000:]
        out[name] = root / name
    out["data"] = data
    return out


def test_shard_ranges_cover_every_batch_once():
    from malt_train.shard import shard_batches

    batches = [[i] for i in range(7)]
    for k in (1, 2, 3, 7, 9):
        got = [b for i in range(1, k + 1) for b in shard_batches(batches, f"{i}/{k}")]
        assert got == list(enumerate(batches))  # in order, global batch numbers kept
    assert shard_batches(batches, None) == list(enumerate(batches))


def test_merged_shards_equal_the_unsharded_run(runs, tiny_model_dir, tmp_path):
    lines = {k: (runs[k] / "tree.jsonl").read_text().splitlines() for k in ("full", "s1", "s2")}
    assert len(lines["s1"]) == 14 and len(lines["s2"]) == 28
    merged = tmp_path / "merged"
    r = malt_train("merge", runs["s2"], runs["s1"], "--out", merged)  # any order: written in shard order
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3 questions, 42 nodes" in r.stdout
    assert (merged / "tree.jsonl").read_text() == (runs["full"] / "tree.jsonl").read_text()
    cfg = json.loads((merged / "generate.json").read_text())
    assert cfg["shard"] is None and cfg["seed"] == 3 and len(cfg["merged_from"]) == 2
    r = malt_train("label", merged / "tree.jsonl", "--out", merged / "labeled.jsonl")
    assert r.returncode == 0, r.stderr[-2000:]
    # the merged folder reads like the unsharded run: generating it again adds nothing
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", merged, data=runs["data"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert (merged / "tree.jsonl").read_text() == (runs["full"] / "tree.jsonl").read_text()


def test_merge_notes_missing_shards(runs, tmp_path):
    r = malt_train("merge", runs["s2"], "--out", tmp_path / "m")
    assert r.returncode == 0 and "shards 1/2 are not in the merge" in r.stderr


def _refused(r, text: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("malt-train: error:") and text in err[0], err


def test_merge_refuses_runs_that_do_not_fit(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs["s2"], other)
    cfg = json.loads((other / "generate.json").read_text())
    (other / "generate.json").write_text(json.dumps({**cfg, "seed": 4}))
    _refused(malt_train("merge", runs["s1"], other, "--out", tmp_path / "a"), "differs in: seed")
    _refused(malt_train("merge", runs["full"], runs["s1"], "--out", tmp_path / "b"), "is in both")
    cut = tmp_path / "cut"
    shutil.copytree(runs["s1"], cut)
    rows = (cut / "tree.jsonl").read_text().splitlines(keepends=True)
    (cut / "tree.jsonl").write_text("".join(rows[:-1]))
    _refused(malt_train("merge", cut, runs["s2"], "--out", tmp_path / "c"), "has 13 of 14 nodes")
    _refused(malt_train("merge", runs["s1"], tmp_path / "nothing", "--out", tmp_path / "d"), "not a malt-train")
    _refused(malt_train("merge", runs["s1"], "--out", runs["full"]), "already holds a tree")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_shard_is_refused(tiny_model_dir, tmp_path):
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS, "--shard", "3/2", "--out", tmp_path / "x")
    _refused(r, "--shard 3/2: need 1 <= i <= k")
