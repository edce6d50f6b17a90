"""What is known about each benchmark, in one place: names, data files, fields, token budgets, labels.

The lm-eval YAMLs in ``tasks/`` and the grader (:mod:`harness.grading`) are the other two halves of a task;
everything else (data loading, default token budgets, the leaderboard's column order and labels) reads
its facts from :data:`TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UnknownTaskError


@dataclass(frozen=True)
class TaskInfo:
    """One benchmark.

    Attributes:
        name: the lm-eval task name (``malt_gsm8k``).
        alias: the short name also accepted on the command line (``gsm8k``).
        max_new_tokens: default token budget per role (MATH solutions are long; lm-eval's 256 truncates them).
        files: split -> file under the data folder (the ``shared/data`` layout and the original releases).
        hub: ``(dataset path, config, {our split: hub split})`` for users with internet.
        fields: the fields a raw row must have.
        gold_field: the field holding the reference answer (a row of it alone grades an answer).
    """

    name: str
    alias: str
    max_new_tokens: int
    files: dict[str, str]
    hub: tuple[str, str | None, dict[str, str]]
    fields: tuple[str, ...]
    gold_field: str = "answer"


#: The benchmarks, in table order.
TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo(
            "malt_gsm8k",
            "gsm8k",
            512,
            {"test": "gsm8k/test.jsonl", "train": "gsm8k/train.jsonl"},
            ("openai/gsm8k", "main", {"test": "test", "train": "train"}),
            ("question", "answer"),
        ),
        TaskInfo(
            "malt_math",
            "math",
            1024,
            {"test": "math/math500_test.jsonl", "train": "math/train.jsonl"},
            ("HuggingFaceH4/MATH-500", None, {"test": "test"}),
            ("problem", "answer"),
        ),
        TaskInfo(
            "malt_csqa",
            "csqa",
            384,
            {"test": "csqa/dev.jsonl", "train": "csqa/train.jsonl"},
            ("tau/commonsense_qa", None, {"test": "validation", "train": "train"}),
            ("answerKey", "question"),
            "answerKey",
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
