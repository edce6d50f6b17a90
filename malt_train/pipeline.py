"""The MALT pipeline as library calls: trees -> labels -> SFT/DPO sets -> role adapters, each step resumable.

``malt-train``'s commands call these; so can Python. Every function reports what it did through ``say``
(one line each; the CLI prints them) and lays its files out as :mod:`harness.maltrun` says.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from harness.maltrun import (
    COUNTS_FILE,
    DATA_DIR,
    LABELED_FILE,
    LOGS_DIR,
    SKIPPED,
    SUMMARY_FILE,
    TREE_FILE,
    WORK_DIR,
    adapter_dir,
    has_adapter,
    run_model,
)
from harness.roles import ROLES
from harness.spec import EngineSpec
from malt_train.generate import GenerateConfig
from malt_train.launch import Launch, is_main

Say = Callable[[str], None]


def _quiet(line: str) -> None:
    """The default ``say``: nothing."""


def generate_tree(run: Path, cfg: GenerateConfig, engine: EngineSpec, say: Say = _quiet) -> dict:
    """Sample (or continue) the trees of ``cfg`` in ``run`` on ``engine``'s model; return the counts."""
    from tqdm.auto import tqdm

    from harness.backends import get_backend
    from harness.backends.base import SamplingParams
    from harness.data import load_split
    from harness.grading import canonical_task
    from harness.models import DEFAULT_MODEL
    from harness.prompts import load_prompts
    from harness.solver import SolveContext
    from malt_train.generate import generate, planned_batches

    cfg.task = canonical_task(cfg.task)
    cfg.check()
    task = cfg.task
    docs = load_split(task, "train", engine.data_dir)
    total = sum(len(batch) for _, batch in planned_batches(len(docs), cfg))
    prompts = {task: load_prompts(task, engine.prompts_file)}
    model = engine.model or (None if get_backend(engine.backend).remote else DEFAULT_MODEL)
    engines, _ = engine.engines(ROLES, max(8, cfg.batch_size * cfg.branching**2), model)
    model = model or engines["generator"].backend.model_id  # remote: the server's default model
    ctx = SolveContext(prompts, engines, dict.fromkeys(ROLES, SamplingParams(cfg.max_new_tokens)))
    bar = tqdm(total=total, desc="questions", unit="q")
    nodes = {"n": 0}

    def progress(q: int, n: int, tps: float) -> None:
        nodes["n"] += n
        bar.update(q)
        bar.set_postfix_str(f"nodes {nodes['n']}, {tps:.1f} tok/s")

    try:
        stats = generate(run, docs, ctx, cfg, model, progress)
    finally:
        bar.close()
        for backend in {id(e.backend): e.backend for e in engines.values()}.values():
            backend.close()  # an inference engine (vllm: its KV cache and process) is not needed for training
    say(f"tree: {stats['questions']} questions, {stats['nodes']} nodes in {run / TREE_FILE}")
    return stats


def label(tree: Path, out: Path, threshold: float, pooling: str, say: Say = _quiet) -> dict:
    """Value iteration over ``tree`` into ``out``; return positive/negative counts per role."""
    from malt_train.label import LabelConfig, label_file

    counts = label_file(tree, out, LabelConfig(threshold, pooling))
    for role, c in counts.items():
        say(f"{role}: {c['positive']} positive, {c['negative']} negative")
    return counts


def build(labeled: Path, out: Path, pairs_per_parent: int | None, say: Say = _quiet) -> dict:
    """Per-role SFT and DPO sets from a labelled tree (and ``out/counts.json``)."""
    from malt_train.build import BuildConfig, build_sets
    from malt_train.tree import read_tree

    counts = build_sets(read_tree(labeled), out, BuildConfig(pairs_per_parent))
    for role, c in counts.items():
        say(f"{role}: {c['sft']} SFT examples, {c['dpo']} DPO pairs")
    (out / COUNTS_FILE).write_text(json.dumps(counts, indent=2))
    return counts


def _place(adapter: Path | None, dest: Path) -> str:
    if adapter is None:
        return SKIPPED
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(adapter, dest)
    return str(dest)


def _launched(launch: Launch | None, step: str, run: Path, role: str, model: str, cfg) -> str | None:
    """Train ``step`` under ``launch`` when there is one and the set has examples (its workers place and
    report the adapter); ``None``: train here. The checks a worker would fail on are made first."""
    from malt_train.launch import accumulation, check_examples
    from malt_train.train import read_rows

    if launch is None:
        return None
    data = run / DATA_DIR / role / f"{step}.jsonl"
    rows = read_rows(data, ("prompt", "completion") if step == "sft" else ("prompt", "chosen", "rejected"))
    if not rows:
        return None  # an empty set is skipped here as without a launch
    check_examples(len(rows), launch.processes, data)
    accumulation(cfg.batch_size, cfg.micro_batch_size, launch.processes)
    launch.run(step, run, role, model)
    return str(adapter_dir(run, "sft" if step == "sft" else "final", role))


def sft(run: Path, role: str, model: str, cfg, launch: Launch | None = None, say: Say = _quiet) -> str:
    """LoRA SFT of ``role`` on ``RUN/data/ROLE/sft.jsonl`` -> ``RUN/adapters-sft/ROLE`` (under ``launch``, on
    several processes); return where it went ("" on a worker process of a launch)."""
    from harness.models import resolve_model
    from malt_train.train import train_sft

    launched = _launched(launch, "sft", run, role, model, cfg)
    if launched:
        return launched
    data = run / DATA_DIR / role / "sft.jsonl"
    step = f"sft-{role}"
    adapter = train_sft(resolve_model(model), data, run / WORK_DIR / step, cfg, run / LOGS_DIR / step)
    if not is_main():
        return ""
    where = _place(adapter, adapter_dir(run, "sft", role))
    say(f"sft {role}: {where}")
    return where


def dpo(run: Path, role: str, model: str, cfg, launch: Launch | None = None, say: Say = _quiet) -> str:
    """LoRA DPO of ``role`` from its SFT adapter -> ``RUN/adapters/ROLE`` (under ``launch``, on several
    processes); return where it went ("" on a worker process of a launch)."""
    from harness.models import resolve_model
    from malt_train.train import train_dpo

    launched = _launched(launch, "dpo", run, role, model, cfg)
    if launched:
        return launched
    start = adapter_dir(run, "sft", role)
    start_adapter = str(start) if has_adapter(start) else None
    step, data = f"dpo-{role}", run / DATA_DIR / role / "dpo.jsonl"
    adapter = train_dpo(resolve_model(model), data, run / WORK_DIR / step, cfg, start_adapter, run / LOGS_DIR / step)
    if not is_main():
        return ""
    if adapter is None and start_adapter:  # no preference pair: DPO from the SFT adapter would leave it as is
        adapter = start
        say(f"dpo {role}: no pair, so the SFT adapter is the final one")
    where = _place(adapter, adapter_dir(run, "final", role))
    say(f"dpo {role}: {where}")
    return where


def run_all(
    run: Path,
    cfg: GenerateConfig,
    engine: EngineSpec,
    sft_cfg,
    dpo_cfg,
    threshold: float,
    pooling: str,
    pairs_per_parent: int | None,
    generator_dpo: bool,
    launch: Launch | None = None,
    say: Say = _quiet,
) -> dict:
    """generate -> label -> build -> sft (all roles) -> dpo (verifier, refiner; generator when asked).

    Finished steps are kept; the summary goes to ``RUN/run.json`` and is returned.
    """
    summary: dict = {"steps": {}}
    steps = summary["steps"]
    generate_tree(run, cfg, engine, say)  # resumable itself: a finished tree costs nothing
    labeled, data = run / LABELED_FILE, run / DATA_DIR
    if not labeled.is_file():
        label(run / TREE_FILE, labeled, threshold, pooling, say)
    if not (data / COUNTS_FILE).is_file():
        build(labeled, data, pairs_per_parent, say)
    summary["counts"] = json.loads((data / COUNTS_FILE).read_text())
    model = run_model(run, engine.model)
    dpo_roles = [r for r in ROLES if r != "generator" or generator_dpo]
    for role in ROLES:
        done = adapter_dir(run, "sft", role)
        steps[f"sft-{role}"] = str(done) if has_adapter(done) else sft(run, role, model, sft_cfg, launch, say)
    for role in ROLES:
        final = adapter_dir(run, "final", role)
        if has_adapter(final):
            steps[f"final-{role}"] = str(final)
        elif role in dpo_roles:
            steps[f"final-{role}"] = dpo(run, role, model, dpo_cfg, launch, say)
        else:
            start = adapter_dir(run, "sft", role)
            steps[f"final-{role}"] = _place(start if start.exists() else None, final)
    summary["config"] = {
        "sft": asdict(sft_cfg),
        "dpo": asdict(dpo_cfg),
        "dpo_roles": dpo_roles,
        "threshold": threshold,
        "pooling": pooling,
    }
    (run / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    for step, where in steps.items():
        say(f"{step}: {where}")
    return summary
