"""``malt-train sft|dpo`` on 2 processes under ``accelerate launch`` (CPU, gloo) on the tiny model.

accelerate 1.15's ``--cpu`` flag starts a single process (its multi-CPU path is mpirun), so these tests
use its torchrun launcher (``--multi_gpu``, or ``--num-processes 2``, which passes it): on a machine
without GPUs the trainer's ``use_cpu`` makes the two workers a gloo process group.

With the same effective batch (2 = 1 per process x 2 processes = 2 accumulated micro batches in one),
the same seed and LoRA dropout 0, two processes see the same examples per optimizer step as one and
average the same gradients, so the adapters agree to float32 rounding: the tolerance (1e-5 absolute)
covers the different order of the sums (all-reduce vs accumulation); they came out bitwise equal here.
LoRA dropout > 0 could not match: each process draws its own masks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from malt_apps.train_cli import main as malt_train_main
from tests.conftest import REPO, malt_train

ROLE = "verifier"
FAST = ["--max-length", 128, "--batch-size-train", 2, "--lora-dropout", 0, "--sft-lr", 5e-2, "--dpo-lr", 5e-2]
TWO = ["--multi_gpu", "--num_processes", "2"]


def make_run(root: Path, model: Path, n: int = 8) -> Path:
    """A run folder with ``n`` SFT examples and ``n`` DPO pairs for the verifier."""
    sft = [
        {
            "prompt": [{"role": "user", "content": f"Check: {i} + {i} = {2 * i}"}],
            "completion": [{"role": "assistant", "content": f"{i} + {i} = {2 * i} is right. Final Answer: {2 * i}"}],
        }
        for i in range(n)
    ]
    dpo = [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": [{"role": "assistant", "content": f"No. {i}"}]}
        for i, r in enumerate(sft)
    ]
    data = root / "data" / ROLE
    data.mkdir(parents=True)
    (data / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    (data / "dpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dpo))
    (root / "generate.json").write_text(json.dumps({"model": str(model)}))
    return root


def invoke(*args) -> str:
    """``malt-train ARGS`` in this process on one torch thread, like each launched worker (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = CliRunner().invoke(malt_train_main, [str(a) for a in args], catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    return r.output


def launch(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    """``accelerate launch ARGS`` from the repository, one torch thread per process."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "adapter_model.safetensors")


def assert_same(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5, rtol=0) for k in wa)
    assert any(wa[k].abs().max() > 1e-3 for k in wa if "lora_B" in k)  # trained: LoRA B starts at zero


def written_once(run: Path, sub: str, stdout: str, step: str) -> None:
    adapter = run / sub / ROLE
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "malt_step.json",
    ]
    assert json.loads((adapter / "malt_step.json").read_text())["processes"] == 2
    assert stdout.count(f"{step} {ROLE}: {adapter}") == 1  # only the main process places and reports it
    assert sorted(p.name for p in (run / "work" / f"{step}-{ROLE}").iterdir()) == ["adapter"]  # no checkpoints left


def test_accelerate_two_processes_match_one(tiny_model_dir, tmp_path):
    one, two = make_run(tmp_path / "one", tiny_model_dir), make_run(tmp_path / "two", tiny_model_dir)
    steps = ["--max-steps", 2]
    invoke("sft", one, "--role", ROLE, *steps, *FAST)
    invoke("dpo", one, "--role", ROLE, *steps, *FAST)

    # accelerate launch -m malt_apps.train_cli, as a user types it
    r = launch(*TWO, "-m", "malt_apps.train_cli", "sft", two, "--role", ROLE, *steps, *FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    written_once(two, "adapters-sft", r.stdout, "sft")
    assert_same(one / "adapters-sft" / ROLE, two / "adapters-sft" / ROLE)

    # malt-train dpo --num-processes 2 launches it itself
    r = malt_train("dpo", two, "--role", ROLE, *steps, *FAST, "--num-processes", 2, env_extra={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    written_once(two, "adapters", r.stdout, "dpo")
    assert_same(one / "adapters" / ROLE, two / "adapters" / ROLE)
    sft, dpo = weights(two / "adapters-sft" / ROLE), weights(two / "adapters" / ROLE)
    assert any(not torch.equal(sft[k], dpo[k]) for k in sft)  # DPO started from the SFT adapter and moved it


def _worker(parent: subprocess.Popen, rank: int) -> psutil.Process | None:
    for p in psutil.Process(parent.pid).children(recursive=True):
        try:
            if p.environ().get("RANK") == str(rank) and "malt_apps.train_cli" in p.cmdline():
                return p
        except psutil.Error:
            continue
    return None


def test_accelerate_worker_killed_then_rerun_resumes(tiny_model_dir, tmp_path):
    """kill -9 of one of two workers mid-training; the same command again resumes from the last
    complete checkpoint and ends where an uninterrupted run ends."""
    args = ["--role", ROLE, "--max-steps", 12, "--save-steps", 1, *FAST]
    ref = make_run(tmp_path / "ref", tiny_model_dir)
    invoke("sft", ref, *args)

    run = make_run(tmp_path / "run", tiny_model_dir)
    cmd = [sys.executable, "-m", "malt_apps.train_cli", "sft", str(run), *map(str, args), "--num-processes", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = (tmp_path / "killed.log").open("w+")  # a file, not a pipe nobody reads while training runs
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    ckpt = run / "work" / f"sft-{ROLE}" / "checkpoints"
    deadline = time.time() + 300
    while (
        time.time() < deadline and proc.poll() is None and not (ckpt / "checkpoint-3" / "trainer_state.json").exists()
    ):
        time.sleep(0.01)
    worker = _worker(proc, 1)
    assert worker is not None, "no rank-1 worker found"
    worker.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    log.close()
    err = (tmp_path / "killed.log").read_text()
    assert proc.returncode == 2, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("malt-train: error: accelerate launch of `sft --role verifier`")
    assert not (run / "adapters-sft" / ROLE).exists()
    assert not (run / ".malt.lock").exists()  # the launching process released the lock
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(run) in (p.info["cmdline"] or [])]  # no orphan

    r = malt_train("sft", run, *args, "--num-processes", 2, env_extra={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = [line for line in r.stderr.splitlines() if "resuming training from" in line]
    assert len(resumed) == 1 and int(resumed[0].rsplit("-", 1)[1]) >= 3
    assert_same(ref / "adapters-sft" / ROLE, run / "adapters-sft" / ROLE)


def test_accelerate_two_launches_on_one_run_are_refused(tiny_model_dir, tmp_path):
    run = make_run(tmp_path, tiny_model_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / ".malt.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": holder.pid}))
        r = malt_train("sft", run, "--role", ROLE, "--num-processes", 2)  # the launching process locks
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [
            f"malt-train: error: {run} is in use by another malt-train (pid {holder.pid}); "
            "wait for it or use another output folder"
        ]
        r = launch(*TWO, "-m", "malt_apps.train_cli", "sft", run, "--role", ROLE)  # rank 0 locks, both stop
        assert r.returncode != 0 and r.stderr.count("is in use by another malt-train") == 1
        assert "exitcode  : 2" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "work").exists() and not (run / "adapters-sft").exists()


def one_line_error(*args) -> str:
    r = CliRunner().invoke(malt_train_main, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("malt-train: error: "), r.output
    return lines[0]


def test_accelerate_launch_errors_are_one_line(tiny_model_dir, tmp_path):
    run = make_run(tmp_path / "run", tiny_model_dir, n=3)
    assert "has 3 example(s) for 4 processes: launch at most 3" in one_line_error(
        "sft", run, "--role", ROLE, "--num-processes", 4, "--batch-size-train", 4
    )
    assert "cannot be split into --micro-batch-size 1 x 3 processes: use a multiple of 3" in one_line_error(
        "dpo", run, "--role", ROLE, "--num-processes", 3
    )
    assert "accelerate config not found" in one_line_error("sft", run, "--role", ROLE, "--accelerate-config", "x.yaml")
    zero3 = REPO / "configs" / "accelerate" / "deepspeed_zero3.yaml"
    fsdp = REPO / "configs" / "accelerate" / "fsdp.yaml"
    if importlib_missing("deepspeed"):
        msg = one_line_error("sft", run, "--role", ROLE, "--accelerate-config", zero3)
        assert "asks for DEEPSPEED, but deepspeed is not installed (pip install deepspeed)" in msg
    if importlib_missing("torch.distributed.fsdp"):
        assert "asks for FSDP" in one_line_error("sft", run, "--role", ROLE, "--accelerate-config", fsdp)
    assert "runs once, not under accelerate launch" in one_line_error_env("run", "--out", run)
    assert not (run / "work").exists() and not (run / ".malt.lock").exists()  # nothing started, nothing lost


def importlib_missing(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def one_line_error_env(*args) -> str:
    """A command as one of two launched workers would run it (rank 0 of 2)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORLD_SIZE", "2")
        mp.setenv("RANK", "0")
        return one_line_error(*args)


def test_accelerate_launch_passes_the_training_options_on(tmp_path):
    """``run --num-processes 2`` launches each step with its training options, and only those; the worker
    parses them back into the same step configurations."""
    from malt_apps.train_cli import launch_for, step_configs

    given = ["--out", tmp_path, "--num-processes", 2, "--lora-rank", 4, "--max-steps", 3, "--task", "malt_math"]
    parent = malt_train_main.commands["run"].make_context("run", [str(a) for a in given])
    cmd = launch_for(parent.params).command("dpo", tmp_path, "refiner", "M")
    assert cmd[:6] == [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    assert cmd[6:14] == ["-m", "malt_apps.train_cli", "dpo", str(tmp_path), "--role", "refiner", "--model", "M"]
    opts = dict(zip(cmd[14::2], cmd[15::2], strict=True))  # the training options all take a value
    assert opts["--lora-rank"] == "4" and opts["--max-steps"] == "3" and opts["--beta"] == "0.2"
    assert not {"--task", "--num-processes", "--accelerate-config", "--out"} & set(opts)
    worker = malt_train_main.commands["dpo"].make_context("dpo", cmd[9:])
    assert step_configs(worker.params) == step_configs(parent.params)

    ddp = REPO / "configs" / "accelerate" / "ddp.yaml"
    parent = malt_train_main.commands["sft"].make_context(
        "sft", [str(tmp_path), "--role", "generator", "--accelerate-config", str(ddp)]
    )
    launch = launch_for(parent.params)
    assert launch.processes == 8  # the config's
    assert launch.command("sft", tmp_path, "generator", "M")[3:5] == ["--config_file", str(ddp)]
    assert (
        launch_for(malt_train_main.commands["sft"].make_context("sft", [str(tmp_path), "--role", "generator"]).params)
        is None
    )
