"""malt-leaderboard and the provenance record: one row per system (the record minus the tasks), rows named by the
settings they differ in, replaced cells footnoted, ``--strict`` on mixed columns, old results marked, the record
on the page. Built from one real scripted run (our malt_gsm8k and an lm-eval task) whose results files get
the record written into their ``malt`` block."""

from __future__ import annotations

import copy
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.api import run_eval
from harness.core.roles import ROLES
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.spec import EvalSpec
from tests.lm_eval_local import GSM8K_COT_ZS, write_local_tasks

STRICT, FLEXIBLE = f"{GSM8K_COT_ZS}:strict-match", f"{GSM8K_COT_ZS}:flexible-extract"
BASE = "qwen2.5-coder-0.5b g,v,r (limit 2)"  # the rows' label before the settings that tell them apart
ADAPTER_DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory, shared_data) -> Path:
    """OUT of one ``--agents g,v,r --limit 2`` run: OUT/results_*.json (ours) and OUT/<model>/results_*.json."""
    root = tmp_path_factory.mktemp("provenance-run")
    tasks = write_local_tasks(root / "tasks", shared_data)
    engines = {r: RoleEngine(ScriptedBackend(lambda messages, i: "The answer is 18.")) for r in ROLES}
    spec = EvalSpec(
        agents="g,v,r",
        tasks=f"malt_gsm8k,{GSM8K_COT_ZS}",
        include_path=str(tasks),
        limit=2,
        log_samples=True,
        output_path=str(root / "out"),
        data_dir=str(shared_data),
    )
    run_eval(spec, engines=engines, progress=False)
    return root / "out"


def record() -> dict:
    """A provenance record (the agreed schema) of a g,v,r run on both tasks."""
    role = {"model": "qwen2.5-coder-0.5b", "weights": "1f" * 32, "adapter": None, "adapter_digest": None}
    tokens = {"generator": 384, "verifier": 384, "refiner": 384}
    task = {"data": "d0" * 32, "prompts": "p0" * 32, "version": "1.0"}
    return {
        "format": 1,
        "roles": {r: dict(role) for r in ROLES},
        "plan": {"agents": "g,v,r", "steps": list(ROLES)},
        "engine": {"backend": "hf", "dtype": "auto", "batch_size": 8},
        "generation": {
            "temperature": 0.0,
            "top_p": 1.0,
            "max_new_tokens": tokens,
            "votes": 1,
            "stop": None,
            "num_fewshot": None,
            "apply_chat_template": True,
            "fewshot_as_multiturn": False,
            "system_instruction": None,
            "gen_kwargs": None,
        },
        "protocol": {"seeds": [0], "subset": None, "limit": 2},
        "tasks": {"malt_gsm8k": dict(task), GSM8K_COT_ZS: {**task, "version": "3.0"}},
        "versions": {"malt": "0.1.0", "lm_eval": "0.4.13", "torch": "2.5.1"},
        "git": "9cf94eb",
    }


def copy_run(src: Path, dst: Path, provenance: dict | None, later: float = 0.0, acc: float | None = None) -> Path:
    """A copy of a result folder whose results files carry ``provenance`` (``None``: none, as written before
    the record existed), dated ``later`` seconds after the original, with ``acc`` as every accuracy if given."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lm_eval_cache"))
    for path in dst.rglob("results_*.json"):
        doc = json.loads(path.read_text())
        doc["malt"].pop("provenance", None)
        if provenance is not None:
            doc["malt"]["provenance"] = copy.deepcopy(provenance)
        doc["date"] += later
        for res in doc["results"].values() if acc is not None else []:
            res.update({k: acc for k in res if k.split(",")[0] in ("acc", "exact_match") and "," in k})
        path.write_text(json.dumps(doc))
    return dst


def build(*args) -> tuple[int, str, str]:
    from malt_apps.leaderboard_cli import main

    r = CliRunner().invoke(main, ["build", *map(str, args)])
    return r.exit_code, r.stdout, r.stderr


def main_rows(md: str) -> dict[str, list[str]]:
    """The main table of ``leaderboard.md``: system -> cells."""
    table = md.split("\n\n")[1].splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
    header = cells[0]
    return {row[0]: dict(zip(header, row, strict=True)) for row in cells[2:]}


def test_runs_at_two_temperatures_are_two_rows_named_by_the_temperature(scripted_run, tmp_path):
    """Same agents, votes and models; only generation.temperature differs: two rows, each holding its own run's
    numbers on our task and on the lm-eval task (no cell replaced by the other temperature's)."""
    hot = record()
    hot["generation"]["temperature"] = 0.7
    cold_dir = copy_run(scripted_run, tmp_path / "t0", record(), acc=0.0)
    hot_dir = copy_run(scripted_run, tmp_path / "t07", hot, later=60, acc=1.0)
    code, stdout, stderr = build(cold_dir, hot_dir, "-o", tmp_path / "board")
    assert code == 0, stderr
    rows = main_rows((tmp_path / "board" / "leaderboard.md").read_text())
    cold, hot = f"{BASE} (generation.temperature=0)", f"{BASE} (generation.temperature=0.7)"
    assert set(rows) == {cold, hot}
    for label, acc in ((cold, "0.0"), (hot, "100.0")):
        for col in ("malt_gsm8k", STRICT, FLEXIBLE):  # one system, both tasks: one row
            assert rows[label][col].startswith(f"{acc} ± ") and "‡" not in rows[label][col], (label, col)
        assert label in stdout
    assert "Replaced cells" not in stdout and "Provenance incomplete" not in stdout
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert sorted(r["temperature"] for r in board["rows"]) == [0.0, 0.7]  # read from the record


def test_base_and_adapter_runs_are_rows_named_by_the_adapter_digest(scripted_run, tmp_path):
    """A base run, an adapter run, and the same adapter path retrained in place (another digest): three rows, the
    two adapter runs told apart by the digest."""
    runs = []
    for i, digest in enumerate((None, ADAPTER_DIGEST, "cd" * 32)):
        rec = record()
        if digest:
            rec["roles"]["verifier"].update(adapter="/runs/r/adapters/verifier", adapter_digest=digest)
        runs.append(copy_run(scripted_run / "qwen2.5-coder-0.5b", tmp_path / f"run{i}", rec, later=60 * i))
    code, _, stderr = build(*runs, "-o", tmp_path / "board")
    assert code == 0, stderr
    rows = main_rows((tmp_path / "board" / "leaderboard.md").read_text())
    lora = "qwen2.5-coder-0.5b g,v,r +LoRA[v] r/adapters (limit 2)"  # the adapter, from the record
    assert set(rows) == {
        BASE,
        f"{lora} (roles.verifier.adapter_digest=abababab)",
        f"{lora} (roles.verifier.adapter_digest=cdcdcdcd)",
    }
    assert all(row[STRICT] and "‡" not in row[STRICT] for row in rows.values())


def test_a_replaced_cell_has_a_footnote_naming_the_older_run(scripted_run, tmp_path):
    older = copy_run(scripted_run, tmp_path / "older", record(), acc=0.0)
    newer = copy_run(scripted_run, tmp_path / "newer", record(), later=3600, acc=1.0)
    code, stdout, stderr = build(older, newer, "-o", tmp_path / "board")
    assert code == 0, stderr
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    (row,) = main_rows(md).values()
    assert row["malt_gsm8k"].startswith("100.0 ± ") and row["malt_gsm8k"].endswith("(n=2) ‡1")
    assert row[STRICT].startswith("100.0 ± ") and row[STRICT][-2] == "‡"
    doc = json.loads(next(older.glob("results_*.json")).read_text())
    from leaderboard.board import utc

    note = f"‡1 {BASE}, malt_gsm8k: the run in {newer.resolve()} ("
    assert f"- {note}" in md and f"replaces {older.resolve()} ({utc(doc['date'])})" in md
    assert f"  {note}" in stdout and "Replaced cells" in stdout
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    assert '<span class="mark">‡1</span>' in html and f"replaces {older.resolve()} ({utc(doc['date'])})" in html


def test_strict_refuses_a_column_mixing_data_digests(scripted_run, tmp_path):
    """Two systems (temperatures) on other questions: --strict exits 2 in one line, writing nothing; without it the
    column's cells are marked and the footnote names each data digest."""
    other = record()
    other["generation"]["temperature"] = 0.7
    other["tasks"][GSM8K_COT_ZS]["data"] = "e1" * 32
    a = copy_run(scripted_run / "qwen2.5-coder-0.5b", tmp_path / "a", record())
    b = copy_run(scripted_run / "qwen2.5-coder-0.5b", tmp_path / "b", other, later=60)
    code, stdout, stderr = build(a, b, "--strict", "-o", tmp_path / "strict")
    assert code == 2 and stdout == "" and not (tmp_path / "strict").exists()
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("malt-leaderboard: error: --strict: ")
    assert f"{STRICT} (data digests d0d0d0d0 vs e1e1e1e1)" in stderr and "task versions" not in stderr
    code, stdout, stderr = build(a, b, "-o", tmp_path / "board")
    assert code == 0, stderr
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    rows = main_rows(md).values()
    assert {row[FLEXIBLE][-2:] for row in rows} == {"†1", "†2"} and {row[STRICT][-2:] for row in rows} == {"†3", "†4"}
    assert "data d0d0d0d0" in md and "data e1e1e1e1" in md and "data e1e1e1e1" in stdout
    code, _, stderr = build(a, "--strict", "-o", tmp_path / "one")  # one variant per column: built
    assert code == 0, stderr


def test_results_without_provenance_load_marked_incomplete(scripted_run, tmp_path):
    old = copy_run(scripted_run, tmp_path / "old", None)
    code, stdout, stderr = build(old, "-o", tmp_path / "board")
    assert code == 0, stderr
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    labels = set(main_rows(md))  # grouped as before: our task's row apart from the lm-eval task's
    assert len(labels) == 2 and all(label.startswith(BASE) for label in labels)
    for text in (md, stdout):
        notes = text.split("Provenance incomplete (", 1)[1]
        assert all(label in notes for label in labels)
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    assert all(r["provenance_incomplete"] and r["provenance"] is None for r in board["rows"])
    assert sorted(board["provenance_incomplete"]) == sorted(labels) and "| incomplete   |" in md
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    assert html.count('<span class="incomplete">provenance incomplete</span>') == 2
    # beside a recorded run of the same label, the old rows say so in their labels
    new = copy_run(scripted_run, tmp_path / "new", record(), later=60)
    code, _, stderr = build(old, new, "-o", tmp_path / "both")
    assert code == 0, stderr
    rows = main_rows((tmp_path / "both" / "leaderboard.md").read_text())
    assert BASE in rows and sum(label.endswith("(provenance incomplete)") for label in rows) == 2


class RowRecords(HTMLParser):
    """The JSON in each board row's <details><pre>, by the row's ``data-system``."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}
        self._row: str | None = None
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-system" in a:
            self._row = a["data-system"]
            self.found[self._row] = ""
        self._in_pre = self._in_pre or (tag == "pre" and self._row is not None)

    def handle_endtag(self, tag):
        self._in_pre = self._in_pre and tag != "pre"

    def handle_data(self, data):
        if self._in_pre and self._row is not None:
            self.found[self._row] += data


def test_the_page_shows_each_rows_full_provenance(scripted_run, tmp_path):
    hot = record()
    hot["generation"]["temperature"] = 0.7
    hot["roles"]["verifier"].update(adapter="/runs/r/adapters/verifier", adapter_digest=ADAPTER_DIGEST)
    a = copy_run(scripted_run, tmp_path / "a", record())
    b = copy_run(scripted_run, tmp_path / "b", hot, later=60)
    code, _, stderr = build(a, b, "-o", tmp_path / "board")
    assert code == 0, stderr
    parser = RowRecords()
    parser.feed((tmp_path / "board" / "leaderboard.html").read_text())
    assert len(parser.found) == 2
    for label, text in parser.found.items():
        shown = json.loads(text)["provenance"]
        expected = hot if "+LoRA[v]" in label else record()
        assert {k: shown[k] for k in expected if k != "tasks"} == {k: v for k, v in expected.items() if k != "tasks"}
        assert shown["tasks"]["malt_gsm8k"] == expected["tasks"]["malt_gsm8k"]
        assert shown["tasks"][STRICT] == shown["tasks"][FLEXIBLE] == expected["tasks"][GSM8K_COT_ZS]
    assert sorted(parser.found) == [BASE, "qwen2.5-coder-0.5b g,v,r +LoRA[v] r/adapters (limit 2)"]
