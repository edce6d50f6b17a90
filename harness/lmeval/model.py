"""The multi-agent system as an lm-eval model: ``--model malt`` / ``simple_evaluate(model=MaltLM(...))``.

On our malt_* tasks the roles use the tasks' tuned prompts and the voted answer is returned; on any other
lm-eval ``generate_until`` task the generator answers lm-eval's own context and the verifier and refiner get
generic role prompts (:mod:`harness.lmeval.solver`), so the task's own filters and metrics score the result.
Models load on the first request, so a task lm-eval refuses costs no model load.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lm_eval.api.model import LM, hash_args
from lm_eval.api.registry import register_model

from harness.core.digests import doc_hash
from harness.core.errors import MaltError
from harness.core.roles import ROLES
from harness.inference.backends.base import SamplingParams
from harness.inference.engines import RoleEngine
from harness.lmeval.solver import Request, chat_text, final_text, generic_prompts, request_params, solve
from harness.solver.protocol import batch_seed, solve_questions
from harness.solver.steps import SolveContext
from harness.spec import EvalSpec
from harness.tasks.grading import extract_answer, normalize_answer
from harness.tasks.prompts import load_prompts
from harness.tasks.taskinfo import TASKS
from harness.tasks.voting import majority_vote

#: ``--model_args`` keys of the ``malt`` model (fields of :class:`EvalSpec` describing the system); the rest of
#: a run (tasks, limit, output, samples, batch size, few-shot, chat template...) are lm-eval's own flags.
MODEL_ARGS = (
    "model",
    "agents",
    "votes",
    "temperature",
    "max_new_tokens",
    "backend",
    "base_url",
    "api_key",
    "dtype",
    "data_dir",
    "malt_run",
    "stage",
    "debate",
    "prompts",
    "device",
) + tuple(f"{r}_{kind}" for r in ROLES for kind in ("model", "adapter"))


def _batch_size(value: Any) -> int:
    """lm-eval's ``--batch_size``: N, or ``auto``/``auto:N`` (our default stage batch: questions per role call)."""
    if value is None or str(value).startswith("auto"):
        return int(EvalSpec.batch_size)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MaltError(f"--batch_size must be a number or auto, got {value!r}") from None


@register_model("malt")
class MaltLM(LM):
    """Generator -> verifier -> refiner (or a subset) answering lm-eval ``generate_until`` requests.

    Keyword arguments are :data:`MODEL_ARGS` (``model``, ``agents``, ``votes``, ``temperature``, ``max_new_tokens``,
    ``backend``, ``dtype``, ``device``, per-role ``<role>_model``/``<role>_adapter``, ...); an unknown key is a
    one-line error. In ``--model_args`` (split at commas by lm-eval) write agent lists as ``agents=g+v+r`` or
    ``agents=gvr``. ``batch_size`` is lm-eval's ``--batch_size`` (``auto``: 16 questions per stage batch).

    Args:
        prompts: override prompts file (``EvalSpec.prompts_file``; for lm-eval tasks, the generic roles' file).
        engines: ready-made role engines (Python use, e.g. a scripted backend in tests).
    """

    def __init__(
        self,
        prompts: str | None = None,
        engines: dict[str, RoleEngine] | None = None,
        batch_size: Any = None,
        max_batch_size: int | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        unknown = [k for k in options if k not in MODEL_ARGS]
        if unknown:
            names, known = ", ".join(unknown), ", ".join(MODEL_ARGS)
            raise MaltError(f"--model malt: unknown option(s) in model_args: {names} (known: {known})")
        spec = EvalSpec.from_options({**options, "prompts_file": prompts, "batch_size": _batch_size(batch_size)})
        self._setup(spec, engines, "temperature" in options, device)

    @classmethod
    def from_spec(
        cls, spec: EvalSpec, engines: dict[str, RoleEngine] | None = None, lm_eval_votes: bool = False
    ) -> MaltLM:
        """The model for ``spec``'s system. ``lm_eval_votes``: lm-eval's ``repeats`` carry the votes (one
        pipeline per request, sampled at ``spec.temperature`` when ``spec.votes > 1``)."""
        lm = cls.__new__(cls)
        LM.__init__(lm)
        given = spec.votes > 1
        if lm_eval_votes:
            spec = dataclasses.replace(spec, votes=1)
        lm._setup(spec, engines, given, None)
        return lm

    def _setup(self, spec: EvalSpec, engines, temperature_given: bool, device: str | None) -> None:
        self.spec = spec
        self.temperature_given = temperature_given  # else each lm-eval request's own sampling decides
        self.plan = self.spec.solver_plan()
        self.votes = self.plan.votes or int(self.spec.votes)
        self.batch_size = int(self.spec.batch_size)
        self.device_arg = device
        self._engines = engines
        self._tokenizer = None
        self._chats: dict[str, list[dict]] = {}  # chat-templated context -> the chat lm-eval built
        self.records: dict[tuple[str, int], list[dict]] = {}  # (task, doc_id) -> each pipeline's states, in order
        self.doc_ids: dict[tuple[str, str], int] = {}  # (task, lm-eval's doc_hash) -> the requests' doc_id
        self.seed = 0  # the run's seed (harness.lmeval.run: one evaluation per seed); offsets the sampling seeds

    # ------------------------------------------------------------------ models (loaded on first use)
    def load_engines(self) -> dict[str, RoleEngine]:
        """The role engines: given ones, or the spec's models, loaded on the first call."""
        if self._engines is None:
            s = self.spec
            model, adapters, _ = s.trained_roles(self.plan.roles)
            extra = {}
            if self.device_arg and s.backend == "hf" and not _absent_cuda(self.device_arg):
                extra["device"] = self.device_arg
            self._engines, _ = s.load_engines(self.plan.roles, self.batch_size, model, s.role_models, adapters, **extra)
        return self._engines

    def loaded_engines(self) -> dict[str, RoleEngine] | None:
        """The role engines when loaded (or given), else ``None``: no request reached the models (e.g. every
        one was answered from lm-eval's request cache)."""
        return self._engines

    # ------------------------------------------------------------------ lm-eval's chat-template hooks
    def _tok(self):
        if self._tokenizer is None:
            backend = self._engines["generator"].backend if self._engines else None
            self._tokenizer = getattr(backend, "tokenizer", None)
        if self._tokenizer is None:
            from harness.inference.backends import get_backend

            if get_backend(self.spec.backend).remote:
                raise MaltError("--apply_chat_template needs the model's tokenizer: use --backend hf or vllm")
            from transformers import AutoTokenizer

            from harness.inference.models import resolve_model

            ref = resolve_model(self.spec.role_models.get("generator") or self.spec.model)
            self._tokenizer = AutoTokenizer.from_pretrained(ref)
        return self._tokenizer

    @property
    def tokenizer_name(self) -> str:
        """The generator's tokenizer (lm-eval keys its request cache by it)."""
        return str(self._tok().name_or_path).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The generator's chat template (a named one from a dict of templates)."""
        tpl = self._tok().chat_template
        if isinstance(tpl, dict):
            tpl = tpl.get(chat_template if isinstance(chat_template, str) else "default")
        return tpl or ""

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The chat as the generator's prompt text (as lm-eval's hf model renders it: a template that refuses a
        system turn gets the chat without it)."""
        import jinja2

        kw = dict(tokenize=False, add_generation_prompt=add_generation_prompt)
        kw["continue_final_message"] = not add_generation_prompt
        try:
            text = self._tok().apply_chat_template(chat_history, **kw)
        except jinja2.exceptions.TemplateError:
            text = self._tok().apply_chat_template([m for m in chat_history if m["role"] != "system"], **kw)
        self._chats[text] = list(chat_history)
        return text

    # ------------------------------------------------------------------ requests
    def _context(self, task: str, seed: int) -> SolveContext:
        tokens = self.spec.task_tokens(task, self.plan.roles)
        temperature = float(self.spec.temperature)
        params = {r: SamplingParams(int(tokens[r]), temperature, 1.0, 1, seed) for r in self.plan.roles}
        return SolveContext({task: load_prompts(task, self.spec.prompts_file)}, self.load_engines(), params)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Run the pipeline over all requests, stage-batched per task (and per sampling setting); return the
        system's text for each."""
        out: list[str] = [""] * len(requests)
        for r in requests:
            self.doc_ids.setdefault((r.task_name, doc_hash(r.doc)), r.doc_id)
        ours = [i for i, r in enumerate(requests) if r.task_name in TASKS]
        foreign = [i for i, r in enumerate(requests) if r.task_name not in TASKS]
        self._ours(requests, ours, out)
        if foreign:
            self._foreign(requests, foreign, out)
        return out

    def _ours(self, requests, idx: list[int], out: list[str]) -> None:
        by_task: dict[str, list[int]] = {}
        for i in idx:
            by_task.setdefault(requests[i].task_name, []).append(i)
        for task, ids in by_task.items():
            for start in range(0, len(ids), self.batch_size):
                chunk = ids[start : start + self.batch_size]
                docs = [(requests[i].doc_id, requests[i].doc) for i in chunk]
                ctx = self._context(task, batch_seed(self.seed, start))
                groups = solve_questions(task, docs, ctx, self.plan.build(), self.votes)
                for i, group in zip(chunk, groups, strict=True):
                    out[i] = _final_text(task, group)
                    self._keep(requests[i], out[i], [s.to_dict() for s in group])
                self._commit()

    def _foreign(self, requests, idx: list[int], out: list[str]) -> None:
        if self.plan.key:
            raise MaltError(
                f"{self.plan.name} runs on malt_* tasks only; lm-eval tasks take --agents g, g,v, g,r, g,v,r"
            )
        if self.votes > 1:
            raise MaltError(
                "votes>1 on lm-eval tasks: use malt-eval --votes K (lm-eval's repeats + majority_vote on the task's "
                "filters) or a task with repeats (e.g. gsm8k_cot_self_consistency)"
            )
        roles = self.plan.roles
        tokens = self.spec.role_tokens(roles)
        temperature = float(self.spec.temperature) if self.temperature_given else None
        reqs = {
            i: Request(r.task_name, r.doc_id, r.doc, r.args[0], dict(r.args[1] or {})) for i, r in _at(requests, idx)
        }
        groups: dict[str, list[int]] = {}
        for i in idx:
            groups.setdefault(reqs[i].key, []).append(i)
        prompts: dict = {}
        for ids in groups.values():
            first = reqs[ids[0]]
            if first.task not in prompts:
                prompts[first.task] = generic_prompts(first.task, self.spec.prompts_file)
            for start in range(0, len(ids), self.batch_size):
                chunk = [reqs[i] for i in ids[start : start + self.batch_size]]
                seed = batch_seed(self.seed, start)
                params = request_params(first.gen_kwargs, roles, tokens, temperature, seed=seed)
                ctx = SolveContext({first.task: prompts[first.task]}, self.load_engines(), params)
                questions = [
                    chat_text(self._chats[r.context]) if r.context in self._chats else r.context for r in chunk
                ]
                states = solve(chunk, questions, ctx, self.plan)
                for i, s in zip(ids[start : start + self.batch_size], states, strict=True):
                    out[i] = final_text(s)
                    self._keep(requests[i], out[i], [s.to_dict()])
                self._commit()

    # ------------------------------------------------------------------ lm-eval's request cache (--use_cache)
    def _keep(self, request, text: str, pipelines: list[dict]) -> None:
        """Record a finished request: its pipelines' states here, and in lm-eval's request cache (when lm-eval's
        ``CachingLM`` wraps this model) its text, which lm-eval reads back instead of asking again, and the states
        (:meth:`cached_pipelines`)."""
        self.records.setdefault((request.task_name, request.doc_id), []).extend(pipelines)
        self.cache_hook.add_partial("generate_until", request.args, text)
        self.cache_hook.add_partial(PIPELINES, request.args, pipelines)

    def _commit(self) -> None:
        """Write the cached requests of a finished batch now (an interrupted run keeps them)."""
        db = getattr(self.cache_hook, "dbdict", None)
        if db is not None:
            db.commit()

    def cached_pipelines(self, args) -> list[dict]:
        """The states kept in lm-eval's request cache for a request's ``args`` (a request lm-eval answered from
        its cache never reaches this model); ``[]`` without a cache or record."""
        db = getattr(self.cache_hook, "dbdict", None)
        return list(db.get(hash_args(PIPELINES, args), [])) if db is not None else []

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise MaltError(_NOT_GENERATIVE.format(kind="loglikelihood"))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise MaltError(_NOT_GENERATIVE.format(kind="loglikelihood_rolling"))


#: The key under which each request's pipeline states join its text in lm-eval's request cache.
PIPELINES = "malt_pipelines"
_NOT_GENERATIVE = "the malt model answers generate_until tasks only, not {kind} (multiple-choice) ones"


def _at(requests, idx: list[int]):
    return ((i, requests[i]) for i in idx)


def _absent_cuda(device: str) -> bool:
    """lm-eval's CLI passes ``device=cuda:0`` by default: on a machine without CUDA that means 'the default'."""
    if not str(device).startswith("cuda"):
        return False
    import torch

    return not torch.cuda.is_available()


def _final_text(task: str, group: list) -> str:
    """The text of the sample that gave the voted answer, ending with that answer if it states another."""
    answer, first = majority_vote(task, [s.answer for s in group])
    text = group[first or 0].final_text
    if answer is not None and normalize_answer(task, extract_answer(task, text)) != normalize_answer(task, answer):
        text += f"\n\nFinal Answer: {answer}"
    return text
