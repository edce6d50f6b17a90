"""The cheap parts of ``bench/throughput.py``: the repeated-prompts baseline, the row plan, the targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.inference.backends.base import SamplingParams
from harness.inference.backends.scripted import ScriptedBackend
from harness.inference.engines import RoleEngine
from harness.solver.steps import SolveContext
from harness.tasks.prompts import ROLES, load_prompts
from malt_train.generate import grow_trees

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import throughput  # noqa: E402
from throughput_rows import (  # noqa: E402
    PromptCounter,
    RepeatedPrompts,
    TreeMemory,
    copy_gbps,
    count_generated,
    generated_tokens,
    matmul_gflops,
)

DOCS = {0: {"question": "Tom has 2 apples and buys 1 more. How many?", "answer": "2 + 1 = 3\n#### 3"}}


def _trees(backend, n: int) -> tuple[list[dict], SolveContext]:
    engines = {r: RoleEngine(backend) for r in ROLES}
    params = dict.fromkeys(ROLES, SamplingParams(4, 0.3, 1.0, seed=0))
    ctx = SolveContext({"malt_gsm8k": load_prompts("malt_gsm8k")}, engines, params)
    return grow_trees("malt_gsm8k", DOCS, ctx, n), ctx


def test_repeated_prompts_sends_n_prompts_of_one_sample():
    inner = ScriptedBackend(lambda msgs, i: f"sample {i}")
    out = RepeatedPrompts(inner).generate([[{"role": "user", "content": "a"}]] * 2, SamplingParams(8, n=3))
    assert [len(c) for c in out] == [3, 3]
    assert [(k, p.n) for k, p, _ in inner.calls] == [(6, 1)]


def test_tree_by_repeated_prompts_has_the_same_shape_on_a_real_model(tiny_model_dir):
    from harness.inference.backends.hf import HFBackend

    be = HFBackend(str(tiny_model_dir), batch_size=16, dtype="float32")
    counted = PromptCounter(be)
    sampled, ctx_n = _trees(counted, 2)
    repeated, ctx_r = _trees(RepeatedPrompts(be), 2)
    assert len(sampled) == len(repeated) == 2 + 4 + 8
    assert [x["id"] for x in sampled] == [x["id"] for x in repeated]
    assert all(x["n_tokens"] > 0 for x in sampled + repeated)
    assert counted.per_sample >= 2 * counted.distinct > 0  # every distinct prompt asked for >= 2 samples
    assert ctx_n.stats["refiner"]["calls"] == ctx_r.stats["refiner"]["calls"] == 8


def test_plan_skips_vllm_rows_without_vllm(monkeypatch):
    monkeypatch.setattr(throughput, "vllm_installed", lambda: False)
    a = throughput.parse_args(["--quick"])
    assert (a.model, a.questions, a.max_new_tokens, a.batch_size, a.memory_questions) == (
        "smollm2-135m",
        16,
        64,
        16,
        64,
    )
    a.device = "cpu"
    rows = {key: spec for key, _, spec in throughput.plan(a, "/m")}
    assert rows["g_vllm"] == rows["gvr_vllm"] == "skipped: vllm not installed"
    assert rows["tree_rep_hf"]["repeat"] and not rows["tree_n_hf"].get("repeat")
    assert rows["g_hf_mem"]["questions"] == 64
    assert throughput.parse_args([]).model == "qwen2.5-coder-0.5b"


@pytest.mark.parametrize(("gvr_tok_s", "mark"), [(30.0, "— met"), (10.0, "— not met")])
def test_target_notes(monkeypatch, gvr_tok_s, mark):
    monkeypatch.setattr(throughput, "vllm_installed", lambda: False)
    row = {"tokens": 100, "wall": 5.0, "questions": 16, "peak_rss_mib": 1000.0}
    res = {
        "lmeval": {**row, "tokens": 100},
        "gvr_hf": {**row, "tokens": int(gvr_tok_s * 5)},
        "g_hf": row,
        "g_hf_mem": {**row, "questions": 64, "peak_rss_mib": 1300.0},
    }
    notes = throughput.target_notes(res, throughput.parse_args(["--quick"]))
    assert notes[0].endswith(f"{mark}.")
    assert "not measured" in notes[1] and "not measured" in notes[2]
    assert notes[3].endswith("— not met.")  # +30% peak RSS is not flat


def test_finished_rows_are_kept_and_reused_by_a_rerun(monkeypatch, tmp_path):
    calls = []

    def fake_row(spec, workdir):
        calls.append(spec["questions"])
        return {"error": "failed: boom"} if spec["questions"] == 0 else {"tokens": 10, "wall": 1.0}

    monkeypatch.setattr(throughput, "run_row", fake_row)
    spec = {"kind": "ours", "questions": 4}
    first, kept = throughput.measure("g_hf", spec, tmp_path, fresh=False)
    again, kept_again = throughput.measure("g_hf", spec, tmp_path, fresh=False)
    assert (kept, kept_again, calls) == (False, True, [4])
    assert again["tokens"] == 10 and again["started"] == first["started"]
    throughput.measure("g_hf", {**spec, "questions": 8}, tmp_path, fresh=False)  # other settings: measured
    throughput.measure("g_hf", spec, tmp_path, fresh=True)
    throughput.measure("bad", {**spec, "questions": 0}, tmp_path, fresh=False)  # a failed row is not kept
    throughput.measure("bad", {**spec, "questions": 0}, tmp_path, fresh=False)
    assert calls == [4, 8, 4, 0, 0]
    assert throughput.measure("g_hf", spec, tmp_path, fresh=False, report_only=True)[1]  # kept: reported
    missing, kept = throughput.measure("new", spec, tmp_path, fresh=False, report_only=True)
    assert (missing, kept, calls[-1:]) == ({"error": throughput.NOT_YET}, False, [0])  # not measured
    res = {"g_hf": {**again, "kept": True}}
    assert "1 of them kept" in throughput.timing_notes(res)[0]
    assert throughput.work_dir(throughput.parse_args(["--quick"])) != throughput.work_dir(throughput.parse_args([]))


def test_a_failed_row_keeps_its_whole_log_and_names_its_exception(monkeypatch, tmp_path):
    script = tmp_path / "row.py"
    script.write_text(
        "import sys\n"
        "print('engine log line 1')\n"
        "print('Traceback (most recent call last):', file=sys.stderr)\n"
        "print('harness.core.errors.ModelError: the vLLM engine died', file=sys.stderr)\n"
        "print('  warnings.warn(resource_tracker)', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    monkeypatch.setattr(throughput, "ROW_SCRIPT", script)
    work = tmp_path / "work"
    result, kept = throughput.measure("tree_n_vllm", {"kind": "tree"}, work, fresh=False)
    assert not kept and result["error"].startswith("failed: harness.core.errors.ModelError: the vLLM engine died")
    log = work / "tree_n_vllm.failed.log"
    assert str(log) in result["error"] and "engine log line 1" in log.read_text()
    assert not (work / "tree_n_vllm.json").exists()  # not kept: a rerun measures it again


def test_decode_ceiling_counts_every_linear_layer_of_a_real_config(tiny_model_dir):
    import json

    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    shapes = throughput.linear_shapes(str(tiny_model_dir))
    assert len(shapes) == 7 * cfg["num_hidden_layers"] + 1
    assert shapes[-1] == (cfg["hidden_size"], cfg["vocab_size"])
    ceiling = throughput.decode_ceiling(str(tiny_model_dir), batch=4, threads=1)
    assert ceiling["params"] == throughput.linear_params(str(tiny_model_dir)) == sum(k * n for k, n in shapes)
    assert ceiling["tok_s"] == pytest.approx(ceiling["gflops"] * 1e9 / (2 * ceiling["params"]))
    row = {"tokens": 100, "wall": 1.0}
    note = throughput.ceiling_note({"g_hf": row, "tree_n_hf": row}, {**ceiling, "tok_s": 400.0})[0]
    assert "g_hf 25%" in note and "tree" not in note
    assert throughput.decode_ceiling("/no/such/model", 4, 1) is None


def test_profile_shares_names_the_ops_of_vllms_compiled_graph(tmp_path):
    import profile_shares

    code = tmp_path / "cache" / "ab" / "cabc123.py"
    code.parent.mkdir(parents=True)
    code.write_text("x = 1\n        buf1 = torch.ops._C.onednn_mm.default(a, b)\n        cpp_fused_add_mean_2(buf1)\n")
    worker = 'process 7:"python row.py";process 9:"VLLM::Worker"'
    runner = "CompiledFxGraph.__call__ (torch/_inductor/output_code.py:763);Runner.call (cabc123.py:{})"
    raw = tmp_path / "row.txt"
    raw.write_text(
        f"{worker};{runner.format(2)};OpOverload.__call__ (torch/_ops.py:875) 6\n"
        f"{worker};{runner.format(3)} 2\n"
        f"{worker};sdpa_attention_forward (transformers/integrations/sdpa_attention.py:112) 1\n"
        'process 7:"python row.py";sched_yield (vllm/distributed/utils.py:46);x (vllm/v1/engine/core.py:1) 1\n'
    )
    stacks = profile_shares.read_stacks(raw, profile_shares.CompiledOps([tmp_path / "cache"]))
    assert set(stacks) == {"process 9 VLLM::Worker", "process 7 python row.py"}
    worker_shares = profile_shares.shares(stacks["process 9 VLLM::Worker"])
    assert worker_shares["linear layers"] == pytest.approx(6 / 9)
    assert worker_shares["attention kernel"] == pytest.approx(1 / 9)
    assert worker_shares["other model code (norms, rotary, MLP activation, masks, cache)"] == pytest.approx(2 / 9)
    engine = profile_shares.shares(stacks["process 7 python row.py"])
    assert engine["vLLM scheduler / engine bookkeeping"] == 1.0
    unresolved = profile_shares.read_stacks(raw)["process 9 VLLM::Worker"]  # no generated code found: frames kept
    assert profile_shares.shares(unresolved)["linear layers"] == 0


def test_tree_memory_counts_a_live_grandchild():
    """vLLM's worker is a grandchild that is still alive when a row ends: ru_maxrss never sees it."""
    import os
    import signal
    import subprocess
    import time

    hold = f"{sys.executable} -c \"import sys, time; b = b'x' * (300 << 20); print(1, flush=True); time.sleep(60)\""
    sh = ["sh", "-c", f"{hold}; true"]  # sh stays, so the 300 MiB are held by a grandchild
    proc = subprocess.Popen(sh, stdout=subprocess.PIPE, start_new_session=True)
    try:
        mem = TreeMemory()
        before = mem.sample()
        assert proc.stdout.readline().strip() == b"1"  # the 300 MiB are written
        time.sleep(0.2)
        assert mem.sample() - before > 250
        assert mem.stop() - before > 250
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_table_marks_rows_without_the_process_tree_sample():
    row = {"tokens": 100, "wall": 5.0, "questions": 16, "peak_rss_mib": 1000.0}
    rows = [("g_hf", "ours g (hf)", {}), ("g_vllm", "ours g (vllm)", {})]
    res = {"g_hf": {**row, "peak_tree_pss_mib": 900.0}, "g_vllm": row}
    lines = throughput.table(rows, res, None, 0.0).splitlines()
    assert "1000" in lines[2] and "*" not in lines[2]
    assert "1000 *" in lines[3]


@pytest.mark.parametrize(
    ("device", "other", "backend"), [("cpu", "continuous", "hf-continuous"), ("cuda", "generate", "hf-generate")]
)
def test_plan_has_a_gvr_row_on_each_generation_path(monkeypatch, device, other, backend):
    monkeypatch.setattr(throughput, "vllm_installed", lambda: False)
    a = throughput.parse_args(["--quick"])
    a.device = device
    rows = {key: (label, spec) for key, label, spec in throughput.plan(a, "/m")}
    label, spec = rows[f"gvr_hf_{other}"]
    assert spec["backend"] == backend and spec["agents"] == "g,v,r" and other in label
    assert {k: v for k, v in spec.items() if k != "backend"} == {
        k: v for k, v in rows["gvr_hf"][1].items() if k != "backend"
    }
    assert rows["gvr_hf"][1]["backend"] == "hf"  # the device's own path, under its usual key
    assert throughput.path_rows(device) == {
        "continuous" if device == "cpu" else "generate": f"gvr_hf_{other}",
        throughput.generation_path(device): "gvr_hf",
    }


def test_rows_selects_rows_and_rejects_unknown_keys(monkeypatch):
    monkeypatch.setattr(throughput, "vllm_installed", lambda: False)
    a = throughput.parse_args(["--quick", "--rows", "gvr_hf, gvr_hf_continuous"])
    a.device = "cpu"
    rows = throughput.plan(a, "/m")
    measured = [key for key, _, spec in rows if isinstance(spec, dict)]
    assert measured == ["gvr_hf", "gvr_hf_continuous"]
    assert all(spec == throughput.NOT_SELECTED for key, _, spec in rows if key not in measured)
    a.rows = ["gvr_hf", "gvr_fast"]
    with pytest.raises(ValueError, match="unknown --rows gvr_fast"):
        throughput.plan(a, "/m")


def test_report_ends_with_the_two_ratio_lines(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(throughput, "vllm_installed", lambda: False)
    monkeypatch.setattr(throughput, "bench_device", lambda: "cpu")
    monkeypatch.setattr(throughput, "matmul_gflops", lambda **kw: 100.0)
    monkeypatch.setattr(throughput, "decode_ceiling", lambda *a: None)
    monkeypatch.setattr("harness.inference.models.resolve_model", lambda name: "/m")
    monkeypatch.setattr(throughput, "linear_params", lambda model_dir: 1000)
    rates = {"gvr_hf": 20, "gvr_hf_continuous": 10, "lmeval": 40}

    def fake_measure(key, spec, work, fresh, report_only=False):
        return {"tokens": rates[key] * 10, "wall": 10.0, "questions": 4, "peak_rss_mib": 1.0}, False

    monkeypatch.setattr(throughput, "measure", fake_measure)
    out = tmp_path / "B.md"
    throughput.main(
        ["--quick", "--rows", "lmeval,gvr_hf,gvr_hf_continuous", "--out", str(out), "--work", str(tmp_path)]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == ["ratio_gvr_vs_generate=0.50", "ratio_vs_lmeval_hf=0.50"]
    text = out.read_text()
    assert "continuous batching / `generate()`: 0.50x; the hf backend's path on this cpu: generate" in text
    assert "not met — so the backend keeps `generate()` on CPUs" in text
    assert "malt-eval --agents g,v,r (hf, continuous)" in text and "not selected (--rows)" in text


def test_bad_rows_option_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr("harness.inference.models.resolve_model", lambda name: "/m")
    with pytest.raises(SystemExit) as exc:
        throughput.main(["--quick", "--rows", "nope"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown --rows nope; known: lmeval, g_hf")


def test_lmeval_row_counts_generated_token_ids_not_retokenized_text():
    import torch

    assert generated_tokens([[5, 5, 5, 2, 0, 0], [5, 5, 5, 5], [2, 0]], stops={2, 0}) == 4 + 4 + 1

    class FakeLM:
        tokenizer = type("T", (), {"pad_token_id": 0, "eos_token_id": 2})()
        model = type("M", (), {"generation_config": type("G", (), {"eos_token_id": [2, 7]})()})()

        def _model_generate(self, context, max_length, stop, **kwargs):
            new = torch.tensor([[198] * 16, [198, 198, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
            return torch.cat([context, new], dim=1)

    lm = FakeLM()
    counted = count_generated(lm)
    lm._model_generate(torch.ones(2, 5, dtype=torch.long), max_length=21, stop=["\n\n"])
    assert counted["tokens"] == 16 + 3  # 16 newline tokens, whatever their text retokenizes to


def test_gpu_ceiling_is_the_lower_of_bandwidth_and_matmul_bounds():
    weights = 494_000_000
    c = throughput.gpu_ceiling(weights, batch=64, gflops=788_000.0, gbps=4300.0)
    assert c["tok_s_bandwidth"] == pytest.approx(64 * 4300e9 / (2 * weights))  # 2 bytes per bf16 weight per step
    assert c["tok_s_compute"] == pytest.approx(788e12 / (2 * weights))  # 2 FLOPs per weight per token
    assert c["tok_s"] == c["tok_s_bandwidth"] < c["tok_s_compute"]
    big = throughput.gpu_ceiling(weights, batch=1024, gflops=788_000.0, gbps=4300.0)
    assert big["tok_s"] == big["tok_s_compute"]
    note = throughput.ceiling_note({"g_hf": {"tokens": 2786, "wall": 1.0}}, c)[0]
    assert "Decode ceiling (GPU)" in note and "g_hf 1.00%" in note


def test_device_rates_run_on_this_cpu():
    """The GPU roofline's measurements, on small CPU buffers (the code path a GPU run takes, minus CUDA)."""
    assert matmul_gflops(size=64, reps=2, device="cpu") > 0
    assert copy_gbps("cpu", numel=1 << 16, reps=2) > 0


def test_a_run_section_goes_first_among_the_dated_sections(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nintro\n\n{throughput.SECTIONS_MARK}\n\n## Older run (2026-01-01)\n\nold\n")
    throughput.add_section(page, "\n## New run (2026-02-01)\n\nnew\n")
    text = page.read_text()
    assert (
        text.index("intro") < text.index(throughput.SECTIONS_MARK) < text.index("## New run") < text.index("## Older")
    )
    bare = tmp_path / "other.md"
    bare.write_text("# Other\n")
    throughput.add_section(bare, "\n## New run\n")
    assert bare.read_text() == "# Other\n\n## New run\n"
