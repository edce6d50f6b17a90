"""Generator, verifier and refiner as small composable steps over a batch of states.

Each step makes **one** batched backend call for all the states it is given
(stage batching); a plan is ``chain(generator(), verifier(), refiner())`` and ``--agents g,r``
is just ``chain(generator(), refiner())``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from harness.core.errors import MaltError
from harness.core.roles import LETTER_ROLES, ROLES
from harness.inference.backends.base import Messages, SamplingParams
from harness.inference.engines import RoleEngine
from harness.solver.state import SolveState, Turn, read_answer
from harness.tasks.prompts import PromptSet
from harness.tasks.taskinfo import TASKS

VALID_AGENTS = ("g", "g,v", "g,r", "g,v,r")


@dataclass(frozen=True)
class SolveContext:
    """What the steps need: prompts per task, an engine and sampling params per role. Frozen: a caller wanting
    other params (a batch's seed) makes a new context with ``dataclasses.replace``; ``stats`` is the one thing
    that grows, the stage counters of the calls made through this context (a replaced context shares them
    unless given its own ``stats``)."""

    prompts: dict[str, PromptSet]
    engines: dict[str, RoleEngine]
    params: dict[str, SamplingParams]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    on_stage: Callable[[str, int, int], None] | None = None  # (role, prompts, tokens)

    def run_role(self, role: str, prompts: Sequence[Messages], n: int = 1) -> list[list]:
        """One batched call of ``role`` on ``prompts`` with ``n`` samples each."""
        engine = self.engines[role]
        base = self.params[role]
        params = replace(base, n=n)
        out = engine.backend.generate(list(prompts), params, adapter=engine.adapter)
        tokens = sum(c.n_tokens for comps in out for c in comps)
        s = self.stats.setdefault(role, {"calls": 0, "tokens": 0, "backend_calls": 0, "prompts_truncated": 0})
        s["calls"] += len(prompts) * n
        s["tokens"] += tokens
        s["backend_calls"] += 1
        s["prompts_truncated"] += sum(bool(getattr(c, "prompt_truncated", False)) for comps in out for c in comps)
        if self.on_stage:
            self.on_stage(role, len(prompts) * n, tokens)
        return out


Step = Callable[[list[SolveState], SolveContext], list[SolveState]]


def turn_issues(
    text: str, answer: str | None, truncated: bool, prompt_truncated: bool, graded: bool = True
) -> list[str]:
    """Why a turn may have gone wrong, for the sample logs (empty when nothing stands out); ``graded``: the task
    has a grader of ours (an lm-eval task's answers are extracted by its own filters, not here)."""
    issues = []
    if prompt_truncated:
        issues.append("prompt cut to fit the context (oldest tokens dropped)")
    if not text.strip():
        issues.append("empty output" if not text else "whitespace-only output")
    if truncated:
        issues.append("hit the token limit before stopping")
    if answer is None and graded:
        issues.append("no answer found in the output")
    return issues


def record_turn(state: SolveState, role: str, messages: Messages, comp) -> None:
    graded = state.task in TASKS
    answer, fault = read_answer(state.task, comp.text) if graded else (None, None)
    cut = getattr(comp, "prompt_truncated", False)
    issues = turn_issues(comp.text, answer, comp.truncated, cut, graded)
    if fault:
        issues.append(f"the grader failed reading this text ({fault}): counted in grader_errors, not graded")
    turn = Turn(role, messages, comp.text, answer, comp.n_tokens, comp.truncated, cut, issues, grader_fault=fault)
    state.turns[role] = turn


def run_grouped(
    role: str, states: list[SolveState], ctx: SolveContext, build: Callable[[SolveState], Messages]
) -> list[SolveState]:
    """One backend call for ``role``: states with identical prompts share one request with ``n`` samples.

    That is how votes share a generator prompt and how MALT trees branch (n critiques of one
    solution, n refinements of one critique) without re-sending the same prompt.
    """
    groups: dict[str, tuple[Messages, list[SolveState]]] = {}
    for s in states:
        msgs = build(s)
        groups.setdefault(json.dumps(msgs, sort_keys=True), (msgs, []))[1].append(s)
    by_size: dict[int, list[tuple[Messages, list[SolveState]]]] = {}
    for msgs, group in groups.values():  # one call per distinct sample count (usually exactly one)
        by_size.setdefault(len(group), []).append((msgs, group))
    for n, items in by_size.items():
        for (msgs, group), comps in zip(items, ctx.run_role(role, [m for m, _ in items], n=n), strict=True):
            for s, c in zip(group, comps, strict=True):
                record_turn(s, role, msgs, c)
    return states


def generator() -> Step:
    """Write a solution to the question (to the state's finished ``prompt`` as it is, when it has one)."""

    def step(states: list[SolveState], ctx: SolveContext) -> list[SolveState]:
        def build(s: SolveState) -> Messages | str:
            return s.prompt if s.prompt is not None else ctx.prompts[s.task].messages("generator", question=s.question)

        return run_grouped("generator", states, ctx, build)

    return step


def verifier() -> Step:
    """Critique the generator's solution."""

    def step(states: list[SolveState], ctx: SolveContext) -> list[SolveState]:
        return run_grouped(
            "verifier",
            states,
            ctx,
            lambda s: ctx.prompts[s.task].messages(
                "verifier", question=s.question, solution=s.turns["generator"].text, doc=s.doc, task=s.task
            ),
        )

    return step


def refiner() -> Step:
    """Write the final solution from question, solution and critique (empty without a verifier)."""

    def step(states: list[SolveState], ctx: SolveContext) -> list[SolveState]:
        return run_grouped(
            "refiner",
            states,
            ctx,
            lambda s: ctx.prompts[s.task].messages(
                "refiner",
                question=s.question,
                solution=s.turns["generator"].text,
                critique=s.turns["verifier"].text if "verifier" in s.turns else "",
                doc=s.doc,
                task=s.task,
            ),
        )

    return step


def chain(*steps: Step) -> Step:
    """Run ``steps`` in order over the same batch of states."""

    def step(states: list[SolveState], ctx: SolveContext) -> list[SolveState]:
        for s in steps:
            states = s(states, ctx)
        return states

    return step


_STEPS = {"generator": generator, "verifier": verifier, "refiner": refiner}


def parse_agents(agents: str) -> tuple[str, ...]:
    """``"g,v,r"`` (also ``"g+v+r"`` or ``"gvr"``, for lm-eval's comma-split ``--model_args``) ->
    ``("generator", "verifier", "refiner")``; a clear error for bad lists."""
    text = (agents or "").replace("+", ",").strip()
    if "," not in text and len(text) > 1 and set(text.lower()) <= set(LETTER_ROLES):
        text = ",".join(text)
    letters = [a.strip().lower() for a in text.split(",") if a.strip()]
    if not letters:
        raise MaltError("empty agent list: use one of " + ", ".join(VALID_AGENTS))
    unknown = [a for a in letters if a not in LETTER_ROLES]
    if unknown:
        raise MaltError(f"unknown agent letter {unknown[0]!r} in {agents!r}: use g, v, r")
    if ",".join(letters) not in VALID_AGENTS:
        raise MaltError(f"bad agent list {agents!r}: use one of " + ", ".join(VALID_AGENTS))
    return tuple(LETTER_ROLES[a] for a in letters)


def plan(roles: Sequence[str]) -> Step:
    """The chain of steps for an ordered subset of :data:`harness.core.roles.ROLES`."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise MaltError(f"plan: unknown role {unknown[0]!r} (roles: {', '.join(ROLES)})")
    if not roles:
        raise MaltError("plan: no role")
    return chain(*(_STEPS[r]() for r in roles))
