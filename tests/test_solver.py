"""Solver wiring on a scripted backend: stage batching, role inputs, system answers."""

import pytest

from harness.core.errors import MaltError
from harness.inference.backends import get_backend
from harness.inference.backends.base import SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext, parse_agents, plan
from harness.tasks.prompts import load_prompts

DOCS = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(5)]


def responder(messages, i):
    user = messages[-1]["content"]
    if "Critique of the initial answer" in user:
        return "Corrected. Final Answer: 100"
    if "Critically check" in user:
        return "The answer is wrong. Final Answer: 50" if "What is 3" in user else "It is correct."
    return f"Some work. Final Answer: {i}"


def make_ctx(backend, roles=("generator", "verifier", "refiner")):
    engines = {r: RoleEngine(backend) for r in roles}
    return SolveContext({"malt_gsm8k": load_prompts("malt_gsm8k")}, engines, dict.fromkeys(roles, SamplingParams(32)))


def states(votes=1):
    p = load_prompts("malt_gsm8k")
    return [SolveState("malt_gsm8k", d, i, p.question(d), k) for i, d in enumerate(DOCS) for k in range(votes)]


def test_one_backend_call_per_stage():
    be = ScriptedBackend(responder)
    out = plan(parse_agents("g,v,r"))(states(votes=3), make_ctx(be))
    # three stages, three calls; the generator asks once per question with n=3
    assert [(n, p.n) for n, p, _ in be.calls] == [(5, 3), (15, 1), (15, 1)]
    assert all(set(s.turns) == {"generator", "verifier", "refiner"} for s in out)
    assert [s.turns["generator"].answer for s in out[:3]] == ["0", "1", "2"]


@pytest.mark.parametrize(("agents", "n_calls"), [("g", 1), ("g,v", 2), ("g,r", 2), ("g,v,r", 3)])
def test_agents_variants(agents, n_calls):
    be = ScriptedBackend(responder)
    out = plan(parse_agents(agents))(states(), make_ctx(be))
    assert len(be.calls) == n_calls
    expected_roles = [{"g": "generator", "v": "verifier", "r": "refiner"}[a] for a in agents.split(",")]
    assert list(out[0].turns) == expected_roles


def test_refiner_sees_solution_and_critique_and_empty_critique_for_g_r():
    be = ScriptedBackend(responder)
    out = plan(parse_agents("g,v,r"))(states(), make_ctx(be))
    prompt = out[0].turns["refiner"].messages[-1]["content"]
    assert "Some work. Final Answer: 0" in prompt and "It is correct." in prompt
    out = plan(parse_agents("g,r"))(states(), make_ctx(ScriptedBackend(responder)))
    prompt = out[0].turns["refiner"].messages[-1]["content"]
    assert "Critique of the initial answer:\n\n" in prompt  # empty critique, as in the paper


def test_system_answer_comes_from_last_answering_role():
    out = plan(parse_agents("g,v"))(states(), make_ctx(ScriptedBackend(responder)))
    assert out[3].answer == "50"  # verifier states a corrected answer
    assert out[0].answer == "0"  # verifier states none: the generator's
    out = plan(parse_agents("g,v,r"))(states(), make_ctx(ScriptedBackend(responder)))
    assert {s.answer for s in out} == {"100"}


@pytest.mark.parametrize("bad", ["", "g,x", "v", "g,g", "r,g", "v,g,r", " , "])
def test_bad_agent_lists(bad):
    with pytest.raises(MaltError):
        parse_agents(bad)


def test_backend_registry_suggests():
    assert get_backend("scripted") is ScriptedBackend
    with pytest.raises(MaltError, match="did you mean hf"):
        get_backend("hff")


def test_identical_prompts_share_a_request_without_extra_samples():
    be = ScriptedBackend(lambda messages, i: "Final Answer: 1")
    ctx = make_ctx(be)
    plan(parse_agents("g,v,r"))(states(votes=3), ctx)
    # every vote of a question sees the same texts, so each stage is 5 prompts x n=3
    assert [(n, p.n) for n, p, _ in be.calls] == [(5, 3), (5, 3), (5, 3)]
    assert {role: s["calls"] for role, s in ctx.stats.items()} == dict.fromkeys(
        ("generator", "verifier", "refiner"), 15
    )
