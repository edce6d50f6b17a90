"""Tree generation on a tiny model: shape, ids, resume after an interruption, torn writes."""

import json

from tests.conftest import malt_train

ARGS = [
    "--task",
    "malt_gsm8k",
    "--questions",
    3,
    "--branching",
    2,
    "--batch-size",
    1,
    "--max-new-tokens",
    5,
    "--temperature",
    0.7,
    "--seed",
    3,
]


def nodes(run):
    return [json.loads(line) for line in (run / "tree.jsonl").read_text().splitlines()]


def test_tree_shape_and_ids(tiny_model_dir, small_data, tmp_path):
    run = tmp_path / "run"
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", run, data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    tree = nodes(run)
    assert len(tree) == 3 * (2 + 4 + 8) and len({n["id"] for n in tree}) == len(tree)
    by_id = {n["id"]: n for n in tree}
    for n in tree:
        parent = by_id.get(n["parent"])
        assert (n["role"] == "generator") == (parent is None)
        if n["role"] == "refiner":
            assert n["reward"] in (0, 1) and parent["role"] == "verifier"
            assert parent["text"] in n["prompt"][-1]["content"]  # the refiner saw its critique
    # rerunning a finished run adds nothing
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", run, data=small_data)
    assert r.returncode == 0 and nodes(run) == tree


def test_resume_gives_the_same_tree(tiny_model_dir, small_data, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", full, data=small_data).returncode == 0
    r = malt_train(
        "generate",
        "--model",
        tiny_model_dir,
        *ARGS,
        "--out",
        cut,
        data=small_data,
        env_extra={"MALT_TEST_FAIL_AFTER_BATCHES": "1"},
    )
    assert r.returncode != 0 and len(nodes(cut)) == 14  # one batch (one question) survived
    with (cut / "tree.jsonl").open("a") as fh:
        fh.write('{"id": "torn')  # a kill in the middle of a write
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", cut, data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    got = nodes(cut)
    assert len({n["id"] for n in got}) == len(got) == 42
    key = lambda n: n["id"]  # noqa: E731
    assert sorted(got, key=key) == sorted(nodes(full), key=key)


def test_different_run_in_same_folder_is_refused(tiny_model_dir, small_data, tmp_path):
    run = tmp_path / "run"
    assert malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", run, data=small_data).returncode == 0
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS[:-2], "--seed", 4, "--out", run, data=small_data)
    assert r.returncode == 2 and "holds a different run" in r.stderr and "Traceback" not in r.stderr
