"""The embedded models for real: assembly and hash check, conversion, and g,v,r on GSM8K."""

import dataclasses
import json

import pytest

from harness.core.errors import ModelError
from harness.inference import models
from tests.conftest import malt_eval


def test_qwen_parts_assemble_to_the_published_hash(tmp_path):
    spec = models.EMBEDDED["qwen2.5-coder-0.5b"]
    out = models.assemble_gguf(spec, tmp_path / "q.gguf")
    assert out.stat().st_size == 491_400_064  # assemble_gguf checked the sha256 too


def test_hash_mismatch_is_a_clear_error(tmp_path):
    bad = dataclasses.replace(models.EMBEDDED["smollm2-135m"], sha256="0" * 64)
    with pytest.raises(ModelError, match="expected 0000"):
        models.assemble_gguf(bad, tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_smollm2_converts_and_runs_gvr(tmp_path, shared_data, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MALT_CACHE", str(cache))
    out = tmp_path / "out"
    r = malt_eval(
        "--model",
        "smollm2-135m",
        "--agents",
        "g,v,r",
        "--limit",
        2,
        "--temperature",
        0,
        "--max-new-tokens",
        64,
        "--batch-size",
        2,
        "--output-path",
        out,
        "--log-samples",
        env_data=shared_data,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    converted = cache / "models" / "smollm2-135m"
    assert (converted / "model.safetensors").is_file()
    # a plain checkpoint: loadable by any transformers user (lm-eval's hf backend included)
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    assert not (cache / "gguf" / "smollm2-135m.gguf").exists()  # only the converted copy is kept
    sample = json.loads(next(out.glob("samples_*")).open().readline())
    turns = sample["samples"][0]["turns"]
    assert all(len(t["text"].strip()) > 0 for t in turns.values())  # a real model writes real text
    assert "Initial answer:" in turns["verifier"]["messages"][-1]["content"]


def test_default_model_runs_gvr(shared_data):
    r = malt_eval(
        "--agents", "g,v,r", "--limit", 1, "--temperature", 0, "--max-new-tokens", 48, env_data=shared_data, timeout=900
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| malt_gsm8k (limit) | g,v,r" in r.stdout


_RACER = """
import sys, time
from pathlib import Path
from harness.inference import models

def fake_assemble(model, dest):
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(b"gguf")
    return dest

def fake_convert(gguf, out):
    assert gguf.read_bytes() == b"gguf"  # the other process must not have removed it mid-build
    with open(sys.argv[1], "a") as log:
        log.write("built\\n")
    time.sleep(1.0)
    out.mkdir()
    (out / "config.json").write_text("{}")

models.assemble_gguf, models._convert = fake_assemble, fake_convert
print(models.ensure_embedded("smollm2-135m"))
"""


def test_first_use_from_two_processes_builds_once(tmp_path):
    """Two processes asking for an uncached model at once: one builds it, the other waits and reuses it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MALT_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "builds.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(log)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert log.read_text().count("built") == 1
    assert {out.strip() for out, _ in outs} == {str(tmp_path / "cache" / "models" / "smollm2-135m")}
