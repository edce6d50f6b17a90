"""One row of ``bench/throughput.py``, run in its own process so rows don't share memory or caches.

    python bench/throughput_rows.py '<json spec>' RESULT.json

The spec's ``kind`` is ``lmeval`` (lm-eval's own ``hf`` backend on ``malt_gsm8k``), ``ours``
(``malt-eval --agents ...`` on a backend) or ``tree`` (MALT tree generation, by n-sampling or by
repeated prompts). The result holds generated tokens, wall seconds of the generation (model load
excluded for every row) and the peak memory of the row's process tree. Also here: the repeated-prompts wrapper backend,
the matmul roofline and the parameter count.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.inference.backends.base import Backend, Completion, Messages, SamplingParams

REPO = Path(__file__).resolve().parent.parent
TASK = "malt_gsm8k"


class RepeatedPrompts(Backend):
    """A backend that answers "n samples of one prompt" with n separate prompts of one sample each.

    Same engine, same sequences per batch; only the sharing of the prompt is gone. The baseline of
    the tree benchmark (n-sampling is the normal path).
    """

    name = "repeated-prompts"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.model_id = getattr(inner, "model_id", None)

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        n = params.n
        if n == 1:
            return self.inner.generate(prompts, params, adapter=adapter)
        one = SamplingParams(params.max_new_tokens, params.temperature, params.top_p, 1, params.seed)
        flat = self.inner.generate([p for p in prompts for _ in range(n)], one, adapter=adapter)
        return [[c for comps in flat[i * n : (i + 1) * n] for c in comps] for i in range(len(prompts))]


class PromptCounter(Backend):
    """Pass-through backend that counts prompt tokens: as sent (x n samples) and distinct (x 1).

    Needs a backend with ``render`` and ``tokenizer`` (hf); counts nothing otherwise.
    """

    name = "prompt-counter"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.model_id = getattr(inner, "model_id", None)
        self.per_sample = 0  # prompt tokens x samples: what a backend without prefill sharing computes
        self.distinct = 0  # prompt tokens once per distinct prompt: what ideal prefill sharing computes

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        render, tok = getattr(self.inner, "render", None), getattr(self.inner, "tokenizer", None)
        if render is not None and tok is not None:
            lengths = [len(tok(render(m), add_special_tokens=False)["input_ids"]) for m in prompts]
            self.per_sample += sum(lengths) * params.n
            self.distinct += sum(lengths)
        return self.inner.generate(prompts, params, adapter=adapter)


def _seconds(fn, device: str) -> float:
    """Wall seconds of one ``fn()`` call (the accelerator synchronised before and after)."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def matmul_gflops(size: int | None = None, reps: int = 8, threads: int | None = None, device: str = "cpu") -> float:
    """Best ``size x size`` matmul rate of this device in GFLOP/s: fp32 2048^2 on a CPU (torch's default threads or
    ``threads``), bf16 8192^2 on a GPU (the dtype GPUs decode in)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    gpu = device.startswith("cuda")
    size = size or (8192 if gpu else 2048)
    dtype = torch.bfloat16 if gpu else torch.float32
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = min(_seconds(lambda: a @ b, device) for _ in range(reps))
    return 2 * size**3 / best / 1e9


def copy_gbps(device: str, numel: int = 1 << 29, reps: int = 5) -> float:
    """Best device-to-device copy bandwidth (bytes read + written) of a bf16 buffer, GB/s (1 GiB on a GPU)."""
    import torch

    src = torch.randn(numel, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_seconds(lambda: dst.copy_(src), device) for _ in range(reps))
    return 2 * src.numel() * src.element_size() / best / 1e9


def linear_shapes(model_dir: str) -> list[tuple[int, int]]:
    """``(in, out)`` of every linear layer one token passes through (decoder layers and the LM head)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    head = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    kv = head * cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    per_layer = [(h, h), (h, kv), (h, kv), (h, h), (h, inter), (h, inter), (inter, h)]
    return per_layer * layers + [(h, cfg["vocab_size"])]


def linear_gflops(model_dir: str, rows: int, reps: int = 3, threads: int | None = None) -> float:
    """fp32 GFLOP/s of ``F.linear`` over the model's linear layers at ``rows`` tokens per call (decode: the batch)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    counts = Counter(linear_shapes(model_dir))
    flops = seconds = 0.0
    for k, n in sorted(counts):
        x, w = torch.randn(rows, k), torch.randn(n, k)
        torch.nn.functional.linear(x, w)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = min(best, time.perf_counter() - t0)
        flops += 2 * rows * k * n * counts[(k, n)]
        seconds += best * counts[(k, n)]
    return flops / seconds / 1e9


def param_count(model_dir: str) -> int | None:
    """Parameters stored in the model's safetensors files (read from their headers, not loaded)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    total = 0
    for f in files:
        with safe_open(str(f), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a dict
                shape = fh.get_slice(key).get_shape()
                total += math.prod(shape)
    return total or None


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def row_lmeval(spec: dict) -> dict:
    """lm-eval's ``hf`` model on ``malt_gsm8k``; wall = time inside its ``generate_until``."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=spec["model_dir"], dtype=spec["dtype"], batch_size=spec["batch"], device=_device())
    timed = {"wall": 0.0}
    inner = lm.generate_until

    def generate_until(requests, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(requests, *args, **kwargs)
        finally:
            timed["wall"] += time.perf_counter() - t0

    lm.generate_until = generate_until
    counted = count_generated(lm)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(REPO / "tasks"), include_defaults=False),
        limit=spec["questions"],
        gen_kwargs=f"max_gen_toks={spec['max_new']}",
        apply_chat_template=True,
        log_samples=True,
    )
    questions = len(out["samples"][TASK])
    return {"tokens": counted["tokens"], "wall": timed["wall"], "questions": questions}


def generated_tokens(new_ids: list[list[int]], stops: set[int]) -> int:
    """Tokens generated per sequence, up to and including its first stop token (as the hf backend counts)."""
    total = 0
    for seq in new_ids:
        stop = next((k for k, t in enumerate(seq) if t in stops), None)
        total += len(seq) if stop is None else stop + 1
    return total


def count_generated(lm) -> dict[str, int]:
    """Wrap ``lm._model_generate`` (lm-eval's HFLM) to count the token ids it generates, not its texts
    retokenized (a run of 16 newlines is one token of Qwen's vocabulary)."""
    counted = {"tokens": 0}
    inner = lm._model_generate
    gen_eos = lm.model.generation_config.eos_token_id
    stops = {lm.tokenizer.pad_token_id, lm.tokenizer.eos_token_id}
    stops |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    stops.discard(None)

    def _model_generate(context, *args, **kwargs):
        out = inner(context, *args, **kwargs)
        counted["tokens"] += generated_tokens(out[:, context.shape[1] :].tolist(), stops)
        return out

    lm._model_generate = _model_generate
    return counted


def _engines(spec: dict, roles: tuple[str, ...]):
    from harness.inference.engines import build_engines

    engines, _ = build_engines(
        spec["model_dir"], roles, backend=spec["backend"], batch_size=spec["batch"], dtype=spec["dtype"]
    )
    for be in {id(e.backend): e.backend for e in engines.values()}.values():
        if hasattr(type(be), "llm"):
            be.llm  # noqa: B018 - vllm starts its engine lazily: start it before the clock
    return engines


def row_ours(spec: dict) -> dict:
    """``malt-eval --agents ...`` (greedy) on the first ``questions`` GSM8K test questions."""
    from harness.run.evaluate import run_task
    from harness.solver.protocol import EvalConfig
    from harness.solver.steps import SolveContext, parse_agents
    from harness.tasks.data import load_split
    from harness.tasks.prompts import load_prompts

    roles = parse_agents(spec["agents"])
    engines = _engines(spec, roles)
    docs = load_split(TASK, "test")
    params = dict.fromkeys(roles, SamplingParams(spec["max_new"]))
    ctx = SolveContext({TASK: load_prompts(TASK)}, engines, params)
    cfg = EvalConfig(roles=roles, temperature=0.0, limit=spec["questions"], batch_size=spec["batch"])
    t0 = time.perf_counter()
    res = run_task(TASK, docs, ctx, cfg)
    wall = time.perf_counter() - t0
    return {"tokens": sum(s["tokens"] for s in res.stats.values()), "wall": wall, "questions": res.n}


def row_tree(spec: dict) -> dict:
    """MALT trees (n + n^2 + n^3 nodes per question) at temperature 0.3, n-sampling or repeated prompts."""
    from harness.inference.engines import RoleEngine
    from harness.solver.steps import SolveContext
    from harness.tasks.data import load_split
    from harness.tasks.prompts import ROLES, load_prompts
    from malt_train.generate import grow_trees

    engines = _engines(spec, ROLES)
    shared = next(iter(engines.values())).backend
    counter = PromptCounter(shared)
    be: Backend = RepeatedPrompts(counter) if spec.get("repeat") else counter
    engines = {r: RoleEngine(be, e.adapter) for r, e in engines.items()}
    docs = load_split(TASK, "test")
    params = dict.fromkeys(ROLES, SamplingParams(spec["max_new"], 0.3, 1.0, seed=0))
    ctx = SolveContext({TASK: load_prompts(TASK)}, engines, params)
    t0 = time.perf_counter()
    nodes = grow_trees(TASK, {i: docs[i] for i in range(spec["questions"])}, ctx, spec["branching"])
    wall = time.perf_counter() - t0
    return {
        "tokens": sum(x["n_tokens"] for x in nodes),
        "wall": wall,
        "questions": spec["questions"],
        "nodes": len(nodes),
        "backend_calls": sum(s["backend_calls"] for s in ctx.stats.values()),
        "prompt_tokens": counter.per_sample,  # as prefilled by a backend that expands n before prefill
        "distinct_prompt_tokens": counter.distinct,  # with the n samples of a prompt sharing one prefill
    }


ROWS = {"lmeval": row_lmeval, "ours": row_ours, "tree": row_tree}


def peak_rss_mib() -> float:
    """Peak RSS of this process plus its largest finished child, MiB (Linux ``ru_maxrss`` is in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + child) / 1024


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` (children, grandchildren, ...), from ``/proc/*/stat``."""
    parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # exited meanwhile
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses
            parent.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        kids = parent.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def pss_mib(pid: int) -> float:
    """Proportional set size of ``pid`` (shared pages split among their users), MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeMemory(threading.Thread):
    """Samples the summed PSS of this process and all its live descendants; keeps the peak.

    ``ru_maxrss`` sees this process and its *finished* children only: vLLM's EngineCore and worker
    processes (weights, KV cache) are still alive when a row ends, so a vLLM row needs this sampler.
    """

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak = interval, 0.0
        self._stop_event = threading.Event()

    def sample(self) -> float:
        me = os.getpid()
        total = sum(pss_mib(pid) for pid in [me, *descendants(me)])
        self.peak = max(self.peak, total)
        return total

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> float:
        self._stop_event.set()
        self.sample()
        return self.peak


def main(argv: list[str]) -> None:
    spec, out = json.loads(argv[0]), Path(argv[1])
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    tree = TreeMemory()
    tree.start()
    result = ROWS[spec["kind"]](spec)
    result["peak_tree_pss_mib"] = tree.stop()  # the largest of the samples taken while the row ran
    result["peak_rss_mib"] = max(peak_rss_mib(), result["peak_tree_pss_mib"])
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
