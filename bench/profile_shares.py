"""Where the time goes in a py-spy profile: shares of the samples per process, by named frame patterns.

Reads py-spy's raw (collapsed-stack) output, e.g. of a ``bench/throughput.py`` row recorded with
``py-spy record -p PID --subprocesses -r 10 -d 150 -f raw -o row.txt``, and prints per process the
share of its samples in each category of work (linear layers, attention, sampling, ...), then the
most frequent innermost frames.

vLLM runs the model as a torch.compile (Inductor) graph, so its worker's Python frames end in the
generated ``Runner.call (<hash>.py:LINE)``; when that file is found (``--compiled-code``, default
vLLM's and Inductor's caches) the frame is replaced by the op on that line, e.g.
``compiled op onednn_mm`` (vLLM's CPU linear layers) or ``compiled op cpp_fused`` (fused norms,
rotary, activations).

    python bench/profile_shares.py row.txt [more.txt ...] [--top 12]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

# Each sample goes to the first category whose pattern matches a frame, scanning from the innermost
# frame outwards (a matmul inside an attention module counts as a linear layer). Frames read
# "Qualified.name (file:line)".
CATEGORIES: dict[str, str] = {
    "linear layers": r"^Linear\.forward \(torch/nn/modules/linear|cpu_linear|^onednn_mm|weight_packed_linear"
    r"|^<lambda> \(vllm/model_executor/layers/utils\.py|^compiled op (onednn_mm|mm|addmm|linear)$",
    "attention kernel": r"^(sdpa_attention_forward|repeat_kv|_sdpa_gqa|scaled_dot_product)|vllm/v1/attention/backends"
    r"|attention/ops|paged_attention|cpu_attn|^compiled op unified_(attention|kv_cache)",
    "sampling / logits": r"[Ss]ampl|logits_process|LogitsProcessor",
    "other model code (norms, rotary, MLP activation, masks, cache)": r"transformers/(models|masking_utils|cache_utils"
    r"|activations|modeling_rope)|vllm/model_executor|^compiled op",
    "vLLM scheduler / engine bookkeeping": r"vllm/v1/(core|engine|worker|executor)",
    "tokenizer / chat template / detokenizer": r"[Tt]okeniz|apply_chat_template|jinja",
}
# Not a partition: the share of samples inside a prefill (whole-prompt forward) call.
PREFILL = r"\._prefill \(|^_prefill \("


COMPILED_CODE = [Path.home() / ".cache" / "vllm" / "torch_compile_cache", Path("/tmp")]
RUNNER = re.compile(r"^Runner\.call \((\w+)\.py:(\d+)\)$")


class CompiledOps:
    """Names the op on a line of Inductor's generated code (``Runner.call (<hash>.py:LINE)`` frames)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots, self.files = roots, {}

    def _lines(self, name: str) -> list[str]:
        if name not in self.files:
            found = next((f for r in self.roots if r.is_dir() for f in r.rglob(f"{name}.py")), None)
            self.files[name] = found.read_text(encoding="utf-8").splitlines() if found else []
        return self.files[name]

    def __call__(self, frame: str) -> str:
        m = RUNNER.match(frame)
        lines = self._lines(m[1]) if m else []
        if not m or int(m[2]) > len(lines):
            return frame
        call = lines[int(m[2]) - 1].split("=", 1)[-1].strip()
        op = re.match(r"(?:torch\.ops\.\w+\.)?(\w+)", call)
        name = op[1] if op else call[:40]
        return "compiled op " + ("cpp_fused" if name.startswith("cpp_fused") else name)


def read_stacks(path: Path, ops: CompiledOps | None = None) -> dict[str, Counter]:
    """``process -> Counter(stack tuple -> samples)`` from py-spy raw output."""
    out: dict[str, Counter] = defaultdict(Counter)
    ops = ops or CompiledOps([])
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        procs = [f for f in frames if f.startswith("process ")]  # --subprocesses: parent;child;... frames
        proc = procs[-1] if procs else "(one process)"
        proc = re.sub(r'^process (\d+):"?([^"]*)"?', lambda m: f"process {m[1]} {m[2][:90]}", proc)
        rest = [ops(f) for f in frames if not f.startswith(("process ", "thread "))]
        out[proc][tuple(rest)] += int(count)
    return out


def shares(stacks: Counter) -> dict[str, float]:
    """Share of samples per category (innermost match wins; the rest is "other"), plus the prefill share."""
    rxs = {label: re.compile(pat) for label, pat in CATEGORIES.items()}
    total = sum(stacks.values()) or 1
    res: Counter = Counter()
    for st, c in stacks.items():
        label = next((lb for f in reversed(st) for lb, rx in rxs.items() if rx.search(f)), "other")
        res[label] += c
    out = {label: res[label] / total for label in [*CATEGORIES, "other"]}
    prefill = re.compile(PREFILL)
    out["(inside a prefill call)"] = sum(c for st, c in stacks.items() if any(prefill.search(f) for f in st)) / total
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=12, help="innermost frames listed per process")
    ap.add_argument("--compiled-code", type=Path, action="append", help="folder with Inductor's generated code")
    a = ap.parse_args(argv)
    ops = CompiledOps(a.compiled_code or COMPILED_CODE)
    for path in a.files:
        print(f"# {path.name}")
        for proc, stacks in sorted(read_stacks(path, ops).items(), key=lambda kv: -sum(kv[1].values())):
            total = sum(stacks.values())
            print(f"## {proc}: {total} samples")
            for label, share in shares(stacks).items():
                print(f"  {share:6.1%}  {label}")
            leaves = Counter()
            for st, c in stacks.items():
                leaves[st[-1] if st else "(empty)"] += c
            print("  innermost frames:")
            for frame, c in leaves.most_common(a.top):
                print(f"  {c / total:6.1%}  {frame}")
        print()


if __name__ == "__main__":
    main()
