"""What the evaluation commands print: library notes as ``malt-eval: ...`` lines, results as tables."""

from __future__ import annotations

import click

from harness.api import run_eval
from harness.spec import EvalSpec


def note(message: str) -> None:
    """A ``malt-eval: ...`` line on stderr (notes of the library)."""
    click.echo(f"malt-eval: {message}", err=True)


def evaluate_and_print(spec: EvalSpec) -> dict:
    """Run ``spec``, print its summary table (and where its results went); return the results document."""
    results = run_eval(spec, notes=note)
    click.echo(results.table())
    if results.path:
        click.echo(f"results written to {results.path}")
    return results.doc
