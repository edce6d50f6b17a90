"""Results in lm-eval's layout (results, configs, versions, n-samples, config) plus a ``malt`` block."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from harness.evaluate import EvalConfig, TaskResult
from harness.prompts import PromptSet

RESULTS_FORMAT = 1


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(fh.name, path)


def build_results(
    results: list[TaskResult],
    cfg: EvalConfig,
    prompts: dict[str, PromptSet],
    roles_desc: dict[str, dict],
    model: str,
    n_docs: dict[str, int],
    max_new_tokens: dict[str, dict[str, int]],
) -> dict:
    """The results document of one ``malt-eval`` run."""
    agents = ",".join(r[0] for r in cfg.roles)
    out: dict = {"results": {}, "configs": {}, "versions": {}, "n-samples": {}, "higher_is_better": {}}
    malt: dict = {
        "format": RESULTS_FORMAT,
        "agents": agents,
        "roles": roles_desc,
        "votes": cfg.votes,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "seeds": cfg.seeds,
        "subset": cfg.subset,
        "limit": cfg.limit,
        "limited": cfg.limit is not None,
        "max_new_tokens": max_new_tokens,
        "prompt_hash": {},
        "prompt_source": {},
        "per_seed": {},
        "calls_per_question": {},
        "tokens_per_question": {},
        "stage_stats": {},
        "wall_time": {},
    }
    for r in results:
        kind, spread = r.spread
        out["results"][r.task] = {
            "alias": r.task,
            "acc,none": r.acc,
            f"acc_{kind},none": spread,
        }
        out["configs"][r.task] = {"task": r.task, "output_type": "generate_until", "metadata": {"version": 1.0}}
        out["versions"][r.task] = 1.0
        out["n-samples"][r.task] = {"original": n_docs[r.task], "effective": r.n}
        out["higher_is_better"][r.task] = {"acc": True}
        malt["prompt_hash"][r.task] = prompts[r.task].hash
        malt["prompt_source"][r.task] = prompts[r.task].source
        malt["per_seed"][r.task] = r.per_seed
        malt["calls_per_question"][r.task] = r.per_question("calls")
        malt["tokens_per_question"][r.task] = r.per_question("tokens")
        malt["stage_stats"][r.task] = r.stats
        malt["wall_time"][r.task] = r.wall_time
    out["config"] = {
        "model": "malt",
        "model_args": f"model={model},agents={agents}",
        "batch_size": cfg.batch_size,
        "limit": cfg.limit,
        "gen_kwargs": {"temperature": cfg.temperature, "top_p": cfg.top_p},
    }
    out["malt"] = malt
    out["date"] = time.time()
    out["platform"] = platform.platform()
    return out


def write_results(doc: dict, results: list[TaskResult], output_path: str | os.PathLike, log_samples: bool) -> Path:
    """Write ``results_<ts>.json`` (and ``samples_<task>_<ts>.jsonl``) under ``output_path``."""
    out = Path(output_path)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    path = out / f"results_{stamp}.json"
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    if log_samples:
        for r in results:
            lines = "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in r.samples)
            atomic_write(out / f"samples_{r.task}_{stamp}.jsonl", lines)
    return path


def summary_table(doc: dict) -> str:
    """The per-task summary table printed by ``malt-eval``."""
    malt = doc["malt"]
    rows = []
    for task, res in doc["results"].items():
        spread_key = next(k for k in res if k.startswith("acc_"))
        spread = res[spread_key]
        rows.append(
            [
                task + (" (limit)" if malt["limited"] else ""),
                malt["agents"],
                malt["votes"],
                f"{100 * res['acc,none']:.1f}",
                "" if spread is None else f"{100 * spread:.1f} ({spread_key.split(',')[0][4:]})",
                doc["n-samples"][task]["effective"],
                len(malt["per_seed"][task]),
                f"{malt['calls_per_question'][task]:.1f}",
                f"{malt['tokens_per_question'][task]:.0f}",
            ]
        )
    headers = ["task", "agents", "votes", "acc %", "±", "n", "seeds", "calls/q", "tokens/q"]
    return tabulate(rows, headers=headers, tablefmt="github")
