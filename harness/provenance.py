"""The provenance record: everything that made a result, the one source of "same run" and "same system".

A :class:`Provenance` names, per role, the model with its weights digest and the adapter with its content
digest; the solver plan; backend, dtype and batch size; every generation setting; seeds, subset and limit;
per task the digest of the questions drawn (in order), of the prompts or task template, and the task
version; package versions and the git commit of the checkout. It is written into every results file
(``malt.provenance``) and into an evaluation folder's ``provenance.json``.

- same run (eval resume, lm-eval request cache, suite row reuse): equal records but ``git``
  (:meth:`Provenance.run_key`);
- same system (a leaderboard row): equal records but ``tasks``, ``versions`` and ``git`` (:meth:`Provenance.system`).

Two records that differ are described by the dotted paths of the settings that differ
(:func:`harness.core.identity.differences`,
e.g. ``generation.temperature``, ``roles.verifier.adapter_digest``). Content digests come from
:mod:`harness.core.digests` (files hashed once, cached by path, size and mtime).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.core.digests import docs_digest, json_digest, path_digest, tree_digest
from harness.core.identity import RUN_EXCLUDES
from harness.inference.models import DEFAULT_MODEL, EMBEDDED

PROVENANCE_FORMAT = 1
#: Packages whose versions join the record (distribution name -> record key).
PACKAGES = {
    "malt-harness": "malt",
    "lm_eval": "lm_eval",
    "torch": "torch",
    "transformers": "transformers",
    "peft": "peft",
    "trl": "trl",
    "vllm": "vllm",
}
#: Files of a model folder that make its weights: weights, config and tokenizer (top level only).
_MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt", ".jinja", ".tiktoken")
#: Parts left out of "same system" ("same run" leaves out ``RUN_EXCLUDES``, :mod:`harness.core.identity`).
SYSTEM_EXCLUDES = ("tasks", "versions", "git")


@dataclass
class Provenance:
    """What made a result (see the module docstring); ``to_dict`` is the ``malt.provenance`` record."""

    roles: dict[str, dict] = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)
    protocol: dict = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    git: str | None = None
    format: int = PROVENANCE_FORMAT

    def to_dict(self) -> dict:
        """The record as JSON-ready data (``format`` first)."""
        out = asdict(self)
        return {"format": out.pop("format"), **out}

    @classmethod
    def from_dict(cls, data: Mapping) -> Provenance:
        """A record read back from a results file or ``provenance.json`` (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def run_key(self) -> str:
        """The digest of "same run": the record but ``git``."""
        return json_digest(run_of(self.to_dict()))

    def system(self) -> dict:
        """ "Same system" (a leaderboard row): the record but ``tasks``, ``versions`` and ``git``."""
        return system_of(self.to_dict())


def system_of(record: Mapping) -> dict:
    """ "Same system" of a record read from a file (a ``malt.provenance`` mapping)."""
    return _without(record, SYSTEM_EXCLUDES)


def run_of(record: Mapping) -> dict:
    """ "Same run" of a record read from a file: the record but ``git``."""
    return _without(record, RUN_EXCLUDES)


def _without(record: Mapping, keys: Iterable[str]) -> dict:
    skip = set(keys)
    return {k: v for k, v in record.items() if k not in skip}


def system_fields(
    agents: str,
    votes: int,
    roles: Any,
    temperature: float | None,
    provenance: Mapping | None,
    seeds: int = 1,
    subset: int | None = None,
    label: str | None = None,
) -> dict:
    """The fields of a results file's ``malt`` block that every writer fills: the system that answered.

    ``agents``: the plan's name; ``votes``: answers voted per question; ``roles``: the roles as the writer
    describes them (our tasks: what each ran, by role; lm-eval's tasks: their names, models and adapters beside);
    ``temperature``: ``None`` where each task keeps its own; ``provenance``: the run's record (left out when
    ``None``); ``seeds``, ``subset``: the protocol; ``label``: the row's name on the leaderboard (left out when
    empty). Each writer adds its own path's fields to these.
    """
    out: dict = {
        "agents": agents,
        "votes": int(votes),
        "roles": roles,
        "temperature": temperature,
        "seeds": seeds,
        "subset": subset,
    }
    if label:
        out["label"] = label
    if provenance is not None:
        out["provenance"] = dict(provenance)
    return out


# ---------------------------------------------------------------------- parts
def weights_digest(model: str | None) -> str | None:
    """The content digest of a model's weights, config and tokenizer files.

    An embedded alias: the sha256 of its GGUF (verified when assembled; the cached bf16 copy is made from it).
    A local model folder (or a hub id in the local hub cache): the digest of its top-level weight, config and
    tokenizer files. Anything else (a hub id not on disk, a served model's name): ``None``.
    """
    name = model or DEFAULT_MODEL
    if name in EMBEDDED:
        return EMBEDDED[name].sha256
    path = Path(name).expanduser()
    if not path.is_dir():
        path = _hub_snapshot(name)
    if path is None or not path.is_dir():
        return None
    files = [
        f.name
        for f in path.iterdir()
        if f.is_file() and f.name.endswith(_MODEL_SUFFIXES) and not f.name.startswith(".")
    ]
    return tree_digest(path, files) if files else None


def _hub_snapshot(name: str) -> Path | None:
    """The local hub cache's snapshot of a hub id, or ``None`` (no download is tried)."""
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or no hub library: unknown weights
        return None


def role_records(
    roles: Iterable[str], model: str | None, role_models: Mapping[str, str | None], adapters: Mapping[str, str | None]
) -> dict[str, dict]:
    """Per role: model name, weights digest, adapter path and adapter content digest."""
    out = {}
    for role in roles:
        name = role_models.get(role) or model or DEFAULT_MODEL
        adapter = adapters.get(role)
        local = adapter and Path(adapter).expanduser()
        out[role] = {
            "model": name,
            "weights": weights_digest(name),
            "adapter": str(local.resolve()) if local and local.exists() else adapter,
            "adapter_digest": path_digest(local) if local else None,
        }
    return out


def plan_record(plan: Any) -> dict:
    """The solver plan without prompt hashes: agents, roles, and its own record (a debate's agents, rounds)."""
    out: dict = {"agents": plan.name, "roles": list(plan.roles), "votes": plan.votes}
    if plan.key:
        out[plan.key] = dict(plan.record)
    return out


def engine_record(spec: Any) -> dict:
    """Backend, dtype and batch size (and the server of a remote backend)."""
    out = {"backend": spec.backend, "dtype": spec.dtype, "batch_size": int(spec.batch_size)}
    if spec.base_url:
        out["base_url"] = spec.base_url
    return out


def generation_record(spec: Any, votes: int, temperature: float | None, top_p: float | None) -> dict:
    """Every generation setting; ``max_new_tokens`` per role as given (``None``: the task's default)."""
    roles = spec.solver_plan().roles
    return {
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": spec.role_tokens(roles),
        "votes": int(votes),
        "stop": None,
        "num_fewshot": spec.num_fewshot,
        "apply_chat_template": bool(spec.apply_chat_template),
        "fewshot_as_multiturn": bool(spec.fewshot_as_multiturn),
        "system_instruction": spec.system_instruction,
        "gen_kwargs": spec.gen_kwargs,
    }


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that compute a result (``None``: not installed)."""
    out: dict[str, str | None] = {}
    for dist, key in PACKAGES.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or ``None`` (an installed wheel, no git)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


# ---------------------------------------------------------------------- builders
def from_run(run: Any, engines: Mapping | None = None) -> Provenance:
    """The record of a resolved evaluation of malt_* tasks (:class:`harness.run.runner.Run`).

    ``engines``: ready-made role engines (a scripted backend): a role without a model of its own is named by
    its backend's ``model_id``.
    """
    from harness.solver.protocol import batches

    spec, cfg, plan = run.spec, run.cfg, run.plan
    model = run.model
    if engines and not model:
        model = getattr(getattr(engines.get(cfg.roles[0]), "backend", None), "model_id", None)
    tasks = {}
    for t in run.tasks:
        drawn = [run.docs[t][i] for _, _, chunk in batches(len(run.docs[t]), cfg) for i in chunk]
        p = run.prompts[t]
        step = plan.step_hash(p)
        tasks[t] = {
            "data": docs_digest(drawn),
            "prompts": p.hash if step is None else json_digest([p.hash, step]),
            "version": _task_version(t),
            "max_new_tokens": spec.task_tokens(t, cfg.roles),
        }
    return Provenance(
        roles=role_records(cfg.roles, model, run.role_models, run.role_adapters),
        plan=plan_record(plan),
        engine=engine_record(spec),
        generation=generation_record(spec, cfg.votes, float(cfg.temperature), float(cfg.top_p)),
        protocol={"seeds": list(range(cfg.seeds)), "subset": cfg.subset, "limit": cfg.limit},
        tasks=tasks,
        versions=versions(),
        git=git_commit(),
    )


def _task_version(task: str) -> str:
    from harness.tasks.prompts import task_version

    return str(task_version(task))


def from_lm(lm: Any, tasks: Mapping[str, dict], seeds: Iterable[int] | None = None) -> Provenance:
    """The record of an lm-eval-task run by :class:`harness.lmeval.model.MaltLM` (``tasks``: :func:`lm_eval_tasks`)."""
    spec = lm.spec
    model, adapters, _ = spec.trained_roles(lm.plan.roles)
    if lm._engines and not model:  # ready-made engines: the generator's backend names the model
        model = getattr(getattr(lm._engines.get(lm.plan.roles[0]), "backend", None), "model_id", None)
    temperature = float(spec.temperature) if lm.temperature_given else None  # None: each request's own
    return Provenance(
        roles=role_records(lm.plan.roles, model, spec.role_models, adapters),
        plan=plan_record(lm.plan),
        engine=engine_record(spec),
        generation=generation_record(spec, lm.votes, temperature, None),
        protocol={
            "seeds": list(seeds) if seeds is not None else [int(getattr(lm, "seed", 0))],
            "subset": spec.subset,
            "limit": spec.limit,
        },
        tasks=dict(tasks),
        versions=versions(),
        git=git_commit(),
    )


def lm_eval_tasks(
    loaded: Mapping[str, Any], picked: Mapping[str, list[int]] | None, limit: int | float | None, prompts_digest: str
) -> dict[str, dict]:
    """Per lm-eval task: the digest of lm-eval's doc hashes of the documents drawn (``picked`` indices, else the
    first ``limit``, else all), of the task's config (template, few-shot, filters, generation) with the generic
    role prompts (``prompts_digest``), and the task's version."""
    import math

    from harness.core.digests import doc_hash

    out = {}
    for name, task in loaded.items():
        docs = list(task.eval_docs)
        if picked is not None and picked.get(name) is not None:
            ids = list(picked[name])
        elif limit is not None:
            n = int(math.ceil(len(docs) * limit)) if limit < 1.0 else int(limit)
            ids = list(range(min(n, len(docs))))
        else:
            ids = list(range(len(docs)))
        out[name] = {
            "data": json_digest([doc_hash(docs[i]) for i in ids]),
            "prompts": task_template_digest(task, prompts_digest),
            "version": _version(task),
        }
    return out


def task_template_digest(task: Any, prompts_digest: str) -> str:
    """The digest of an lm-eval task's config as lm-eval dumps it (templates, few-shot, filters, generation
    settings; object addresses dropped) with the generic role prompts' digest."""
    import json
    import re

    text = json.dumps(task.dump_config(), sort_keys=True, default=str)
    return json_digest([re.sub(r" at 0x[0-9a-fA-F]+", "", text), prompts_digest])


def _version(task: Any) -> str | None:
    version = getattr(task, "VERSION", None)
    return None if version is None else str(version)


def doc_hashes_tasks(seen: Mapping[str, list[str]], loaded: Mapping[str, Any], prompts_digest: str) -> dict:
    """Per lm-eval task, as :func:`lm_eval_tasks` from the doc hashes a run saw (``seen``: task -> hashes in
    document order), for the files lm-eval's own CLI wrote."""
    out = {}
    for name, hashes in seen.items():
        task = loaded.get(name)
        out[name] = {
            "data": json_digest(list(hashes)),
            "prompts": task_template_digest(task, prompts_digest) if task is not None else None,
            "version": _version(task) if task is not None else None,
        }
    return out
