"""The board as GitHub markdown, CSV (every field, one line per system and benchmark) and JSON."""

from __future__ import annotations

import csv
import hashlib
import io
import json

from tabulate import tabulate

from harness.core.roles import ROLE_LETTERS, ROLES
from harness.tasks.taskinfo import TASKS
from leaderboard.board import Board, Cell, Row
from leaderboard.provenance import short_value, system_id
from leaderboard.turns import TurnAccuracy

LEGEND = (
    "Accuracy in %: mean ± std over seeds (S×N: S seeds of N questions each) or ± binomial stderr for a "
    "single run (n=N). calls/q: LLM calls per question; tokens/q: generated tokens per question. "
    "(limit N): made with --limit (the first N questions, a smoke run: not comparable to subsets)."
)
TURNS_LEGEND = (
    "Accuracy (%) of the majority-voted answer after each turn, from the sample logs; after V over the questions "
    "where the verifier states an answer. Last column: correctness flips from the generator's answer to the final one."
)
MIXED_NOTE = "Mixed columns (different data, task versions or prompts; not directly comparable):"
REPLACED_NOTE = "Replaced cells (a newer run of the same system and benchmark replaces older ones):"
INCOMPLETE_NOTE = (
    "Provenance incomplete (results written without a provenance record; grouped by models, adapters, agents, "
    "votes, temperature and --limit only, so they may mix other settings):"
)
CSV_FIELDS = [
    "system", "model", "agents", "votes", "temperature", "top_p", "limited", "limit", "subset", "task", "acc",
    "spread_kind", "spread", "n", "n_original", "seeds", "per_seed_acc", "calls_per_question",
    "tokens_per_question", "version", "prompt_hash", "mark", "max_new_tokens", "wall_time", "roles", "source",
    "replaced", "date", "data", "replaced_dates", "replaced_mark", "provenance_incomplete", "provenance",
]  # fmt: skip


_JSON_FIELDS = ("replaced", "replaced_dates", "max_new_tokens", "per_seed", "provenance")


def short_task(task: str) -> str:
    """A benchmark's short name (its alias: ``gsm8k``)."""
    return TASKS[task].alias if task in TASKS else task


def cell_text(cell: Cell) -> str:
    """``22.0 ± 5.9 (n=50)`` for one run, ``31.5 ± 2.1 (4×100)`` over seeds, plus any mismatch mark."""
    text = f"{100 * cell.acc:.1f}"
    if cell.spread is not None:
        text += f" ± {100 * cell.spread:.1f}"
    text += f" ({cell.seeds}×{cell.n})" if cell.seeds > 1 else f" (n={cell.n})"
    return " ".join([text, *cell.marks()])


def note_lines(board: Board) -> list[str]:
    """The board's footnotes as text lines: mixed columns, replaced cells, rows without provenance."""
    lines = []
    for title, notes in ((MIXED_NOTE, board.footnotes), (REPLACED_NOTE, board.replaced)):
        lines += [title, *(f"  {mark} {text}" for mark, text in notes.items())] if notes else []
    if board.incomplete:
        lines += [INCOMPLETE_NOTE, *(f"  {label}" for label in board.incomplete)]
    return lines


def _per_task(row: Row, tasks: list[str], attr: str, fmt: str) -> str:
    values = {t: getattr(row.cells[t], attr) for t in tasks if t in row.cells}
    shown = {t: v for t, v in values.items() if v is not None}
    if not shown:
        return ""
    if len({format(v, fmt) for v in shown.values()}) == 1:
        return format(next(iter(shown.values())), fmt)
    return ", ".join(f"{short_task(t)} {format(v, fmt)}" for t, v in shown.items())


def calls_text(row: Row, tasks: list[str]) -> str:
    return _per_task(row, tasks, "calls_per_question", ".1f")


def tokens_text(row: Row, tasks: list[str]) -> str:
    return _per_task(row, tasks, "tokens_per_question", ".0f")


def main_table(board: Board) -> str:
    """One row per system, one column per benchmark, then compute per question."""
    headers = ["system", "agents", "votes", *board.tasks, "calls/q", "tokens/q"]
    rows = [
        [r.label, r.agents, r.votes]
        + [cell_text(r.cells[t]) if t in r.cells else "" for t in board.tasks]
        + [calls_text(r, board.tasks), tokens_text(r, board.tasks)]
        for r in board.rows
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


BENCHMARK_HEADERS = ["benchmark", "task version", "prompt hash", "data", "mark", "systems"]


def benchmark_rows(board: Board) -> list[list]:
    """Per benchmark, each (task version, prompt hash, data) variant, its mark and how many systems use it."""
    rows = []
    for task in board.tasks:
        cells = [r.cells[task] for r in board.rows if task in r.cells]
        for version, phash, data, mark in dict.fromkeys((c.version, c.prompt_hash, c.data, c.mark) for c in cells):
            n = sum((c.version, c.prompt_hash, c.data) == (version, phash, data) for c in cells)
            rows.append([task, version, phash[:16], "" if data is None else short_value(data), mark, n])
    return rows


def _where(model: str, path: str | None) -> str | None:
    """What stands in brackets after a model's name: its source for an embedded model (not this machine's
    cache folder, which means nothing on a published board), else its path when that differs."""
    from harness.inference.models import EMBEDDED

    if model in EMBEDDED:
        return f"embedded: {EMBEDDED[model].repo}"
    return path if path and path != model else None


def roles_text(roles: dict[str, dict]) -> str:
    """``g,v,r: qwen2.5-coder-0.5b (/path); adapters: v=/runs/x/adapters/verifier``: the model identities."""
    groups: dict[tuple, list[str]] = {}
    for role, d in roles.items():
        groups.setdefault((d["model"], _where(d["model"], d.get("path"))), []).append(ROLE_LETTERS.get(role, role))
    parts = [
        f"{','.join(letters)}: {model}" + (f" ({where})" if where else "") for (model, where), letters in groups.items()
    ]
    adapters = [f"{ROLE_LETTERS.get(r, r)}={d['adapter']}" for r, d in roles.items() if d.get("adapter")]
    return "; ".join(parts) + (f"; adapters: {', '.join(adapters)}" if adapters else "")


def provenance_text(row: Row) -> str:
    """``incomplete``, or the 8 hex characters naming the row's system record (its JSON's sha256)."""
    if row.provenance is None:
        return "incomplete"
    return hashlib.sha256(system_id(row.provenance).encode()).hexdigest()[:8]


def _systems_table(board: Board) -> str:
    rows = [[r.label, roles_text(r.roles), r.temperature, r.top_p, r.subset, provenance_text(r)] for r in board.rows]
    headers = ["system", "models per role", "temperature", "top_p", "subset", "provenance"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


TURNS_HEADERS = ["system", "benchmark", "n", "after G", "after V", "after R", "final", "G→final i→c / c→i"]


def turns_rows(turns: list[tuple[str, TurnAccuracy]]) -> list[list]:
    """Turn-wise accuracy rows: after G, after V (of those stating one), after R, final; G→final flips."""

    def pct(t: TurnAccuracy, role: str) -> str:
        if role not in t.correct:
            return ""
        acc = t.acc(role)
        text = "–" if acc is None else f"{100 * acc:.1f}"
        return text + (f" ({t.stated[role]}/{t.n} stated)" if role == "verifier" else "")

    rows = []
    for label, t in turns:
        f = t.g_to_final
        flip = f"{f['incorrect→correct']} / {f['correct→incorrect']}" if f else ""
        final = f"{100 * t.final_correct / t.n:.1f}" if t.n else ""
        rows.append([label, t.task, t.n, *(pct(t, role) for role in ROLES), final, flip])
    return rows


def turns_table(turns: list[tuple[str, TurnAccuracy]]) -> str:
    return tabulate(turns_rows(turns), headers=TURNS_HEADERS, tablefmt="github", disable_numparse=True)


def markdown(board: Board, turns: list[tuple[str, TurnAccuracy]] | None = None) -> str:
    """The whole ``leaderboard.md``."""
    parts = ["# Leaderboard", "", main_table(board), "", LEGEND, ""]
    for title, notes in ((MIXED_NOTE, board.footnotes), (REPLACED_NOTE, board.replaced)):
        if notes:
            parts += [title, "", *(f"- {mark} {text}" for mark, text in notes.items()), ""]
    if board.incomplete:
        parts += [f"**{INCOMPLETE_NOTE}**", "", *(f"- {label}" for label in board.incomplete), ""]
    versions = tabulate(benchmark_rows(board), BENCHMARK_HEADERS, tablefmt="github", disable_numparse=True)
    parts += ["## Benchmarks", "", versions, ""]
    parts += ["## Systems", "", _systems_table(board), ""]
    if turns:
        parts += [
            "## Turn-wise accuracy",
            "",
            TURNS_LEGEND,
            "",
            turns_table(turns),
            "",
        ]
    return "\n".join(parts)


def csv_text(board: Board) -> str:
    """Every field, one line per (system, benchmark)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in board.rows:
        for task in board.tasks:
            if task not in r.cells:
                continue
            c = r.cells[task]
            writer.writerow(
                {
                    **{k: v for k, v in r.config().items() if k in CSV_FIELDS and k != "roles"},
                    "system": r.label,
                    "roles": json.dumps(r.roles),
                    **{k: getattr(c, k) for k in CSV_FIELDS if hasattr(c, k) and k not in _JSON_FIELDS},
                    "per_seed_acc": json.dumps(c.per_seed),
                    "max_new_tokens": json.dumps(c.max_new_tokens),
                    "replaced": json.dumps(c.replaced),
                    "replaced_dates": json.dumps(c.replaced_dates),
                    "provenance": json.dumps(cell_record(r, task)) if r.provenance is not None else "",
                }
            )
    return buf.getvalue()


def cell_record(row: Row, task: str) -> dict:
    """The provenance record of one cell's run as far as the cell goes: the system, this benchmark, versions, git."""
    cell = row.cells[task]
    return {**(row.provenance or {}), "tasks": {task: cell.provenance}, **cell.run_record}


def board_dict(board: Board, turns: list[tuple[str, TurnAccuracy]] | None = None) -> dict:
    """``leaderboard.json``: tasks, rows (config + cells), footnotes and turn-wise accuracy."""
    rows = [{"system": r.label, **r.config(), "cells": {t: vars(c) for t, c in r.cells.items()}} for r in board.rows]
    out = {"format": 1, "tasks": board.tasks, "rows": rows, "footnotes": board.footnotes}
    out |= {"replaced": board.replaced, "provenance_incomplete": board.incomplete}
    out["turns"] = [{"system": label, **t.to_dict()} for label, t in turns or []]
    return out
