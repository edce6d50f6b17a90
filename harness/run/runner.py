"""Our malt_* tasks' runner: :func:`run_spec` evaluates a spec's malt_* tasks (:func:`harness.api.run_eval`
sends them here).

Validation comes first (no model or data loaded for a bad spec); with ``output_path`` the run takes the
folder's lock, checks the folder's run record (its provenance, :mod:`harness.provenance`; ``start_over`` moves
an earlier run aside first) and keeps every finished batch
(:mod:`harness.run.checkpoint`), so a rerun of the same spec resumes, and a finished one rereads its results
without loading any model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import harness.provenance as provenance
from harness.core.errors import MaltError
from harness.core.identity import record_diff
from harness.core.roles import letters
from harness.core.runfiles import RunLock
from harness.inference.backends.base import SamplingParams
from harness.inference.engines import RoleEngine
from harness.inference.models import DEFAULT_MODEL
from harness.provenance import Provenance
from harness.run.checkpoint import Checkpoint
from harness.run.evaluate import TaskResult, run_task
from harness.run.results import ResultsConfig, build_results, summary_table, write_results
from harness.solver.plans import SolverPlan
from harness.solver.protocol import EvalConfig, batches
from harness.solver.steps import SolveContext
from harness.spec import EvalSpec
from harness.tasks.data import data_dir, load_split
from harness.tasks.prompts import PromptSet, load_prompts

log = logging.getLogger("harness")
Notes = Callable[[str], None]


@dataclass
class EvalResults:
    """What an evaluation produced: the results document (lm-eval's layout plus ``malt``), per-task results
    with their graded rows, and the results file when the spec had an ``output_path``."""

    doc: dict
    tasks: list[TaskResult]
    path: Path | None = None
    lm_eval: dict | None = None  # lm-eval's results of the spec's lm-eval tasks (harness.lmeval.run)

    def acc(self, task: str) -> float:
        """Accuracy on ``task`` (mean over seeds)."""
        return self.doc["results"][task]["acc,none"]

    def table(self) -> str:
        """The summary table ``malt-eval`` prints (and lm-eval's own table of its tasks)."""
        parts = [summary_table(self.doc)] if self.tasks else []
        if self.lm_eval is not None:
            from lm_eval.utils import make_table

            parts.append(make_table(self.lm_eval))
        return "\n".join(parts)


@dataclass
class Run:
    """Our malt_* tasks of a spec, resolved: plan, protocol, prompts, questions, models per role (no model loaded)."""

    spec: EvalSpec
    plan: SolverPlan
    cfg: EvalConfig
    tasks: list[str]
    prompts: dict[str, PromptSet]
    docs: dict[str, list[dict]]
    model: str | None
    role_models: dict[str, str | None]
    role_adapters: dict[str, str | None]

    def provenance(self, engines: Mapping[str, RoleEngine] | None = None) -> Provenance:
        """The run's provenance record (:mod:`harness.provenance`): what ``OUT/provenance.json`` and the results
        hold."""
        return provenance.from_run(self, engines)


def run_spec(
    spec: EvalSpec,
    notes: Notes,
    engines: Mapping[str, RoleEngine] | None,
    progress: bool,
    run: Run | None = None,
) -> EvalResults:
    """Evaluate ``spec``'s malt_* tasks (run_eval's own runner; ``run``: ``spec`` prepared already)."""
    run = run or prepare(spec, notes)
    prov = run.provenance(engines)
    if not spec.output_path:
        return _run_tasks(run, None, engines, progress, prov)
    with RunLock(spec.output_path, "malt-eval") as lock:
        if lock.took_over:
            notes(f"note: took over the stale lock of dead process {lock.took_over}")
        ckpt = Checkpoint(spec.output_path, {"provenance": prov.to_dict()}, compare=record_diff)
        if ckpt.n_done:
            notes(f"resuming: {ckpt.n_done} finished batches on record in {spec.output_path}")
        return _run_tasks(run, ckpt, engines, progress, prov)


def spec_provenance(spec: EvalSpec, notes: Notes | None = None) -> Provenance | None:
    """The provenance record ``spec``'s malt_* tasks would run with (data, prompts and adapters resolved, no
    model loaded); ``None`` when it has none (lm-eval's tasks key their request cache themselves)."""
    if not spec.task_names():
        return None
    return prepare(spec, notes or log.warning).provenance()


def prepare(spec: EvalSpec, notes: Notes) -> Run:
    """Check the spec, load prompts and questions, resolve ``malt_run``: everything but the models."""
    plan = spec.check()
    cfg = spec.protocol(plan)
    tasks = spec.task_names()
    folder = data_dir(spec.data_dir)
    prompts = {t: load_prompts(t, spec.prompts_file) for t in tasks}
    plan.info(prompts)  # a plan's own templates must exist before anything runs
    docs = {t: load_split(t, "test", folder) for t in tasks}
    for t in tasks:  # fail on impossible subsets before loading any model
        if cfg.subset and cfg.subset > len(docs[t]):
            raise MaltError(f"--subset {cfg.subset} is larger than {t}'s split ({len(docs[t])} questions)")
    model, role_adapters, run_notes = spec.trained_roles(cfg.roles)
    for note in run_notes:
        notes(f"note: {note}")
    role_models = {r: spec.role_models.get(r) for r in cfg.roles}
    return Run(spec, plan, cfg, tasks, prompts, docs, model, role_models, role_adapters)


def _engines(run: Run, ckpt: Checkpoint | None) -> tuple[Mapping[str, RoleEngine], dict]:
    s = run.spec
    engines, described = s.load_engines(run.cfg.roles, s.batch_size, run.model, run.role_models, run.role_adapters)
    if ckpt is not None:
        ckpt.roles = described
    return engines, described


def _given(run: Run, engines: Mapping[str, RoleEngine], ckpt: Checkpoint | None) -> dict:
    """How ready-made engines are described in the results."""
    described = {
        r: {"model": run.model or getattr(engines[r].backend, "model_id", None), "path": None, "adapter": None}
        for r in run.cfg.roles
    }
    if ckpt is not None:
        ckpt.roles = described
    return described


def _run_tasks(
    run: Run, ckpt: Checkpoint | None, engines: Mapping[str, RoleEngine] | None, progress: bool, prov: Provenance
) -> EvalResults:
    from tqdm.auto import tqdm

    cfg, docs, prompts = run.cfg, run.docs, run.prompts
    todo = [
        (t, seed, start)
        for t in run.tasks
        for seed, start, chunk in batches(len(docs[t]), cfg)
        if ckpt is None or ckpt.get(t, seed, start, prompts[t].hash, chunk) is None
    ]
    if engines is not None:
        described = _given(run, engines, ckpt)
    elif todo:
        engines, described = _engines(run, ckpt)
    else:  # everything is on record: no model needed
        engines, described = {}, ckpt.roles
    results, used_tokens = [], {}
    for task in run.tasks:
        tokens = run.spec.task_tokens(task, cfg.roles)
        used_tokens[task] = tokens
        params = {r: SamplingParams(tokens[r], cfg.temperature, cfg.top_p) for r in cfg.roles}
        n_q = sum(len(chunk) for _, _, chunk in batches(len(docs[task]), cfg))
        bar = tqdm(total=n_q, desc=f"{task} [{letters(cfg.roles)}]", unit="q", disable=not progress)
        seen = {"tokens": 0}
        t0 = time.time()

        def on_stage(role: str, n: int, toks: int, bar=bar, seen=seen, t0=t0) -> None:
            seen["tokens"] += toks
            bar.set_postfix_str(f"{role} done, {seen['tokens'] / max(1e-9, time.time() - t0):.1f} tok/s")

        ctx = SolveContext({task: prompts[task]}, dict(engines), params, on_stage=on_stage)
        results.append(run_task(task, docs[task], ctx, cfg, progress=bar.update, checkpoint=ckpt))
        bar.close()
    model_name = run.model or described.get(cfg.roles[0], {}).get("model") or DEFAULT_MODEL
    n_docs = {t: len(docs[t]) for t in run.tasks}
    backend = getattr(dict(engines).get(cfg.roles[0]), "backend", None)  # the first role's: tokenizer info
    config = ResultsConfig(
        cfg=cfg,
        prompts=prompts,
        roles=described,
        model=model_name,
        n_docs=n_docs,
        max_new_tokens=used_tokens,
        label=run.spec.label,
        plan=run.plan,
        backend=backend,
        provenance=prov.to_dict(),
    )
    doc = build_results(results, config)
    path = None
    if run.spec.output_path:
        path = write_results(doc, results, run.spec.output_path, cfg.log_samples)
    return EvalResults(doc, results, path)
