"""Which earlier results files a new one supersedes: read, parsed, the same run, tasks among the new ones."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from harness.core.supersede import same_run
from harness.lmeval.run import write_across_seeds
from harness.run.results import write_results

OLD = "results_2020-01-01T00-00-00.json"


def _doc(tasks=("malt_gsm8k",), temperature=0.3, provenance=None, **malt) -> dict:
    block = {"format": 1, "agents": "g,v,r", "votes": 1, "temperature": temperature, "top_p": 1.0, "seeds": 1}
    block.update({"prompt_hash": {t: "abc" for t in tasks}, "per_seed": {t: [] for t in tasks}, **malt})
    if provenance is not None:
        block["provenance"] = provenance
    return {"results": {t: {"acc,none": 0.5} for t in tasks}, "malt": block}


def _old(folder: Path, doc: dict | str, name: str = OLD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    (folder / f"samples_malt_gsm8k_{name[len('results_') : -len('.json')]}.jsonl").write_text("{}\n")
    return path


def _results(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("results_*.json"))


def test_an_unreadable_results_file_is_kept_and_named(tmp_path, caplog):
    truncated = json.dumps(_doc())[:40]
    old = _old(tmp_path, truncated)
    with caplog.at_level(logging.WARNING, logger="harness"):
        new = write_results(_doc(("malt_gsm8k", "malt_math")), [], tmp_path, log_samples=False)
    assert old.read_text() == truncated and new.exists()
    assert len(_results(tmp_path)) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(old) in warnings[0] and "\n" not in warnings[0]


def test_a_readable_file_of_the_same_run_is_moved_aside(tmp_path):
    old = _old(tmp_path, _doc())
    new = write_results(_doc(("malt_gsm8k", "malt_math")), [], tmp_path, log_samples=False)
    assert _results(tmp_path) == [new.name]
    aside = tmp_path / "superseded"
    assert (aside / f"{old.name}.old").is_file()
    assert (aside / "samples_malt_gsm8k_2020-01-01T00-00-00.jsonl.old").is_file()
    assert not list(tmp_path.glob("samples_*"))


def test_a_readable_file_of_another_run_or_other_tasks_is_kept(tmp_path):
    other_run = _old(tmp_path, _doc(temperature=0.0))
    other_tasks = _old(tmp_path, _doc(("malt_csqa",)), "results_2020-01-02T00-00-00.json")
    new = write_results(_doc(("malt_gsm8k", "malt_math")), [], tmp_path, log_samples=False)
    assert _results(tmp_path) == sorted([other_run.name, other_tasks.name, new.name])
    assert not (tmp_path / "superseded").exists()


def test_provenance_decides_when_both_files_have_one():
    prov = {"format": 1, "generation": {"temperature": 0.3}, "git": "aaa", "tasks": {"malt_gsm8k": {"data": "d1"}}}
    again = {**prov, "git": "bbb", "tasks": {"malt_gsm8k": {"data": "d1"}, "malt_math": {"data": "d2"}}}
    hotter = {**prov, "generation": {"temperature": 0.7}}
    assert same_run(_doc(provenance=prov), _doc(("malt_gsm8k", "malt_math"), provenance=again))  # git, tasks: no
    assert not same_run(_doc(provenance=prov), _doc(provenance=hotter))
    # the legacy fields agree, the provenance does not: the provenance decides
    assert not same_run(_doc(provenance=prov), _doc(provenance={**prov, "versions": {"torch": "2"}}))
    # only one side has a provenance: the legacy fields decide
    assert same_run(_doc(), _doc(provenance=prov))
    assert not same_run(_doc(temperature=0.0), _doc(provenance=prov))


def test_a_legacy_file_with_another_prompt_is_another_run():
    assert not same_run(_doc(), {**_doc(), "malt": {**_doc()["malt"], "prompt_hash": {"malt_gsm8k": "zzz"}}})
    assert same_run(_doc(), _doc(("malt_gsm8k", "malt_math"), prompt_hash={"malt_gsm8k": "abc", "malt_math": "x"}))


def _across(temperature: float | None) -> dict:
    malt = {"agents": "g", "votes": 1, "roles": ["generator"], "temperature": temperature, "seeds": 2}
    return {"results": {"gsm8k": {"exact_match,none": 0.5}}, "malt": {**malt, "per_seed": {"gsm8k": [{}, {}]}}}


def test_lm_eval_across_seeds_files_follow_the_same_rule(tmp_path, caplog):
    same = _old(tmp_path, _across(None))
    other = _old(tmp_path, _across(0.7), "results_2020-01-02T00-00-00.json")
    broken = _old(tmp_path, "{", "results_2020-01-03T00-00-00.json")
    ours = _old(tmp_path, _doc(("gsm8k",)), "results_2020-01-04T00-00-00.json")  # a malt_* run's file: kept
    with caplog.at_level(logging.WARNING, logger="harness"):
        new = write_across_seeds(_across(None), tmp_path)
    assert _results(tmp_path) == sorted([other.name, broken.name, ours.name, new.name])
    assert (tmp_path / "superseded" / f"{same.name}.old").is_file()
    assert [str(broken) in r.getMessage() for r in caplog.records] == [True]
