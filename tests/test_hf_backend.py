"""The transformers backend on a tiny random Llama: padding, ordering, n samples, attention kernel, and its
continuous-batching path against its ``generate()`` path."""

import pytest
import torch

from harness.inference.backends.base import SamplingParams
from harness.inference.backends.hf import HFBackend

PROMPTS = [[{"role": "user", "content": "hi " * k}] for k in (1, 9, 3, 20)]


@pytest.fixture(scope="module")
def varied_model_dir(tmp_path_factory):
    """The tiny random Llama with larger initial weights: greedy answers vary with the prompt (the default
    one answers every prompt with newlines, which would make equal outputs prove little)."""
    from tests.conftest import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-varied"), initializer_range=0.3)


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


@pytest.mark.parametrize("backend", ["hf-generate", "hf-continuous"])
def test_sampling_is_the_whole_distribution(tiny_model_dir, backend):
    """temperature/top_p only: no top-k (transformers' default 50) cuts the tail of the distribution (both paths)."""
    from harness.inference.backends import get_backend

    be = get_backend(backend)(str(tiny_model_dir), batch_size=64, dtype="float32")
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


# ---------------------------------------------------------------- the two generation paths


def _both(model_dir, batch_size=8):
    from harness.inference.backends.hf import HFContinuousBackend, HFGenerateBackend

    return (
        HFContinuousBackend(str(model_dir), batch_size=batch_size, dtype="float32"),
        HFGenerateBackend(str(model_dir), batch_size=batch_size, dtype="float32"),
    )


def test_continuous_batching_greedy_equals_generate(varied_model_dir):
    fast, plain = _both(varied_model_dir)
    prompts = [*PROMPTS, [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"}]]
    a, b = fast.generate(prompts, SamplingParams(max_new_tokens=12)), plain.generate(prompts, SamplingParams(12))
    assert a == b  # texts, token counts, truncation flags
    assert len({c[0].text for c in a}) > 2  # the prompts get different answers: a comparison that can fail
    assert fast.model.config._attn_implementation == "malt_sdpa_gqa"  # restored after the library's sdpa
    assert fast.generate([], SamplingParams(4)) == []


def test_continuous_batching_n_samples_differ_and_follow_the_seed(varied_model_dir):
    fast, _ = _both(varied_model_dir)
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=3, seed=5)
    a = fast.generate(PROMPTS[:2], params)
    assert [len(x) for x in a] == [3, 3] and all(len({c.text for c in x}) == 3 for x in a)
    assert fast.generate(PROMPTS[:2], params) == a
    assert fast.generate(PROMPTS[:2], SamplingParams(6, 1.0, n=3, seed=6)) != a
    greedy = fast.generate(PROMPTS[:2], SamplingParams(max_new_tokens=6, n=2))  # n forked greedy samples agree
    assert all(x[0] == x[1] for x in greedy)


def test_continuous_batching_stops_at_eos_and_counts_it(varied_model_dir):
    fast, plain = _both(varied_model_dir)
    free = plain.generate(PROMPTS[1:2], SamplingParams(max_new_tokens=10))[0][0]
    assert free.truncated and free.n_tokens == 10
    ids = plain.tokenizer(plain.render(PROMPTS[1]), add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = plain.model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False, top_k=None, top_p=None)
    third = out[0, len(ids) + 2].item()  # the greedy third token becomes a stop token
    for be in (fast, plain):
        be.eos_ids = [third]
    a, b = fast.generate(PROMPTS[1:2], SamplingParams(10)), plain.generate(PROMPTS[1:2], SamplingParams(10))
    assert a == b and a[0][0].n_tokens == 3 and not a[0][0].truncated  # two tokens and the stop token


def test_continuous_batching_truncates_long_prompts_like_generate(varied_model_dir):
    fast, plain = _both(varied_model_dir)
    lengths = [len(plain.tokenizer(plain.render(p), add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    fast.context = plain.context = sorted(lengths)[1] + 8  # room for 8 new tokens after the two shorter prompts
    a, b = fast.generate(PROMPTS, SamplingParams(max_new_tokens=8)), plain.generate(PROMPTS, SamplingParams(8))
    assert a == b
    assert [c[0].prompt_truncated for c in a] == [n > sorted(lengths)[1] for n in lengths]
    assert sum(c[0].prompt_truncated for c in a) == 2


@pytest.fixture(scope="module")
def lora_adapter(varied_model_dir, tmp_path_factory) -> str:
    """A LoRA adapter of the varied tiny model with random (non-zero) weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter") / "verifier"
    get_peft_model(AutoModelForCausalLM.from_pretrained(varied_model_dir), cfg).save_pretrained(out)
    return str(out)


def test_continuous_batching_applies_adapters_like_generate(varied_model_dir, lora_adapter, caplog):
    fast, plain = _both(varied_model_dir)
    for be in (fast, plain):
        be.load_adapter("verifier", lora_adapter)
    params = SamplingParams(max_new_tokens=10)
    with caplog.at_level("WARNING", logger="harness.inference.backends.hf"):
        tuned, base = fast.generate(PROMPTS, params, adapter="verifier"), fast.generate(PROMPTS, params)
    assert not caplog.records  # the fast path ran: no fallback to generate()
    assert tuned == plain.generate(PROMPTS, params, adapter="verifier")
    assert base == plain.generate(PROMPTS, params)
    assert tuned != base  # the adapter changes the answers


def test_continuous_batching_falls_back_to_generate_and_says_so_once(varied_model_dir, monkeypatch, caplog):
    fast, plain = _both(varied_model_dir)

    def broken(*args, **kwargs):
        raise RuntimeError("no paged attention here")

    monkeypatch.setattr(type(fast.model), "generate_batch", broken)
    with caplog.at_level("WARNING", logger="harness.inference.backends.hf"):
        out = [fast.generate(PROMPTS, SamplingParams(max_new_tokens=6)) for _ in range(2)]
    assert out[0] == out[1] == plain.generate(PROMPTS, SamplingParams(max_new_tokens=6))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "no paged attention here" in warnings[0] and "generate()" in warnings[0]


def test_generation_path_per_device(tiny_model_dir):
    from harness.inference.backends import get_backend
    from harness.inference.backends.device import generation_path
    from harness.inference.backends.hf import HFBackend

    assert (generation_path("cuda"), generation_path("cuda:1"), generation_path("cpu")) == (
        "continuous",
        "continuous",
        "generate",
    )
    assert HFBackend(str(tiny_model_dir), device="cpu").path == "generate"
    assert get_backend("hf-generate").path == "generate" and get_backend("hf-continuous").path == "continuous"
    assert get_backend("hf").path is None  # decided per device when the model is loaded


class _Counted:
    """A stand-in backend class for the pool: counts what it opens and closes."""

    name = "counted"
    opened: list = []

    def __init__(self, ref, **kwargs):
        self.ref, self.kwargs, self.closed = ref, kwargs, False
        self.opened.append(self)

    def close(self):
        self.closed = True


def test_backend_pool_keeps_one_backend_per_model_and_options():
    from harness.inference.engines import BackendPool

    pool, _Counted.opened = BackendPool(), []
    a = pool.get(_Counted, "m", {"dtype": "float32"})
    assert pool.get(_Counted, "m", {"dtype": "float32"}) is a
    assert pool.get(_Counted, "m", {"dtype": "bfloat16"}) is not a and len(_Counted.opened) == 2
    fresh = pool.get(_Counted, "m", {"dtype": "float32"}, fresh=True)
    assert fresh is not a and a.closed and not fresh.closed
    pool.close()
    assert all(be.closed for be in _Counted.opened) and pool.backends == {}


def test_shared_backends_scope_one_model_load_to_the_block(tiny_model_dir):
    """Inside the block (nested ones too, and code run in a copy of its context) build_engines reuses the loaded
    backend; outside it, and after it, each call loads its own."""
    import contextvars

    from harness.inference.engines import build_engines, shared_backends

    def load():
        return build_engines(str(tiny_model_dir), ("generator",), dtype="float32")[0]["generator"].backend

    with shared_backends() as pool:
        first = load()
        with shared_backends() as inner:
            assert inner is pool and load() is first
        assert pool.backends  # the nested block left the outer pool open
        assert contextvars.copy_context().run(load) is first
    assert pool.backends == {}  # closed at the end of the block
    outside = load()
    assert outside is not first and load() is not outside
