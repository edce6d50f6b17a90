"""The lm-eval paths: MaltLM through simple_evaluate, and stock lm-eval on our task YAMLs."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture
def task_manager(small_data, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("MALT_DATA_DIR", str(small_data))
    return TaskManager(include_path=str(REPO / "tasks"), include_defaults=False)


def test_tasks_are_indexed(task_manager):
    assert {"malt_gsm8k", "malt_math", "malt_csqa"} <= set(task_manager.all_tasks)


def test_malt_lm_through_simple_evaluate_scripted(task_manager):
    import lm_eval

    from harness.inference.backends.scripted import ScriptedBackend
    from harness.inference.engines import RoleEngine
    from harness.lmeval.model import MaltLM

    def responder(messages, i):  # right on GSM8K row 0 (answer 18) only after refinement
        return "Final Answer: 18" if "Critique" in messages[-1]["content"] else "Final Answer: 7"

    be = ScriptedBackend(responder)
    lm = MaltLM(agents="g,v,r", engines={r: RoleEngine(be) for r in ("generator", "verifier", "refiner")})
    out = lm_eval.simple_evaluate(model=lm, tasks=["malt_gsm8k"], task_manager=task_manager, limit=3)
    assert out["results"]["malt_gsm8k"]["acc,none"] == pytest.approx(1 / 3)
    assert len(be.calls) == 3  # stage-batched: one call per role for all requests
    lm_g = MaltLM(agents="g", engines={"generator": RoleEngine(ScriptedBackend(responder))})
    out = lm_eval.simple_evaluate(model=lm_g, tasks=["malt_gsm8k"], task_manager=task_manager, limit=3)
    assert out["results"]["malt_gsm8k"]["acc,none"] == 0.0


def test_malt_lm_on_tiny_model(task_manager, tiny_model_dir):
    import lm_eval

    from harness.lmeval.model import MaltLM

    lm = MaltLM(model=str(tiny_model_dir), agents="g,r", max_new_tokens=4, batch_size=4)
    out = lm_eval.simple_evaluate(model=lm, tasks=["malt_csqa"], task_manager=task_manager, limit=2)
    assert out["results"]["malt_csqa"]["acc,none"] in (0.0, 0.5, 1.0)
    assert out["n-samples"]["malt_csqa"]["effective"] == 2


def test_stock_lm_eval_hf_runs_our_yaml(tiny_model_dir, small_data, tmp_path):
    env = dict(os.environ, MALT_DATA_DIR=str(small_data))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model_dir}",
            "--include_path",
            "tasks",
            "--tasks",
            "malt_gsm8k",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=4",
            "--output_path",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "malt_gsm8k" in r.stdout and "acc" in r.stdout


def test_malt_lm_takes_the_spec_fields_and_refuses_unknown_ones():
    from harness.core.errors import MaltError
    from harness.inference.backends.scripted import ScriptedBackend
    from harness.inference.engines import RoleEngine
    from harness.lmeval.model import MaltLM

    engines = {"generator": RoleEngine(ScriptedBackend())}
    lm = MaltLM(agents="g", votes=3, temperature=0.5, generator_adapter="a", device="cpu", engines=engines)
    assert (lm.spec.votes, lm.spec.temperature, lm.spec.role_adapters) == (3, 0.5, {"generator": "a"})
    with pytest.raises(MaltError, match="unknown option"):
        MaltLM(agents="g", gnerator_model="x", engines=engines)


def test_pyproject_declares_the_malt_model_for_lm_evals_plugin_discovery():
    """`[project.entry-points."lm_eval.models"]` names `malt` (lm-eval's plug-in group after 0.4.13): the object it
    points at is the class registered as lm-eval's model `malt`, as the entry point and decorator must agree."""
    import importlib

    tomllib = pytest.importorskip("tomllib")
    from lm_eval.api.registry import get_model

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    value = project["entry-points"]["lm_eval.models"]["malt"]
    module, _, name = value.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert get_model("malt") is cls and cls.__name__ == "MaltLM"
