"""``malt-train`` (not implemented yet: see the malt-train issue)."""

import sys

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """MALT training: generate trees, label, build SFT/DPO sets, train LoRA adapters. Not implemented yet."""
    click.echo("malt-train: not implemented yet (tree generation, labelling and SFT/DPO are planned)", err=True)
    sys.exit(2)
