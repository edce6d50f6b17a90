"""Solver plans as data: what a system runs per question, described the same way for every kind of system.

A :class:`SolverPlan` names the roles whose engines it uses, builds its steps, may fix the pipelines per
question (a debate's agents), and lists the extra prompt templates it uses; evaluation, results, run
identities and the suite read these fields and never ask which kind of plan they hold.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.core.roles import letters
from harness.solver.debate import debate, parse_debate
from harness.solver.steps import Step, parse_agents, plan
from harness.tasks.prompts import PromptSet


@dataclass(frozen=True)
class SolverPlan:
    """One system's steps, as data.

    Attributes:
        name: how results and tables name the system's agents (``g,v,r``, ``debate 3x3``).
        roles: the roles whose engines and sampling params the steps use.
        build: makes the steps (a fresh :data:`harness.solver.steps.Step`).
        votes: pipelines per question the plan fixes itself (a debate's agents), else ``None``.
        key: where the plan's own record goes in the results' ``malt`` block and the run identity ("" for none).
        record: what that record holds besides the hashes of ``prompt_steps``.
        prompt_step: the prompt template the steps use besides the roles' (its hash per task joins the record).
    """

    name: str
    roles: tuple[str, ...]
    build: Callable[[], Step] = field(repr=False, compare=False)
    votes: int | None = None
    key: str = ""
    record: Mapping = field(default_factory=dict)
    prompt_step: str | None = None

    def info(self, prompts: Mapping[str, PromptSet]) -> dict:
        """``{key: record (+ prompt_hash per task)}`` for the results and the run identity (``{}`` for none)."""
        if not self.key:
            return {}
        record = dict(self.record)
        if self.prompt_step:
            record["prompt_hash"] = {t: p.step_hash(self.prompt_step) for t, p in prompts.items()}
        return {self.key: record}

    def step_hash(self, prompts: PromptSet) -> str | None:
        """The hash of the extra template for one task (``None`` without one; a missing one is a ``MaltError``)."""
        return prompts.step_hash(self.prompt_step) if self.prompt_step else None


def agents_plan(agents: str) -> SolverPlan:
    """``"g,v,r"`` and its subsets: the roles' chain."""
    roles = parse_agents(agents)
    return SolverPlan(letters(roles), roles, functools.partial(plan, roles))


def debate_plan(spec: str) -> SolverPlan:
    """``"AxR"``: A agents debating R rounds on the generator's engine (:mod:`harness.solver.debate`)."""
    agents, rounds = parse_debate(spec)
    return SolverPlan(
        f"debate {agents}x{rounds}",
        ("generator",),
        functools.partial(debate, rounds),
        votes=agents,
        key="debate",
        record={"agents": agents, "rounds": rounds},
        prompt_step="debate",
    )
