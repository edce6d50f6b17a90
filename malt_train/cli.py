"""``malt-train``: generate trees, label them, build SFT/DPO sets, train role adapters, or all at once."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import click

from harness.errors import MaltError, OneLineUsageErrors, interrupt_on_sigterm

ROLES = ("generator", "verifier", "refiner")


class _Group(OneLineUsageErrors, click.Group):
    prog = "malt-train"

    def invoke(self, ctx: click.Context):
        interrupt_on_sigterm()
        try:
            return super().invoke(ctx)
        except MaltError as exc:
            click.echo(f"malt-train: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("malt-train: interrupted; rerun the same command to resume", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """MALT training: tree generation -> value-iteration labels -> SFT/DPO sets -> role LoRA adapters."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _generate_options(fn):
    opts = [
        click.option(
            "--model", default=None, help="Base model (dir, hub id or embedded alias; default qwen2.5-coder-0.5b)."
        ),
        click.option("--task", default="malt_gsm8k", show_default=True, help="malt_gsm8k, malt_math or malt_csqa."),
        click.option(
            "--questions", default=None, type=int, help="Seeded random sample of N training questions (default all)."
        ),
        click.option("--branching", default=3, show_default=True, type=int, help="n: n^3 leaves per question."),
        click.option("--temperature", default=0.3, show_default=True, type=float),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--batch-size", default=4, show_default=True, type=int, help="Questions per stage batch."),
        click.option("--max-new-tokens", default=512, show_default=True, type=int),
        click.option("--data-dir", default=None, help="Benchmark folder (default $MALT_DATA_DIR, else the hub)."),
        click.option("--prompts", "prompts_file", default=None, help="Prompts override file."),
        click.option("--dtype", default="auto", show_default=True),
        click.option("--backend", default="hf", show_default=True, help="Inference backend: hf, vllm or openai."),
        click.option("--base-url", default=None, help="--backend openai: the server's API root."),
        click.option("--api-key", default=None, help="--backend openai: key (default $OPENAI_API_KEY, else EMPTY)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _train_options(fn):
    opts = [
        click.option("--lora-rank", default=16, show_default=True, type=int),
        click.option("--lora-alpha", default=32, show_default=True, type=int),
        click.option("--sft-lr", default=1e-4, show_default=True, type=float),
        click.option("--dpo-lr", default=5e-5, show_default=True, type=float),
        click.option("--epochs", default=1.0, show_default=True, type=float),
        click.option(
            "--batch-size-train",
            "train_batch",
            default=8,
            show_default=True,
            type=int,
            help="Effective batch size (the paper's 8), by gradient accumulation.",
        ),
        click.option("--micro-batch-size", default=1, show_default=True, type=int),
        click.option("--max-length", default=1024, show_default=True, type=int),
        click.option("--max-steps", default=-1, show_default=True, type=int, help="> 0: stop after N steps."),
        click.option("--beta", default=0.2, show_default=True, type=float, help="DPO beta."),
        click.option(
            "--save-steps", default=50, show_default=True, type=int, help="Checkpoint every N steps (resume point)."
        ),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _step_configs(o: dict):
    from malt_train.train import DPOStepConfig, SFTStepConfig

    common = dict(
        lora_rank=o["lora_rank"],
        lora_alpha=o["lora_alpha"],
        epochs=o["epochs"],
        batch_size=o["train_batch"],
        micro_batch_size=o["micro_batch_size"],
        max_length=o["max_length"],
        max_steps=o["max_steps"],
        save_steps=o["save_steps"],
    )
    return SFTStepConfig(learning_rate=o["sft_lr"], **common), DPOStepConfig(
        learning_rate=o["dpo_lr"], beta=o["beta"], **common
    )


# ---------------------------------------------------------------------------------------------- steps


def do_generate(o: dict, run: Path) -> dict:
    from tqdm.auto import tqdm

    from harness.backends import get_backend
    from harness.backends.base import SamplingParams
    from harness.data import load_split
    from harness.engines import backend_options, build_engines
    from harness.grading import canonical_task
    from harness.models import DEFAULT_MODEL
    from harness.prompts import load_prompts
    from harness.solver import SolveContext
    from malt_train.generate import GenerateConfig, generate, planned_batches

    task = canonical_task(o["task"])
    cfg = GenerateConfig(
        task, o["questions"], o["branching"], o["temperature"], o["seed"], o["batch_size"], o["max_new_tokens"]
    )
    cfg.shard = o.get("shard")
    cfg.check()
    docs = load_split(task, "train", o["data_dir"])
    total = sum(len(batch) for _, batch in planned_batches(len(docs), cfg))
    prompts = {task: load_prompts(task, o["prompts_file"])}
    model = o["model"] or (None if get_backend(o["backend"]).remote else DEFAULT_MODEL)
    engines, _ = build_engines(
        model,
        ROLES,
        backend=o["backend"],
        batch_size=max(8, cfg.batch_size * cfg.branching**2),
        dtype=o["dtype"],
        **backend_options(o["backend"], o["base_url"], o["api_key"]),
    )
    model = model or engines["generator"].backend.model_id  # remote: the server's default model
    ctx = SolveContext(prompts, engines, dict.fromkeys(ROLES, SamplingParams(cfg.max_new_tokens)))
    bar = tqdm(total=total, desc="questions", unit="q")
    nodes = {"n": 0}

    def progress(q: int, n: int, tps: float) -> None:
        nodes["n"] += n
        bar.update(q)
        bar.set_postfix_str(f"nodes {nodes['n']}, {tps:.1f} tok/s")

    try:
        stats = generate(run, docs, ctx, cfg, model, progress)
    finally:
        bar.close()
        for backend in {id(e.backend): e.backend for e in engines.values()}.values():
            backend.close()  # an inference engine (vllm: its KV cache and process) is not needed for training
    click.echo(f"tree: {stats['questions']} questions, {stats['nodes']} nodes in {run / 'tree.jsonl'}")
    return stats


def do_label(tree: Path, out: Path, threshold: float, pooling: str) -> dict:
    from malt_train.label import LabelConfig, label_file

    counts = label_file(tree, out, LabelConfig(threshold, pooling))
    for role, c in counts.items():
        click.echo(f"{role}: {c['positive']} positive, {c['negative']} negative")
    return counts


def do_build(labeled: Path, out: Path, pairs_per_parent: int | None) -> dict:
    from malt_train.build import BuildConfig, build_sets
    from malt_train.tree import read_tree

    counts = build_sets(read_tree(labeled), out, BuildConfig(pairs_per_parent))
    for role, c in counts.items():
        click.echo(f"{role}: {c['sft']} SFT examples, {c['dpo']} DPO pairs")
    (out / "counts.json").write_text(json.dumps(counts, indent=2))
    return counts


def _place(adapter: Path | None, dest: Path) -> str:
    if adapter is None:
        return "skipped (empty set)"
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(adapter, dest)
    return str(dest)


def do_sft(run: Path, role: str, model: str, cfg) -> str:
    from harness.models import resolve_model
    from malt_train.train import train_sft

    adapter = train_sft(resolve_model(model), run / "data" / role / "sft.jsonl", run / "work" / f"sft-{role}", cfg)
    where = _place(adapter, run / "adapters-sft" / role)
    click.echo(f"sft {role}: {where}")
    return where


def do_dpo(run: Path, role: str, model: str, cfg) -> str:
    from harness.models import resolve_model
    from malt_train.train import train_dpo

    start = run / "adapters-sft" / role
    start_adapter = str(start) if (start / "adapter_config.json").is_file() else None
    adapter = train_dpo(
        resolve_model(model), run / "data" / role / "dpo.jsonl", run / "work" / f"dpo-{role}", cfg, start_adapter
    )
    if adapter is None and start_adapter:  # no preference pair: DPO from the SFT adapter would leave it as is
        adapter = start
        click.echo(f"dpo {role}: no pair, so the SFT adapter is the final one")
    where = _place(adapter, run / "adapters" / role)
    click.echo(f"dpo {role}: {where}")
    return where


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    """An exclusive lock on the run folder: a second malt-train on it refuses; a dead one's lock is taken."""
    from harness.runfiles import RunLock

    with RunLock(run, "malt-train") as lock:
        if lock.took_over:
            click.echo(f"malt-train: note: took over the stale lock of dead process {lock.took_over}", err=True)
        yield


def _run_model(run: Path, model: str | None) -> str:
    if model:
        return model
    cfg = run / "generate.json"
    if not cfg.is_file():
        raise MaltError(f"{run} has no generate.json: pass --model")
    return json.loads(cfg.read_text())["model"]


# ---------------------------------------------------------------------------------------------- commands


@main.command("generate")
@_generate_options
@click.option("--shard", default=None, help="i/k: generate only the i-th of k ranges of questions (1-based).")
@click.option("--out", "run", required=True, type=click.Path(path_type=Path), help="Run folder (RUN).")
def generate_cmd(run: Path, **o) -> None:
    """Sample a tree per training question (resumable: rerun the same command to continue)."""
    with _locked(run):
        do_generate(o, run)


@main.command("merge")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder of the merged tree.")
def merge_cmd(runs: tuple[Path, ...], out: Path) -> None:
    """Join the trees of generate runs (shards of one run: same config, disjoint questions) into OUT."""
    from malt_train.shard import merge_runs

    stats = merge_runs(list(runs), out)
    click.echo(f"tree: {stats['questions']} questions, {stats['nodes']} nodes in {out / 'tree.jsonl'}")
    if stats["missing"]:
        click.echo(f"malt-train: note: shards {', '.join(stats['missing'])} are not in the merge", err=True)


@main.command("stats")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def stats_cmd(path: Path, as_json: bool) -> None:
    """Nodes, tokens and right leaves of a tree (PATH: a run folder or a tree file)."""
    from malt_train.generate import CONFIG_FILE, TREE_FILE
    from malt_train.stats import format_stats, tree_stats
    from malt_train.tree import read_tree

    tree_path, cfg = (path / TREE_FILE, path / CONFIG_FILE) if path.is_dir() else (path, path.parent / CONFIG_FILE)
    max_new = json.loads(cfg.read_text()).get("max_new_tokens") if cfg.is_file() else None
    stats = tree_stats(read_tree(tree_path), max_new)
    click.echo(json.dumps(stats, indent=2) if as_json else format_stats(stats))


@main.command("label")
@click.argument("tree", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--threshold", default=0.5, show_default=True, type=float, help="label = value > threshold.")
@click.option("--pooling", default="global", show_default=True, type=click.Choice(["global", "local"]))
def label_cmd(tree: Path, out: Path, threshold: float, pooling: str) -> None:
    """Add value (value iteration) and label to every node."""
    do_label(tree, out, threshold, pooling)


@main.command("build")
@click.argument("labeled", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--pairs-per-parent", default=None, type=int, help="Cap on DPO pairs per parent (default all).")
def build_cmd(labeled: Path, out: Path, pairs_per_parent: int | None) -> None:
    """Write per-role sft.jsonl and dpo.jsonl."""
    do_build(labeled, out, pairs_per_parent)


@main.command("sft")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--model", default=None, help="Base model (default: the run's).")
@_train_options
def sft_cmd(run: Path, role: str, model: str | None, **o) -> None:
    """LoRA SFT of one role on RUN/data/ROLE/sft.jsonl -> RUN/adapters-sft/ROLE."""
    with _locked(run):
        do_sft(run, role, _run_model(run, model), _step_configs(o)[0])


@main.command("dpo")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--model", default=None, help="Base model (default: the run's).")
@_train_options
def dpo_cmd(run: Path, role: str, model: str | None, **o) -> None:
    """LoRA DPO of one role from its SFT adapter (reference = SFT model) -> RUN/adapters/ROLE."""
    with _locked(run):
        do_dpo(run, role, _run_model(run, model), _step_configs(o)[1])


@main.command("run")
@_generate_options
@_train_options
@click.option("--out", "run", required=True, type=click.Path(path_type=Path), help="Run folder (RUN).")
@click.option("--threshold", default=0.5, show_default=True, type=float)
@click.option("--pooling", default="global", show_default=True, type=click.Choice(["global", "local"]))
@click.option("--pairs-per-parent", default=None, type=int)
@click.option("--generator-dpo", is_flag=True, help="Also DPO-train the generator (helps base models).")
def run_cmd(run: Path, threshold: float, pooling: str, pairs_per_parent: int | None, generator_dpo: bool, **o) -> None:
    """generate -> label -> build -> sft (all roles) -> dpo (verifier, refiner); finished steps are kept."""
    with _locked(run):
        _run_all(run, threshold, pooling, pairs_per_parent, generator_dpo, o)


def _run_all(run: Path, threshold: float, pooling: str, pairs_per_parent: int | None, generator_dpo: bool, o) -> None:
    from malt_train.generate import TREE_FILE

    summary: dict = {"steps": {}}
    do_generate(o, run)  # resumable itself: a finished tree costs nothing
    labeled, data = run / "labeled.jsonl", run / "data"
    if not labeled.is_file():
        do_label(run / TREE_FILE, labeled, threshold, pooling)
    if not (data / "counts.json").is_file():
        do_build(labeled, data, pairs_per_parent)
    summary["counts"] = json.loads((data / "counts.json").read_text())
    model = _run_model(run, o["model"])
    sft_cfg, dpo_cfg = _step_configs(o)
    dpo_roles = [r for r in ROLES if r != "generator" or generator_dpo]
    for role in ROLES:
        done = (run / "adapters-sft" / role / "adapter_config.json").is_file()
        summary["steps"][f"sft-{role}"] = (
            str(run / "adapters-sft" / role) if done else do_sft(run, role, model, sft_cfg)
        )
    for role in ROLES:
        final = run / "adapters" / role
        if (final / "adapter_config.json").is_file():
            summary["steps"][f"final-{role}"] = str(final)
        elif role in dpo_roles:
            summary["steps"][f"final-{role}"] = do_dpo(run, role, model, dpo_cfg)
        else:
            summary["steps"][f"final-{role}"] = _place(
                run / "adapters-sft" / role if (run / "adapters-sft" / role).exists() else None, final
            )
    summary["config"] = {
        "sft": asdict(sft_cfg),
        "dpo": asdict(dpo_cfg),
        "dpo_roles": dpo_roles,
        "threshold": threshold,
        "pooling": pooling,
    }
    (run / "run.json").write_text(json.dumps(summary, indent=2))
    for step, where in summary["steps"].items():
        click.echo(f"{step}: {where}")
    click.echo(
        f"evaluate with:\n  malt-eval --malt-run {run} --agents g,v,r --tasks {o['task']}\n"
        f"  malt-eval --malt-run {run} --stage sft --agents g,v,r --tasks {o['task']}   # STaR baseline"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
