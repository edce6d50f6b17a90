"""Outputs in lm-eval's layout plus ours: results files with every key lm-eval writes, sample lines with lm-eval's
fields beside every role's turn, read by lm-eval's own loaders and by the leaderboard (issue 18, point 6)."""

import csv
import json
from pathlib import Path

import pytest

from harness.api import run_eval
from harness.core.roles import ROLES
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.run.results import task_hash
from harness.spec import EvalSpec
from tests.lm_eval_local import GSM8K_COT_ZS, write_local_tasks

LM_EVAL_SAMPLE_KEYS = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics"}
HASHES = {"doc_hash", "prompt_hash", "target_hash"}
TOKENIZER_KEYS = {"tokenizer_pad_token", "tokenizer_eos_token", "tokenizer_bos_token", "eot_token_id", "max_length"}


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, shared_data, tmp_path_factory) -> Path:
    """One real run on the tiny model: our malt_gsm8k and a stock lm-eval task (gsm8k-cot-zeroshot on local rows)."""
    root = tmp_path_factory.mktemp("outputs")
    tasks = write_local_tasks(root / "tasks", shared_data)
    out = root / "out"
    spec = EvalSpec(
        model=str(tiny_model_dir),
        agents="g,v,r",
        tasks=f"malt_gsm8k,{GSM8K_COT_ZS}",
        include_path=str(tasks),
        limit=2,
        max_new_tokens=6,
        log_samples=True,
        output_path=str(out),
        data_dir=str(shared_data),
    )
    run_eval(spec, progress=False)
    return out


def _ours(out: Path) -> tuple[Path, Path]:
    [results] = out.glob("results_*.json")  # malt_* tasks: OUT/results_<time>.json
    [samples] = out.glob("samples_malt_gsm8k_*.jsonl")
    return results, samples


def _lm_evals(out: Path) -> tuple[Path, Path]:
    [results] = out.glob("*/results_*.json")  # lm-eval tasks: OUT/<model>/results_<date>.json, by lm-eval
    [samples] = out.glob(f"*/samples_{GSM8K_COT_ZS}_*.jsonl")
    return results, samples


def test_malt_results_carry_every_key_lm_eval_writes(tiny_run):
    ours, lm_evals = (json.loads(_ours(tiny_run)[0].read_text()), json.loads(_lm_evals(tiny_run)[0].read_text()))
    missing = set(lm_evals) - set(ours)
    assert not missing, missing  # the same run's lm-eval results file has no key ours lacks
    assert set(ours) >= TOKENIZER_KEYS  # what lm-eval adds for a model with a tokenizer (its hf model)
    assert ours["tokenizer_eos_token"][0] and ours["max_length"] > 0 and ours["chat_template_sha"]
    assert ours["model_name"] == lm_evals["model_name"] and ours["lm_eval_version"] == lm_evals["lm_eval_version"]
    assert ours["results"]["malt_gsm8k"]["sample_len"] == 2 and ours["n-shot"] == {"malt_gsm8k": 0}
    assert ours["configs"]["malt_gsm8k"]["metric_list"][0]["metric"] == "acc"  # the task's YAML, not a stub
    assert "per_seed" in ours["malt"]  # ours stays


def test_sample_lines_carry_lm_eval_fields_and_every_role(tiny_run):
    from lm_eval.utils import hash_string

    line = json.loads(_ours(tiny_run)[1].read_text().splitlines()[0])
    lm_line = json.loads(_lm_evals(tiny_run)[1].read_text().splitlines()[0])
    assert set(lm_line) - {"malt", *lm_line["metrics"]} <= set(line)
    assert set(line) >= LM_EVAL_SAMPLE_KEYS | HASHES
    assert line["prompt_hash"] == hash_string(line["arguments"]["gen_args_0"]["arg_0"])
    assert line["resps"] == [[line["samples"][0]["turns"]["refiner"]["text"]]] and line["filter"] == "none"
    assert list(line["samples"][0]["turns"]) == list(ROLES) and line["metrics"] == ["acc"] and "acc" in line
    doc = json.loads(_ours(tiny_run)[0].read_text())
    assert doc["task_hashes"]["malt_gsm8k"] == task_hash([json.loads(s) for s in _ours(tiny_run)[1].open()])


def test_lm_eval_loaders_and_make_table_read_our_files(tiny_run):
    from lm_eval.utils import (
        get_file_task_name,
        get_latest_filename,
        get_results_filenames,
        get_sample_results_filenames,
        make_table,
    )

    files = [str(p) for p in tiny_run.rglob("*") if p.is_file()]
    results = get_results_filenames(files)
    assert str(_ours(tiny_run)[0]) in results and str(_lm_evals(tiny_run)[0]) in results
    assert get_latest_filename([f for f in results if Path(f).parent == tiny_run]) == str(_ours(tiny_run)[0])
    samples = get_sample_results_filenames(files)
    assert str(_ours(tiny_run)[1]) in samples
    assert get_file_task_name(_ours(tiny_run)[1].name) == "malt_gsm8k"
    table = make_table(json.loads(Path(get_latest_filename(results)).read_text()))
    assert "malt_gsm8k" in table or GSM8K_COT_ZS in table
    ours = make_table(json.loads(_ours(tiny_run)[0].read_text()))
    row = next(ln for ln in ours.splitlines() if "malt_gsm8k" in ln)
    assert "|acc" in row.replace(" ", "") and "none" in row


def test_hashes_equal_lm_evals_own_for_the_same_question(shared_data, monkeypatch):
    """Our sample hashes are the ones lm-eval computes when it runs malt_gsm8k through the malt model."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from harness.lmeval.model import MaltLM
    from harness.tasks.prompts import tasks_dir

    monkeypatch.setenv("MALT_DATA_DIR", str(shared_data))
    engines = {r: RoleEngine(ScriptedBackend(lambda p, i: "Final Answer: 18")) for r in ROLES}
    spec = EvalSpec(agents="g,v,r", tasks="malt_gsm8k", limit=2, log_samples=True)
    res = run_eval(spec, engines=engines, progress=False)
    ours = res.tasks[0].samples
    assert all(res.doc[k] is None for k in TOKENIZER_KEYS | {"chat_template"})  # no tokenizer behind it: null
    lm = MaltLM(agents="g+v+r", engines=engines)
    tm = TaskManager(include_path=str(tasks_dir()))
    theirs = lm_eval.simple_evaluate(model=lm, tasks=["malt_gsm8k"], limit=2, log_samples=True, task_manager=tm)
    theirs = theirs["samples"]["malt_gsm8k"]
    for key in HASHES:
        assert [s[key] for s in ours] == [s[key] for s in theirs], key
    assert task_hash(ours) == task_hash(theirs)


@pytest.fixture(scope="module")
def cli_run(tiny_model_dir, shared_data, tmp_path_factory) -> Path:
    """``malt-eval lm-eval`` (lm-eval's own CLI) on the tiny model, document 1 picked with lm-eval's --samples."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("cli")
    tasks = write_local_tasks(root / "tasks", shared_data)
    out = root / "out"
    cmd = [sys.executable, "-m", "malt_apps.eval_cli", "lm-eval", "--model", "malt", "--include_path", str(tasks)]
    cmd += ["--model_args", f"model={tiny_model_dir},agents=g+v+r,dtype=float32", "--tasks", GSM8K_COT_ZS]
    cmd += ["--samples", json.dumps({GSM8K_COT_ZS: [1]}), "--output_path", str(out), "--log_samples"]
    cmd += ["--gen_kwargs", "max_gen_toks=6"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_lm_eval_cli_sample_lines_carry_every_roles_turn(cli_run, shared_data):
    from lm_eval.utils import get_results_filenames, get_sample_results_filenames, make_table

    files = [str(p) for p in cli_run.rglob("*") if p.is_file()]
    [results] = get_results_filenames(files)
    [samples] = get_sample_results_filenames(files)
    doc = json.loads(Path(results).read_text())
    assert "strict-match" in make_table(doc)  # lm-eval's own table still reads it
    assert doc["malt"]["agents"] == "g,v,r" and doc["malt"]["roles"] == list(ROLES)
    lines = [json.loads(s) for s in Path(samples).read_text().splitlines()]
    assert {ln["filter"] for ln in lines} == {"strict-match", "flexible-extract"}  # one line per filter, as lm-eval
    question = json.loads((shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[1])["question"]
    for line in lines:
        assert set(line) >= LM_EVAL_SAMPLE_KEYS | HASHES and line["doc_id"] == 1
        [pipeline] = line["malt"]["pipelines"]  # found by doc_hash: lm-eval's requests number the document 0
        turns = pipeline["turns"]
        assert list(turns) == list(ROLES) and question in turns["generator"]["messages"]
        assert line["resps"] == [[turns["refiner"]["text"]]]  # what lm-eval scored is the refiner's text
        assert all("issues" in t and isinstance(t["text"], str) for t in turns.values())


def _leaderboard(*args):
    from tests.conftest import run_cli

    return run_cli("malt_apps.leaderboard_cli", *args, timeout=300)


def test_leaderboard_reads_lm_eval_task_results(tiny_run, cli_run, tmp_path):
    r = _leaderboard("build", tiny_run, cli_run, "-o", tmp_path / "board")
    assert r.returncode == 0, r.stderr[-2000:]
    board = json.loads((tmp_path / "board" / "leaderboard.json").read_text())
    with (tmp_path / "board" / "leaderboard.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    header = (tmp_path / "board" / "leaderboard.md").read_text().splitlines()[2]
    for col in ("malt_gsm8k", f"{GSM8K_COT_ZS}:strict-match", f"{GSM8K_COT_ZS}:flexible-extract"):
        assert col in board["tasks"] and col in header  # a column per lm-eval task and filter, beside malt_gsm8k
        plot = tmp_path / "board" / f"accuracy_{col.replace(':', '-')}.png"  # no ':' in file names (Windows)
        assert plot.read_bytes().startswith(b"\x89PNG")
    lm_evals = json.loads(_lm_evals(tiny_run)[0].read_text())
    for filt in ("strict-match", "flexible-extract"):  # the cell holds lm-eval's own number for that filter
        [row] = [r for r in rows if r["task"] == f"{GSM8K_COT_ZS}:{filt}" and r["limit"] == "2"]
        assert float(row["acc"]) == lm_evals["results"][GSM8K_COT_ZS][f"exact_match,{filt}"] and row["n"] == "2"
        assert row["agents"] == "g,v,r" and float(row["calls_per_question"]) == 3.0  # from the lines' turns


def test_compare_and_turns_on_lm_eval_task_results(tiny_run, cli_run):
    [lm_eval_dir] = {p.parent for p in tiny_run.glob("*/results_*.json")}
    r = _leaderboard("compare", lm_eval_dir, cli_run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{GSM8K_COT_ZS}:strict-match: 1 common questions" in r.stdout  # document 1, in both
    for source in (cli_run, tiny_run):  # both paths graded every turn with the task's own filters and metric
        r = _leaderboard("turns", source)
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"{GSM8K_COT_ZS}:strict-match" in r.stdout and f"{GSM8K_COT_ZS}:flexible-extract" in r.stdout
    assert "malt_gsm8k" in r.stdout  # beside our task's row


def test_turn_grades_are_lm_evals_own_score_of_each_turn(shared_data, tmp_path):
    """Each role's text through the line's filter and the task's metric; the last role's grade is lm-eval's own."""
    from harness.lmeval.outputs import turn_grades
    from harness.lmeval.tasks import task_manager

    tasks = write_local_tasks(tmp_path / "tasks", shared_data)

    def responder(prompt, i):  # generator wrong (7), refiner right for row 0 (18) in both filters' formats
        if isinstance(prompt, str):
            return "The answer is 7."
        return "The answer is 18." if "Critique" in prompt[-1]["content"] else "The answer is 18, not 7."

    engines = {r: RoleEngine(ScriptedBackend(responder)) for r in ROLES}
    spec = EvalSpec(agents="g,v,r", tasks=GSM8K_COT_ZS, include_path=str(tasks), limit=2, log_samples=True)
    lines = run_eval(spec, engines=engines, progress=False).lm_eval["samples"][GSM8K_COT_ZS]
    task = task_manager(str(tasks)).load([GSM8K_COT_ZS])["tasks"][GSM8K_COT_ZS]
    for line in lines:
        grades = turn_grades(task, line)
        assert line["turn_grades"] == grades  # what malt-eval wrote
        assert grades["refiner"]["correct"] == bool(line["exact_match"])  # lm-eval's score of the final text
        assert grades["generator"]["answer"].startswith("7") and not grades["generator"]["correct"]
    assert [turn_grades(task, ln)["refiner"]["correct"] for ln in lines if ln["filter"] == "strict-match"] == [
        True,
        False,
    ]


def test_leaderboard_puts_an_lm_eval_hf_baseline_beside_the_system(tiny_run, tiny_model_dir, tmp_path):
    """A plain lm-eval run (its hf model, written by its EvaluationTracker) is a row too, and pairs with ours."""
    import lm_eval
    import lm_eval.models.huggingface  # noqa: F401 - registers lm-eval's "hf" model
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tasks = next(tiny_run.parent.glob("tasks"))
    tracker = EvaluationTracker(output_path=str(tmp_path / "hf"))
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(tiny_model_dir), "dtype": "float32", "device": "cpu"},
        tasks=[GSM8K_COT_ZS],
        task_manager=TaskManager(include_path=str(tasks)),
        limit=2,
        gen_kwargs={"max_gen_toks": 6},
        log_samples=True,
        evaluation_tracker=tracker,
    )
    samples = out.pop("samples")
    tracker.save_results_aggregated(results=out, samples=samples)
    tracker.save_results_samples(task_name=GSM8K_COT_ZS, samples=samples[GSM8K_COT_ZS])
    r = _leaderboard("build", tiny_run, tmp_path / "hf", "-o", tmp_path / "board")
    assert r.returncode == 0, r.stderr[-2000:]
    with (tmp_path / "board" / "leaderboard.csv").open() as fh:
        hf = [row for row in csv.DictReader(fh) if row["agents"] == "lm-eval hf"]
    assert {row["task"] for row in hf} == {f"{GSM8K_COT_ZS}:strict-match", f"{GSM8K_COT_ZS}:flexible-extract"}
    for row in hf:  # lm-eval's own numbers
        metric = f"exact_match,{row['task'].split(':')[1]}"
        assert float(row["acc"]) == out["results"][GSM8K_COT_ZS][metric] and row["n"] == "2"
    [lm_eval_dir] = {p.parent for p in tiny_run.glob("*/results_*.json")}
    r = _leaderboard("compare", tmp_path / "hf", lm_eval_dir)
    assert r.returncode == 0 and f"{GSM8K_COT_ZS}:strict-match: 2 common questions" in r.stdout, r.stderr[-2000:]
    r = _leaderboard("turns", tmp_path / "hf")  # lm-eval's lines without turns: said in one line
    assert r.returncode == 2 and "no per-turn grades" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_lm_eval_cli_rerun_from_its_cache_keeps_the_turns(tiny_model_dir, shared_data, tmp_path):
    """malt-eval lm-eval --use_cache: a rerun answered from lm-eval's cache still writes every role's turn."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    tasks = write_local_tasks(tmp_path / "tasks", shared_data)
    cmd = [sys.executable, "-m", "malt_apps.eval_cli", "lm-eval", "--model", "malt", "--include_path", str(tasks)]
    cmd += ["--model_args", f"model={tiny_model_dir},agents=g+r,dtype=float32", "--tasks", GSM8K_COT_ZS]
    cmd += ["--limit", "1", "--log_samples", "--gen_kwargs", "max_gen_toks=4", "--use_cache", str(tmp_path / "c")]
    lines = []
    for run in ("first", "again"):
        out = tmp_path / run
        env = dict(os.environ, PYTHONPATH=str(REPO))
        r = subprocess.run([*cmd, "--output_path", str(out)], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        [samples] = out.rglob("samples_*.jsonl")
        lines.append([json.loads(s) for s in samples.read_text().splitlines()])
    assert lines[0][0]["malt"]["pipelines"] and lines[1] == lines[0]  # the same turns, from the cache
    assert list(lines[1][0]["malt"]["pipelines"][0]["turns"]) == ["generator", "refiner"]
    assert "turn_grades" in lines[1][0]


def test_a_seeded_lm_eval_run_is_one_row_mean_and_std_over_its_seeds(shared_data, tmp_path):
    """--seeds 2 --subset 2 on an lm-eval task: lm-eval writes each seed's files under OUT/seed_<s>/, and OUT gets the
    across-seeds file: one leaderboard row, mean ± std over the seeds, each seed's accuracy beside it. A seed's
    folder given alone is a row of its own; a rerun leaves one across-seeds file."""
    from harness.lmeval.run import seeded_samples

    tasks = write_local_tasks(tmp_path / "tasks", shared_data)
    out = tmp_path / "out"
    spec = EvalSpec(
        agents="g",
        tasks=GSM8K_COT_ZS,
        include_path=str(tasks),
        seeds=2,
        subset=2,
        output_path=str(out),
        log_samples=True,
    )
    docs = [json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()]
    seed0 = seeded_samples(spec, [GSM8K_COT_ZS])[0][GSM8K_COT_ZS]
    gold = {docs[i]["question"]: docs[i]["answer"].split("####")[-1].strip() for i in seed0}

    def answer(messages, i):  # right on seed 0's questions only: 100% and 0%
        text = messages if isinstance(messages, str) else " ".join(m["content"] for m in messages)
        return f"The answer is {next((g for q, g in gold.items() if q in text), '-1')}."

    engines = {r: RoleEngine(ScriptedBackend(answer)) for r in ROLES}
    res = run_eval(spec, engines=engines, progress=False)
    (combined,) = out.glob("results_*.json")
    doc = json.loads(combined.read_text())
    key = "exact_match,flexible-extract"
    seeds = [s[key] for s in doc["malt"]["per_seed"][GSM8K_COT_ZS]]
    assert seeds == [1.0, 0.0]
    assert doc["results"][GSM8K_COT_ZS][key] == 0.5 == res.lm_eval["results"][GSM8K_COT_ZS][key]

    r = _leaderboard("build", out, "-o", tmp_path / "board")
    assert r.returncode == 0, r.stderr[-2000:]
    with (tmp_path / "board" / "leaderboard.csv").open() as fh:
        rows = [row for row in csv.DictReader(fh) if row["task"] == f"{GSM8K_COT_ZS}:flexible-extract"]
    (row,) = rows
    assert "(seed" not in row["system"] and row["seeds"] == "2" and row["n"] == "2" and row["spread_kind"] == "std"
    assert json.loads(row["per_seed_acc"]) == pytest.approx(seeds)

    (lines,) = out.glob(f"samples_{GSM8K_COT_ZS}_*.jsonl")  # every seed's lines: compare and turns read them
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert sorted({(row["seed"], row["doc_id"]) for row in rows}) == sorted(
        (s, i) for s, ids in enumerate(doc["malt"]["doc_ids"]) for i in ids[GSM8K_COT_ZS]
    )
    r = _leaderboard("turns", out)
    assert r.returncode == 0, r.stderr[-2000:]
    (line,) = [ln for ln in r.stdout.splitlines() if f"{GSM8K_COT_ZS}:flexible-extract" in ln]
    assert [c.strip() for c in line.split("|")][3:5] == ["4", "50.0"]  # both seeds' questions, after G

    r = _leaderboard("build", out / "seed_1", "-o", tmp_path / "board1")
    assert r.returncode == 0, r.stderr[-2000:]
    with (tmp_path / "board1" / "leaderboard.csv").open() as fh:
        rows = [row for row in csv.DictReader(fh) if row["task"] == f"{GSM8K_COT_ZS}:flexible-extract"]
    assert [row["system"].split("(seed ")[1] for row in rows] == ["1 of 2)"]

    run_eval(spec, engines=engines, progress=False)  # rerun: finished, one across-seeds file again
    assert len(list(out.glob("results_*.json"))) == 1 and len(list(out.glob("samples_*.jsonl"))) == 1
