"""SFT and DPO sets: positives only, sibling pairs only, no pairs from uniform parents, counts."""

from malt_train.build import BuildConfig, build_sets, dpo_rows, sft_rows
from malt_train.label import label_tree
from tests.test_label import full_tree, load


def labelled(tmp_path):
    nodes = (
        full_tree("a0", [[1, 1, 0], [0, 0, 0]], q="qa")  # a0: 2/6 -> negative; a0/v0 positive, a0/v1 negative
        + full_tree("a1", [[1, 1, 1], [1, 1, 0]], q="qa")  # a1: 5/6 -> positive
        + full_tree("b0", [[0, 0], [0, 0]], q="qb")  # all negative: no pairs anywhere below
    )
    return label_tree(load(tmp_path, nodes))


def test_sft_rows_are_the_positives(tmp_path):
    tree = labelled(tmp_path)
    assert {r["id"] for r in sft_rows(tree, "generator")} == {"a1"}
    assert {r["id"] for r in sft_rows(tree, "verifier")} == {"a0/v0", "a1/v0", "a1/v1"}
    row = sft_rows(tree, "generator")[0]
    assert row["completion"] == [{"role": "assistant", "content": "text a1"}] and row["prompt"][0]["role"] == "user"


def test_dpo_pairs_are_siblings_with_opposite_labels(tmp_path):
    tree = labelled(tmp_path)
    gen = dpo_rows(tree, "generator")
    assert [(r["chosen_id"], r["rejected_id"]) for r in gen] == [("a1", "a0")]
    ver = dpo_rows(tree, "verifier")
    assert [(r["chosen_id"], r["rejected_id"]) for r in ver] == [("a0/v0", "a0/v1")]  # a1's are all positive
    ref = dpo_rows(tree, "refiner")
    for r in ref:
        assert tree.nodes[r["chosen_id"]]["parent"] == tree.nodes[r["rejected_id"]]["parent"] == r["parent"]
    # a0/v0: 2x1, a1/v1: 2x1 pairs; uniform parents (a0/v1, a1/v0, b0/*) give none
    assert len(ref) == 4 and not any(r["parent"].startswith("b0") for r in ref)


def test_pairs_per_parent_cap_and_files(tmp_path):
    tree = labelled(tmp_path)
    assert len(dpo_rows(tree, "refiner", BuildConfig(pairs_per_parent=1))) == 2
    counts = build_sets(tree, tmp_path / "data")
    assert counts["refiner"] == {"sft": 7, "dpo": 4}
    assert (tmp_path / "data" / "verifier" / "dpo.jsonl").read_text().count("\n") == 1
