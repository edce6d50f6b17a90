"""lm-eval's tasks in an :class:`~harness.spec.EvalSpec`: run through ``lm_eval.simple_evaluate`` with the solver
(:class:`harness.lm.MaltLM`) as the model, written by lm-eval's ``EvaluationTracker``.

lm-eval builds the contexts, samples the few-shot examples, applies the task's filters and metrics and lays out
the results (``OUT/<model>/results_<date>.json``, ``samples_<task>_<date>.jsonl``: every key lm-eval writes).
Each sample line also carries ``malt``: every pipeline's turns (messages, text, issues) for that document.

Votes (``--votes K``) use lm-eval's own mechanism: the task's ``repeats`` become K (one pipeline per repeat, sampled
at ``--temperature``) and each of its filter pipelines gets lm-eval's ``majority_vote`` before its final
``take_first``; lm-eval's tie rule holds (``Counter.most_common``: among equally frequent answers, the one
of the earliest pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import MaltError
from harness.lmeval_tasks import leaf_tasks, task_manager
from harness.models import DEFAULT_MODEL
from harness.solver import RoleEngine
from harness.spec import EvalSpec


def voted_filters(cfg: Mapping) -> list[dict]:
    """The task's filter pipelines with ``majority_vote`` before their last step (``take_first`` for lm-eval's
    default pipeline ``none``)."""
    pipelines = cfg.get("filter_list") or [{"name": "none", "filter": [{"function": "take_first"}]}]
    out = []
    for p in pipelines:
        steps = [dict(s) for s in p.get("filter", [])]
        if not any(s.get("function") == "majority_vote" for s in steps):
            last = steps.pop() if steps and steps[-1].get("function") == "take_first" else None
            steps += [{"function": "majority_vote"}, last or {"function": "take_first"}]
        out.append({**p, "filter": steps})
    return out


def task_specs(spec: EvalSpec, names: list[str]) -> list[str | dict]:
    """What ``simple_evaluate`` gets: the names, or with votes a config override per task (repeats, filters)."""
    votes = int(spec.votes)
    if votes == 1:
        return list(names)
    from lm_eval.tasks._yaml_loader import load_yaml

    tm = task_manager(spec.include_path)
    out: list[str | dict] = []
    for name in names:
        for task, _ in leaf_tasks(tm, name):
            entry = tm.task_index[task]
            cfg = load_yaml(entry.yaml_path, resolve_func=True) if entry.yaml_path else dict(entry.cfg or {})
            out.append({**cfg, "task": task, "repeats": votes, "filter_list": voted_filters(cfg)})  # a full config
    return out


def gen_kwargs(text: str | None) -> dict | None:
    """``--gen-kwargs k=v,...`` as lm-eval reads it, plus list values (``until=["."]``) as lists."""
    import ast

    from lm_eval.utils import simple_parse_args_string

    out = simple_parse_args_string(text) if text else {}
    for k, v in out.items():
        if isinstance(v, str) and v.startswith("["):
            try:
                out[k] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                raise MaltError(f"--gen-kwargs {k}: not a list: {v}") from None
    return out or None


def run_lm_eval_tasks(
    spec: EvalSpec, names: list[str], engines: Mapping[str, RoleEngine] | None = None, lm: Any = None
) -> dict:
    """Evaluate ``spec``'s system on the lm-eval tasks ``names``; return lm-eval's results (with ``samples``
    when ``spec.log_samples``), written under ``spec.output_path`` when it is set.

    Args:
        engines: ready-made role engines (e.g. a scripted backend); default: ``spec``'s models, loaded when
            the first request arrives.
        lm: a ready :class:`harness.lm.MaltLM` (to share its loaded models); built from ``spec`` when ``None``.
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    from harness.lm import MaltLM
    from harness.lm_eval_outputs import add_turn_grades, load_tasks

    if spec.seeds != 1 or spec.subset is not None:
        raise MaltError("lm-eval tasks take --limit, not --seeds/--subset (lm-eval's own sampling of documents)")
    if spec.solver_plan().key:
        raise MaltError(f"--debate runs on malt_* tasks only, not on {', '.join(names)}")
    lm = lm or MaltLM.from_spec(spec, engines, lm_eval_votes=True)
    tracker = EvaluationTracker(output_path=spec.output_path) if spec.output_path else None
    out = lm_eval.simple_evaluate(
        model=lm,
        # lm-eval names the run (model_name, the output subfolder) from these; without them it draws a random id
        model_args={"model": spec.model or DEFAULT_MODEL, "agents": lm.plan.name},
        tasks=task_specs(spec, names),
        task_manager=task_manager(spec.include_path),
        limit=spec.limit,
        num_fewshot=spec.num_fewshot,
        gen_kwargs=gen_kwargs(spec.gen_kwargs),
        apply_chat_template=spec.apply_chat_template,
        system_instruction=spec.system_instruction,
        fewshot_as_multiturn=spec.fewshot_as_multiturn,
        log_samples=True,
        evaluation_tracker=tracker,
    )
    samples = out.pop("samples", {})
    for task, rows in samples.items():
        for row in rows:
            row["malt"] = {"pipelines": lm.records.get((task, row["doc_id"]), [])}
    add_turn_grades(samples, load_tasks(spec.include_path, task_specs(spec, names)))  # each turn as lm-eval grades
    out["malt"] = {"agents": lm.plan.name, "votes": int(spec.votes), "roles": list(lm.plan.roles)}
    if tracker is not None:
        tracker.save_results_aggregated(results=out, samples=samples if spec.log_samples else None)
        if spec.log_samples:
            for task in out["configs"]:
                tracker.save_results_samples(task_name=task, samples=samples[task])
    if spec.log_samples:
        out["samples"] = samples
    return out
