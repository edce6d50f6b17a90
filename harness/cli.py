"""``malt-eval``: evaluate a generator / verifier / refiner system on the malt_* tasks."""

from __future__ import annotations

import logging
import os
import sys
import time

import click

from harness.errors import MaltError, OneLineUsageErrors, interrupt_on_sigterm
from harness.models import DEFAULT_MODEL

ROLE_NAMES = ("generator", "verifier", "refiner")


def _parse_max_tokens(value: str | None, roles: tuple[str, ...]) -> dict[str, int | None]:
    """``"512"`` (all roles) or ``"generator=512,verifier=256"``."""
    if not value:
        return dict.fromkeys(roles)
    out: dict[str, int | None] = dict.fromkeys(roles)
    try:
        if "=" not in value:
            return dict.fromkeys(roles, int(value))
        for part in value.split(","):
            role, n = part.split("=")
            role = role.strip()
            if role not in ROLE_NAMES:
                raise MaltError(f"--max-new-tokens: unknown role {role!r}")
            out[role] = int(n)
    except ValueError:
        raise MaltError(f"--max-new-tokens: expected N or role=N,..., got {value!r}") from None
    if any(v is not None and v < 1 for v in out.values()):
        raise MaltError("--max-new-tokens must be at least 1")
    return out


def _role_options(fn):
    for role in reversed(ROLE_NAMES):
        fn = click.option(f"--{role}-adapter", default=None, help=f"PEFT LoRA adapter dir for the {role}.")(fn)
        fn = click.option(f"--{role}-model", default=None, help=f"Base model of the {role} (default: --model).")(fn)
    return fn


class _Command(OneLineUsageErrors, click.Command):
    prog = "malt-eval"

    def main(self, args=None, prog_name=None, **extra):  # noqa: D102 - `malt-eval suite ...` dispatch
        argv = list(sys.argv[1:] if args is None else args)
        if argv[:1] == ["suite"]:
            from harness.suite import suite

            return suite.main(argv[1:], "malt-eval suite", **extra)
        return super().main(argv, prog_name, **extra)


@click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--model", default=None, help="Model dir, hub id or embedded alias (qwen2.5-coder-0.5b [default], smollm2-135m)."
)
@click.option("--agents", default="g,v,r", show_default=True, help="g, g,v, g,r or g,v,r.")
@click.option(
    "--tasks", default="malt_gsm8k", show_default=True, help="Comma-separated: malt_gsm8k,malt_math,malt_csqa."
)
@click.option(
    "--data-dir", default=None, help="Folder of the benchmark JSONL files (default: $MALT_DATA_DIR, else the hub)."
)
@click.option(
    "--votes", default=1, show_default=True, type=int, help="Independent pipelines per question, majority-voted."
)
@click.option(
    "--temperature", default=0.3, show_default=True, type=float, help="Sampling temperature (0 with --votes 1: greedy)."
)
@click.option("--seeds", default=1, show_default=True, type=int, help="Runs, each on its own seeded subset.")
@click.option("--subset", default=None, type=int, help="Random test questions per seed (the paper's protocol).")
@click.option("--limit", default=None, type=int, help="First N questions only (smoke runs; flagged in the results).")
@click.option(
    "--batch-size", default=16, show_default=True, type=int, help="Questions per stage batch and sequences per forward."
)
@click.option(
    "--max-new-tokens",
    default=None,
    help="N for all roles or role=N,... (default per task: gsm8k 512, math 1024, csqa 384).",
)
@click.option("--prompts", "prompts_file", default=None, help="YAML file overriding the role prompts.")
@click.option("--backend", default="hf", show_default=True, help="Inference backend: hf, vllm or openai.")
@click.option(
    "--base-url", default=None, help="--backend openai: the server's API root (default http://127.0.0.1:8000/v1)."
)
@click.option("--api-key", default=None, help="--backend openai: API key (default $OPENAI_API_KEY, else EMPTY).")
@click.option("--dtype", default="auto", show_default=True, help="auto, bfloat16, float16 or float32.")
@click.option("--output-path", default=None, help="Folder for the results JSON (and sample logs).")
@click.option("--log-samples", is_flag=True, help="Write every role's prompt, text and answer per question.")
@click.option("--malt-run", default=None, help="A malt-train run folder: use its base model and role adapters.")
@click.option(
    "--stage",
    default="final",
    show_default=True,
    type=click.Choice(["final", "sft"]),
    help="With --malt-run: final (MALT) adapters or sft (STaR baseline) adapters.",
)
@click.option(
    "--debate",
    default=None,
    metavar="AxR",
    help="Multi-agent debate instead of the roles: A agents x R rounds (e.g. 3x3) on the generator's model.",
)
@click.option("--label", default=None, help="Name of this system on malt-leaderboard (malt.label in the results).")
@_role_options
def main(**opts) -> None:
    """Evaluate a multi-agent (generator -> verifier -> refiner) system with lm-eval tasks.

    All of the MALT paper's table rows (baselines, STaR, MALT, ablations, debate) in one command:
    see `malt-eval suite --help`.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    interrupt_on_sigterm()
    try:
        run(**opts)
    except MaltError as exc:
        click.echo(f"malt-eval: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        where = f": finished batches are kept in {opts['output_path']}; rerun the same command to resume"
        click.echo("malt-eval: interrupted" + (where if opts.get("output_path") else ""), err=True)
        sys.exit(130)


def run(**o) -> dict:
    """Validate options, build engines, evaluate every task, print and write results."""
    from harness.data import data_dir, load_split
    from harness.debate import debate as debate_plan
    from harness.evaluate import EvalConfig
    from harness.grading import canonical_task
    from harness.prompts import load_prompts
    from harness.solver import parse_agents

    roles, debate = parse_agents(o["agents"]), _debate(o)
    if debate:
        roles = ("generator",)  # the debaters run on the generator's model and adapter
    names = [t.strip() for t in (o["tasks"] or "").split(",") if t.strip()]
    if not names:
        raise MaltError("no task given: use --tasks malt_gsm8k,malt_math,malt_csqa")
    tasks = list(dict.fromkeys(canonical_task(t) for t in names))
    max_tokens = _parse_max_tokens(o["max_new_tokens"], roles)
    cfg = EvalConfig(
        roles=roles,
        votes=debate["agents"] if debate else o["votes"],
        temperature=o["temperature"],
        seeds=o["seeds"],
        subset=o["subset"],
        limit=o["limit"],
        batch_size=o["batch_size"],
        max_new_tokens=max_tokens,
        log_samples=o["log_samples"],
        solver=debate_plan(debate["rounds"]) if debate else None,
    )
    cfg.check()
    folder = data_dir(o["data_dir"])
    prompts = {t: load_prompts(t, o["prompts_file"]) for t in tasks}
    if debate:  # recorded with the results and in the run's identity: the debate prompt has its own hash
        o["debate_info"] = {**debate, "prompt_hash": {t: prompts[t].step_hash("debate") for t in tasks}}
    docs = {t: load_split(t, "test", folder) for t in tasks}
    for t in tasks:  # fail on impossible subsets before loading any model
        if cfg.subset and cfg.subset > len(docs[t]):
            raise MaltError(f"--subset {cfg.subset} is larger than {t}'s split ({len(docs[t])} questions)")
    return _evaluate(o, cfg, tasks, prompts, docs, max_tokens)


def _evaluate(o: dict, cfg, tasks, prompts, docs, max_tokens) -> dict:
    role_models = {r: o.get(f"{r}_model") for r in cfg.roles}
    role_adapters = {r: o.get(f"{r}_adapter") for r in cfg.roles}
    if o.get("malt_run"):
        o["model"], run_adapters = _malt_run(o["malt_run"], o["stage"], o["model"])
        role_adapters = {r: role_adapters[r] or run_adapters.get(r) for r in cfg.roles}
    if not o["output_path"]:
        return _run_tasks(o, cfg, tasks, prompts, docs, max_tokens, role_models, role_adapters, None)
    from harness.checkpoint import Checkpoint
    from harness.runfiles import RunLock

    identity = {
        "model": o["model"] or DEFAULT_MODEL,
        "role_models": role_models,
        "role_adapters": {r: a and os.path.abspath(a) for r, a in role_adapters.items()},
        "backend": o["backend"],
        "dtype": o["dtype"],
        "agents": ",".join(r[0] for r in cfg.roles),
        "votes": cfg.votes,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "subset": cfg.subset,
        "limit": cfg.limit,
        "batch_size": cfg.batch_size,
        "max_new_tokens": max_tokens,
    }
    if o.get("debate_info"):
        identity["debate"] = o["debate_info"]
    with RunLock(o["output_path"], "malt-eval") as lock:
        if lock.took_over:
            click.echo(f"malt-eval: note: took over the stale lock of dead process {lock.took_over}", err=True)
        ckpt = Checkpoint(o["output_path"], identity)
        if ckpt.n_done:
            click.echo(f"malt-eval: resuming: {ckpt.n_done} finished batches on record in {o['output_path']}", err=True)
        return _run_tasks(o, cfg, tasks, prompts, docs, max_tokens, role_models, role_adapters, ckpt)


def _run_tasks(o, cfg, tasks, prompts, docs, max_tokens, role_models, role_adapters, ckpt) -> dict:
    from tqdm.auto import tqdm

    from harness.backends.base import SamplingParams
    from harness.engines import backend_options, build_engines
    from harness.evaluate import DEFAULT_MAX_NEW_TOKENS, batches, run_task
    from harness.results import build_results, summary_table, write_results
    from harness.solver import SolveContext

    todo = [
        (t, seed, start)
        for t in tasks
        for seed, start, chunk in batches(len(docs[t]), cfg)
        if ckpt is None or ckpt.get(t, seed, start, prompts[t].hash, chunk) is None
    ]
    if todo:
        engines, described = build_engines(
            o["model"],
            cfg.roles,
            role_models,
            role_adapters,
            o["backend"],
            batch_size=o["batch_size"],
            dtype=o["dtype"],
            **backend_options(o["backend"], o["base_url"], o["api_key"]),
        )
        if ckpt is not None:
            ckpt.roles = described
    else:  # everything is on record: no model needed
        engines, described = {}, ckpt.roles
    results, used_tokens = [], {}
    for task in tasks:
        tokens = {r: max_tokens.get(r) or DEFAULT_MAX_NEW_TOKENS[task] for r in cfg.roles}
        used_tokens[task] = tokens
        params = {r: SamplingParams(tokens[r], cfg.temperature, cfg.top_p) for r in cfg.roles}
        n_q = sum(len(chunk) for _, _, chunk in batches(len(docs[task]), cfg))
        bar = tqdm(total=n_q, desc=f"{task} [{','.join(r[0] for r in cfg.roles)}]", unit="q", disable=False)
        seen = {"tokens": 0}
        t0 = time.time()

        def on_stage(role: str, n: int, toks: int, bar=bar, seen=seen, t0=t0) -> None:
            seen["tokens"] += toks
            bar.set_postfix_str(f"{role} done, {seen['tokens'] / max(1e-9, time.time() - t0):.1f} tok/s")

        ctx = SolveContext({task: prompts[task]}, engines, params, on_stage=on_stage)
        results.append(run_task(task, docs[task], ctx, cfg, progress=bar.update, checkpoint=ckpt))
        bar.close()
    model_name = o["model"] or described.get(cfg.roles[0], {}).get("model") or DEFAULT_MODEL
    n_docs = {t: len(docs[t]) for t in tasks}
    doc = build_results(
        results, cfg, prompts, described, model_name, n_docs, used_tokens, o.get("label"), o.get("debate_info")
    )
    click.echo(summary_table(doc))
    if o["output_path"]:
        path = write_results(doc, results, o["output_path"], cfg.log_samples)
        click.echo(f"results written to {path}")
    return doc


def _debate(o: dict) -> dict | None:
    """``--debate AxR`` as ``{"agents": A, "rounds": R}`` (None without it); it replaces --votes."""
    if not o.get("debate"):
        return None
    from harness.debate import parse_debate

    if o["votes"] != 1:
        raise MaltError("--debate AxR sets the votes (A agents, majority-voted): leave --votes at 1")
    agents, rounds = parse_debate(o["debate"])
    return {"agents": agents, "rounds": rounds}


def _malt_run(run: str, stage: str, model: str | None) -> tuple[str, dict[str, str]]:
    """Base model and per-role adapter dirs of a ``malt-train`` run (roles without one use the base)."""
    import json
    from pathlib import Path

    folder = Path(run)
    cfg = folder / "generate.json"
    if not cfg.is_file():
        raise MaltError(f"not a malt-train run (no generate.json): {folder}")
    sub = "adapters" if stage == "final" else "adapters-sft"
    adapters = {r: str(folder / sub / r) for r in ROLE_NAMES if (folder / sub / r / "adapter_config.json").is_file()}
    if not adapters and not _trained_nothing(folder, stage):
        raise MaltError(f"{folder / sub} holds no adapters: run malt-train first")
    if not adapters:
        click.echo(
            f"malt-eval: note: {folder} trained no {stage} adapter (every role's training set was empty, see its "
            "run.json): the base model plays every role",
            err=True,
        )
    missing = [r for r in ROLE_NAMES if r not in adapters]
    if adapters and missing:
        click.echo(f"malt-eval: note: no {stage} adapter for {', '.join(missing)}: the base model plays it", err=True)
    return model or json.loads(cfg.read_text())["model"], adapters


def _trained_nothing(folder, stage: str) -> bool:
    """True when ``malt-train run`` finished in ``folder`` and skipped every role's ``stage`` step (empty sets)."""
    import json

    try:
        steps = json.loads((folder / "run.json").read_text(encoding="utf-8"))["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    prefix = "final-" if stage == "final" else "sft-"
    mine = [str(v) for k, v in steps.items() if k.startswith(prefix)]
    return bool(mine) and all(v.startswith("skipped") for v in mine)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
