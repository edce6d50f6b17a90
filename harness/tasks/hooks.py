"""The small functions the lm-eval task YAMLs call (``!function utils.*`` wraps these per task)."""

from __future__ import annotations

import datasets

from harness.tasks.data import load_split
from harness.tasks.grading import gold_answer, is_correct
from harness.tasks.prompts import load_prompts


def load_dataset(task: str, **kwargs) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset``: the task's test split from ``$MALT_DATA_DIR`` or the hub.

    ``data_dir`` may come through lm-eval ``--metadata '{"data_dir": ...}'``.
    """
    rows = load_split(task, "test", kwargs.get("data_dir"))
    return {"test": datasets.Dataset.from_list(rows)}


def doc_to_text(task: str, doc: dict) -> str:
    """The generator's user prompt: what a single model is asked in stock lm-eval."""
    prompts = load_prompts(task)
    return prompts.messages("generator", question=prompts.question(doc))[-1]["content"]


def doc_to_target(task: str, doc: dict) -> str:
    return gold_answer(task, doc)


def process_results(task: str, doc: dict, results: list[str]) -> dict[str, float]:
    """Score the model's completion with the project's grader."""
    return {"acc": float(is_correct(task, results[0], doc))}
