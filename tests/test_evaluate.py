"""Seeds/subsets protocol, voting through run_task, aggregation."""

import pytest

from harness.core.errors import MaltError
from harness.inference.backends.base import SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.run.evaluate import run_task
from harness.solver.protocol import EvalConfig, batch_seed, batches, select_questions
from harness.solver.steps import SolveContext
from harness.tasks.prompts import load_prompts

DOCS = [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(20)]


def ctx_for(responder, roles=("generator",)):
    be = ScriptedBackend(responder)
    ctx = SolveContext(
        {"malt_gsm8k": load_prompts("malt_gsm8k")},
        {r: RoleEngine(be) for r in roles},
        dict.fromkeys(roles, SamplingParams(16)),
    )
    return ctx, be


def right_if_even(messages, i):
    q = int(messages[-1]["content"].split("What is ")[1].split(" ")[0])
    return f"Final Answer: {q + 1 if q % 2 == 0 else -1}"


def test_subsets_are_seeded_distinct_and_reproducible():
    cfg = EvalConfig(subset=5)
    a, b = select_questions(20, cfg, 0), select_questions(20, cfg, 1)
    assert a == select_questions(20, cfg, 0) and a != b and len(set(a)) == 5
    assert select_questions(20, EvalConfig(limit=3), 7) == [0, 1, 2]
    with pytest.raises(MaltError, match="larger than the split"):
        select_questions(20, EvalConfig(subset=21), 0)


def test_accuracy_per_seed_and_std():
    ctx, _ = ctx_for(right_if_even)
    res = run_task("malt_gsm8k", DOCS, ctx, EvalConfig(roles=("generator",), seeds=3, subset=8, batch_size=3))
    for seed in res.per_seed:
        evens = sum(1 for i in seed["doc_ids"] if i % 2 == 0)
        assert seed["acc"] == pytest.approx(evens / 8)
    kind, spread = res.spread
    assert kind == "std" and spread is not None
    assert res.per_question("calls") == 1.0


def test_votes_majority_decides_correctness():
    # samples 0 and 2 right, sample 1 wrong: majority right with 3 votes, first sample only with 1
    def resp(messages, i):
        q = int(messages[-1]["content"].split("What is ")[1].split(" ")[0])
        return f"Final Answer: {q + 1 if i != 1 else 0}"

    ctx, be = ctx_for(resp)
    res = run_task("malt_gsm8k", DOCS, ctx, EvalConfig(roles=("generator",), votes=3, limit=4, batch_size=4))
    assert res.acc == 1.0 and be.calls[0][1].n == 3
    assert res.samples[0]["answers_by_role"]["generator"] == ["1", "0", "1"]


def test_bad_config_values():
    for cfg in (EvalConfig(votes=0), EvalConfig(seeds=0), EvalConfig(subset=3, limit=2), EvalConfig(batch_size=0)):
        with pytest.raises(MaltError):
            cfg.check()


def test_every_turn_is_graded_when_it_is_produced():
    """The generator is wrong, the verifier states nothing, the refiner is right: each turn's grade is logged."""

    def resp(messages, i):
        user = messages[-1]["content"]
        if "Critique" in user:
            return "Final Answer: 1" if i != 1 else "Final Answer: 9"  # refiner: right in 2 of 3 votes
        if "reviewer" in messages[0]["content"]:
            return "Looks fine."
        return "Final Answer: 7"

    roles = ("generator", "verifier", "refiner")
    ctx, _ = ctx_for(resp, roles)
    res = run_task("malt_gsm8k", DOCS[:1], ctx, EvalConfig(roles=roles, votes=3, limit=1, log_samples=True))
    (row,) = res.samples
    assert row["turn_grades"] == {
        "generator": {"answer": "7", "correct": False},
        "verifier": {"answer": None, "correct": False},
        "refiner": {"answer": "1", "correct": True},
    }
    turns = [s["turns"] for s in row["samples"]]
    assert [t["refiner"]["correct"] for t in turns] == [True, False, True]
    assert all(t["generator"]["correct"] is False for t in turns)


def test_resumed_batches_are_graded_again_by_the_current_grader(tmp_path):
    """A checkpoint written by an older grader (here: stored answers and grades made wrong on purpose) is graded
    again from its logged texts when the run resumes, so one results file holds one grader's grades."""
    import json

    from harness.run.checkpoint import CHECKPOINT_FILE, Checkpoint

    cfg = EvalConfig(roles=("generator",), limit=4, batch_size=2, log_samples=True)
    ctx, _ = ctx_for(right_if_even)
    first = run_task("malt_gsm8k", DOCS, ctx, cfg, checkpoint=Checkpoint(tmp_path, {"model": "m"}))
    assert [r["acc"] for r in first.samples] == [1.0, 0.0, 1.0, 0.0]

    path = tmp_path / CHECKPOINT_FILE
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in records:  # what an older grader might have logged: every answer missed
        for row in rec["rows"]:
            row.update(answer=None, acc=0.0, answers_by_role={"generator": [None]})
            row["turn_grades"] = {"generator": {"answer": None, "correct": False}}
    path.write_text("".join(json.dumps(rec) + "\n" for rec in records))

    def must_not_run(messages, i):
        raise AssertionError("a batch on record was generated again")

    ctx, _ = ctx_for(must_not_run)
    again = run_task("malt_gsm8k", DOCS, ctx, cfg, checkpoint=Checkpoint(tmp_path, {"model": "m"}))
    assert [r["acc"] for r in again.samples] == [1.0, 0.0, 1.0, 0.0]
    assert [r["answer"] for r in again.samples] == ["1", "-1", "3", "-1"]
    assert again.samples[0]["turn_grades"] == {"generator": {"answer": "1", "correct": True}}
    assert again.per_seed[0]["acc"] == 0.5


def test_each_batch_samples_with_its_own_batch_seed():
    """Every stage batch of every seed samples with ``batch_seed(seed, start)``, the formula pinned (a change
    would silently change the samples of every earlier run and resume)."""
    assert (batch_seed(0, 0), batch_seed(0, 6), batch_seed(2, 3)) == (0, 6, 2_000_009)
    ctx, be = ctx_for(right_if_even)
    cfg = EvalConfig(roles=("generator",), seeds=2, subset=5, batch_size=2)
    run_task("malt_gsm8k", DOCS, ctx, cfg)
    expected = [batch_seed(seed, start) for seed, start, _ in batches(len(DOCS), cfg)]
    assert [p.seed for _, p, _ in be.calls] == expected
    assert len(set(expected)) == 6  # 3 batches per seed, all distinct


def test_run_task_leaves_the_callers_context_as_it_was():
    """Each batch runs on its own context (its seed, its stage counters); the caller's is frozen and untouched."""
    import dataclasses

    ctx, be = ctx_for(right_if_even)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.params = {}  # type: ignore[misc]
    before = dict(ctx.params)
    res = run_task("malt_gsm8k", DOCS, ctx, EvalConfig(roles=("generator",), seeds=2, limit=4, batch_size=2))
    assert ctx.params == before and ctx.stats == {}
    assert sorted({p.seed for _, p, _ in be.calls}) == [0, 2, 1_000_003, 1_000_005]  # seed * 1_000_003 + start
    assert res.stats["generator"]["calls"] == 8 and res.stats["generator"]["backend_calls"] == 4
