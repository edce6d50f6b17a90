"""The question protocol both evaluation paths share: which questions each seed draws
(:func:`select_questions`), in which stage batches (:func:`batches`), each batch's sampling seed (:func:`batch_seed`),
and one solve of a batch with its votes (:func:`solve_questions`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from harness.core.errors import MaltError
from harness.core.roles import ROLES
from harness.inference.backends.base import PAPER_TEMPERATURE
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext, Step


@dataclass
class EvalConfig:
    """How one evaluation draws, solves, votes and batches questions (:meth:`harness.spec.EvalSpec.protocol`)."""

    roles: tuple[str, ...] = ROLES
    votes: int = 1
    temperature: float = PAPER_TEMPERATURE
    top_p: float = 1.0
    seeds: int = 1
    subset: int | None = None
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: dict[str, int | None] = field(default_factory=dict)  # role -> tokens (None: task default)
    log_samples: bool = False
    solver: Step | None = None  # another plan than the roles' chain (e.g. harness.solver.debate.debate())

    def check(self) -> None:
        """Raise ``MaltError`` for values that cannot run."""
        if self.votes < 1:
            raise MaltError(f"--votes must be at least 1, got {self.votes}")
        if self.seeds < 1:
            raise MaltError(f"--seeds must be at least 1, got {self.seeds}")
        if self.subset is not None and self.subset < 1:
            raise MaltError(f"--subset must be at least 1, got {self.subset}")
        if self.limit is not None and self.limit < 1:
            raise MaltError(f"--limit must be at least 1, got {self.limit}")
        if self.subset is not None and self.limit is not None:
            raise MaltError("use either --subset or --limit, not both")
        if self.batch_size < 1:
            raise MaltError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.temperature < 0:
            raise MaltError(f"--temperature must be >= 0, got {self.temperature}")


def select_questions(n_docs: int, cfg: EvalConfig, seed: int) -> list[int]:
    """Question indices for one seed: first ``limit``, a seeded subset, or all."""
    if cfg.limit is not None:
        return list(range(min(cfg.limit, n_docs)))
    if cfg.subset is not None:
        if cfg.subset > n_docs:
            raise MaltError(f"--subset {cfg.subset} is larger than the split ({n_docs} questions)")
        return sorted(random.Random(seed).sample(range(n_docs), cfg.subset))
    return list(range(n_docs))


#: The run seed's multiplier in :func:`batch_seed`: a prime above any batch position.
SEED_STRIDE = 1_000_003


def batch_seed(seed: int, start: int) -> int:
    """The sampling seed of one stage batch: the run's ``seed`` and the batch's position ``start`` (the index of
    its first question in the run order, or the batch's number) in one number.

    Every batch of every seed samples with its own seed, the same on a rerun or a resume, whichever batches ran
    before it; different ``(seed, start)`` pairs give different seeds while ``start`` < :data:`SEED_STRIDE`.
    """
    return seed * SEED_STRIDE + start


def solve_questions(
    task: str, docs: list[tuple[int, dict]], ctx: SolveContext, steps: Step, votes: int
) -> list[list[SolveState]]:
    """Run ``steps`` once over ``votes`` states per ``(doc_id, doc)``; return the states grouped per question."""
    prompts = ctx.prompts[task]
    states = [SolveState(task, doc, i, prompts.question(doc), sample=k) for i, doc in docs for k in range(votes)]
    steps(states, ctx)
    return [states[j * votes : (j + 1) * votes] for j in range(len(docs))]


def batches(n_docs: int, cfg: EvalConfig) -> list[tuple[int, int, list[int]]]:
    """``(seed, start, doc ids)`` of every stage batch of a task, in run order."""
    out = []
    for seed in range(cfg.seeds):
        ids = select_questions(n_docs, cfg, seed)
        out += [(seed, i, ids[i : i + cfg.batch_size]) for i in range(0, len(ids), cfg.batch_size)]
    return out
