"""Reading results: find ``results_*.json``, check their format, load their sample logs.

Two kinds of results files: ours (``malt.format``, our ``malt_*`` tasks) and lm-eval's (written by lm-eval for any
task run through the solver by ``malt-eval --tasks <lm-eval task>`` or ``malt-eval lm-eval``, or by lm-eval
for another model). An lm-eval file is read as a run with one benchmark per task, filter and metric
(``gsm8k_cot_zs_local:strict-match``; ``:<metric>`` added when a filter has several), its sample lines as rows
of that filter with the metric's value as ``acc``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import MaltError
from leaderboard.provenance import check_record

#: The ``malt.format`` this leaderboard reads (``harness.run.results.RESULTS_FORMAT``).
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

    @property
    def provenance(self) -> dict | None:
        """The run's provenance record (``malt.provenance``); ``None`` for results written without one."""
        return self.malt.get("provenance")

    def task_record(self, task: str) -> dict:
        """The provenance of one benchmark (data digest, prompt hash, version); ``{}`` when not recorded."""
        col = self.lm_eval_column(task)
        found = ((self.provenance or {}).get("tasks") or {}).get(col["task"] if col else task)
        return found if isinstance(found, dict) else {}

    def lm_eval_column(self, task: str) -> dict | None:
        """For a benchmark of an lm-eval results file: its ``task``, ``filter`` and ``metric``; else None."""
        return (self.malt.get("lm_eval") or {}).get(task)

    def samples_path(self, task: str) -> Path:
        col = self.lm_eval_column(task)
        return self.path.parent / f"samples_{col['task'] if col else task}_{self.stamp}.jsonl"


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


#: Keys of lm-eval's ``configs[task]`` that are not the task's definition (the run's model args, sampling).
_NOT_PROMPT = ("metadata", "generation_kwargs")


def _is_lm_eval(doc: object) -> bool:
    """A results file lm-eval wrote (its keys; no ``malt`` block of ours, which has a format and our counters)."""
    if not isinstance(doc, dict):
        return False
    malt = doc.get("malt") if isinstance(doc.get("malt"), dict) else {}
    if "format" in malt or "calls_per_question" in malt:
        return False
    return all(isinstance(doc.get(k), dict) for k in ("results", "configs", "config", "n-samples")) and (
        "lm_eval_version" in doc or "n-shot" in doc
    )


def _lm_eval_system(doc: dict) -> dict:
    """The system of an lm-eval results file: our ``malt`` block, else the ``malt`` model's args, else the model."""
    from harness.core.roles import ROLES, letters
    from harness.solver.steps import parse_agents

    config = doc.get("config") or {}
    args = config.get("model_args") or {}
    if not isinstance(args, dict):
        args = dict(p.split("=", 1) for p in str(args).split(",") if "=" in p)
    given = doc.get("malt") if isinstance(doc.get("malt"), dict) else {}
    model = str(given.get("model") or args.get("model") or args.get("pretrained") or doc.get("model_name") or "?")
    if given or str(config.get("model")) in ("malt", "MaltLM"):
        agents = str(given.get("agents") or args.get("agents") or "g,v,r")
        try:
            roles = list(parse_agents(agents))
            agents = letters(roles)
        except MaltError:  # a plan name (debate) or an odd value: shown as it is
            roles = [r for r in given.get("roles") or ROLES if isinstance(r, str)]
        temperature = given.get("temperature", args.get("temperature"))
        votes = int(given.get("votes") or args.get("votes") or 1)
    else:  # another lm-eval model (hf, vllm, ...): a single model answering lm-eval's context
        agents, roles, votes, temperature = f"lm-eval {config.get('model')}", ["generator"], 1, None
    models = given.get("role_models") or {r: args.get(f"{r}_model") for r in roles}
    adapters = given.get("role_adapters") or {r: args.get(f"{r}_adapter") for r in roles}
    seeds = int(given.get("seeds") or 1)
    return {
        "label": given.get("label"),  # malt-eval --label (a suite row's name)
        "agents": agents,
        "roles": {r: {"model": models.get(r) or model, "path": None, "adapter": adapters.get(r)} for r in roles},
        "votes": votes,
        "temperature": None if temperature is None else float(temperature),
        "top_p": None,
        # one seed of a seeded lm-eval run (each seed is its own lm-eval file): a row of its own, never replaced;
        # the run's across-seeds file (no seed of its own) is the run's row
        "lm_eval_seed": f"{given.get('seed')} of {seeds}" if seeds > 1 and given.get("seed") is not None else None,
    }


def _per_question(path: Path) -> tuple[float | None, float | None]:
    """Calls and generated tokens per question from the ``malt.pipelines`` of an lm-eval sample file (one filter's
    lines); ``None`` without them."""
    calls, tokens, seen = 0, 0, set()
    try:
        lines = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, ValueError):
        return None, None
    for line in lines:
        pipes = (line.get("malt") or {}).get("pipelines") if isinstance(line, dict) else None
        if not pipes or (line.get("seed", 0), line.get("doc_id")) in seen:
            continue
        seen.add((line.get("seed", 0), line.get("doc_id")))
        turns = [t for p in pipes for t in (p.get("turns") or {}).values()]
        calls += len(turns)
        tokens += sum(int(t.get("n_tokens") or 0) for t in turns)
    return (calls / len(seen), tokens / len(seen)) if seen else (None, None)


def _from_lm_eval(path: Path, doc: dict) -> dict:
    """An lm-eval results file as a run: one benchmark per task, filter and metric (see the module's notes)."""
    system = _lm_eval_system(doc)
    limit = (doc.get("config") or {}).get("limit")
    limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit  # lm-eval's CLI: 2.0
    out: dict = {"results": {}, "versions": {}, "n-samples": {}, "config": doc.get("config"), "date": doc.get("date")}
    subset = (doc.get("malt") or {}).get("subset") if isinstance(doc.get("malt"), dict) else None
    malt: dict = {"format": SUPPORTED_FORMAT, **system, "limit": limit, "limited": limit is not None, "subset": subset}
    for key in ("prompt_hash", "per_seed", "calls_per_question", "tokens_per_question", "wall_time", "lm_eval"):
        malt[key] = {}
    stamp = path.stem.removeprefix("results_")
    for task, res in doc["results"].items():
        if not isinstance(res, dict):
            continue
        metrics = [
            (k.split(",", 1)[0], k.split(",", 1)[1])
            for k, v in res.items()
            if "," in k and "_stderr," not in k and "_std," not in k and isinstance(v, (int, float))
        ]
        per_filter = {f: sum(1 for _, g in metrics if g == f) for _, f in metrics}
        task_config = {k: v for k, v in (doc["configs"].get(task) or {}).items() if k not in _NOT_PROMPT}
        config = json.dumps(task_config, sort_keys=True, default=str)
        calls, tokens = _per_question(path.parent / f"samples_{task}_{stamp}.jsonl")
        for metric, filt in metrics:
            col = f"{task}:{filt}" + (f":{metric}" if per_filter[filt] > 1 else "")
            std, stderr = res.get(f"{metric}_std,{filt}"), res.get(f"{metric}_stderr,{filt}")
            kind, spread = ("std", std) if isinstance(std, (int, float)) else ("stderr", stderr)
            out["results"][col] = {"acc,none": res[f"{metric},{filt}"]}
            out["results"][col][f"acc_{kind},none"] = spread if isinstance(spread, (int, float)) else None
            out["versions"][col] = doc.get("versions", {}).get(task, "?")
            out["n-samples"][col] = doc["n-samples"].get(task) or {}
            malt["prompt_hash"][col] = hashlib.sha256(config.encode()).hexdigest()[:16]  # the task's definition
            malt["calls_per_question"][col], malt["tokens_per_question"][col] = calls, tokens
            malt["lm_eval"][col] = {"task": task, "filter": filt, "metric": metric}
            malt["per_seed"][col] = _seeds_of(doc, task, f"{metric},{filt}")
    if not out["results"]:
        raise ResultsError(f"{path}: lm-eval results without a numeric metric")
    given = doc["malt"] if isinstance(doc.get("malt"), dict) else {}
    if "provenance" in given:
        malt["provenance"] = given["provenance"]
    seconds = doc.get("total_evaluation_time_seconds")
    malt["wall_time"] = {c: float(seconds) for c in out["results"]} if seconds is not None else {}
    out["malt"] = malt
    return out


def _seeds_of(doc: dict, task: str, key: str) -> list[dict]:
    """Each seed's ``{"seed", "acc", "n"}`` of one metric, from an across-seeds lm-eval file (``[]`` for another)."""
    given = doc.get("malt") if isinstance(doc.get("malt"), dict) else {}
    per_seed = (given.get("per_seed") or {}).get(task) if isinstance(given.get("per_seed"), dict) else None
    if not isinstance(per_seed, list) or given.get("seed") is not None:
        return []
    ids = given.get("doc_ids") if isinstance(given.get("doc_ids"), list) else []
    effective = int((doc["n-samples"].get(task) or {}).get("effective", 0))
    out = []
    for s, res in enumerate(per_seed):
        value = res.get(key) if isinstance(res, dict) else None
        if not isinstance(value, (int, float)):
            return []
        picked = ids[s].get(task) if s < len(ids) and isinstance(ids[s], dict) else None
        out.append({"seed": s, "acc": float(value), "n": len(picked) if isinstance(picked, list) else effective})
    return out


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
    if "provenance" in m and (why := check_record(m["provenance"])):
        raise ResultsError(f"{path}: {why}")
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
    if _is_lm_eval(doc):
        doc = _from_lm_eval(Path(path), doc)
    _check(Path(path), doc)
    return Run(Path(path), doc)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """All runs found under ``paths``, oldest first. A seed's own lm-eval file is left out where the folder above it
    holds the run's across-seeds file (the run's one row, mean ± std); given alone, it is a row of its own."""
    runs = [load_run(p) for p in find_results(paths)]
    combined = [r.path.parent for r in runs if _is_across_seeds(r)]
    runs = [r for r in runs if not (r.malt.get("lm_eval_seed") and any(c in r.path.parents for c in combined))]
    return sorted(runs, key=lambda r: (r.date, str(r.path)))


def _is_across_seeds(run: Run) -> bool:
    m = run.malt
    return bool(m.get("lm_eval")) and not m.get("lm_eval_seed") and any(m.get("per_seed", {}).values())


def load_samples(run: Run, task: str) -> list[dict]:
    """The sample log of ``task`` beside ``run`` (one row per (seed, question))."""
    path, col = run.samples_path(task), run.lm_eval_column(task)
    if not path.is_file():
        raise ResultsError(f"no sample log {path.name} beside {run.path} (rerun malt-eval with --log-samples)")
    rows = []
    try:
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if col is not None and isinstance(row, dict):  # lm-eval: one line per filter; its metric is acc
                    if row.get("filter") != col["filter"]:
                        continue
                    row = {**row, "acc": row.get(col["metric"])}
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
