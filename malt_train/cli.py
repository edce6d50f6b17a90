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
from malt_train.launch import Launch, is_main, launcher_holds_lock, share, world_size

ROLES = ("generator", "verifier", "refiner")


class _Group(OneLineUsageErrors, click.Group):
    prog = "malt-train"

    def invoke(self, ctx: click.Context):
        interrupt_on_sigterm()
        try:
            return super().invoke(ctx)
        except MaltError as exc:
            if is_main():  # under a launch every process meets the same error; one says it
                click.echo(f"malt-train: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            if is_main():
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
        click.option("--lora-dropout", default=0.05, show_default=True, type=float),
        click.option("--sft-lr", default=1e-4, show_default=True, type=float),
        click.option("--dpo-lr", default=5e-5, show_default=True, type=float),
        click.option("--epochs", default=1.0, show_default=True, type=float),
        click.option(
            "--batch-size-train",
            "train_batch",
            default=8,
            show_default=True,
            type=int,
            help="Effective batch size (the paper's 8) over all processes, by gradient accumulation.",
        ),
        click.option("--micro-batch-size", default=1, show_default=True, type=int),
        click.option("--max-length", default=1024, show_default=True, type=int),
        click.option("--max-steps", default=-1, show_default=True, type=int, help="> 0: stop after N steps."),
        click.option("--beta", default=0.2, show_default=True, type=float, help="DPO beta."),
        click.option(
            "--save-steps", default=50, show_default=True, type=int, help="Checkpoint every N steps (resume point)."
        ),
        click.option(
            "--num-processes",
            default=None,
            type=int,
            help="Train each step on N processes (GPUs) with `accelerate launch` (DDP unless --accelerate-config).",
        ),
        click.option(
            "--accelerate-config",
            default=None,
            type=click.Path(path_type=Path),
            help="accelerate config file to launch each step with (configs/accelerate/*.yaml: DDP, FSDP, ZeRO-3).",
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
        lora_dropout=o["lora_dropout"],
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


LAUNCH_OPTIONS = ("num_processes", "accelerate_config")


def _launch(o: dict) -> Launch | None:
    """The ``accelerate launch`` that --num-processes / --accelerate-config ask for, with the training
    options passed on as given; ``None`` to train in this process (also inside a launch)."""
    if world_size() > 1:  # a worker of a launch: it trains
        return None
    launch = Launch(o.get("num_processes"), o.get("accelerate_config"))
    if not launch.wanted:
        return None
    for p in main.commands["sft"].params:  # sft and dpo take the same training options
        if isinstance(p, click.Option) and p.name in o and p.name not in (*LAUNCH_OPTIONS, "role", "model"):
            if p.is_flag:
                launch.args += [p.opts[0]] if o[p.name] else []
            else:
                launch.args += [p.opts[0], str(o[p.name])]
    return launch


def _single_process(command: str) -> None:
    if world_size() > 1:
        raise MaltError(
            f"`malt-train {command}` runs once, not under accelerate launch: launch `malt-train sft|dpo` there, "
            f"or give `{command}` --num-processes N to launch its training steps"
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


def _launched(launch: Launch | None, step: str, run: Path, role: str, model: str, cfg) -> str | None:
    """Train ``step`` under ``launch`` when there is one and the set has examples (its workers place and
    report the adapter); ``None``: train here. The checks a worker would fail on are made first."""
    from malt_train.launch import accumulation, check_examples
    from malt_train.train import read_rows

    if launch is None:
        return None
    data = run / "data" / role / f"{step}.jsonl"
    rows = read_rows(data, ("prompt", "completion") if step == "sft" else ("prompt", "chosen", "rejected"))
    if not rows:
        return None  # an empty set is skipped here as without a launch
    check_examples(len(rows), launch.processes, data)
    accumulation(cfg.batch_size, cfg.micro_batch_size, launch.processes)
    launch.run(step, run, role, model)
    return str(run / ("adapters-sft" if step == "sft" else "adapters") / role)


def do_sft(run: Path, role: str, model: str, cfg, launch: Launch | None = None) -> str:
    from harness.models import resolve_model
    from malt_train.train import train_sft

    launched = _launched(launch, "sft", run, role, model, cfg)
    if launched:
        return launched
    adapter = train_sft(resolve_model(model), run / "data" / role / "sft.jsonl", run / "work" / f"sft-{role}", cfg)
    if not is_main():
        return ""
    where = _place(adapter, run / "adapters-sft" / role)
    click.echo(f"sft {role}: {where}")
    return where


def do_dpo(run: Path, role: str, model: str, cfg, launch: Launch | None = None) -> str:
    from harness.models import resolve_model
    from malt_train.train import train_dpo

    launched = _launched(launch, "dpo", run, role, model, cfg)
    if launched:
        return launched
    start = run / "adapters-sft" / role
    start_adapter = str(start) if (start / "adapter_config.json").is_file() else None
    adapter = train_dpo(
        resolve_model(model), run / "data" / role / "dpo.jsonl", run / "work" / f"dpo-{role}", cfg, start_adapter
    )
    if not is_main():
        return ""
    if adapter is None and start_adapter:  # no preference pair: DPO from the SFT adapter would leave it as is
        adapter = start
        click.echo(f"dpo {role}: no pair, so the SFT adapter is the final one")
    where = _place(adapter, run / "adapters" / role)
    click.echo(f"dpo {role}: {where}")
    return where


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    """An exclusive lock on the run folder: a second malt-train on it refuses; a dead one's lock is taken.

    Under a launch the main process locks (all processes stop with its error), or, when ``malt-train``
    launched the processes, the launching process holds the lock for them."""
    from harness.runfiles import RunLock

    if launcher_holds_lock(run):
        yield
        return
    lock, error = RunLock(run, "malt-train"), None
    if is_main():
        try:
            lock.acquire()
        except MaltError as exc:
            error = str(exc)
    error = share(error)
    if error:
        raise MaltError(error)
    try:
        if lock.took_over:
            click.echo(f"malt-train: note: took over the stale lock of dead process {lock.took_over}", err=True)
        yield
    finally:
        if is_main():
            lock.release()


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
    _single_process("generate")
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
    launch = _launch(o)
    with _locked(run):
        do_sft(run, role, _run_model(run, model), _step_configs(o)[0], launch)


@main.command("dpo")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--model", default=None, help="Base model (default: the run's).")
@_train_options
def dpo_cmd(run: Path, role: str, model: str | None, **o) -> None:
    """LoRA DPO of one role from its SFT adapter (reference = SFT model) -> RUN/adapters/ROLE."""
    launch = _launch(o)
    with _locked(run):
        do_dpo(run, role, _run_model(run, model), _step_configs(o)[1], launch)


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
    _single_process("run")
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
    launch = _launch(o)  # --num-processes: training steps under accelerate launch, the tree in this process
    dpo_roles = [r for r in ROLES if r != "generator" or generator_dpo]
    for role in ROLES:
        done = (run / "adapters-sft" / role / "adapter_config.json").is_file()
        summary["steps"][f"sft-{role}"] = (
            str(run / "adapters-sft" / role) if done else do_sft(run, role, model, sft_cfg, launch)
        )
    for role in ROLES:
        final = run / "adapters" / role
        if (final / "adapter_config.json").is_file():
            summary["steps"][f"final-{role}"] = str(final)
        elif role in dpo_roles:
            summary["steps"][f"final-{role}"] = do_dpo(run, role, model, dpo_cfg, launch)
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
