"""``malt-eval suite``: the MALT paper's table rows (baselines, STaR, MALT, ablations, debate) in one command.

Every row is one ``malt-eval --output-path OUT/<slug>`` evaluation on the same seeded subsets, run in
this process with the base model loaded once (:func:`harness.engines.shared_backends`). A row whose
folder already holds its results for the same options and prompts is reused as it is; an
interrupted row resumes from its checkpoint. At the end the rows are put on a leaderboard
(``OUT/leaderboard.md``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from harness.errors import MaltError, OneLineUsageErrors, interrupt_on_sigterm

MARKER = "suite-row.json"  # in each row folder: the options and prompt hashes its results were made with
ROLE_LETTERS = {"generator": "g", "verifier": "v", "refiner": "r"}


@dataclass(frozen=True)
class Row:
    """One evaluation of the suite: a folder name, a leaderboard label and what runs."""

    slug: str
    label: str
    agents: str
    votes: int = 1
    adapters: dict[str, str] = field(default_factory=dict)  # role -> adapter dir (others: the base model)
    debate: str | None = None  # "AGENTSxROUNDS" for the debate baseline


@dataclass
class SuiteConfig:
    """What ``malt-eval suite`` runs; the other ``malt-eval`` options are passed to every row as they are."""

    out: Path
    model: str | None = None
    malt_run: str | None = None  # a malt-train run: STaR (adapters-sft) and MALT (adapters) rows
    mv: int = 3  # votes of the majority-voting rows (the paper's MV@3)
    ablation_swap: bool = False  # Table 4: each trained role in turn played by the base model
    ablation_agents: bool = False  # Table 5: g, g+v, g+r (and g+v+r) with the trained agents
    debate: bool = False  # the multi-agent debate baseline, 3 agents x 3 rounds
    rows: tuple[str, ...] = ()  # only these row slugs (all planned rows when empty)
    eval_options: dict = field(default_factory=dict)  # malt-eval options shared by every row

    def check(self) -> None:
        """Raise ``MaltError`` for options that cannot run."""
        if self.mv < 2:
            raise MaltError(f"--mv must be at least 2, got {self.mv}")
        for flag, on in (("--ablation-swap", self.ablation_swap), ("--ablation-agents", self.ablation_agents)):
            if on and not self.malt_run:
                raise MaltError(f"{flag} needs trained agents: pass --malt-run RUN")
        if self.out.exists() and not self.out.is_dir():
            raise MaltError(f"--out is a file, not a folder: {self.out}")


def _mv(row: Row, k: int) -> Row:
    return Row(f"{row.slug}-mv{k}", f"{row.label}+MV@{k}", row.agents, k, row.adapters)


def plan_rows(cfg: SuiteConfig, sft: dict[str, str], final: dict[str, str]) -> list[Row]:
    """The rows to run, in table order (``sft``/``final``: role -> adapter dir of the malt-train run)."""
    k = cfg.mv
    sa, ma = Row("sa", "SA", "g"), Row("ma", "MA", "g,v,r")
    rows = [sa, _mv(sa, k), ma, _mv(ma, k)]
    if cfg.malt_run:
        star_sa, star_ma = Row("star-sa", "STaR SA", "g", 1, sft), Row("star-ma", "STaR MA", "g,v,r", 1, sft)
        rows += [star_sa, _mv(star_sa, k), star_ma, _mv(star_ma, k)]
        rows += [Row("malt-no-mv", "MALT w/o MV", "g,v,r", 1, final), Row(f"malt-mv{k}", "MALT", "g,v,r", k, final)]
    if cfg.ablation_swap:  # Table 4, at MALT's votes
        for role in final:
            kept = {r: a for r, a in final.items() if r != role}
            rows.append(Row(f"malt-mv{k}-base-{role}", f"MALT (base {role})", "g,v,r", k, kept))
    if cfg.ablation_agents:  # Table 5, at MALT's votes; g+v+r is the MALT row itself
        for agents in ("g", "g,v", "g,r"):
            letters = agents.replace(",", "")
            rows.append(Row(f"malt-{letters}-mv{k}", f"MALT {agents.replace(',', '+')}", agents, k, final))
    if cfg.debate:
        rows.append(Row("debate-3x3", "Debate 3x3", "g", 1, {}, "3x3"))
    return rows


def select_rows(rows: list[Row], slugs: tuple[str, ...]) -> list[Row]:
    """The planned ``rows`` named in ``slugs`` (all of them when empty), in table order."""
    if not slugs:
        return rows
    known = [r.slug for r in rows]
    unknown = [s for s in slugs if s not in known]
    if unknown:
        raise MaltError(f"unknown --rows {','.join(unknown)}: this suite's rows are {','.join(known)}")
    return [r for r in rows if r.slug in slugs]


def row_options(cfg: SuiteConfig, row: Row, model: str | None) -> dict:
    """The ``malt-eval`` options of one row (what :func:`harness.cli.run` takes)."""
    from harness.cli import ROLE_NAMES
    from harness.cli import main as eval_command

    opts = {p.name: p.default for p in eval_command.params if p.name}
    opts.update(cfg.eval_options)
    opts.update(
        model=model,
        agents=row.agents,
        votes=row.votes,
        output_path=str(cfg.out / row.slug),
        malt_run=None,
        label=row.label,
        debate=row.debate,
    )
    for role in ROLE_NAMES:
        opts[f"{role}_model"] = None
        opts[f"{role}_adapter"] = row.adapters.get(role)  # as --malt-run gives them (served names, remotely)
    return opts


def _prompt_hashes(opts: dict) -> dict:
    from harness.grading import canonical_task
    from harness.prompts import load_prompts

    out = {}
    for t in (t.strip() for t in opts["tasks"].split(",") if t.strip()):
        p = load_prompts(canonical_task(t), opts["prompts_file"])
        out[p.task] = [p.hash, p.step_hash("debate") if opts.get("debate") else None]
    return out


def _finished(folder: Path, marker: dict) -> bool:
    """True when ``folder`` holds results made with exactly these options and prompts.

    The row's own folder is not one of them: a finished row copied or moved into another suite's ``--out``
    (the baseline of an earlier run beside a new run's MALT row) is reused there.
    """
    try:
        have = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False

    def key(m: dict) -> tuple:
        options = {k: v for k, v in (m.get("options") or {}).items() if k != "output_path"}
        return options, m.get("prompt_hash")

    return key(have) == key(marker) and (folder / str(have.get("results"))).is_file()


def run_row(cfg: SuiteConfig, row: Row, model: str | None) -> bool:
    """Evaluate one row (or reuse its finished results); True when it was reused."""
    from harness.cli import run as run_eval
    from harness.runfiles import atomic_write

    opts = row_options(cfg, row, model)
    folder = Path(opts["output_path"])
    marker = {"options": json.loads(json.dumps(opts, default=str)), "prompt_hash": _prompt_hashes(opts)}
    if _finished(folder, marker):
        return True
    run_eval(**opts)
    newest = max(folder.glob("results_*.json"), key=lambda p: p.name)
    atomic_write(folder / MARKER, json.dumps({**marker, "results": newest.name}, indent=2))
    return False


def _run_adapters(cfg: SuiteConfig) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """Base model and the SFT and final adapters of ``--malt-run`` (empty without a run)."""
    if not cfg.malt_run:  # the default model by name, as --malt-run gives it: MA rows reused once a run is added
        from harness.backends import get_backend
        from harness.models import DEFAULT_MODEL

        remote = get_backend(cfg.eval_options.get("backend") or "hf").remote  # remote: the server's model
        return cfg.model or (None if remote else DEFAULT_MODEL), {}, {}
    from harness.cli import _malt_run

    model, sft = _malt_run(cfg.malt_run, "sft", cfg.model)
    _, final = _malt_run(cfg.malt_run, "final", cfg.model)
    return model, sft, final


def board(cfg: SuiteConfig, rows: list[Row]) -> str:
    """Build the leaderboard of the suite's rows, write ``OUT/leaderboard.md`` and return its main table."""
    from leaderboard.board import build_board
    from leaderboard.collect import load_runs
    from leaderboard.render import LEGEND, main_table, markdown
    from leaderboard.turns import board_turns

    runs = load_runs([cfg.out / slug for slug in dict.fromkeys(r.slug for r in rows)])
    built = build_board(runs)
    (cfg.out / "leaderboard.md").write_text(markdown(built, board_turns(built, runs)), encoding="utf-8")
    return main_table(built) + "\n\n" + LEGEND


def run_suite(cfg: SuiteConfig) -> list[Row]:
    """Validate, run (or reuse) every row, print and write the leaderboard; return the rows."""
    from harness.engines import shared_backends
    from harness.grading import canonical_task
    from harness.runfiles import RunLock

    cfg.check()
    tasks = [canonical_task(t) for t in cfg.eval_options["tasks"].split(",") if t.strip()]
    if not tasks:
        raise MaltError("no task given: use --tasks malt_gsm8k,malt_math,malt_csqa")
    model, sft, final = _run_adapters(cfg)
    rows = select_rows(plan_rows(cfg, sft, final), cfg.rows)
    reused = 0
    with RunLock(cfg.out, "malt-eval suite"), shared_backends():
        for i, row in enumerate(rows, 1):
            click.echo(f"\n== row {i}/{len(rows)}: {row.label} ({cfg.out / row.slug})")
            if run_row(cfg, row, model):
                reused += 1
                click.echo("reused: results on record for these options")
        click.echo(f"\n{len(rows)} rows: {len(rows) - reused} computed, {reused} reused\n")
        click.echo(board(cfg, rows))
    click.echo(f"\nleaderboard written to {cfg.out / 'leaderboard.md'}")
    return rows


class _Command(OneLineUsageErrors, click.Command):
    prog = "malt-eval"


@click.command(
    "suite", cls=_Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option("--model", default=None, help="Base model (default: the --malt-run's base, else qwen2.5-coder-0.5b).")
@click.option("--malt-run", default=None, help="A malt-train run: adds the STaR (SFT adapters) and MALT rows.")
@click.option("--tasks", default="malt_gsm8k,malt_math,malt_csqa", show_default=True, help="Comma-separated tasks.")
@click.option("--seeds", default=4, show_default=True, type=int, help="Runs per row, each on its own seeded subset.")
@click.option("--subset", default=None, type=int, help="Random test questions per seed (same for every row).")
@click.option("--limit", default=None, type=int, help="First N questions only (smoke runs; flagged).")
@click.option("--out", required=True, type=click.Path(), help="Folder of the rows (one subfolder each) and the board.")
@click.option("--mv", default=3, show_default=True, type=int, help="Votes of the majority-voting (MV) rows.")
@click.option("--temperature", default=0.3, show_default=True, type=float, help="Sampling temperature of every row.")
@click.option("--ablation-swap", is_flag=True, help="Table 4: each trained role in turn swapped back to the base.")
@click.option("--ablation-agents", is_flag=True, help="Table 5: g, g+v, g+r with trained agents (g+v+r = MALT).")
@click.option("--debate", is_flag=True, help="Multi-agent debate baseline: 3 agents x 3 rounds (9 calls/question).")
@click.option(
    "--rows", default="", help="Only these rows, by folder name (e.g. ma-mv3,malt-mv3); default all planned rows."
)
@click.option("--batch-size", default=16, show_default=True, type=int, help="Questions per stage batch.")
@click.option("--max-new-tokens", default=None, help="N for all roles or role=N,... (default per task).")
@click.option("--prompts", "prompts_file", default=None, help="YAML file overriding the prompts.")
@click.option("--backend", default="hf", show_default=True, help="Inference backend: hf, vllm or openai.")
@click.option("--base-url", default=None, help="--backend openai: the server's API root.")
@click.option("--api-key", default=None, help="--backend openai: API key.")
@click.option("--dtype", default="auto", show_default=True, help="auto, bfloat16, float16 or float32.")
@click.option("--data-dir", default=None, help="Folder of the benchmark JSONL files (default: $MALT_DATA_DIR).")
@click.option(
    "--log-samples/--no-log-samples", default=True, show_default=True, help="Per-question logs (compare, turns)."
)
def suite(**o) -> None:
    """Run the MALT paper's table rows on the same seeded subsets and print their leaderboard.

    Rows: SA, SA+MV, MA (g,v,r), MA+MV; with --malt-run also STaR SA/SA+MV/MA/MA+MV (SFT adapters),
    MALT w/o MV and MALT (final adapters, MV); plus the ablations and the debate baseline when asked.
    Rows already in --out are reused; an interrupted row resumes. Each row is one malt-eval run
    in OUT/<row> with its label (malt.label) for malt-leaderboard.
    """
    interrupt_on_sigterm()
    shared = ("tasks", "seeds", "subset", "limit", "temperature", "batch_size", "max_new_tokens", "prompts_file")
    shared += ("backend", "base_url", "api_key", "dtype", "data_dir", "log_samples")
    cfg = SuiteConfig(
        out=Path(o["out"]),
        model=o["model"],
        malt_run=o["malt_run"],
        mv=o["mv"],
        ablation_swap=o["ablation_swap"],
        ablation_agents=o["ablation_agents"],
        debate=o["debate"],
        rows=tuple(s.strip() for s in o["rows"].split(",") if s.strip()),
        eval_options={k: o[k] for k in shared},
    )
    try:
        run_suite(cfg)
    except MaltError as exc:
        click.echo(f"malt-eval: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(
            f"malt-eval suite: interrupted: finished rows and batches are kept in {cfg.out}; rerun to resume", err=True
        )
        sys.exit(130)
