"""MkDocs hook: the reference pages are made from the code at build time, so they cannot drift from it.

- ``<!-- cli: PROG -->`` becomes the reference of a command line (``malt-eval``, ``malt-eval suite``,
  ``malt-train``, ``malt-leaderboard``): every click command's usage, help and options (name, default, help),
  read from the click command objects, which are themselves made from the config dataclasses' fields.
- ``<!-- api: PACKAGE -->`` becomes one mkdocstrings ``::: module`` block per public module of PACKAGE (found
  on disk: a module moved or renamed moves in the reference too).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent

# prog -> (module, attribute) of its click command
COMMANDS = {
    "malt-eval": ("malt_apps.eval_cli", "main"),
    "malt-eval suite": ("malt_apps.suite", "suite"),
    "malt-train": ("malt_apps.train_cli", "main"),
    "malt-leaderboard": ("malt_apps.leaderboard_cli", "main"),
}
_MARKER = re.compile(r"^<!-- (cli|api): ([\w .-]+?) -->$", re.M)


def _on_path() -> None:
    """This checkout's code first on the path (not an installed copy)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def command(prog: str) -> click.Command:
    """The click command behind ``prog``."""
    _on_path()
    module, attr = COMMANDS[prog]
    return getattr(importlib.import_module(module), attr)


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _names(p: click.Parameter) -> str:
    if isinstance(p, click.Argument):
        return f"`{p.human_readable_name}`"
    names = [*p.opts, *p.secondary_opts]
    return " / ".join(f"`{n}`" for n in names)


def _default(p: click.Parameter) -> str:
    if isinstance(p, click.Option) and p.is_flag and not p.secondary_opts:
        return "off"
    if p.default is None or p.default == "" or p.default == ():
        return "required" if p.required else ""
    if isinstance(p.default, bool):
        return f"`{p.opts[0] if p.default else p.secondary_opts[0]}`"
    return f"`{p.default}`"


def _kind(p: click.Parameter, ctx: click.Context) -> str:
    if isinstance(p, click.Option) and p.is_flag:
        return "flag"
    if isinstance(p.type, click.Choice):
        return " | ".join(str(c) for c in p.type.choices)
    return p.make_metavar(ctx) if isinstance(p, click.Argument) else (p.metavar or p.type.name.upper())


def render_command(cmd: click.Command, prog: str, level: int = 2) -> str:
    """One command as markdown: heading, usage, help text, a table of its parameters."""
    ctx = click.Context(cmd, info_name=prog)
    usage = " ".join([prog, *cmd.collect_usage_pieces(ctx)])
    lines = [f"{'#' * level} `{prog}`", "", f"```text\n{usage}\n```", "", inspect.cleandoc(cmd.help or ""), ""]
    params = [p for p in cmd.params if p.name != "help" and not getattr(p, "hidden", False)]
    if params:
        lines += ["| option | value | default | help |", "|---|---|---|---|"]
        for p in params:
            help_text = getattr(p, "help", None) or ""
            lines.append(f"| {_names(p)} | {_cell(_kind(p, ctx))} | {_cell(_default(p))} | {_cell(help_text)} |")
        lines.append("")
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            lines.append(render_command(sub, f"{prog} {name}", level + 1))
    return "\n".join(lines)


def api_blocks(package: str) -> str:
    """``::: module`` blocks for the package and each public module under it (no ``_private`` ones)."""
    _on_path()
    root = REPO / package.replace(".", "/")
    names = [package]
    for info in pkgutil.walk_packages([str(root)], prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    root_block = f"::: {package}\n    options:\n      members: false"  # its public names are documented below
    return "\n\n".join([root_block, *(f"::: {name}" for name in names[1:])])


def expand(markdown: str) -> str:
    """The page with its ``<!-- cli: ... -->`` and ``<!-- api: ... -->`` markers expanded."""

    def one(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2).strip()
        return render_command(command(name), name) if kind == "cli" else api_blocks(name)

    return _MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs hook signature
    """MkDocs calls this for every page before converting it."""
    return expand(markdown)
