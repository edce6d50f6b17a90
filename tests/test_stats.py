"""``malt-train stats``: per-role tokens and answers, right leaves per question, from a hand-built tree."""

import json

from click.testing import CliRunner

from malt_apps.train_cli import main
from malt_train.stats import tree_stats
from tests.test_label import full_tree, load


def _tree_nodes():
    a = full_tree("a/g0", [[1, 1], [0, 1]], q="a")  # 3 of 4 leaves right
    b = full_tree("b/g0", [[0, 0], [0, 0]], q="b")  # none right
    for i, n in enumerate(a + b):
        n["n_tokens"] = 10 if n["role"] == "refiner" and i % 2 else 4
        n["answer"] = "7" if n["role"] != "verifier" else None
    return a + b


def test_counts_per_role_and_question(tmp_path):
    s = tree_stats(load(tmp_path, _tree_nodes()), max_new_tokens=10)
    assert (s["questions"], s["nodes"], s["leaves"], s["leaves_right"]) == (2, 14, 8, 3)
    assert s["leaf_accuracy"] == 0.375
    assert (s["questions_any_right"], s["questions_all_right"]) == (1, 0)
    g, v, r = (s["roles"][k] for k in ("generator", "verifier", "refiner"))
    assert (g["nodes"], v["nodes"], r["nodes"]) == (2, 4, 8)
    assert v["no_answer"] == 4 and r["no_answer"] == 0
    assert r["at_limit"] == sum(n["n_tokens"] == 10 for n in _tree_nodes())
    assert r["tokens"] == sum(n["n_tokens"] for n in _tree_nodes() if n["role"] == "refiner")
    assert g["at_limit"] == 0 and g["mean_tokens"] == 4.0


def test_cli_reads_the_runs_token_limit(tmp_path):
    load(tmp_path, _tree_nodes())  # writes tmp_path/tree.jsonl
    (tmp_path / "generate.json").write_text(json.dumps({"max_new_tokens": 4}))
    out = CliRunner().invoke(main, ["stats", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["roles"]["generator"]["at_limit"] == 2  # every node reached 4 tokens
    text = CliRunner().invoke(main, ["stats", str(tmp_path / "tree.jsonl")]).output
    assert "leaves right: 3 / 8 (37.5%)" in text


def test_cli_missing_tree_is_one_line_exit_2(tmp_path):
    out = CliRunner().invoke(main, ["stats", str(tmp_path / "nope")])
    assert out.exit_code == 2
    assert out.output.strip().count("\n") == 0 and "tree file not found" in out.output
