"""Training one role on several processes with Hugging Face accelerate (DDP, FSDP, DeepSpeed ZeRO).

TRL's trainers do the distributed work themselves under ``accelerate launch``: the data are sharded by
their dataloader, gradients are synchronised, checkpoints carry one RNG state per process. This module
only does what sits around them: the check of a launch before it starts (the packages a config needs,
processes vs. examples, the batch split), the launch itself, and which process writes (the main one).

Processes are told apart by the ``RANK`` / ``WORLD_SIZE`` variables that accelerate's launchers set
(torchrun, DeepSpeed). A launch started by ``malt-train sft|dpo|run --num-processes N`` holds the run's
lock in the launching process and names itself in ``$MALT_TRAIN_LAUNCHER_PID``, so its workers do not lock.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import MaltError
from harness.core.runfiles import LOCK_FILE
from harness.core.yamlfiles import read_yaml_mapping
from harness.spec import option

LAUNCHER_ENV = "MALT_TRAIN_LAUNCHER_PID"
NEEDS = {"DEEPSPEED": ("deepspeed", "pip install deepspeed"), "FSDP": ("torch.distributed.fsdp", "a torch with FSDP")}


def world_size() -> int:
    """Processes training together (1 outside a launch)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def is_main() -> bool:
    """Whether this is the process that writes (rank 0; the only one outside a launch)."""
    return int(os.environ.get("RANK") or 0) == 0


def accumulation(batch: int, micro: int, world: int) -> int:
    """Gradient accumulation steps that keep the effective batch at ``batch`` = micro x steps x world."""
    if batch < 1 or micro < 1:
        raise MaltError(f"--batch-size-train ({batch}) and --micro-batch-size ({micro}) must be positive")
    if batch % (micro * world):
        procs = f" x {world} processes" if world > 1 else ""
        raise MaltError(
            f"--batch-size-train {batch} cannot be split into --micro-batch-size {micro}{procs}: "
            f"use a multiple of {micro * world}"
        )
    return batch // (micro * world)


def check_examples(n_rows: int, world: int, path: Path) -> None:
    """Each process needs at least one example of its own."""
    if 0 < n_rows < world:
        raise MaltError(f"{path} has {n_rows} example(s) for {world} processes: launch at most {n_rows} processes")


def share(error: str | None) -> str | None:
    """The main process's ``error`` (or ``None``) on every process, through accelerate's broadcast."""
    if world_size() == 1:
        return error
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState(cpu=not torch.cuda.is_available())  # the state the trainer's Accelerator will share
    return broadcast_object_list([error])[0]


def launcher_holds_lock(run: Path) -> bool:
    """Whether the lock of ``run`` is held by the ``malt-train`` process that launched this one."""
    pid = os.environ.get(LAUNCHER_ENV)
    if not pid:
        return False
    try:
        owner = json.loads((Path(run) / LOCK_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return str(owner.get("pid")) == pid and owner.get("host") == socket.gethostname()


def read_config(path: Path) -> dict:
    """An accelerate config file, checked for the packages its ``distributed_type`` needs."""
    cfg = read_yaml_mapping(path, "accelerate config")
    kind = str(cfg.get("distributed_type", "NO")).upper()
    if kind in NEEDS:
        module, how = NEEDS[kind]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise MaltError(f"{path} asks for {kind}, but {module} is not installed ({how})")
    return cfg


@dataclass
class Launch:
    """``accelerate launch`` of the ``sft``/``dpo`` command with the same training options (``args``).

    ``module`` is the command's module that every process runs (``python -m``): the app that launches names
    itself, so this library knows no app.
    """

    module: str
    num_processes: int | None = option(
        None,
        "Train each step on N processes (GPUs) with `accelerate launch` (DDP unless --accelerate-config).",
        type=int,
    )
    config_file: Path | None = option(
        None,
        "accelerate config file to launch each step with (configs/accelerate/*.yaml: DDP, FSDP, ZeRO-3).",
        flag="--accelerate-config",
        dest="accelerate_config",
        type=Path,
    )
    args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.num_processes is not None and self.num_processes < 1:
            raise MaltError(f"--num-processes must be at least 1, got {self.num_processes}")
        self.config = read_config(self.config_file) if self.config_file else {}

    @property
    def processes(self) -> int:
        return self.num_processes or int(self.config.get("num_processes") or 1)

    @property
    def wanted(self) -> bool:
        """Whether to launch at all: a config file, or more than one process."""
        return bool(self.config_file) or self.processes > 1

    def command(self, step: str, run: Path, role: str, model: str) -> list[str]:
        cmd = [sys.executable, "-m", "accelerate.commands.launch"]
        if self.config_file:
            cmd += ["--config_file", str(self.config_file)]
        elif self.processes > 1:
            cmd += ["--multi_gpu"]  # torchrun's launcher; without GPUs the trainer (use_cpu) runs on gloo
        if self.num_processes:
            cmd += ["--num_processes", str(self.num_processes)]
        return [*cmd, "-m", self.module, step, str(run), "--role", role, "--model", model, *self.args]

    def run(self, step: str, run: Path, role: str, model: str) -> None:
        """Train ``step`` of ``role`` under accelerate; a failed launch is a one-line error (resumable)."""
        env = dict(os.environ, **{LAUNCHER_ENV: str(os.getpid())})
        proc = subprocess.Popen(self.command(step, run, role, model), env=env, start_new_session=True)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            raise
        if rc:
            raise MaltError(
                f"accelerate launch of `{step} --role {role}` ({self.processes} processes) failed (exit {rc}): "
                "rerun the same command to resume from its last complete checkpoint"
            )


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the launcher's process group (torchrun passes it to its workers), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
