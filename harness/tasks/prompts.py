"""Role prompts: loaded from ``tasks/<task>/prompts.yaml`` (or an override file), rendered, hashed.

A prompts file maps each role (``generator``, ``verifier``, ``refiner``) to ``system`` and ``user``
Jinja2 templates, plus a ``question`` template that turns a raw row (``doc``) into the question
text, and optionally templates of other steps (``debate``: the update round of a multi-agent
debate, :mod:`harness.solver.debate`). An override file (``--prompts FILE``) has the same shape, either
for all tasks at once or with one such mapping per task name; steps it leaves out keep the task's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.sandbox

from harness.core.errors import MaltError
from harness.core.roles import ROLES
from harness.core.yamlfiles import read_yaml_mapping
from harness.tasks.taskinfo import canonical_task

__all__ = ["PROMPTS_WHAT", "ROLES", "PromptSet", "load_prompts", "task_version", "tasks_dir"]
#: What the errors of a prompts file call it (:func:`harness.core.yamlfiles.read_yaml_mapping`).
PROMPTS_WHAT = "prompts file"
STEPS = ("debate",)  # optional templates of other solver steps; hashed apart (see PromptSet.step_hash)
# Prompts files come from users and shared configs: render them sandboxed, so a template cannot run code.
_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)

Messages = list[dict[str, str]]


def tasks_dir() -> Path:
    """The folder holding the lm-eval task configs: ``$MALT_TASKS_DIR``, else the installed ``malt_tasks``
    package (the repository's ``tasks/``, shipped as package data in wheels), else the repository's."""
    env = os.environ.get("MALT_TASKS_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("malt_tasks")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "tasks"


def _render(template: str, **variables) -> str:
    try:
        return _ENV.from_string(template).render(**variables)
    except jinja2.exceptions.SecurityError as exc:
        raise MaltError(f"prompt template refused by the sandbox: {exc}") from None


def task_version(task: str) -> float:
    """``metadata.version`` of a task's lm-eval YAML (recorded with every result)."""
    import re

    path = tasks_dir() / task / f"{task}.yaml"
    try:
        m = re.search(r"^\s+version:\s*([0-9.]+)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    except OSError:
        m = None
    return float(m.group(1)) if m else 1.0


@dataclass(frozen=True)
class PromptSet:
    """The question template and the three role templates of one task."""

    task: str
    templates: dict[str, dict[str, str]] = field(repr=False)
    source: str = ""

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the question and role templates, written into every result."""
        return _hash({k: v for k, v in self.templates.items() if k not in STEPS})

    def step_hash(self, step: str) -> str:
        """sha256 (first 16 hex digits) of the templates of an optional step (e.g. ``debate``)."""
        if step not in self.templates:
            raise MaltError(f"{self.source}: no {step!r} template (add a {step} section to the prompts file)")
        return _hash(self.templates[step])

    def question(self, doc: dict) -> str:
        """The question text of a raw row."""
        return _render(self.templates["question"]["user"], doc=doc).strip()

    def messages(self, role: str, **variables: str) -> Messages:
        """Chat messages for ``role`` with the template variables filled in."""
        tpl = self.templates[role]
        msgs = []
        if tpl.get("system"):
            msgs.append({"role": "system", "content": _render(tpl["system"], **variables)})
        msgs.append({"role": "user", "content": _render(tpl["user"], **variables)})
        return msgs


def _hash(obj: dict) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _validate(raw: dict, where: str, fallback: dict | None = None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    fallback = fallback or {}
    for role in ROLES + STEPS:
        spec = raw.get(role)
        if spec is None and role in STEPS:  # optional: the task's own, else none
            if role in fallback:
                out[role] = fallback[role]
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("user"), str):
            kind = "role" if role in ROLES else "step"
            raise MaltError(f"{where}: {kind} {role!r} is missing or has no 'user' template")
        out[role] = {"system": str(spec.get("system") or ""), "user": spec["user"]}
    fallback_question = fallback.get("question")
    q = raw.get("question")
    if q is None and fallback_question is not None:
        out["question"] = fallback_question
    elif isinstance(q, str):
        out["question"] = {"user": q}
    else:
        raise MaltError(f"{where}: 'question' template is missing")
    try:
        for spec in out.values():
            for text in spec.values():
                _ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise MaltError(f"{where}: template error: {exc.message}") from None
    return out


def load_prompts(task: str, override: str | os.PathLike | None = None) -> PromptSet:
    """The prompts of ``task``: its own file, or ``override`` (for all tasks or per task)."""
    task = canonical_task(task)
    own_path = tasks_dir() / task / "prompts.yaml"
    own = _validate(read_yaml_mapping(own_path, PROMPTS_WHAT), str(own_path))
    if override is None:
        return PromptSet(task, own, str(own_path))
    path = Path(override)
    data = read_yaml_mapping(path, PROMPTS_WHAT)
    if any(k.startswith("malt_") for k in data):
        if task not in data:
            return PromptSet(task, own, str(own_path))
        data = data[task]
    return PromptSet(task, _validate(data, str(path), own), str(path))
