"""The multi-agent system as an lm-eval model: ``--model malt`` / ``simple_evaluate(model=MaltLM(...))``."""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.backends.base import SamplingParams
from harness.evaluate import solve_questions
from harness.grading import canonical_task, extract_answer, normalize_answer
from harness.prompts import load_prompts
from harness.solver import RoleEngine, SolveContext
from harness.spec import EvalSpec
from harness.voting import majority_vote

#: Arguments lm-eval passes to every model; the system takes its batch size and ignores the others.
_LM_EVAL_EXTRAS = ("max_batch_size", "device")


@register_model("malt")
class MaltLM(LM):
    """Generator -> verifier -> refiner (or a subset) answering lm-eval ``generate_until`` requests.

    Takes the fields of :class:`harness.spec.EvalSpec` that describe the system (``model``, ``agents``,
    ``votes``, ``temperature``, ``batch_size``, ``max_new_tokens``, ``backend``, ``dtype``, per-role
    ``<role>_model``/``<role>_adapter``, ...) as keyword arguments, plus:

    Args:
        prompts: override prompts file (``EvalSpec.prompts_file``).
        engines: ready-made role engines (Python use, e.g. a scripted backend in tests).
    """

    def __init__(
        self, prompts: str | None = None, engines: dict[str, RoleEngine] | None = None, **options: Any
    ) -> None:
        super().__init__()
        options = {k: v for k, v in options.items() if k not in _LM_EVAL_EXTRAS}
        self.spec = EvalSpec.from_options({**options, "prompts_file": prompts})
        self.plan = self.spec.solver_plan()
        self.votes = self.plan.votes or int(self.spec.votes)
        self.batch_size = int(self.spec.batch_size)
        if engines is None:
            s = self.spec
            engines, _ = s.engines(self.plan.roles, self.batch_size, None, s.role_models, s.role_adapters)
        self.engines = engines

    def _context(self, task: str, seed: int) -> SolveContext:
        tokens = self.spec.task_tokens(task, self.plan.roles)
        temperature = float(self.spec.temperature)
        params = {r: SamplingParams(int(tokens[r]), temperature, 1.0, 1, seed) for r in self.plan.roles}
        return SolveContext({task: load_prompts(task, self.spec.prompts_file)}, self.engines, params)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Run the pipeline over all requests, stage-batched per task; return the system's text."""
        out: list[str] = [""] * len(requests)
        by_task: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_task.setdefault(canonical_task(req.task_name), []).append(i)
        for task, idx in by_task.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                docs = [(requests[i].doc_id, requests[i].doc) for i in chunk]
                groups = solve_questions(task, docs, self._context(task, start), self.plan.build(), self.votes)
                for i, group in zip(chunk, groups, strict=True):
                    out[i] = _final_text(task, group)
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the malt model answers generate_until tasks only")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the malt model answers generate_until tasks only")


def _final_text(task: str, group: list) -> str:
    """The text of the sample that gave the voted answer, ending with that answer if it states another."""
    answer, first = majority_vote(task, [s.answer for s in group])
    text = group[first or 0].final_text
    if answer is not None and normalize_answer(task, extract_answer(task, text)) != normalize_answer(task, answer):
        text += f"\n\nFinal Answer: {answer}"
    return text
