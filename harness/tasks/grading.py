"""Answer extraction, normalisation and correctness for the three benchmarks.

Public API: :func:`extract_answer`, :func:`normalize_answer`, :func:`is_correct` and
:func:`gold_answer`. Every function takes a task name (``malt_gsm8k``, ``malt_math``,
``malt_csqa``; the short names ``gsm8k``/``math``/``csqa`` work too) and never raises on any
input string: malformed text simply yields ``None`` / ``False``, and a grader that raises or runs out of time
grades ``None`` / ``False`` too, recorded in the :class:`~harness.tasks.grading_faults.GraderFaults` passed in (raised
under ``MALT_GRADER_STRICT=1``).

What differs between tasks is a :class:`Grader`, registered by kind with :func:`register_grader`
(``number``, ``math``, ``choice``); each task names its kind in :mod:`harness.tasks.taskinfo` and
:func:`task_grader` returns it. The functions here dispatch through it, with no task names.

Extraction rule (all tasks): the *last* stated final answer wins, whichever of
``Final Answer:``, ``The answer is`` (also ``the correct/final answer is``, ``... would be``, ``Correct Answer:``,
``the answer to the <word> is``), ``####`` or ``\\boxed{}`` states it. A marker ending its line (a heading such as
``**Final Answer**``) states the paragraph under it. A statement that is a verdict (``the answer is
correct``) or, for GSM8K, holds no number states nothing, so it does not hide an earlier answer.
GSM8K: a stated calculation (``400 + 400 = 1000 friends``) answers with the number after its last ``=``.
MATH: boxes in a row (``\\boxed{3} and \\boxed{5}``) are one multi-part answer (``3, 5``). CSQA: without a stated
answer, a choice picked in prose by its letter (``I think it's (B) bookstore``) answers it.
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar, TypeVar

from harness.core.errors import MaltError
from harness.tasks.grading_faults import GraderFaults, guarded, time_budget
from harness.tasks.statements import (
    HEDGE,
    MAX_ANSWER,
    NUMBER,
    PICKS,
    STATED,
    boxed_contents,
    csqa_letter,
    format_number,
    last_stated,
    number,
    one_letter,
    unmarked,
)
from harness.tasks.taskinfo import canonical_task, task_info

__all__ = [
    "GRADERS",
    "ChoiceGrader",
    "Grader",
    "GraderFaults",
    "answers_match",
    "canonical_task",
    "extract_answer",
    "gold_answer",
    "is_correct",
    "normalize_answer",
    "register_grader",
    "task_grader",
]

MATH_VERIFY_BUDGET_S = 3.0  # seconds for math-verify per comparison: a grading call stays well under 5 s


def extract_answer(task: str, text: str, faults: GraderFaults | None = None) -> str | None:
    """Extract the final answer a model stated in ``text``.

    GSM8K returns the normalised number ("1,000.00" -> "1000"); MATH returns the LaTeX of the
    answer; CSQA returns a letter ``A``-``E``, or the stated text when it is not a letter (mapped
    to a letter by :func:`is_correct`, which knows the choices). ``None`` when nothing is stated,
    and when the grader raised (recorded in ``faults``; raised in strict mode: :mod:`harness.tasks.grading_faults`).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    return guarded(lambda: _extract(task_grader(task), text), None, text, faults)


def _extract(grader: Grader, text: str) -> str | None:
    return grader.extract(text, last_stated(text, grader))


# --------------------------------------------------------------------------- normalisation

_LATEX_DROP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\displaystyle|\s+")
_FRAC_SHORT = re.compile(r"\\[dt]?frac(\d)(\d)")
_PROSE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}\s+[a-zA-Z]{2,}\s+[a-zA-Z]{2,}")  # three words, no \commands
_FRAC_BRACED = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")


def normalize_answer(task: str, answer: str | None, faults: GraderFaults | None = None) -> str | None:
    """A canonical string for grouping equal answers (majority voting).

    "1,000" and "1000" map to "1000"; ``\\frac12``, ``\\frac{1}{2}``, "1/2" and "0.5" all map to
    "0.5"; CSQA letters are upper-cased. Idempotent: ``normalize_answer(t, normalize_answer(t, a))``
    equals ``normalize_answer(t, a)``. ``None`` when the grader raised (recorded in ``faults``).
    """
    return guarded(lambda: _normalized(task_grader(task), answer), None, str(answer), faults)


def _normalized(grader: Grader, answer: str | None) -> str | None:
    """:meth:`Grader.normalize` of a non-empty answer (stripped, at most ``MAX_ANSWER`` long)."""
    if answer is None or not str(answer).strip():
        return None
    return grader.normalize(str(answer).strip()[:MAX_ANSWER])


# --------------------------------------------------------------------------- correctness


def gold_answer(task: str, doc: dict) -> str:
    """The reference answer of a raw dataset row (original fields), as a string."""
    return task_grader(task).gold(doc)


def csqa_choices(doc: dict) -> dict[str, str]:
    q = doc.get("question")
    if isinstance(q, dict):
        return {c["label"]: c["text"] for c in q.get("choices", [])}
    ch = doc.get("choices") or {}  # hub layout: {"label": [...], "text": [...]}
    return dict(zip(ch.get("label", []), ch.get("text", []), strict=False))


def _math_verify(gold: str, pred: str) -> bool:
    """math-verify equivalence, all of it (both parses and the check) within one time budget
    (:func:`~harness.tasks.grading_faults.time_budget`; past it,
    :class:`~harness.tasks.grading_faults.GraderTimeout`)."""
    from math_verify import parse, verify

    for name in ("math_verify.parser", "math_verify.grader"):  # we time it ourselves: no "timeout disabled" noise
        logging.getLogger(name).setLevel(logging.ERROR)

    def check() -> bool:
        g = parse(f"${gold}$", parsing_timeout=None)
        p = parse(f"${pred}$", parsing_timeout=None)
        if g and p and verify(g, p, timeout_seconds=None):
            return True
        if _PROSE.search(pred):  # a sentence ("... is 72 degrees"): math-verify reads it as text, its last math
            p = parse(pred, parsing_timeout=None)
            return bool(g and p and verify(g, p, timeout_seconds=None))
        return False

    with time_budget(MATH_VERIFY_BUDGET_S):
        return check()


def answers_match(task: str, answer: str | None, doc: dict, faults: GraderFaults | None = None) -> bool:
    """Whether an already extracted ``answer`` equals the reference of ``doc``; ``False`` when the grader raised
    or ran out of time (recorded in ``faults``)."""
    if answer is None:
        return False
    return guarded(lambda: _match(task_grader(task), answer, doc), False, str(answer), faults)


def _match(grader: Grader, answer: str, doc: dict) -> bool:
    return grader.match(answer, grader.gold(doc), doc)


def is_correct(task: str, text: str, doc: dict, faults: GraderFaults | None = None) -> bool:
    """Whether the final answer stated in a model's ``text`` is right for the raw row ``doc``."""
    return answers_match(task, extract_answer(task, text, faults), doc, faults)


# --------------------------------------------------------------------------- graders: what differs between tasks


class Grader:
    """How one kind of task states, normalises and compares answers (a registered plug-in, see :func:`register_grader`).

    The shared rules (markers, verdicts, the last statement wins) live in this module; a grader adds what its
    kind of answer needs. Methods may raise: the public functions above catch it, grade ``None`` / ``False`` and
    record it (:class:`~harness.tasks.grading_faults.GraderFaults`).
    """

    kind: ClassVar[str] = ""
    multi_part: ClassVar[bool] = False  # boxes in a row are one answer's parts (:func:`_last_boxed`)

    def states_answer(self, cand: str) -> bool:
        """Whether a stated candidate (already not a verdict or placeholder) is an answer of this kind."""
        return True

    def extract(self, text: str, stated: str | None) -> str | None:
        """The answer of a model's ``text`` (non-empty) from its last stated answer ``stated`` (``None``: none)."""
        return stated

    def normalize(self, answer: str) -> str | None:
        """A canonical string for an answer (non-empty, stripped) to group equal answers by."""
        raise NotImplementedError

    def gold(self, doc: dict) -> str:
        """The reference answer of a raw dataset row (original fields), as a string."""
        raise NotImplementedError

    def match(self, answer: str, gold: str, doc: dict) -> bool:
        """Whether an extracted ``answer`` equals the reference ``gold`` of ``doc``."""
        raise NotImplementedError


#: kind -> grader, filled by :func:`register_grader` (lm-eval's registry style).
GRADERS: dict[str, Grader] = {}
_G = TypeVar("_G", bound=type[Grader])


def register_grader(kind: str):
    """Class decorator: register a :class:`Grader` subclass under ``kind`` (the name tasks give in ``taskinfo``)."""

    def add(cls: _G) -> _G:
        if kind in GRADERS:
            raise MaltError(f"grader kind {kind!r} is registered twice")
        cls.kind = kind
        GRADERS[kind] = cls()
        return cls

    return add


def task_grader(task: str) -> Grader:
    """The :class:`Grader` of a task name or alias (its kind is ``taskinfo.task_info(task).grader``).

    Raises:
        UnknownTaskError: (a ``ValueError``) for an unknown task name.
    """
    kind = task_info(task).grader
    if kind not in GRADERS:
        raise MaltError(f"task {task!r} names an unknown grader {kind!r} (known: {', '.join(sorted(GRADERS))})")
    return GRADERS[kind]


@register_grader("number")
class NumberGrader(Grader):
    """A number (GSM8K): a statement must hold one; "400 + 400 = 1000 friends" answers the number after the last
    ``=``; numbers compare exactly ("$1,000.00" equals "1000")."""

    def states_answer(self, cand: str) -> bool:
        return NUMBER.search(cand) is not None

    def extract(self, text: str, stated: str | None) -> str | None:
        if stated is None:
            return None
        num = number(stated.rsplit("=", 1)[-1]) if "=" in stated else None
        num = num if num is not None else number(stated)
        return format_number(num) if num is not None else None

    def normalize(self, answer: str) -> str | None:
        num = number(answer)
        return format_number(num) if num is not None else answer

    def gold(self, doc: dict) -> str:
        return str(doc["answer"]).split("####")[-1].strip()

    def match(self, answer: str, gold: str, doc: dict) -> bool:
        a, g = number(answer), number(gold)
        return a is not None and a == g


@register_grader("math")
class MathGrader(Grader):
    """A LaTeX answer (MATH): the stated LaTeX; equal when the normalised strings are, else by math-verify within
    :data:`MATH_VERIFY_BUDGET_S`. Boxes in a row ("\\boxed{3} and \\boxed{5}") are one answer's parts."""

    multi_part = True

    def normalize(self, answer: str) -> str | None:
        s = _LATEX_DROP.sub("", answer)
        s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("^\\circ", "")
        s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
        plain = _FRAC_BRACED.sub(r"\1/\2", s)
        if re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+", plain.replace(",", "")):
            num = number(plain)
            if num is not None:
                return format_number(num)
        return s.rstrip(".")

    def gold(self, doc: dict) -> str:
        if doc.get("answer") not in (None, ""):
            return str(doc["answer"])
        boxed = boxed_contents(str(doc["solution"]))
        return boxed[-1][1] if boxed else ""

    def match(self, answer: str, gold: str, doc: dict) -> bool:
        if _normalized(self, answer) == _normalized(self, gold):
            return True
        return _math_verify(gold, answer)


@register_grader("choice")
class ChoiceGrader(Grader):
    """A lettered choice (CSQA): a letter, or a choice's exact text (a statement of at most 10 words: every choice
    text but 3 of CommonsenseQA's 54,810 is that short; longer is prose). A short reply ("B", "(B) rope") counts
    without a marker; a hedge ("B or C") is no answer."""

    def states_answer(self, cand: str) -> bool:
        return csqa_letter(cand) is not None or len(cand.split()) <= 10

    def extract(self, text: str, stated: str | None) -> str | None:
        if stated is None:  # a choice picked in prose ("I think it's (B) bookstore"), else a reply without marker
            found = list(PICKS.finditer(text))
            stated = one_letter(text, found[-1], found[-1].start()) if found else None
            stated = stated or (None if STATED.search(text) else unmarked(text))
        if stated is None or HEDGE.search(stated):  # "B or C": undecided, no answer
            return None
        return csqa_letter(stated) or stated

    def normalize(self, answer: str) -> str | None:
        return csqa_letter(answer) or answer.lower()

    def gold(self, doc: dict) -> str:
        return str(doc["answerKey"]).strip().upper()

    def letter(self, answer: str, doc: dict) -> str | None:
        """The choice ``answer`` names: its letter, or the letter of the choice whose exact text it is."""
        letter = csqa_letter(answer)
        if letter is None:
            wanted = answer.strip().strip(".").lower()
            bare = re.sub(r"^(?:a|an|the)\s+", "", wanted)  # "A snow storm": choice text "snow storm"
            texts = {k: v.strip().lower() for k, v in csqa_choices(doc).items()}
            letter = next((k for k, v in texts.items() if v == wanted), None)
            letter = letter or next((k for k, v in texts.items() if v == bare), None)
        return letter

    def match(self, answer: str, gold: str, doc: dict) -> bool:
        return self.letter(answer, doc) == gold
