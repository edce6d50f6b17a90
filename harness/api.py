"""The public call: :func:`run_eval` evaluates a spec on our malt_* tasks (:mod:`harness.run`) and on
lm-eval's tasks (:mod:`harness.lmeval`), one set of loaded models for both.

One way down: :func:`resolve` checks the spec once and resolves it into a :class:`ResolvedRun` (the plan and
protocol, our tasks' prompts, questions and models per role, lm-eval's task objects with their datasets), so a
bad spec, a missing file or an unreachable dataset stops before any model loads or any folder changes; then
the run executes: lm-eval's tasks through lm-eval, ours on the same loaded models, the results written and
tracked. With ``output_path`` a rerun of the same spec resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from harness.core.runfiles import RunLock
from harness.inference.engines import RoleEngine
from harness.run.checkpoint import start_over
from harness.run.runner import EvalResults, Notes, Run, prepare, run_spec
from harness.spec import EvalSpec

log = logging.getLogger("harness")


def run_eval(
    spec: EvalSpec,
    *,
    engines: Mapping[str, RoleEngine] | None = None,
    notes: Notes | None = None,
    progress: bool = True,
) -> EvalResults:
    """Evaluate ``spec`` on every task and return the results (written to ``spec.output_path`` if set).

    Args:
        spec: what to evaluate.
        engines: ready-made role engines (e.g. a scripted backend) instead of loading ``spec``'s models.
        notes: receives one-line notes (a resumed run, a taken-over lock, roles without an adapter);
            default: the ``harness`` logger.
        progress: show a progress bar per task.

    Raises:
        MaltError: bad spec, data, prompts, model or output folder (before any model is loaded where it can).
    """
    notes = notes or log.warning
    resolved = resolve(spec, notes)
    if spec.start_over and spec.output_path:
        with RunLock(spec.output_path, "malt-eval"):
            moved = start_over(spec.output_path)
        if moved:
            notes(f"start over: the earlier contents of {spec.output_path} moved to {moved}")
    results = _execute(resolved, engines, notes, progress)
    if spec.wandb_args is not None or spec.hf_hub_log_args:
        _track(spec, results, notes)
    return results


@dataclass(frozen=True)
class ResolvedRun:
    """A checked spec with everything but the models resolved: what :func:`run_eval` executes."""

    spec: EvalSpec  # the whole spec (``start_over`` already done)
    ours: Run | None  # our malt_* tasks, prepared (plan, protocol, prompts, questions, models per role)
    lm_tasks: tuple[str, ...]  # lm-eval's tasks
    lm_task_objects: Mapping[str, Any] | None  # their task objects, datasets loaded


def resolve(spec: EvalSpec, notes: Notes | None = None) -> ResolvedRun:
    """Check ``spec`` and resolve it (see the module docstring); no model is loaded and no folder changes.

    Raises:
        MaltError: a bad spec, prompts, data file, dataset or model path, in one line.
    """
    notes = notes or log.warning
    spec.check()
    spec = replace(spec, start_over=False)
    lm_tasks = tuple(spec.lm_eval_task_names())
    ours = prepare(replace(spec, tasks=tuple(spec.task_names())), notes) if spec.task_names() else None
    objects = None
    if lm_tasks:
        from harness.lmeval.run import load_spec_tasks

        objects = load_spec_tasks(spec, list(lm_tasks))
    return ResolvedRun(spec, ours, lm_tasks, objects)


def _track(spec: EvalSpec, results: EvalResults, notes: Notes) -> None:
    """Log the results documents (ours and lm-eval's, each with its samples) as lm-eval's trackers do."""
    from harness.tracking import log_to_wandb, push_to_hub

    docs = []
    if results.tasks:
        samples = {r.task: r.samples for r in results.tasks} if spec.log_samples else {}
        docs.append({**results.doc, "samples": samples})
        push_to_hub(spec, docs[0])  # lm-eval's tasks: pushed by their EvaluationTracker as they ran
    if results.lm_eval is not None:
        docs.append(results.lm_eval)
    where = log_to_wandb(spec, docs)
    if where:
        notes(f"W&B run logged in {where}")


def _execute(
    resolved: ResolvedRun, engines: Mapping[str, RoleEngine] | None, notes: Notes, progress: bool
) -> EvalResults:
    """Run a resolved spec: lm-eval's tasks through lm-eval, then ours on the models they loaded."""
    lm_doc = None
    if resolved.lm_tasks:
        from harness.lmeval.model import MaltLM
        from harness.lmeval.run import run_lm_eval_tasks

        spec = resolved.spec
        lm = MaltLM.from_spec(spec, dict(engines) if engines else None, lm_eval_votes=True)
        lm_doc = run_lm_eval_tasks(spec, list(resolved.lm_tasks), lm=lm, tasks=resolved.lm_task_objects)
        if resolved.ours is None:
            return EvalResults(lm_doc, [], None, lm_doc)
        engines = lm.loaded_engines()  # the models the lm-eval tasks loaded, if any (a resumed run may need none)
    ours = resolved.ours
    results = run_spec(ours.spec, notes, engines, progress, ours)
    results.lm_eval = lm_doc
    return results
