"""lm-eval's trackers on an evaluation: ``--wandb-args`` (lm-eval's ``WandbLogger``) and ``--hf-hub-log-args``
(lm-eval's ``EvaluationTracker``), with lm-eval's meanings, on our malt_* tasks and on lm-eval's tasks.

The arguments are lm-eval's: ``--wandb-args`` goes to ``wandb.init`` (``project=...,mode=offline,dir=...``; lm-eval's
``step`` too), ``--wandb-config-args`` to the run's config, ``--hf-hub-log-args`` to ``EvaluationTracker``
(``hub_results_org``, ``details_repo_name``, ``push_results_to_hub``, ``push_samples_to_hub``, ``public_repo``...;
the token is ``$HF_TOKEN``, as lm-eval reads it). Both kinds of task have results documents in lm-eval's layout:
each is logged as lm-eval logs its own (the metrics, the results table and artifact, the samples).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.core.errors import MaltError

log = logging.getLogger(__name__)


def parse_args(flag: str, text: str | None) -> dict[str, Any]:
    """``k=v,...`` as lm-eval's CLI reads it (``simple_parse_args_string``: ``True``/numbers typed)."""
    from lm_eval.utils import simple_parse_args_string

    if not text or not text.strip():
        return {}
    bad = [part for part in text.split(",") if part and "=" not in part]
    if bad:
        raise MaltError(f"{flag}: expected k=v,..., got {bad[0]!r}")
    return simple_parse_args_string(text)


def hub_args(spec: Any) -> dict[str, Any]:
    """``EvaluationTracker``'s arguments of ``--hf-hub-log-args`` (with ``$HF_TOKEN``, as lm-eval adds it)."""
    args = parse_args("--hf-hub-log-args", spec.hf_hub_log_args)
    if os.environ.get("HF_TOKEN"):
        args["token"] = os.environ["HF_TOKEN"]
    return args


def evaluation_tracker(spec: Any, output_path: str | None) -> Any:
    """lm-eval's ``EvaluationTracker`` writing under ``output_path`` with the spec's hub arguments (``None``
    when there is neither).

    Raises:
        MaltError: an argument ``EvaluationTracker`` does not take, or a push without a token.
    """
    from lm_eval.loggers import EvaluationTracker

    args = hub_args(spec)
    if not output_path and not args:
        return None
    try:
        return EvaluationTracker(output_path=output_path, **{k: v for k, v in args.items() if k != "output_path"})
    except (TypeError, ValueError) as exc:
        raise MaltError(f"--hf-hub-log-args: {str(exc).splitlines()[0]}") from None


def check(spec: Any) -> None:
    """Raise ``MaltError`` for tracking arguments that cannot work (before anything runs)."""
    if spec.wandb_args is not None or spec.wandb_config_args:
        parse_args("--wandb-args", spec.wandb_args)
        parse_args("--wandb-config-args", spec.wandb_config_args)
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise MaltError("--wandb-args needs wandb: pip install wandb") from None
    if spec.hf_hub_log_args:
        evaluation_tracker(spec, tempfile.gettempdir())


def lm_eval_samples(samples: Mapping[str, list[dict]]) -> dict[str, list[dict]]:
    """Sample lines as lm-eval holds them in memory (``arguments`` a list of argument tuples), from the lines as
    written (``{"gen_args_0": {"arg_0": ...}}``: how our tasks and ``EvaluationTracker`` write them)."""
    out = {}
    for task, rows in samples.items():
        out[task] = []
        for row in rows:
            args = row.get("arguments")
            if isinstance(args, Mapping):
                args = [list(a.values()) if isinstance(a, Mapping) else a for a in args.values()]
            out[task].append({**row, "arguments": args})
    return out


def _with_metric_lists(doc: dict, samples: Mapping[str, list[dict]]) -> dict:
    """``doc`` with each task's config naming its metrics (``metric_list``) where it does not (our tasks grade in
    ``process_results``): the sample table's metric columns."""
    configs = {}
    for task, cfg in (doc.get("configs") or {}).items():
        rows = samples.get(task) or [{}]
        metrics = cfg.get("metric_list") or [{"metric": m} for m in rows[0].get("metrics") or []]
        configs[task] = {**cfg, "metric_list": metrics, "output_type": cfg.get("output_type", "generate_until")}
    return {**doc, "configs": configs}


def merged(docs: list[dict]) -> dict:
    """One results document of several (our tasks' and lm-eval's): their per-task tables joined."""
    out: dict = {}
    for doc in docs:
        for key, value in doc.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


def log_to_wandb(spec: Any, docs: list[dict]) -> str | None:
    """Log the results documents (with their ``samples``) as one W&B run, as lm-eval's CLI logs its results;
    return the run's folder (``None`` without ``--wandb-args``)."""
    if spec.wandb_args is None:
        return None
    from lm_eval.loggers import WandbLogger

    doc = merged(docs)
    samples = lm_eval_samples(doc.pop("samples", None) or {})
    logger = WandbLogger(
        parse_args("--wandb-args", spec.wandb_args), parse_args("--wandb-config-args", spec.wandb_config_args)
    )
    try:
        logger.post_init(_with_metric_lists(doc, samples))
        logger.log_eval_result()
        if samples:
            try:
                logger.log_eval_samples(samples)
            except Exception as exc:  # noqa: BLE001 - as lm-eval's CLI: the results are logged regardless
                log.warning("W&B: samples not logged: %s", exc)
        return str(Path(logger.run.dir).parent)
    finally:
        logger.run.finish()


def push_to_hub(spec: Any, doc: dict) -> None:
    """Our tasks' results (and samples) through lm-eval's ``EvaluationTracker``: pushed to the hub as the
    ``--hf-hub-log-args`` say (lm-eval's own tasks are written by their tracker as they run)."""
    args = hub_args(spec)
    if not (args.get("push_results_to_hub") or args.get("push_samples_to_hub")):
        return
    with tempfile.TemporaryDirectory() as tmp:
        tracker = evaluation_tracker(spec, tmp)
        config = tracker.general_config_tracker
        config.model_name = str(doc.get("model_name") or spec.model)
        config.model_name_sanitized = str(doc.get("model_name_sanitized") or config.model_name.replace("/", "__"))
        samples = lm_eval_samples(doc.get("samples") or {})
        tracker.save_results_aggregated(results={k: v for k, v in doc.items() if k != "samples"}, samples=samples)
        for task, rows in samples.items():
            tracker.save_results_samples(task_name=task, samples=rows)
        tracker.recreate_metadata_card()
