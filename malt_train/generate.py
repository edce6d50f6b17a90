"""Tree generation: n generator samples per question, n critiques each, n refinements each.

Stage-batched like the solver (the same steps and prompts), graded with the eval grader, and
resumable: nodes are appended per batch of questions and flushed; a rerun keeps every complete
question, drops the nodes of a batch that was cut off, and redoes only that batch with the same
seed, so the final tree equals an uninterrupted run.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from harness.core.errors import MaltError, raise_if_interrupted
from harness.core.identity import check_same_run, identity_diff, read_identity
from harness.core.maltrun import CONFIG_FILE, TREE_FILE
from harness.core.roles import ROLES
from harness.core.runfiles import append_records, atomic_write, read_records
from harness.inference.backends.base import PAPER_TEMPERATURE, SamplingParams
from harness.solver.protocol import batch_seed
from harness.solver.state import SolveState
from harness.solver.steps import SolveContext, generator, refiner, verifier
from harness.spec import option
from harness.tasks.grading import answers_match
from harness.tasks.taskinfo import TASKS
from malt_train.shard import parse_shard, shard_batches

__all__ = ["CONFIG_FILE", "TREE_FILE", "GenerateConfig", "generate", "grow_trees", "planned_batches", "tree_record"]


@dataclass
class GenerateConfig:
    """Options of ``malt-train generate`` (written to ``RUN/generate.json``)."""

    task: str = option("malt_gsm8k", f"One of {', '.join(TASKS)}.")
    questions: int | None = option(None, "Seeded random sample of N training questions (default all).", type=int)
    branching: int = option(3, "n: n generator samples, n critiques each, n refinements each (n^3 leaves).")
    temperature: float = option(PAPER_TEMPERATURE, "Sampling temperature of every node.")
    seed: int = option(0, "Seed of the question sample and of every batch's sampling.")
    batch_size: int = option(4, "Questions per stage batch.")
    max_new_tokens: int = option(512, "Token limit of every node.")
    shard: str | None = option(None, "i/k: generate only the i-th of k ranges of questions (1-based).")

    def check(self) -> None:
        parse_shard(self.shard)
        if self.branching < 1:
            raise MaltError(f"--branching must be at least 1, got {self.branching}")
        if self.questions is not None and self.questions < 1:
            raise MaltError(f"--questions must be at least 1, got {self.questions}")
        if self.batch_size < 1:
            raise MaltError(f"--batch-size must be at least 1, got {self.batch_size}")


def select_training_questions(n_docs: int, cfg: GenerateConfig) -> list[int]:
    """The seeded sample of question indices (in sample order)."""
    if cfg.questions is None:
        return list(range(n_docs))
    if cfg.questions > n_docs:
        raise MaltError(f"--questions {cfg.questions} is larger than the training split ({n_docs})")
    return random.Random(cfg.seed).sample(range(n_docs), cfg.questions)


def planned_batches(n_docs: int, cfg: GenerateConfig) -> list[tuple[int, list[int]]]:
    """``(batch number, question indices)`` this run generates: all batches, or its shard's.

    Batch numbers are global (a shard keeps the unsharded run's numbers, hence its seeds).
    """
    order = select_training_questions(n_docs, cfg)
    return shard_batches([order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)], cfg.shard)


def _expand(states: list[tuple[str, SolveState]], n: int, tag: str) -> list[tuple[str, SolveState]]:
    return [(f"{nid}/{tag}{k}", replace(s, turns=dict(s.turns))) for nid, s in states for k in range(n)]


def _node(nid: str, parent: str | None, qid: str, s: SolveState, role: str) -> dict:
    t = s.turns[role]
    return {
        "id": nid,
        "parent": parent,
        "question_id": qid,
        "role": role,
        "prompt": t.messages,
        "text": t.text,
        "answer": t.answer,
        "n_tokens": t.n_tokens,
    }


def grow_trees(
    task: str,
    docs: dict[int, dict],
    ctx: SolveContext,
    n: int,
    on_stage: Callable[[str, list[SolveState]], None] | None = None,
) -> list[dict]:
    """All nodes of the trees of ``docs`` (index -> row): n + n^2 + n^3 per question.

    ``on_stage(role, states)`` is called after each of the three stages (progress reports).
    """
    prompts = ctx.prompts[task]
    gens = [
        (f"{task}:{i}/g{k}", SolveState(task, d, i, prompts.question(d), k)) for i, d in docs.items() for k in range(n)
    ]

    def stage(step, level: list[tuple[str, SolveState]], role: str) -> None:
        step([s for _, s in level], ctx)
        if on_stage:
            on_stage(role, [s for _, s in level])

    stage(generator(), gens, "generator")
    vers = _expand(gens, n, "v")
    stage(verifier(), vers, "verifier")
    refs = _expand(vers, n, "r")
    stage(refiner(), refs, "refiner")
    nodes = []
    for level, role in ((gens, "generator"), (vers, "verifier"), (refs, "refiner")):
        for nid, s in level:
            qid = f"{task}:{s.doc_id}"
            parent = nid.rsplit("/", 1)[0] if role != "generator" else None
            node = _node(nid, parent, qid, s, role)
            if role == "refiner":
                node["reward"] = int(answers_match(task, s.turns["refiner"].answer, s.doc))
            nodes.append(node)
    return nodes


def _recover(path: Path, per_question: int) -> set[str]:
    """Drop a torn last line and the nodes of incomplete questions; return the complete question ids."""
    nodes = read_records(path)  # cuts a torn write from a kill: the batch it belonged to is redone
    counts = Counter(n["question_id"] for n in nodes)
    done = {q for q, c in counts.items() if c == per_question}
    if len(nodes) != per_question * len(done):
        _keep(path, nodes, done)
    return done


def _keep(path: Path, nodes: list[dict], qids: set[str]) -> None:
    """Rewrite the tree file with the nodes of ``qids`` only (atomically)."""
    atomic_write(path, "".join(json.dumps(n, ensure_ascii=False) + "\n" for n in nodes if n["question_id"] in qids))


#: Keys of the tree's run record that records written before them lack (those are checked without them).
DIGEST_KEYS = ("data", "prompts", "weights", "backend", "dtype")


def tree_record(cfg: GenerateConfig, model: str, docs: list[dict], prompts_hash: str, engine: dict | None) -> dict:
    """What decides the tree (``RUN/generate.json``): the options, the model, and the digests of the questions
    drawn (all shards' sample, in order), of the role prompts and (``engine``) of the weights, with the backend
    and dtype."""
    from harness.core.digests import docs_digest

    order = select_training_questions(len(docs), cfg)
    engine = engine or {}
    return {
        **asdict(cfg),
        "model": model,
        "data": docs_digest([docs[i] for i in order]),
        "prompts": prompts_hash,
        **{k: engine.get(k) for k in ("weights", "backend", "dtype")},
    }


def _ignored(have: dict | None) -> tuple[str, ...]:
    """What a tree record comparison leaves out: a merge's sources, and digests an older record lacks."""
    return ("merged_from", *(k for k in DIGEST_KEYS if have is not None and k not in have))


def tree_diff(have: dict, want: dict) -> list[str]:
    """The keys on which the tree record ``have`` (on disk) and ``want`` differ."""
    return identity_diff(have, want, ignore=_ignored(have))


def _check_same_run(run: Path, record: dict) -> None:
    check_same_run(
        run / CONFIG_FILE,
        record,
        f"{run} holds a different run (differs in: {{diff}}); use another --out",
        "malt-train run",
        ignore=_ignored(read_identity(run / CONFIG_FILE, "malt-train run")),
        write=True,
    )


def generate(
    run: Path,
    docs: list[dict],
    ctx: SolveContext,
    cfg: GenerateConfig,
    model: str,
    progress: Callable[[int, int, float], None] | None = None,
    engine: dict | None = None,
) -> dict[str, int]:
    """Generate (or continue) ``run/tree.jsonl``; return counts of questions and nodes.

    ``engine``: the weights digest, backend and dtype, for the run record (:func:`tree_record`)."""
    cfg.check()
    _check_same_run(run, tree_record(cfg, model, docs, ctx.prompts[cfg.task].hash, engine))
    n = cfg.branching
    per_question = n + n**2 + n**3
    path = run / TREE_FILE
    done = _recover(path, per_question)
    numbered = planned_batches(len(docs), cfg)
    batches = [batch for _, batch in numbered]
    partial = {f"{cfg.task}:{i}" for b in batches if 0 < sum(f"{cfg.task}:{i}" in done for i in b) < len(b) for i in b}
    if partial & done:  # a batch cut off between questions is redone whole, with its own seed
        done -= partial
        _keep(path, read_records(path), done)
    resumed = sum(f"{cfg.task}:{i}" in done for b in batches for i in b)
    if progress and resumed:  # questions kept from an earlier, interrupted run count as done
        progress(resumed, resumed * per_question, 0.0)
    base = SamplingParams(cfg.max_new_tokens, cfg.temperature, 1.0)
    new_nodes, tokens = 0, 0
    t0 = time.time()

    def stage_done(questions: int, role: str, states: list[SolveState]) -> None:  # the bar moves every stage
        nonlocal tokens
        tokens += sum(s.turns[role].n_tokens for s in states)
        if progress:  # a batch's questions count once its refiner stage is done; tok/s over this run so far
            progress(questions if role == "refiner" else 0, len(states), tokens / max(1e-9, time.time() - t0))

    for b, batch in numbered:
        if all(f"{cfg.task}:{i}" in done for i in batch):
            continue
        seed = batch_seed(cfg.seed, b)
        batch_ctx = replace(ctx, params={r: replace(base, seed=seed) for r in ROLES})  # stats shared with ctx
        todo = {i: docs[i] for i in batch}
        nodes = grow_trees(cfg.task, todo, batch_ctx, n, functools.partial(stage_done, len(todo)))
        append_records(path, nodes)  # whole questions, one write, fsynced
        done |= {f"{cfg.task}:{i}" for i in todo}
        new_nodes += len(nodes)
        raise_if_interrupted()  # a signal whose exception was swallowed stops the run here, the batch kept
    path.touch()  # a finished run has a tree file, even an empty shard
    return {"questions": len(done), "nodes": len(done) * per_question, "new_nodes": new_nodes}
