"""The documentation site: ``mkdocs build --strict`` passes offline, its reference pages are made from the code,
and a broken link fails the build."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from tests.conftest import REPO

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")


def _hooks():
    spec = importlib.util.spec_from_file_location("malt_docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The whole site, built as ``make docs`` builds it."""
    out = tmp_path_factory.mktemp("site")
    proc = _mkdocs(REPO / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _commands(cmd: click.Command, prog: str):
    yield prog, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{prog} {name}")


def test_every_page_of_the_nav_is_built(site):
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]

    def pages(items):
        for item in items:
            for value in item.values():
                yield from (pages(value) if isinstance(value, list) else [value])

    for page in pages(nav):
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), page


def test_cli_reference_lists_every_option_of_every_command(site):
    html = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    hooks = _hooks()
    seen = 0
    for prog in hooks.COMMANDS:
        for name, cmd in _commands(hooks.command(prog), prog):
            assert f"<code>{name}</code>" in html, name
            for p in cmd.params:
                for opt in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]:
                    if opt.startswith("-") and opt not in ("-h", "--help"):
                        assert f"<code>{opt}</code>" in html, f"{name} {opt}"
                        seen += 1
    assert seen > 100  # malt-eval alone has over 30 options


def test_api_reference_is_generated_from_the_docstrings(site):
    harness = (site / "reference" / "harness" / "index.html").read_text(encoding="utf-8")
    assert 'id="harness.api.run_eval"' in harness and 'id="harness.spec.EvalSpec"' in harness
    train = (site / "reference" / "malt_train" / "index.html").read_text(encoding="utf-8")
    assert 'id="malt_train.label"' in train and 'id="malt_train.pipeline.run_all"' in train
    board = (site / "reference" / "leaderboard" / "index.html").read_text(encoding="utf-8")
    assert 'id="leaderboard.stats.mcnemar_exact"' in board


def test_api_markers_list_every_public_module():
    blocks = _hooks().api_blocks("malt_train")
    modules = sorted(p.stem for p in (REPO / "malt_train").glob("*.py") if not p.stem.startswith("_"))
    assert [line.removeprefix("::: ") for line in blocks.splitlines() if line.startswith("::: ")] == [
        "malt_train",
        *(f"malt_train.{m}" for m in modules),
    ]


def test_a_broken_link_fails_the_build(tmp_path):
    """The site's own settings (strict, link validation, the hook) on a page with a link to nowhere."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config |= {"docs_dir": str(docs), "nav": ["index.md"], "hooks": [str(REPO / "docs" / "hooks.py")]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    proc = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0 and "missing.md" in proc.stderr
