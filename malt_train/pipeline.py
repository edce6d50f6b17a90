"""The MALT pipeline as library calls: trees -> labels -> SFT/DPO sets -> role adapters, each step resumable.

``malt-train``'s commands call these; so can Python. Every function reports what it did through ``say``
(one line each; the CLI prints them) and lays its files out as :mod:`harness.core.maltrun` says. Each step of a
run keys on its settings and the digests of its inputs (:mod:`malt_train.steps`, ``RUN/steps.json``):
``run_all`` reuses a step whose key and outputs are unchanged and reruns the others.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.digests import path_digest
from harness.core.maltrun import (
    CONFIG_FILE,
    COUNTS_FILE,
    DATA_DIR,
    LABELED_FILE,
    LOGS_DIR,
    SKIPPED,
    STAGES,
    SUMMARY_FILE,
    TREE_FILE,
    WORK_DIR,
    adapter_dir,
    has_adapter,
    run_model,
)
from harness.core.roles import ROLES
from harness.spec import EngineSpec
from malt_train.generate import GenerateConfig
from malt_train.launch import Launch, is_main, share
from malt_train.steps import Step, begin, finish, read_steps, record_settings, reusable, weights_digest
from malt_train.train import DPOStepConfig, SFTStepConfig

Say = Callable[[str], None]
_TREE_INPUTS = ("data", "prompts", "weights")  # digests in the tree's record; the rest are its settings


def _quiet(line: str) -> None:
    """The default ``say``: nothing."""


@dataclass
class TreePlan:
    """What a tree is made from: the training rows, the role prompts, the model and its engine's record."""

    docs: list[dict]
    prompts: object
    model: str | None  # None: a server's default model, known once its backend is up
    engine: dict

    def record(self, cfg: GenerateConfig, model: str | None = None) -> dict:
        from malt_train.generate import tree_record

        return tree_record(cfg, model or self.model, self.docs, self.prompts.hash, self.engine)


def plan_tree(cfg: GenerateConfig, engine: EngineSpec) -> TreePlan:
    """Load the training split and prompts of ``cfg`` and digest the model's weights (no backend is built)."""
    from harness.inference.backends import get_backend
    from harness.inference.models import DEFAULT_MODEL
    from harness.tasks.data import load_split
    from harness.tasks.grading import canonical_task
    from harness.tasks.prompts import load_prompts

    cfg.task = canonical_task(cfg.task)
    cfg.check()
    remote = get_backend(engine.backend).remote
    model = engine.model or (None if remote else DEFAULT_MODEL)
    weights = weights_digest(model, remote)
    docs = load_split(cfg.task, "train", engine.data_dir)
    prompts = load_prompts(cfg.task, engine.prompts_file)
    return TreePlan(docs, prompts, model, {"weights": weights, "backend": engine.backend, "dtype": engine.dtype})


def tree_step(record: dict) -> Step:
    """The tree as a step: its record's digests are its inputs, the rest its settings. Its output, the tree
    file, is not compared (a tree edited by hand is used as it is; the labels key on its content)."""
    inputs = {k: record.get(k) for k in _TREE_INPUTS}
    return Step("tree", {k: v for k, v in record.items() if k not in inputs}, inputs, ())


def generate_tree(
    run: Path, cfg: GenerateConfig, engine: EngineSpec, say: Say = _quiet, plan: TreePlan | None = None
) -> dict:
    """Sample (or continue) the trees of ``cfg`` in ``run`` on ``engine``'s model; return the counts."""
    from tqdm.auto import tqdm

    from harness.inference.backends.base import SamplingParams
    from harness.solver.steps import SolveContext
    from malt_train.generate import generate, planned_batches

    plan = plan or plan_tree(cfg, engine)
    total = sum(len(batch) for _, batch in planned_batches(len(plan.docs), cfg))
    engines, _ = engine.load_engines(ROLES, max(8, cfg.batch_size * cfg.branching**2), plan.model)
    model = plan.model or engines["generator"].backend.model_id  # remote: the server's default model
    ctx = SolveContext({cfg.task: plan.prompts}, engines, dict.fromkeys(ROLES, SamplingParams(cfg.max_new_tokens)))
    bar = tqdm(total=total, desc="questions", unit="q")
    nodes = {"n": 0}

    def progress(q: int, n: int, tps: float) -> None:
        nodes["n"] += n
        bar.update(q)
        bar.set_postfix_str(f"nodes {nodes['n']}, {tps:.1f} tok/s")

    try:
        stats = generate(run, plan.docs, ctx, cfg, model, progress, plan.engine)
    finally:
        bar.close()
        for backend in {id(e.backend): e.backend for e in engines.values()}.values():
            backend.close()  # an inference engine (vllm: its KV cache and process) is not needed for training
    finish(run, tree_step(plan.record(cfg, model)), f"{stats['questions']} questions, {stats['nodes']} nodes")
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
    """Put a copy of ``adapter`` at ``dest`` (a step's own output: an earlier one is swapped out), or remove
    ``dest`` when there is none (an empty set)."""
    if adapter is None:
        if dest.exists():
            shutil.rmtree(dest)
        return SKIPPED
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    shutil.copytree(adapter, tmp, dirs_exist_ok=True)
    if dest.exists():
        old = tmp.with_name(f"{tmp.name}-old")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old)
    else:
        os.replace(tmp, dest)
    return str(dest)


def _rel(stage: str, role: str) -> str:
    return f"{STAGES[stage]}/{role}"


def sft_step(run: Path, role: str, model: str, cfg) -> Step:
    """SFT of ``role``: keys on its set, the base model (name and weights) and the training settings."""
    from malt_train.train import result_settings

    data = f"{DATA_DIR}/{role}/sft.jsonl"
    inputs = {data: path_digest(Path(run) / data), "weights": weights_digest(model)}
    scratch = (f"{WORK_DIR}/sft-{role}/checkpoints",)
    return Step(f"sft-{role}", {"model": model, **result_settings(cfg)}, inputs, (_rel("sft", role),), scratch)


def final_step(run: Path, role: str, model: str, cfg=None) -> Step:
    """The final adapter of ``role``: DPO (``cfg``: its set, its SFT adapter, the base model, the settings)
    or, without ``cfg``, a copy of its SFT adapter."""
    from malt_train.train import result_settings

    start = _rel("sft", role)
    inputs = {start: path_digest(Path(run) / start)}
    if cfg is None:
        return Step(f"final-{role}", {"kind": "sft"}, inputs, (_rel("final", role),))
    data = f"{DATA_DIR}/{role}/dpo.jsonl"
    inputs |= {data: path_digest(Path(run) / data), "weights": weights_digest(model)}
    settings = {"kind": "dpo", "model": model, **result_settings(cfg)}
    return Step(f"final-{role}", settings, inputs, (_rel("final", role),), (f"{WORK_DIR}/dpo-{role}/checkpoints",))


def _begin(run: Path, step: Callable[[], Step], say: Say) -> Step | None:
    """:func:`malt_train.steps.begin` of ``step()`` on the main process (which alone digests the inputs and
    gets the step back); every process of a launch waits for it."""
    made = None
    if is_main():
        made = step()
        begin(run, made, say)
    share(None)
    return made


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
    several processes); return where it went ("" on a worker process of a launch). Recorded as step
    ``sft-ROLE``; a checkpoint is resumed only with the same key."""
    from harness.inference.models import resolve_model
    from malt_train.train import train_sft

    step = _begin(run, lambda: sft_step(run, role, model, cfg), say)
    launched = _launched(launch, "sft", run, role, model, cfg)
    if launched:
        return launched
    data = run / DATA_DIR / role / "sft.jsonl"
    name = f"sft-{role}"  # the work folder, the tracker's run and its logs
    adapter = train_sft(resolve_model(model), data, run / WORK_DIR / name, cfg, run / LOGS_DIR / name)
    if not is_main():
        return ""
    where = _place(adapter, adapter_dir(run, "sft", role))
    finish(run, step, "trained" if adapter else SKIPPED)
    say(f"sft {role}: {where}")
    return where


def dpo(run: Path, role: str, model: str, cfg, launch: Launch | None = None, say: Say = _quiet) -> str:
    """LoRA DPO of ``role`` from its SFT adapter -> ``RUN/adapters/ROLE`` (under ``launch``, on several
    processes); return where it went ("" on a worker process of a launch). Recorded as step ``final-ROLE``."""
    from harness.inference.models import resolve_model
    from malt_train.train import train_dpo

    step = _begin(run, lambda: final_step(run, role, model, cfg), say)
    launched = _launched(launch, "dpo", run, role, model, cfg)
    if launched:
        return launched
    start = adapter_dir(run, "sft", role)
    start_adapter = str(start) if has_adapter(start) else None
    name, data = f"dpo-{role}", run / DATA_DIR / role / "dpo.jsonl"
    adapter = train_dpo(resolve_model(model), data, run / WORK_DIR / name, cfg, start_adapter, run / LOGS_DIR / name)
    if not is_main():
        return ""
    result = "dpo"
    if adapter is None and start_adapter:  # no preference pair: DPO from the SFT adapter would leave it as is
        adapter, result = start, "sft"
        say(f"dpo {role}: no pair, so the SFT adapter is the final one")
    where = _place(adapter, adapter_dir(run, "final", role))
    finish(run, step, result if adapter else SKIPPED)
    say(f"dpo {role}: {where}")
    return where


def _copy_sft(run: Path, role: str, say: Say) -> None:
    """The final adapter of a role without DPO: its SFT adapter (none when SFT trained nothing)."""
    step = final_step(run, role, "")
    if reusable(run, step, say):
        return
    begin(run, step, say)
    start = adapter_dir(run, "sft", role)
    found = has_adapter(start)
    _place(start if found else None, adapter_dir(run, "final", role))
    finish(run, step, "sft" if found else SKIPPED)


def _label_and_build(run: Path, threshold: float, pooling: str, pairs_per_parent: int | None, say: Say) -> None:
    """The label and build steps, each run only when its inputs or settings changed."""
    from malt_train.build import BuildConfig

    labeled = run / LABELED_FILE
    step = Step(
        "label",
        {"threshold": threshold, "pooling": pooling},
        {TREE_FILE: path_digest(run / TREE_FILE)},
        (LABELED_FILE,),
    )
    if not reusable(run, step, say):
        begin(run, step, say)
        label(run / TREE_FILE, labeled, threshold, pooling, say)
        finish(run, step, "labelled")
    sets = tuple(f"{DATA_DIR}/{r}/{k}.jsonl" for r in ROLES for k in ("sft", "dpo")) + (f"{DATA_DIR}/{COUNTS_FILE}",)
    settings = {"pairs_per_parent": pairs_per_parent, "seed": BuildConfig().seed}
    step = Step("build", settings, {LABELED_FILE: path_digest(labeled)}, sets)
    if not reusable(run, step, say):
        begin(run, step, say)
        build(labeled, run / DATA_DIR, pairs_per_parent, say)
        finish(run, step, "built")


def _tree(run: Path, cfg: GenerateConfig, engine: EngineSpec, say: Say) -> None:
    """The tree step: reused when its record is done with the same key and the tree is there; a tree of
    other settings or inputs is moved to ``RUN/replaced/`` and grown again; otherwise generation resumes."""
    from harness.core.identity import read_identity
    from malt_train.generate import tree_diff
    from malt_train.steps import changes, forget, move_aside

    plan = plan_tree(cfg, engine)
    if plan.model is not None:  # else a server's default model: generate() checks the record
        step = tree_step(plan.record(cfg))
        if (run / TREE_FILE).is_file() and reusable(run, step, say, explain=False):
            return
        record, have = read_steps(run).get("tree"), read_identity(run / CONFIG_FILE, "malt-train run")
        if record is not None:  # the tree's digests are on record since it was grown (or resumed) here
            what = changes(record, step, run)
        else:
            diff = tree_diff(have, {**step.settings, **step.inputs}) if have is not None else []
            what = [
                f"{k} changed" if k in _TREE_INPUTS else f"{k} {have.get(k)} -> {step.settings.get(k)}" for k in diff
            ]
        if what:
            moved = [move_aside(run, rel) for rel in (TREE_FILE, CONFIG_FILE) if (run / rel).exists()]
            forget(run, "tree")
            kept = f"; the earlier tree is in {moved[0].parent}" if moved else ""
            say(f"tree: rerun ({', '.join(what)}){kept}")
    generate_tree(run, cfg, engine, say, plan)


def _summary(run: Path) -> dict:
    """``RUN/run.json``: what each step left and the settings the outputs on disk were made with (from the
    step records, so a setting asked for but not used is not there)."""
    records = read_steps(run)
    result = {name: rec.get("result") for name, rec in records.items()}
    steps = {}
    for stage, prefix in (("sft", "sft-"), ("final", "final-")):
        for role in ROLES:
            done = result.get(prefix + role)
            steps[prefix + role] = SKIPPED if done in (None, SKIPPED) else str(adapter_dir(run, stage, role))
    trained_sft = [f"sft-{r}" for r in ROLES if result.get(f"sft-{r}") == "trained"]
    dpo_steps = [f"final-{r}" for r in ROLES if records.get(f"final-{r}", {}).get("settings", {}).get("kind") == "dpo"]
    label_settings = records.get("label", {}).get("settings", {})
    return {
        "steps": steps,
        "counts": json.loads((run / DATA_DIR / COUNTS_FILE).read_text()),
        "config": {
            "sft": record_settings(records, trained_sft, drop=("model",)),
            "dpo": record_settings(records, [n for n in dpo_steps if result.get(n) == "dpo"], drop=("model", "kind")),
            "dpo_roles": [n.removeprefix("final-") for n in dpo_steps],
            "threshold": label_settings.get("threshold"),
            "pooling": label_settings.get("pooling"),
            "pairs_per_parent": records.get("build", {}).get("settings", {}).get("pairs_per_parent"),
        },
    }


@dataclass
class RunConfig:
    """Every step's settings of :func:`run_all` (``malt-train run`` fills it from its options)."""

    generate: GenerateConfig = field(metadata={"help": "The tree: task, questions, branching and sampling."})
    engine: EngineSpec = field(metadata={"help": "The model and backend that grow the tree."})
    sft: SFTStepConfig = field(metadata={"help": "LoRA SFT of each role."})
    dpo: DPOStepConfig = field(metadata={"help": "LoRA DPO of the roles that get it."})
    threshold: float = field(default=0.5, metadata={"help": "A node is positive when its value > threshold."})
    pooling: str = field(default="global", metadata={"help": "A node's value: global (leaves below) or local."})
    pairs_per_parent: int | None = field(default=None, metadata={"help": "Cap on DPO pairs per parent (None: all)."})
    generator_dpo: bool = field(default=False, metadata={"help": "Also DPO-train the generator."})


def run_all(run: Path, config: RunConfig, launch: Launch | None = None, say: Say = _quiet) -> dict:
    """generate -> label -> build -> sft (all roles) -> dpo (verifier, refiner; generator when asked).

    ``config``: every step's settings; ``launch``: the training steps under ``accelerate launch`` (default: in
    this process); ``say``: one line per step. A step whose settings, input digests and outputs are as recorded
    is reused; a changed one runs again, and so does every later step whose inputs it changed. The summary goes
    to ``RUN/run.json`` and is returned.
    """
    cfg, engine, sft_cfg, dpo_cfg = config.generate, config.engine, config.sft, config.dpo
    _tree(run, cfg, engine, say)
    _label_and_build(run, config.threshold, config.pooling, config.pairs_per_parent, say)
    model = run_model(run, engine.model)
    for role in ROLES:
        if not reusable(run, sft_step(run, role, model, sft_cfg), say):
            sft(run, role, model, sft_cfg, launch, say)
    for role in ROLES:
        if role == "generator" and not config.generator_dpo:
            _copy_sft(run, role, say)
        elif not reusable(run, final_step(run, role, model, dpo_cfg), say):
            dpo(run, role, model, dpo_cfg, launch, say)
    summary = _summary(run)
    from harness.core.runfiles import atomic_write

    atomic_write(run / SUMMARY_FILE, json.dumps(summary, indent=2))
    for step, where in summary["steps"].items():
        say(f"{step}: {where}")
    return summary
