"""Run a multi-agent system over a task's questions: seeds and subsets, votes, grading, results."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.inference.backends.base import SamplingParams
from harness.run.checkpoint import Checkpoint
from harness.solver.protocol import EvalConfig, batch_seed, batches, solve_questions
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext, plan
from harness.tasks.grading import GraderFaults, answers_match, gold_answer, normalize_answer
from harness.tasks.taskinfo import task_info
from harness.tasks.voting import majority_vote


@dataclass
class TaskResult:
    """Per-seed accuracies and samples of one task."""

    task: str
    per_seed: list[dict]
    samples: list[dict]
    stats: dict[str, dict[str, int]]
    wall_time: float

    @property
    def accuracies(self) -> list[float]:
        return [s["acc"] for s in self.per_seed]

    @property
    def acc(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def spread(self) -> tuple[str, float | None]:
        """("std", std over seeds) with several seeds, else ("stderr", binomial stderr)."""
        if len(self.per_seed) > 1:
            return "std", statistics.stdev(self.accuracies)
        n, p = self.per_seed[0]["n"], self.acc
        return "stderr", math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None

    @property
    def n(self) -> int:
        return self.per_seed[0]["n"]

    @property
    def grader_faults(self) -> tuple[int, int]:
        """``(grader_errors, grader_timeouts)``: answers over all seeds whose grading raised or ran out of time."""
        return tuple(sum(int(r.get(k) or 0) for r in self.samples) for k in ("grader_errors", "grader_timeouts"))

    def per_question(self, key: str) -> float:
        """Calls or tokens per question, over all seeds."""
        total = sum(s[key] for s in self.stats.values())
        return total / max(1, sum(s["n"] for s in self.per_seed))


class _Grader:
    """Grades answers to one question against its reference, each distinct (normalised) answer once; ``faults``
    records the answers whose grading raised or ran out of time."""

    def __init__(self, task: str, doc: dict, faults: GraderFaults | None = None) -> None:
        self.task, self.doc, self.faults = task, doc, faults
        self._seen: dict[str | None, bool] = {}

    def __call__(self, answer: str | None) -> bool:
        key = normalize_answer(self.task, answer, self.faults)
        if key not in self._seen:
            self._seen[key] = answers_match(self.task, answer, self.doc, self.faults)
        return self._seen[key]


def grade_turns(
    task: str, doc: dict, answers_by_role: dict[str, list[str | None]], faults: GraderFaults | None = None
) -> dict[str, dict]:
    """Per turn, the majority-voted answer over the votes and whether it is right (the sample logs'
    ``turn_grades``, read by the leaderboard's turn-wise tables)."""
    grade = _Grader(task, doc, faults)
    out = {}
    for role, answers in answers_by_role.items():
        voted, _ = majority_vote(task, answers, faults)
        out[role] = {"answer": voted, "correct": grade(voted)}
    return out


def with_turn_grades(task: str, row: dict) -> dict:
    """A sample-log row from before turns were graded at evaluation time, with its ``turn_grades`` added
    (graded against its logged ``doc``, else against its ``target``); newer rows are returned as they are."""
    if "turn_grades" in row:
        return row
    doc = row.get("doc")
    if not isinstance(doc, dict):
        doc = {task_info(task).gold_field: str(row.get("target", ""))}
    return {**row, "turn_grades": grade_turns(task, doc, row.get("answers_by_role") or {})}


def _grade(task: str, doc: dict, doc_id: int, states: list[SolveState], log: bool) -> dict:
    """The graded row of one question: the voted answer, and every turn's answer graded as it was produced;
    ``grader_errors`` / ``grader_timeouts``: its texts and answers whose grading raised or ran out of time."""
    faults = GraderFaults()
    grade = _Grader(task, doc, faults)
    for s in states:
        for name, turn in s.turns.items():
            if turn.grader_fault:  # read when the turn was made (or read again from its text)
                (faults.timeouts if turn.grader_fault == "timeout" else faults.errors).add(f"turn {s.sample} {name}")
            turn.correct = grade(turn.answer)
    answers = [s.answer for s in states]
    voted, idx = majority_vote(task, answers, faults)
    row = {"doc_id": doc_id, "target": gold_answer(task, doc), "answer": voted, "acc": float(grade(voted))}
    row["answers_by_role"] = {role: [s.turns[role].answer for s in states] for role in states[0].turns}
    row["turn_grades"] = grade_turns(task, doc, row["answers_by_role"], faults)
    row.update(faults.counts())
    if log:
        row["doc"] = doc
        row["votes"] = answers
        row["chosen_sample"] = idx
        row["samples"] = [s.to_dict() for s in states]
    return row


def _run_batch(task: str, docs: list[dict], ctx: SolveContext, cfg: EvalConfig, seed: int, start: int, chunk):
    """Solve and grade one batch; return its record (rows, stage counters, wall time)."""
    t0 = time.time()
    params = {
        r: SamplingParams(p.max_new_tokens, p.temperature, p.top_p, 1, batch_seed(seed, start))
        for r, p in ctx.params.items()
    }
    ctx = replace(ctx, params=params, stats={})  # this batch's seed and stage counters
    groups = solve_questions(task, [(i, docs[i]) for i in chunk], ctx, cfg.solver or plan(cfg.roles), cfg.votes)
    rows = []
    for i, group in zip(chunk, groups, strict=True):
        row = _grade(task, docs[i], i, group, log=True)
        row["seed"] = seed
        rows.append(row)
    return {
        "task": task,
        "seed": seed,
        "start": start,
        "prompt_hash": ctx.prompts[task].hash,
        "doc_ids": list(chunk),
        "rows": rows,
        "stats": ctx.stats,
        "wall_time": time.time() - t0,
    }


def run_task(
    task: str,
    docs: list[dict],
    ctx: SolveContext,
    cfg: EvalConfig,
    progress: Callable[[int], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> TaskResult:
    """Evaluate the system described by ``ctx``/``cfg`` on ``docs`` for every seed.

    With a ``checkpoint``, batches on record are reused and every new batch is recorded as soon as
    it is graded, so an interrupted evaluation resumes where it stopped.
    """
    cfg.check()
    prompt_hash = ctx.prompts[task].hash
    records = []
    for seed, start, chunk in batches(len(docs), cfg):
        rec = checkpoint.get(task, seed, start, prompt_hash, chunk) if checkpoint is not None else None
        if rec is None:
            rec = _run_batch(task, docs, ctx, cfg, seed, start, chunk)
            if checkpoint is not None:
                checkpoint.add(rec)
        else:  # graded when it was written, maybe by an older grader: one run, one grader
            rec = {**rec, "rows": [_regraded(task, docs, row) for row in rec["rows"]]}
        records.append(rec)
        if progress:
            progress(len(chunk))
    stats: dict[str, dict[str, int]] = {}
    for rec in records:
        for role, counters in rec["stats"].items():
            total = stats.setdefault(role, {})
            for key, value in counters.items():
                total[key] = total.get(key, 0) + value
    per_seed, samples = [], []
    for seed in range(cfg.seeds):
        rows = [row for rec in records if rec["seed"] == seed for row in rec["rows"]]
        ids = [row["doc_id"] for row in rows]
        per_seed.append({"seed": seed, "acc": statistics.fmean(r["acc"] for r in rows), "n": len(rows), "doc_ids": ids})
        samples += rows if cfg.log_samples else [_brief(r) for r in rows]
    return TaskResult(task, per_seed, samples, stats, sum(rec["wall_time"] for rec in records))


def regrade_row(task: str, doc: dict, row: dict) -> dict:
    """A logged row (a checkpoint's or a sample log's) graded again from its texts by the current grader: every
    turn's answer read anew, the system's answer chosen and voted as in the run. ``ValueError``: a turn without
    its text."""
    states = [SolveState.from_dict(task, doc, row["doc_id"], s) for s in row["samples"]]
    return {**_grade(task, doc, row["doc_id"], states, log=True), "seed": row.get("seed", 0)}


def _regraded(task: str, docs: list[dict], row: dict) -> dict:
    """A checkpointed row graded by the current grader (a checkpoint keeps the texts; one written before turns
    were graded and without texts only gets its ``turn_grades``)."""
    if row.get("samples"):
        return regrade_row(task, docs[row["doc_id"]], row)
    if "turn_grades" not in row:
        row = {**row, "turn_grades": grade_turns(task, docs[row["doc_id"]], row["answers_by_role"])}
    return row


def _brief(row: dict) -> dict:
    """A graded row without the logged prompts and texts."""
    return {k: v for k, v in row.items() if k not in ("doc", "votes", "chosen_sample", "samples")}
