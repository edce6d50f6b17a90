"""``malt-eval lm-eval <lm-eval CLI arguments>``: lm-eval's own CLI with the ``malt`` model registered.

Every lm-eval flag works as in ``lm-eval run`` (``--output_path``, ``--log_samples``, ``--use_cache``,
``--wandb_args``, ``--hf_hub_log_args``, ``--apply_chat_template``, ...); our ``tasks/`` folder is added to
``--include_path``. The files lm-eval writes under ``--output_path`` then get every role's turns on each sample
line and the system on the results file (:func:`harness.lmeval.outputs.add_turns`; what lm-eval pushes to the
hub or W&B is lm-eval's own, without them). With ``--model malt`` the tasks and model_args are checked before
anything loads: a task lm-eval does not know, a multiple-choice task or an unknown model_args key is one line and
exit code 2.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.core.errors import MaltError

PROG = "malt-eval lm-eval"
_COMMA_AGENTS = re.compile(r"(?:^|,)agents=[gvr](?:,[gvr])+(?:,|$)")


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_malt_run(args) -> None:
    """Refuse, before any model loads, what the malt model cannot run."""
    from harness.lmeval.model import MaltLM
    from harness.lmeval.tasks import check_tasks

    model_args = args.model_args if isinstance(args.model_args, dict) else {}
    try:
        check_tasks(args.tasks or [], args.include_path, bool(getattr(args, "confirm_run_unsafe_code", False)))
        MaltLM(**model_args)  # validates the keys and values; loads nothing
    except TypeError as exc:
        _fail(f"--model_args: {exc}")


def main(argv: list[str]) -> None:
    """Run lm-eval's CLI on ``argv`` (as ``lm-eval`` would get it) with ``--model malt`` available."""
    from lm_eval.utils import setup_logging

    from harness.lmeval.compat import HarnessCLI
    from harness.lmeval.model import MaltLM  # registers the ``malt`` model with lm-eval
    from harness.lmeval.outputs import add_turns
    from harness.tasks.prompts import tasks_dir

    for i, arg in enumerate(argv):
        if arg in ("--model_args", "-a") and i + 1 < len(argv) and _COMMA_AGENTS.search(argv[i + 1]):
            _fail("--model_args: lm-eval splits model_args at commas; write agents=g+v+r (or agents=gvr)")
    argv = list(argv)
    if argv and argv[0] not in ("run", "ls", "validate", "-h", "--help"):
        argv.insert(0, "run")
    setup_logging()
    sys.argv = ["lm-eval", *argv]
    parser = HarnessCLI()
    args = parser.parse_args()
    if hasattr(args, "include_path"):  # our tasks/ joins the user's folder (malt_gsm8k, ... by name)
        args.include_path = [p for p in (args.include_path, str(tasks_dir())) if p]
    malt = getattr(args, "model", None) == "malt"
    built: list = []  # the malt model lm-eval's CLI builds in this run
    try:
        if malt:
            _check_malt_run(args)
        since = time.time()
        _execute(parser, args, MaltLM, built.append)
    except MaltError as exc:
        _fail(str(exc))
    if built and getattr(args, "output_path", None):  # every role's turns join lm-eval's sample lines
        add_turns(args.output_path, built[-1], since, _tasks(args))


def _execute(parser, args, model: type, collect: Callable[[Any], None]) -> None:
    """lm-eval's CLI on ``args``; the ``malt`` model it builds (a ``model``) is handed to ``collect``, not kept
    anywhere else."""
    from harness.lmeval.compat import collecting_model

    with collecting_model("malt", model, collect):
        parser.execute(args)


def _tasks(args) -> dict:
    """lm-eval's task objects of this run (their filters and metrics grade every turn), or {} if they do not load."""
    from harness.lmeval.outputs import load_tasks

    try:
        return load_tasks(args.include_path, args.tasks)
    except Exception as exc:  # noqa: BLE001 - the run is done and written; only the per-turn grades are missing
        print(f"{PROG}: note: per-turn grades skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
        return {}
