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
    stock_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    be.model = stock_model.to(be.device)
    stock = be.generate(PROMPTS, SamplingParams(max_new_tokens=8))
    assert [c[0].text for c in ours] == [c[0].text for c in stock]


def test_n_samples_and_seeds(tiny_model_dir):
    be = HFBackend(str(tiny_model_dir), batch_size=8, dtype="float32")
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=3, seed=5)
    a = be.generate(PROMPTS[:2], params)
    assert [len(x) for x in a] == [3, 3] and len({c.text for c in a[0]}) > 1
    assert [c.text for c in be.generate(PROMPTS[:2], params)[0]] == [c.text for c in a[0]]  # seeded


def test_shared_prefill_gives_the_same_samples_as_separate_prompts(tiny_model_dir):
    """n samples decoded from one prefilled cache equal n copies of the prompt decoded on their own (greedy)."""
    be = HFBackend(str(tiny_model_dir), batch_size=8, dtype="float32")
    shared = be.generate(PROMPTS, SamplingParams(max_new_tokens=8, n=2))
    alone = be.generate(PROMPTS, SamplingParams(max_new_tokens=8, n=1))
    assert [[c.text for c in x] for x in shared] == [[c[0].text] * 2 for c in alone]
    assert [[c.n_tokens for c in x] for x in shared] == [[c[0].n_tokens] * 2 for c in alone]


def test_shared_prefill_runs_each_prompt_once(tiny_model_dir):
    be = HFBackend(str(tiny_model_dir), batch_size=8, dtype="float32")
    seen: list[tuple[int, int]] = []
    logit_rows: list[int] = []  # positions the LM head scores per call
    hook = be.model.model.register_forward_hook(
        lambda m, args, kwargs, out: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    head = be.model.get_output_embeddings().register_forward_hook(lambda m, i, out: logit_rows.append(out.shape[1]))
    try:
        be.generate(PROMPTS[:2], SamplingParams(max_new_tokens=3, temperature=1.0, n=3, seed=1))
    finally:
        hook.remove()
        head.remove()
    assert logit_rows and set(logit_rows) == {1}  # the prefill scores no prompt position it does not sample
    width = seen[0][1]
    assert seen[0] == (2, width) and width > 1  # one prefill of the two prompts
    assert all(shape == (6, 1) for shape in seen[1:])  # then one token per step for the 6 samples


def test_sampling_is_the_whole_distribution(tiny_model_dir):
    """temperature/top_p only: no top-k (transformers' default 50) cuts the tail of the distribution."""
    be = HFBackend(str(tiny_model_dir), batch_size=64, dtype="float32")
    prompt = PROMPTS[1]
    ids = be.tokenizer(be.render(prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = be.model(input_ids=ids.to(be.device)).logits[0, -1]
    top50 = {be.tokenizer.decode([t]) for t in logits.topk(50).indices.tolist()}
    samples = be.generate([prompt], SamplingParams(max_new_tokens=1, temperature=1.0, n=32, seed=0))[0]
    outside = [c.text for c in samples if c.text not in top50]
    assert len(outside) >= 16  # a random model's next token is nearly uniform over 49k: most fall outside


def test_model_generation_config_does_not_change_the_recipe(tiny_model_dir):
    """A checkpoint's generation_config (repetition penalty, top-k) is ignored: SamplingParams decide."""
    be = HFBackend(str(tiny_model_dir), batch_size=4, dtype="float32")
    plain = be.generate(PROMPTS, SamplingParams(max_new_tokens=12))
    be.model.generation_config.repetition_penalty = 50.0
    be.model.generation_config.no_repeat_ngram_size = 1
    assert be.generate(PROMPTS, SamplingParams(max_new_tokens=12)) == plain
