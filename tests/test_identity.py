"""The one same-run check (checkpoints, trees, shards, suite rows): keys compared, ignored, defaulted."""

import json

import pytest

from harness.core.errors import MaltError
from harness.core.identity import check_same_run, identity_diff


def test_identity_diff_compares_json_forms_and_honours_ignore_and_defaults():
    assert identity_diff({"a": [1, 2], "b": "x"}, {"a": (1, 2), "b": "x"}) == []  # tuples read back as lists
    assert identity_diff({"a": 1, "out": "p"}, {"a": 2, "out": "q"}, ignore=("out",)) == ["a"]
    assert identity_diff({"a": 1}, {"a": 1, "new": None}) == ["new"]  # a key only one side has differs...
    assert identity_diff({"a": 1}, {"a": 1, "new": None}, defaults={"new": None}) == []  # ...unless at its default
    assert identity_diff({"a": 1}, {"a": 1, "new": 5}, defaults={"new": None}) == ["new"]


def test_check_same_run_writes_then_refuses_another_run(tmp_path):
    path = tmp_path / "run" / "record.json"
    check_same_run(path, {"model": "m", "seed": 0}, "{diff}", "test", write=True)
    assert json.loads(path.read_text()) == {"model": "m", "seed": 0}
    check_same_run(path, {"model": "m", "seed": 0}, "{diff}", "test")  # the same run: no error
    with pytest.raises(MaltError, match=r"^other run \(differs in: model, seed\)$"):
        check_same_run(path, {"model": "n", "seed": 1}, "other run (differs in: {diff})", "test")
    path.write_text("{oops")
    with pytest.raises(MaltError, match="unreadable: not a test folder"):
        check_same_run(path, {}, "{diff}", "test")
