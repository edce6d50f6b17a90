"""The solver on any lm-eval ``generate_until`` task: the generator answers the task's own context, the verifier
and refiner get generic role prompts (``tasks/lm_eval_prompts.yaml``), the last text goes back to lm-eval.

lm-eval builds each request (description, few-shot examples, ``doc_to_text``, chat template and system
instruction when asked) and scores the returned text with the task's own filters and metrics; this module only
turns a batch of requests into solver states, their sampling parameters and their final texts.

Which setting wins: lm-eval's per-request ``until`` (the task's, or ``--gen_kwargs until=...``; no flag of ours
sets stop strings) ends the generator's and the refiner's texts, both written in the task's format and the
refiner's scored by the task; the verifier's critique stops only at its marker strings, those with a letter or
digit (``Q:``, ``Question:``, ``</s>``, ``<|im_end|>``: the model drifting into another question or ending its
turn), since a bare delimiter (a blank line, a newline, ``.``) would cut a critique to its first paragraph or
sentence. Its ``max_gen_toks`` is every role's budget unless ``max_new_tokens`` (our flag) sets one; its
``do_sample``/``temperature`` decide the sampling unless ``temperature`` (our flag) is given explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from harness.core.errors import MaltError
from harness.core.roles import letters
from harness.core.yamlfiles import read_yaml_mapping
from harness.inference.backends.base import SamplingParams
from harness.solver.plans import SolverPlan
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext
from harness.tasks.prompts import PROMPTS_WHAT, PromptSet, tasks_dir

PROMPTS_FILE = "lm_eval_prompts.yaml"
GENERIC_ROLES = ("verifier", "refiner")
#: lm-eval's default ``max_gen_toks`` (a task that sets none).
LM_EVAL_MAX_GEN_TOKS = 256
_CHECK = jinja2.sandbox.SandboxedEnvironment()


def _layers(data: Mapping, task: str) -> list[Mapping]:
    """The file's top-level roles, then its ``tasks:`` entries matching ``task`` (a group or tag prefix of the
    name, shortest first, then the task's own name)."""
    entries = data.get("tasks") or {}
    keys = sorted((k for k in entries if task == k or task.startswith(f"{k}_")), key=lambda k: (k == task, len(k)))
    return [data, *(entries[k] or {} for k in keys)]


def generic_prompts(task: str, override: str | Path | None = None) -> PromptSet:
    """The verifier's and refiner's templates for the lm-eval task ``task`` (our file, then ``override``)."""
    own = tasks_dir() / PROMPTS_FILE
    paths = [own, *([Path(override)] if override else [])]
    sources = [(path, read_yaml_mapping(path, PROMPTS_WHAT)) for path in paths]
    templates: dict[str, dict[str, str]] = {}
    for path, data in sources:
        for layer in _layers(data, task):
            for role in GENERIC_ROLES:
                spec = layer.get(role)
                if spec is None:
                    continue
                if not isinstance(spec, dict) or not isinstance(spec.get("user"), str):
                    raise MaltError(f"{path}: role {role!r} has no 'user' template")
                templates[role] = {"system": str(spec.get("system") or ""), "user": spec["user"]}
    for role in GENERIC_ROLES:
        if role not in templates:
            raise MaltError(f"{own}: role {role!r} is missing")
        try:
            for text in templates[role].values():
                _CHECK.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise MaltError(f"{PROMPTS_FILE}: {role} template error: {exc.message}") from None
    # The generator answers the task's own context (SolveState.prompt); these two entries are never rendered.
    templates["generator"] = {"system": "", "user": "{{ question }}"}
    templates["question"] = {"user": "{{ doc }}"}
    return PromptSet(task, templates, str(override or own))


@dataclass(frozen=True)
class Request:
    """One lm-eval ``generate_until`` request as the solver sees it."""

    task: str
    doc_id: int
    doc: dict
    context: str
    gen_kwargs: dict

    @property
    def key(self) -> str:
        """Requests with equal keys share sampling parameters (one solver batch)."""
        return json.dumps([self.task, self.gen_kwargs], sort_keys=True, default=str)


def request_params(
    gen_kwargs: Mapping,
    roles: Sequence[str],
    tokens: Mapping[str, int | None],
    temperature: float | None,
    seed: int | None = None,
) -> dict[str, SamplingParams]:
    """Each role's sampling parameters for requests with lm-eval's ``gen_kwargs`` (see the module's rules).

    Args:
        tokens: our per-role token budgets (``None``: the request's ``max_gen_toks``).
        temperature: our temperature when given explicitly, else ``None`` (the request decides, as lm-eval's
            hf model does: greedy when ``do_sample`` is false, or unset with temperature 0).
    """
    kw = dict(gen_kwargs or {})
    until = kw.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    max_gen = int(kw.get("max_gen_toks") or LM_EVAL_MAX_GEN_TOKS)
    if temperature is None:
        do_sample, t = kw.get("do_sample"), float(kw.get("temperature") or 0.0)
        temperature = 0.0 if do_sample is False or (do_sample is None and t == 0.0) else (t or 1.0)
    top_p = float(kw.get("top_p") or 1.0) if temperature > 0 else 1.0
    stops = role_stops(until)
    out = {}
    for role in roles:
        out[role] = SamplingParams(int(tokens.get(role) or max_gen), float(temperature), top_p, 1, seed, stops[role])
    return out


def role_stops(until: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each role's stop strings from a request's ``until`` (see the module's rules)."""
    until = tuple(s for s in until if s)
    markers = tuple(s for s in until if any(c.isalnum() for c in s))
    return {"generator": until, "verifier": markers, "refiner": until}


def chat_text(chat: Sequence[Mapping[str, str]]) -> str:
    """The text of a chat lm-eval built (system instruction, few-shot turns, question) without any template."""
    return "\n\n".join(str(m.get("content", "")) for m in chat).strip()


def solve(
    requests: Sequence[Request], questions: Sequence[str], ctx: SolveContext, plan: SolverPlan
) -> list[SolveState]:
    """Run the plan's steps once over ``requests`` (one state each; lm-eval's ``repeats`` arrive as repeated requests).

    The plan's generator answers each state's ``prompt`` (lm-eval's context), so its roles must start with it."""
    if plan.roles[:1] != ("generator",):
        raise MaltError(f"lm-eval tasks need a generator-first agent list, got {letters(plan.roles)}")
    states = [
        SolveState(r.task, r.doc, r.doc_id, q, sample=0, prompt=r.context)
        for r, q in zip(requests, questions, strict=True)
    ]
    plan.build()(states, ctx)
    return states


def final_text(state: SolveState) -> str:
    """What lm-eval scores: the refiner's text, else the generator's (a critique alone is not an answer)."""
    return state.turns["refiner"].text if "refiner" in state.turns else state.turns["generator"].text


def role_prompts_digest(spec: Any) -> str:
    """The digest of the generic role prompts lm-eval tasks use (the shipped file and ``spec.prompts_file``)."""
    import hashlib
    from pathlib import Path

    from harness.tasks.prompts import tasks_dir

    prompts = hashlib.sha256()
    for path in (tasks_dir() / PROMPTS_FILE, spec.prompts_file):
        if path:
            prompts.update(Path(path).read_bytes())
    return prompts.hexdigest()
