"""Any lm-eval generate_until task through the solver: stock task definitions on local rows, lm-eval's own
filters and metrics, votes through lm-eval's repeats, early refusals, lm-eval's CLI, consistency with hf."""

import json
import os
import subprocess
import sys

import pytest

from harness.api import run_eval
from harness.core.errors import MaltError
from harness.core.roles import ROLES
from harness.inference.backends.base import SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.lmeval.run import voted_filters
from harness.lmeval.solver import Request, generic_prompts, request_params, solve
from harness.solver.plans import SolverPlan, agents_plan
from harness.solver.steps import SolveContext, chain, generator, parse_agents, refiner
from harness.spec import EvalSpec
from tests.conftest import REPO
from tests.lm_eval_local import BBH_BOOL, GSM8K_5SHOT, GSM8K_COT_ZS, TASKS, write_local_tasks

LM_EVAL_SAMPLE_KEYS = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics"}
HASHES = {"doc_hash", "prompt_hash", "target_hash"}


@pytest.fixture
def local_tasks(tmp_path, small_data):
    return write_local_tasks(tmp_path / "lm_eval_tasks", small_data)


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


def responder(prompt, i):
    """Generator (a finished lm-eval context): wrong; refiner: right for GSM8K row 0 (18) and 'True' for BBH."""
    if isinstance(prompt, str):
        return "Some steps. The answer is 7.\nQ: a next question the stop string cuts off"
    if "Critique" in prompt[-1]["content"]:
        return "Fixed steps. The answer is 18. #### 18\nSo the answer is True."
    return "The initial answer is wrong."


def _engines(be):
    return {r: RoleEngine(be) for r in ROLES}


@pytest.mark.parametrize("agents", ["g", "g,v,r"])
def test_stock_tasks_scored_by_their_own_filters(agents, local_tasks, tmp_path):
    be = ScriptedBackend(responder)
    spec = EvalSpec(
        agents=agents,
        tasks=",".join(TASKS),
        include_path=str(local_tasks),
        limit=2,
        log_samples=True,
        output_path=str(tmp_path / "out"),
    )
    res = run_eval(spec, engines=_engines(be), progress=False)
    doc = res.lm_eval
    for task in TASKS:  # every filter of each task is scored
        assert {"exact_match,strict-match", "exact_match,flexible-extract"} <= set(doc["results"][task])
    full = agents == "g,v,r"
    assert doc["results"][GSM8K_COT_ZS]["exact_match,strict-match"] == (0.5 if full else 0.0)
    assert doc["results"][GSM8K_5SHOT]["exact_match,strict-match"] == (0.5 if full else 0.0)  # wants "#### 18"
    assert doc["results"][BBH_BOOL]["exact_match,flexible-extract"] == (0.5 if full else 0.0)  # rows: False, True
    sample = doc["samples"][GSM8K_5SHOT][0]
    assert set(sample) >= LM_EVAL_SAMPLE_KEYS | HASHES
    context = sample["arguments"]["gen_args_0"]["arg_0"]
    assert context.count("Question:") == 6  # lm-eval's own 5-shot context
    turns = sample["malt"]["pipelines"][0]["turns"]
    assert list(turns) == list(parse_agents(agents))
    assert turns["generator"]["messages"] == context  # the generator answers lm-eval's context as it is
    assert "Q: a next question" in turns["generator"]["text"]  # this task's `until` is "Question:"
    cot_turns = doc["samples"][GSM8K_COT_ZS][0]["malt"]["pipelines"][0]["turns"]
    assert cot_turns["generator"]["text"] == "Some steps. The answer is 7.\n"  # cut at that task's `until` "Q:"
    if full:
        assert context.strip() in turns["refiner"]["messages"][-1]["content"]  # the task's question, quoted
        assert "format the task expects" in turns["refiner"]["messages"][-1]["content"]
    # lm-eval's own files: results with its keys, sample lines with its fields plus every role's turn
    [results_file] = (tmp_path / "out").rglob("results_*.json")
    written = json.loads(results_file.read_text())
    assert {"n-shot", "task_hashes", "model_name", "lm_eval_version", "git_hash", "configs", "versions"} <= set(written)
    assert written["model_name"] == "qwen2.5-coder-0.5b"  # the spec's model (the default), not a random id
    assert results_file.parent.name == "qwen2.5-coder-0.5b" and written["config"]["model_args"]["agents"] == agents
    assert written["configs"][GSM8K_5SHOT]["num_fewshot"] == 5
    [samples_file] = (tmp_path / "out").rglob(f"samples_{GSM8K_COT_ZS}_*.jsonl")
    line = json.loads(samples_file.read_text().splitlines()[0])
    assert set(line) >= LM_EVAL_SAMPLE_KEYS | HASHES and "turns" in line["malt"]["pipelines"][0]


def test_votes_through_lm_eval_repeats_and_majority_vote(local_tasks):
    votes = {0: "The answer is 18.", 1: "The answer is 7.", 2: "The answer is 18."}
    be = ScriptedBackend(lambda p, i: votes[i])
    spec = EvalSpec(agents="g", votes=3, tasks=GSM8K_COT_ZS, include_path=str(local_tasks), limit=2, log_samples=True)
    doc = run_eval(spec, engines=_engines(be), progress=False).lm_eval
    assert doc["results"][GSM8K_COT_ZS]["exact_match,strict-match"] == 0.5  # 18 wins 2:1 on row 0
    sample = doc["samples"][GSM8K_COT_ZS][0]
    assert sample["resps"] == [[votes[0], votes[1], votes[2]]] and sample["filtered_resps"] == ["18"]
    assert len(sample["malt"]["pipelines"]) == 3
    assert [c[0] for c in be.calls] == [2] and be.calls[0][1].n == 3  # one call: 2 prompts x 3 samples
    assert be.calls[0][1].temperature == EvalSpec.temperature  # votes sample at --temperature
    tie = ScriptedBackend(lambda p, i: f"The answer is {[7, 18, 9][i]}.")
    doc = run_eval(spec, engines=_engines(tie), progress=False).lm_eval
    assert doc["samples"][GSM8K_COT_ZS][0]["filtered_resps"] == ["7"]  # a tie: the earliest pipeline's answer


def test_voted_filters_insert_majority_vote():
    cfg = {"filter_list": [{"name": "strict", "filter": [{"function": "regex"}, {"function": "take_first"}]}]}
    assert [s["function"] for s in voted_filters(cfg)[0]["filter"]] == ["regex", "majority_vote", "take_first"]
    assert [s["function"] for s in voted_filters({})[0]["filter"]] == ["majority_vote", "take_first"]


def test_request_settings_honoured_unless_our_flags_say_otherwise():
    kw = {"until": ["."], "max_gen_toks": 8, "do_sample": False}
    p = request_params(kw, ROLES, dict.fromkeys(ROLES), None)
    assert p["generator"] == SamplingParams(8, 0.0, 1.0, 1, None, (".",)) and p["refiner"].stop == (".",)
    p = request_params({"do_sample": True, "temperature": 0.7}, ROLES, {"refiner": 99}, None)
    assert (
        p["generator"].temperature == 0.7 and p["generator"].max_new_tokens == 256 and p["refiner"].max_new_tokens == 99
    )
    assert request_params(kw, ROLES, dict.fromkeys(ROLES), 0.3)["generator"].temperature == 0.3  # ours wins


def test_gen_kwargs_and_num_fewshot_reach_the_requests(local_tasks):
    be = ScriptedBackend(lambda p, i: "one. two. three." if isinstance(p, str) else "x")
    spec = EvalSpec(
        agents="g",
        tasks=GSM8K_5SHOT,
        include_path=str(local_tasks),
        limit=1,
        log_samples=True,
        num_fewshot=2,
        gen_kwargs='max_gen_toks=8,until=["."]',
        system_instruction="Réponds en français.",
    )
    doc = run_eval(spec, engines=_engines(be), progress=False).lm_eval
    sample = doc["samples"][GSM8K_5SHOT][0]
    assert sample["resps"] == [["one"]]  # cut at the first "."
    assert be.calls[0][1].max_new_tokens == 8 and be.calls[0][1].stop == (".",)
    context = sample["arguments"][0][0]  # as simple_evaluate returns it (the tracker rewrites it when writing)
    assert context.startswith("Réponds en français.") and context.count("Question:") == 3
    assert doc["n-shot"][GSM8K_5SHOT] == 2


def test_generic_prompts_overridable_per_task_or_group(tmp_path):
    assert "format the task expects" in generic_prompts("anything").templates["refiner"]["user"]
    over = tmp_path / "p.yaml"
    over.write_text(
        "tasks:\n  bbh_cot:\n    refiner: {user: 'group {{ question }}'}\n"
        "  bbh_cot_x:\n    verifier: {user: 'own {{ doc.input }}'}\n"
    )
    p = generic_prompts("bbh_cot_x", over)
    assert p.messages("refiner", question="Q", solution="", critique="")[-1]["content"] == "group Q"
    assert p.messages("verifier", question="Q", solution="", doc={"input": "I"}) == [
        {"role": "user", "content": "own I"}
    ]
    assert "format" in generic_prompts("other", over).templates["refiner"]["user"]  # no entry: ours
    over.write_text("refiner: {user: '{{ broken'}\n")
    with pytest.raises(MaltError, match="template error"):
        generic_prompts("x", over)


def _solve_on_lm_eval_requests(plan: SolverPlan) -> tuple[list, ScriptedBackend]:
    be = ScriptedBackend(lambda prompt, i: "The answer is 4.")
    ctx = SolveContext(
        {"t": generic_prompts("t")}, {r: RoleEngine(be) for r in ROLES}, dict.fromkeys(ROLES, SamplingParams(8))
    )
    requests = [Request("t", i, {"q": i}, f"Question: {i}?", {}) for i in range(3)]
    return solve(requests, [r.context for r in requests], ctx, plan), be


def test_lm_eval_path_runs_the_plans_steps_in_the_plans_order():
    """The lm-eval path runs what the plan builds (no step table of its own): the roles' order, a step of the plan's."""
    states, be = _solve_on_lm_eval_requests(agents_plan("g,v,r"))
    assert [list(s.turns) for s in states] == [list(ROLES)] * 3
    assert len(be.calls) == 3  # one batched call per role

    def mark(states, ctx):
        for s in states:
            s.turns["generator"].text += " (marked)"
        return states

    marked = SolverPlan("g,mark,r", ("generator", "refiner"), lambda: chain(generator(), mark, refiner()))
    states, _ = _solve_on_lm_eval_requests(marked)
    assert list(states[0].turns) == ["generator", "refiner"]
    assert "The answer is 4. (marked)" in states[0].turns["refiner"].messages[-1]["content"]
    with pytest.raises(MaltError, match="generator-first agent list, got r$"):
        _solve_on_lm_eval_requests(SolverPlan("r", ("refiner",), lambda: chain(refiner())))


def test_model_args_checked_and_agent_lists_without_commas():
    from harness.lmeval.model import MaltLM

    with pytest.raises(MaltError, match="unknown option.s. in model_args: generator_adaptor"):
        MaltLM(model="x", generator_adaptor="a")
    assert MaltLM(model="x", agents="g+v+r").plan.roles == ROLES
    assert MaltLM(model="x", agents="gr").plan.roles == ("generator", "refiner")
    assert MaltLM(model="x", batch_size="auto").batch_size == EvalSpec.batch_size
    assert MaltLM(model="x", batch_size="auto:4", device="cuda:0", dtype="float32").spec.dtype == "float32"


def test_name_never_remapped_and_checks_before_loading(local_tasks):
    spec = EvalSpec(tasks="gsm8k,malt_gsm8k, csqa")
    assert spec.all_task_names() == ["gsm8k", "malt_gsm8k", "csqa"] and spec.task_names() == ["malt_gsm8k"]
    with pytest.raises(MaltError, match="'hellaswag' is multiple_choice.*generate_until"):
        EvalSpec(tasks="hellaswag").check()
    with pytest.raises(MaltError, match="close names: gsm8k_cot_zeroshot"):
        EvalSpec(tasks="gsm8k_cot_zeroshott").check()
    assert EvalSpec(tasks=GSM8K_COT_ZS, include_path=str(local_tasks)).check()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "arc_easy"], "task 'arc_easy' is multiple_choice"),
        (["lm-eval", "--model", "malt", "--model_args", "model=M", "--tasks", "mmlu"], "is multiple_choice"),
        (["lm-eval", "--model", "malt", "--model_args", "model=M,agents=g,v,r", "--tasks", "gsm8k"], "agents=g+v+r"),
        (
            ["lm-eval", "--model", "malt", "--model_args", "model=M,dtype=float32,devise=cpu"],
            "unknown option(s) in model_args: devise",
        ),
        (["--tasks", "gsm8k_cot_zeroshott"], "close names: gsm8k_cot_zeroshot"),
        (["--tasks", "humaneval"], "task 'humaneval' runs the model's code: pass --confirm-run-unsafe-code"),
        (["lm-eval", "--model", "malt", "--model_args", "model=M", "--tasks", "mbpp"], "--confirm_run_unsafe_code"),
    ],
)
def test_refusals_are_one_line_before_any_model(args, message, tmp_path):
    args = [a.replace("model=M", f"model={tmp_path / 'no-model'}") for a in args]
    if args[0] != "lm-eval":
        args += ["--model", str(tmp_path / "no-model")]
    r = subprocess.run(
        [sys.executable, "-m", "malt_apps.eval_cli", *args], capture_output=True, text=True, env=_env(), timeout=300
    )
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln.lower() or "Traceback" in ln]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], r.stderr[-2000:]


def test_malt_eval_lm_eval_cli_on_tiny_model(local_tasks, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "malt_apps.eval_cli", "lm-eval", "--model", "malt"]
    cmd += ["--model_args", f"model={tiny_model_dir},agents=g+r,dtype=float32", "--include_path", str(local_tasks)]
    cmd += ["--tasks", GSM8K_COT_ZS, "--limit", "1", "--output_path", str(out), "--log_samples"]
    cmd += ["--gen_kwargs", "max_gen_toks=6", "--batch_size", "auto"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "strict-match" in r.stdout and "flexible-extract" in r.stdout
    [results_file] = out.rglob("results_*.json")
    doc = json.loads(results_file.read_text())
    assert doc["config"]["model"] == "malt" and doc["n-samples"][GSM8K_COT_ZS]["effective"] == 1
    [samples_file] = out.rglob("samples_*.jsonl")
    assert set(json.loads(samples_file.read_text().splitlines()[0])) >= LM_EVAL_SAMPLE_KEYS | HASHES


def test_agents_g_greedy_gives_lm_eval_hf_texts(local_tasks, tiny_model_dir):
    """--agents g at temperature 0 answers exactly what lm-eval's own hf model answers (batch size 1, fp32)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from harness.lmeval.model import MaltLM
    from harness.lmeval.tasks import task_manager

    tm = task_manager(str(local_tasks))
    common = dict(tasks=[GSM8K_COT_ZS], task_manager=tm, limit=2, log_samples=True, gen_kwargs="max_gen_toks=12")
    texts = {}
    for name, lm in (
        ("hf", HFLM(pretrained=str(tiny_model_dir), batch_size=1, dtype="float32", device="cpu")),
        ("malt", MaltLM(model=str(tiny_model_dir), agents="g", temperature=0, batch_size=1, dtype="float32")),
    ):
        out = lm_eval.simple_evaluate(model=lm, **common)
        texts[name] = [s["resps"] for s in out["samples"][GSM8K_COT_ZS]]
    assert texts["malt"] == texts["hf"] and any(t[0][0] for t in texts["hf"])


def test_chat_template_hooks(tiny_model_dir):
    from harness.lmeval.model import MaltLM

    lm = MaltLM(model=str(tiny_model_dir), agents="g")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: 1+1?"}]
    text = lm.apply_chat_template(chat)
    assert "Be brief." in text and "Q: 1+1?" in text and text != "Be brief.\n\nQ: 1+1?"
    assert lm.tokenizer_name and isinstance(lm.chat_template(True), str)


def test_collecting_model_hands_over_what_lm_eval_builds_and_restores_the_registry():
    from lm_eval.api.registry import get_model

    from harness.lmeval.compat import collecting_model
    from harness.lmeval.model import MaltLM

    built: list = []
    with pytest.raises(RuntimeError), collecting_model("malt", MaltLM, built.append):
        cls = get_model("malt")
        lm = cls.create_from_arg_obj({"model": "m", "agents": "g+r"})
        assert isinstance(lm, MaltLM) and built == [lm] and lm.plan.roles == ("generator", "refiner")
        raise RuntimeError  # the registry is restored however the block ends
    assert get_model("malt") is MaltLM
    MaltLM(model="m")  # built outside the block: collected by no one
    assert len(built) == 1


def test_two_lm_eval_cli_runs_in_one_process_each_add_their_own_models_turns(
    local_tasks, tiny_model_dir, tmp_path, monkeypatch
):
    from lm_eval.api.registry import get_model

    from harness.lmeval.model import MaltLM
    from malt_apps.lm_eval_cli import main

    monkeypatch.setattr(sys, "argv", list(sys.argv))
    roles = {}
    for agents in ("g+r", "g+v"):
        out = tmp_path / agents
        args = ["--model", "malt", "--model_args", f"model={tiny_model_dir},agents={agents},dtype=float32"]
        args += ["--include_path", str(local_tasks), "--tasks", GSM8K_COT_ZS, "--limit", "1"]
        main([*args, "--output_path", str(out), "--log_samples", "--gen_kwargs", "max_gen_toks=4"])
        [samples] = out.rglob("samples_*.jsonl")
        line = json.loads(samples.read_text().splitlines()[0])
        roles[agents] = [list(p["turns"]) for p in line["malt"]["pipelines"]]
    assert roles == {"g+r": [["generator", "refiner"]], "g+v": [["generator", "verifier"]]}
    assert get_model("malt") is MaltLM
