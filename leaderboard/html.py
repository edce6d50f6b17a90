"""``leaderboard.html``: one static, self-contained page (inline CSS/JS, plots as data URIs), sortable."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from leaderboard.board import Board, Row
from leaderboard.render import (
    BENCHMARK_HEADERS,
    INCOMPLETE_NOTE,
    LEGEND,
    REPLACED_NOTE,
    TURNS_HEADERS,
    TURNS_LEGEND,
    benchmark_rows,
    calls_text,
    cell_text,
    roles_text,
    tokens_text,
    turns_rows,
)
from leaderboard.turns import TurnAccuracy

TEMPLATES = Path(__file__).parent / "templates"


def _headers(board: Board) -> list[dict]:
    heads = [("system", "system", "text"), ("agents", "agents", "text"), ("votes", "votes", "num")]
    heads += [(t, t, "num") for t in board.tasks]
    heads += [("calls", "calls/q", "num"), ("tokens", "tokens/q", "num")]
    return [{"key": k, "text": text, "type": kind} for k, text, kind in heads]


def _mean(values: list[float | None]) -> float | None:
    shown = [v for v in values if v is not None]
    return sum(shown) / len(shown) if shown else None


def _row(row: Row, board: Board) -> dict:
    cells = [{"text": row.agents, "value": row.agents}, {"text": row.votes, "value": row.votes}]
    for task in board.tasks:
        c = row.cells.get(task)
        if c is None:
            cells.append({"text": "", "value": None})
            continue
        title = f"task version {c.version}, prompt hash {c.prompt_hash}, {c.seeds} seed(s) × {c.n} questions"
        title += f", data {c.data}" if c.data else ", data not recorded"
        title += f"; {c.source} ({c.date})"
        title += "".join(f"; replaces {p} ({d})" for p, d in zip(c.replaced, c.replaced_dates, strict=True))
        text = cell_text(c).removesuffix(" ".join(["", *c.marks()]))
        cells.append({"text": text, "value": c.acc, "title": title, "marks": c.marks()})
    per_q = [row.cells[t] for t in board.tasks if t in row.cells]
    cells.append({"text": calls_text(row, board.tasks), "value": _mean([c.calls_per_question for c in per_q])})
    cells.append({"text": tokens_text(row, board.tasks), "value": _mean([c.tokens_per_question for c in per_q])})
    summary = roles_text(row.roles) + f"; temperature {row.temperature}"
    summary += "; provenance incomplete" if row.provenance is None else ""
    return {
        "label": row.label,
        "limited": row.limited,
        "limit": row.limit,
        "incomplete": row.provenance is None,
        "summary": summary,
        "config": json.dumps(row.config(), indent=2),
        "cells": cells,
    }


def _turns(turns: list[tuple[str, TurnAccuracy]] | None) -> dict | None:
    return {"headers": TURNS_HEADERS, "rows": turns_rows(turns)} if turns else None


def html_page(
    board: Board,
    turns: list[tuple[str, TurnAccuracy]] | None = None,
    plots: list[Path] | None = None,
    title: str = "malt-eval leaderboard",
) -> str:
    """The page; plots are embedded as base64 PNG so the file stands alone (no network, no other files)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    images = [{"alt": p.stem.replace("_", " "), "data": base64.b64encode(p.read_bytes()).decode()} for p in plots or []]
    return env.get_template("leaderboard.html.j2").render(
        title=title,
        legend=LEGEND,
        headers=_headers(board),
        rows=[_row(r, board) for r in board.rows],
        footnotes=board.footnotes,
        replaced=board.replaced,
        replaced_note=REPLACED_NOTE,
        incomplete=board.incomplete,
        incomplete_note=INCOMPLETE_NOTE,
        benchmark_headers=BENCHMARK_HEADERS,
        benchmarks=benchmark_rows(board),
        turns=_turns(turns),
        turns_legend=TURNS_LEGEND,
        plots=images,
    )
