"""Paired comparisons on per-question correctness: answer flips, paired bootstrap, McNemar's exact test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The paper's Figure 2 categories, in its order: (correct in A, correct in B) -> name.
FLIP_NAMES = {
    (False, True): "incorrect→correct",
    (True, True): "correct→correct",
    (False, False): "incorrect→incorrect",
    (True, False): "correct→incorrect",
}


def flips(a: Sequence[bool], b: Sequence[bool]) -> dict[str, int]:
    """Counts of each answer flip from A to B on paired questions (the four categories always present)."""
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length ({len(a)} vs {len(b)})")
    out = dict.fromkeys(FLIP_NAMES.values(), 0)
    for x, y in zip(a, b, strict=True):
        out[FLIP_NAMES[(bool(x), bool(y))]] += 1
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: binomial(b + c, 1/2) on the discordant pairs ``b`` and ``c``."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


@dataclass(frozen=True)
class BootstrapCI:
    """Accuracy difference B − A with a percentile paired-bootstrap confidence interval."""

    diff: float
    low: float
    high: float
    level: float
    resamples: int
    seed: int


def paired_bootstrap(
    a: Sequence[bool], b: Sequence[bool], resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Resample questions with replacement (the same ones for A and B) and take percentiles of B − A."""
    if len(a) != len(b) or not len(a):
        raise ValueError("the paired bootstrap needs two equally long, non-empty result lists")
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(d))  # bounded memory for long lists
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        means[start : start + k] = d[rng.integers(0, len(d), size=(k, len(d)))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return BootstrapCI(float(d.mean()), float(low), float(high), level, resamples, seed)


@dataclass(frozen=True)
class Paired:
    """The comparison of A and B on one task's common questions."""

    task: str
    n: int
    acc_a: float
    acc_b: float
    flips: dict[str, int]
    ci: BootstrapCI
    p_mcnemar: float

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "n": self.n,
            "acc_a": self.acc_a,
            "acc_b": self.acc_b,
            "diff": self.ci.diff,
            "ci": [self.ci.low, self.ci.high],
            "ci_level": self.ci.level,
            "resamples": self.ci.resamples,
            "seed": self.ci.seed,
            "flips": self.flips,
            "p_mcnemar": self.p_mcnemar,
        }


def compare_paired(task: str, a: Sequence[bool], b: Sequence[bool], resamples: int = 10_000, seed: int = 0) -> Paired:
    """Flip table, bootstrap CI of B − A and McNemar's p on paired per-question correctness."""
    f = flips(a, b)
    return Paired(
        task=task,
        n=len(a),
        acc_a=sum(map(bool, a)) / len(a),
        acc_b=sum(map(bool, b)) / len(b),
        flips=f,
        ci=paired_bootstrap(a, b, resamples, seed),
        p_mcnemar=mcnemar_exact(f["incorrect→correct"], f["correct→incorrect"]),
    )
