"""``malt-train``: generate trees, label them, build SFT/DPO sets, train role adapters, or all at once."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import click

from harness.core.errors import MaltError, OneLineUsageErrors
from harness.core.maltrun import CONFIG_FILE, TREE_FILE, run_model
from harness.core.roles import ROLES
from harness.spec import EngineSpec
from malt_apps.options import field_values, options_from
from malt_train import pipeline
from malt_train.build import BuildConfig
from malt_train.generate import GenerateConfig
from malt_train.label import LabelConfig
from malt_train.launch import Launch, is_main, launcher_holds_lock, share, world_size
from malt_train.train import DPOStepConfig, SFTStepConfig, check_reporting


class _Group(OneLineUsageErrors, click.Group):
    prog = "malt-train"
    handles_signals = True

    def resume_hint(self, params: dict) -> str:  # noqa: D102
        return "; rerun the same command to resume"

    def speaks(self) -> bool:  # noqa: D102 - under a launch every process meets the same error; one says it
        return is_main()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """MALT training: tree generation -> value-iteration labels -> SFT/DPO sets -> role LoRA adapters."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _generate_options(fn):
    """The tree's options (:class:`GenerateConfig`, but ``--shard``) and the model's (:class:`EngineSpec`)."""
    fn = options_from(EngineSpec, exclude=("model",))(fn)
    fn = options_from(GenerateConfig, exclude=("shard",))(fn)
    return options_from(EngineSpec, only=("model",))(fn)


def _generate_config(o: dict) -> tuple[GenerateConfig, EngineSpec]:
    return GenerateConfig(**field_values(GenerateConfig, o)), EngineSpec(**field_values(EngineSpec, o))


_FIRST = ("lora_rank", "lora_alpha", "lora_dropout", "learning_rate")  # --sft-lr beside --dpo-lr in --help
_NO_OPTION = ("gradient_checkpointing", "seed")  # step-config fields without a command-line option


def _train_options(fn):
    """The options of the training steps (:class:`SFTStepConfig`, :class:`DPOStepConfig`) and of their launch."""
    for deco in reversed(
        [
            options_from(SFTStepConfig, only=_FIRST),
            options_from(DPOStepConfig, only=("learning_rate",)),
            options_from(SFTStepConfig, exclude=(*_FIRST, *_NO_OPTION)),
            options_from(DPOStepConfig, only=("beta",)),
            options_from(Launch, only=("num_processes", "config_file")),
        ]
    ):
        fn = deco(fn)
    return fn


def _step_arguments(fn):
    """What ``sft`` and ``dpo`` take: RUN, ``--role``, ``--model`` and the training options."""
    fn = _train_options(fn)
    fn = click.option("--model", default=None, help="Base model (default: the run's).")(fn)
    fn = click.option("--role", required=True, type=click.Choice(ROLES))(fn)
    return click.argument("run", type=click.Path(path_type=Path))(fn)


def step_configs(o: dict) -> tuple[SFTStepConfig, DPOStepConfig]:
    """The SFT and DPO step configurations of a training command's option values (``ctx.params``), checked."""
    sft, dpo = SFTStepConfig(**field_values(SFTStepConfig, o)), DPOStepConfig(**field_values(DPOStepConfig, o))
    check_reporting(sft)  # before a tree is generated or a model loaded
    return sft, dpo


LAUNCH_OPTIONS = ("num_processes", "accelerate_config")
MODULE = __spec__.name if __spec__ else __name__  # this module: what `accelerate launch -m` runs in every process


def launch_for(o: dict) -> Launch | None:
    """The ``accelerate launch`` that --num-processes / --accelerate-config ask for in a training command's
    option values (``ctx.params``), with the training options passed on as given; ``None`` to train in this
    process (also inside a launch)."""
    if world_size() > 1:  # a worker of a launch: it trains
        return None
    launch = Launch(MODULE, **field_values(Launch, o))
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


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    """An exclusive lock on the run folder: a second malt-train on it refuses; a dead one's lock is taken.

    Under a launch the main process locks (all processes stop with its error), or, when ``malt-train``
    launched the processes, the launching process holds the lock for them."""
    from harness.core.runfiles import RunLock

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


# ---------------------------------------------------------------------------------------------- commands


@main.command("generate")
@_generate_options
@options_from(GenerateConfig, only=("shard",))
@click.option("--out", "run", required=True, type=click.Path(path_type=Path), help="Run folder (RUN).")
def generate_cmd(run: Path, **o) -> None:
    """Sample a tree per training question (resumable: rerun the same command to continue)."""
    _single_process("generate")
    with _locked(run):
        pipeline.generate_tree(run, *_generate_config(o), say=click.echo)


@main.command("merge")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder of the merged tree.")
def merge_cmd(runs: tuple[Path, ...], out: Path) -> None:
    """Join the trees of generate runs (shards of one run: same config, disjoint questions) into OUT."""
    from malt_train.shard import merge_runs

    stats = merge_runs(list(runs), out)
    click.echo(f"tree: {stats['questions']} questions, {stats['nodes']} nodes in {out / TREE_FILE}")
    if stats["missing"]:
        click.echo(f"malt-train: note: shards {', '.join(stats['missing'])} are not in the merge", err=True)


@main.command("stats")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def stats_cmd(path: Path, as_json: bool) -> None:
    """Nodes, tokens and right leaves of a tree (PATH: a run folder or a tree file)."""
    from malt_train.stats import format_stats, tree_stats
    from malt_train.tree import read_tree

    tree_path, cfg = (path / TREE_FILE, path / CONFIG_FILE) if path.is_dir() else (path, path.parent / CONFIG_FILE)
    max_new = json.loads(cfg.read_text()).get("max_new_tokens") if cfg.is_file() else None
    stats = tree_stats(read_tree(tree_path), max_new)
    click.echo(json.dumps(stats, indent=2) if as_json else format_stats(stats))


@main.command("label")
@click.argument("tree", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@options_from(LabelConfig)
def label_cmd(tree: Path, out: Path, threshold: float, pooling: str) -> None:
    """Add value (value iteration) and label to every node."""
    pipeline.label(tree, out, threshold, pooling, say=click.echo)


@main.command("build")
@click.argument("labeled", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@options_from(BuildConfig, exclude=("seed",))
def build_cmd(labeled: Path, out: Path, pairs_per_parent: int | None) -> None:
    """Write per-role sft.jsonl and dpo.jsonl."""
    pipeline.build(labeled, out, pairs_per_parent, say=click.echo)


@main.command("sft")
@_step_arguments
def sft_cmd(run: Path, role: str, model: str | None, **o) -> None:
    """LoRA SFT of one role on RUN/data/ROLE/sft.jsonl -> RUN/adapters-sft/ROLE."""
    launch = launch_for(o)
    with _locked(run):
        pipeline.sft(run, role, run_model(run, model), step_configs(o)[0], launch, say=click.echo)


@main.command("dpo")
@_step_arguments
def dpo_cmd(run: Path, role: str, model: str | None, **o) -> None:
    """LoRA DPO of one role from its SFT adapter (reference = SFT model) -> RUN/adapters/ROLE."""
    launch = launch_for(o)
    with _locked(run):
        pipeline.dpo(run, role, run_model(run, model), step_configs(o)[1], launch, say=click.echo)


@main.command("run")
@_generate_options
@_train_options
@click.option("--out", "run", required=True, type=click.Path(path_type=Path), help="Run folder (RUN).")
@options_from(LabelConfig)
@options_from(BuildConfig, exclude=("seed",))
@click.option("--generator-dpo", is_flag=True, help="Also DPO-train the generator (helps base models).")
def run_cmd(run: Path, threshold: float, pooling: str, pairs_per_parent: int | None, generator_dpo: bool, **o) -> None:
    """generate -> label -> build -> sft (all roles) -> dpo (verifier, refiner); a rerun redoes only the steps
    whose settings or inputs changed (RUN/steps.json)."""
    _single_process("run")
    cfg, engine = _generate_config(o)
    sft_cfg, dpo_cfg = step_configs(o)
    launch = launch_for(o)  # --num-processes: training steps under accelerate launch, the tree in this process
    with _locked(run):
        config = pipeline.RunConfig(
            generate=cfg,
            engine=engine,
            sft=sft_cfg,
            dpo=dpo_cfg,
            threshold=threshold,
            pooling=pooling,
            pairs_per_parent=pairs_per_parent,
            generator_dpo=generator_dpo,
        )
        pipeline.run_all(run, config, launch, click.echo)
    click.echo(
        f"evaluate with:\n  malt-eval --malt-run {run} --agents g,v,r --tasks {cfg.task}\n"
        f"  malt-eval --malt-run {run} --stage sft --agents g,v,r --tasks {cfg.task}   # STaR baseline"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
