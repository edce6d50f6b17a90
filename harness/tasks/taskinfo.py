"""What is known about each benchmark, in one place: names, grader, data files and layout, token budgets.

The lm-eval YAMLs in ``tasks/`` are the other half of a task; everything else (the grader's kind, data loading,
default token budgets, the leaderboard's column order) reads its facts from :data:`TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.core.errors import UnknownTaskError


@dataclass(frozen=True)
class TaskInfo:
    """One benchmark.

    Attributes:
        name: the lm-eval task name (``malt_gsm8k``).
        alias: the short name also accepted on the command line (``gsm8k``).
        grader: the kind of answer, a grader registered in :mod:`harness.tasks.grading` (``number``, ``math``,
            ``choice``).
        max_new_tokens: default token budget per role (MATH solutions are long; lm-eval's 256 truncates them).
        files: split -> file under the data folder (the ``shared/data`` layout and the original releases).
        hub: ``(dataset path, config, {our split: hub split})`` for users with internet.
        fields: the fields a raw row must have.
        gold_field: the field holding the reference answer (a row of it alone grades an answer).
        layout_error: what is wrong with a row that has the fields (``None``: nothing), beyond their presence.
        from_hub: turns a hub row into the original layout, when the hub's differs.
    """

    name: str
    alias: str
    grader: str
    max_new_tokens: int
    files: dict[str, str]
    hub: tuple[str, str | None, dict[str, str]]
    fields: tuple[str, ...]
    gold_field: str = "answer"
    layout_error: Callable[[dict], str | None] | None = None
    from_hub: Callable[[dict], dict] | None = None


def _csqa_layout_error(row: dict) -> str | None:
    q = row["question"]
    if not isinstance(q, dict) or "stem" not in q or not isinstance(q.get("choices"), list):
        return "'question' must hold 'stem' and a 'choices' list"
    return None


def _csqa_from_hub(row: dict) -> dict:
    choices = [
        {"label": lab, "text": txt} for lab, txt in zip(row["choices"]["label"], row["choices"]["text"], strict=True)
    ]
    return {
        "answerKey": row["answerKey"],
        "id": row["id"],
        "question": {"question_concept": row.get("question_concept", ""), "choices": choices, "stem": row["question"]},
    }


#: The benchmarks, in table order.
TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo(
            "malt_gsm8k",
            "gsm8k",
            grader="number",
            max_new_tokens=512,
            files={"test": "gsm8k/test.jsonl", "train": "gsm8k/train.jsonl"},
            hub=("openai/gsm8k", "main", {"test": "test", "train": "train"}),
            fields=("question", "answer"),
        ),
        TaskInfo(
            "malt_math",
            "math",
            grader="math",
            max_new_tokens=1024,
            files={"test": "math/math500_test.jsonl", "train": "math/train.jsonl"},
            hub=("HuggingFaceH4/MATH-500", None, {"test": "test"}),
            fields=("problem", "answer"),
        ),
        TaskInfo(
            "malt_csqa",
            "csqa",
            grader="choice",
            max_new_tokens=384,
            files={"test": "csqa/dev.jsonl", "train": "csqa/train.jsonl"},
            hub=("tau/commonsense_qa", None, {"test": "validation", "train": "train"}),
            fields=("answerKey", "question"),
            gold_field="answerKey",
            layout_error=_csqa_layout_error,
            from_hub=_csqa_from_hub,
        ),
    )
}
_BY_NAME = {**{t.alias: t.name for t in TASKS.values()}, **{t.name: t.name for t in TASKS.values()}}


def canonical_task(task: str) -> str:
    """Return the canonical task name (``malt_gsm8k`` ...) for a name or alias.

    Raises:
        UnknownTaskError: (a ``ValueError``) for an unknown task name.
    """
    try:
        return _BY_NAME[task]
    except (KeyError, TypeError):
        raise UnknownTaskError(f"unknown task {task!r} (known: {', '.join(sorted(TASKS))})") from None


def task_info(task: str) -> TaskInfo:
    """The :class:`TaskInfo` of a task name or alias."""
    return TASKS[canonical_task(task)]
