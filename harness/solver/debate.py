"""Multi-agent debate (Du et al., 2023) as solver steps over a batch of states.

The ``K`` states of one question (``--votes K``) are its ``K`` debating agents. Round 1: every agent
answers on its own with the generator prompt (one request with ``n = K`` per question). Rounds
2..R: every agent sees its own previous solution and the other agents' and writes an updated one
(the ``debate`` template of the task's ``prompts.yaml``). The system's answer is the majority vote of
the last round (each state's ``final_turn``), so ``K`` agents x ``R`` rounds cost ``K * R`` calls
per question, e.g. 3 x 3 = 9, the budget of MALT with MV@3.

Every round is one batched backend call for all questions and agents of the batch (stage batching);
the debate runs on the ``generator`` engine (the base model, or the generator's adapter).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from harness.core.errors import MaltError
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext, Step, chain, record_turn, run_grouped

ROLE = "generator"  # the engine, sampling params and stage counters the debaters use


def turn_name(round_: int) -> str:
    """The key of round ``round_`` (1-based) in a state's turns (and in the sample logs)."""
    return f"debate_{round_}"


def parse_debate(spec: str) -> tuple[int, int]:
    """``"3x3"`` -> ``(agents, rounds)``; a clear error for anything else."""
    try:
        agents, rounds = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise MaltError(f"debate: expected AGENTSxROUNDS like 3x3, got {spec!r}") from None
    if agents < 2 or rounds < 2:
        raise MaltError(f"debate: needs at least 2 agents and 2 rounds, got {spec!r}")
    return agents, rounds


def first_round() -> Step:
    """Round 1: each agent answers the question independently (the generator prompt)."""

    def step(states: list[SolveState], ctx: SolveContext) -> list[SolveState]:
        # identical prompts of a question's agents: one request with n = agents, as votes are
        run_grouped(ROLE, states, ctx, lambda s: ctx.prompts[s.task].messages("generator", question=s.question))
        for s in states:
            s.turns[turn_name(1)] = replace(s.turns.pop(ROLE), role=turn_name(1))
            s.final_turn = turn_name(1)
        return states

    return step


def update_round(round_: int) -> Step:
    """Round ``round_`` >= 2: each agent updates its solution given the others' previous solutions."""
    prev, name = turn_name(round_ - 1), turn_name(round_)

    def step(states: list[SolveState], ctx: SolveContext) -> list[SolveState]:
        agents: dict[tuple[str, int], list[SolveState]] = defaultdict(list)
        for s in states:
            agents[(s.task, s.doc_id)].append(s)
        prompts = []
        for s in states:
            others = [o.turns[prev].text for o in agents[(s.task, s.doc_id)] if o is not s]
            prompts.append(
                ctx.prompts[s.task].messages("debate", question=s.question, solution=s.turns[prev].text, others=others)
            )
        outs = ctx.run_role(ROLE, prompts, n=1)  # one call: every question x agent of the batch
        for s, msgs, (comp,) in zip(states, prompts, outs, strict=True):
            record_turn(s, name, msgs, comp)
            s.final_turn = name
        return states

    return step


def debate(rounds: int = 3) -> Step:
    """The whole debate: round 1, then ``rounds - 1`` update rounds (agents = states per question)."""
    return chain(first_round(), *(update_round(r) for r in range(2, rounds + 1)))
