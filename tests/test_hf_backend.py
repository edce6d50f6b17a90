"""The transformers backend on a tiny random Llama: padding, ordering, n samples, attention kernel."""

import torch

from harness.backends.base import SamplingParams
from harness.backends.hf import HFBackend

PROMPTS = [[{"role": "user", "content": "hi " * k}] for k in (1, 9, 3, 20)]


def test_batched_equals_one_by_one_and_keeps_order(tiny_model_dir):
    be = HFBackend(str(tiny_model_dir), batch_size=4, dtype="float32")
    batched = be.generate(PROMPTS, SamplingParams(max_new_tokens=6))
    be.batch_size = 1
    single = be.generate(PROMPTS, SamplingParams(max_new_tokens=6))
    assert [c[0].text for c in batched] == [c[0].text for c in single]  # left padding changes nothing
    assert all(c[0].n_tokens <= 6 for c in batched)


def test_gqa_attention_matches_stock_sdpa(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    be = HFBackend(str(tiny_model_dir), batch_size=4, dtype="float32")
    assert be.model.config._attn_implementation == "malt_sdpa_gqa"
    ours = be.generate(PROMPTS, SamplingParams(max_new_tokens=8))
    be.model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    stock = be.generate(PROMPTS, SamplingParams(max_new_tokens=8))
    assert [c[0].text for c in ours] == [c[0].text for c in stock]


def test_n_samples_and_seeds(tiny_model_dir):
    be = HFBackend(str(tiny_model_dir), batch_size=8, dtype="float32")
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=3, seed=5)
    a = be.generate(PROMPTS[:2], params)
    assert [len(x) for x in a] == [3, 3] and len({c.text for c in a[0]}) > 1
    assert [c.text for c in be.generate(PROMPTS[:2], params)[0]] == [c.text for c in a[0]]  # seeded
