"""Files of long runs: atomic writes, append-only JSONL checkpoints and an output-folder lock.

A kill at any moment (SIGINT, SIGTERM, ``kill -9``) leaves either the old or the new version of a
file written with :func:`atomic_write`, and at most one torn last line in an append-only JSONL
file, which :func:`read_records` drops. :class:`RunLock` keeps two processes out of one folder and
takes over the lock of a process that died.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.core.errors import MaltError

LOCK_FILE = ".malt.lock"


def cache_dir() -> Path:
    """``$MALT_CACHE``, else ``$XDG_CACHE_HOME/malt``, else ``~/.cache/malt``."""
    if os.environ.get("MALT_CACHE"):
        return Path(os.environ["MALT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "malt"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(fh.name, path)


def iter_jsonl(path: Path, error: Callable[[str], Exception] = MaltError) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; a bad line raises ``error("file:line: ...")``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"file not found: {path}")
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise error(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason})") from None


def append_records(path: Path, records: list[dict]) -> None:
    """Append ``records`` as JSON lines in one write, flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read_records(path: Path) -> list[dict]:
    """The complete records of an append-only JSONL file; a torn tail (a kill mid-write) is cut off."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    records, good = [], 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        good += len(line)
    if good != len(raw):
        with path.open("r+b") as fh:
            fh.truncate(good)
    return records


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


class RunLock:
    """An exclusive lock on an output folder (``<folder>/.malt.lock`` holding host and pid).

    A second process refuses with a ``MaltError``; a lock left by a dead process on this host is
    taken over. Use as a context manager.
    """

    def __init__(self, folder: Path, what: str = "run") -> None:
        self.path = Path(folder) / LOCK_FILE
        self.what = what
        self.took_over: int | None = None

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None:  # being written right now, or garbage: look again, then take over
                    owner = {"host": me["host"], "pid": -1}
                pid = int(owner.get("pid", -1))
                if owner.get("host") != me["host"]:
                    raise MaltError(
                        f"{self.path.parent} is locked by pid {pid} on host {owner.get('host')}: another "
                        f"{self.what} is writing there (delete {self.path} if it is dead)"
                    ) from None
                if pid > 0 and pid != me["pid"] and _alive(pid):
                    raise MaltError(
                        f"{self.path.parent} is in use by another {self.what} (pid {pid}); "
                        "wait for it or use another output folder"
                    ) from None
                self.took_over = pid
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            return self
        raise MaltError(f"could not lock {self.path.parent}")

    def release(self) -> None:
        owner = self._owner()
        if owner and owner.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
