"""Where the time goes in a py-spy profile: shares of the samples per process, by named frame patterns.

Reads py-spy's raw (collapsed-stack) output, e.g. of a ``bench/throughput.py`` row recorded with
``py-spy record -p PID --subprocesses -r 10 -d 150 -f raw -o row.txt``, and prints per process the
share of its samples in each category of work (linear layers, attention, sampling, ...), then the
most frequent innermost frames.

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
    "linear layers": r"^Linear\.forward \(torch/nn/modules/linear|cpu_linear|onednn_mm|weight_packed_linear"
    r"|^<lambda> \(vllm/model_executor/layers/utils\.py",
    "attention kernel": r"^(sdpa_attention_forward|repeat_kv|_sdpa_gqa|scaled_dot_product)|vllm/v1/attention/backends"
    r"|attention/ops|paged_attention|cpu_attn",
    "sampling / logits": r"[Ss]ampl|logits_process|LogitsProcessor",
    "other model code (norms, rotary, MLP activation, masks, cache)": r"transformers/(models|masking_utils|cache_utils"
    r"|activations|modeling_rope)|vllm/model_executor",
    "vLLM scheduler / engine bookkeeping": r"vllm/v1/(core|engine|worker|executor)",
    "tokenizer / chat template / detokenizer": r"[Tt]okeniz|apply_chat_template|jinja",
}
# Not a partition: the share of samples inside a prefill (whole-prompt forward) call.
PREFILL = r"\._prefill \(|^_prefill \("


def read_stacks(path: Path) -> dict[str, Counter]:
    """``process -> Counter(stack tuple -> samples)`` from py-spy raw output."""
    out: dict[str, Counter] = defaultdict(Counter)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        proc = frames[0] if frames[0].startswith("process ") else "process ?"
        proc = re.sub(r'^process (\d+):"?([^"]*)"?', lambda m: f"{m[1]} {m[2][:90]}", proc)
        rest = [f for f in frames if not f.startswith(("process ", "thread "))]
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
    a = ap.parse_args(argv)
    for path in a.files:
        print(f"# {path.name}")
        for proc, stacks in sorted(read_stacks(path).items(), key=lambda kv: -sum(kv[1].values())):
            total = sum(stacks.values())
            print(f"## process {proc}: {total} samples")
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
