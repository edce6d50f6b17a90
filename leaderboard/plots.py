"""PNG plots (matplotlib, Agg): accuracy per benchmark with error bars, one bar per system."""

from __future__ import annotations

from pathlib import Path

from leaderboard.board import Board


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def accuracy_plot(board: Board, out: Path) -> Path:
    """``accuracy.png``: benchmarks on the x axis, one bar per system with its ± (std or stderr) as error bar."""
    plt = _pyplot()
    n_rows, n_tasks = len(board.rows), len(board.tasks)
    width = 0.8 / max(1, n_rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + n_tasks * (0.5 + 0.35 * n_rows)), 4.5))
    for i, row in enumerate(board.rows):
        xs, ys, errs = [], [], []
        for j, task in enumerate(board.tasks):
            c = row.cells.get(task)
            if c is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(100 * c.acc)
            errs.append(100 * (c.spread or 0.0))
        bars = ax.bar(xs, ys, width, yerr=errs, capsize=3, label=row.label)
        if row.limited:
            for bar in bars:
                bar.set_hatch("//")
    ax.set_xticks(range(n_tasks), board.tasks)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy per benchmark (± std over seeds / ± stderr for one run; hatched: --limit)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = out / "accuracy.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def task_plots(board: Board, out: Path) -> list[Path]:
    """``accuracy_<task>.png``: one horizontal bar per system (readable with many systems).

    An lm-eval column ``task:filter`` is written ``accuracy_task-filter.png`` (no ``:`` in file names).
    """
    plt = _pyplot()
    paths = []
    for task in board.tasks:
        rows = [r for r in board.rows if task in r.cells]
        fig, ax = plt.subplots(figsize=(7, 1.0 + 0.4 * len(rows)))
        ys = range(len(rows))
        accs = [100 * r.cells[task].acc for r in rows]
        errs = [100 * (r.cells[task].spread or 0.0) for r in rows]
        bars = ax.barh(ys, accs, xerr=errs, capsize=3, color="#4c72b0")
        for bar, r in zip(bars, rows, strict=True):
            if r.limited:
                bar.set_hatch("//")
        ax.set_yticks(list(ys), [r.label + (f" {r.cells[task].mark}" if r.cells[task].mark else "") for r in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")
        ax.set_title(task, fontsize=10)
        fig.tight_layout()
        path = out / f"accuracy_{task.replace(':', '-')}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
