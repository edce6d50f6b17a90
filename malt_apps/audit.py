"""Grader audit: our extraction/grading of every logged role text against independent readers.

Readers (none of them ours):

- GSM8K: lm-eval's own ``strict-match`` and ``flexible-extract`` filters and its ``exact_match``
  metric, built from the ``filter_list``/``metric_list`` of lm-eval's ``gsm8k.yaml``.
- MATH: math-verify's ``parse`` on the whole text (the last ``\\boxed{}`` first, then an anchored final
  answer, then the last math span) and ``verify`` against the gold answer.
- CSQA: lm-eval's ``multi_choice_regex`` filter as configured by its MMLU flan CoT zero-shot task (the
  last "(X)", else the last choice text, else the last ": X"), scored by that task's ``exact_match``.

Every role's text of every logged sample is read by ours and by each reader; a disagreement is a
different grade, or one side finding an answer the other does not, or two different answers.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tabulate import tabulate

from harness.run.checkpoint import record_path
from harness.tasks.grading import (
    ChoiceGrader,
    answers_match,
    canonical_task,
    csqa_choices,
    extract_answer,
    gold_answer,
    normalize_answer,
    task_grader,
)
from leaderboard.collect import ResultsError, load_runs, load_samples

#: lm-eval task files the readers are built from (relative to the installed ``lm_eval/tasks``).
GSM8K_YAML = "gsm8k/gsm8k.yaml"
CSQA_YAML = "mmlu/flan_cot_zeroshot/_mmlu_flan_cot_zeroshot_template_yaml"
KINDS = ("agree", "ours_right", "reader_right", "only_ours_found", "only_reader_found", "other_answer")
TAIL_CHARS = 400


@dataclass(frozen=True)
class Reading:
    """One reader's answer to one text (``None``: it found none) and whether it is right."""

    answer: str | None
    correct: bool


@dataclass
class TextAudit:
    """One role's text of one logged sample, read by ours and by every independent reader."""

    run: str
    task: str
    agents: str
    seed: int
    doc_id: int
    sample: int
    role: str
    gold: str
    text: str
    logged: str | None  # the answer extracted when the run was graded
    ours: Reading
    readers: dict[str, Reading] = field(default_factory=dict)

    def kind(self, reader: str) -> str:
        """How ``reader`` relates to ours on this text (one of :data:`KINDS`)."""
        return disagreement(self.task, self.ours, self.readers[reader])

    def note(self, reader: str) -> str | None:
        """Why ``reader`` disagrees, for the kinds explained by how the reader works (``None``: read it yourself)."""
        return explain(self, reader)

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "task": self.task,
            "agents": self.agents,
            "seed": self.seed,
            "doc_id": self.doc_id,
            "sample": self.sample,
            "role": self.role,
            "gold": self.gold,
            "ours": vars(self.ours),
            "logged_answer": self.logged,
            "readers": {k: vars(v) for k, v in self.readers.items()},
            "kinds": {k: self.kind(k) for k in self.readers},
            "notes": {k: self.note(k) for k in self.readers if self.kind(k) != "agree"},
            "tail": self.text[-TAIL_CHARS:],
        }


def disagreement(task: str, ours: Reading, theirs: Reading) -> str:
    """Classify a reader's reading against ours: a different grade first, then found/not found, then the answer."""
    if ours.correct != theirs.correct:
        return "ours_right" if ours.correct else "reader_right"
    if (ours.answer is None) != (theirs.answer is None):
        return "only_ours_found" if theirs.answer is None else "only_reader_found"
    if ours.answer is None or ours.correct or _same_answer(task, ours.answer, theirs.answer):
        return "agree"
    return "other_answer"


#: Disagreements explained by how a reader works, checked on the text (see :func:`explain`).
NOTES = {
    "no_hashes": "no '#### N' line: strict-match wants lm-eval's few-shot format, our prompts ask for 'Final Answer:'",
    "no_marker": "no final answer stated (README rules): the reader takes the last number/span/choice anywhere",
    "after_answer": "the text goes on after its stated final answer: flexible-extract takes a later number",
}


def explain(a: TextAudit, reader: str) -> str | None:
    """A :data:`NOTES` entry when the disagreement follows from how ``reader`` works, else ``None``.

    Checked on the text, never assumed: strict-match found nothing and the text has no ``#### ``; ours found
    no stated answer and the reader's (wrong) answer is not a stated one; or the reader's answer only appears
    after the last stated answer. Grade disagreements where the reader is right are never explained here.
    """
    theirs = a.readers[reader]
    kind = disagreement(a.task, a.ours, theirs)
    if kind in ("agree", "reader_right"):
        return None
    if reader == "strict-match" and theirs.answer is None and "#### " not in a.text:
        return NOTES["no_hashes"]
    if a.ours.answer is None and theirs.answer is not None:
        return NOTES["no_marker"]
    if a.ours.answer is not None and theirs.answer is not None and reader == "flexible-extract":
        last = _last_statement_end(a.text)
        regex = _lm_eval_readers(GSM8K_YAML)[reader].filters[0]().regex
        found = list(regex.finditer(a.text))
        if last is not None and found and found[-1].start() >= last:
            return NOTES["after_answer"]
    return None


def _last_statement_end(text: str) -> int | None:
    """The end of the line of the last answer marker in ``text`` (``None``: no marker)."""
    ends = [m.end() for m in re.finditer(r"(?i)final\s+answer|answer\s+is|####|\\boxed\{", text)]
    if not ends:
        return None
    nl = text.find("\n", ends[-1])
    return len(text) if nl < 0 else nl


def _same_answer(task: str, a: str, b: str) -> bool:
    a, b = a.strip().rstrip(".").strip(), b.strip().rstrip(".").strip()  # "5/21" and the reader's "5/21."
    na, nb = normalize_answer(task, a), normalize_answer(task, b)
    if na == nb:
        return True
    if task_grader(task).kind == "math":
        return answers_match(task, a, {"answer": b})  # math-verify equivalence, our time budget
    return False


# --------------------------------------------------------------------------- the independent readers


def _lm_eval_yaml(rel: str) -> dict:
    """A task file of the installed lm-eval, read by lm-eval's own loader (``!function`` names left unresolved: no
    filter here uses them; includes not merged: the filters and metric are in the named file)."""
    import lm_eval

    from harness.lmeval.compat import load_yaml

    return load_yaml(Path(lm_eval.__file__).parent / "tasks" / rel, resolve_func=False, recursive=False)


@dataclass(frozen=True)
class _LmEvalReader:
    """One ``filter_list`` entry of an lm-eval task, scored by that task's ``exact_match`` settings."""

    filters: tuple[Callable, ...]
    metric_kwargs: dict
    fallback: str = "[invalid]"

    def read(self, text: str, doc: dict, reference: str) -> Reading:
        from lm_eval.api.metrics import exact_match_hf_evaluate

        resps: object = [[text]]
        for make in self.filters:
            resps = make().apply(resps, [doc])
        pred = list(resps)[0]
        if not isinstance(pred, str) or pred == self.fallback or not pred.strip():
            return Reading(None, False)
        score = exact_match_hf_evaluate(predictions=[pred], references=[reference], **self.metric_kwargs)
        return Reading(pred, bool(score["exact_match"]))


@cache
def _lm_eval_readers(rel: str) -> dict[str, _LmEvalReader]:
    from lm_eval.filters import build_filter_ensemble

    cfg = _lm_eval_yaml(rel)
    metric = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    kwargs = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}
    out = {}
    for entry in cfg["filter_list"]:
        comps = [(f["function"], {k: v for k, v in f.items() if k != "function"}) for f in entry["filter"]]
        out[entry["name"]] = _LmEvalReader(tuple(build_filter_ensemble(entry["name"], comps).filters), kwargs)
    return out


def _gsm8k_readers(text: str, doc: dict) -> dict[str, Reading]:
    return {name: r.read(text, doc, str(doc["answer"])) for name, r in _lm_eval_readers(GSM8K_YAML).items()}


def _csqa_readers(text: str, doc: dict) -> dict[str, Reading]:
    choices = csqa_choices(doc)
    letters = list(choices)
    mc = {"choices": list(choices.values())}
    gold = gold_answer("malt_csqa", doc)
    reference = f"({'ABCDEFGHIJ'[letters.index(gold)]})" if gold in letters else f"({gold})"
    reading = _lm_eval_readers(CSQA_YAML)["flexible-extract"].read(text, mc, reference)
    if reading.answer is not None and len(reading.answer) == 3:  # "(C)": the C-th choice, mapped to its label
        pos = ord(reading.answer[1].upper()) - ord("A")
        letter = letters[pos] if 0 <= pos < len(letters) else reading.answer[1]
        reading = Reading(letter, reading.correct)
    return {"lm-eval multi_choice_regex": reading}


def _math_readers(text: str, doc: dict) -> dict[str, Reading]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    try:
        pred = parse(text, extraction_config=config)
        gold = parse(f"${gold_answer('malt_math', doc)}$")
        answer = str(pred[-1]) if pred else None
        correct = bool(pred and gold and verify(gold, pred))
    except Exception:  # noqa: BLE001 - a reader that fails found nothing
        answer, correct = None, False
    return {"math-verify": Reading(answer, correct)}


READERS: dict[str, Callable[[str, dict], dict[str, Reading]]] = {
    "malt_gsm8k": _gsm8k_readers,
    "malt_math": _math_readers,
    "malt_csqa": _csqa_readers,
}


# --------------------------------------------------------------------------- auditing logs


@dataclass(frozen=True)
class LogSource:
    """The logged rows of one task of one run: a finished run's sample log, or an unfinished run's checkpoint."""

    where: str  # the run's folder
    agents: str
    task: str
    rows: list[dict]
    path: Path  # the file the rows came from


def _checkpoint_sources(folder: Path) -> list[LogSource]:
    """The rows of an unfinished run from its ``checkpoint.jsonl`` (read only; a torn last line is skipped)."""
    path = folder / "checkpoint.jsonl"
    try:
        ident = json.loads(record_path(folder).read_text(encoding="utf-8"))
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"cannot read the unfinished run in {folder}: {exc}") from None
    by_task: dict[str, list[dict]] = {}
    for line in lines:
        if not line.endswith("\n"):
            break  # being written
        try:
            rec = json.loads(line)
        except ValueError:
            break
        by_task.setdefault(rec["task"], []).extend(rec["rows"])
    ident = ident if isinstance(ident, dict) else {}
    plan = (ident.get("provenance") or {}).get("plan") if isinstance(ident.get("provenance"), dict) else None
    agents = plan.get("agents") if isinstance(plan, dict) else ident.get("agents")  # the record, else the older one
    agents = ",".join(agents) if isinstance(agents, list) else str(agents)
    return [LogSource(_shown(folder), agents, task, rows, path) for task, rows in by_task.items()]


def _shown(folder: Path) -> str:
    """A run's folder as shown: relative to the working directory when it is under it."""
    folder = folder.resolve()
    try:
        return str(folder.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def log_sources(dirs: list[str]) -> list[LogSource]:
    """Every logged task under ``dirs``: finished runs (results + sample log), else unfinished runs' checkpoints."""
    if not dirs:
        raise ResultsError("no result folder given")
    out: list[LogSource] = []
    for raw in dirs:
        p = Path(raw)
        if not p.exists():
            raise ResultsError(f"no such file or folder: {p}")
        results = [p] if p.is_file() else sorted(p.rglob("results_*.json"))
        finished = {q.parent for q in results}
        partial = (
            [] if p.is_file() else sorted(c.parent for c in p.rglob("checkpoint.jsonl") if c.parent not in finished)
        )
        if not results and not partial:
            raise ResultsError(f"no results_*.json or checkpoint.jsonl under {p} (a malt-eval --output-path folder?)")
        for run in load_runs(results) if results else []:
            for task in run.tasks:
                if run.lm_eval_column(task):  # an lm-eval task: its own filters read it, not our grader
                    continue
                path = run.samples_path(task)
                if not path.is_file():
                    raise ResultsError(
                        f"no sample log {path.name} beside {run.path} (rerun malt-eval with --log-samples)"
                    )
                out.append(
                    LogSource(_shown(run.path.parent), str(run.malt.get("agents")), task, load_samples(run, task), path)
                )
        for folder in partial:
            out += _checkpoint_sources(folder)
    return out


def audit_source(src: LogSource) -> list[TextAudit]:
    """Read every role text of one logged task with ours and with every independent reader."""
    task = canonical_task(src.task)
    out = []
    for row in src.rows:
        doc = row.get("doc")
        if not isinstance(doc, dict) or not isinstance(row.get("samples"), list):
            raise ResultsError(f"{src.path}: row {row.get('doc_id')} has no logged doc and texts (--log-samples)")
        for sample in row["samples"]:
            for role, turn in (sample.get("turns") or {}).items():
                text = turn.get("text") if isinstance(turn, dict) else None
                if not isinstance(text, str):
                    raise ResultsError(f"{src.path}: row {row.get('doc_id')}, {role}: no text (--log-samples)")
                ours_answer = extract_answer(task, text)
                grader = task_grader(task)
                if ours_answer is not None and isinstance(grader, ChoiceGrader):  # "kite": the letter of that text
                    ours_answer = grader.letter(ours_answer, doc) or ours_answer
                out.append(
                    TextAudit(
                        run=src.where,
                        task=task,
                        agents=src.agents,
                        seed=int(row.get("seed", 0)),
                        doc_id=int(row["doc_id"]),
                        sample=int(sample.get("sample", 0)),
                        role=role,
                        gold=gold_answer(task, doc),
                        text=text,
                        logged=turn.get("answer"),
                        ours=Reading(ours_answer, answers_match(task, ours_answer, doc)),
                        readers=READERS[task](text, doc),
                    )
                )
    return out


def audit(dirs: list[str]) -> list[TextAudit]:
    """Audit every logged role text under ``dirs``."""
    out: list[TextAudit] = []
    for src in log_sources(dirs):
        out += audit_source(src)
    if not out:
        raise ResultsError("no role texts found in the sample logs")
    return out


# --------------------------------------------------------------------------- summary


def summary_rows(audits: list[TextAudit]) -> list[dict]:
    """Per (task, role, reader): texts, texts where ours found no answer, and the count of each kind."""
    groups: dict[tuple[str, str, str], list[TextAudit]] = {}
    for a in audits:
        for reader in a.readers:
            groups.setdefault((a.task, a.role, reader), []).append(a)
    rows = []
    for (task, role, reader), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0], _role_order(kv[0][1]), kv[0][2])
    ):
        kinds = Counter(a.kind(reader) for a in items)
        rows.append(
            {
                "task": task,
                "role": role,
                "reader": reader,
                "texts": len(items),
                "ours_none": sum(a.ours.answer is None for a in items),
                "ours_acc": sum(a.ours.correct for a in items),
                "reader_acc": sum(a.readers[reader].correct for a in items),
                **{k: kinds.get(k, 0) for k in KINDS},
                "unexplained": sum(a.kind(reader) != "agree" and a.note(reader) is None for a in items),
            }
        )
    return rows


def _role_order(role: str) -> tuple[int, str]:
    order = {"generator": 0, "verifier": 1, "refiner": 2}
    return order.get(role, 3), role


def summary_table(rows: list[dict], fmt: str = "github") -> str:
    """The summary as a table (``ours right`` / ``reader right``: the grade differs)."""
    headers = ["task", "role", "reader", "texts", "ours: none", "ours ok", "reader ok", *KINDS, "to read"]
    body = [[r[h] for h in ("task", "role", "reader", "texts", "ours_none", "ours_acc", "reader_acc")] for r in rows]
    for line, r in zip(body, rows, strict=True):
        line += [r[k] for k in KINDS] + [r["unexplained"]]
    return tabulate(body, headers=headers, tablefmt=fmt)


def write_audit(audits: list[TextAudit], out: Path) -> tuple[Path, Path]:
    """``out/disagreements.jsonl`` (texts where some reader disagrees) and ``out/summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    dis = out / "disagreements.jsonl"
    with dis.open("w", encoding="utf-8") as fh:
        for a in audits:
            if any(a.kind(r) != "agree" for r in a.readers):
                fh.write(json.dumps(a.to_dict(), ensure_ascii=False) + "\n")
    summ = out / "summary.json"
    summ.write_text(json.dumps(summary_rows(audits), indent=2), encoding="utf-8")
    return dis, summ
