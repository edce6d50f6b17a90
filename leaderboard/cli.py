"""``malt-leaderboard`` (not implemented yet: see the leaderboard issue)."""

import sys

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Build leaderboard tables, a web page and plots from malt-eval result folders. Not implemented yet."""
    click.echo("malt-leaderboard: not implemented yet", err=True)
    sys.exit(2)
