"""Where a backend runs and in which dtype: one rule for the hf and vllm backends."""

from __future__ import annotations


def has_cuda() -> bool:
    """A CUDA GPU is visible to torch (False without torch)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 matmuls are emulated, and slow."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            cpuinfo = ""
    return "avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo


def default_dtype(device: str) -> str:
    """What ``--dtype auto`` means: bf16 on GPUs and on CPUs with native bf16, else fp32."""
    return "bfloat16" if device.startswith("cuda") or cpu_has_native_bf16() else "float32"


GENERATION_PATHS = ("continuous", "generate")


def generation_path(device: str) -> str:
    """How the hf backend generates on ``device`` by default: the faster of its two paths there.

    ``continuous``: transformers' continuous batching (paged KV cache, finished sequences leave the batch,
    CUDA graphs where the library turns them on) — the path for GPUs. ``generate``: transformers'
    ``generate()`` on length-sorted, left-padded batches — kept on CPUs, where continuous batching
    measured 0.73x ``generate()`` (docs/benchmarks.md, "Continuous batching vs generate()": without flash
    attention its SDPA path attends every query to every sequence's cache under a dense mask).
    """
    return "continuous" if device.startswith("cuda") else "generate"
