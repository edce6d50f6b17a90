"""Reading ``malt-eval`` results: find ``results_*.json``, check their format, load their sample logs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import MaltError

#: The ``malt.format`` this leaderboard reads (``harness.results.RESULTS_FORMAT``).
SUPPORTED_FORMAT = 1
_REQUIRED_MALT = ("agents", "roles", "votes", "prompt_hash", "per_seed", "calls_per_question", "tokens_per_question")
_REQUIRED_TOP = ("results", "versions", "n-samples")
_MALT_TYPES: dict[str, type | tuple[type, ...]] = {"agents": str, "votes": int}  # the others: dicts


class ResultsError(MaltError):
    """Result folders or files that cannot be used (missing, empty, unreadable, unknown format)."""


@dataclass(frozen=True)
class Run:
    """One ``results_<stamp>.json`` written by ``malt-eval``."""

    path: Path
    doc: dict

    @property
    def malt(self) -> dict:
        return self.doc["malt"]

    @property
    def stamp(self) -> str:
        """The ``<stamp>`` shared by the results file and its sample logs."""
        return self.path.stem.removeprefix("results_")

    @property
    def tasks(self) -> list[str]:
        return list(self.doc["results"])

    @property
    def date(self) -> float:
        """When the run was written (the file's ``date``, else its modification time)."""
        date = self.doc.get("date")
        return float(date) if isinstance(date, (int, float)) else self.path.stat().st_mtime

    def samples_path(self, task: str) -> Path:
        return self.path.parent / f"samples_{task}_{self.stamp}.jsonl"


def find_results(paths: list[str | Path]) -> list[Path]:
    """Every ``results_*.json`` under the given folders (recursively) or given as files, sorted, unique."""
    if not paths:
        raise ResultsError("no result folder given")
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if not (p.name.startswith("results_") and p.suffix == ".json"):
                raise ResultsError(f"{p} is not a malt-eval results file (results_<time>.json)")
            found.append(p)
        elif p.is_dir():
            try:
                here = sorted(q for q in p.rglob("results_*.json") if q.is_file())
            except OSError as exc:
                raise ResultsError(f"cannot read {p}: {exc.strerror or exc}") from None
            if not here:
                raise ResultsError(f"no results_*.json under {p} (a malt-eval --output-path folder?)")
            found.extend(here)
        else:
            raise ResultsError(f"no such file or folder: {p}")
    return list(dict.fromkeys(q.resolve() for q in found))


def _check(path: Path, doc: object) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("malt"), dict) or "format" not in doc["malt"]:
        raise ResultsError(f"{path}: no malt.format: results of an older malt-eval or another tool (rerun malt-eval)")
    fmt = doc["malt"]["format"]
    if fmt != SUPPORTED_FORMAT:
        raise ResultsError(f"{path}: results format {fmt!r} is not supported (this malt-leaderboard reads format 1)")
    missing = [k for k in _REQUIRED_TOP if not isinstance(doc.get(k), dict)]
    missing += [f"malt.{k}" for k in _REQUIRED_MALT if k not in doc["malt"]]
    if missing:
        raise ResultsError(f"{path}: malformed results (missing {', '.join(missing)})")
    m = doc["malt"]
    wrong = [f"malt.{k}" for k in _REQUIRED_MALT if not isinstance(m[k], _MALT_TYPES.get(k, dict))]
    if wrong:
        raise ResultsError(f"{path}: malformed results (wrong type: {', '.join(wrong)})")
    if not doc["results"]:
        raise ResultsError(f"{path}: holds no task results")
    for task, res in doc["results"].items():
        if not isinstance(res, dict) or not isinstance(res.get("acc,none"), (int, float)):
            raise ResultsError(f"{path}: malformed results (no acc for {task})")


def load_run(path: Path) -> Run:
    """Read and check one results file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    _check(Path(path), doc)
    return Run(Path(path), doc)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """All runs found under ``paths``, oldest first."""
    return sorted((load_run(p) for p in find_results(paths)), key=lambda r: (r.date, str(r.path)))


def load_samples(run: Run, task: str) -> list[dict]:
    """The sample log of ``task`` beside ``run`` (one row per (seed, question))."""
    path = run.samples_path(task)
    if not path.is_file():
        raise ResultsError(f"no sample log {path.name} beside {run.path} (rerun malt-eval with --log-samples)")
    rows = []
    try:
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("doc_id"), int) or "acc" not in row:
                    raise ResultsError(f"{path}:{i}: not a malt-eval sample row (no doc_id/acc)")
                rows.append(row)
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON lines ({exc})") from None
    return rows


def question_key(row: dict) -> tuple[int, int]:
    """``(seed, doc_id)`` of a sample row: the unit on which two systems are paired."""
    return int(row.get("seed", 0)), int(row["doc_id"])
