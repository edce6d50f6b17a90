"""Results in lm-eval's layout (results, configs, versions, n-samples, config) plus a ``malt`` block."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from tabulate import tabulate

from harness.evaluate import EvalConfig, TaskResult
from harness.plans import SolverPlan
from harness.prompts import PromptSet, task_version
from harness.roles import letters
from harness.runfiles import atomic_write

RESULTS_FORMAT = 1


def build_results(
    results: list[TaskResult],
    cfg: EvalConfig,
    prompts: dict[str, PromptSet],
    roles_desc: dict[str, dict],
    model: str,
    n_docs: dict[str, int],
    max_new_tokens: dict[str, dict[str, int]],
    label: str | None = None,
    plan: SolverPlan | None = None,
) -> dict:
    """The results document of one ``malt-eval`` run.

    ``label``: the row's name on the leaderboard (``malt.label``, e.g. ``"MALT"`` from ``malt-eval suite``).
    ``plan``: the solver plan that ran (its name is ``malt.agents``; its own record joins the ``malt`` block).
    """
    agents = plan.name if plan else letters(cfg.roles)
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
        "prompts_truncated": {},
        "wall_time": {},
    }
    if label:
        malt["label"] = label
    if plan:
        malt.update(plan.info(prompts))
    for r in results:
        kind, spread = r.spread
        out["results"][r.task] = {
            "alias": r.task,
            "acc,none": r.acc,
            f"acc_{kind},none": spread,
        }
        version = task_version(r.task)
        out["configs"][r.task] = {"task": r.task, "output_type": "generate_until", "metadata": {"version": version}}
        out["versions"][r.task] = version
        out["n-samples"][r.task] = {"original": n_docs[r.task], "effective": r.n}
        out["higher_is_better"][r.task] = {"acc": True}
        malt["prompt_hash"][r.task] = prompts[r.task].hash
        malt["prompt_source"][r.task] = prompts[r.task].source
        malt["per_seed"][r.task] = r.per_seed
        malt["calls_per_question"][r.task] = r.per_question("calls")
        malt["tokens_per_question"][r.task] = r.per_question("tokens")
        malt["stage_stats"][r.task] = r.stats
        malt["prompts_truncated"][r.task] = sum(s.get("prompts_truncated", 0) for s in r.stats.values())
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
    """Write ``results_<ts>.json`` (and ``samples_<task>_<ts>.jsonl``) under ``output_path``.

    Earlier results files in the folder that covered only tasks of this one are superseded (removed
    after the new files are in place), so a resumed or repeated run leaves one results file.
    """
    out = Path(output_path)
    old = [p for p in out.glob("results_*.json") if _tasks_of(p) <= set(doc["results"])]
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    path = out / f"results_{stamp}.json"
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    if log_samples:
        for r in results:
            lines = "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in r.samples)
            atomic_write(out / f"samples_{r.task}_{stamp}.jsonl", lines)
    for p in old:
        if p == path:
            continue
        old_stamp = p.name[len("results_") : -len(".json")]
        p.unlink(missing_ok=True)
        for s in out.glob(f"samples_*_{old_stamp}.jsonl"):
            s.unlink(missing_ok=True)
    return path


def _tasks_of(path: Path) -> set[str]:
    try:
        return set(json.loads(path.read_text(encoding="utf-8")).get("results", {}))
    except (OSError, ValueError):
        return set()


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
    table = tabulate(rows, headers=headers, tablefmt="github")
    for task, n in malt.get("prompts_truncated", {}).items():
        if n:
            table += f"\nwarning: {task}: {n} prompts did not fit the model's context and lost their oldest tokens"
    return table
