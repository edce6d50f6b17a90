"""Content digests: what a model, an adapter, a data file or a set of questions *is*, not where it lies.

One place for the project's hashing rule. Files are hashed with sha256; a folder's digest is the sha256 of
its files' relative paths and digests (sorted), so moving or copying a folder keeps its digest and
retraining an adapter in place changes it. Hashing a multi-GB weight file takes seconds, so a file's digest
is cached on disk by (absolute path, size, mtime) in ``<cache>/digests.json`` (:func:`harness.core.runfiles.cache_dir`);
a changed file has another size or mtime and is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from harness.core.runfiles import atomic_write

#: Files of a model or adapter folder that do not change what it computes (docs, caches, locks).
_SKIP_SUFFIXES = (".md", ".lock", ".txt.lock", ".pyc")
_SKIP_NAMES = {"README.md", ".gitattributes", "training_args.bin"}


def _cache_file() -> Path:
    from harness.core.runfiles import cache_dir

    return cache_dir() / "digests.json"


def sha256_bytes(data: bytes) -> str:
    """The sha256 of ``data`` (hex)."""
    return hashlib.sha256(data).hexdigest()


def json_digest(obj: object) -> str:
    """The sha256 of ``obj`` as canonical JSON (sorted keys, no spaces; other objects as strings)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return sha256_bytes(text.encode("utf-8"))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike, cache: bool = True) -> str:
    """The sha256 of one file, read from the on-disk cache when its path, size and mtime are on record."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    if not cache:
        return _hash_file(p)
    cache_path = _cache_file()
    known = _read_cache(cache_path)
    if key in known:
        return known[key]
    digest = _hash_file(p)
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache_path) + ".lock"):
            known = _read_cache(cache_path)
            known = {k: v for k, v in known.items() if not k.startswith(f"{p}|")}  # the file's older versions
            known[key] = digest
            atomic_write(cache_path, json.dumps(known, indent=0, sort_keys=True))
    except OSError:  # a read-only cache only costs time
        pass
    return digest


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _counted(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if name in _SKIP_NAMES or name.startswith(".") or "/." in f"/{rel}":
        return False
    return not name.endswith(_SKIP_SUFFIXES)


def tree_digest(path: str | os.PathLike, files: Iterable[str] | None = None) -> str:
    """The digest of a file or a folder (every file below it but docs and hidden files, or only ``files``)."""
    p = Path(path)
    if p.is_file():
        return file_digest(p)
    if files is None:
        files = (f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file())
        files = (rel for rel in files if _counted(rel))
    rels = sorted(files)
    return json_digest([[rel, file_digest(p / rel)] for rel in rels])


def path_digest(path: str | os.PathLike | None) -> str | None:
    """:func:`tree_digest` of a local path; ``None`` for ``None`` or a path that is not on disk (a hub id)."""
    if path is None:
        return None
    p = Path(path)
    return tree_digest(p) if p.exists() else None


def docs_digest(docs: Iterable[dict]) -> str:
    """The digest of a list of question rows as drawn (order counts)."""
    return json_digest(list(docs))


def doc_hash(doc: object) -> str:
    """lm-eval's ``doc_hash`` of a document (as its evaluator computes it for a sample line)."""
    from lm_eval.utils import handle_non_serializable, hash_string

    return hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))
