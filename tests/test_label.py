"""Value iteration on hand-built trees with known values; bad trees."""

import json

import pytest

from malt_train.label import LabelConfig, label_tree
from malt_train.tree import TreeError, read_tree


def node(nid, parent, role, reward=None, q="q0"):
    n = {
        "id": nid,
        "parent": parent,
        "question_id": q,
        "role": role,
        "prompt": [{"role": "user", "content": f"prompt of {parent}"}],
        "text": f"text {nid}",
        "answer": None,
    }
    if reward is not None:
        n["reward"] = reward
    return n


def full_tree(gen_id, rewards, q="q0"):
    """A generator with len(rewards) verifiers, each with the given refiner rewards."""
    nodes = [node(gen_id, None, "generator", q=q)]
    for i, rs in enumerate(rewards):
        vid = f"{gen_id}/v{i}"
        nodes.append(node(vid, gen_id, "verifier", q=q))
        nodes += [node(f"{vid}/r{j}", vid, "refiner", r, q=q) for j, r in enumerate(rs)]
    return nodes


def load(tmp_path, nodes):
    path = tmp_path / "tree.jsonl"
    path.write_text("".join(json.dumps(n) + "\n" for n in nodes))
    return read_tree(path)


def test_generator_values_five_ninths_vs_four_ninths(tmp_path):
    nodes = full_tree("g0", [[1, 1, 0], [1, 0, 0], [1, 1, 0]]) + full_tree("g1", [[1, 0, 0], [1, 1, 0], [1, 0, 0]])
    tree = label_tree(load(tmp_path, nodes))
    g0, g1 = tree.nodes["g0"], tree.nodes["g1"]
    assert g0["value"] == pytest.approx(5 / 9) and g0["label"] is True
    assert g1["value"] == pytest.approx(4 / 9) and g1["label"] is False
    assert tree.nodes["g0/v0"]["value"] == pytest.approx(2 / 3) and tree.nodes["g0/v0"]["label"] is True
    assert tree.nodes["g0/v1/r0"]["value"] == 1.0 and tree.nodes["g0/v1/r1"]["label"] is False


def test_tie_at_threshold_is_negative(tmp_path):
    tree = label_tree(load(tmp_path, full_tree("g0", [[1, 0], [1, 0]])))
    assert tree.nodes["g0/v0"]["value"] == 0.5 and tree.nodes["g0/v0"]["label"] is False
    assert tree.nodes["g0"]["label"] is False
    tree = label_tree(tree, LabelConfig(threshold=0.4))
    assert tree.nodes["g0/v0"]["label"] is True


def test_uneven_branching_global_vs_local(tmp_path):
    nodes = full_tree("g0", [[1, 1, 1], [0], [0]])  # 3 of 5 leaves right; 1 of 3 verifiers positive
    glob = label_tree(load(tmp_path, nodes), LabelConfig(pooling="global"))
    assert glob.nodes["g0"]["value"] == pytest.approx(3 / 5) and glob.nodes["g0"]["label"] is True
    local = label_tree(load(tmp_path, nodes), LabelConfig(pooling="local"))
    assert local.nodes["g0"]["value"] == pytest.approx(1 / 3) and local.nodes["g0"]["label"] is False


BAD = [
    ([node("v0", "g9", "verifier")], "missing parent 'g9'"),
    ([node("g0", None, "generator"), node("v0", "r0", "verifier"), node("r0", "v0", "refiner", 1)], "cycle"),
    ([node("g0", None, "critic")], "unknown role 'critic'"),
    ([node("g0", None, "generator"), node("v0", "g0", "verifier"), node("r0", "v0", "refiner")], "has no reward"),
    ([node("g0", None, "generator"), node("r0", "g0", "refiner", 1)], "needs a verifier parent"),
    ([node("g0", None, "generator"), node("g0", None, "generator")], "duplicate id"),
]


@pytest.mark.parametrize(("nodes", "message"), BAD)
def test_bad_trees_name_the_line(tmp_path, nodes, message):
    with pytest.raises(TreeError, match=message) as err:
        load(tmp_path, nodes)
    assert "tree.jsonl:" in str(err.value)


def test_malformed_line(tmp_path):
    path = tmp_path / "tree.jsonl"
    path.write_text(json.dumps(node("g0", None, "generator")) + "\n{oops\n")
    with pytest.raises(TreeError, match=r"tree.jsonl:2: malformed JSON"):
        read_tree(path)
