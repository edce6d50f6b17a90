"""Cost estimate of the paper-scale recipe (docs/backends.md, "The paper's scale"): tokens and GPU-hours per step.

Inputs: the tree sizes measured in docs/results.md (40 GSM8K training questions, n = 3, Qwen2.5-Coder-0.5B,
384-token cap), the prompt lengths measured here (the task's prompts and GSM8K train questions under
the default model's tokenizer), and the throughput ASSUMPTIONS below (not measured: no GPU here).
Everything it prints is an estimate for another model (Llama-3.1-8B-Instruct) and other tasks.

    python bench/paper_scale_cost.py            # markdown table on stdout
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

# --- measured (docs/results.md, "The run: 40 training questions at branching 3"): per question
QUESTIONS_MEASURED = 40
GENERATED = {"generator": 34_159, "verifier": 42_615, "refiner": 276_260}  # tokens over the 40 questions
NODES = {"generator": 3, "verifier": 9, "refiner": 27}  # per question at n = 3
POSITIVE = {"generator": 26 / 120, "verifier": 76 / 360, "refiner": 227 / 1080}  # label = 1 share
PAIRS = {"generator": 20 / 40, "verifier": 4 / 40, "refiner": 14 / 40}  # DPO pairs per question
MAX_PAIRS = {"generator": 2, "verifier": 6, "refiner": 18}  # k(n-k) <= 2 per parent with n = 3
EVAL_TOKENS_PER_CALL = 2_020 / 9  # MA+MV@3: generated tokens per question / 9 calls (docs/results.md)

# --- the recipe
TASKS = 3  # GSM8K, MATH, CSQA
QUESTIONS = 1_000  # training questions per task
GPUS = 8
PARAMS = 8.0e9  # Llama-3.1-8B
EVAL_QUESTIONS = 4 * 100  # 4 seeds x random subsets of 100 per task
EVAL_CALLS = 2 * (1 + 3 + 3 + 9) + 3 + 9  # SA, SA+MV@3, MA, MA+MV@3; STaR x4; MALT w/o MV, MALT (MV@3)

# --- ASSUMPTIONS (not measured here)
DECODE_TOK_S = 2_500  # vLLM generated tokens/s per H100-class GPU, 8B bf16, hundreds of requests in flight
PREFILL_TOK_S = 20_000  # vLLM prompt tokens/s per GPU (prefix caching shares the n samples' prompt)
MFU = 0.25  # training: share of the bf16 peak reached with micro batch 1, LoRA, gradient checkpointing
PEAK_FLOPS = 989e12  # H100 SXM dense bf16
POSITIVE_8B = 0.8  # share of right leaves for an 8B instruct model on GSM8K-like tasks (the 0.5B: 21%)


def prompt_tokens() -> dict[str, float]:
    """Mean prompt tokens per node of each role: chat template + instructions (the task's prompts) +
    question (GSM8K train mean) + the parents' texts (their measured mean lengths)."""
    from transformers import AutoTokenizer

    from harness.inference.models import resolve_model
    from harness.tasks.prompts import load_prompts

    tok = AutoTokenizer.from_pretrained(resolve_model("qwen2.5-coder-0.5b"))
    prompts = load_prompts("malt_gsm8k")
    data = Path(os.environ.get("MALT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    rows = [json.loads(line) for line in (data / "gsm8k" / "train.jsonl").open()]
    question = statistics.mean(len(tok(prompts.question(r))["input_ids"]) for r in rows)

    def template(role: str) -> int:
        text = tok.apply_chat_template(
            prompts.messages(role, question="", solution="", critique=""), tokenize=False, add_generation_prompt=True
        )
        return len(tok(text, add_special_tokens=False)["input_ids"])

    mean = {r: GENERATED[r] / (QUESTIONS_MEASURED * NODES[r]) for r in NODES}
    return {
        "question": question,
        "generator": template("generator") + question,
        "verifier": template("verifier") + question + mean["generator"],
        "refiner": template("refiner") + question + mean["generator"] + mean["verifier"],
        **{f"completion_{r}": mean[r] for r in NODES},
    }


def main() -> None:
    p = prompt_tokens()
    gpu_h = lambda tokens, rate: tokens / rate / 3600  # noqa: E731 - GPU-hours at a per-GPU rate
    sft_rate, dpo_rate = MFU * PEAK_FLOPS / (6 * PARAMS), MFU * PEAK_FLOPS / (8 * PARAMS)
    n_q = TASKS * QUESTIONS
    roles = ", ".join(f"{r} {p[r]:.0f}" for r in NODES)
    print(f"mean prompt tokens per node (question {p['question']:.0f} + template + parents' texts): {roles}")
    print("| step | per question (tokens) | all tasks (tokens) | GPU-hours | wall on 8 GPUs |")
    print("|---|---|---|---|---|")

    def row(name: str, per_q: float, rate: float, questions: int = n_q) -> float:
        total = per_q * questions
        h = gpu_h(total, rate)
        print(f"| {name} | {per_q:,.0f} | {total / 1e6:,.1f} M | {h:,.2f} | {h / GPUS * 60:,.0f} min |")
        return h

    total = 0.0
    gen = sum(GENERATED.values()) / QUESTIONS_MEASURED
    total += row("trees: generated (decode)", gen, DECODE_TOK_S)
    prefill = p["generator"] + 3 * p["verifier"] + 9 * p["refiner"]  # one request per parent, n samples
    total += row("trees: prompts (prefill)", prefill, PREFILL_TOK_S)
    for role in NODES:
        per_node = p[role] + p[f"completion_{role}"]
        for share, label in ((POSITIVE[role], "measured 0.5B share"), (POSITIVE_8B, "assumed 8B share")):
            h = row(f"SFT {role} ({label} {share:.0%})", share * NODES[role] * per_node, sft_rate)
            total += h if label.startswith("assumed") else 0
    for role in ("verifier", "refiner"):
        pair = 2 * (p[role] + p[f"completion_{role}"])
        row(f"DPO {role} (measured {PAIRS[role]:.2f} pairs/q)", PAIRS[role] * pair, dpo_rate)
        total += row(f"DPO {role} (at most {MAX_PAIRS[role]} pairs/q)", MAX_PAIRS[role] * pair, dpo_rate)
    evals = EVAL_CALLS * EVAL_TOKENS_PER_CALL  # per test question
    name = f"suite: Table 1 rows, {EVAL_CALLS} calls per test question, {EVAL_QUESTIONS}/task (decode)"
    total += row(name, evals, DECODE_TOK_S, TASKS * EVAL_QUESTIONS)
    print(f"| total (assumed 8B share, most DPO pairs) | | | {total:,.1f} | {total / GPUS * 60:,.0f} min |")
    print(
        f"\nassumptions: decode {DECODE_TOK_S:,} tok/s/GPU, prefill {PREFILL_TOK_S:,} tok/s/GPU, training {MFU:.0%} "
        f"of {PEAK_FLOPS / 1e12:,.0f} TFLOP/s at 6N (SFT: {sft_rate:,.0f} tok/s/GPU) and 8N (DPO: "
        f"{dpo_rate:,.0f} tok/s/GPU) FLOPs per token, N = {PARAMS / 1e9:.0f}B"
    )


if __name__ == "__main__":
    main()
