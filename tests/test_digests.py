"""harness.core.digests: a folder is known by its content, hashed once per file version."""

from __future__ import annotations

import os
import shutil

import harness.core.digests as digests


def _adapter(folder, weights: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "README.md").write_text("notes")
    return folder


def test_a_copied_folder_keeps_its_digest_and_docs_do_not_count(tmp_path, monkeypatch):
    monkeypatch.setenv("MALT_CACHE", str(tmp_path / "cache"))
    a = _adapter(tmp_path / "a", b"\x01" * 64)
    shutil.copytree(a, tmp_path / "b")
    (tmp_path / "b" / "README.md").write_text("other notes")
    assert digests.tree_digest(a) == digests.tree_digest(tmp_path / "b")


def test_retraining_in_place_changes_the_digest_even_at_the_same_size(tmp_path, monkeypatch):
    monkeypatch.setenv("MALT_CACHE", str(tmp_path / "cache"))
    a = _adapter(tmp_path / "a", b"\x01" * 64)
    before = digests.path_digest(a)
    st = (a / "adapter_model.safetensors").stat()
    (a / "adapter_model.safetensors").write_bytes(b"\x02" * 64)
    os.utime(a / "adapter_model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert digests.path_digest(a) != before
    assert digests.path_digest(tmp_path / "not-there") is None and digests.path_digest(None) is None


def test_a_file_is_hashed_once_per_version(tmp_path, monkeypatch):
    monkeypatch.setenv("MALT_CACHE", str(tmp_path / "cache"))
    calls = []
    real = digests._hash_file
    monkeypatch.setattr(digests, "_hash_file", lambda p: calls.append(p) or real(p))
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    first = digests.file_digest(f)
    assert digests.file_digest(f) == first and len(calls) == 1  # from the cache
    f.write_bytes(b"abcd")
    assert digests.file_digest(f) != first and len(calls) == 2


def test_drawn_questions_digest_depends_on_content_and_order():
    rows = [{"question": "1+1?", "answer": "2"}, {"question": "2+2?", "answer": "4"}]
    assert digests.docs_digest(rows) == digests.docs_digest([dict(r) for r in rows])
    assert digests.docs_digest(rows) != digests.docs_digest(rows[::-1])
