"""Throughput of malt-eval against lm-eval's own ``hf`` backend on the same GSM8K questions.

Same machine, one run, same model, same questions, same max new tokens and batch size; every row in
its own process (peak RSS per row, no shared caches), generation time only (model load excluded):

- lm-eval ``hf`` on ``malt_gsm8k`` (single model, chat template on) — the anchor;
- ours, ``--agents g`` and ``--agents g,v,r`` (greedy), hf backend and, when vllm imports, vllm;
- ours, ``--agents g,v,r`` on the hf backend's other generation path (continuous batching where the
  device's default is ``generate()``, and the reverse): the two paths on the same questions;
- MALT tree generation (8 questions, branching 3): n-sampling vs the same trees by repeated prompts;
- our ``g`` at N and 4N questions (peak memory must stay flat);
- the device's matmul rate (fp32 on a CPU, bf16 on a GPU) and the fraction of it each row reaches; the decode
  ceiling (CPU: the model's linear layers at the batch size; GPU: the lower of its weight-bandwidth and
  matmul bounds) and each row's share of it.

Prints a table with the targets, adds it to docs/benchmarks.md (newest first) and ends with the lines
``ratio_gvr_vs_generate=<our g,v,r hf tokens/s, continuous batching / generate()>`` and
``ratio_vs_lmeval_hf=<our g,v,r hf tokens/s / lm-eval hf tokens/s>``. ``--rows`` measures some rows only.

Resumable: each finished row is kept in ``--work`` (default ``.cache/bench/<settings>``), so rerunning
the same command after an interruption measures only the rows still missing (``--fresh`` starts over).
The full table takes hours on a small CPU; the report says when its rows were measured.

    python bench/throughput.py --quick    # smollm2-135m, 16 questions, 64 tokens, batch 16: a few minutes
    python bench/throughput.py            # qwen2.5-coder-0.5b, 64 questions, 256 tokens, batch 64
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate
from throughput_rows import copy_gbps, linear_gflops, linear_shapes, matmul_gflops, param_count

from harness.inference.backends.device import generation_path, has_cuda

REPO = Path(__file__).resolve().parent.parent
ROW_SCRIPT = Path(__file__).resolve().parent / "throughput_rows.py"
QUICK = {"model": "smollm2-135m", "questions": 16, "max_new_tokens": 64, "tree_questions": 4, "batch_size": 16}
FULL = {"model": "qwen2.5-coder-0.5b", "questions": 64, "max_new_tokens": 256, "tree_questions": 8, "batch_size": 64}
TARGETS = {"gvr_vs_lmeval": 1.0, "vllm_vs_hf": 1.5, "tree": 1.3, "memory_growth": 0.10, "continuous_cpu": 1.2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smollm2-135m, 16 questions, 64 new tokens")
    ap.add_argument("--model", help="model (default: qwen2.5-coder-0.5b; smollm2-135m with --quick)")
    ap.add_argument("--questions", type=int, help="GSM8K test questions per row (default 64; 16 with --quick)")
    ap.add_argument("--memory-questions", type=int, help="questions of the memory row (default 4x --questions)")
    ap.add_argument("--tree-questions", type=int, help="questions of the tree rows (default 8; 4 with --quick)")
    ap.add_argument("--branching", type=int, default=3, help="tree branching n (n + n^2 + n^3 nodes per question)")
    ap.add_argument("--max-new-tokens", type=int, help="per generation (default 256; 64 with --quick)")
    ap.add_argument("--batch-size", type=int, help="sequences per batch, every row (default 64; 16 with --quick)")
    ap.add_argument("--dtype", default="float32", help="model dtype, every row")
    ap.add_argument("--threads", type=int, help="torch CPU threads of every row and the matmul (default: torch's)")
    ap.add_argument("--note", action="append", default=[], help="a line added to the notes (repeatable)")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="page the section is added to")
    ap.add_argument("--work", help="folder keeping finished rows for a rerun (default .cache/bench/<settings>)")
    ap.add_argument("--fresh", action="store_true", help="measure every row again, ignoring kept rows")
    ap.add_argument("--report-only", action="store_true", help="report the kept rows, measure nothing (partial table)")
    ap.add_argument("--rows", help="comma-separated row keys to measure (default: all; e.g. gvr_hf,gvr_hf_continuous)")
    a = ap.parse_args(argv)
    for key, value in (QUICK if a.quick else FULL).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    a.memory_questions = a.memory_questions or 4 * a.questions
    a.rows = [k.strip() for k in a.rows.split(",") if k.strip()] if a.rows else None
    a.device = bench_device()  # where the rows run: the GPU when there is one
    return a


def work_dir(a: argparse.Namespace) -> Path:
    """Where finished rows are kept: one folder per combination of the settings every row depends on."""
    if a.work:
        return Path(a.work)
    keys = ("model", "questions", "memory_questions", "tree_questions", "branching", "max_new_tokens")
    settings = json.dumps([getattr(a, k) for k in (*keys, "batch_size", "dtype", "threads")])
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    return REPO / ".cache" / "bench" / f"throughput-{a.model}-{a.questions}q-{digest}"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


NOT_YET = "not measured yet (rerun without --report-only)"


def measure(key: str, spec: dict, work: Path, fresh: bool, report_only: bool = False) -> tuple[dict, bool]:
    """One row's result, measured now or kept from an earlier run of the same spec; ``(result, kept)``.

    With ``report_only`` a row not kept yet is not measured: its result is ``{"error": NOT_YET}``.
    """
    kept = work / f"{key}.json"
    if not fresh and kept.is_file():
        try:
            saved = json.loads(kept.read_text())
        except json.JSONDecodeError:
            saved = {}
        if saved.get("spec") == spec and "error" not in saved.get("result", {"error": 1}):
            return {**saved["result"], "started": saved["started"], "finished": saved["finished"]}, True
    if report_only:
        return {"error": NOT_YET}, False
    started = now()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_row(spec, Path(tmp))
        log = Path(tmp) / "row.log"
        if "error" in result and log.is_file():  # a failed row keeps its whole log (the engine's too) to read
            work.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, work / f"{key}.failed.log")
            result["error"] += f" (log: {work / f'{key}.failed.log'})"
    if "error" not in result:
        work.mkdir(parents=True, exist_ok=True)
        tmp_file = kept.with_suffix(".tmp")
        tmp_file.write_text(json.dumps({"spec": spec, "result": result, "started": started, "finished": now()}))
        tmp_file.replace(kept)
    return {**result, "started": started, "finished": now()}, False


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def bench_device() -> str:
    """Where the rows run (``throughput_rows`` puts the model on the GPU when there is one)."""
    return "cuda" if has_cuda() else "cpu"


def other_path(device: str) -> str:
    """The hf generation path the device does not use by default."""
    return "generate" if generation_path(device) == "continuous" else "continuous"


def path_rows(device: str) -> dict[str, str]:
    """Row key of our hf ``g,v,r`` on each generation path: the default row and the other path's row."""
    return {generation_path(device): "gvr_hf", other_path(device): f"gvr_hf_{other_path(device)}"}


NOT_SELECTED = "not selected (--rows)"


def plan(a: argparse.Namespace, model_dir: str) -> list[tuple[str, str, dict | str]]:
    """``(key, label, spec)`` of every row; a string instead of a spec is why the row is skipped."""
    device = a.device
    base = {"model_dir": model_dir, "max_new": a.max_new_tokens, "batch": a.batch_size, "dtype": a.dtype}
    base["threads"] = a.threads
    ev = {**base, "questions": a.questions}
    tree = {**base, "kind": "tree", "questions": a.tree_questions, "branching": a.branching}
    no_vllm = "skipped: vllm not installed"
    vllm = vllm_installed()
    path = generation_path(device)
    rows: list[tuple[str, str, dict | str]] = [("lmeval", "lm-eval hf (single model)", {**ev, "kind": "lmeval"})]
    for backend in ("hf", "vllm"):
        for agents, key in (("g", "g"), ("g,v,r", "gvr")):
            spec = {**ev, "kind": "ours", "agents": agents, "backend": backend}
            rows.append(
                (
                    f"{key}_{backend}",
                    f"malt-eval --agents {agents} ({backend}{', ' + path if backend == 'hf' else ''})",
                    spec if backend == "hf" or vllm else no_vllm,
                )
            )
    other = other_path(device)
    rows.append(
        (
            path_rows(device)[other],
            f"malt-eval --agents g,v,r (hf, {other})",
            {**ev, "kind": "ours", "agents": "g,v,r", "backend": f"hf-{other}"},
        )
    )
    trees = f"tree n={a.branching}, {a.tree_questions} q"
    for backend in ("hf", "vllm") if vllm else ("hf",):
        rows.append((f"tree_n_{backend}", f"{trees}: n-sampling ({backend})", {**tree, "backend": backend}))
        rows.append(
            (
                f"tree_rep_{backend}",
                f"{trees}: repeated prompts ({backend})",
                {**tree, "backend": backend, "repeat": True},
            )
        )
    mem = {**base, "kind": "ours", "agents": "g", "backend": "hf", "questions": a.memory_questions}
    rows.append(("g_hf_mem", "malt-eval --agents g (hf), memory row", mem))
    return select(rows, a.rows) if a.rows else rows


def select(rows: list[tuple[str, str, dict | str]], keys: list[str]) -> list[tuple[str, str, dict | str]]:
    """The plan with only the rows named in ``keys`` measured; ``ValueError`` naming any unknown key."""
    unknown = sorted(set(keys) - {key for key, _, _ in rows})
    if unknown:
        raise ValueError(f"unknown --rows {', '.join(unknown)}; known: {', '.join(k for k, _, _ in rows)}")
    return [(k, label, spec if k in keys else NOT_SELECTED) for k, label, spec in rows]


def run_row(spec: dict, workdir: Path) -> dict:
    """Run one row in a fresh process; its result, or ``{"error": ...}``."""
    out = workdir / "row.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    if spec.get("threads"):
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(spec["threads"])
    cmd = [sys.executable, str(ROW_SCRIPT), json.dumps(spec), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0 or not out.is_file():
        (workdir / "row.log").write_text(proc.stdout + proc.stderr)
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        print("\n".join(lines[-15:]), file=sys.stderr)
        return {"error": f"failed: {failure_line(lines) or f'exit code {proc.returncode}'}"}
    return json.loads(out.read_text())


def failure_line(lines: list[str]) -> str | None:
    """The last exception line of a log (``pkg.SomeError: why``), else its last line, at most 120 characters."""
    errors = [ln.strip() for ln in lines if re.match(r"^\s*[\w.]+(Error|Exception|Exit)\b.*", ln)]
    last = errors[-1] if errors else (lines[-1].strip() if lines else None)
    return last[:120] if last else None


def tok_s(r: dict | None) -> float | None:
    return r["tokens"] / r["wall"] if r and "tokens" in r and r["wall"] > 0 else None


def ratio(a: dict | None, b: dict | None) -> float | None:
    x, y = tok_s(a), tok_s(b)
    return x / y if x is not None and y else None


def table(rows: list[tuple[str, str, dict | str]], res: dict[str, dict], params: int | None, gflops: float) -> str:
    body = []
    for key, label, spec in rows:
        r = res.get(key, {})
        if isinstance(spec, str) or "error" in r:
            body.append([label, "-", spec if isinstance(spec, str) else r["error"], "-", "-", "-", "-", "-"])
            continue
        rate = tok_s(r)
        roof = f"{200 * params * rate / (gflops * 1e9):.1f}%" if params and gflops else "-"
        vs_lmeval = None if key.startswith("tree") else ratio(r, res.get("lmeval"))
        vs = "-" if vs_lmeval is None else f"{vs_lmeval:.2f}x"
        body.append(
            [
                label,
                r["questions"],
                r["tokens"],
                f"{r['wall']:.1f}",
                f"{rate:.1f}",
                vs,
                f"{r['peak_rss_mib']:.0f}" + ("" if "peak_tree_pss_mib" in r else " *"),
                roof,
            ]
        )
    headers = [
        "system",
        "questions",
        "generated tokens",
        "wall s",
        "tokens/s",
        "vs lm-eval hf",
        "peak RSS MiB",
        "% of matmul roofline",
    ]
    return tabulate(body, headers=headers, tablefmt="github")


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value >= target else "not met"


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def target_notes(res: dict[str, dict], a: argparse.Namespace) -> list[str]:
    """One line per target of issue 5, each marked met / not met / not measured."""
    gvr = ratio(res.get("gvr_hf"), res.get("lmeval"))
    t = TARGETS
    notes = [
        f"Target our hf `g,v,r` >= {t['gvr_vs_lmeval']}x lm-eval hf: {fmt(gvr)} — {verdict(gvr, t['gvr_vs_lmeval'])}."
    ]
    v_gvr, v_g = ratio(res.get("gvr_vllm"), res.get("gvr_hf")), ratio(res.get("g_vllm"), res.get("g_hf"))
    notes.append(
        f"Target vLLM >= {t['vllm_vs_hf']}x our hf (`g,v,r`): {fmt(v_gvr)} — {verdict(v_gvr, t['vllm_vs_hf'])}"
        f" (`g`: {fmt(v_g)})" + ("" if vllm_installed() else "; vllm is not installed here") + "."
    )
    for backend in ("hf", "vllm"):
        tr = ratio(res.get(f"tree_n_{backend}"), res.get(f"tree_rep_{backend}"))
        if backend == "hf" or tr is not None:
            notes.append(
                f"Target n-sampling trees >= {t['tree']}x repeated prompts ({backend}): {fmt(tr)}"
                f" — {verdict(tr, t['tree'])}."
            )
    small, big = res.get("g_hf"), res.get("g_hf_mem")
    if small and big and "peak_rss_mib" in small and "peak_rss_mib" in big:
        growth = big["peak_rss_mib"] / small["peak_rss_mib"] - 1
        mark = "met" if growth <= t["memory_growth"] else "not met"
        notes.append(
            f"Target peak memory flat as questions grow (`g`, hf): {small['peak_rss_mib']:.0f} MiB at"
            f" {small['questions']} vs {big['peak_rss_mib']:.0f} MiB at {big['questions']} questions"
            f" ({growth:+.1%}; flat = within {t['memory_growth']:.0%}) — {mark}."
            + (
                f" The smaller run fills less than one batch ({small['questions']} < batch size {a.batch_size}),"
                " so its KV cache is smaller: compare sizes that fill whole batches."
                if small["questions"] < a.batch_size
                else ""
            )
        )
    else:
        notes.append("Target peak memory flat as questions grow: not measured.")
    notes.append(path_note(res, a.device))
    return notes


def path_ratio(res: dict[str, dict], device: str) -> float | None:
    """Our hf ``g,v,r`` tokens/s on continuous batching over the same row on ``generate()``."""
    keys = path_rows(device)
    return ratio(res.get(keys["continuous"]), res.get(keys["generate"]))


def path_note(res: dict[str, dict], device: str) -> str:
    """Continuous batching against ``generate()``, and which of them the hf backend takes on this device."""
    r, path = path_ratio(res, device), generation_path(device)
    text = f"hf `g,v,r`, continuous batching / `generate()`: {fmt(r)}; the hf backend's path on this {device}: {path}"
    if device == "cpu":
        target = TARGETS["continuous_cpu"]
        text += f". Target (CPU) continuous batching >= {target}x `generate()`: {verdict(r, target)}"
        if r is not None and r < target and path == "generate":
            text += " — so the backend keeps `generate()` on CPUs (the `g,v,r (hf, generate)` row is its speed)"
    return text + "."


def method_notes(res: dict[str, dict], params: int | None, gflops: float, device: str = "cpu") -> list[str]:
    p = f"{params / 1e6:.0f}M" if params else "unknown"
    size, dtype = (8192, "bf16") if device.startswith("cuda") else (2048, "fp32")
    mm = f"{dtype} matmul {gflops:.1f} GFLOP/s (best of 8 torch {size}x{size} matmuls on the {device})"
    notes = [
        f"Roofline: measured {mm}. A row's fraction"
        f" = 2 x P x generated tokens / wall / that rate, P = {p} linear-layer parameters (LM head included,"
        " embedding lookup not): decode FLOPs ~ 2 FLOPs per parameter per generated token, ignoring prefill"
        " and attention (so rows with long prompts — v, r, trees — do more work than credited).",
        "Wall: generation only, model load excluded for every row (lm-eval: time inside its `generate_until`;"
        " ours: `run_task`; trees: `grow_trees`). Each row runs in its own process; peak RSS is the larger of that"
        " process's `ru_maxrss` (plus its largest finished child) and the peak of the summed PSS of its live"
        " process tree sampled every 0.5 s (vLLM's EngineCore and worker, which hold weights and KV cache)."
        " `*`: a row kept from before that sampler existed: `ru_maxrss` only, complete for an hf row (one"
        " process) but without vLLM's engine processes for a vLLM row. GPU memory not included.",
        "Tokens: the token ids each row generates, each finished sequence's stop token included (lm-eval's row"
        " counts the ids its `generate` returns up to the first stop or pad token, not its texts retokenized;"
        " lm-eval also cuts texts at the task's `until` strings). Evaluation rows are greedy; tree rows sample at"
        " temperature 0.3 (seed 0), so the two tree rows generate similar, not identical, token counts.",
    ]
    tn = res.get("tree_n_hf", {})
    if tn.get("prompt_tokens") and tn.get("distinct_prompt_tokens"):
        pre, shared, gen = tn["prompt_tokens"], tn["distinct_prompt_tokens"], tn["tokens"]
        notes.append(
            f"Trees on hf: {tn['nodes']} nodes in {tn['backend_calls']} backend calls. The n samples of a prompt"
            f" share one prefill (`HFBackend._prefill` repeats its KV cache n times): {shared} prompt tokens"
            f" prefilled where repeated prompts prefill {pre}. If time followed FLOPs, n-sampling would be"
            f" {(pre + gen) / (shared + gen):.2f}x repeated prompts on these trees (an upper bound: decoding on"
            " CPU is memory-bound, and both rows decode the same number of tokens)."
        )
    return notes


def timing_notes(res: dict[str, dict]) -> list[str]:
    """When the rows ran, and which were kept from an earlier, interrupted run of the same command."""
    done = [r for r in res.values() if "started" in r and "error" not in r]
    if not done:
        return []
    kept = sum(bool(r.get("kept")) for r in done)
    span = f"Rows measured between {min(r['started'] for r in done)} and {max(r['finished'] for r in done)}"
    return [span + (f"; {kept} of them kept from an earlier, interrupted run of this command." if kept else ".")]


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    desc = f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"
    try:
        import torch

        if torch.cuda.is_available():
            desc += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return desc


def linear_params(model_dir: str) -> int | None:
    """Weights one generated token multiplies (linear layers and LM head; not the embedding lookup)."""
    try:
        return sum(k * n for k, n in linear_shapes(model_dir))
    except (OSError, KeyError, ValueError):
        return param_count(model_dir)


def decode_ceiling(model_dir: str, batch: int, threads: int | None, device: str = "cpu") -> dict | None:
    """The decode tokens/s ``device`` allows at ``batch`` tokens per step: on a CPU its fp32 ``F.linear`` over the
    model's linear layers, on a GPU :func:`gpu_ceiling` from its measured bf16 matmul rate and copy bandwidth."""
    try:
        weights = linear_params(model_dir)
        if device.startswith("cuda"):
            return gpu_ceiling(weights, batch, matmul_gflops(device=device), copy_gbps(device))
        rate = linear_gflops(model_dir, batch, threads=threads)
    except (OSError, KeyError, ValueError):
        return None
    return {"batch": batch, "gflops": rate, "params": weights, "tok_s": rate * 1e9 / (2 * weights)}


def gpu_ceiling(weights: int, batch: int, gflops: float, gbps: float) -> dict:
    """A GPU's decode ceiling: each step reads every bf16 linear weight once (2 bytes each, at the copy bandwidth
    ``gbps``) for ``batch`` tokens, and multiplies them at ``gflops`` (2 FLOPs per weight per token); the lower
    of the two bounds holds. KV-cache reads and attention are not counted (a ceiling, not a prediction)."""
    bandwidth = batch * gbps * 1e9 / (2 * weights)
    compute = gflops * 1e9 / (2 * weights)
    return {
        "batch": batch,
        "gflops": gflops,
        "gbps": gbps,
        "params": weights,
        "tok_s_bandwidth": bandwidth,
        "tok_s_compute": compute,
        "tok_s": min(bandwidth, compute),
    }


def ceiling_note(res: dict[str, dict], ceiling: dict | None) -> list[str]:
    if not ceiling:
        return []
    share = "{:.2%}" if "gbps" in ceiling else "{:.0%}"  # GPU rows reach fractions of a percent
    rates = {key: tok_s(r) for key, r in res.items() if tok_s(r) and not key.startswith("tree")}
    fractions = ", ".join(f"{key} {share.format(rate / ceiling['tok_s'])}" for key, rate in rates.items())
    if "gbps" in ceiling:
        return [
            f"Decode ceiling (GPU): a step reads the model's {ceiling['params'] / 1e6:.0f}M bf16 linear-layer weights"
            f" ({2 * ceiling['params'] / 1e9:.2f} GB) at the measured copy bandwidth {ceiling['gbps']:.0f} GB/s for"
            f" {ceiling['batch']} tokens: {ceiling['tok_s_bandwidth']:,.0f} tokens/s; the measured bf16 matmul rate"
            f" {ceiling['gflops'] / 1e3:.1f} TFLOP/s allows {ceiling['tok_s_compute']:,.0f} tokens/s; the ceiling is"
            f" the lower, {ceiling['tok_s']:,.0f} tokens/s. Evaluation rows reach: {fractions}."
        ]
    return [
        f"Decode ceiling: this machine's fp32 `F.linear` over the model's {ceiling['params'] / 1e6:.0f}M linear-layer"
        f" weights at {ceiling['batch']} tokens per call (one decoding step of a full batch) runs at"
        f" {ceiling['gflops']:.1f} GFLOP/s, i.e. at most {ceiling['tok_s']:.0f} generated tokens/s if nothing but"
        f" the linear layers ran and every batch slot held a live sequence. Evaluation rows reach: {fractions}."
    ]


def report(
    a: argparse.Namespace,
    rows: list,
    res: dict[str, dict],
    params: int | None,
    gflops: float,
    load: tuple,
    ceiling: dict | None = None,
) -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, cwd=REPO).stdout.strip()
    cmd = "python bench/throughput.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    mode = " (--quick)" if a.quick else ""
    missing = sum(r.get("error") == NOT_YET for r in res.values())
    mode += f" (partial: {missing} of {len(res)} rows not measured yet)" if missing else ""
    notes = target_notes(res, a) + method_notes(res, params, gflops, a.device) + ceiling_note(res, ceiling)
    notes += timing_notes(res) + a.note
    bullets = "\n".join(f"- {n}" for n in notes)
    return (
        f"\n## Throughput{mode}: {a.model}, {a.questions} GSM8K test questions ({datetime.date.today()})\n\n"
        f"- Command: `{cmd.strip()}` (commit {commit}, uncommitted changes may apply)\n- Machine: {machine()}\n"
        f"- Load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f}\n"
        f"- {a.dtype}, torch threads {a.threads or 'default'}, max new tokens {a.max_new_tokens},"
        f" batch size {a.batch_size}; evaluation rows greedy;"
        f" trees: {a.tree_questions} questions, branching {a.branching}\n\n"
        f"{table(rows, res, params, gflops)}\n\nNotes on this run:\n{bullets}\n"
    )


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    from harness.inference.models import resolve_model

    load0 = os.getloadavg()[0]
    model_dir = str(resolve_model(a.model))
    try:
        rows = plan(a, model_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    params, gflops = linear_params(model_dir), matmul_gflops(threads=a.threads, device=a.device)
    kind = "bf16" if a.device.startswith("cuda") else "fp32"
    print(f"{a.model}: {params or 0:,} linear-layer parameters; {kind} matmul {gflops:.1f} GFLOP/s", flush=True)
    ceiling = decode_ceiling(model_dir, a.batch_size, a.threads, a.device)
    res: dict[str, dict] = {}
    work = work_dir(a)
    print(f"finished rows are kept in {work}", flush=True)
    for key, label, spec in rows:
        if isinstance(spec, dict):
            r, kept = measure(key, spec, work, a.fresh, a.report_only)
            res[key] = {**r, "kept": kept}
            rate = tok_s(r)
            shown = r.get("error") or (
                f"{r['tokens']} tokens, {r['wall']:.1f} s, {rate:.1f} tok/s, peak RSS {r['peak_rss_mib']:.0f} MiB"
            )
            print(f"{label}: {shown}" + (f" (kept from {r['started']})" if kept else ""), flush=True)
    text = report(a, rows, res, params, gflops, (load0, os.getloadavg()[0]), ceiling)
    print(text)
    add_section(Path(a.out), text)
    paths = path_ratio(res, a.device)
    print(f"ratio_gvr_vs_generate={paths:.2f}" if paths is not None else "ratio_gvr_vs_generate=nan")
    gvr = ratio(res.get("gvr_hf"), res.get("lmeval"))
    print(f"ratio_vs_lmeval_hf={gvr:.2f}" if gvr is not None else "ratio_vs_lmeval_hf=nan")


SECTIONS_MARK = "<!-- bench/throughput.py adds each run's section below this line, newest first -->"


def add_section(page: Path, text: str) -> None:
    """Put a run's section first among the page's dated sections (below ``SECTIONS_MARK``), or at its end."""
    old = page.read_text(encoding="utf-8") if page.is_file() else ""
    if SECTIONS_MARK in old:
        head, rest = old.split(SECTIONS_MARK, 1)
        new = f"{head}{SECTIONS_MARK}\n{text.rstrip()}\n\n{rest.lstrip()}"
    else:
        new = old + text
    page.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
