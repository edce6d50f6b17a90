"""malt-leaderboard: a board built from real malt-eval runs of a tiny model, paired statistics, turn-wise
accuracy and every bad input through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from leaderboard.stats import flips, mcnemar_exact, paired_bootstrap
from malt_apps.logs import turn_accuracy
from tests.conftest import malt_eval, run_cli

_RUNS: dict[str, Path] = {}
COMMON = ["--max-new-tokens", 4, "--batch-size", 6, "--log-samples"]


def leaderboard(*args):
    return run_cli("malt_apps.leaderboard_cli", *args, timeout=300)


def make_runs(tmp_path_factory, tiny_model_dir: Path, shared_data: Path) -> dict[str, Path]:
    """Three real result folders (once per session): g --limit 2 on two tasks, g,v,r --limit 2, g 2 seeds × 3."""
    if _RUNS:
        return _RUNS
    from harness.tasks.data import DATA_FILES

    root = tmp_path_factory.mktemp("leaderboard-runs")
    data = root / "data"
    for files in DATA_FILES.values():
        for rel in files.values():
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            with (shared_data / rel).open() as fh:
                (data / rel).write_text("".join(next(fh) for _ in range(6)))
    runs = {
        "g": ["--agents", "g", "--tasks", "malt_gsm8k,malt_csqa", "--limit", 2],
        "gvr": ["--agents", "g,v,r", "--tasks", "malt_gsm8k", "--limit", 2],
        "seeds": ["--agents", "g", "--tasks", "malt_gsm8k", "--seeds", 2, "--subset", 3],
    }
    for name, args in runs.items():
        r = malt_eval("--model", tiny_model_dir, *args, *COMMON, "--output-path", root / name, env_data=data)
        assert r.returncode == 0, r.stderr[-2000:]
    _RUNS.update({name: root / name for name in runs})
    return _RUNS


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, shared_data) -> dict[str, Path]:
    return make_runs(tmp_path_factory, tiny_model_dir, shared_data)


def results_file(folder: Path) -> Path:
    (path,) = folder.glob("results_*.json")
    return path


def edited_copy(src: Path, dst: Path, edit) -> Path:
    """A copy of a result folder whose results JSON went through ``edit(doc)``."""
    shutil.copytree(src, dst)
    path = results_file(dst)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return dst


def main_rows(md: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header and rows (system -> cells) of the main table of ``leaderboard.md``."""
    table = md.split("\n\n")[1].splitlines()

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    return cells(table[0]), {cells(line)[0]: cells(line) for line in table[2:]}


def assert_one_line_error(r, message: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("malt-leaderboard: error: ") and message in r.stderr, r.stderr


# --------------------------------------------------------------------------- build


@pytest.fixture(scope="module")
def board(runs, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("board")
    r = leaderboard("build", runs["g"], runs["gvr"], runs["seeds"], "-o", out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r.stdout


def test_build_writes_every_output(board):
    out, stdout = board
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html", "accuracy.png"):
        assert (out / name).is_file(), name
    for task in ("malt_gsm8k", "malt_csqa"):
        assert (out / f"accuracy_{task}.png").read_bytes().startswith(b"\x89PNG")
    assert "| system" in stdout and "malt_gsm8k" in stdout  # the markdown table is printed


def test_markdown_has_one_row_per_system_and_the_limit_mark(board, tiny_model_dir):
    md = (board[0] / "leaderboard.md").read_text()
    header, rows = main_rows(md)
    assert header == ["system", "agents", "votes", "malt_gsm8k", "malt_csqa", "calls/q", "tokens/q"]
    name = tiny_model_dir.name
    assert set(rows) == {f"{name} g (limit 2)", f"{name} g,v,r (limit 2)", f"{name} g"}
    g, gvr, seeds = rows[f"{name} g (limit 2)"], rows[f"{name} g,v,r (limit 2)"], rows[f"{name} g"]
    # the 2x3-question run drew other questions than the limit runs: the column is marked as mixing data (†N)
    assert g[3].endswith("(n=2) †1") and g[4].endswith("(n=2)") and "±" in g[3]  # stderr of a single run
    assert "Mixed columns" in md and "data" in md.split("Mixed columns", 1)[1]
    assert gvr[4] == "" and gvr[5] == "3.0" and g[5] == "1.0"  # no CSQA run; calls per question
    assert seeds[3].endswith("(2×3) †2") and "±" in seeds[3]  # std over 2 seeds of 3 questions
    assert float(gvr[6]) <= 3 * 4  # tokens per question within the budget
    assert "## Benchmarks" in md and "task version" in md and "prompt hash" in md
    assert "## Systems" in md and str(tiny_model_dir) in md  # model identity
    assert "## Turn-wise accuracy" in md and "stated)" in md
    assert "†3" not in md and "†" not in gvr[4]  # one task version and prompt per column: only the data marks


def test_csv_and_json_hold_every_field(board, runs):
    out = board[0]
    lines = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert len(lines) == 4  # g: gsm8k+csqa, g,v,r: gsm8k, seeds: gsm8k
    gvr = next(x for x in lines if x["agents"] == "g,v,r")
    doc = json.loads(results_file(runs["gvr"]).read_text())
    assert gvr["prompt_hash"] == doc["malt"]["prompt_hash"]["malt_gsm8k"] and gvr["version"] == "1.0"
    assert gvr["limited"] == "True" and gvr["limit"] == "2" and gvr["seeds"] == "1"
    assert float(gvr["acc"]) == doc["results"]["malt_gsm8k"]["acc,none"]
    assert json.loads(gvr["roles"])["verifier"]["model"] == doc["malt"]["roles"]["verifier"]["model"]
    assert json.loads(gvr["max_new_tokens"]) == {"generator": 4, "verifier": 4, "refiner": 4}
    board_doc = json.loads((out / "leaderboard.json").read_text())
    assert board_doc["tasks"] == ["malt_gsm8k", "malt_csqa"] and len(board_doc["rows"]) == 3
    seeds = next(r for r in board_doc["rows"] if not r["limited"])
    cell = seeds["cells"]["malt_gsm8k"]
    assert cell["spread_kind"] == "std" and cell["seeds"] == 2 and len(cell["per_seed"]) == 2
    gvr_turns = next(t for t in board_doc["turns"] if "g,v,r" in t["system"])
    assert gvr_turns["n"] == 2 and set(gvr_turns["correct"]) == {"generator", "verifier", "refiner"}


def test_mismatched_prompt_hash_is_marked(runs, tmp_path):
    def other_system_other_prompt(doc):
        doc["malt"]["votes"] = 3
        doc["malt"]["prompt_hash"]["malt_gsm8k"] = "feedfacefeedface"
        doc["malt"]["provenance"]["generation"]["votes"] = 3  # the record says what made the run
        doc["malt"]["provenance"]["tasks"]["malt_gsm8k"]["prompts"] = "feedfacefeedface"

    other = edited_copy(runs["g"], tmp_path / "other", other_system_other_prompt)
    r = leaderboard("build", runs["g"], other, "-o", tmp_path / "board")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    _, rows = main_rows(md)
    assert len(rows) == 2 and {row[3][-2:] for row in rows.values()} == {"†1", "†2"}  # both gsm8k cells marked
    assert all("†" not in row[4] for row in rows.values())  # CSQA prompts agree: not marked
    assert "prompt hash feedfacefeedface" in md  # the footnote names the hash


def test_newer_run_of_the_same_system_replaces_the_older(runs, tmp_path):
    again = edited_copy(runs["gvr"], tmp_path / "again", lambda d: d.update(date=d["date"] + 60))
    r = leaderboard("build", runs["gvr"], again, "-o", tmp_path / "board")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads((tmp_path / "board" / "leaderboard.json").read_text())["rows"]
    cell = row["cells"]["malt_gsm8k"]
    assert cell["source"] == str(results_file(again).resolve()) and len(cell["replaced"]) == 1


# --------------------------------------------------------------------------- compare and turns


def test_compare_real_runs(runs, tmp_path):
    r = leaderboard("compare", runs["g"], runs["gvr"], "--json", tmp_path / "c.json", "--resamples", 1000)
    assert r.returncode == 0, r.stderr
    assert "malt_gsm8k: 2 common questions" in r.stdout and "McNemar exact p" in r.stdout
    (task,) = json.loads((tmp_path / "c.json").read_text())["tasks"]  # CSQA only in A: not compared
    assert task["task"] == "malt_gsm8k" and sum(task["flips"].values()) == 2
    assert task["ci"][0] <= task["diff"] <= task["ci"][1]


def test_turns_command(runs, tmp_path):
    r = leaderboard("turns", runs["gvr"], "--json", tmp_path / "t.json")
    assert r.returncode == 0, r.stderr
    assert "after G" in r.stdout and "after V" in r.stdout and "after R" in r.stdout
    (t,) = json.loads((tmp_path / "t.json").read_text())
    assert t["n"] == 2 and t["stated"]["generator"] == 2 and 0 <= t["stated"]["verifier"] <= 2


def test_audit_and_regrade_real_runs(runs, tmp_path):
    """The grader audit and the regrade read real logs of the tiny model; regrading with the grader that graded
    the runs changes nothing."""
    r = leaderboard("audit", runs["g"], runs["gvr"], "-o", tmp_path / "audit")
    assert r.returncode == 0, r.stderr
    texts = {
        (row["task"], row["role"], row["reader"]): row["texts"]
        for row in json.loads((tmp_path / "audit" / "summary.json").read_text())
    }
    assert texts[("malt_gsm8k", "generator", "flexible-extract")] == 4  # 2 questions in each run
    assert (
        texts[("malt_gsm8k", "refiner", "strict-match")] == 2
        and texts[("malt_csqa", "generator", "lm-eval multi_choice_regex")] == 2
    )
    r = leaderboard("regrade", runs["g"], runs["gvr"], "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    found = json.loads((tmp_path / "r.json").read_text())
    assert len(found) == 3 and all(f["n"] == 2 and f["logged"] == f["regraded"] and not f["changed"] for f in found)


def test_turn_accuracy_on_known_answers():
    def row(g, v, r, final_ok):
        return {
            "doc_id": 0,
            "target": "5",
            "acc": float(final_ok),
            "doc": {"question": "q", "answer": "... #### 5"},
            "answers_by_role": {"generator": g, "verifier": v, "refiner": r},
        }

    rows = [
        row(["5"], [None], ["5"], True),  # c -> c, verifier silent
        row(["4"], ["5"], ["5"], True),  # i -> c
        row(["5"], ["4"], ["4"], False),  # c -> i
        row(["3", "4", "4"], [None, "5", None], ["5", "5", "4"], True),  # votes: g 4 (wrong), v 5, r 5
    ]
    t = turn_accuracy("malt_gsm8k", rows)
    assert t.n == 4 and t.correct == {"generator": 2, "verifier": 2, "refiner": 3}
    assert t.stated["verifier"] == 3 and t.acc("verifier") == pytest.approx(2 / 3)
    assert t.acc("generator") == 0.5 and t.final_correct == 3
    assert t.g_to_final == {
        "incorrect→correct": 2,
        "correct→correct": 1,
        "incorrect→incorrect": 0,
        "correct→incorrect": 1,
    }
    assert turn_accuracy(
        "malt_csqa", [{**rows[0], "doc": None, "target": "B", "answers_by_role": {"generator": ["(B)"]}}]
    ).correct == {"generator": 1}


def test_turn_accuracy_reads_the_logged_grades_only():
    """Rows whose target and answers cannot be graded: the grades written by the evaluation decide."""
    from leaderboard.collect import ResultsError
    from leaderboard.turns import turn_accuracy as read_turns

    grades = {
        "generator": {"answer": "x", "correct": False},
        "verifier": {"answer": None, "correct": False},
        "refiner": {"answer": "y", "correct": True},
    }
    rows = [{"doc_id": 0, "target": "not an answer", "acc": 1.0, "doc": None, "turn_grades": grades}]
    t = read_turns("malt_gsm8k", rows)
    assert t.correct == {"generator": 0, "verifier": 0, "refiner": 1} and t.stated["verifier"] == 0
    assert t.g_to_final["incorrect→correct"] == 1 and t.final_correct == 1
    with pytest.raises(ResultsError, match="no per-turn grades"):
        read_turns("malt_gsm8k", [{"doc_id": 0, "acc": 0.0, "target": "1"}])


def test_turns_table_comes_from_the_grades_in_the_sample_log(runs, tmp_path):
    """A real log whose targets, docs and answers are made ungradable gives the same turn-wise table."""
    before = leaderboard("turns", runs["gvr"], "--json", tmp_path / "before.json")
    assert before.returncode == 0, before.stderr
    blind = edited_copy(runs["gvr"], tmp_path / "blind", lambda d: None)
    (samples,) = blind.glob("samples_malt_gsm8k_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert all(set(r["turn_grades"]) == {"generator", "verifier", "refiner"} for r in rows)
    assert all(isinstance(t["correct"], bool) for r in rows for s in r["samples"] for t in s["turns"].values())
    blank = [{**r, "target": "?", "doc": None, "answers_by_role": {}, "samples": []} for r in rows]
    samples.write_text("".join(json.dumps(r) + "\n" for r in blank))
    after = leaderboard("turns", blind, "--json", tmp_path / "after.json")
    assert after.returncode == 0, after.stderr
    assert json.loads((tmp_path / "after.json").read_text()) == json.loads((tmp_path / "before.json").read_text())


# --------------------------------------------------------------------------- statistics


def test_flip_counts():
    a = [True, True, False, False, False, True]
    b = [True, False, True, True, False, True]
    assert flips(a, b) == {
        "incorrect→correct": 2,
        "correct→correct": 2,
        "incorrect→incorrect": 1,
        "correct→incorrect": 1,
    }
    with pytest.raises(ValueError):
        flips([True], [])


def test_mcnemar_exact_on_known_tables():
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)  # 2 * (C(10,0) + C(10,1)) / 2^10
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in [(3, 12), (7, 20), (40, 25)]:
        assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue)


def test_paired_bootstrap_degenerate_and_known_difference():
    ci = paired_bootstrap([False] * 20, [True] * 20, resamples=500)
    assert (ci.diff, ci.low, ci.high) == (1.0, 1.0, 1.0)
    ci = paired_bootstrap([True, False] * 10, [True, False] * 10, resamples=500)
    assert (ci.diff, ci.low, ci.high) == (0.0, 0.0, 0.0)
    # 400 questions: B fixes 60 of A's errors and breaks 20 of its successes: difference +0.10
    a = [True] * 200 + [False] * 200
    b = [True] * 180 + [False] * 20 + [True] * 60 + [False] * 140
    ci = paired_bootstrap(a, b, resamples=10_000, seed=1)
    assert ci.diff == pytest.approx(0.10) and ci.low < 0.10 < ci.high
    assert 0.04 < ci.low < 0.08 and 0.12 < ci.high < 0.16  # about ± 1.96 * sqrt((80 - 40^2/400)/400^2) ~ 0.044
    assert paired_bootstrap(a, b, resamples=2000, seed=3) == paired_bootstrap(a, b, resamples=2000, seed=3)


# --------------------------------------------------------------------------- bad input


def test_empty_missing_and_unreadable_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(leaderboard("build", tmp_path / "empty", "-o", tmp_path / "o"), "no results_*.json under")
    assert_one_line_error(leaderboard("build", tmp_path / "nope", "-o", tmp_path / "o"), "no such file or folder")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results_2026-01-01T00-00-00.json").write_text('{"results": ')
    assert_one_line_error(leaderboard("build", bad, "-o", tmp_path / "o"), "not valid JSON")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # an older malt-eval's file (without lm-eval's run keys; with them and no malt block, it is read as lm-eval's)
        (lambda d: [d.pop(k) for k in ("malt", "lm_eval_version", "n-shot")], "no malt.format"),
        (lambda d: d["malt"].pop("format"), "no malt.format"),
        (lambda d: d["malt"].update(format=2), "results format 2 is not supported"),
        (lambda d: d["malt"].pop("per_seed"), "malformed results (missing malt.per_seed)"),
        (lambda d: d.update(results={}), "holds no task results"),
    ],
)
def test_old_or_unknown_format(runs, tmp_path, edit, message):
    folder = edited_copy(runs["gvr"], tmp_path / "old", edit)
    assert_one_line_error(leaderboard("build", folder, "-o", tmp_path / "o"), message)


def test_compare_without_common_questions(runs, tmp_path):
    other = edited_copy(runs["gvr"], tmp_path / "other", lambda d: None)
    (samples,) = other.glob("samples_malt_gsm8k_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    samples.write_text("".join(json.dumps({**row, "doc_id": row["doc_id"] + 100}) + "\n" for row in rows))
    assert_one_line_error(leaderboard("compare", runs["g"], other), "no common questions")
    assert_one_line_error(leaderboard("compare", runs["g"], runs["seeds"].parent), "systems")  # A folder of many


def test_missing_samples(runs, tmp_path):
    bare = edited_copy(runs["gvr"], tmp_path / "bare", lambda d: None)
    for path in bare.glob("samples_*.jsonl"):
        path.unlink()
    assert_one_line_error(leaderboard("compare", runs["g"], bare), "--log-samples")
    assert_one_line_error(leaderboard("turns", bare), "--log-samples")
    r = leaderboard("build", bare, "-o", tmp_path / "o")  # the board itself needs no sample log
    assert r.returncode == 0 and "Turn-wise" not in (tmp_path / "o" / "leaderboard.md").read_text()


def test_systems_name_an_embedded_model_by_its_source_not_this_machines_cache():
    from leaderboard.render import roles_text

    cache = "/root/.cache/malt/models/qwen2.5-coder-0.5b"
    roles = {
        "generator": {"model": "qwen2.5-coder-0.5b", "path": cache, "adapter": None},
        "verifier": {"model": "qwen2.5-coder-0.5b", "path": cache, "adapter": "/runs/r/adapters/verifier"},
        "refiner": {"model": "./local/model", "path": "/abs/local/model", "adapter": None},
    }
    text = roles_text(roles)
    assert cache not in text
    assert text.startswith("g,v: qwen2.5-coder-0.5b (embedded: Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF))")
    assert "r: ./local/model (/abs/local/model)" in text and "adapters: v=/runs/r/adapters/verifier" in text
