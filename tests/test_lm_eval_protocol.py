"""How lm-eval tasks are evaluated through the solver: seeded subsets (lm-eval's ``samples``), resumable runs
(lm-eval's request cache), each role's stop strings, votes on every stock task definition."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from harness.api import run_eval
from harness.core.roles import ROLES
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.solver.steps import parse_agents
from harness.spec import EvalSpec
from tests.conftest import REPO
from tests.lm_eval_local import BBH_BOOL, GSM8K_5SHOT, GSM8K_COT_ZS, TASKS, write_local_tasks


@pytest.fixture
def local_tasks(tmp_path, small_data):
    return write_local_tasks(tmp_path / "lm_eval_tasks", small_data)


def _engines(be):
    return {r: RoleEngine(be) for r in ROLES}


def _answer_18(prompt, i):
    return "The answer is 18. #### 18"


def test_seeded_subset_picks_the_same_questions_as_our_tasks(local_tasks, small_data, tmp_path):
    """--seeds 2 --subset 3 on malt_gsm8k and on a stock gsm8k task over the same test file: the same documents
    per seed, one lm-eval evaluation (and output folder) per seed, mean and spread over the seeds."""
    be = ScriptedBackend(_answer_18)
    out = tmp_path / "out"
    spec = EvalSpec(
        agents="g",
        tasks=f"malt_gsm8k,{GSM8K_COT_ZS}",
        include_path=str(local_tasks),
        data_dir=str(small_data),  # malt_gsm8k's rows: the file the local task reads
        seeds=2,
        subset=3,
        log_samples=True,
        output_path=str(out),
    )
    res = run_eval(spec, engines=_engines(be), progress=False)
    ours = {s: sorted(r["doc_id"] for r in res.tasks[0].samples if r["seed"] == s) for s in (0, 1)}
    lm_rows = res.lm_eval["samples"][GSM8K_COT_ZS]
    theirs = {
        s: sorted(r["doc_id"] for r in lm_rows if r["seed"] == s and r["filter"] == "strict-match") for s in (0, 1)
    }
    assert theirs == ours and len(ours[0]) == 3 and ours[0] != ours[1]
    # the solver's turns are attached to lm-eval's true doc_id (its requests number the picked documents 0..2)
    for row in lm_rows:
        assert row["malt"]["pipelines"][0]["doc_id"] == row["doc_id"]
        assert row["doc"]["question"] in row["malt"]["pipelines"][0]["turns"]["generator"]["messages"]
    # one lm-eval output folder per seed, each recording the documents it drew
    for s in (0, 1):
        [written] = (out / f"seed_{s}").rglob("results_*.json")
        doc = json.loads(written.read_text())
        assert doc["malt"]["doc_ids"] == {GSM8K_COT_ZS: ours[s]} and doc["n-samples"][GSM8K_COT_ZS]["effective"] == 3
    # across seeds: the mean, the spread over seeds, each seed's own results (row 0's answer is 18)
    strict = [r["exact_match,strict-match"] for r in res.lm_eval["malt"]["per_seed"][GSM8K_COT_ZS]]
    assert strict == [ours[s].count(0) / 3 for s in (0, 1)]
    row = res.lm_eval["results"][GSM8K_COT_ZS]
    assert row["exact_match,strict-match"] == pytest.approx(sum(strict) / 2)
    assert "exact_match_std,strict-match" in row and "exact_match_stderr,strict-match" not in row
    assert res.lm_eval["malt"]["doc_ids"] == [{GSM8K_COT_ZS: ours[s]} for s in (0, 1)]
    assert "seed" not in res.lm_eval["malt"] and res.lm_eval["malt"]["seeds"] == 2


def test_one_seed_writes_lm_eval_layout_in_the_output_folder(local_tasks, tmp_path):
    spec = EvalSpec(
        agents="g", tasks=GSM8K_COT_ZS, include_path=str(local_tasks), subset=2, output_path=str(tmp_path / "o")
    )
    doc = run_eval(spec, engines=_engines(ScriptedBackend(_answer_18)), progress=False).lm_eval
    [written] = (tmp_path / "o").glob("*/results_*.json")  # OUT/<model>/results_*.json, no seed_ folder
    assert json.loads(written.read_text())["malt"]["doc_ids"] == doc["malt"]["doc_ids"]
    assert (
        doc["n-samples"][GSM8K_COT_ZS]["effective"] == 2
        and "exact_match_stderr,strict-match" in doc["results"][GSM8K_COT_ZS]
    )


def test_limit_and_subset_together_is_one_line_exit_2(tmp_path):
    cmd = [sys.executable, "-m", "malt_apps.eval_cli", "--tasks", "gsm8k_cot_zeroshot", "--limit", "2", "--subset", "3"]
    cmd += ["--model", str(tmp_path / "no-model")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--subset or --limit" in lines[0], r.stderr[-2000:]


def _by_question(prompt, i):
    """Generator: 18 on Janet's question (row 0), else 3; verifier and refiner: one line each."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    if isinstance(prompt, str):
        return "The answer is 18." if "Janet" in text else "The answer is 3."
    return (
        "Looks right." if "Critique" not in text else ("The answer is 18." if "Janet" in text else "The answer is 2.")
    )


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_from_lm_eval_request_cache(local_tasks, tmp_path):
    """A run killed after its first batch keeps that batch in lm-eval's request cache (OUT/lm_eval_cache); the
    rerun asks the backend only for the other requests and ends with an uninterrupted run's results."""

    def spec(out):
        return EvalSpec(
            agents="g,v,r",
            tasks=GSM8K_COT_ZS,
            include_path=str(local_tasks),
            limit=3,
            batch_size=1,
            log_samples=True,
            output_path=str(out),
        )

    calls = []

    def dies_after_first_batch(prompt, i):
        calls.append(prompt)
        if len(calls) > 3:  # the first batch's three roles ran
            raise Interrupted
        return _by_question(prompt, i)

    with pytest.raises(Interrupted):
        run_eval(spec(tmp_path / "out"), engines=_engines(ScriptedBackend(dies_after_first_batch)), progress=False)
    [record] = (tmp_path / "out" / "lm_eval_cache").glob("*.json")
    assert json.loads(record.read_text())["plan"]["agents"] == "g,v,r"  # the run's provenance but git
    resumed_be = ScriptedBackend(_by_question)
    resumed = run_eval(spec(tmp_path / "out"), engines=_engines(resumed_be), progress=False).lm_eval
    assert sum(n for n, _, _ in resumed_be.calls) == 2 * 3  # two requests left, three roles each
    whole = run_eval(spec(tmp_path / "whole"), engines=_engines(ScriptedBackend(_by_question)), progress=False).lm_eval
    assert resumed["results"] == whole["results"]
    assert resumed["results"][GSM8K_COT_ZS]["exact_match,strict-match"] == pytest.approx(1 / 3)
    for a, b in zip(resumed["samples"][GSM8K_COT_ZS], whole["samples"][GSM8K_COT_ZS], strict=True):
        assert a["resps"] == b["resps"]
        assert a["malt"]["pipelines"] == b["malt"]["pipelines"]  # the cached request's turns too
    again_be = ScriptedBackend(_by_question)  # a finished run: everything from the cache
    run_eval(spec(tmp_path / "out"), engines=_engines(again_be), progress=False)
    assert again_be.calls == []
    other = ScriptedBackend(_by_question)  # another system in the same folder: its own cache
    run_eval(replace(spec(tmp_path / "out"), agents="g"), engines=_engines(other), progress=False)
    assert (
        sum(n for n, _, _ in other.calls) == 3 and len(list((tmp_path / "out" / "lm_eval_cache").glob("*.json"))) == 2
    )


def test_lm_eval_use_cache_with_the_malt_model(local_tasks, tmp_path):
    """lm-eval's own use_cache (its CLI's --use_cache) serves the malt model's finished requests."""
    import lm_eval

    from harness.lmeval.model import MaltLM
    from harness.lmeval.tasks import task_manager

    runs = []
    for _ in range(2):
        be = ScriptedBackend(_by_question)
        lm = MaltLM(model="x", agents="g+r", engines=_engines(be))
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=[GSM8K_COT_ZS],
            task_manager=task_manager(str(local_tasks)),
            limit=2,
            use_cache=str(tmp_path / "cache"),
        )
        runs.append((out["results"], sum(n for n, _, _ in be.calls)))
    assert runs[0][1] == 2 * 2 and runs[1][1] == 0 and runs[0][0] == runs[1][0]


def test_each_role_gets_the_documented_stop_strings(local_tasks):
    """until ["Q:", "\\n\\n", "."]: the generator and the refiner stop at all of it (the refiner's text is scored
    in the task's format), the verifier at the marker "Q:" only; --max-new-tokens for one role beats
    max_gen_toks, the other roles keep the request's."""
    (local_tasks / "gsm8k_stops.yaml").write_text(
        f"include: {local_tasks / (GSM8K_COT_ZS + '.yaml')}\ntask: gsm8k_stops\n"
        'generation_kwargs:\n  until: ["Q:", "\\n\\n", "."]\n  do_sample: false\n  max_gen_toks: 50\n'
    )
    replies = {
        "generator": "Steps. The answer is 7.",
        "verifier": "Wrong: 16 - 3 - 4 = 9.\n\nSo 9 x 2 = 18.\nQ: next",
        "refiner": "The answer is 18\n\nQ: next",
    }

    def reply(prompt, i):
        if isinstance(prompt, str):
            return replies["generator"]
        return replies["refiner" if "Critique" in prompt[-1]["content"] else "verifier"]

    be = ScriptedBackend(reply)
    spec = EvalSpec(
        agents="g,v,r",
        tasks="gsm8k_stops",
        include_path=str(local_tasks),
        limit=1,
        log_samples=True,
        max_new_tokens="verifier=77",
    )
    doc = run_eval(spec, engines=_engines(be), progress=False).lm_eval
    stops = {role: params.stop for (_, params, _), role in zip(be.calls, ROLES, strict=True)}
    assert stops == {"generator": ("Q:", "\n\n", "."), "verifier": ("Q:",), "refiner": ("Q:", "\n\n", ".")}
    assert [p.max_new_tokens for _, p, _ in be.calls] == [50, 77, 50]
    turns = doc["samples"]["gsm8k_stops"][0]["malt"]["pipelines"][0]["turns"]
    assert turns["generator"]["text"] == "Steps"
    assert turns["verifier"]["text"] == "Wrong: 16 - 3 - 4 = 9.\n\nSo 9 x 2 = 18.\n"  # a whole critique
    assert turns["refiner"]["text"] == "The answer is 18" and doc["samples"]["gsm8k_stops"][0]["resps"] == [
        ["The answer is 18"]
    ]


@pytest.mark.parametrize("agents", ["g", "g,v,r"])
def test_votes_on_every_stock_task_definition(agents, local_tasks):
    """--votes 3 on the three stock definitions (gsm8k-cot-zeroshot, 5-shot gsm8k, BBH boolean_expressions):
    three pipelines per document, each task's own filters with lm-eval's majority vote, its own metric keys."""
    right, wrong = (
        "The answer is 18. #### 18\nSo the answer is True.",
        "The answer is 7. #### 7\nSo the answer is False.",
    )
    scored = "refiner" if agents == "g,v,r" else "generator"

    def reply(prompt, i):
        role = "generator" if isinstance(prompt, str) else "refiner" if "Critique" in prompt[-1]["content"] else "v"
        if role != scored:
            return wrong if role == "generator" else "A critique."
        return wrong if i == 1 else right  # votes 0 and 2 agree

    spec = EvalSpec(agents=agents, votes=3, tasks=",".join(TASKS), include_path=str(local_tasks), limit=2)
    doc = run_eval(replace(spec, log_samples=True), engines=_engines(ScriptedBackend(reply)), progress=False).lm_eval
    for task in TASKS:
        row = doc["results"][task]
        assert {"exact_match,strict-match", "exact_match,flexible-extract"} <= set(row)
        assert doc["configs"][task]["repeats"] == 3
        for sample in doc["samples"][task]:
            assert len(sample["resps"][0]) == 3 and len(sample["malt"]["pipelines"]) == 3
            assert all(list(p["turns"]) == list(parse_agents(agents)) for p in sample["malt"]["pipelines"])
    # GSM8K row 0's answer is 18 and row 1's is not; BBH's rows are False, True: 2 of 3 votes say 18 / True
    assert doc["results"][GSM8K_COT_ZS]["exact_match,strict-match"] == 0.5
    assert doc["results"][GSM8K_5SHOT]["exact_match,strict-match"] == 0.5
    assert doc["results"][BBH_BOOL]["exact_match,flexible-extract"] == 0.5
    assert doc["samples"][GSM8K_5SHOT][0]["filtered_resps"] == ["18"]


def test_plain_lm_eval_cli_has_no_malt_model():
    """lm-eval 0.4.13 loads no plugin models (README: why `malt-eval lm-eval`); if a later lm-eval does, this fails
    and the README's reasoning needs revisiting."""
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "malt", "--tasks", "gsm8k_cot_zeroshot", "--limit", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode != 0 and "no model for this name found" in r.stderr, r.stderr[-2000:]


def test_gen_kwargs_as_json_for_lists_with_commas():
    from harness.core.errors import MaltError
    from harness.lmeval.run import gen_kwargs

    assert gen_kwargs('{"until": ["Q:", "\\n\\n"], "max_gen_toks": 64}') == {
        "until": ["Q:", "\n\n"],
        "max_gen_toks": 64,
    }
    assert gen_kwargs('max_gen_toks=8,until=["."]') == {"max_gen_toks": 8, "until": ["."]}
    with pytest.raises(MaltError, match="not a JSON object"):
        gen_kwargs('{"until": ["Q:",}')


def test_finished_mixed_run_reruns_without_loading_a_model(
    local_tasks, small_data, tiny_model_dir, tmp_path, monkeypatch
):
    """malt_gsm8k next to an lm-eval task on the tiny model: a rerun of the finished run reads both from the
    output folder (our checkpoint, lm-eval's request cache) and loads no model."""
    loads = []
    real = EvalSpec.load_engines

    def counting(self, *args, **kwargs):
        loads.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(EvalSpec, "load_engines", counting)
    spec = EvalSpec(
        model=str(tiny_model_dir),
        dtype="float32",
        agents="g",
        tasks=f"malt_gsm8k,{GSM8K_COT_ZS}",
        include_path=str(local_tasks),
        data_dir=str(small_data),
        subset=2,
        temperature=0,
        max_new_tokens=4,
        output_path=str(tmp_path / "out"),
    )
    first = run_eval(spec, progress=False)
    assert len(loads) == 1  # one load shared by both kinds of task
    again = run_eval(spec, progress=False)
    assert len(loads) == 1 and again.lm_eval["results"] == first.lm_eval["results"]
    assert again.doc["results"] == first.doc["results"]
