"""The board: runs grouped into one row per system, one cell per benchmark, mismatched cells marked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.roles import ROLE_LETTERS
from harness.taskinfo import TASKS
from leaderboard.collect import ResultsError, Run

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
    replaced: list[str] = field(default_factory=list)  # older runs of the same system and task
    mark: str = ""  # footnote mark when the column mixes task versions / prompt hashes


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
    cells: dict[str, Cell] = field(default_factory=dict)

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
        }


@dataclass
class Board:
    rows: list[Row]
    tasks: list[str]
    footnotes: dict[str, str]  # mark -> text


def _model_arg(run: Run) -> str:
    """``config.model_args``' model: a dict (lm-eval's and ours now) or ``k=v,...`` (older malt-eval results)."""
    args = run.doc.get("config", {}).get("model_args") or {}
    if not isinstance(args, dict):
        args = dict(p.split("=", 1) for p in str(args).split(",") if "=" in p)
    return str(args.get("model") or args.get("pretrained") or "?")


def _roles(run: Run) -> dict[str, dict]:
    default = _model_arg(run)
    out = {}
    for role, desc in run.malt["roles"].items():
        desc = desc or {}
        out[role] = {"model": desc.get("model") or default, "path": desc.get("path"), "adapter": desc.get("adapter")}
    return out


def system_key(run: Run) -> tuple:
    """What makes two runs the same system (and so the same row)."""
    m = run.malt
    roles = tuple((r, d["model"], d["adapter"]) for r, d in _roles(run).items())
    key = (roles, m["agents"], m["votes"], m.get("temperature"), m.get("top_p"), bool(m.get("limited")))
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
    return Row(
        key=system_key(run),
        label=label,
        model=model,
        roles=roles,
        agents=m["agents"],
        votes=m["votes"],
        temperature=m.get("temperature"),
        top_p=m.get("top_p"),
        limited=bool(m.get("limited")),
        limit=m.get("limit"),
        subset=m.get("subset"),
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
        version=str(run.doc["versions"].get(task, "?")),
        prompt_hash=str(m["prompt_hash"].get(task, "?")),
        max_new_tokens=(m.get("max_new_tokens") or {}).get(task) or {},
        wall_time=(m.get("wall_time") or {}).get(task),
        source=str(run.path),
    )


def _unique_labels(rows: list[Row]) -> None:
    """Mark --limit rows, then tell apart rows whose labels still collide (temperature, else a number)."""
    for r in rows:
        if r.limited:
            r.label += f" (limit {r.limit})" if r.limit is not None else " (limit)"
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.label, []).append(r)
    for same in groups.values():
        if len(same) > 1 and len({r.temperature for r in same}) == len(same):
            for r in same:
                r.label += f" T={r.temperature:g}" if r.temperature is not None else ""
        elif len(same) > 1:
            for i, r in enumerate(same, 1):
                r.label += f" #{i}"


def _mark_mismatches(rows: list[Row], tasks: list[str]) -> dict[str, str]:
    """Give every cell of a column that mixes task versions or prompt hashes a footnote mark."""
    notes: dict[str, str] = {}
    for task in tasks:
        cells = [r.cells[task] for r in rows if task in r.cells]
        variants = list(dict.fromkeys((c.version, c.prompt_hash) for c in cells))
        if len(variants) < 2:
            continue
        for version, phash in variants:
            mark = f"†{len(notes) + 1}"
            notes[mark] = (
                f"{task}: task version {version}, prompt hash {phash} (the column mixes {len(variants)} variants)"
            )
            for c in cells:
                if (c.version, c.prompt_hash) == (version, phash):
                    c.mark = mark
    return notes


def build_board(runs: list[Run]) -> Board:
    """Group ``runs`` (oldest first) into rows; a newer run of the same system and task replaces an older one."""
    rows: dict[tuple, Row] = {}
    for run in runs:
        key = system_key(run)
        row = rows.setdefault(key, _new_row(run))
        for task in run.tasks:
            cell = _cell(run, task)
            if task in row.cells:
                cell.replaced = [*row.cells[task].replaced, row.cells[task].source]
            row.cells[task] = cell
    all_tasks = {t for r in rows.values() for t in r.cells}
    tasks = [t for t in TASK_ORDER if t in all_tasks] + sorted(all_tasks - set(TASK_ORDER))
    ordered = list(rows.values())
    _unique_labels(ordered)
    return Board(ordered, tasks, _mark_mismatches(ordered, tasks))
