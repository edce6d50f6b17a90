"""The public call: :func:`run_eval` evaluates a spec on our malt_* tasks (:mod:`harness.run`) and on
lm-eval's tasks (:mod:`harness.lmeval`), one set of loaded models for both.

Validation comes first (no model or data loaded for a bad spec); with ``output_path`` a rerun of the same spec
resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from harness.core.runfiles import RunLock
from harness.inference.engines import RoleEngine
from harness.run.checkpoint import start_over
from harness.run.runner import EvalResults, Notes, prepare, run_spec
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
    if spec.start_over and spec.output_path:
        from dataclasses import replace

        spec.check()
        with RunLock(spec.output_path, "malt-eval"):
            moved = start_over(spec.output_path)
        if moved:
            notes(f"start over: the earlier contents of {spec.output_path} moved to {moved}")
        spec = replace(spec, start_over=False)
    results = _evaluate_all(spec, engines, notes, progress)
    if spec.wandb_args is not None or spec.hf_hub_log_args:
        _track(spec, results, notes)
    return results


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


def _evaluate_all(
    spec: EvalSpec, engines: Mapping[str, RoleEngine] | None, notes: Notes, progress: bool
) -> EvalResults:
    """:func:`run_eval` without the trackers: lm-eval's tasks through lm-eval, then ours."""
    lm_doc, run = None, None
    lm_tasks = spec.lm_eval_task_names()
    if lm_tasks:  # lm-eval's tasks run through lm-eval; ours below on the same loaded models
        from dataclasses import replace

        from harness.lmeval.model import MaltLM
        from harness.lmeval.run import load_spec_tasks, run_lm_eval_tasks

        spec.check()
        ours = replace(spec, tasks=tuple(spec.task_names()))
        run = prepare(ours, notes) if ours.tasks else None  # every task's data loads before any model
        tasks = load_spec_tasks(spec, lm_tasks)
        lm = MaltLM.from_spec(spec, dict(engines) if engines else None, lm_eval_votes=True)
        lm_doc = run_lm_eval_tasks(spec, lm_tasks, lm=lm, tasks=tasks)
        if run is None:
            return EvalResults(lm_doc, [], None, lm_doc)
        # the models the lm-eval tasks loaded, if any (a resumed run may need none)
        engines, spec = lm.loaded_engines(), ours
    results = run_spec(spec, notes, engines, progress, run)
    results.lm_eval = lm_doc
    return results
