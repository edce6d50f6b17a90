"""``make demo``: one model alone and as generator -> verifier -> refiner, on the same questions.

Evaluates the model (default: the embedded Qwen2.5-Coder-0.5B) on the same seeded GSM8K test questions,
greedy, as ``--agents g`` and as ``--agents g,v,r``, then prints the leaderboard rows of both systems,
the turn-wise accuracy (after G, V, R), the answer flips between them, the HTML board's path and the path
of a sample log with every role's text. It runs the project's own commands (``malt-eval``,
``malt-leaderboard build/turns/compare``) in this process and prints each one before its output; both
evaluations share one loaded model. Finished evaluations are reused (``malt-eval`` resumes from its
``--output-path``), so a second run prints the same in seconds without loading the model.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from harness.core.errors import OneLineUsageErrors

MAX_NEW_TOKENS = 384  # at 384 new tokens 1 of 10 generator solutions hits the limit, at 256 three would


@dataclass(frozen=True)
class Budget:
    """How many questions the first run answers on a kind of processor, and the rate that sizes it."""

    kind: str
    questions: int
    tokens_per_s: float  # generated tok/s of both evaluations together, measured (docs/results.md: first run)


#: The default model generates ~810 tokens per question over both systems (237 for g, 570 for g,v,r).
TOKENS_PER_QUESTION = 810
#: CPUs with native bf16 (AVX512-BF16/AMX) run the model in bf16 at ~34 tok/s on 2 cores; others in fp32 at
#: ~12 tok/s: fewer questions keep the first `make demo` (install and model conversion included) near 10 min.
BUDGETS = (Budget("native bf16", 10, 34.0), Budget("fp32 (no native bf16)", 4, 12.0))


def budget() -> Budget:
    """The first run's budget for this machine's processor."""
    from harness.inference.backends.device import cpu_has_native_bf16, has_cuda

    return BUDGETS[0] if has_cuda() or cpu_has_native_bf16() else BUDGETS[1]


# folder -> (--agents, what the system is)
SYSTEMS = {
    "g": ("g", "the model alone (its answer is the generator's)"),
    "gvr": ("g,v,r", "the same model as generator -> verifier -> refiner (its answer is the refiner's)"),
}


def call(prog: str, args: list[str], show: bool = True) -> str:
    """Run ``prog args`` (a project console script) in this process; its stdout, printed when ``show``.

    A failing command ends the demo with its exit code; its error line is already on stderr.
    """
    from malt_apps.eval_cli import main as malt_eval
    from malt_apps.leaderboard_cli import main as malt_leaderboard

    app = {"malt-eval": malt_eval, "malt-leaderboard": malt_leaderboard}[prog]
    click.echo(f"$ {shlex.join([prog, *args])}")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            app.main(args, prog_name=prog)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if show or code:
        click.echo(out.getvalue().rstrip("\n") + "\n")
    if code:
        click.echo(f"demo: {prog} exited with {code}; finished evaluations are kept, rerun to resume", err=True)
        sys.exit(code)
    return out.getvalue()


def eval_args(agents: str, folder: Path, o: dict) -> list[str]:
    """``malt-eval`` arguments of one system: the seeded sample of questions, greedy, sample logs on."""
    model = ["--model", o["model"]] if o["model"] else []
    n, tokens = str(o["questions"]), str(o["max_new_tokens"])
    return [
        *model,
        *["--backend", o["backend"], "--agents", agents, "--tasks", "malt_gsm8k", "--seeds", "1", "--subset", n],
        *["--temperature", "0", "--max-new-tokens", tokens, "--batch-size", n],
        *["--output-path", str(folder), "--log-samples"],
    ]


def newest(folder: Path, pattern: str) -> Path:
    """The newest file in ``folder`` matching ``pattern`` (malt-eval replaces its results files on a rerun)."""
    return max(folder.glob(pattern), key=lambda p: p.stat().st_mtime)


class _Command(OneLineUsageErrors, click.Command):
    prog = "demo.py"


@click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--model", default=None, help="Model dir, hub id or embedded alias (default: malt-eval's default).")
@click.option("--backend", default="hf", show_default=True, help="malt-eval --backend.")
@click.option(
    "--questions",
    default=None,
    type=click.IntRange(1),
    help="GSM8K questions (default: 10 on processors with native bf16 or a GPU, 4 elsewhere).",
)
@click.option("--max-new-tokens", default=MAX_NEW_TOKENS, show_default=True, type=click.IntRange(1), help="Per role.")
@click.option("--out", default="results/demo", show_default=True, type=click.Path(file_okay=False), help="Folder.")
def main(**o) -> None:
    """Compare one model alone (g) with the multi-agent system (g,v,r) on the same GSM8K questions."""
    from harness.inference.engines import shared_backends

    plan = budget()
    if o["questions"] is None:
        o["questions"] = plan.questions
    # one folder per configuration: malt-eval refuses to mix runs of other options in one folder
    model = Path(o["model"]).name if o["model"] else "default"
    name = f"{model}-{o['backend']}-{o['questions']}q-{o['max_new_tokens']}tok"
    root = Path(o["out"]) / name
    folders = {key: root / key for key in SYSTEMS}
    click.echo(
        f"The same {o['questions']} GSM8K test questions (a random sample, seed 0), greedy, at most "
        f"{o['max_new_tokens']} new tokens per role, answered by\n"
        + "".join(f"  {agents}: {text}\n" for agents, text in SYSTEMS.values())
        + f"Everything goes to {root}; a finished evaluation there is reused.\n"
    )
    if o["model"] is None and o["backend"] == "hf":
        minutes = o["questions"] * TOKENS_PER_QUESTION * (o["max_new_tokens"] / MAX_NEW_TOKENS) / plan.tokens_per_s / 60
        click.echo(f"Estimate on this processor ({plan.kind}): about {minutes:.0f} min of generation on a first run.\n")
    with shared_backends():  # both evaluations use one loaded model
        for key, (agents, _) in SYSTEMS.items():
            call("malt-eval", eval_args(agents, folders[key], o), show=False)
    board = root / "board"
    click.echo("== Both systems side by side (accuracy in %, LLM calls and generated tokens per question)")
    call("malt-leaderboard", ["build", str(folders["g"]), str(folders["gvr"]), "-o", str(board)])
    click.echo("== Turn by turn: the system's answer after the generator, the verifier and the refiner")
    call("malt-leaderboard", ["turns", str(folders["gvr"])])
    click.echo("== Answer flips from A (g) to B (g,v,r) on the same questions")
    call("malt-leaderboard", ["compare", str(folders["g"]), str(folders["gvr"])])
    click.echo("== Look closer")
    click.echo(f"HTML board (sortable; open a system for its configuration): {board / 'leaderboard.html'}")
    samples = newest(folders["gvr"], "samples_malt_gsm8k_*.jsonl")
    click.echo(f"What each role said, one JSON line per question (messages, text, answer per role): {samples}")


if __name__ == "__main__":
    main()
