"""EvalSpec: options <-> fields, checks before anything loads, and solver plans as data."""

import pytest

from harness.core.errors import MaltError
from harness.solver.plans import agents_plan, debate_plan
from harness.spec import EvalSpec
from harness.tasks.prompts import load_prompts


def test_options_round_trip_and_per_role_fields():
    spec = EvalSpec(tasks=("malt_gsm8k", "malt_csqa"), role_adapters={"verifier": "a/v"}, max_new_tokens=64)
    opts = spec.options()
    assert opts["tasks"] == "malt_gsm8k,malt_csqa" and opts["verifier_adapter"] == "a/v"
    assert opts["max_new_tokens"] == "64"
    assert opts["generator_adapter"] is None and "role_adapters" not in opts
    again = EvalSpec.from_options(opts)
    assert again.options() == opts and again.role_adapters == {"verifier": "a/v"}
    with pytest.raises(MaltError, match="unknown option"):
        EvalSpec.from_options({"modle": "x"})


def test_token_budgets_per_role_and_task():
    assert EvalSpec(max_new_tokens="verifier=8").task_tokens("malt_math", ("generator", "verifier")) == {
        "generator": 1024,
        "verifier": 8,
    }
    assert EvalSpec(max_new_tokens={"refiner": 5}).role_tokens() == {"generator": None, "verifier": None, "refiner": 5}
    for bad, message in (("critic=3", "unknown role 'critic'"), ("x", "expected N or role=N"), ("0", "at least 1")):
        with pytest.raises(MaltError, match=message):
            EvalSpec(max_new_tokens=bad).check()


def test_checks_before_anything_loads():
    for spec, message in (
        (EvalSpec(tasks=""), "no task given"),
        (EvalSpec(tasks="gsm8k,nope"), "unknown task 'nope'"),
        (EvalSpec(agents="v,r"), "bad agent list"),
        (EvalSpec(debate="3x3", votes=2), "leave --votes at 1"),
        (EvalSpec(stage="mid"), "--stage must be one of"),
        (EvalSpec(seeds=0), "--seeds must be at least 1"),
    ):
        with pytest.raises(MaltError, match=message):
            spec.check()
    assert EvalSpec(tasks="malt_gsm8k,malt_gsm8k, malt_csqa").task_names() == ["malt_gsm8k", "malt_csqa"]


def test_plans_are_data_read_the_same_way():
    chain, debate = agents_plan("g,r"), debate_plan("3x2")
    assert (chain.name, chain.roles, chain.votes, chain.info({})) == ("g,r", ("generator", "refiner"), None, {})
    assert (debate.name, debate.roles, debate.votes) == ("debate 3x2", ("generator",), 3)
    prompts = {"malt_gsm8k": load_prompts("malt_gsm8k")}
    info = debate.info(prompts)["debate"]
    assert info["agents"] == 3 and info["rounds"] == 2 and len(info["prompt_hash"]["malt_gsm8k"]) == 16
    cfg = EvalSpec(debate="3x2", tasks="malt_gsm8k").protocol()
    assert cfg.votes == 3 and cfg.roles == ("generator",) and cfg.solver is not None
