"""Role-wise LoRA training with TRL: SFT on a role's positives, then DPO on its sibling pairs.

One data and adapter layer shared by both steps; TRL's ``SFTTrainer``/``DPOTrainer`` are used as
they are. DPO starts from the role's SFT adapter and, as in the paper, uses the SFT model as the
reference (TRL keeps a frozen copy of the starting adapter as the reference).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import MaltError
from harness.runfiles import iter_jsonl

log = logging.getLogger(__name__)


@dataclass
class SFTStepConfig:
    """LoRA SFT of one role (paper recipe defaults; CPU-safe: fp32 unless a GPU has bf16)."""

    lora_rank: int = 16  # LoRA rank r
    lora_alpha: int = 32  # LoRA scaling alpha
    lora_dropout: float = 0.05
    learning_rate: float = 1e-4
    epochs: float = 1.0
    batch_size: int = 8  # effective batch size, reached by gradient accumulation
    micro_batch_size: int = 1  # sequences per forward pass (memory: 152k-vocab logits)
    max_length: int = 1024  # tokens of prompt + completion
    max_steps: int = -1  # > 0 overrides epochs (smoke runs)
    gradient_checkpointing: bool = True
    save_steps: int = 50  # a TRL checkpoint every N optimizer steps: a killed run resumes from the last
    seed: int = 0


@dataclass
class DPOStepConfig(SFTStepConfig):
    """LoRA DPO of one role, starting from its SFT adapter (reference = the SFT model)."""

    learning_rate: float = 5e-5
    beta: float = 0.2  # the paper's DPO beta


def _read_rows(path: Path, keys: tuple[str, ...]) -> list[dict]:
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


def _common_args(cfg: SFTStepConfig, out: Path) -> dict:
    import torch

    return dict(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=max(1, cfg.batch_size // cfg.micro_batch_size),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=_bf16(),
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
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


def _last_checkpoint(out: Path) -> str | None:
    """The newest complete TRL checkpoint (``trainer_state.json`` is written last)."""
    ckpts = [p for p in (out / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    complete = [p for p in ckpts if (p / "trainer_state.json").is_file()]
    best = max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)
    if best is not None:
        log.warning("resuming training from %s", best)
    return str(best) if best else None


def _finish(trainer, out: Path, cfg: SFTStepConfig, kind: str, n_rows: int) -> Path:
    import shutil

    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter), selected_adapters=["default"])
    (adapter / "malt_step.json").write_text(json.dumps({"step": kind, "rows": n_rows, **asdict(cfg)}, indent=2))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return adapter


def train_sft(model_ref: str, data: Path, out: Path, cfg: SFTStepConfig | None = None) -> Path | None:
    """Train a LoRA adapter on ``data`` (sft.jsonl); ``None`` (and a warning) when it is empty."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cfg = cfg or SFTStepConfig()
    rows = _read_rows(data, ("prompt", "completion"))
    if not rows:
        log.warning("empty SFT set %s: skipped", data)
        return None
    model, tok = _load(model_ref)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**_common_args(cfg, out)),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=_lora(cfg),
    )
    return _finish(trainer, out, cfg, "sft", len(rows))


def train_dpo(
    model_ref: str, data: Path, out: Path, cfg: DPOStepConfig | None = None, start_adapter: str | None = None
) -> Path | None:
    """DPO a LoRA adapter on ``data`` (dpo.jsonl), from ``start_adapter`` (its SFT) when given."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    cfg = cfg or DPOStepConfig()
    rows = _read_rows(data, ("prompt", "chosen", "rejected"))
    if not rows:
        log.warning("empty DPO set %s: skipped", data)
        return None
    model, tok = _load(model_ref, start_adapter)
    args = DPOConfig(beta=cfg.beta, **_common_args(cfg, out))
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=None if start_adapter else _lora(cfg),
    )
    return _finish(trainer, out, cfg, "dpo", len(rows))
