"""Throughput of malt-eval against lm-eval's own ``hf`` backend on the same GSM8K questions.

Same machine, one process, same model, same questions, same max new tokens and batch size:
lm-eval ``hf`` on ``malt_gsm8k`` (single model, chat template on), ours with ``--agents g`` and
``--agents g,v,r`` (hf backend, greedy). Prints a table and appends it to BENCHMARKS.md.

    python bench/throughput.py --model smollm2-135m --questions 64 --max-new-tokens 256 --batch-size 64
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import time
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parent.parent


def run_lm_eval(model_dir: str, n: int, max_new: int, batch: int) -> tuple[int, float]:
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    tm = TaskManager(include_path=str(REPO / "tasks"), include_defaults=False)
    t0 = time.time()
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=["malt_gsm8k"],
        task_manager=tm,
        limit=n,
        batch_size=batch,
        gen_kwargs=f"max_gen_toks={max_new}",
        apply_chat_template=True,
        log_samples=True,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    wall = time.time() - t0
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = [s["resps"][0][0] for s in out["samples"]["malt_gsm8k"]]
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts), wall


def run_ours(model_dir: str, agents: str, n: int, max_new: int, batch: int) -> tuple[int, float]:
    from harness.backends.base import SamplingParams
    from harness.data import load_split
    from harness.engines import build_engines
    from harness.evaluate import EvalConfig, run_task
    from harness.prompts import load_prompts
    from harness.solver import SolveContext, parse_agents

    roles = parse_agents(agents)
    engines, _ = build_engines(model_dir, roles, batch_size=batch, dtype="float32")
    docs = load_split("malt_gsm8k", "test")
    params = dict.fromkeys(roles, SamplingParams(max_new))
    ctx = SolveContext({"malt_gsm8k": load_prompts("malt_gsm8k")}, engines, params)
    t0 = time.time()
    res = run_task("malt_gsm8k", docs, ctx, EvalConfig(roles=roles, temperature=0.0, limit=n, batch_size=batch))
    return sum(s["tokens"] for s in res.stats.values()), time.time() - t0


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    a = ap.parse_args()
    from harness.models import resolve_model

    model_dir = resolve_model(a.model)
    rows = []
    for name, fn in [
        ("lm-eval hf (single model)", lambda: run_lm_eval(model_dir, a.questions, a.max_new_tokens, a.batch_size)),
        ("malt-eval --agents g", lambda: run_ours(model_dir, "g", a.questions, a.max_new_tokens, a.batch_size)),
        ("malt-eval --agents g,v,r", lambda: run_ours(model_dir, "g,v,r", a.questions, a.max_new_tokens, a.batch_size)),
    ]:
        tokens, wall = fn()
        rows.append([name, a.questions, tokens, f"{wall:.1f}", f"{tokens / wall:.1f}"])
        print(rows[-1], flush=True)
    base = float(rows[0][4])
    for r in rows:
        r.append(f"{float(r[4]) / base:.2f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = tabulate(
        rows,
        headers=["system", "questions", "generated tokens", "wall s", "tokens/s", "vs lm-eval hf"],
        tablefmt="github",
    )
    cmd = (
        f"python bench/throughput.py --model {a.model} --questions {a.questions} "
        f"--max-new-tokens {a.max_new_tokens} --batch-size {a.batch_size}"
    )
    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, cwd=REPO).stdout.strip()
    report = (
        f"\n## Throughput: {a.model}, {a.questions} GSM8K test questions ({datetime.date.today()})\n\n"
        f"- Command: `{cmd}` (commit {commit})\n- Machine: {machine()}\n"
        f"- fp32, greedy, max new tokens {a.max_new_tokens}, batch size {a.batch_size}; peak RSS of the process "
        f"{peak:.0f} MiB\n\n{table}\n"
    )
    print(report)
    with open(a.out, "a", encoding="utf-8") as fh:
        fh.write(report)
    print(f"ratio_vs_lmeval_hf={float(rows[2][4]) / base:.2f}")


if __name__ == "__main__":
    main()
