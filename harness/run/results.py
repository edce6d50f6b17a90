"""Results in lm-eval's layout plus a ``malt`` block.

The results file carries every key lm-eval 0.4.13 writes for a run (``results`` with ``name``/``alias``/
``sample_len``, ``group_subtasks``, ``configs``, ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``,
``config``, ``git_hash``, ``date``, environment and tokenizer info, ``task_hashes``, ``model_*``,
``system_instruction*``, ``chat_template*``, ``fewshot_as_multiturn``, ``total_evaluation_time_seconds``); null
where a key does not apply. Sample lines carry lm-eval's fields (``arguments``, ``resps``, ``filtered_resps``,
``filter``, ``metrics``, the three hashes, computed with lm-eval's ``hash_string`` as its evaluator does) beside
every role's turns.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.core.roles import letters
from harness.core.runfiles import atomic_write
from harness.core.supersede import move_aside, superseded_by
from harness.provenance import system_fields
from harness.run.evaluate import TaskResult
from harness.solver.plans import SolverPlan
from harness.solver.protocol import EvalConfig
from harness.tasks.prompts import PromptSet, task_version

RESULTS_FORMAT = 1


@dataclass
class ResultsConfig:
    """What :func:`build_results` writes beside the graded results: the run that made them."""

    cfg: EvalConfig = field(metadata={"help": "The protocol: roles, votes, seeds, subset, limit, sampling."})
    prompts: dict[str, PromptSet] = field(metadata={"help": "Each task's prompts (hashes, sources, contexts)."})
    roles: dict[str, dict] = field(metadata={"help": "What each role ran (model, path, adapter): malt.roles."})
    model: str = field(metadata={"help": "The model's name (config.model_args.model, model_name)."})
    n_docs: dict[str, int] = field(metadata={"help": "Questions in each task's split (n-samples.original)."})
    max_new_tokens: dict[str, dict[str, int]] = field(metadata={"help": "Per task, each role's token budget."})
    label: str | None = field(default=None, metadata={"help": "The row's name on the leaderboard (malt.label)."})
    plan: SolverPlan | None = field(default=None, metadata={"help": "The solver plan that ran (malt.agents)."})
    backend: Any = field(default=None, metadata={"help": "The generator's backend: tokenizer, context, template."})
    provenance: dict | None = field(default=None, metadata={"help": "The run's record (malt.provenance)."})


def build_results(results: list[TaskResult], config: ResultsConfig) -> dict:
    """The results document of one ``malt-eval`` run.

    The ``malt`` block's system fields come from :func:`harness.provenance.system_fields`; the plan's own record
    (``config.plan``) joins it. The backend's tokenizer, context length and chat template fill lm-eval's
    ``tokenizer_*``, ``eot_token_id``, ``max_length`` and ``chat_template`` keys (null without one).
    The logged rows of ``results`` (those with ``doc``) gain lm-eval's sample fields (:func:`lm_eval_fields`).
    """
    cfg, prompts, plan = config.cfg, config.prompts, config.plan
    agents = plan.name if plan else letters(cfg.roles)
    out: dict = {"results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {}}
    out.update({"higher_is_better": {}, "n-samples": {}})
    system = system_fields(
        agents,
        cfg.votes,
        roles=config.roles,
        temperature=cfg.temperature,
        provenance=config.provenance,
        seeds=cfg.seeds,
        subset=cfg.subset,
        label=config.label,
    )
    malt: dict = {
        "format": RESULTS_FORMAT,
        **system,
        "top_p": cfg.top_p,
        "limit": cfg.limit,
        "limited": cfg.limit is not None,
        "max_new_tokens": config.max_new_tokens,
        "prompt_hash": {},
        "prompt_source": {},
        "per_seed": {},
        "calls_per_question": {},
        "tokens_per_question": {},
        "stage_stats": {},
        "prompts_truncated": {},
        "wall_time": {},
        "grader_errors": {},  # per task: answers whose grading raised (graded wrong, not really graded)
        "grader_timeouts": {},  # per task: answers whose comparison ran out of time
    }
    if plan:
        malt.update(plan.info(prompts))
    for r in results:
        kind, spread = r.spread
        out["results"][r.task] = {
            "name": r.task,
            "alias": r.task,
            "sample_len": r.n,
            "acc,none": r.acc,
            f"acc_{kind},none": spread,
        }
        version = task_version(r.task)
        out["configs"][r.task] = task_config(r.task)
        out["versions"][r.task] = version
        out["n-shot"][r.task] = 0
        out["n-samples"][r.task] = {"original": config.n_docs[r.task], "effective": r.n}
        out["higher_is_better"][r.task] = {"acc": True}
        tokens = (config.max_new_tokens.get(r.task) or {}).values()
        gen = {"until": [], "do_sample": cfg.temperature > 0, "temperature": cfg.temperature, "top_p": cfg.top_p}
        gen["max_gen_toks"] = next(iter(tokens), None)
        r.samples[:] = [{**s, **lm_eval_fields(s, prompts[r.task], gen)} if "doc" in s else s for s in r.samples]
        malt["prompt_hash"][r.task] = prompts[r.task].hash
        malt["prompt_source"][r.task] = prompts[r.task].source
        malt["per_seed"][r.task] = r.per_seed
        malt["calls_per_question"][r.task] = r.per_question("calls")
        malt["tokens_per_question"][r.task] = r.per_question("tokens")
        malt["stage_stats"][r.task] = r.stats
        malt["prompts_truncated"][r.task] = sum(s.get("prompts_truncated", 0) for s in r.stats.values())
        malt["wall_time"][r.task] = r.wall_time
        malt["grader_errors"][r.task], malt["grader_timeouts"][r.task] = r.grader_faults
    out["config"] = {
        "model": "malt",
        "model_args": {"model": config.model, "agents": agents},
        "batch_size": cfg.batch_size,
        "batch_sizes": [],
        "device": None,
        "use_cache": None,
        "limit": cfg.limit,
        "bootstrap_iters": 0,  # the spread is ours (std over seeds or binomial stderr), not lm-eval's bootstrap
        "gen_kwargs": {"temperature": cfg.temperature, "top_p": cfg.top_p},
        "random_seed": None,  # questions and samples are seeded per (seed, batch): malt.seeds, malt.subset
        "numpy_seed": None,
        "torch_seed": None,
        "fewshot_seed": None,
    }
    out["malt"] = malt
    out.update(_lm_eval_run_info(results, config.model, config.backend))
    out["platform"] = platform.platform()
    return out


def task_config(task: str) -> dict:
    """``configs[task]``: the task's lm-eval YAML as lm-eval reads it (functions named, not called)."""
    from harness.lmeval.compat import load_yaml
    from harness.tasks.prompts import tasks_dir

    path = tasks_dir() / task / f"{task}.yaml"
    try:
        cfg = dict(load_yaml(str(path), resolve_func=False, recursive=True))
    except (OSError, ValueError) as exc:
        return {"task": task, "output_type": "generate_until", "error": f"{path}: {exc}"}
    return {k: v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v) for k, v in cfg.items()}


def _lm_eval_run_info(results: list[TaskResult], model: str, backend: Any) -> dict:
    """The run-level keys lm-eval's evaluator and ``EvaluationTracker`` add (same helpers, same meanings)."""
    from lm_eval.loggers.utils import add_env_info, get_git_commit_hash
    from lm_eval.utils import hash_string, sanitize_model_name

    tok = getattr(backend, "tokenizer", None)
    template = getattr(tok, "chat_template", None) if tok is not None else None
    template = template if isinstance(template, str) else None
    info: dict = {"git_hash": get_git_commit_hash(), "date": time.time()}
    add_env_info(info)

    def token(name: str) -> list | None:
        return [getattr(tok, name), str(getattr(tok, f"{name}_id"))] if tok is not None else None

    info.update(
        {
            "tokenizer_pad_token": token("pad_token"),
            "tokenizer_eos_token": token("eos_token"),
            "tokenizer_bos_token": token("bos_token"),
            "eot_token_id": getattr(tok, "eos_token_id", None),
            "max_length": getattr(backend, "context", None),
            "task_hashes": {r.task: h for r in results if (h := task_hash(r.samples))},  # {} without samples
            "model_source": "malt",
            "model_name": model,
            "model_name_sanitized": sanitize_model_name(model),
            "system_instruction": None,
            "system_instruction_sha": None,
            "fewshot_as_multiturn": False,
            "chat_template": template,  # the generator's template, which renders every role's chat messages
            "chat_template_sha": hash_string(template) if template else None,
            "total_evaluation_time_seconds": str(sum(r.wall_time for r in results)),
        }
    )
    return info


def task_hash(rows: list[dict]) -> str | None:
    """lm-eval's ``task_hashes`` entry: ``hash_string`` of every sample's doc + prompt + target hashes."""
    from lm_eval.utils import hash_string

    if not rows or "doc_hash" not in rows[0]:
        return None
    return hash_string("".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in rows))


def lm_eval_fields(row: dict, prompts: PromptSet, gen_kwargs: dict) -> dict:
    """lm-eval's sample-line fields of one graded row (as ``lm-eval --model malt`` logs the same question).

    The request's context (``arguments``' ``arg_0``, hashed into ``prompt_hash``) is the generator's user prompt,
    which is the task's ``doc_to_text``; ``resps`` holds each vote's final text, ``filtered_resps`` the text of
    the voted pipeline; the filter is lm-eval's default ``none`` and the metric ``acc`` (the row's own value).
    """
    from lm_eval.utils import hash_string

    from harness.core.digests import doc_hash

    doc = row["doc"]
    context = prompts.messages("generator", question=prompts.question(doc))[-1]["content"]
    texts = [_final_text(s) for s in row.get("samples") or []]
    chosen = row.get("chosen_sample")
    return {
        "arguments": {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}},
        "resps": [texts],
        "filtered_resps": [texts[chosen or 0] if texts else ""],
        "filter": "none",
        "metrics": ["acc"],
        "doc_hash": doc_hash(doc),
        "prompt_hash": hash_string(context),
        "target_hash": hash_string(str(row.get("target"))),
    }


def _final_text(sample: dict) -> str:
    turns = sample.get("turns") or {}
    return list(turns.values())[-1]["text"] if turns else ""


def write_results(doc: dict, results: list[TaskResult], output_path: str | os.PathLike, log_samples: bool) -> Path:
    """Write ``results_<ts>.json`` (and ``samples_<task>_<ts>.jsonl``) under ``output_path``.

    Earlier results files of the same run that covered only tasks of this one are superseded (moved into
    ``superseded/`` after the new files are in place: :mod:`harness.core.supersede`), so a resumed or repeated run
    leaves one results file; an unreadable one is kept, with a warning.
    """
    out = Path(output_path)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    path = out / f"results_{stamp}.json"
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    if log_samples:
        for r in results:
            lines = "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in r.samples)
            atomic_write(out / f"samples_{r.task}_{stamp}.jsonl", lines)
    move_aside(superseded_by(out, doc, keep=path))
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
    table = tabulate(rows, headers=headers, tablefmt="github")
    for task, n in malt.get("prompts_truncated", {}).items():
        if n:
            table += f"\nwarning: {task}: {n} prompts did not fit the model's context and lost their oldest tokens"
    for task, errors in malt.get("grader_errors", {}).items():
        timeouts = malt.get("grader_timeouts", {}).get(task, 0)
        if errors or timeouts:
            table += (
                f"\nwarning: {task}: the grader raised on {errors} and ran out of time on {timeouts} answers"
                " (graded wrong: grader_errors, grader_timeouts)"
            )
    return table
