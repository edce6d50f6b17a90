"""Resumable evaluations: every finished batch of ``malt-eval --output-path OUT`` is kept on disk.

``OUT/provenance.json`` holds the run's identity (``{"provenance": ...}``, :mod:`harness.provenance`: models and
adapters by content, the questions drawn, prompts, every generation setting, package versions);
``OUT/checkpoint.jsonl`` gets one record per finished batch of questions
(its graded rows, the stage counters and the time it took), appended and fsynced. A rerun of the
same command skips the batches on record and recomputes only the rest; batches are seeded by their
position, so the final results equal those of an uninterrupted run. A folder whose record describes another
run is refused, never mixed or overwritten (a folder written before the record had its own name holds it in
``OUT/run.json``, read the same way); :func:`start_over` moves a folder's
earlier contents aside (``OUT/superseded-<timestamp>/``) so that a new run starts there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from harness.core.errors import MaltError, raise_if_interrupted
from harness.core.identity import check_same_run
from harness.core.runfiles import LOCK_FILE, append_records, atomic_write, read_records

RUN_FILE = "provenance.json"
#: The record's earlier name, still read from folders written before (never written).
OLD_RUN_FILE = "run.json"
ROLES_FILE = "roles.json"
CHECKPOINT_FILE = "checkpoint.jsonl"
SUPERSEDED = "superseded-"
REFUSAL = "{folder} holds a different run's results (differs in: {{diff}}); use another --output-path or --start-over"


class Checkpoint:
    """The finished batches of one run in ``folder`` (see the module docstring)."""

    def __init__(
        self,
        folder: str | Path,
        identity: dict,
        defaults: dict | None = None,
        compare: Callable[[dict, dict], list[str]] | None = None,
    ) -> None:
        """``defaults``: the values of identity keys that older records may lack (options added since);
        ``compare``: the rule naming what differs (default: key by key, :func:`harness.core.identity.identity_diff`)."""
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise MaltError(f"--output-path is a file, not a folder: {self.folder}")
        self.identity = check_same_run(
            record_path(self.folder),
            identity,
            REFUSAL.format(folder=self.folder),
            "malt-eval output",
            defaults=defaults,
            compare=compare,
        )
        self._roles: dict | None = None
        self.path = self.folder / CHECKPOINT_FILE
        self._done: dict[tuple, dict] = {}
        for rec in read_records(self.path):
            self._done[(rec["task"], rec["seed"], rec["start"], rec["prompt_hash"])] = rec

    def get(self, task: str, seed: int, start: int, prompt_hash: str, doc_ids: list[int]) -> dict | None:
        """The record of a finished batch, or ``None`` when it has to be run."""
        rec = self._done.get((task, seed, start, prompt_hash))
        return rec if rec is not None and rec["doc_ids"] == doc_ids else None

    def add(self, record: dict) -> None:
        """Append one finished batch (flushed to disk before returning)."""
        if not (self.folder / RUN_FILE).exists():  # written with the first result: a failed start leaves nothing
            atomic_write(self.folder / RUN_FILE, json.dumps(self.identity, indent=2))
        if self._roles is not None and not (self.folder / ROLES_FILE).exists():
            atomic_write(self.folder / ROLES_FILE, json.dumps(self._roles, indent=2))
        append_records(self.path, [record])
        key = (record["task"], record["seed"], record["start"], record["prompt_hash"])
        self._done[key] = record
        raise_if_interrupted()  # a signal whose exception was swallowed stops the run here, the batch kept

    @property
    def roles(self) -> dict:
        """What each role ran (model path, adapter), as described in the results."""
        if self._roles is None:
            self._roles = json.loads((self.folder / ROLES_FILE).read_text(encoding="utf-8"))
        return self._roles

    @roles.setter
    def roles(self, value: dict) -> None:
        self._roles = value

    @property
    def n_done(self) -> int:
        """Finished batches on record."""
        return len(self._done)


def record_path(folder: str | Path) -> Path:
    """Where ``folder``'s run record is read from: ``provenance.json``, else an older folder's ``run.json``
    (``provenance.json`` when there is neither: where a new run writes it)."""
    folder = Path(folder)
    new, old = folder / RUN_FILE, folder / OLD_RUN_FILE
    return old if not new.exists() and old.exists() else new


def start_over(folder: str | Path) -> Path | None:
    """Move everything in ``folder`` (run record, checkpoint, results, caches; not its lock or earlier
    ``superseded-*`` folders) into ``folder/superseded-<timestamp>/``; return that folder (``None``: nothing
    to move). Nothing is deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    moving = [p for p in folder.iterdir() if p.name != LOCK_FILE and not p.name.startswith(SUPERSEDED)]
    if not moving:
        return None
    dest = folder / f"{SUPERSEDED}{time.strftime('%Y-%m-%dT%H-%M-%S')}"
    n = 1
    while dest.exists():
        n += 1
        dest = folder / f"{SUPERSEDED}{time.strftime('%Y-%m-%dT%H-%M-%S')}-{n}"
    dest.mkdir()
    for p in moving:
        p.rename(dest / p.name)
    return dest
