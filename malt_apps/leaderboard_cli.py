"""``malt-leaderboard``: build the board, compare two systems, turn-wise accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.core.errors import OneLineUsageErrors

_CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class _Group(OneLineUsageErrors, click.Group):
    prog = "malt-leaderboard"


@click.group(cls=_Group, context_settings=_CTX)
def main() -> None:
    """Leaderboard tables, a web page, plots and paired comparisons from malt-eval result folders."""


@main.command(context_settings=_CTX)
@click.argument("dirs", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--title", default="malt-eval leaderboard", show_default=True, help="Title of the page.")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (exit 2, nothing written) when a column mixes data digests, task versions or prompt hashes; "
    "without it such a column is marked and footnoted.",
)
def build(dirs: tuple[str, ...], out: str, title: str, strict: bool) -> None:
    """Build leaderboard.{md,csv,json,html} and accuracy plots from every results_*.json under DIRS.

    One row per system (the provenance record minus the tasks); rows sharing a label are named by the settings
    they differ in. A cell replaced by a newer run of its system, a mixed column and results without a
    provenance record are marked and footnoted.
    """
    from leaderboard.board import build_board, check_strict
    from leaderboard.collect import load_runs
    from leaderboard.html import html_page
    from leaderboard.plots import accuracy_plot, task_plots
    from leaderboard.render import LEGEND, board_dict, csv_text, main_table, markdown, note_lines
    from malt_apps.logs import board_turns

    runs = load_runs(list(dirs))
    board = build_board(runs)
    if strict:
        check_strict(board)
    turns = board_turns(board, runs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        _write(folder / "leaderboard.md", markdown(board, turns)),
        _write(folder / "leaderboard.csv", csv_text(board)),
        _write(folder / "leaderboard.json", json.dumps(board_dict(board, turns), indent=2, ensure_ascii=False)),
    ]
    plots = [accuracy_plot(board, folder), *task_plots(board, folder)]
    written += [_write(folder / "leaderboard.html", html_page(board, turns, plots, title)), *plots]
    click.echo(main_table(board) + "\n\n" + LEGEND)
    for line in note_lines(board):
        click.echo(line)
    click.echo(f"\n{len(board.rows)} systems from {len(runs)} results files; written: {', '.join(map(str, written))}")


@main.command(context_settings=_CTX)
@click.argument("a")
@click.argument("b")
@click.option(
    "--resamples", default=10_000, show_default=True, type=click.IntRange(min=100), help="Bootstrap resamples."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Also write the numbers here.")
def compare(a: str, b: str, resamples: int, seed: int, json_path: str | None) -> None:
    """Answer flips A→B, paired bootstrap CI of B − A and McNemar's exact p on the questions both answered.

    A and B are result folders (or results files) of one system each, run with --log-samples.
    """
    from leaderboard.compare import compare_sides, format_comparison, load_side

    side_a, side_b = load_side("A", a), load_side("B", b)
    results = compare_sides(side_a, side_b, resamples, seed)
    click.echo(format_comparison(side_a, side_b, results), nl=False)
    if json_path:
        doc = {"a": side_a.row.label, "b": side_b.row.label, "tasks": [p.to_dict() for p in results]}
        _write(Path(json_path), json.dumps(doc, indent=2, ensure_ascii=False))


@main.command(context_settings=_CTX)
@click.argument("dirs", nargs=-1, required=True)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Also write the numbers here.")
def turns(dirs: tuple[str, ...], json_path: str | None) -> None:
    """Turn-wise accuracy (after G, after V when it states an answer, after R) from the sample logs under DIRS."""
    from leaderboard.board import build_board
    from leaderboard.collect import load_runs
    from leaderboard.render import TURNS_LEGEND, turns_table
    from malt_apps.logs import board_turns

    runs = load_runs(list(dirs))
    found = board_turns(build_board(runs), runs, strict=True)
    click.echo(turns_table(found) + "\n\n" + TURNS_LEGEND)
    if json_path:
        _write(Path(json_path), json.dumps([{"system": s, **t.to_dict()} for s, t in found], indent=2))


@main.command(context_settings=_CTX)
@click.argument("dirs", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
def audit(dirs: tuple[str, ...], out: str) -> None:
    """Grader audit: every role text in the sample logs under DIRS read by our grader and by independent readers.

    Readers: lm-eval's strict-match and flexible-extract (GSM8K), math-verify on the last boxed/math span
    (MATH), lm-eval's multi_choice_regex (CSQA). Writes OUT/disagreements.jsonl (text tail, every reader's
    answer and grade, gold) and OUT/summary.json; prints the summary per task, role and reader.
    """
    from malt_apps.audit import audit as run_audit
    from malt_apps.audit import summary_rows, summary_table, write_audit

    audits = run_audit(list(dirs))
    dis, summ = write_audit(audits, Path(out))
    click.echo(summary_table(summary_rows(audits)))
    n_dis = sum(1 for _ in dis.open(encoding="utf-8"))
    click.echo(f"\n{len(audits)} texts, {n_dis} with a disagreement; written: {dis}, {summ}")


@main.command(context_settings=_CTX)
@click.argument("dirs", nargs=-1, required=True)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Also write the numbers here.")
def regrade(dirs: tuple[str, ...], json_path: str | None) -> None:
    """Grade the runs under DIRS again with the current grader, from their sample logs (no generation)."""
    from tabulate import tabulate

    from malt_apps.regrade import regrade as run_regrade

    found = run_regrade(list(dirs))
    rows = [
        [
            r.run,
            r.task,
            r.agents,
            r.n,
            f"{r.logged} ({100 * r.logged / r.n:.1f}%)",
            f"{r.regraded} ({100 * r.regraded / r.n:.1f}%)",
            sum(c["now"] for c in r.changed),
            sum(c["was"] for c in r.changed),
        ]
        for r in found
    ]
    headers = ["run", "task", "agents", "n", "logged correct", "regraded correct", "wrong->right", "right->wrong"]
    click.echo(tabulate(rows, headers=headers, tablefmt="github"))
    if json_path:
        _write(Path(json_path), json.dumps([r.to_dict() for r in found], indent=2, ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
