"""The README's Python API example, run exactly as written (on a scripted backend instead of the model)."""

from __future__ import annotations

import re

import pytest

from harness.inference.backends.scripted import ScriptedBackend
from tests.conftest import REPO


def readme_block(heading: str) -> str:
    """The first ```python block under ``heading`` in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


class ScriptedAsHF(ScriptedBackend):
    """Stands in for the hf backend: answers 18 to everything; model names are taken as given (no load)."""

    remote = True

    def __init__(self, model: str | None = None, **options) -> None:
        super().__init__(lambda messages, i: "Work. Final Answer: 18")
        self.model_id = model


def test_python_api_example_runs_as_written(small_data, tmp_path, monkeypatch, capsys):
    from harness.inference.backends import BACKENDS, get_backend

    get_backend("hf")  # the built-in backends are registered before one is replaced
    monkeypatch.setitem(BACKENDS, "hf", ScriptedAsHF)
    monkeypatch.setenv("MALT_DATA_DIR", str(small_data))
    monkeypatch.chdir(tmp_path)
    code = readme_block("## The library call")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the documented example itself
    results = scope["results"]
    assert results.acc("malt_gsm8k") == pytest.approx(1 / 5)  # of the first five questions, only #0 is 18
    assert (tmp_path / results.path).parent == tmp_path / "out" / "smol" and results.path.is_file()
    assert results.doc["malt"]["agents"] == "g,v,r" and results.doc["malt"]["calls_per_question"]["malt_gsm8k"] == 3
    printed = capsys.readouterr().out
    assert "| malt_gsm8k (limit)" in printed and str(results.path) in printed


def test_readme_is_a_short_front_page():
    """The README stays a front page (what it is, the commands, the library call, a results table); the rest
    lives in the docs site, whose pages it links."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / link).is_file(), link
