"""Role-wise LoRA training with TRL: SFT on a role's positives, then DPO on its sibling pairs.

One data and adapter layer shared by both steps; TRL's ``SFTTrainer``/``DPOTrainer`` are used as
they are. DPO starts from the role's SFT adapter and, as in the paper, uses the SFT model as the
reference (TRL keeps a frozen copy of the starting adapter as the reference).

Under ``accelerate launch`` (see ``malt_train.launch``) the same code trains on N processes: the trainer
shards the data, gradient accumulation is divided by N so that the effective batch stays ``batch_size``,
and only the main process writes the adapter, the logs and removes the checkpoints.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.core.errors import MaltError
from harness.core.runfiles import iter_jsonl
from harness.spec import option
from malt_train.launch import accumulation, check_examples, is_main, world_size

log = logging.getLogger(__name__)

#: TRL's (transformers') ``report_to`` values malt-train offers.
REPORT_TO = ("none", "tensorboard", "wandb", "trackio")


@dataclass
class SFTStepConfig:
    """LoRA SFT of one role (paper recipe defaults; CPU-safe: fp32 unless a GPU has bf16).

    Each field's help is also its ``malt-train`` option's; ``gradient_checkpointing`` and ``seed`` have none.
    """

    lora_rank: int = option(16, "LoRA rank r.")
    lora_alpha: int = option(32, "LoRA scaling alpha.")
    # > 0: dropout masks are drawn per process, so N processes differ from 1 by that noise
    lora_dropout: float = option(0.05, "LoRA dropout.")
    learning_rate: float = option(1e-4, "SFT learning rate.", flag="--sft-lr", dest="sft_lr")
    epochs: float = option(1.0, "Epochs over the role's examples.")
    batch_size: int = option(
        8,
        "Effective batch size (the paper's 8) over all processes, by gradient accumulation.",
        flag="--batch-size-train",
        dest="train_batch",  # not generation's --batch-size
    )
    micro_batch_size: int = option(1, "Sequences per forward pass (memory: a 152k-vocab model's logits).")
    max_length: int = option(1024, "Tokens of prompt + completion.")
    max_steps: int = option(-1, "> 0: stop after N steps (overrides --epochs).")
    gradient_checkpointing: bool = True
    save_steps: int = option(50, "Checkpoint every N steps (resume point).")
    report_to: str = option(
        "none",
        "Where TRL logs the training curves (its report_to): none, tensorboard, wandb or trackio; one run per step "
        "named sft-<role> / dpo-<role>, tensorboard's event files in RUN/logs/<step>.",
        choices=REPORT_TO,
    )
    seed: int = 0


@dataclass
class DPOStepConfig(SFTStepConfig):
    """LoRA DPO of one role, starting from its SFT adapter (reference = the SFT model)."""

    learning_rate: float = option(5e-5, "DPO learning rate.", flag="--dpo-lr", dest="dpo_lr")
    beta: float = option(0.2, "DPO beta (the paper's 0.2).")


#: Step-config fields that do not change the adapter (how often to checkpoint, recomputing activations).
NOT_IN_RESULT = ("save_steps", "gradient_checkpointing")


def result_settings(cfg: SFTStepConfig) -> dict:
    """The fields of a step config that decide its adapter (what a ``malt-train run`` step keys on)."""
    return {k: v for k, v in asdict(cfg).items() if k not in NOT_IN_RESULT}


def read_rows(path: Path, keys: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for lineno, row in iter_jsonl(path):
        missing = [k for k in keys if k not in row]
        if missing:
            raise MaltError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        rows.append({k: row[k] for k in keys})
    return rows


def _load(model_ref: str, adapter: str | None = None):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_ref)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_ref, dtype=torch.float32 if not _bf16() else torch.bfloat16)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    return model, tok


def _bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def check_reporting(cfg: SFTStepConfig) -> None:
    """Raise ``MaltError`` for a ``report_to`` TRL does not offer or whose package is not installed."""
    import importlib.util

    if cfg.report_to not in REPORT_TO:
        raise MaltError(f"--report-to must be one of {', '.join(REPORT_TO)}, got {cfg.report_to!r}")
    if cfg.report_to != "none" and importlib.util.find_spec(cfg.report_to) is None:
        raise MaltError(f"--report-to {cfg.report_to} needs {cfg.report_to}: pip install {cfg.report_to}")


def _reporting(cfg: SFTStepConfig, out: Path, logs: Path | None) -> tuple[dict, list]:
    """``report_to`` and ``run_name`` (the step: ``out``'s name, e.g. ``sft-verifier``) for TRL's config, and the
    trainer callbacks: tensorboard writes into ``logs`` (default ``out/logs``), not under the checkpoints (removed
    once the adapter is written)."""
    check_reporting(cfg)
    if cfg.report_to != "tensorboard":
        return {"report_to": cfg.report_to, "run_name": out.name}, []
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(logs or out / "logs")  # else output_dir/runs/<date>, inside the checkpoints
    return {"report_to": "none", "run_name": out.name}, [callback]


def _common_args(cfg: SFTStepConfig, out: Path) -> dict:
    import torch

    return dict(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=accumulation(cfg.batch_size, cfg.micro_batch_size, world_size()),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=_bf16(),
        use_cpu=not torch.cuda.is_available(),  # also what makes torchrun's workers use gloo on a CPU machine
        ddp_find_unused_parameters=False,  # LoRA: every trainable weight is used in each forward pass
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,  # the newest may be half-written when the process is killed
        seed=cfg.seed,
    )


def _lora(cfg: SFTStepConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def _complete(ckpt: Path, world: int) -> bool:
    """The main process writes ``trainer_state.json`` last, but each of N processes writes its own RNG
    state (``rng_state_<rank>.pth``) with no barrier between: a checkpoint is complete when all are there."""
    if not (ckpt / "trainer_state.json").is_file():
        return False
    if world == 1 or (ckpt / "rng_state.pth").is_file():
        return True
    return all((ckpt / f"rng_state_{rank}.pth").is_file() for rank in range(world))


def _last_checkpoint(out: Path, world: int = 1) -> str | None:
    """The newest complete TRL checkpoint of ``out``, for a run on ``world`` processes."""
    ckpts = [p for p in (out / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    complete = [p for p in ckpts if _complete(p, world)]
    best = max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)
    if best is not None and is_main():
        log.warning("resuming training from %s", best)
    return str(best) if best else None


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _finish(trainer, out: Path, cfg: SFTStepConfig, kind: str, n_rows: int) -> Path:
    """Train (from the last checkpoint), then the main process writes ``out/adapter`` once."""
    import shutil

    trainer.train(resume_from_checkpoint=_last_checkpoint(out, world_size()))
    saved, adapter = out / "saved", out / "adapter"
    trainer.save_model(str(saved))  # every process: FSDP / ZeRO-3 gather their shards; the main one writes
    if trainer.accelerator.is_main_process:
        shutil.rmtree(adapter, ignore_errors=True)
        adapter.mkdir(parents=True)
        for name in ADAPTER_FILES:  # the trained "default" adapter, not DPO's frozen "ref" copy (saved/ref)
            shutil.copy2(saved / name, adapter / name)
        (adapter / "malt_step.json").write_text(
            json.dumps({"step": kind, "rows": n_rows, "processes": world_size(), **asdict(cfg)}, indent=2)
        )
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        shutil.rmtree(saved, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return adapter


def train_sft(
    model_ref: str, data: Path, out: Path, cfg: SFTStepConfig | None = None, logs: Path | None = None
) -> Path | None:
    """Train a LoRA adapter on ``data`` (sft.jsonl); ``None`` (and a warning) when it is empty. ``logs``: the
    tensorboard folder with ``report_to="tensorboard"`` (default ``out/logs``)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cfg = cfg or SFTStepConfig()
    rows = read_rows(data, ("prompt", "completion"))
    if not rows:
        log.warning("empty SFT set %s: skipped", data)
        return None
    check_examples(len(rows), world_size(), data)
    reporting, callbacks = _reporting(cfg, out, logs)
    args = SFTConfig(**_common_args(cfg, out), **reporting)  # before the model: ZeRO-3 partitions it while loading
    model, tok = _load(model_ref)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=_lora(cfg),
        callbacks=callbacks,
    )
    return _finish(trainer, out, cfg, "sft", len(rows))


def train_dpo(
    model_ref: str,
    data: Path,
    out: Path,
    cfg: DPOStepConfig | None = None,
    start_adapter: str | None = None,
    logs: Path | None = None,
) -> Path | None:
    """DPO a LoRA adapter on ``data`` (dpo.jsonl), from ``start_adapter`` (its SFT) when given (``logs``: as
    :func:`train_sft`'s)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    cfg = cfg or DPOStepConfig()
    rows = read_rows(data, ("prompt", "chosen", "rejected"))
    if not rows:
        log.warning("empty DPO set %s: skipped", data)
        return None
    check_examples(len(rows), world_size(), data)
    reporting, callbacks = _reporting(cfg, out, logs)
    args = DPOConfig(beta=cfg.beta, **_common_args(cfg, out), **reporting)
    model, tok = _load(model_ref, start_adapter)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=None if start_adapter else _lora(cfg),
        callbacks=callbacks,
    )
    return _finish(trainer, out, cfg, "dpo", len(rows))
