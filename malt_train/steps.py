"""Step records of a ``malt-train`` run, like DVC's lock file: ``RUN/steps.json``.

Each step (``tree``, ``label``, ``build``, ``sft-ROLE``, ``final-ROLE``) keys on its *settings* (the options it
uses) and the content digests of its *inputs* (files, folders, the base model's weights, the questions drawn).
Before it runs, its record says ``running`` with that key; once its outputs are complete, ``done`` with the
outputs' digests. A step is reused when its record is done, its key equal and its outputs as recorded; a
rerun says in one line what changed. Outputs a step replaces are its own (as recorded, or written by its
interrupted attempt) and are removed before it runs again; anything else at an output path is moved to
``RUN/replaced/``, never deleted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.core.digests import path_digest
from harness.core.identity import as_json
from harness.core.maltrun import REPLACED_DIR, STEPS_FILE
from harness.core.runfiles import atomic_write

_SHOWN = 4  # settings named in a rerun line at most

Say = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    """One step of a run: its name, what decides its outputs, and its outputs (paths relative to RUN).

    ``scratch``: its working files (training checkpoints), kept only to resume the same key.
    """

    name: str
    settings: dict
    inputs: dict  # input name (a path relative to RUN, or "weights", "data", "prompts") -> digest
    outputs: tuple[str, ...]
    scratch: tuple[str, ...] = field(default=())

    def key(self) -> dict:
        return {"settings": as_json(self.settings), "inputs": as_json(self.inputs)}


def weights_digest(model: str | None, remote: bool = False) -> str | None:
    """The content digest of a base model's weights (:func:`harness.provenance.weights_digest`, the one rule);
    ``None`` for a model behind a server."""
    from harness.provenance import weights_digest as digest

    return None if model is None or remote else digest(model)


def read_steps(run: Path) -> dict[str, dict]:
    """The step records of ``run`` (empty when there are none, or the file is unreadable)."""
    try:
        steps = json.loads((Path(run) / STEPS_FILE).read_text(encoding="utf-8")).get("steps")
    except (OSError, ValueError, AttributeError):
        return {}
    return steps if isinstance(steps, dict) else {}


def _write(run: Path, name: str, record: dict | None) -> None:
    steps = read_steps(run)
    if record is None:
        steps.pop(name, None)
    else:
        steps[name] = record
    atomic_write(Path(run) / STEPS_FILE, json.dumps({"format": 1, "steps": steps}, indent=2))


def output_digests(run: Path, outputs: tuple[str, ...]) -> dict[str, str | None]:
    """Each output's content digest (``None``: not there)."""
    return {rel: path_digest(Path(run) / rel) for rel in outputs}


def _show(value: object) -> str:
    return "none" if value is None else str(value)


def changes(record: dict | None, step: Step, run: Path) -> list[str]:
    """What differs between ``record`` and ``step`` (and the outputs on disk): empty when it is reusable."""
    if record is None:
        return ["not run yet"]
    key = step.key()
    old, new = record.get("settings") or {}, key["settings"]
    if old.get("kind", new.get("kind")) != new.get("kind"):
        return [f"kind {_show(old.get('kind'))} -> {_show(new.get('kind'))}"]
    keys = sorted(set(old) | set(new))
    diff = [f"{k} {_show(old.get(k))} -> {_show(new.get(k))}" for k in keys if old.get(k) != new.get(k)]
    if len(diff) > _SHOWN:
        diff = [*diff[:_SHOWN], f"{len(diff) - _SHOWN} more settings"]
    have = record.get("inputs") or {}
    diff += [f"{k} changed" for k in sorted(set(have) | set(key["inputs"])) if have.get(k) != key["inputs"].get(k)]
    if record.get("state") != "done":
        return diff or ["interrupted: resuming"]
    if not diff:
        recorded = record.get("outputs") or {}
        on_disk = output_digests(run, step.outputs)
        diff = [f"{rel} changed since it was written" for rel in step.outputs if recorded.get(rel) != on_disk[rel]]
    return diff


def reusable(run: Path, step: Step, say: Say, explain: bool = True) -> bool:
    """Whether ``step``'s outputs can be reused; otherwise say why it runs (when it ran before and ``explain``)."""
    record = read_steps(run).get(step.name)
    diff = changes(record, step, run)
    if not diff:
        say(f"{step.name}: unchanged, reused")
        return True
    if record is not None and explain:
        say(f"{step.name}: rerun ({', '.join(diff)})")
    return False


def move_aside(run: Path, rel: str) -> Path:
    """Move ``RUN/rel`` to ``RUN/replaced/<UTC time>/rel`` (a free name); return where it went."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = Path(run) / REPLACED_DIR / stamp / rel
    n = 1
    while dest.exists():
        dest = Path(run) / REPLACED_DIR / f"{stamp}-{n}" / rel
        n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(Path(run) / rel), dest)
    return dest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def begin(run: Path, step: Step, say: Say) -> bool:
    """Record that ``step`` starts; return whether it resumes an interrupted attempt with the same key.

    The step's own earlier outputs (as recorded, or of an interrupted attempt with another key) and scratch
    files are removed, as DVC does, so that no stale output outlives its inputs; what its record does not
    account for is moved to ``RUN/replaced/`` instead. Resuming the same key keeps both."""
    run = Path(run)
    record = read_steps(run).get(step.name)
    running = record is not None and record.get("state") == "running"
    resume = running and {k: record.get(k) for k in ("settings", "inputs")} == step.key()
    recorded = (record or {}).get("outputs") or {}
    for rel in step.outputs:
        path = run / rel
        if resume or not path.exists():
            continue
        if running or recorded.get(rel) == path_digest(path):
            _remove(path)  # the step's own output, made from other inputs
        else:
            say(f"{step.name}: {rel} is not this step's recorded output; moved to {move_aside(run, rel)}")
    for rel in step.scratch:
        path = run / rel
        if resume or not path.exists():
            continue
        if record is None:
            say(f"{step.name}: {rel} has no record; moved to {move_aside(run, rel)}")
        else:
            _remove(path)  # the step's own checkpoints, made with another key
    _write(run, step.name, {"state": "running", **step.key()})
    return resume


def finish(run: Path, step: Step, result: str, **extra: object) -> None:
    """Record ``step`` as done: its key, its outputs' digests and ``result`` (what it did)."""
    record = {"state": "done", **step.key(), "outputs": output_digests(run, step.outputs), "result": result}
    _write(run, step.name, {**record, **as_json(extra)})


def forget(run: Path, name: str) -> None:
    """Drop the record of step ``name`` (its outputs were moved aside)."""
    _write(run, name, None)


def record_settings(records: Mapping[str, dict], names: list[str], drop: tuple[str, ...] = ()) -> dict | None:
    """The settings of the ``names`` steps' records: one mapping when they agree, else one per step."""
    found = {n: {k: v for k, v in records[n]["settings"].items() if k not in drop} for n in names if n in records}
    if not found:
        return None
    values = list(found.values())
    return values[0] if all(v == values[0] for v in values) else found
