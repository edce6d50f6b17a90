"""Every bad input through the real CLIs: one line naming the problem, exit 2, no traceback, nothing written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import malt_eval, malt_train, write_jsonl

GSM_ROW = {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}
CSQA_ROW = {
    "answerKey": "A",
    "id": "x",
    "question": {"question_concept": "c", "stem": "Q?", "choices": [{"label": "A", "text": "a"}]},
}


def _data(tmp: Path, rows: list) -> Path:
    write_jsonl(tmp / "data" / "gsm8k" / "test.jsonl", rows)
    return tmp / "data"


def _foreign_adapter(tmp: Path, model: Path) -> Path:
    """An adapter dir whose base model is a different architecture than ``model``."""
    base = tmp / "other-base"
    base.mkdir()
    cfg = json.loads((model / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**cfg, "hidden_size": 64, "num_hidden_layers": 3}))
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": 8}))
    return adapter


def _prompts_missing_role(tmp: Path) -> Path:
    path = tmp / "prompts.yaml"
    path.write_text(yaml.safe_dump({"generator": {"user": "{{ question }}"}}))
    return path


def _prompts_malformed(tmp: Path) -> Path:
    path = tmp / "prompts.yaml"
    path.write_text("generator:\n  user: '{{ question }}'\n verifier: [unclosed\n")
    return path


def _other_run(out: Path) -> None:
    (out / "run.json").write_text(json.dumps({"model": "someone-else", "agents": "g"}))


# (id, extra args (a function of tmp_path and the tiny model dir), data rows or None for the 6-row folder,
#  expected message, optional setup of the output folder)
EVAL_CASES: list[tuple[str, Callable, list | None, str, Callable | None]] = [
    ("unknown-task", lambda t, m: ["--tasks", "malt_nope"], None, "unknown task 'malt_nope'", None),
    ("agents-empty", lambda t, m: ["--agents", ""], None, "empty agent list", None),
    ("agents-repeated", lambda t, m: ["--agents", "g,g"], None, "bad agent list 'g,g'", None),
    ("agents-unknown-letter", lambda t, m: ["--agents", "g,x"], None, "unknown agent letter 'x'", None),
    ("agents-v-without-g", lambda t, m: ["--agents", "v,r"], None, "bad agent list 'v,r'", None),
    ("votes-0", lambda t, m: ["--votes", "0"], None, "--votes must be at least 1", None),
    ("subset-too-large", lambda t, m: ["--subset", "5000"], None, "larger than malt_gsm8k's split", None),
    ("missing-data-folder", lambda t, m: ["--data-dir", str(t / "nowhere")], None, "data folder not found", None),
    ("malformed-line", lambda t, m: [], [GSM_ROW, '{"question": '], "gsm8k/test.jsonl:2: malformed JSON", None),
    ("missing-field", lambda t, m: [], [GSM_ROW, {"question": "q"}], "test.jsonl:2: missing field(s) answer", None),
    ("wrong-benchmark", lambda t, m: [], [CSQA_ROW], "test.jsonl:1: missing field(s) answer", None),
    ("model-dir-missing", lambda t, m: ["--model", str(t / "no-model")], None, "model not found", None),
    ("model-dir-no-config", lambda t, m: ["--model", str(t)], None, "model dir has no config.json", None),
    ("adapter-missing", lambda t, m: ["--verifier-adapter", str(t / "none")], None, "adapter not found", None),
    (
        "adapter-other-base",
        lambda t, m: ["--generator-adapter", str(_foreign_adapter(t, m))],
        None,
        "was trained on base model",
        None,
    ),
    ("prompts-missing-role", lambda t, m: ["--prompts", str(_prompts_missing_role(t))], None, "'verifier'", None),
    (
        "prompts-malformed",
        lambda t, m: ["--prompts", str(_prompts_malformed(t))],
        None,
        "prompts file is not valid YAML (",
        None,
    ),
    ("max-tokens-bad-role", lambda t, m: ["--max-new-tokens", "critic=3"], None, "unknown role 'critic'", None),
    ("output-of-another-run", lambda t, m: [], None, "holds a different run's results", _other_run),
]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _assert_one_line_error(r, prog: str, message: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{prog}: error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "rows", "message", "setup"), [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES]
)
def test_malt_eval_bad_input(args, rows, message, setup, tmp_path, small_data, tiny_model_dir):
    extra = args(tmp_path, tiny_model_dir)
    data = small_data if rows is None else _data(tmp_path, rows)
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("an earlier file that must survive")
    if setup:
        setup(out)
    before = _snapshot(out)
    model = [] if "--model" in extra else ["--model", tiny_model_dir]
    limit = [] if "--subset" in extra else ["--limit", 1]
    r = malt_eval(*model, *limit, "--max-new-tokens", 2, "--output-path", out, *extra, env_data=data)
    _assert_one_line_error(r, "malt-eval", message)
    assert _snapshot(out) == before


def _node(nid, parent, role, reward=None):
    n = {"id": nid, "parent": parent, "question_id": "q", "role": role, "prompt": [], "text": "t", "answer": None}
    return n if reward is None else {**n, "reward": reward}


TREE_CASES = [
    (
        "cycle",
        [_node("g0", None, "generator"), _node("v0", "r0", "verifier"), _node("r0", "v0", "refiner", 1)],
        "is on a cycle",
    ),
    ("orphan", [_node("g0", None, "generator"), _node("v1", "g9", "verifier")], "missing parent 'g9'"),
    ("malformed", [_node("g0", None, "generator"), "{oops"], "tree.jsonl:2: malformed JSON"),
    (
        "no-reward",
        [_node("g0", None, "generator"), _node("v0", "g0", "verifier"), _node("r0", "v0", "refiner")],
        "no reward",
    ),
]


@pytest.mark.parametrize(("nodes", "message"), [c[1:] for c in TREE_CASES], ids=[c[0] for c in TREE_CASES])
def test_malt_train_label_bad_tree(nodes, message, tmp_path):
    tree = write_jsonl(tmp_path / "tree.jsonl", nodes)
    out = tmp_path / "labeled.jsonl"
    r = malt_train("label", tree, "--out", out)
    _assert_one_line_error(r, "malt-train", message)
    assert not out.exists()


TRAIN_CASES = [
    ("generate-unknown-task", ["generate", "--task", "malt_nope", "--questions", 1], "unknown task 'malt_nope'"),
    ("generate-branching-0", ["generate", "--branching", 0, "--questions", 1], "--branching must be at least 1"),
    ("build-missing-file", ["build", "nowhere/labeled.jsonl"], "not found"),
    ("sft-unknown-role", ["sft", "--role", "critic"], "critic"),
]


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_malt_train_bad_input(args, message, tmp_path, small_data, tiny_model_dir):
    cmd = [*args]
    if args[0] == "generate":
        cmd += ["--model", tiny_model_dir, "--out", tmp_path / "run"]
    if args[0] == "build":
        cmd += ["--out", tmp_path / "data"]
    if args[0] == "sft":
        cmd += [tmp_path / "run"]
    r = malt_train(*cmd, data=small_data)
    _assert_one_line_error(r, "malt-train", message)
