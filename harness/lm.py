"""The multi-agent system as an lm-eval model: ``--model malt`` / ``simple_evaluate(model=MaltLM(...))``."""

from __future__ import annotations

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.backends.base import SamplingParams
from harness.evaluate import DEFAULT_MAX_NEW_TOKENS
from harness.grading import canonical_task, extract_answer, normalize_answer
from harness.prompts import load_prompts
from harness.solver import RoleEngine, SolveContext, parse_agents, plan
from harness.state import SolveState
from harness.voting import majority_vote


@register_model("malt")
class MaltLM(LM):
    """Generator -> verifier -> refiner (or a subset) answering lm-eval ``generate_until`` requests.

    Args:
        model: base model for every role (dir, hub id or embedded alias).
        agents: "g", "g,v", "g,r" or "g,v,r".
        votes: independent pipelines per question, majority-voted.
        temperature: sampling temperature (0 and votes=1: greedy).
        batch_size: questions per stage batch (and sequences per backend batch).
        max_new_tokens: per role; default per task.
        prompts: override prompts file.
        engines: ready-made role engines (Python use, e.g. a scripted backend in tests).
    """

    def __init__(
        self,
        model: str | None = None,
        agents: str = "g,v,r",
        votes: int = 1,
        temperature: float = 0.3,
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        prompts: str | None = None,
        backend: str = "hf",
        engines: dict[str, RoleEngine] | None = None,
        **role_overrides: str,
    ) -> None:
        super().__init__()
        self.roles = parse_agents(agents)
        self.votes, self.temperature = int(votes), float(temperature)
        self.batch_size = int(batch_size)
        self.max_new_tokens = max_new_tokens
        self.prompts_file = prompts
        if engines is None:
            from harness.engines import build_engines

            models = {r: role_overrides.get(f"{r}_model") for r in self.roles}
            adapters = {r: role_overrides.get(f"{r}_adapter") for r in self.roles}
            engines, _ = build_engines(model, self.roles, models, adapters, backend, batch_size=self.batch_size)
        self.engines = engines

    def _context(self, task: str, seed: int) -> SolveContext:
        tokens = self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[task]
        params = SamplingParams(int(tokens), self.temperature, 1.0, 1, seed)
        return SolveContext(
            {task: load_prompts(task, self.prompts_file)}, self.engines, dict.fromkeys(self.roles, params)
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Run the pipeline over all requests, stage-batched per task; return the system's text."""
        out: list[str] = [""] * len(requests)
        by_task: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_task.setdefault(canonical_task(req.task_name), []).append(i)
        steps = plan(self.roles)
        for task, idx in by_task.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                ctx = self._context(task, start)
                prompts = ctx.prompts[task]
                states = [
                    SolveState(task, requests[i].doc, requests[i].doc_id, prompts.question(requests[i].doc), k)
                    for i in chunk
                    for k in range(self.votes)
                ]
                steps(states, ctx)
                for j, i in enumerate(chunk):
                    group = states[j * self.votes : (j + 1) * self.votes]
                    answer, first = majority_vote(task, [s.answer for s in group])
                    text = group[first or 0].final_text
                    if answer is not None and normalize_answer(task, extract_answer(task, text)) != normalize_answer(
                        task, answer
                    ):
                        text += f"\n\nFinal Answer: {answer}"
                    out[i] = text
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the malt model answers generate_until tasks only")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the malt model answers generate_until tasks only")
