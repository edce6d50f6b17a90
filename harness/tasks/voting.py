"""Majority voting over normalised answers.

Ties are broken deterministically: among the answers with the highest count, the one whose
first occurrence comes earliest in sample order wins. Samples without an answer do not vote;
if none has one, the vote is ``None`` (graded wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.tasks.grading import GraderFaults, normalize_answer


def majority_vote(
    task: str, answers: Sequence[str | None], faults: GraderFaults | None = None
) -> tuple[str | None, int | None]:
    """Return ``(winning raw answer, index of its first sample)``, or ``(None, None)``; ``faults`` records the
    answers whose normalisation raised (they do not vote)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, ans in enumerate(answers):
        key = normalize_answer(task, ans, faults)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None, None
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return answers[first[best]], first[best]
