"""Interrupted evaluations resume and equal an uninterrupted run; output folders are locked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.runfiles import LOCK_FILE, RunLock, append_records, read_records
from tests.conftest import REPO, malt_eval

N_QUESTIONS = 24


@pytest.fixture(scope="module")
def gsm_data(tmp_path_factory, shared_data) -> Path:
    """A data folder whose GSM8K test split has the first 24 real questions."""
    out = tmp_path_factory.mktemp("data")
    (out / "gsm8k").mkdir()
    with (shared_data / "gsm8k" / "test.jsonl").open() as fh:
        (out / "gsm8k" / "test.jsonl").write_text("".join(next(fh) for _ in range(N_QUESTIONS)))
    return out


def _args(model: Path, out: Path) -> list:
    return [
        "--model", model, "--agents", "g,v,r", "--tasks", "malt_gsm8k", "--temperature", 0.7, "--votes", 2,
        "--max-new-tokens", 12, "--batch-size", 2, "--output-path", out, "--log-samples",
    ]  # fmt: skip


def _final(out: Path) -> tuple[dict, list[dict]]:
    (res,) = out.glob("results_*.json")
    doc = json.loads(res.read_text())
    (samples,) = out.glob("samples_malt_gsm8k_*.jsonl")
    return doc, [json.loads(line) for line in samples.open()]


@pytest.fixture(scope="module")
def reference(tiny_model_dir, gsm_data, tmp_path_factory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("reference")
    r = malt_eval(*_args(tiny_model_dir, out), env_data=gsm_data)
    assert r.returncode == 0, r.stderr[-2000:]
    return _final(out)


def _interrupt(args: list, data: Path, out: Path, sig: signal.Signals) -> str:
    """Start malt-eval, send ``sig`` once a new batch is on record, return its stderr."""
    ckpt = out / "checkpoint.jsonl"
    before = ckpt.stat().st_size if ckpt.exists() else 0
    env = dict(os.environ, MALT_DATA_DIR=str(data))
    cmd = [sys.executable, "-m", "malt_apps.eval_cli", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (ckpt.exists() and ckpt.stat().st_size > before):
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the run finished before it could be interrupted: " + err[-2000:]
    return err


def test_interrupted_run_resumes_to_the_uninterrupted_result(tiny_model_dir, gsm_data, reference, tmp_path):
    """Ctrl-C, SIGTERM and kill -9 in turn, each followed by a resume; the end result equals a clean run."""
    out = tmp_path / "out"
    args = _args(tiny_model_dir, out)
    ckpt = out / "checkpoint.jsonl"
    done = 0
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        err = _interrupt(args, gsm_data, out, sig)
        if sig != signal.SIGKILL:
            assert "rerun the same command to resume" in err and "Traceback" not in err, err[-2000:]
            assert not (out / LOCK_FILE).exists()
        else:
            assert (out / LOCK_FILE).exists()  # left behind by kill -9: the next run takes it over
        assert done < len(read_records(ckpt)) < N_QUESTIONS // 2
        assert not list(out.glob("results_*.json"))
        if sig != signal.SIGINT:
            assert f"resuming: {done} finished batches" in err
        done = len(read_records(ckpt))

    r = malt_eval(*args, env_data=gsm_data)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming: {done} finished batches" in r.stderr and "took over the stale lock" in r.stderr
    doc, samples = _final(out)
    ref_doc, ref_samples = reference
    assert doc["results"] == ref_doc["results"]
    assert doc["malt"]["per_seed"] == ref_doc["malt"]["per_seed"]
    assert doc["malt"]["stage_stats"] == ref_doc["malt"]["stage_stats"]
    assert samples == ref_samples
    assert len(read_records(ckpt)) == N_QUESTIONS // 2  # no batch recorded twice


def test_finished_run_is_reread_without_the_model(tiny_model_dir, gsm_data, reference, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "out"
    assert malt_eval(*_args(model, out), env_data=gsm_data).returncode == 0
    weights = model / "model.safetensors"
    st = weights.stat()  # zeroed in place, size and mtime kept: its digest is read from the digest cache, and a
    weights.write_bytes(b"\0" * st.st_size)  # rerun that tried to load it would fail
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = malt_eval(*_args(model, out), env_data=gsm_data)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(out.glob("results_*.json"))) == 1  # the rerun superseded the first results file
    doc, samples = _final(out)
    assert doc["results"] == reference[0]["results"] and samples == reference[1]


def test_torn_checkpoint_line_is_dropped(tmp_path):
    path = tmp_path / "c.jsonl"
    append_records(path, [{"a": 1}, {"a": 2}])
    with path.open("a") as fh:
        fh.write('{"a": 3, "half')
    assert read_records(path) == [{"a": 1}, {"a": 2}]
    assert path.read_text().endswith("}\n")  # cut back to the last complete record
    append_records(path, [{"a": 3}])
    assert read_records(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_output_folder_of_another_run_is_refused(tiny_model_dir, gsm_data, tmp_path):
    out = tmp_path / "out"
    args = ["--model", tiny_model_dir, "--tasks", "malt_gsm8k", "--limit", 2, "--max-new-tokens", 4]
    assert malt_eval(*args, "--agents", "g", "--output-path", out, env_data=gsm_data).returncode == 0
    before = sorted(p.name for p in out.iterdir())
    r = malt_eval(*args, "--agents", "g,v", "--output-path", out, env_data=gsm_data)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "holds a different run's results" in r.stderr
    assert "agents" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_second_writer_is_refused_and_stale_lock_taken_over(tiny_model_dir, gsm_data, tmp_path):
    out = tmp_path / "out"
    args = ["--model", tiny_model_dir, "--agents", "g", "--tasks", "malt_gsm8k", "--limit", 1, "--max-new-tokens", 4]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / LOCK_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": holder.pid}))
        r = malt_eval(*args, "--output-path", out, env_data=gsm_data)
        assert r.returncode == 2 and f"in use by another malt-eval (pid {holder.pid})" in r.stderr
        assert "Traceback" not in r.stderr and not list(out.glob("results_*.json"))
    finally:
        holder.kill()
        holder.wait()
    r = malt_eval(*args, "--output-path", out, env_data=gsm_data)  # the holder is dead now: a stale lock
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"took over the stale lock of dead process {holder.pid}" in r.stderr
    assert list(out.glob("results_*.json")) and not (out / LOCK_FILE).exists()


def test_run_lock_in_process(tmp_path):
    with RunLock(tmp_path, "job") as lock:
        assert lock.path.exists()
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from harness.core.runfiles import RunLock; RunLock({str(tmp_path)!r}, 'x').acquire()",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert other.returncode != 0 and "in use by another x" in other.stderr
    assert not lock.path.exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exception, on purpose
def test_signal_swallowed_by_a_finaliser_stops_the_run_after_the_next_batch(tmp_path):
    """Python drops an exception raised in ``__del__``: the signal stays on record and the next write stops."""
    import gc

    from harness.core.errors import interrupt_on_sigterm
    from harness.run.checkpoint import Checkpoint

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler's KeyboardInterrupt is raised here and dropped

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupt_on_sigterm()
        ckpt = Checkpoint(tmp_path, {"model": "m"})
        record = {"task": "malt_gsm8k", "seed": 0, "start": 0, "prompt_hash": "h", "doc_ids": [0]}
        ckpt.add(record)  # nothing pending: no interrupt
        Finalised()
        gc.collect()
        with pytest.raises(KeyboardInterrupt):
            ckpt.add(dict(record, start=1))
        assert [r["start"] for r in read_records(tmp_path / "checkpoint.jsonl")] == [0, 1]  # the batch is kept
        interrupt_on_sigterm()  # a new run starts with a clean record
        ckpt.add(dict(record, start=2))
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
