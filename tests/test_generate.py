"""Tree generation on a tiny model: shape, ids, resume after an interruption, torn writes."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, malt_train

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
    assert "3/3" in r.stderr  # the progress bar counts the questions already done


def test_killed_generate_resumes_to_the_same_tree(tiny_model_dir, small_data, tmp_path):
    """kill -9 after the first batch, plus a torn write: the rerun ends with the uninterrupted tree."""
    args = [*ARGS[:3], 6, *ARGS[4:]]  # 6 questions, one per batch
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert malt_train("generate", "--model", tiny_model_dir, *args, "--out", full, data=small_data).returncode == 0
    env = dict(os.environ, MALT_DATA_DIR=str(small_data))
    cmd = [sys.executable, "-m", "malt_apps.train_cli", "generate", "--model", str(tiny_model_dir), *map(str, args)]
    proc = subprocess.Popen(
        [*cmd, "--out", str(cut)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    tree = cut / "tree.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (tree.exists() and tree.stat().st_size):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode != 0, "generation finished before it could be killed"
    assert 0 < len(tree.read_text().splitlines()) < 6 * 14
    with tree.open("a") as fh:
        fh.write('{"id": "torn')  # a kill in the middle of a write
    r = malt_train("generate", "--model", tiny_model_dir, *args, "--out", cut, data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "took over the stale lock" in r.stderr
    got = nodes(cut)
    assert len({n["id"] for n in got}) == len(got) == 6 * 14
    key = lambda n: n["id"]  # noqa: E731
    assert sorted(got, key=key) == sorted(nodes(full), key=key)


def test_different_run_in_same_folder_is_refused(tiny_model_dir, small_data, tmp_path):
    run = tmp_path / "run"
    assert malt_train("generate", "--model", tiny_model_dir, *ARGS, "--out", run, data=small_data).returncode == 0
    r = malt_train("generate", "--model", tiny_model_dir, *ARGS[:-2], "--seed", 4, "--out", run, data=small_data)
    assert r.returncode == 2 and "holds a different run" in r.stderr and "Traceback" not in r.stderr


def test_progress_moves_after_every_stage_with_the_runs_token_rate(tmp_path, monkeypatch):
    """Nodes and tokens/s are reported per stage (a CPU batch can take most of an hour); questions per batch."""
    from harness.inference.backends.base import Completion
    from harness.inference.backends.scripted import ScriptedBackend
    from harness.inference.engines import RoleEngine
    from harness.solver.steps import SolveContext
    from harness.tasks.prompts import ROLES, load_prompts
    from malt_train.generate import GenerateConfig, generate

    docs = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(4)]
    be = ScriptedBackend(lambda msgs, i: Completion("Final Answer: 1", 10))
    ctx = SolveContext({"malt_gsm8k": load_prompts("malt_gsm8k")}, {r: RoleEngine(be) for r in ROLES}, {})
    clock = iter(range(100))  # the run's clock: 0 at the start, then one second per reading
    monkeypatch.setattr("malt_train.generate.time", type("Clock", (), {"time": staticmethod(lambda: next(clock))}))
    calls = []
    cfg = GenerateConfig(questions=3, branching=2, batch_size=2, max_new_tokens=8)
    generate(tmp_path / "run", docs, ctx, cfg, "m", lambda q, n, tps: calls.append((q, n, tps)))
    assert [(q, n) for q, n, _ in calls] == [(0, 4), (0, 8), (2, 16), (0, 2), (0, 4), (1, 8)]
    nodes = [4, 8, 16, 2, 4, 8]  # 10 tokens each; the k-th report comes k seconds after the start
    assert [tps for _, _, tps in calls] == [10 * sum(nodes[: k + 1]) / (k + 1) for k in range(6)]
    assert sum(n for _, n, _ in calls) == len((tmp_path / "run" / "tree.jsonl").read_text().splitlines())
