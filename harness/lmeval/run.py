"""lm-eval's tasks in an :class:`~harness.spec.EvalSpec`: run through ``lm_eval.simple_evaluate`` with the solver
(:class:`harness.lmeval.model.MaltLM`) as the model, written by lm-eval's ``EvaluationTracker``.

lm-eval builds the contexts, samples the few-shot examples, applies the task's filters and metrics and lays out
the results (``OUT/<model>/results_<date>.json``, ``samples_<task>_<date>.jsonl``: every key lm-eval writes).
Each sample line also carries ``malt``: every pipeline's turns (messages, text, issues) for that document.

Votes (``--votes K``) use lm-eval's own mechanism: the task's ``repeats`` become K (one pipeline per repeat, sampled
at ``--temperature``) and each of its filter pipelines gets lm-eval's ``majority_vote`` before its final
``take_first``; lm-eval's tie rule holds (``Counter.most_common``: among equally frequent answers, the one
of the earliest pipeline).

Seeded subsets (``--seeds S --subset N``) use lm-eval's own document selection (``simple_evaluate(samples=
{task: [doc indices]})``) with the indices our tasks draw (:func:`harness.solver.protocol.select_questions`: seed ``s``
picks the same questions of a test file on ``malt_gsm8k`` and on a stock task over that file). Each seed is one
lm-eval evaluation, written by lm-eval in its own layout: into ``OUT`` with one seed, ``OUT/seed_<s>`` with
several; the returned results then hold each metric's mean over the seeds, its spread as ``<metric>_std``
(lm-eval's ``_stderr`` dropped) and each seed's own results under ``malt.per_seed``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import harness.provenance as provenance
from harness.core.digests import json_digest
from harness.core.errors import MaltError
from harness.core.runfiles import atomic_write
from harness.core.supersede import move_aside, superseded_by
from harness.inference.engines import RoleEngine
from harness.inference.models import DEFAULT_MODEL
from harness.lmeval.compat import task_index
from harness.lmeval.solver import role_prompts_digest
from harness.lmeval.tasks import leaf_tasks, task_manager
from harness.provenance import Provenance
from harness.solver.protocol import EvalConfig, select_questions
from harness.spec import EvalSpec

#: lm-eval's request caches (``use_cache``) inside an output folder, one per run identity and seed.
CACHE_DIR = "lm_eval_cache"


def voted_filters(cfg: Mapping) -> list[dict]:
    """The task's filter pipelines with ``majority_vote`` before their last step (``take_first`` for lm-eval's
    default pipeline ``none``)."""
    pipelines = cfg.get("filter_list") or [{"name": "none", "filter": [{"function": "take_first"}]}]
    out = []
    for p in pipelines:
        steps = [dict(s) for s in p.get("filter", [])]
        if not any(s.get("function") == "majority_vote" for s in steps):
            last = steps.pop() if steps and steps[-1].get("function") == "take_first" else None
            steps += [{"function": "majority_vote"}, last or {"function": "take_first"}]
        out.append({**p, "filter": steps})
    return out


def task_specs(spec: EvalSpec, names: list[str]) -> list[str | dict]:
    """What ``simple_evaluate`` gets: the names, or with votes a config override per task (repeats, filters)."""
    votes = int(spec.votes)
    if votes == 1:
        return list(names)
    from harness.lmeval.compat import load_yaml

    tm = task_manager(spec.include_path)
    out: list[str | dict] = []
    for name in names:
        for task, _ in leaf_tasks(tm, name):
            entry = task_index(tm)[task]
            cfg = load_yaml(entry.yaml_path, resolve_func=True) if entry.yaml_path else dict(entry.cfg or {})
            # votes sample (at --temperature): said in the requests, so lm-eval's request cache never serves one
            # repeat's text for all K (it skips requests with do_sample)
            sampled = {
                **(cfg.get("generation_kwargs") or {}),
                "do_sample": True,
                "temperature": float(spec.temperature),
            }
            out.append(
                {**cfg, "task": task, "repeats": votes, "filter_list": voted_filters(cfg), "generation_kwargs": sampled}
            )  # a full config
    return out


def gen_kwargs(text: str | None) -> dict | None:
    """``--gen-kwargs k=v,...`` as lm-eval reads it, plus list values (``until=["."]``) as lists, or a JSON object
    (``{"until": ["Q:", "\\n\\n"]}``: lists with commas, which ``k=v,...`` splits)."""
    import ast

    from lm_eval.utils import simple_parse_args_string

    if text and text.strip().startswith("{"):
        try:
            out = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MaltError(f"--gen-kwargs: not a JSON object ({exc.msg})") from None
        if not isinstance(out, dict):
            raise MaltError("--gen-kwargs: not a JSON object")
        return out or None
    out = simple_parse_args_string(text) if text else {}
    for k, v in out.items():
        if isinstance(v, str) and v.startswith("["):
            try:
                out[k] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                raise MaltError(f"--gen-kwargs {k}: not a list: {v}") from None
    return out or None


def load_spec_tasks(spec: EvalSpec, names: list[str]) -> dict[str, Any]:
    """The task objects of ``names`` as ``spec`` runs them (votes: their repeats and filters), their datasets
    loaded: a dataset error is one line (:func:`harness.lmeval.tasks.load_task_objects`)."""
    from harness.lmeval.outputs import load_tasks

    return load_tasks(spec.include_path, task_specs(spec, names))


def doc_counts(spec: EvalSpec, names: list[str], tasks: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Each leaf task's number of evaluation documents (``tasks``: loaded by :func:`load_spec_tasks`, else here)."""
    loaded = tasks if tasks is not None else load_spec_tasks(spec, names)
    return {name: len(task.eval_docs) for name, task in loaded.items()}


def seeded_samples(
    spec: EvalSpec, names: list[str], tasks: Mapping[str, Any] | None = None
) -> list[dict[str, list[int]] | None]:
    """Per seed, lm-eval's ``samples`` (task -> sorted doc indices, drawn as our tasks draw them); ``None``
    per seed without ``--subset`` (all documents, or the first ``--limit``, as on our tasks)."""
    if spec.subset is None:
        return [None] * spec.seeds
    cfg = EvalConfig(seeds=spec.seeds, subset=spec.subset)
    cfg.check()
    counts = doc_counts(spec, names, tasks)
    out = []
    for seed in range(spec.seeds):
        picked = {}
        for task, n in counts.items():
            if spec.subset > n:
                raise MaltError(f"--subset {spec.subset} is larger than {task}'s split ({n} documents)")
            picked[task] = select_questions(n, cfg, seed)
        out.append(picked)
    return out


def _across_seeds(docs: list[dict]) -> dict:
    """One results document from each seed's: every numeric metric's mean, ``<metric>_std`` its spread over the
    seeds (``_stderr`` dropped), each seed's results under ``malt.per_seed``."""
    out = {**docs[-1], "results": {}}
    for task, row in docs[0]["results"].items():
        merged = {}
        for key, value in row.items():
            metric, _, filt = key.partition(",")
            if metric.endswith("_stderr"):
                continue
            values = [d["results"][task].get(key) for d in docs]
            if filt and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                merged[key] = statistics.fmean(values)
                merged[f"{metric}_std,{filt}"] = statistics.stdev(values)
            else:
                merged[key] = value
        out["results"][task] = merged
    malt = {k: v for k, v in docs[-1]["malt"].items() if k not in ("seed", "doc_ids")}
    malt["per_seed"] = {t: [d["results"][t] for d in docs] for t in docs[0]["results"]}
    if "doc_ids" in docs[0]["malt"]:
        malt["doc_ids"] = [d["malt"]["doc_ids"] for d in docs]  # per seed: task -> documents
    out["malt"] = malt
    return out


def write_across_seeds(doc: dict, folder: Path) -> Path:
    """``OUT/results_<date>.json``: the seeds' means and ``_std`` spreads as one lm-eval results document (the
    leaderboard's one row for the run; each seed's own files stay under ``OUT/seed_<s>/``), and with ``samples``
    every seed's sample lines (``seed`` added) in ``OUT/samples_<task>_<date>.jsonl``. An earlier such file of the
    same run and of tasks among these is superseded with its sample files (:mod:`harness.core.supersede`), so a rerun
    leaves one."""
    stamp = datetime.now().isoformat().replace(":", "-")
    for task, rows in (doc.get("samples") or {}).items():
        lines = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        atomic_write(folder / f"samples_{task}_{stamp}.jsonl", lines)
    path = folder / f"results_{stamp}.json"
    written = {k: v for k, v in doc.items() if k != "samples"}
    atomic_write(path, json.dumps(written, indent=2, default=str))
    move_aside(superseded_by(folder, json.loads(json.dumps(written, default=str)), keep=path))
    return path


def run_provenance(
    spec: EvalSpec, lm: Any, loaded: Mapping[str, Any], picked: list[dict[str, list[int]] | None], seeds: list[int]
) -> Provenance:
    """The provenance of an lm-eval-task run over ``seeds`` (``picked``: each seed's drawn documents, lm-eval's
    ``samples``; ``loaded``: lm-eval's task objects by name): per task the digest of the doc hashes of every
    seed's documents, in order."""
    prompts = role_prompts_digest(spec)
    per_seed = [provenance.lm_eval_tasks(loaded, p, spec.limit, prompts) for p in picked]
    tasks = per_seed[0]
    if len(per_seed) > 1:
        tasks = {t: {**rec, "data": json_digest([s[t]["data"] for s in per_seed])} for t, rec in tasks.items()}
    return provenance.from_lm(lm, tasks, seeds)


def cache_identity(prov: Provenance) -> dict:
    """What the texts of a run depend on beyond each request's own arguments (lm-eval's request cache keys on
    those alone): the run's provenance record but ``git`` (models and adapters by content, every generation
    setting, plan, prompts, the documents drawn, seed, package versions)."""
    return {k: v for k, v in prov.to_dict().items() if k not in provenance.RUN_EXCLUDES}


def cache_path(spec: EvalSpec, prov: Provenance) -> str | None:
    """lm-eval's ``use_cache`` for one run (and seed): ``OUT/lm_eval_cache/<run key>`` (lm-eval adds
    ``_rank0.db``; the identity is written beside it as ``<run key>.json``); ``None`` without ``output_path``."""
    if not spec.output_path:
        return None
    digest = prov.run_key()[:16]
    folder = Path(spec.output_path) / CACHE_DIR
    if not (folder / f"{digest}.json").exists():
        atomic_write(folder / f"{digest}.json", json.dumps(cache_identity(prov), indent=2, sort_keys=True))
    return str(folder / digest)


def run_lm_eval_tasks(
    spec: EvalSpec,
    names: list[str],
    engines: Mapping[str, RoleEngine] | None = None,
    lm: Any = None,
    tasks: Mapping[str, Any] | None = None,
) -> dict:
    """Evaluate ``spec``'s system on the lm-eval tasks ``names``; return lm-eval's results (with ``samples``
    when ``spec.log_samples``), written under ``spec.output_path`` when it is set (one evaluation per seed
    with ``--subset``: see the module's notes).

    Args:
        engines: ready-made role engines (e.g. a scripted backend); default: ``spec``'s models, loaded when
            the first request arrives.
        lm: a ready :class:`harness.lmeval.model.MaltLM` (to share its loaded models); built from ``spec`` when
            ``None``.
        tasks: the task objects :func:`load_spec_tasks` made (loaded here, before any model, when ``None``).
    """
    from harness.lmeval.model import MaltLM

    if spec.solver_plan().key:
        raise MaltError(f"--debate runs on malt_* tasks only, not on {', '.join(names)}")
    tasks = tasks if tasks is not None else load_spec_tasks(spec, names)
    per_seed = seeded_samples(spec, names, tasks)
    lm = lm or MaltLM.from_spec(spec, engines, lm_eval_votes=True)
    docs = []
    for seed, samples in enumerate(per_seed):
        out_path = spec.output_path
        if out_path and len(per_seed) > 1:
            out_path = str(Path(out_path) / f"seed_{seed}")
        docs.append(_evaluate(spec, names, lm, (seed, samples, tasks), out_path))
    if len(docs) == 1:
        return docs[0]
    out = _across_seeds(docs)
    out["malt"]["provenance"] = run_provenance(spec, lm, tasks, per_seed, list(range(len(per_seed)))).to_dict()
    if spec.log_samples:
        out["samples"] = {
            t: [{**row, "seed": s} for s, d in enumerate(docs) for row in d["samples"][t]] for t in docs[0]["samples"]
        }
    if spec.output_path:
        write_across_seeds(out, Path(spec.output_path))
    return out


def _evaluate(spec: EvalSpec, names: list[str], lm: Any, drawn: tuple, out_path: str | None) -> dict:
    """One ``simple_evaluate`` of ``names``; ``drawn``: the seed, the documents it picks (lm-eval's ``samples``;
    ``None``: all or ``--limit``) and lm-eval's task objects by name."""
    import lm_eval

    from harness.lmeval.outputs import add_turn_grades, system_block
    from harness.tracking import evaluation_tracker

    seed, samples, loaded = drawn
    lm.records, lm.seed = {}, seed
    prov = run_provenance(spec, lm, loaded, [samples], [seed])
    tracker = evaluation_tracker(spec, out_path)  # with --hf-hub-log-args: pushed to the hub as lm-eval does
    out = lm_eval.simple_evaluate(
        model=lm,
        use_cache=cache_path(spec, prov),  # finished requests are kept: a rerun asks only for the rest
        # lm-eval names the run (model_name, the output subfolder) from these; without them it draws a random id
        model_args={"model": spec.model or DEFAULT_MODEL, "agents": lm.plan.name},
        tasks=task_specs(spec, names),
        task_manager=task_manager(spec.include_path),
        limit=spec.limit,
        samples=samples,
        num_fewshot=spec.num_fewshot,
        gen_kwargs=gen_kwargs(spec.gen_kwargs),
        apply_chat_template=spec.apply_chat_template,
        system_instruction=spec.system_instruction,
        fewshot_as_multiturn=spec.fewshot_as_multiturn,
        confirm_run_unsafe_code=spec.confirm_run_unsafe_code,
        log_samples=True,
        evaluation_tracker=tracker,
    )
    samples_out = out.pop("samples", {})
    for task, rows in samples_out.items():
        # lm-eval's requests number the picked documents 0..N-1; its sample lines carry the true doc_id
        position = {doc_id: i for i, doc_id in enumerate((samples or {}).get(task) or [])}
        for row in rows:
            key = (task, position.get(row["doc_id"], row["doc_id"]))
            pipelines = lm.records.get(key) or lm.cached_pipelines(row["arguments"][0])  # a resumed run's
            row["malt"] = {"pipelines": [{**p, "doc_id": row["doc_id"]} for p in pipelines]}
    add_turn_grades(samples_out, loaded)  # each turn graded as lm-eval grades the answer
    # votes: lm-eval's repeats; label: the system's name on malt-leaderboard, as on our tasks
    out["malt"] = system_block(
        lm, prov, votes=int(spec.votes), seeds=int(spec.seeds), subset=spec.subset, label=spec.label
    )
    out["malt"]["seed"] = seed
    if samples is not None:
        out["malt"]["doc_ids"] = samples  # task -> the documents this seed drew
    if tracker is not None:
        tracker.save_results_aggregated(results=out, samples=samples_out if spec.log_samples else None)
        if spec.log_samples:
            for task in out["configs"]:
                tracker.save_results_samples(task_name=task, samples=samples_out[task])
        if tracker.push_results_to_hub or tracker.push_samples_to_hub:
            tracker.recreate_metadata_card()
    if spec.log_samples:
        out["samples"] = samples_out
    return out
