"""``malt-eval suite``: the MALT paper's table rows (baselines, STaR, MALT, ablations, debate) in one command.

Every row is one evaluation spec (``malt-eval --output-path OUT/<slug>``) on the same seeded subsets, run in
this process with the base model loaded once (:func:`harness.inference.engines.shared_backends`). A row whose
folder already holds its results for the same options and the same provenance run key
(:mod:`harness.provenance`: models and adapters by content, questions drawn, prompts, generation settings,
package versions) is reused as it is; an interrupted row resumes from its checkpoint; ``--start-over``
starts every row over. At the end the rows are put on a leaderboard
(``OUT/leaderboard.md``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import click

from harness.core.errors import MaltError, OneLineUsageErrors
from harness.core.identity import as_json, identity_diff
from harness.spec import LM_EVAL_TASK, EvalSpec, field_names, option
from harness.tasks.taskinfo import TASKS
from malt_apps.options import field_values, options_from

MARKER = "suite-row.json"  # in each row folder: the options and prompt hashes its results were made with
#: The malt-eval options the suite passes to every row as they are (with every lm-eval task option).
SHARED = (
    "tasks", "seeds", "subset", "limit", "temperature", "batch_size", "max_new_tokens", "prompts_file", "backend",
    "base_url", "api_key", "dtype", "data_dir", "log_samples", "start_over", *field_names(EvalSpec, LM_EVAL_TASK),
)  # fmt: skip
SHARED_DEFAULTS = {"tasks": ",".join(TASKS), "seeds": 4, "log_samples": True}


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

    out: Path = option(None, "Folder of the rows (one subfolder each) and the board.", required=True, type=click.Path())
    model: str | None = option(None, "Base model (default: the --malt-run's base, else qwen2.5-coder-0.5b).")
    malt_run: str | None = option(None, "A malt-train run: adds the STaR (SFT adapters) and MALT rows.")
    mv: int = option(3, "Votes of the majority-voting (MV) rows (the paper's MV@3).")
    ablation_swap: bool = option(False, "Table 4: each trained role in turn swapped back to the base.")
    ablation_agents: bool = option(False, "Table 5: g, g+v, g+r with trained agents (g+v+r = MALT).")
    debate: bool = option(False, "Multi-agent debate baseline: 3 agents x 3 rounds (9 calls/question).")
    rows: tuple[str, ...] = option(
        (), "Only these rows, by folder name (e.g. ma-mv3,malt-mv3); default all planned rows."
    )
    eval_options: dict = field(default_factory=dict)  # malt-eval options shared by every row (SHARED)

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


def row_spec(cfg: SuiteConfig, row: Row, model: str | None) -> EvalSpec:
    """The evaluation of one row: the shared options, the row's system, its folder and label."""
    return dataclasses.replace(
        EvalSpec.from_options(cfg.eval_options),
        model=model,
        agents=row.agents,
        votes=row.votes,
        output_path=str(cfg.out / row.slug),
        malt_run=None,
        label=row.label,
        debate=row.debate,
        role_models={},
        role_adapters=dict(row.adapters),  # as --malt-run gives them (served names, remotely)
    )


def row_options(cfg: SuiteConfig, row: Row, model: str | None) -> dict:
    """The ``malt-eval`` options of one row (its spec as option values)."""
    return row_spec(cfg, row, model).options()


def _prompt_hashes(spec: EvalSpec) -> dict:
    from harness.tasks.prompts import load_prompts

    plan = spec.solver_plan()
    out = {}
    for t in spec.task_names():
        p = load_prompts(t, spec.prompts_file)
        out[p.task] = [p.hash, plan.step_hash(p)]
    return out


def _finished(folder: Path, marker: dict) -> bool:
    """True when ``folder`` holds results made with exactly these options, prompts and provenance run key.

    The row's own folder is not one of them: a finished row copied or moved into another suite's ``--out``
    (the baseline of an earlier run beside a new run's MALT row) is reused there.
    """
    try:
        have = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(have, dict) or have.get("prompt_hash") != marker["prompt_hash"]:
        return False
    if have.get("run_key") != marker["run_key"]:  # other data, adapter or model content, versions...
        return False
    ignore = ("output_path", "start_over")
    same = not identity_diff(have.get("options") or {}, marker["options"], ignore, EvalSpec().options())
    return same and (folder / str(have.get("results"))).is_file()


def run_row(cfg: SuiteConfig, row: Row, model: str | None) -> bool:
    """Evaluate one row (or reuse its finished results); True when it was reused."""
    from harness.core.runfiles import atomic_write
    from malt_apps.report import evaluate_and_print, note

    spec = row_spec(cfg, row, model)
    folder = Path(spec.output_path)
    from harness.run.runner import spec_provenance

    prov = spec_provenance(spec, note)
    marker = {"options": as_json(spec.options()), "prompt_hash": _prompt_hashes(spec)}
    marker["run_key"] = prov and prov.run_key()
    if not spec.start_over and _finished(folder, marker):
        return True
    evaluate_and_print(spec)
    # lm-eval's tasks: lm-eval's layout (OUT/<model>/results_<date>.json with one seed)
    newest = max(folder.rglob("results_*.json"), key=lambda p: p.stat().st_mtime_ns)
    atomic_write(folder / MARKER, json.dumps({**marker, "results": str(newest.relative_to(folder))}, indent=2))
    return False


def run_adapters(cfg: SuiteConfig) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """The suite's base model and the SFT and final adapters (role -> folder) of its ``--malt-run``.

    Without a run: ``--model``, else the default model by name (as a run would give it, so that rows run
    before training are reused once a run is added), or ``None`` for a remote backend (the server's model);
    no adapters.
    """
    if not cfg.malt_run:  # the default model by name, as --malt-run gives it: MA rows reused once a run is added
        from harness.inference.backends import get_backend
        from harness.inference.models import DEFAULT_MODEL

        remote = get_backend(cfg.eval_options.get("backend") or "hf").remote  # remote: the server's model
        return cfg.model or (None if remote else DEFAULT_MODEL), {}, {}
    from harness.core.maltrun import stage_adapters
    from malt_apps.report import note

    sft, final = (stage_adapters(cfg.malt_run, stage, cfg.model) for stage in ("sft", "final"))
    for text in (*sft.notes, *final.notes):
        note(f"note: {text}")
    return sft.model, sft.adapters, final.adapters


def board(cfg: SuiteConfig, rows: list[Row]) -> str:
    """Build the leaderboard of the suite's rows, write ``OUT/leaderboard.md`` and return its main table."""
    from leaderboard.board import build_board
    from leaderboard.collect import load_runs
    from leaderboard.render import LEGEND, main_table, markdown
    from malt_apps.logs import board_turns

    runs = load_runs([cfg.out / slug for slug in dict.fromkeys(r.slug for r in rows)])
    built = build_board(runs)
    (cfg.out / "leaderboard.md").write_text(markdown(built, board_turns(built, runs)), encoding="utf-8")
    return main_table(built) + "\n\n" + LEGEND


def run_suite(cfg: SuiteConfig) -> list[Row]:
    """Validate, run (or reuse) every row, print and write the leaderboard; return the rows."""
    from harness.core.runfiles import RunLock
    from harness.inference.engines import shared_backends

    cfg.check()
    EvalSpec.from_options(cfg.eval_options).check()  # an unknown task (ours or lm-eval's) fails before anything runs
    model, sft, final = run_adapters(cfg)
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
    handles_signals = True

    def resume_hint(self, params: dict) -> str:  # noqa: D102
        return f" (suite): finished rows and batches are kept in {params.get('out')}; rerun to resume"


@click.command(
    "suite", cls=_Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@options_from(SuiteConfig, exclude=("eval_options",))
@options_from(EvalSpec, only=SHARED, defaults=SHARED_DEFAULTS)
def suite(**o) -> None:
    """Run the MALT paper's table rows on the same seeded subsets and print their leaderboard.

    Rows: SA, SA+MV, MA (g,v,r), MA+MV; with --malt-run also STaR SA/SA+MV/MA/MA+MV (SFT adapters),
    MALT w/o MV and MALT (final adapters, MV); plus the ablations and the debate baseline when asked.
    Rows already in --out are reused; an interrupted row resumes. Each row is one malt-eval run
    in OUT/<row> with its label (malt.label) for malt-leaderboard.
    """
    own = field_values(SuiteConfig, o) | {
        "out": Path(o["out"]),
        "rows": tuple(s.strip() for s in o["rows"].split(",") if s.strip()),
        "eval_options": {k: o[k] for k in SHARED},
    }
    run_suite(SuiteConfig(**own))
