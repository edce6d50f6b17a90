"""The board: runs grouped into one row per system, one cell per benchmark, mixed and replaced cells marked.

A system is a run's provenance record minus its tasks (:func:`leaderboard.provenance.system`); results written
without a record are "provenance incomplete" and grouped by their models, adapters, agents, votes, sampling
and ``--limit``. Rows sharing a label are told apart by the settings in which they differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.core.identity import differing_paths as differing
from harness.core.roles import ROLE_LETTERS
from harness.tasks.taskinfo import TASKS
from leaderboard.collect import ResultsError, Run
from leaderboard.provenance import settings_text, short_value, shown, system, system_id

TASK_ORDER = tuple(TASKS)  # the benchmarks' column order


@dataclass
class Cell:
    """One benchmark result of one system (from the newest run of that system holding the task)."""

    task: str
    acc: float
    spread_kind: str  # "std" (over seeds) or "stderr" (binomial, one seed)
    spread: float | None
    n: int  # questions per seed
    n_original: int | None
    seeds: int
    per_seed: list[float]
    calls_per_question: float | None
    tokens_per_question: float | None
    version: str
    prompt_hash: str
    max_new_tokens: dict
    wall_time: float | None
    source: str
    date: str = ""  # when the run was written (UTC)
    data: str | None = None  # digest of the questions drawn (provenance); None: not recorded
    provenance: dict = field(default_factory=dict)  # the run's record of this benchmark (data, prompts, version)
    run_record: dict = field(default_factory=dict)  # the run's package versions and git commit
    replaced: list[str] = field(default_factory=list)  # older runs of the same system and task
    replaced_dates: list[str] = field(default_factory=list)  # their dates, in the same order
    mark: str = ""  # footnote mark when the column mixes data, task versions or prompt hashes
    replaced_mark: str = ""  # footnote mark naming the older runs this cell replaced

    def marks(self) -> list[str]:
        """The cell's footnote marks."""
        return [m for m in (self.mark, self.replaced_mark) if m]


@dataclass
class Row:
    """One system: model identity, per-role models and adapters, agents, votes, sampling, --limit."""

    key: tuple
    label: str
    model: str
    roles: dict
    agents: str
    votes: int
    temperature: float | None
    top_p: float | None
    limited: bool
    limit: int | None
    subset: int | None
    provenance: dict | None = None  # the system's record (minus tasks); None: provenance incomplete
    cells: dict[str, Cell] = field(default_factory=dict)

    def record(self) -> dict | None:
        """The full provenance of the row: the system, each benchmark's record, the runs' versions and commit
        (one value when the row's runs agree, else one per results file)."""
        if self.provenance is None:
            return None
        out = {**self.provenance, "tasks": {t: c.provenance for t, c in self.cells.items()}}
        for key in ("versions", "git"):
            values = {c.source: c.run_record.get(key) for c in self.cells.values()}
            same = len({json.dumps(v, sort_keys=True) for v in values.values()}) <= 1
            out[key] = next(iter(values.values()), None) if same else values
        return out

    def config(self) -> dict:
        """Everything that defines the system (shown on hover, written to CSV/JSON)."""
        return {
            "model": self.model,
            "agents": self.agents,
            "votes": self.votes,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "limited": self.limited,
            "limit": self.limit,
            "subset": self.subset,
            "roles": self.roles,
            "provenance_incomplete": self.provenance is None,
            "provenance": self.record(),
        }


@dataclass
class Board:
    rows: list[Row]
    tasks: list[str]
    footnotes: dict[str, str]  # mark -> text: columns mixing data, task versions or prompt hashes
    replaced: dict[str, str] = field(default_factory=dict)  # mark -> text: cells that replaced older runs
    incomplete: list[str] = field(default_factory=list)  # labels of the rows without a provenance record


def _model_arg(run: Run) -> str:
    """``config.model_args``' model: a dict (lm-eval's and ours now) or ``k=v,...`` (older malt-eval results)."""
    args = run.doc.get("config", {}).get("model_args") or {}
    if not isinstance(args, dict):
        args = dict(p.split("=", 1) for p in str(args).split(",") if "=" in p)
    return str(args.get("model") or args.get("pretrained") or "?")


def _roles(run: Run) -> dict[str, dict]:
    """Model, path and adapter per role; the provenance record's model and adapter where it has them."""
    default = _model_arg(run)
    recorded = (run.provenance or {}).get("roles")
    out = {}
    for role, desc in run.malt["roles"].items():
        desc = desc or {}
        rec = recorded.get(role) if isinstance(recorded, dict) else None
        rec = rec if isinstance(rec, dict) else {}
        model = rec.get("model") or desc.get("model") or default
        out[role] = {"model": model, "path": desc.get("path"), "adapter": rec.get("adapter", desc.get("adapter"))}
    return out


def system_key(run: Run) -> tuple:
    """What makes two runs the same system (and so the same row): the provenance minus the tasks; for results
    without a record, the models and adapters per role, agents, votes, sampling and ``--limit``."""
    m = run.malt
    if run.provenance is not None:
        key: tuple = ("provenance", system_id(run.provenance))
    else:
        roles = tuple((r, d["model"], d["adapter"]) for r, d in _roles(run).items())
        key = ("incomplete", roles, m["agents"], m["votes"], m.get("temperature"), m.get("top_p"))
        key += (bool(m.get("limited")),)
    return (*key, m["lm_eval_seed"]) if m.get("lm_eval_seed") else key


def _adapters_label(roles: dict[str, dict]) -> str:
    with_adapter = {r: d["adapter"] for r, d in roles.items() if d["adapter"]}
    if not with_adapter:
        return ""
    letters = ",".join(ROLE_LETTERS.get(r, r) for r in with_adapter)
    parents = {Path(a).parent for a in with_adapter.values()}
    if len(parents) == 1 and all(Path(a).name == r for r, a in with_adapter.items()):
        where = "/".join(next(iter(parents)).parts[-2:])
    else:
        where = ",".join(Path(a).name for a in with_adapter.values())
    return f" +LoRA[{letters}] {where}"


def _model_label(roles: dict[str, dict]) -> str:
    models = list(dict.fromkeys(d["model"] for d in roles.values()))
    if len(models) == 1:
        local = models[0].startswith(("/", ".", "~"))  # a local folder: its name; hub ids stay whole
        return Path(models[0]).name if local else models[0]
    return " ".join(f"{ROLE_LETTERS.get(r, r)}={d['model']}" for r, d in roles.items())


def _new_row(run: Run) -> Row:
    m = run.malt
    roles = _roles(run)
    model = _model_label(roles)
    label = m.get("label") or f"{model} {m['agents']}" + (f" MV@{m['votes']}" if m["votes"] > 1 else "")
    label += _adapters_label(roles) if not m.get("label") else ""
    label += f" (seed {m['lm_eval_seed']})" if m.get("lm_eval_seed") else ""
    record = run.provenance
    generation = (record or {}).get("generation")
    sampling = m if record is None else generation if isinstance(generation, dict) else {}
    return Row(
        key=system_key(run),
        label=label,
        model=model,
        roles=roles,
        agents=m["agents"],
        votes=m["votes"],
        temperature=sampling.get("temperature"),
        top_p=sampling.get("top_p"),
        limited=bool(m.get("limited")),
        limit=m.get("limit"),
        subset=m.get("subset"),
        provenance=None if record is None else system(record),
    )


def _cell(run: Run, task: str) -> Cell:
    try:
        return _read_cell(run, task)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsError(f"{run.path}: malformed results for {task} ({type(exc).__name__}: {exc})") from None


def _read_cell(run: Run, task: str) -> Cell:
    res, m = run.doc["results"][task], run.malt
    kind = next((k.split(",")[0][4:] for k in res if k.startswith("acc_")), "stderr")
    spread = res.get(f"acc_{kind},none")
    per_seed = m["per_seed"].get(task) or []
    n_samples = run.doc["n-samples"].get(task) or {}
    record = run.task_record(task)
    version, prompts = record.get("version"), record.get("prompts")
    return Cell(
        task=task,
        acc=float(res["acc,none"]),
        spread_kind=kind,
        spread=None if spread is None else float(spread),
        n=int(per_seed[0]["n"]) if per_seed else int(n_samples.get("effective", 0)),
        n_original=n_samples.get("original"),
        seeds=len(per_seed) or 1,
        per_seed=[float(s["acc"]) for s in per_seed],
        calls_per_question=m["calls_per_question"].get(task),
        tokens_per_question=m["tokens_per_question"].get(task),
        version=str(run.doc["versions"].get(task, "?") if version is None else version),
        prompt_hash=str(m["prompt_hash"].get(task, "?") if prompts is None else prompts),
        max_new_tokens=(m.get("max_new_tokens") or {}).get(task) or {},
        wall_time=(m.get("wall_time") or {}).get(task),
        source=str(run.path),
        date=utc(run.date),
        data=None if record.get("data") is None else str(record["data"]),
        provenance=record,
        run_record={k: (run.provenance or {}).get(k) for k in ("versions", "git")},
    )


def utc(date: float) -> str:
    """A run's date as ``2026-12-06 14:03 UTC``."""
    return datetime.fromtimestamp(date, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _unique_labels(rows: list[Row]) -> None:
    """Mark --limit rows, then tell apart rows whose labels still collide: by the settings their provenance
    records differ in; rows without one by temperature, else a number, and beside recorded rows by a mark."""
    for r in rows:
        if r.limited:
            r.label += f" (limit {r.limit})" if r.limit is not None else " (limit)"
    for same in _collisions(rows):
        known = [r for r in same if r.provenance is not None]
        if len(known) > 1:
            paths = shown(differing([r.provenance for r in known]))
            for r in known:
                r.label += f" ({settings_text(r.provenance, paths)})"
        old = [r for r in same if r.provenance is None]
        if len(old) > 1 and len({r.temperature for r in old}) == len(old):
            for r in old:
                r.label += f" T={r.temperature:g}" if r.temperature is not None else ""
        elif len(old) > 1:
            for i, r in enumerate(old, 1):
                r.label += f" #{i}"
        for r in old if known else []:
            r.label += " (provenance incomplete)"
    for same in _collisions(rows):  # settings too long to tell apart once shortened
        for i, r in enumerate(same, 1):
            r.label += f" #{i}"


def _collisions(rows: list[Row]) -> list[list[Row]]:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.label, []).append(r)
    return [same for same in groups.values() if len(same) > 1]


#: What --strict and the mixed-column marks compare in a column, and how a message names it.
_VARIANT_PARTS = (("data", "data digests"), ("version", "task versions"), ("prompt_hash", "prompt hashes"))


def _variant(cell: Cell) -> tuple:
    return tuple(getattr(cell, attr) for attr, _ in _VARIANT_PARTS)


def _mark_mismatches(rows: list[Row], tasks: list[str]) -> dict[str, str]:
    """Give every cell of a column that mixes data, task versions or prompt hashes a footnote mark."""
    notes: dict[str, str] = {}
    for task in tasks:
        cells = [r.cells[task] for r in rows if task in r.cells]
        variants = list(dict.fromkeys(_variant(c) for c in cells))
        if len(variants) < 2:
            continue
        with_data = any(c.data is not None for c in cells)
        for data, version, phash in variants:
            mark = f"†{len(notes) + 1}"
            drawn = f", data {short_value(data) if data else 'not recorded'}" if with_data else ""
            notes[mark] = (
                f"{task}: task version {version}, prompt hash {phash[:16]}{drawn} "
                f"(the column mixes {len(variants)} variants)"
            )
            for c in cells:
                if _variant(c) == (data, version, phash):
                    c.mark = mark
    return notes


def _mark_replaced(rows: list[Row], tasks: list[str]) -> dict[str, str]:
    """Give every cell that replaced older runs of its system a footnote mark naming their folders and dates."""
    notes: dict[str, str] = {}
    for row in rows:
        for task in tasks:
            c = row.cells.get(task)
            if c is None or not c.replaced:
                continue
            c.replaced_mark = mark = f"‡{len(notes) + 1}"
            older = "; ".join(f"{Path(p).parent} ({d})" for p, d in zip(c.replaced, c.replaced_dates, strict=True))
            notes[mark] = f"{row.label}, {task}: the run in {Path(c.source).parent} ({c.date}) replaces {older}"
    return notes


def mixed_columns(board: Board) -> list[str]:
    """Each column whose cells mix data digests, task versions or prompt hashes, with the values it mixes."""
    out = []
    for task in board.tasks:
        cells = [r.cells[task] for r in board.rows if task in r.cells]
        parts = []
        for attr, name in _VARIANT_PARTS:
            values = list(dict.fromkeys(getattr(c, attr) for c in cells))
            if len(values) > 1:
                parts.append(f"{name} {' vs '.join(short_value(v) if v else 'not recorded' for v in values)}")
        if parts:
            out.append(f"{task} ({'; '.join(parts)})")
    return out


def check_strict(board: Board) -> None:
    """``--strict``: refuse a board with a column that mixes data digests, task versions or prompt hashes."""
    mixed = mixed_columns(board)
    if mixed:
        raise ResultsError(f"--strict: mixed columns: {', '.join(mixed)}")


def build_board(runs: list[Run]) -> Board:
    """Group ``runs`` (oldest first) into rows; a newer run of the same system and task replaces an older one."""
    rows: dict[tuple, Row] = {}
    for run in runs:
        key = system_key(run)
        row = rows.setdefault(key, _new_row(run))
        for task in run.tasks:
            cell = _cell(run, task)
            if task in row.cells:
                old = row.cells[task]
                cell.replaced = [*old.replaced, old.source]
                cell.replaced_dates = [*old.replaced_dates, old.date]
            row.cells[task] = cell
    all_tasks = {t for r in rows.values() for t in r.cells}
    tasks = [t for t in TASK_ORDER if t in all_tasks] + sorted(all_tasks - set(TASK_ORDER))
    ordered = list(rows.values())
    _unique_labels(ordered)
    return Board(
        ordered,
        tasks,
        _mark_mismatches(ordered, tasks),
        replaced=_mark_replaced(ordered, tasks),
        incomplete=[r.label for r in ordered if r.provenance is None],
    )
