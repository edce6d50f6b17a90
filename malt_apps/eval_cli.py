"""``malt-eval``: evaluate a generator / verifier / refiner system on the malt_* tasks (``malt-eval suite``: many)."""

from __future__ import annotations

import logging
import os
import sys

import click

from harness.core.errors import OneLineUsageErrors
from harness.spec import EvalSpec
from malt_apps.options import options_from
from malt_apps.report import evaluate_and_print

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Command(OneLineUsageErrors, click.Command):
    prog = "malt-eval"
    handles_signals = True

    def resume_hint(self, params: dict) -> str:  # noqa: D102
        out = params.get("output_path")
        return f": finished batches are kept in {out}; rerun the same command to resume" if out else ""

    def main(self, args=None, prog_name=None, **extra):  # noqa: D102 - `malt-eval suite ...` dispatch
        argv = list(sys.argv[1:] if args is None else args)
        if argv[:1] == ["suite"]:
            from malt_apps.suite import suite

            return suite.main(argv[1:], "malt-eval suite", **extra)
        if argv[:1] == ["lm-eval"]:
            from malt_apps.lm_eval_cli import main as lm_eval_main

            return lm_eval_main(argv[1:])
        return super().main(argv, prog_name, **extra)


@click.command(cls=_Command, context_settings=CONTEXT)
@options_from(EvalSpec)
def main(**opts) -> None:
    """Evaluate a multi-agent (generator -> verifier -> refiner) system with lm-eval tasks.

    All of the MALT paper's table rows (baselines, STaR, MALT, ablations, debate) in one command:
    see `malt-eval suite --help`. lm-eval's own CLI with the `malt` model: `malt-eval lm-eval --model malt ...`.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    evaluate_and_print(EvalSpec.from_options(opts))


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
