"""The grader audit (``malt-leaderboard audit``) and regrading from sample logs (``malt-leaderboard regrade``).

The fixture ``tests/fixtures/audit`` holds real logs: rows of the audit runs of ``bench/audit_runs.sh``
(SmolLM2-135M and Qwen2.5-Coder-0.5B at temperature 0.7, prompts dropped to keep it small), one finished run
per task and one unfinished run (its ``checkpoint.jsonl`` only).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from malt_apps.audit import READERS, Reading, disagreement
from tests.conftest import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "audit"
GSM = {"question": "q", "answer": "work\n#### 18"}


def leaderboard(*args):
    return run_cli("malt_apps.leaderboard_cli", *args, timeout=300)


def assert_one_line_error(r, message: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("malt-leaderboard: error: ") and message in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("ours", "theirs", "kind"),
    [
        (Reading("18", True), Reading("18", True), "agree"),
        (Reading(None, False), Reading(None, False), "agree"),
        (Reading("18", True), Reading("17", False), "ours_right"),
        (Reading("18", True), Reading(None, False), "ours_right"),
        (Reading(None, False), Reading("18", True), "reader_right"),
        (Reading("17", False), Reading(None, False), "only_ours_found"),
        (Reading(None, False), Reading("17", False), "only_reader_found"),
        (Reading("17", False), Reading("16", False), "other_answer"),
        (Reading("17", False), Reading("17.00", False), "agree"),  # the same number, written differently
    ],
)
def test_disagreement_kinds(ours, theirs, kind):
    assert disagreement("malt_gsm8k", ours, theirs) == kind


def test_gsm8k_readers_are_lm_evals_filters():
    """strict-match needs lm-eval's "#### N"; flexible-extract takes the last number; both graded by exact_match."""
    got = READERS["malt_gsm8k"]("The total is 18.\n#### 18", GSM)
    assert got["strict-match"] == Reading("18", True) and got["flexible-extract"] == Reading("18", True)
    got = READERS["malt_gsm8k"]("Final Answer: $18.\nThat took 2 days.", GSM)
    assert got["strict-match"] == Reading(None, False)
    assert got["flexible-extract"] == Reading("2", False)


def test_math_and_csqa_readers():
    half = {"problem": "p", "answer": "\\frac{1}{2}"}
    assert READERS["malt_math"]("so $x = 3$, then \\boxed{0.5}", half)["math-verify"].correct
    assert not READERS["malt_math"]("so \\boxed{0.5} and finally $x = 3$", {"problem": "p", "answer": "3"})[
        "math-verify"
    ].correct  # the last \boxed{} comes first
    texts = ["bank", "library", "mall", "park", "zoo"]
    choices = [{"label": k, "text": t} for k, t in zip("ABCDE", texts, strict=True)]
    csqa = {"answerKey": "B", "question": {"stem": "Where are books?", "choices": choices}}
    (reading,) = READERS["malt_csqa"]("Books are kept in a library.", csqa).values()
    assert reading == Reading("B", True)  # the choice text, mapped to its letter
    (reading,) = READERS["malt_csqa"]("It is (C).", csqa).values()
    assert reading == Reading("C", False)


# --------------------------------------------------------------------------- the command on the fixture


def test_audit_reads_every_role_text_and_writes_the_disagreements(tmp_path):
    r = leaderboard("audit", FIXTURE, "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "summary.json").read_text())
    logged = _logged_texts()
    for task, n in Counter(t for t, _ in logged).items():  # every role text of every log, read by every reader
        readers = {row["reader"] for row in rows if row["task"] == task}
        assert sum(row["texts"] for row in rows if row["task"] == task) == n * len(readers)
    dis = [json.loads(line) for line in (tmp_path / "disagreements.jsonl").read_text().splitlines()]
    assert dis and all(any(k != "agree" for k in d["kinds"].values()) for d in dis)
    assert all({"tail", "gold", "ours", "readers", "kinds", "notes"} <= set(d) for d in dis)
    # SmolLM2's verifier on GSM8K doc 724: "The final answer is 20 - 2 = 18 slices" (gold 18); flexible-extract
    # takes the last number of the text (a 2), strict-match finds no "#### N"
    (v724,) = [d for d in dis if d["doc_id"] == 724 and d["role"] == "verifier"]
    assert v724["ours"] == {"answer": "18", "correct": True} and v724["logged_answer"] == "20"
    assert v724["kinds"] == {"strict-match": "ours_right", "flexible-extract": "ours_right"}
    assert v724["notes"]["strict-match"].startswith("no '#### N' line")
    table = [line.split("|")[1:4] for line in r.stdout.splitlines() if line.startswith("| malt_")]
    assert ["malt_csqa", "refiner", "lm-eval multi_choice_regex"] in [[c.strip() for c in t] for t in table]
    assert len(table) == len(rows)


def _logged_texts() -> list[tuple[str, str]]:
    """(task, text) of every role turn in the fixture's sample logs and checkpoints."""
    out = []
    for path in [*FIXTURE.rglob("samples_*.jsonl"), *FIXTURE.rglob("checkpoint.jsonl")]:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            task = rec.get("task") or path.name.split("_2")[0].removeprefix("samples_")
            for row in rec.get("rows", [rec]):
                out += [(task, t["text"]) for s in row["samples"] for t in s["turns"].values()]
    return out


def test_regrade_reports_the_questions_whose_grade_changed(tmp_path):
    r = leaderboard("regrade", FIXTURE, "--json", tmp_path / "regrade.json")
    assert r.returncode == 0, r.stderr
    found = json.loads((tmp_path / "regrade.json").read_text())
    assert {f["task"] for f in found} == {t for t, _ in _logged_texts()}
    assert all(f["logged"] + sum(c["now"] - c["was"] for c in f["changed"]) == f["regraded"] for f in found)
    # a copy whose log says every question was right: regrading finds the wrong ones
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURE / "smollm2-gsm8k", copy)
    (log,) = copy.glob("samples_*.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps({**row, "acc": 1.0}) + "\n" for row in rows))
    r = leaderboard("regrade", copy, "--json", tmp_path / "copy.json")
    (res,) = json.loads((tmp_path / "copy.json").read_text())
    assert res["logged"] == len(rows) and res["regraded"] == sum(row["acc"] for row in rows)
    assert len(res["changed"]) == len(rows) - res["regraded"] and not any(c["now"] for c in res["changed"])


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line(tmp_path):
    assert_one_line_error(leaderboard("audit", tmp_path / "nope", "-o", tmp_path / "o"), "no such file or folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(leaderboard("audit", tmp_path / "empty", "-o", tmp_path / "o"), "no results_*.json")
    bare = tmp_path / "bare"  # a run logged without --log-samples: rows without texts
    shutil.copytree(FIXTURE / "smollm2-gsm8k", bare)
    (log,) = bare.glob("samples_*.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text(
        "".join(json.dumps({k: row[k] for k in ("doc_id", "target", "answer", "acc")}) + "\n" for row in rows)
    )
    for cmd in (["audit", bare, "-o", tmp_path / "o"], ["regrade", bare]):
        assert_one_line_error(leaderboard(*cmd), "--log-samples")
    log.unlink()
    assert_one_line_error(leaderboard("audit", bare, "-o", tmp_path / "o"), "no sample log")


def _row(*turns: tuple[str, str]) -> dict:
    sample = {"sample": 0, "turns": {r: {"text": t} for r, t in turns}}
    return {"doc_id": 0, "acc": 0.0, "doc": GSM, "samples": [sample]}


@pytest.mark.parametrize(
    ("turns", "answer"),
    [
        ((("generator", "Final Answer: 17"), ("verifier", "Wrong. Final Answer: 18")), "18"),  # g,v: the verifier's
        ((("generator", "Final Answer: 18"), ("verifier", "The answer is correct.")), "18"),  # ...when it states one
        ((("generator", "Final Answer: 18"), ("verifier", "Final Answer: 17"), ("refiner", "Final Answer: 16")), "16"),
        ((("agent1_round1", "Final Answer: 17"), ("agent1_round2", "Final Answer: 18")), "18"),  # debate: last round
    ],
)
def test_regrade_chooses_the_systems_answer_as_the_run_did(turns, answer):
    from malt_apps.regrade import regrade_rows

    ((_, voted, ok),) = regrade_rows("malt_gsm8k", [_row(*turns)])
    assert voted == answer and ok is (answer == "18")


def test_unfinished_run_with_a_provenance_record_is_read(tmp_path):
    """An unfinished run of today's layout: its record in ``provenance.json``, the agents in its plan."""
    from malt_apps.audit import log_sources

    folder = tmp_path / "unfinished"
    shutil.copytree(FIXTURE / "smollm2-csqa-unfinished", folder)
    (folder / "run.json").unlink()
    (folder / "provenance.json").write_text(json.dumps({"provenance": {"plan": {"agents": "g,r"}}}))
    sources = log_sources([str(folder)])
    assert sources and {s.agents for s in sources} == {"g,r"}
