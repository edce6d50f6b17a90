"""lm-eval's trackers on malt-eval (``--wandb-args`` offline, ``--hf-hub-log-args`` checks) and TRL's ``--report-to``
on malt-train (tensorboard event files): all offline."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.inference.backends import register_backend
from harness.inference.backends.scripted import ScriptedBackend
from tests.lm_eval_local import GSM8K_COT_ZS, write_local_tasks


@register_backend("tracking-scripted")
class TrackingBackend(ScriptedBackend):
    """A named scripted model: every role answers 18 (the first GSM8K row's answer)."""

    remote = True

    def __init__(self, model: str | None = None, **options) -> None:
        super().__init__(lambda messages, i: "Steps. The answer is 18. #### 18\nFinal Answer: 18")
        self.model_id = model


def _invoke(command, args: list):
    return CliRunner().invoke(command, [str(a) for a in args])


def test_malt_eval_wandb_args_write_an_offline_run(small_data, tmp_path, monkeypatch):
    """Our task and an lm-eval task, logged to one offline W&B run as lm-eval logs its results and samples."""
    from malt_apps.eval_cli import main

    monkeypatch.setenv("MALT_DATA_DIR", str(small_data))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tasks = write_local_tasks(tmp_path / "tasks", small_data)
    wandb_dir = tmp_path / "wb"
    wandb_dir.mkdir()
    args = ["--backend", "tracking-scripted", "--model", "scripted", "--agents", "g,v,r", "--limit", 2]
    args += ["--tasks", f"malt_gsm8k,{GSM8K_COT_ZS}", "--include-path", tasks, "--log-samples"]
    args += ["--output-path", tmp_path / "out", "--wandb-args", f"mode=offline,project=malt-test,dir={wandb_dir}"]
    args += ["--wandb-config-args", "suite=smoke"]
    r = _invoke(main, args)
    assert r.exit_code == 0, r.output[-3000:]
    (run,) = (wandb_dir / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb"))  # the run's records, for `wandb sync`
    tables = run / "files" / "media" / "table"
    (results,) = (tables / "evaluation").glob("eval_results_*.table.json")
    rows = {(t, f, m): v for t, _, f, _, m, v, _ in json.loads(results.read_text())["data"]}
    assert rows[("malt_gsm8k", "none", "acc")] == "0.5"  # our task, in lm-eval's table (rows 0 and 1: 18 and 3)
    assert rows[(GSM8K_COT_ZS, "strict-match", "exact_match")] == "0.5"  # lm-eval's task, its own filters
    for task in ("malt_gsm8k", GSM8K_COT_ZS):  # every sample of both, as lm-eval logs its samples
        (samples,) = tables.glob(f"{task}_eval_results_*.table.json")
        assert {row[0] for row in json.loads(samples.read_text())["data"]} == {0, 1}  # doc ids (lines per filter)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("push_results_to_hub=True", "--hf-hub-log-args: Hugging Face token is not defined"),
        ("no_such_argument=1", "--hf-hub-log-args: "),
    ],
)
def test_malt_eval_hub_log_args_are_checked_first(value, message, tmp_path, monkeypatch):
    from malt_apps.eval_cli import main

    monkeypatch.delenv("HF_TOKEN", raising=False)
    r = _invoke(main, ["--tasks", "malt_gsm8k", "--model", tmp_path / "no-model", "--hf-hub-log-args", value])
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_malt_train_report_to_tensorboard_writes_event_files(tiny_model_dir, tmp_path):
    """`malt-train sft --report-to tensorboard`: TRL's curves in RUN/logs/sft-<role>, the step's run name."""
    from malt_apps.train_cli import main

    run = tmp_path / "run"
    rows = [
        {"prompt": [{"role": "user", "content": f"What is {i} + 1?"}], "completion": _answer(i + 1)} for i in range(4)
    ]
    (run / "data" / "verifier").mkdir(parents=True)
    (run / "data" / "verifier" / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["sft", run, "--role", "verifier", "--model", tiny_model_dir, "--max-steps", 2, "--batch-size-train", 2]
    r = _invoke(main, [*args, "--max-length", 128, "--report-to", "tensorboard"])
    assert r.exit_code == 0, r.output[-3000:]
    events = list((run / "logs" / "sft-verifier").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = EventAccumulator(str(events[0].parent)).Reload()
    assert len(curves.Scalars("train/loss")) == 2  # one point per step (logging_steps=1)
    assert (run / "adapters-sft" / "verifier" / "adapter_model.safetensors").is_file()
    r = _invoke(main, [*args, "--report-to", "mlflow"])
    assert r.exit_code == 2 and "--report-to" in r.output


def _answer(n: int) -> list[dict]:
    return [{"role": "assistant", "content": f"Final Answer: {n}"}]
