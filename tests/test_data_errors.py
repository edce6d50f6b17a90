"""A dataset that cannot be loaded (hub unreachable, a missing local file, a split it lacks) stops `malt-eval`,
`malt-eval suite` and `malt-train` with one line naming the task, the dataset and how to point the task at local
files: exit 2, no traceback, before any model is built. Our malt_* tasks and lm-eval's tasks alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.lm_eval_local import STOCK

LOCAL_HINT = "point the task at local files with a YAML in --include-path"
OURS_HINT = "point it at local files: --data-dir DIR (or MALT_DATA_DIR=DIR)"


@pytest.fixture(autouse=True)
def no_models(monkeypatch):
    """Offline, no data folder, and building a model fails the test: every error must come first."""
    from harness.inference import engines

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the data was checked")

    monkeypatch.setattr(engines, "build_engines", refuse)
    monkeypatch.delenv("MALT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _task(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.yaml").write_text(
        f"include: {STOCK / 'gsm8k' / 'gsm8k-cot-zeroshot.yaml'}\ntask: {name}\n{body}", encoding="utf-8"
    )


@pytest.fixture(scope="module")
def bad_tasks(tmp_path_factory, shared_data) -> Path:
    """Three lm-eval tasks: on a hub dataset (unreachable offline), on a missing file, reading a split it lacks
    (one folder for the module: lm-eval indexes it once)."""
    tmp_path = tmp_path_factory.mktemp("bad-tasks")
    folder = tmp_path / "tasks"
    folder.mkdir()
    _task(folder, "hub_task", "dataset_path: malt-tests/no-such-dataset\ndataset_name: null\n")
    _task(
        folder,
        "missing_file_task",
        "dataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {tmp_path / 'nope.jsonl'}\n",
    )
    test = shared_data / "gsm8k" / "test.jsonl"
    _task(
        folder,
        "split_task",
        f"dataset_path: json\ndataset_name: null\ntest_split: validation\n"
        f"dataset_kwargs:\n  data_files:\n    test: {test}\n    train: {test}\n",
    )
    return folder


LM_EVAL_CASES = {
    "hub_task": r"task 'hub_task': cannot load dataset malt-tests/no-such-dataset \(",
    "missing_file_task": r"task 'missing_file_task': cannot load dataset json .*nope.jsonl.* \(FileNotFoundError",
    "split_task": r"task 'split_task': dataset json .* has no split 'validation' \(.*it has: test, train\)",
}


def one_line_error(result, pattern: str, hint: str) -> str:
    """The result is exit 2 with one error line matching ``pattern`` and ``hint``, and no traceback."""
    import re

    text = result.output
    assert result.exit_code == 2, text[-3000:]
    assert "Traceback" not in text and not isinstance(result.exception, AssertionError), text[-3000:]
    errors = [line for line in text.splitlines() if ": error: " in line]
    assert len(errors) == 1, text[-3000:]
    assert re.search(pattern, errors[0]) and hint in errors[0], errors[0]
    return errors[0]


def _invoke(command, args: list) -> object:
    return CliRunner().invoke(command, [str(a) for a in args])


@pytest.mark.parametrize("task", list(LM_EVAL_CASES))
def test_lm_eval_task_data_errors_on_malt_eval_and_the_suite(task, bad_tasks, tmp_path):
    from malt_apps.eval_cli import main

    common = ["--include-path", bad_tasks, "--tasks", task, "--limit", 2, "--model", tmp_path / "no-model"]
    r = _invoke(main, [*common, "--agents", "g,v,r"])
    line = one_line_error(r, LM_EVAL_CASES[task], LOCAL_HINT)
    assert line.startswith("malt-eval: error: ")
    r = _invoke(main, ["suite", *common, "--seeds", 1, "--out", tmp_path / "suite"])
    one_line_error(r, LM_EVAL_CASES[task], LOCAL_HINT)
    assert not list((tmp_path / "suite").rglob("results_*.json"))


def test_our_task_data_errors_on_malt_eval_and_the_suite(tmp_path):
    from malt_apps.eval_cli import main

    common = ["--tasks", "malt_gsm8k", "--limit", 2, "--model", tmp_path / "no-model"]
    r = _invoke(main, common)  # no data folder, offline: the hub is out of reach
    one_line_error(r, r"malt_gsm8k: cannot load dataset openai/gsm8k/main \(test split\) from the hub", OURS_HINT)
    r = _invoke(main, [*common, "--data-dir", tmp_path])  # a data folder without the file
    one_line_error(r, r"malt_gsm8k: test file not found: .*gsm8k/test.jsonl", OURS_HINT)
    r = _invoke(main, ["suite", *common, "--seeds", 1, "--data-dir", tmp_path, "--out", tmp_path / "suite"])
    one_line_error(r, r"malt_gsm8k: test file not found", OURS_HINT)
    r = _invoke(main, ["suite", *common, "--seeds", 1, "--out", tmp_path / "suite"])
    one_line_error(r, r"malt_gsm8k: cannot load dataset openai/gsm8k/main", OURS_HINT)


def test_malt_train_data_errors(tmp_path):
    from malt_apps.train_cli import main

    run = ["generate", "--out", tmp_path / "run", "--model", tmp_path / "no-model"]
    r = _invoke(main, [*run, "--task", "malt_gsm8k"])  # offline: the hub is out of reach
    one_line_error(r, r"malt_gsm8k: cannot load dataset openai/gsm8k/main \(train split\) from the hub", OURS_HINT)
    r = _invoke(main, [*run, "--task", "malt_gsm8k", "--data-dir", tmp_path])
    one_line_error(r, r"malt_gsm8k: train file not found: .*gsm8k/train.jsonl", OURS_HINT)
    r = _invoke(main, [*run, "--task", "malt_math"])  # MATH-500 on the hub has a test split only
    one_line_error(r, r"malt_math: dataset HuggingFaceH4/MATH-500 has no train split on the hub", "math/train.jsonl")
