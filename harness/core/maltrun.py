"""The layout of a ``malt-train`` run folder, read by ``malt-train`` and by evaluations of its adapters.

::

    RUN/generate.json          the tree's config and base model (its run record)
    RUN/tree.jsonl             the MALT trees (docs/training.md)
    RUN/labeled.jsonl          the trees with values and labels
    RUN/data/ROLE/{sft,dpo}.jsonl, RUN/data/counts.json
    RUN/work/{sft,dpo}-ROLE/   TRL output and checkpoints
    RUN/adapters-sft/ROLE/     SFT adapters (the STaR baseline; ``stage="sft"``)
    RUN/adapters/ROLE/         final adapters (MALT; ``stage="final"``)
    RUN/run.json               what ``malt-train run`` did per step, with the settings its outputs were made with
    RUN/steps.json             each step's key (settings, input digests) and output digests (malt_train.steps)
    RUN/replaced/TIME/...      outputs a rerun found unrecorded (edited, older) or a replaced tree, kept
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import MaltError
from harness.core.roles import ROLES

CONFIG_FILE = "generate.json"
TREE_FILE = "tree.jsonl"
LABELED_FILE = "labeled.jsonl"
DATA_DIR = "data"
COUNTS_FILE = "counts.json"
WORK_DIR = "work"
LOGS_DIR = "logs"  # the training steps' tensorboard logs (malt-train --report-to tensorboard), one folder per step
SUMMARY_FILE = "run.json"
STEPS_FILE = "steps.json"  # the step records of malt_train.steps
REPLACED_DIR = "replaced"  # outputs a rerun moved aside
STAGES = {"final": "adapters", "sft": "adapters-sft"}  # stage -> folder of its adapters
SKIPPED = "skipped (empty set)"  # a step of run.json that trained nothing


def adapter_dir(run: str | Path, stage: str, role: str) -> Path:
    """Where ``role``'s adapter of ``stage`` (``final`` or ``sft``) lives."""
    return Path(run) / STAGES[stage] / role


def has_adapter(path: str | Path) -> bool:
    """``path`` holds a PEFT adapter."""
    return (Path(path) / "adapter_config.json").is_file()


def run_model(run: str | Path, model: str | None = None) -> str:
    """``model`` if given, else the base model the run's trees were generated with."""
    if model:
        return model
    cfg = Path(run) / CONFIG_FILE
    if not cfg.is_file():
        raise MaltError(f"{run} has no {CONFIG_FILE}: pass --model")
    return json.loads(cfg.read_text(encoding="utf-8"))["model"]


@dataclass(frozen=True)
class StageAdapters:
    """A run's base model and its adapters of one stage; ``notes`` say which roles play on the base model."""

    model: str
    adapters: dict[str, str]
    notes: tuple[str, ...] = ()


def stage_adapters(run: str | Path, stage: str, model: str | None = None) -> StageAdapters:
    """Base model and per-role adapter dirs of a ``malt-train`` run (roles without one use the base)."""
    folder = Path(run)
    if not (folder / CONFIG_FILE).is_file():
        raise MaltError(f"not a malt-train run (no {CONFIG_FILE}): {folder}")
    adapters = {r: str(adapter_dir(folder, stage, r)) for r in ROLES if has_adapter(adapter_dir(folder, stage, r))}
    notes = []
    if not adapters and not trained_nothing(folder, stage):
        raise MaltError(f"{folder / STAGES[stage]} holds no adapters: run malt-train first")
    if not adapters:
        notes.append(
            f"{folder} trained no {stage} adapter (every role's training set was empty, see its "
            f"{SUMMARY_FILE}): the base model plays every role"
        )
    missing = [r for r in ROLES if r not in adapters]
    if adapters and missing:
        notes.append(f"no {stage} adapter for {', '.join(missing)}: the base model plays it")
    return StageAdapters(run_model(folder, model), adapters, tuple(notes))


def trained_nothing(folder: str | Path, stage: str) -> bool:
    """True when ``malt-train run`` finished in ``folder`` and skipped every role's ``stage`` step (empty sets)."""
    try:
        steps = json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    prefix = "final-" if stage == "final" else "sft-"
    mine = [str(v) for k, v in steps.items() if k.startswith(prefix)]
    return bool(mine) and all(v.startswith("skipped") for v in mine)
