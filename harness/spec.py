"""What an evaluation is, as one typed object: :class:`EvalSpec` (each field carries its help text).

``malt-eval``'s flags, ``malt-eval suite``'s shared flags, ``malt-train generate``'s model flags and the
``malt`` lm-eval model's arguments are all made from these fields (TRL's ``*Config`` pattern): a new
option is one new field here. :func:`harness.api.run_eval` evaluates a spec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import MaltError
from harness.core.maltrun import STAGES
from harness.core.roles import ROLES
from harness.inference.backends.base import PAPER_TEMPERATURE
from harness.inference.models import DEFAULT_MODEL, EMBEDDED
from harness.solver.plans import SolverPlan, agents_plan, debate_plan
from harness.solver.protocol import EvalConfig
from harness.tasks.taskinfo import TASKS, task_info


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its help text (and CLI hints: ``flag``, ``dest``, ``type``, ``choices``, ``metavar``,
    ``per_role`` for a role -> value mapping shown as one flag per role)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


#: ``group`` metadata of the fields that set up lm-eval's tasks (the suite passes them to every row).
LM_EVAL_TASK = "lm_eval_task"
#: ``group`` metadata of the fields that log a run elsewhere (lm-eval's trackers); they never change a result.
TRACKING = "tracking"


def field_names(cls: type, group: str) -> tuple[str, ...]:
    """The fields of the dataclass ``cls`` whose ``group`` metadata is ``group``, in order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("group") == group)


@dataclass
class EngineSpec:
    """Where the roles run: the model, the inference backend and its settings."""

    model: str | None = option(
        None,
        "Model dir, hub id or embedded alias ("
        + ", ".join(f"{m} [default]" if m == DEFAULT_MODEL else m for m in EMBEDDED)
        + ").",
    )
    data_dir: str | None = option(None, "Folder of the benchmark JSONL files (default: $MALT_DATA_DIR, else the hub).")
    prompts_file: str | None = option(None, "YAML file overriding the role prompts.", flag="--prompts")
    backend: str = option(
        "hf",
        "Inference backend: hf (generate() on CPUs, continuous batching on GPUs), hf-generate, hf-continuous, "
        "vllm or openai.",
    )
    base_url: str | None = option(None, "--backend openai: the server's API root (default http://127.0.0.1:8000/v1).")
    api_key: str | None = option(None, "--backend openai: API key (default $OPENAI_API_KEY, else EMPTY).")
    dtype: str = option("auto", "auto, bfloat16, float16 or float32.")

    def load_engines(
        self,
        roles: tuple[str, ...],
        batch_size: int,
        model: str | None = None,
        role_models: Mapping[str, str | None] | None = None,
        role_adapters: Mapping[str, str | None] | None = None,
        **backend_kwargs: Any,
    ) -> tuple[dict, dict]:
        """Load the roles' engines (:func:`harness.inference.engines.build_engines`): ``model`` (default: this spec's)
        on this spec's backend and dtype (``backend_kwargs``: more backend arguments, e.g. ``device``); return
        them with a description of what each role runs."""
        from harness.inference.engines import backend_options, build_engines

        return build_engines(
            model or self.model,
            roles,
            role_models,
            role_adapters,
            self.backend,
            batch_size=batch_size,
            dtype=self.dtype,
            **backend_options(self.backend, self.base_url, self.api_key),
            **backend_kwargs,
        )


@dataclass
class EvalSpec(EngineSpec):
    """One evaluation: which system (models, adapters, agents or a debate, votes, sampling) answers which
    benchmark questions (tasks, seeds, subsets), and where its results go.

    Example::

        from harness import EvalSpec, run_eval

        results = run_eval(EvalSpec(model="smollm2-135m", agents="g,v,r", tasks="malt_gsm8k", limit=5))
    """

    agents: str = option("g,v,r", "g, g,v, g,r or g,v,r.")
    tasks: tuple[str, ...] | str = option(
        "malt_gsm8k",
        f"Comma-separated: our {','.join(TASKS)} and/or any lm-eval generate_until task, group or tag "
        "(stock, or from --include-path), e.g. gsm8k_cot_zeroshot.",
    )
    votes: int = option(1, "Independent pipelines per question, majority-voted.")
    temperature: float = option(PAPER_TEMPERATURE, "Sampling temperature (0 with --votes 1: greedy).")
    seeds: int = option(1, "Runs, each on its own seeded subset.")
    subset: int | None = option(None, "Random test questions per seed (the paper's protocol).", type=int)
    limit: int | None = option(None, "First N questions only (smoke runs; flagged in the results).", type=int)
    batch_size: int = option(16, "Questions per stage batch and sequences per forward.")
    max_new_tokens: int | str | dict[str, int] | None = option(
        None,
        "N for all roles or role=N,... (default per task: "
        + ", ".join(f"{t.alias} {t.max_new_tokens}" for t in TASKS.values())
        + ").",
        type=str,
    )
    output_path: str | None = option(None, "Folder for the results JSON (and sample logs).")
    start_over: bool = option(
        False,
        "Start --output-path over: move its earlier run record, checkpoint, caches and results into "
        "OUT/superseded-<timestamp>/ (nothing is deleted), then run.",
    )
    log_samples: bool = option(False, "Write every role's prompt, text and answer per question.")
    malt_run: str | None = option(None, "A malt-train run folder: use its base model and role adapters.")
    stage: str = option(
        "final", "With --malt-run: final (MALT) adapters or sft (STaR baseline) adapters.", choices=tuple(STAGES)
    )
    debate: str | None = option(
        None,
        "Multi-agent debate instead of the roles: A agents x R rounds (e.g. 3x3) on the generator's model.",
        metavar="AxR",
    )
    label: str | None = option(None, "Name of this system on malt-leaderboard (malt.label in the results).")
    role_models: dict[str, str | None] = option({}, "Base model of the {role} (default: --model).", per_role="model")
    role_adapters: dict[str, str | None] = option({}, "PEFT LoRA adapter dir for the {role}.", per_role="adapter")
    # lm-eval's own settings for lm-eval tasks (harness.lmeval.run); the malt_* tasks have their own prompts.
    include_path: str | None = option(
        None, "lm-eval tasks: a folder of extra task YAMLs (lm-eval's --include_path).", group=LM_EVAL_TASK
    )
    num_fewshot: int | None = option(
        None, "lm-eval tasks: few-shot examples (default: each task's own).", type=int, group=LM_EVAL_TASK
    )
    gen_kwargs: str | None = option(
        None,
        "lm-eval tasks: k=v,... or a JSON object overriding the tasks' generation_kwargs (until, max_gen_toks...).",
        group=LM_EVAL_TASK,
    )
    apply_chat_template: bool = option(
        False, "lm-eval tasks: the generator's context in the model's chat template.", group=LM_EVAL_TASK
    )
    system_instruction: str | None = option(
        None, "lm-eval tasks: a system instruction before each context.", group=LM_EVAL_TASK
    )
    fewshot_as_multiturn: bool = option(
        False, "lm-eval tasks: few-shot examples as chat turns (needs the template).", group=LM_EVAL_TASK
    )
    # lm-eval's trackers (harness.tracking), on every task: ours and lm-eval's
    wandb_args: str | None = option(
        None,
        "Log the results (and samples) to Weights & Biases: wandb.init arguments k=v,... "
        "(lm-eval's --wandb_args, e.g. project=malt,mode=offline).",
        group=TRACKING,
    )
    wandb_config_args: str | None = option(
        None,
        "With --wandb-args: k=v,... added to the W&B run's config (lm-eval's --wandb_config_args).",
        group=TRACKING,
    )
    hf_hub_log_args: str | None = option(
        None,
        "Push the results (and samples) to the Hugging Face hub: EvaluationTracker arguments k=v,... "
        "(lm-eval's --hf_hub_log_args, e.g. hub_results_org=ORG,push_results_to_hub=True; token: $HF_TOKEN).",
        group=TRACKING,
    )
    confirm_run_unsafe_code: bool = option(
        False,
        "lm-eval tasks: run tasks that execute the model's code (humaneval, mbpp; lm-eval's --confirm_run_unsafe_code; "
        "their code_eval metric also needs HF_ALLOW_CODE_EVAL=1).",
        group=LM_EVAL_TASK,
    )

    # ------------------------------------------------------------------ reading the fields
    def all_task_names(self) -> list[str]:
        """Every task name as given, in order, each once (never remapped: ``gsm8k`` is lm-eval's, not ours)."""
        names = self.tasks.split(",") if isinstance(self.tasks, str) else list(self.tasks)
        names = [t.strip() for t in names if t and t.strip()]
        if not names:
            raise MaltError(f"no task given: use --tasks {','.join(TASKS)} or an lm-eval task")
        return list(dict.fromkeys(names))

    def task_names(self) -> list[str]:
        """Our malt_* tasks among :meth:`all_task_names` (run by :func:`harness.api.run_eval` itself)."""
        return [t for t in self.all_task_names() if t in TASKS]

    def lm_eval_task_names(self) -> list[str]:
        """The other tasks: lm-eval's, run through lm-eval with the solver as the model."""
        return [t for t in self.all_task_names() if t not in TASKS]

    def solver_plan(self) -> SolverPlan:
        """The plan the spec asks for: the ``agents`` chain, or a ``debate`` (which fixes the votes)."""
        if not self.debate:
            return agents_plan(self.agents)
        if self.votes != 1:
            raise MaltError("--debate AxR sets the votes (A agents, majority-voted): leave --votes at 1")
        return debate_plan(self.debate)

    def role_tokens(self, roles: tuple[str, ...] = ROLES) -> dict[str, int | None]:
        """``max_new_tokens`` per role (``None``: the task's default, :attr:`TaskInfo.max_new_tokens`)."""
        value = self.max_new_tokens
        if isinstance(value, Mapping):
            out = {r: value.get(r) for r in roles}
            unknown = [r for r in value if r not in ROLES]
            if unknown:
                raise MaltError(f"--max-new-tokens: unknown role {unknown[0]!r}")
        elif value is None or (isinstance(value, str) and not value.strip()):
            return dict.fromkeys(roles)
        else:
            out = _parse_tokens(str(value), roles)
        if any(v is not None and (not isinstance(v, int) or v < 1) for v in out.values()):
            raise MaltError("--max-new-tokens must be at least 1")
        return out

    def trained_roles(self, roles: tuple[str, ...]) -> tuple[str | None, dict[str, str | None], tuple[str, ...]]:
        """The base model and each role's adapter this spec runs, ``--malt-run``'s stage resolved (an adapter given
        per role wins over the run's), with the run's notes (roles left on the base model)."""
        model, adapters = self.model, {r: self.role_adapters.get(r) for r in roles}
        if not self.malt_run:
            return model, adapters, ()
        from harness.core.maltrun import stage_adapters

        trained = stage_adapters(self.malt_run, self.stage, self.model)
        return trained.model, {r: adapters[r] or trained.adapters.get(r) for r in roles}, trained.notes

    def task_tokens(self, task: str, roles: tuple[str, ...]) -> dict[str, int]:
        """The token budget of each role on ``task``."""
        default = task_info(task).max_new_tokens
        return {r: n or default for r, n in self.role_tokens(roles).items()}

    def protocol(self, plan: SolverPlan | None = None) -> EvalConfig:
        """The questions, votes, sampling and batching of the run (what :func:`harness.run.evaluate.run_task` takes)."""
        plan = plan or self.solver_plan()
        return EvalConfig(
            roles=plan.roles,
            votes=plan.votes or self.votes,
            temperature=self.temperature,
            seeds=self.seeds,
            subset=self.subset,
            limit=self.limit,
            batch_size=self.batch_size,
            max_new_tokens=self.role_tokens(plan.roles),
            log_samples=self.log_samples,
            solver=plan.build(),
        )

    def check(self) -> SolverPlan:
        """Raise ``MaltError`` for anything that cannot run (before any model or data is loaded); return the plan."""
        plan = self.solver_plan()
        foreign = [t for t in self.all_task_names() if t not in TASKS]
        if foreign:  # lm-eval's tasks: known and generative (one line with close names otherwise)
            from harness.lmeval.tasks import check_tasks

            check_tasks(foreign, self.include_path, self.confirm_run_unsafe_code)
        from harness.tracking import check as check_tracking

        check_tracking(self)
        if self.stage not in STAGES:
            raise MaltError(f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        self.protocol(plan).check()
        return plan

    # ------------------------------------------------------------------ as options
    def options(self) -> dict[str, Any]:
        """The spec as ``malt-eval`` option values, keyed by option name (roles' options one per role)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("per_role"):
                for role in ROLES:
                    out[f"{role}_{f.metadata['per_role']}"] = value.get(role)
            elif f.name == "tasks" and not isinstance(value, str):
                out[f.name] = ",".join(value)
            elif f.name == "max_new_tokens" and value is not None:
                out[f.name] = _tokens_text(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EvalSpec:
        """A spec from option values keyed by field or option name (``generator_adapter=...`` per role).

        Raises:
            MaltError: for a name that is no option.
        """
        return from_options(cls, options)


def from_options(cls: type, options: Mapping[str, Any]) -> Any:
    """An instance of the dataclass ``cls`` from option values (per-role fields as ``<role>_<kind>`` keys)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    per_role = {f.metadata["per_role"]: f.name for f in fields.values() if f.metadata.get("per_role")}
    kwargs: dict[str, Any] = {}
    unknown = []
    for key, value in options.items():
        role, _, kind = key.partition("_")
        if key in fields:
            kwargs[key] = dict(value or {}) if key in per_role.values() else value
        elif role in ROLES and kind in per_role:
            kwargs.setdefault(per_role[kind], {})[role] = value
        else:
            unknown.append(key)
    if unknown:
        known = [n for n in fields if n not in per_role.values()] + [f"<role>_{k}" for k in per_role]
        raise MaltError(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(known)})")
    for name in per_role.values():
        if name in kwargs:
            kwargs[name] = {r: v for r, v in kwargs[name].items() if v is not None}
    return cls(**kwargs)


def _parse_tokens(value: str, roles: tuple[str, ...]) -> dict[str, int | None]:
    """``"512"`` (all roles) or ``"generator=512,verifier=256"``."""
    out: dict[str, int | None] = dict.fromkeys(roles)
    try:
        if "=" not in value:
            return dict.fromkeys(roles, int(value))
        for part in value.split(","):
            role, n = part.split("=")
            role = role.strip()
            if role not in ROLES:
                raise MaltError(f"--max-new-tokens: unknown role {role!r}")
            if role in out:
                out[role] = int(n)
    except ValueError:
        raise MaltError(f"--max-new-tokens: expected N or role=N,..., got {value!r}") from None
    return out


def _tokens_text(value: int | str | Mapping[str, int]) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{r}={n}" for r, n in value.items() if n is not None)
    return str(value)
