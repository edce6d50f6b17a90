"""``malt-eval suite`` (rows, labels, adapters, reuse, one model load) and the debate steps."""

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.inference.backends import register_backend
from harness.inference.backends.base import SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.run.evaluate import run_task
from harness.solver.debate import debate
from harness.solver.protocol import EvalConfig
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext
from harness.tasks.prompts import load_prompts
from malt_apps.suite import suite
from tests.conftest import malt_eval
from tests.lm_eval_local import GSM8K_COT_ZS, write_local_tasks

DOCS = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(4)]
ROLES = ("generator", "verifier", "refiner")
FAST = ["--tasks", "malt_gsm8k", "--limit", 2, "--max-new-tokens", 4, "--seeds", 1, "--batch-size", 8]


def debater(messages, i):
    """Round 1: agent i answers 10 + i. Later rounds: agree on the smallest answer seen."""
    user = messages[-1]["content"]
    if "Your previous solution" not in user:
        return f"Agent work. Final Answer: {10 + i}"
    seen = [int(x) for x in re.findall(r"Final Answer: (\d+)", user)]
    return f"Updated. Final Answer: {min(seen)}"


def debate_ctx(backend):
    return SolveContext(
        {"malt_gsm8k": load_prompts("malt_gsm8k")}, {"generator": RoleEngine(backend)}, {"generator": SamplingParams(8)}
    )


def test_debate_rounds_see_the_other_agents_and_are_stage_batched():
    be = ScriptedBackend(debater)
    p = load_prompts("malt_gsm8k")
    states = [SolveState("malt_gsm8k", d, i, p.question(d), k) for i, d in enumerate(DOCS[:2]) for k in range(3)]
    out = debate(3)(states, debate_ctx(be))
    # one backend call per round for all questions x agents: round 1 asks each question once with n=3
    assert [(n, params.n) for n, params, _ in be.calls] == [(2, 3), (6, 1), (6, 1)]
    assert list(out[0].turns) == ["debate_1", "debate_2", "debate_3"]
    round2 = out[1].turns["debate_2"].messages[-1]["content"]  # agent 1 of question 0
    own, others = round2.split("Your previous solution:")[1].split("from other agents:")
    assert "Final Answer: 11" in own
    assert "Final Answer: 10" in others and "Final Answer: 12" in others and "Final Answer: 11" not in others
    assert "What is 0 + 1?" in round2 and "What is 1 + 1?" not in round2  # only its own question's agents
    assert [s.answer for s in out] == ["10"] * 6  # the last round's answers


def test_debate_costs_agents_times_rounds_calls_per_question():
    cfg = EvalConfig(roles=("generator",), votes=3, temperature=0.3, batch_size=3, solver=debate(3))
    res = run_task("malt_gsm8k", DOCS, debate_ctx(ScriptedBackend(debater)), cfg)
    assert res.per_question("calls") == 9
    assert res.samples[0]["answer"] == "10" and set(res.samples[0]["answers_by_role"]) == {
        "debate_1",
        "debate_2",
        "debate_3",
    }


def results_of(folder: Path) -> dict:
    (path,) = folder.glob("results_*.json")
    return json.loads(path.read_text())


def snapshot(out: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "leaderboard.md"}


def test_suite_rows_labels_debate_and_reuse(tiny_model_dir, small_data, tmp_path):
    out = tmp_path / "suite"
    args = ["suite", "--model", tiny_model_dir, *FAST, "--debate", "--out", out]
    r = malt_eval(*args, env_data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {p.name: results_of(p)["malt"] for p in out.iterdir() if p.is_dir()}
    expected = {
        "sa": ("SA", "g", 1),
        "sa-mv3": ("SA+MV@3", "g", 3),
        "ma": ("MA", "g,v,r", 1),
        "ma-mv3": ("MA+MV@3", "g,v,r", 3),
        "debate-3x3": ("Debate 3x3", "debate 3x3", 3),
    }
    assert {k: (m["label"], m["agents"], m["votes"]) for k, m in rows.items()} == expected
    assert all(
        m["temperature"] == 0.3 and m["limited"] and not any(d["adapter"] for d in m["roles"].values())
        for m in rows.values()
    )
    assert all(m["per_seed"]["malt_gsm8k"][0]["doc_ids"] == [0, 1] for m in rows.values())  # same questions
    assert rows["debate-3x3"]["calls_per_question"]["malt_gsm8k"] == 9
    assert rows["debate-3x3"]["debate"]["rounds"] == 3
    assert rows["ma-mv3"]["calls_per_question"]["malt_gsm8k"] == 9
    board = (out / "leaderboard.md").read_text()
    assert all(f"| {label} " in board for label, _, _ in expected.values())
    assert "5 rows: 5 computed, 0 reused" in r.stdout and "| SA+MV@3 " in r.stdout

    before = snapshot(out)
    r = malt_eval(*args, env_data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "5 rows: 0 computed, 5 reused" in r.stdout
    assert snapshot(out) == before  # nothing recomputed or rewritten
    assert "| Debate 3x3 " in (out / "leaderboard.md").read_text()

    moved = tmp_path / "elsewhere"  # finished rows copied into another suite's --out are reused there
    shutil.copytree(out, moved)
    r = malt_eval(*args[:-1], moved, "--rows", "ma-mv3,sa", env_data=small_data)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 rows: 0 computed, 2 reused" in r.stdout

    r = malt_eval(*args, "--rows", "debate-3x3,sa", env_data=small_data)  # a subset of the rows, table order
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 rows: 0 computed, 2 reused" in r.stdout and "row 1/2: SA " in r.stdout
    board = (out / "leaderboard.md").read_text()
    assert "| SA " in board and "| Debate 3x3 " in board and "| MA " not in board and "| SA+MV@3 " not in board


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """A malt-train run folder on the tiny model with SFT and final LoRA adapters for every role."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path_factory.mktemp("suite-run") / "run"
    run.mkdir()
    (run / "generate.json").write_text(json.dumps({"model": str(tiny_model_dir)}))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    )
    for stage in ("adapters-sft", "adapters"):
        for role in ROLES:
            model.save_pretrained(run / stage / role)
    return run


def test_suite_with_malt_run_uses_sft_and_final_adapters_and_one_model(lora_run, small_data, tmp_path, monkeypatch):
    from harness.inference.backends import hf

    loads = []
    init = hf.HFBackend.__init__
    monkeypatch.setattr(hf.HFBackend, "__init__", lambda self, *a, **k: (loads.append(a), init(self, *a, **k))[1])
    monkeypatch.setenv("MALT_DATA_DIR", str(small_data))
    out = tmp_path / "suite"
    args = ["--malt-run", lora_run, *FAST, "--ablation-swap", "--ablation-agents", "--out", out]
    r = CliRunner().invoke(suite, [str(a) for a in args])
    assert r.exit_code == 0, r.output[-3000:]
    assert len(loads) == 1  # 16 rows, one base model loaded once
    malt = {p.name: results_of(p)["malt"] for p in out.iterdir() if p.is_dir()}
    assert len(malt) == 16

    def adapters(slug):
        return {
            role: d["adapter"] and Path(d["adapter"]).relative_to(lora_run) for role, d in malt[slug]["roles"].items()
        }

    sft = {r: Path("adapters-sft", r) for r in ROLES}
    final = {r: Path("adapters", r) for r in ROLES}
    assert adapters("star-sa") == {"generator": sft["generator"]} and malt["star-sa"]["label"] == "STaR SA"
    assert adapters("star-ma-mv3") == sft and malt["star-ma-mv3"]["label"] == "STaR MA+MV@3"
    assert adapters("malt-no-mv") == final and malt["malt-no-mv"]["votes"] == 1
    assert adapters("malt-mv3") == final and (malt["malt-mv3"]["label"], malt["malt-mv3"]["votes"]) == ("MALT", 3)
    assert adapters("ma") == dict.fromkeys(ROLES)
    for role in ROLES:  # Table 4: exactly this role on the base model
        slug = f"malt-mv3-base-{role}"
        assert adapters(slug) == {r: None if r == role else final[r] for r in ROLES}
        assert malt[slug]["label"] == f"MALT (base {role})"
    assert {malt[s]["agents"] for s in ("malt-g-mv3", "malt-gv-mv3", "malt-gr-mv3")} == {"g", "g,v", "g,r"}
    assert adapters("malt-gv-mv3") == {"generator": final["generator"], "verifier": final["verifier"]}
    assert "| MALT (base verifier) " in (out / "leaderboard.md").read_text()


def test_baseline_rows_are_reused_when_a_malt_run_is_added(tmp_path):
    """MA rows run before training (no --model: the default) have the options of the same rows with --malt-run."""
    from harness.inference.models import DEFAULT_MODEL
    from malt_apps.suite import SuiteConfig, plan_rows, row_options, run_adapters

    run = tmp_path / "run"  # a finished run of the default model that trained nothing (no adapter to find)
    run.mkdir()
    (run / "generate.json").write_text(json.dumps({"model": DEFAULT_MODEL}))
    steps = {"sft-generator": "skipped (empty set)", "final-verifier": "skipped (empty set)"}
    (run / "run.json").write_text(json.dumps({"steps": steps}))
    before, after = SuiteConfig(tmp_path / "out"), SuiteConfig(tmp_path / "out", malt_run=str(run))
    opts = []
    for cfg in (before, after):
        model, sft, final = run_adapters(cfg)
        (ma_mv,) = [r for r in plan_rows(cfg, sft, final) if r.slug == "ma-mv3"]
        opts.append(row_options(cfg, ma_mv, model))
    assert opts[0] == opts[1] and opts[0]["model"] == DEFAULT_MODEL
    remote = SuiteConfig(tmp_path / "out", eval_options={"backend": "openai"})
    assert run_adapters(remote)[0] is None  # an OpenAI-compatible server: its own model


def test_help_mentions_the_suite():
    from malt_apps.eval_cli import main

    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "malt-eval suite --help" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "malt_nope"], "unknown task"),
        (["--ablation-swap"], "--ablation-swap needs trained agents"),
        (["--mv", "1"], "--mv must be at least 2"),
        (["--rows", "sa,malt-mv3"], "unknown --rows malt-mv3: this suite's rows are sa,sa-mv3,ma,ma-mv3"),
        (["--malt-run", "{empty_run}"], "holds no adapters"),
        (["--seeds", "x"], "'x' is not a valid integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    empty = tmp_path / "run"
    empty.mkdir()
    (empty / "generate.json").write_text('{"model": "m"}')
    args = [a.replace("{empty_run}", str(empty)) for a in args]
    r = CliRunner().invoke(suite, ["--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("malt-eval: error: ") and message in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_bad_input_through_the_entry_point(tmp_path):
    r = malt_eval("suite", "--out", tmp_path / "o", "--ablation-agents")
    assert r.returncode == 2 and r.stderr.startswith("malt-eval: error: ") and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--debate", "3x3", "--votes", "3"], "leave --votes at 1"), (["--debate", "3"], "expected AGENTSxROUNDS")],
)
def test_bad_debate_option_of_malt_eval(args, message):
    from malt_apps.eval_cli import main

    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and r.stderr == f"malt-eval: error: {r.stderr.split('error: ', 1)[1]}"
    assert message in r.stderr and r.stderr.count("\n") == 1


@register_backend("suite-scripted")
class SuiteBackend(ScriptedBackend):
    """A named scripted model (nothing to load): every role answers 18, the first GSM8K row's answer."""

    remote = True

    def __init__(self, model: str | None = None, **options) -> None:
        super().__init__(lambda messages, i: "Steps. The answer is 18. #### 18")
        self.model_id = model


def test_suite_runs_a_local_lm_eval_task_from_include_path(small_data, tmp_path):
    """`malt-eval suite --include-path DIR --tasks my_local_task`: lm-eval's task options reach every row."""
    tasks = write_local_tasks(tmp_path / "my_tasks", small_data)
    out = tmp_path / "suite"
    args = ["--include-path", tasks, "--tasks", GSM8K_COT_ZS, "--seeds", 1, "--limit", 2, "--num-fewshot", 0]
    args += ["--system-instruction", "Be brief.", "--backend", "suite-scripted", "--model", "scripted", "--out", out]
    r = CliRunner().invoke(suite, [str(a) for a in args])
    assert r.exit_code == 0, r.output[-3000:]
    assert "4 rows: 4 computed, 0 reused" in r.output
    for slug in ("sa", "sa-mv3", "ma", "ma-mv3"):
        (path,) = (out / slug).rglob("results_*.json")
        doc = json.loads(path.read_text())
        assert doc["results"][GSM8K_COT_ZS]["exact_match,strict-match"] == 0.5  # rows 0 (18) and 1 (3)
        assert doc["config"]["limit"] == 2 and doc["system_instruction"] == "Be brief."
        marker = json.loads((out / slug / "suite-row.json").read_text())
        assert marker["options"]["include_path"] == str(tasks) and marker["options"]["num_fewshot"] == 0
    board = (out / "leaderboard.md").read_text()
    assert GSM8K_COT_ZS in board and all(f"| {label} " in board for label in ("SA", "SA+MV@3", "MA", "MA+MV@3"))
    r = CliRunner().invoke(suite, [str(a) for a in args])
    assert r.exit_code == 0 and "4 rows: 0 computed, 4 reused" in r.output, r.output[-3000:]
