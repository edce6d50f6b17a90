"""The transformers backend: LoRA adapters via PEFT; two generation paths of transformers.

- ``continuous``: ``model.generate_batch`` (continuous batching: a paged KV cache, finished sequences
  leave the batch at once, the n samples of a prompt forked from its prefilled cache, CUDA graphs where
  the library turns them on);
- ``generate``: ``model.generate`` on length-sorted, left-padded batches, the n samples of a prompt
  decoded from one shared prefill.

``hf`` picks the faster path for its device (:func:`harness.inference.backends.device.generation_path`);
``hf-generate`` and ``hf-continuous`` fix one, for comparison (``bench/throughput.py``) or as a fallback.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch

from harness.core.errors import ModelError
from harness.inference.backends import register_backend
from harness.inference.backends.base import Backend, Completion, Messages, Prompt, SamplingParams, cut_at_stop
from harness.inference.backends.device import GENERATION_PATHS, default_dtype, generation_path

log = logging.getLogger(__name__)
# Sampling knobs a checkpoint's generation_config.json may set (instruct checkpoints often set top_k and
# repetition_penalty):
# switched off so that SamplingParams alone decide, as on vLLM when it is given SamplingParams.
NEUTRAL_GENERATION = dict(
    repetition_penalty=1.0, min_p=None, typical_p=1.0, no_repeat_ngram_size=0, epsilon_cutoff=0.0, eta_cutoff=0.0
)
_STOP_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>")


def _sdpa_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """SDPA with native grouped-query attention, also with a padding mask.

    transformers' own ``sdpa`` expands the KV cache to every query head (``repeat_kv``) whenever a
    mask is given, i.e. in every left-padded batch; on CPU that copy dominated decoding (48% of the
    time for SmolLM2). ``enable_gqa=True`` gives the same result without the copy.
    """
    mask = attention_mask
    if mask is not None and mask.ndim == 4:
        mask = mask[:, :, :, : key.shape[-2]]
    causal = mask is None and query.shape[2] > 1
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=mask,
        dropout_p=0.0,
        scale=scaling,
        is_causal=causal,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


def _register_attention() -> str:
    """Register :func:`_sdpa_gqa` as ``malt_sdpa_gqa``; fall back to ``sdpa`` where not possible."""
    try:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import sdpa_mask

        AttentionInterface.register("malt_sdpa_gqa", _sdpa_gqa)
        AttentionMaskInterface.register("malt_sdpa_gqa", sdpa_mask)
        return "malt_sdpa_gqa"
    except (ImportError, AttributeError):  # older transformers
        return "sdpa"


def _context_length(config, tokenizer) -> int | None:
    """The model's context window in tokens (``None`` when it states none)."""
    sizes = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    sizes = [s for s in sizes if isinstance(s, int) and 0 < s < 10_000_000]
    return min(sizes) if sizes else None


def _render_fallback(messages: Messages) -> str:
    """Plain-text prompt for tokenizers without a chat template."""
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"


@register_backend("hf")
class HFBackend(Backend):
    """Hugging Face transformers causal LM.

    Args:
        model: local model dir or hub id.
        batch_size: sequences generated together (prompts x samples).
        dtype: "auto" (see :func:`harness.inference.backends.device.default_dtype`), "bfloat16", "float16" or "float32".
        device: "cpu", "cuda", ...
    """

    path: str | None = None  # generation path; None: the device's (``generation_path``)

    def __init__(self, model: str, batch_size: int = 16, dtype: str = "auto", device: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = getattr(torch, default_dtype(self.device) if dtype == "auto" else dtype)
        self.batch_size = max(1, batch_size)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=self.dtype, attn_implementation=_register_attention()
            ).to(self.device)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load model {model!r}: {first}") from None
        self.model.eval()
        self.model_id = model
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        vocab = self.tokenizer.get_vocab()
        eos = {self.tokenizer.eos_token_id} | {vocab[t] for t in _STOP_TOKENS if t in vocab}
        gen_eos = self.model.generation_config.eos_token_id
        eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = sorted(i for i in eos if i is not None)
        self.adapters: set[str] = set()
        self.context = _context_length(self.model.config, self.tokenizer)
        self.path = self.path or generation_path(self.device)
        assert self.path in GENERATION_PATHS, self.path
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ prompts
    def render(self, messages: Prompt) -> str:
        """The prompt string the model sees for ``messages`` (a finished prompt text is sent as it is)."""
        if isinstance(messages, str):
            return messages
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return _render_fallback(messages)

    # ------------------------------------------------------------------ adapters
    def load_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        try:
            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            else:
                self.model.load_adapter(path, adapter_name=name)
        except (OSError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load adapter {path!r}: {first}") from None
        self.model.eval()
        self.adapters.add(name)

    @contextlib.contextmanager
    def _adapter(self, name: str | None) -> Iterator[None]:
        if name is not None:
            if name not in self.adapters:
                raise ModelError(f"adapter {name!r} is not loaded")
            self.model.set_adapter(name)
            yield
        elif self.adapters:
            with self.model.disable_adapter():
                yield
        else:
            yield

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        texts = [self.render(m) for m in prompts]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if self.context:  # leave room for the answer: keep the prompt's last tokens (lm-eval's side)
            max_new = min(params.max_new_tokens, self.context // 2)
            params = replace(params, max_new_tokens=max_new)
            keep = self.context - max_new
            cut = {i for i, x in enumerate(ids) if len(x) > keep}
            ids = [x[-keep:] if i in cut else x for i, x in enumerate(ids)]
        else:
            cut = set()
        with self._adapter(adapter):
            out = self._generate_continuous(ids, params) if self.path == "continuous" else None
            if out is None:
                out = self._generate_padded(ids, params)
        return [[replace(c, prompt_truncated=True) for c in out[i]] if i in cut else out[i] for i in range(len(out))]

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _completions(self, seqs: list[list[int]], stop_strings: Sequence[str] = ()) -> list[Completion]:
        """Completions of generated token ids: cut at the first stop token, which counts as generated, and the
        text before the first of ``stop_strings`` (lm-eval's ``until``)."""
        comps = []
        for seq in seqs:
            stop = next((k for k, t in enumerate(seq) if t in self.eos_ids), None)
            toks = seq if stop is None else seq[:stop]
            text, stopped = cut_at_stop(self.tokenizer.decode(toks, skip_special_tokens=True), stop_strings)
            comps.append(Completion(text, len(toks) + (stop is not None), truncated=stop is None and not stopped))
        return comps

    # ------------------------------------------------------------------ generate() path
    def _generate_padded(self, ids: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """``model.generate`` on batches of ``batch_size`` sequences, longest prompts first."""
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: OOM shows early
        per_batch = max(1, self.batch_size // max(1, params.n))
        out: list[list[Completion]] = [[] for _ in ids]
        with torch.inference_mode():
            for start in range(0, len(order), per_batch):
                batch = order[start : start + per_batch]
                if params.seed is not None:
                    torch.manual_seed(params.seed + start)
                for i, comps in zip(batch, self._generate_batch([ids[i] for i in batch], params), strict=True):
                    out[i] = comps
        return out

    def _prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, n: int):
        """The KV cache of the prompts (all but their last token), each repeated ``n`` times.

        ``generate``'s ``num_return_sequences`` copies every prompt n times *before* prefill; sharing the
        prefill makes n samples of one prompt (votes, MALT tree branches) cost one prompt's prefill.
        """
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # logits_to_keep=1: the LM head scores one position, not every prompt token (at Qwen's 152k vocabulary
        # 0.6 MB of fp32 logits per prompt token: 8.9 GB for 21 prompts of 700 tokens).
        self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, logits_to_keep=1
        )
        cache.batch_repeat_interleave(n)
        return cache

    def _generate_batch(self, ids: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        sample = params.temperature > 0
        kwargs = (
            dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            if sample
            else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        )
        kwargs.update(NEUTRAL_GENERATION)
        if params.stop:  # stop each sequence at its first stop string (the text is cut there in _completions)
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        n = params.n
        if n > 1 and width > 1:  # prefill each prompt once, then decode n samples from copies of its cache
            kwargs["past_key_values"] = self._prefill(input_ids[:, :-1], mask[:, :-1], n)
            input_ids, mask, n = input_ids.repeat_interleave(n, 0), mask.repeat_interleave(n, 0), 1
        gen = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=n,
            eos_token_id=self.eos_ids,
            pad_token_id=pad,
            **kwargs,
        )
        new = gen[:, width:].tolist()
        return [self._completions(new[p * params.n : (p + 1) * params.n], params.stop) for p in range(len(ids))]

    # ------------------------------------------------------------------ continuous batching path
    def _generate_continuous(self, ids: list[list[int]], params: SamplingParams) -> list[list[Completion]] | None:
        """All prompts through ``model.generate_batch``; ``None`` (after one warning) where it cannot run."""
        if not ids:
            return []
        try:
            from transformers import ContinuousBatchingConfig, GenerationConfig
        except ImportError:
            self._warn_once("import", "this transformers has no continuous batching: the hf backend uses generate()")
            return None
        sample = params.temperature > 0
        if not sample and params.n > 1:  # n greedy samples are one sample n times
            once = self._generate_continuous(ids, replace(params, n=1))
            return None if once is None else [comps * params.n for comps in once]
        gen_config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=0 if sample else None,
            num_return_sequences=params.n,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            **NEUTRAL_GENERATION,
        )
        cb_config = ContinuousBatchingConfig(seed=params.seed, **self._cache_size(ids, params))
        model = self.model
        attn = model.config._attn_implementation
        if attn not in ("sdpa", "eager") and "flash" not in attn:  # ours (malt_sdpa_gqa): the library takes sdpa
            model.set_attn_implementation("sdpa")
        try:
            # not under inference_mode: the library's thread updates tensors made here
            with torch.no_grad():
                results = model.generate_batch(ids, generation_config=gen_config, continuous_batching_config=cb_config)
        except Exception as exc:  # noqa: BLE001 - any failure of the library's path: the other path still works
            self._warn_once("error", f"continuous batching failed ({type(exc).__name__}: {exc}); using generate()")
            return None
        finally:
            if model.config._attn_implementation != attn:
                model.set_attn_implementation(attn)
        outputs = list(results.values())
        if len(outputs) != len(ids) * params.n or any(r.error is not None for r in outputs):
            failed = next((r.error for r in outputs if r.error is not None), "missing results")
            self._warn_once("error", f"continuous batching failed ({failed}); using generate()")
            return None
        # in input order, each prompt's forked samples right before the sample that was prefilled
        n = params.n
        return [
            self._completions([r.generated_tokens for r in outputs[p * n : (p + 1) * n]], params.stop)
            for p in range(len(ids))
        ]

    def _cache_size(self, ids: list[list[int]], params: SamplingParams) -> dict[str, int]:
        """Continuous batching's limits: ``batch_size`` sequences at a time; on a GPU the library sizes the
        KV cache from free memory, elsewhere (it would take 90% of RAM) to what ``batch_size`` sequences need."""
        limits = {"max_requests_per_batch": self.batch_size}
        if not self.device.startswith("cuda"):
            page = 256  # ContinuousBatchingConfig's page_size
            longest = max(len(x) for x in ids) + params.max_new_tokens
            sequences = min(self.batch_size, len(ids) * params.n)
            limits.update(num_blocks=sequences * (math.ceil(longest / page) + 1), max_batch_tokens=2048)
        return limits


@register_backend("hf-generate")
class HFGenerateBackend(HFBackend):
    """The hf backend on transformers' ``generate()`` on every device."""

    path = "generate"


@register_backend("hf-continuous")
class HFContinuousBackend(HFBackend):
    """The hf backend on transformers' continuous batching on every device."""

    path = "continuous"
