"""The provenance record: one "same run" rule for eval folders, the lm-eval request cache and suite rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.api import run_eval
from harness.core.errors import MaltError
from harness.core.identity import differences
from harness.core.roles import ROLES
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.provenance import Provenance, weights_digest
from harness.spec import EvalSpec
from tests.conftest import malt_eval, write_jsonl

SCHEMA_KEYS = {"format", "roles", "plan", "engine", "generation", "protocol", "tasks", "versions", "git"}


def _engines(answer: str = "Final Answer: 18") -> tuple[ScriptedBackend, dict]:
    be = ScriptedBackend(lambda p, i: answer)
    return be, {r: RoleEngine(be) for r in ROLES}


def _gsm(folder: Path, shared_data: Path, first: int, n: int = 4) -> Path:
    """A data folder whose GSM8K test split holds ``n`` real rows from row ``first``."""
    rows = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[first : first + n]
    write_jsonl(folder / "gsm8k" / "test.jsonl", rows)
    return folder


def test_record_round_trips_and_splits_run_from_system():
    rec = Provenance(
        roles={"generator": {"model": "m", "weights": "w", "adapter": None, "adapter_digest": None}},
        generation={"temperature": 0.0},
        tasks={"t": {"data": "d", "prompts": "p", "version": "1"}},
        versions={"malt": "0.1.0"},
        git="abc",
    )
    again = Provenance.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec and set(rec.to_dict()) == SCHEMA_KEYS
    assert again.run_key() == Provenance.from_dict({**rec.to_dict(), "git": "other"}).run_key()  # git: not the run
    assert again.run_key() != Provenance.from_dict({**rec.to_dict(), "versions": {"malt": "0.2"}}).run_key()
    assert set(rec.system()) == SCHEMA_KEYS - {"tasks", "versions", "git"}
    other = {**rec.to_dict(), "generation": {"temperature": 0.7}}
    assert differences(rec.to_dict(), other) == ["generation.temperature"]


def test_other_data_into_the_same_folder_is_refused_then_started_over(shared_data, tmp_path):
    out = tmp_path / "out"
    first = _gsm(tmp_path / "a", shared_data, 0)
    spec = EvalSpec(
        agents="g", tasks="malt_gsm8k", limit=2, output_path=str(out), data_dir=str(first), log_samples=True
    )
    run_eval(spec, engines=_engines()[1], progress=False)
    before = sorted(p.name for p in out.iterdir())
    other = _gsm(tmp_path / "b", shared_data, 10)  # other questions, same file name and count
    be, engines = _engines()
    with pytest.raises(MaltError, match=r"differs in: tasks\.malt_gsm8k\.data\).*--start-over"):
        run_eval(EvalSpec(**{**spec.__dict__, "data_dir": str(other)}), engines=engines, progress=False)
    assert be.calls == [] and sorted(p.name for p in out.iterdir()) == before
    res = run_eval(
        EvalSpec(**{**spec.__dict__, "data_dir": str(other), "start_over": True}), engines=engines, progress=False
    )
    assert be.calls  # computed on the new data
    new_questions = [json.loads(r)["question"] for r in (other / "gsm8k" / "test.jsonl").read_text().splitlines()]
    assert [s["doc"]["question"] for s in res.tasks[0].samples] == new_questions[:2]
    [moved] = out.glob("superseded-*")
    assert sorted(p.name for p in moved.iterdir()) == [n for n in before if not n.startswith(".")]


def test_a_spec_is_resolved_before_any_model_loads_or_folder_changes(shared_data, tmp_path):
    """run_eval resolves the whole spec first: a missing data file stops even --start-over before it moves
    anything, and no engine is asked for a text."""
    from harness.api import resolve

    out = tmp_path / "out"
    data = _gsm(tmp_path / "a", shared_data, 0)
    spec = EvalSpec(agents="g,v,r", tasks="malt_gsm8k", limit=2, output_path=str(out), data_dir=str(data))
    resolved = resolve(spec)
    assert resolved.lm_tasks == () and resolved.lm_task_objects is None
    assert resolved.ours.tasks == ["malt_gsm8k"] and len(resolved.ours.docs["malt_gsm8k"]) == 4
    assert resolved.ours.plan.roles == ("generator", "verifier", "refiner") and not out.exists()
    run_eval(spec, engines=_engines()[1], progress=False)
    before = sorted(p.name for p in out.iterdir())
    be, engines = _engines()
    missing = replace(spec, data_dir=str(tmp_path / "no-data"), start_over=True)
    with pytest.raises(MaltError):
        run_eval(missing, engines=engines, progress=False)
    assert be.calls == [] and sorted(p.name for p in out.iterdir()) == before  # nothing moved aside


def test_edited_jsonl_is_refused_by_the_cli(tiny_model_dir, shared_data, tmp_path):
    data, out = _gsm(tmp_path / "data", shared_data, 0, 2), tmp_path / "out"
    args = ["--model", tiny_model_dir, "--agents", "g", "--tasks", "malt_gsm8k", "--max-new-tokens", 3]
    assert malt_eval(*args, "--output-path", out, env_data=data).returncode == 0
    path = data / "gsm8k" / "test.jsonl"
    rows = [json.loads(r) for r in path.read_text().splitlines()]
    rows[1]["question"] += " Round to the nearest dollar."
    write_jsonl(path, rows)
    r = malt_eval(*args, "--output-path", out, env_data=data)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr[-2000:]
    assert "tasks.malt_gsm8k.data" in r.stderr and "--start-over" in r.stderr and "Traceback" not in r.stderr
    r = malt_eval(*args, "--output-path", out, "--start-over", env_data=data)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(out.glob("superseded-*/results_*.json"))) == 1  # the first results kept, moved aside


def test_old_run_record_without_provenance_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"model": "qwen2.5-coder-0.5b", "agents": "g"}))
    spec = EvalSpec(agents="g", tasks="malt_gsm8k", limit=1, output_path=str(out))
    with pytest.raises(MaltError, match=r"differs in: provenance\).*--start-over"):
        run_eval(spec, engines=_engines()[1], progress=False)


def test_old_run_json_of_an_eval_folder_is_read_as_its_record(tmp_path):
    """A folder written when the record was ``OUT/run.json``: resumed, refused and started over as before."""
    out = tmp_path / "o"
    spec = EvalSpec(agents="g", tasks="malt_gsm8k", limit=2, output_path=str(out))
    be, engines = _engines()
    first = run_eval(spec, engines=engines, progress=False)
    assert "provenance" in json.loads((out / "provenance.json").read_text()) and not (out / "run.json").exists()
    (out / "provenance.json").rename(out / "run.json")
    n = len(be.calls)
    again = run_eval(spec, engines=engines, progress=False)
    assert n and len(be.calls) == n and again.doc["results"] == first.doc["results"]  # resumed from run.json
    other = replace(spec, temperature=0.7)
    with pytest.raises(MaltError, match=r"differs in: generation\.temperature.*--start-over"):
        run_eval(other, engines=engines, progress=False)
    run_eval(replace(other, start_over=True), engines=engines, progress=False)
    moved = list(out.glob("superseded-*/run.json"))
    assert len(moved) == 1 and not (out / "run.json").exists() and (out / "provenance.json").is_file()
    assert json.loads((out / "provenance.json").read_text())["provenance"]["generation"]["temperature"] == 0.7


def test_old_identity_run_json_is_refused_and_moved_aside_on_start_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"model": "qwen2.5-coder-0.5b", "agents": "g"}))
    spec = EvalSpec(agents="g", tasks="malt_gsm8k", limit=1, output_path=str(out), start_over=True)
    run_eval(spec, engines=_engines()[1], progress=False)
    assert json.loads(next(out.glob("superseded-*/run.json")).read_text())["agents"] == "g"
    assert "provenance" in json.loads((out / "provenance.json").read_text())


def test_identical_rerun_recomputes_nothing(tmp_path):
    spec = EvalSpec(agents="g,v,r", tasks="malt_gsm8k", limit=3, batch_size=2, output_path=str(tmp_path / "o"))
    be, engines = _engines()
    first = run_eval(spec, engines=engines, progress=False)
    n = len(be.calls)
    again = run_eval(spec, engines=engines, progress=False)
    assert n and len(be.calls) == n  # every batch on record: generate not called
    assert again.doc["results"] == first.doc["results"]
    assert again.doc["malt"]["provenance"] == first.doc["malt"]["provenance"]


def _lora(model_dir: Path, out: Path, seed: int) -> Path:
    """A PEFT LoRA adapter on the tiny model, its weights drawn with ``seed`` (B not zero: it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = LoraConfig(r=2, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(out)
    return out


def test_adapter_retrained_in_place_is_refused(tiny_model_dir, shared_data, tmp_path):
    adapter = _lora(tiny_model_dir, tmp_path / "adapter", seed=1)
    spec = EvalSpec(
        model=str(tiny_model_dir),
        agents="g",
        tasks="malt_gsm8k",
        limit=2,
        max_new_tokens=3,
        output_path=str(tmp_path / "out"),
        data_dir=str(shared_data),
        role_adapters={"generator": str(adapter)},
    )
    first = run_eval(spec, progress=False)
    digest = first.doc["malt"]["provenance"]["roles"]["generator"]["adapter_digest"]
    assert digest and first.doc["malt"]["provenance"]["roles"]["generator"]["weights"] == weights_digest(
        str(tiny_model_dir)
    )
    _lora(tiny_model_dir, adapter, seed=2)  # retrained in place: same path, other weights
    with pytest.raises(MaltError, match=r"roles\.generator\.adapter_digest"):
        run_eval(spec, progress=False)


def test_lm_eval_cache_key_follows_temperature_and_adapter_content(tmp_path):
    from harness.lmeval.model import MaltLM
    from harness.lmeval.run import cache_path, run_provenance

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"one")
    engines = _engines()[1]

    def key(**options) -> str:
        lm = MaltLM(agents="g", engines=engines, generator_adapter=str(adapter), **options)
        spec = EvalSpec(**{**lm.spec.__dict__, "output_path": str(tmp_path / "out")})
        return Path(cache_path(spec, run_provenance(spec, lm, {}, [None], [0]))).name

    cold, warm = key(temperature=0.0), key(temperature=0.7)
    assert cold != warm and key(temperature=0.0) == cold
    (adapter / "adapter_model.safetensors").write_bytes(b"two")  # retrained in place
    assert key(temperature=0.0) != cold
    assert (tmp_path / "out" / "lm_eval_cache" / f"{cold}.json").is_file()  # the identity beside the cache


def test_provenance_in_both_results_files(shared_data, tmp_path):
    from tests.lm_eval_local import GSM8K_COT_ZS, write_local_tasks

    tasks = write_local_tasks(tmp_path / "tasks", shared_data)
    out = tmp_path / "out"
    spec = EvalSpec(
        agents="g",
        tasks=f"malt_gsm8k,{GSM8K_COT_ZS}",
        include_path=str(tasks),
        limit=2,
        output_path=str(out),
        data_dir=str(shared_data),
    )
    res = run_eval(spec, engines=_engines()[1], progress=False)
    files = [json.loads(p.read_text()) for p in out.rglob("results_*.json")]
    assert len(files) == 2
    for doc in files:
        prov = doc["malt"]["provenance"]
        assert set(prov) == SCHEMA_KEYS and prov["protocol"]["limit"] == 2
        assert all(t["data"] and t["prompts"] for t in prov["tasks"].values())
    ours, theirs = res.doc["malt"]["provenance"], res.lm_eval["malt"]["provenance"]
    assert set(ours["tasks"]) == {"malt_gsm8k"} and set(theirs["tasks"]) == {GSM8K_COT_ZS}
    assert ours["roles"] == theirs["roles"]


def test_adding_a_task_to_the_same_run_reuses_the_others_batches(shared_data, tmp_path):
    spec = EvalSpec(agents="g", tasks="malt_gsm8k", limit=2, output_path=str(tmp_path / "o"), data_dir=str(shared_data))
    run_eval(spec, engines=_engines()[1], progress=False)
    be, engines = _engines()
    both = run_eval(EvalSpec(**{**spec.__dict__, "tasks": "malt_gsm8k,malt_csqa"}), engines=engines, progress=False)
    assert sum(n for n, _, _ in be.calls) == 2  # csqa's two questions only
    assert set(both.doc["malt"]["provenance"]["tasks"]) == {"malt_gsm8k", "malt_csqa"}


def test_suite_row_is_reused_only_on_the_same_run_key(tiny_model_dir, shared_data, tmp_path):
    from malt_apps.suite import Row, SuiteConfig, run_row

    data = _gsm(tmp_path / "data", shared_data, 0, 2)
    shared = {"tasks": "malt_gsm8k", "seeds": 1, "max_new_tokens": 3, "data_dir": str(data)}
    cfg, row = SuiteConfig(tmp_path / "suite", eval_options=shared), Row("sa", "SA", "g")
    assert run_row(cfg, row, str(tiny_model_dir)) is False  # computed
    assert run_row(cfg, row, str(tiny_model_dir)) is True  # reused: same options, same run key
    path = data / "gsm8k" / "test.jsonl"
    rows = [json.loads(r) for r in path.read_text().splitlines()]
    rows[0]["question"] = rows[0]["question"].replace("Janet", "Jane")
    write_jsonl(path, rows)  # same options, other questions: not reused, and the folder refuses them
    with pytest.raises(MaltError, match=r"tasks\.malt_gsm8k\.data"):
        run_row(cfg, row, str(tiny_model_dir))
    again = SuiteConfig(cfg.out, eval_options={**shared, "start_over": True})
    assert run_row(again, row, str(tiny_model_dir)) is False
    assert run_row(cfg, row, str(tiny_model_dir)) is True  # --start-over is not one of the row's settings
