"""A killed ``malt-train sft`` resumes from its last TRL checkpoint and ends where a clean run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import REPO, malt_train

STEPS = 30
ARGS = ["--role", "generator", "--max-steps", STEPS, "--save-steps", 1, "--batch-size-train", 1, "--max-length", 128]


def _run_dir(root: Path, model: Path) -> Path:
    run = root / "run"
    rows = [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "completion": [{"role": "assistant", "content": f"{i} + {i} = {2 * i}. Final Answer: {2 * i}"}],
        }
        for i in range(8)
    ]
    (run / "data" / "generator").mkdir(parents=True)
    (run / "data" / "generator" / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "generate.json").write_text(json.dumps({"model": str(model)}))
    return run


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapters-sft" / "generator" / "adapter_model.safetensors")


def test_killed_sft_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    ref = _run_dir(tmp_path / "ref", tiny_model_dir)
    r = malt_train("sft", ref, *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]

    run = _run_dir(tmp_path / "killed", tiny_model_dir)
    cmd = [sys.executable, "-m", "malt_apps.train_cli", "sft", str(run), *map(str, ARGS)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = run / "work" / "sft-generator" / "checkpoints"
    deadline = time.time() + 300
    while (
        time.time() < deadline and proc.poll() is None and not (ckpt / "checkpoint-3" / "trainer_state.json").exists()
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0, "training finished before it could be killed"
    assert not (run / "adapters-sft" / "generator").exists()

    r = malt_train("sft", run, *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming training from" in r.stderr
    a, b = _weights(ref), _weights(run)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert not ckpt.exists()  # checkpoints are cleaned up once the adapter is in place


def test_second_trainer_on_a_run_is_refused(tiny_model_dir, tmp_path):
    run = _run_dir(tmp_path, tiny_model_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".malt.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": holder.pid}))
        r = malt_train("sft", run, *ARGS)
        assert r.returncode == 2 and "in use by another malt-train" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()
