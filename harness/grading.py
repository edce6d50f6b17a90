"""Answer extraction, normalisation and correctness for the three benchmarks.

Public API: :func:`extract_answer`, :func:`normalize_answer`, :func:`is_correct` and
:func:`gold_answer`. Every function takes a task name (``malt_gsm8k``, ``malt_math``,
``malt_csqa``; the short names ``gsm8k``/``math``/``csqa`` work too) and never raises on any
input string: malformed text simply yields ``None`` / ``False``, and a grader that raises or runs out of time
grades ``None`` / ``False`` too, recorded in the :class:`~harness.grading_faults.GraderFaults` passed in (raised
under ``MALT_GRADER_STRICT=1``).

What differs between tasks is a :class:`Grader`, registered by kind with :func:`register_grader`
(``number``, ``math``, ``choice``); each task names its kind in :mod:`harness.taskinfo` and
:func:`task_grader` returns it. The functions here dispatch through it, with no task names.

Extraction rule (all tasks): the *last* stated final answer wins, whichever of
``Final Answer:``, ``The answer is`` (also ``the correct/final answer is``, ``... would be``, ``Correct Answer:``,
``the answer to the <word> is``), ``####`` or ``\\boxed{}`` states it. A marker ending its line (a heading such as
``**Final Answer**``) states the paragraph under it. A statement that is a verdict (``the answer is
correct``) or, for GSM8K, holds no number states nothing, so it does not hide an earlier answer.
GSM8K: a stated calculation (``400 + 400 = 1000 friends``) answers with the number after its last ``=``.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import ClassVar, TypeVar

from harness.errors import MaltError
from harness.grading_faults import GraderFaults, guarded, time_budget
from harness.taskinfo import canonical_task, task_info

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

_MAX_TEXT = 200_000  # longer texts are graded on their tail only
_MAX_ANSWER = 2_000  # an "answer" longer than this is not an answer
MATH_VERIFY_BUDGET_S = 3.0  # seconds for math-verify per comparison: a grading call stays well under 5 s

# "Final Answer: x", "**Final Answer:** x", "The final answer is x", "The answer is x", "The correct answer is
# x" (or "would be x"), "Correct Answer: x", "The answer to the problem/puzzle/... is x", "the correct answer, which
# is x", "#### x" up to the end
# of line; "Final Answer" alone on its line (a heading) states the paragraph under it. "the final answer, ..." in
# a sentence states nothing.
_STATED = re.compile(
    r"(?:(?<!\bno\s)final\s+answer(?:\s*\*\*)?\s*(?:is\b\s*:?|[:：]|(?=[*#\s]*(?:\n|$)))"
    r"|the\s+(?:correct\s+|final\s+|right\s+)?answer(?:\s+to\s+(?:the|this)\s+\w+)?\s+(?:is|would\s+be)\b\s*:?"
    r"|the\s+(?:correct|final|right)\s+answer\s*,\s*which\s+is\b\s*:?"
    r"|\b(?:correct|right)\s+answer(?:\s*\*\*)?\s*[:：]"
    r"|####)[ \t]*([^\n]*)",
    re.IGNORECASE,
)
_HEADING_REST = re.compile(r"[*#\s]*")  # what may follow a heading marker on its line
_HEADING_LEAD = re.compile(r"[\s#*>\-\d.]*")  # and precede it: markdown ("### ", "**", "- ", "3. ")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
# A statement that judges instead of answering: "the answer is correct", "... is not accurate", or negates:
# "the answer is not A: classroom".
_VERDICT = re.compile(
    r"not\b|(?:\w+ly\s+|also\s+|indeed\s+|still\s+)*"
    r"(?:correct|incorrect|wrong|right|accurate|inaccurate|valid|invalid)\b(?!\s*[:(]\s*\S)",
    re.IGNORECASE,
)
# A statement that judges itself: "B: cabinet is incorrect." states nothing.
_SELF_VERDICT = re.compile(
    r"\b(?:is|are)\s+(?:not\s+(?:correct|right|accurate)|incorrect|wrong|inaccurate)\W*$", re.IGNORECASE
)
_FILLER = re.compile(r"(?:indeed|actually|simply|just|clearly)\b[\s,:]*", re.IGNORECASE)  # "is indeed 144"
# the prompt's "<number>", "<letter>", "$<correct answer in LaTeX>$", also echoed inside quotes: '"$<answer>$".'
_PLACEHOLDER = re.compile(r"\$?<[^<>\n]*>\$?")
# CSQA: a stated answer offering two letters ("B or C", "(B)/(C)", "B and C") is a hedge.
_HEDGE = re.compile(r"(?<![\w'])\(?([A-E])\)?(?:\s*[:.]\s*[^\n/]*?)?\s*(?:\bor\b|\band\b|/)\s*\(?(?!\1)[A-E]\b(?!')")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# between two boxed parts of one answer: separators (",", ";", "and", "\quad"), "$", and the next part's label
_BOX_GAP = re.compile(
    r"[\s$]*(?:,|;|&|\band\b|\\quad|\\qquad|\\text\{\s*and\s*\})?[\s$]*(?:[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?\$?\s*"
)
_BOX_LABEL = re.compile(r"(?<![\\\w])([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*\$?\s*$")  # "x = " before a box
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_LETTER_PATTERNS = [
    re.compile(r"^\(?\s*([A-Ea-e])\s*\)?\s*(?:[:.)\]]|$)"),  # "B", "(B)", "B:", "B.", "b)"
    re.compile(r"^(?i:option|choice|answer)\s*[:.]?\s*\(?([A-E])\)?\b"),  # "Option B", "choice (B) rope"
    re.compile(r"^\(\s*([A-E])\s*\)"),  # "(B) rope"
    re.compile(r"^(?!A\s+[A-Za-z])([A-E])\b"),  # "B rope"; "A snow storm is ..." starts with an article
]
_CHOICE_LINE = re.compile(r"^\s*\(?[A-E]\)?\s*[:.)]")  # "B: bookstore", a line of a listed choice
# CSQA prose without a marker: a phrase that picks ("I think it's", "the best option is", "I'd go with") and then
# one letter as a choice's name: "(B)", or "B" before ")", ":", ",", "." or the end ("B bookstore" is too loose).
_PICKS = re.compile(
    r"(?i:\bI(?:\s+would|'d|\s+will|'ll)?\s+(?:think|believe|say|guess|choose|pick|select|go\s+with)"
    r"(?:\s+(?:that\s+)?(?:it'?s|it\s+is|it\s+would\s+be|it\s+must\s+be))?"
    r"|\bit(?:'s|\s+is|\s+must\s+be|\s+has\s+to\s+be|\s+should\s+be|\s+would\s+be)"
    r"|\bthe\s+(?:best|most\s+\w+|right|likeliest|only\s+\w+)\s+(?:option|choice|answer|one|pick)(?:\s+here)?"
    r"\s+(?:is|would\s+be|seems\s+to\s+be)"
    r"|\b(?:my|our)\s+(?:answer|choice|pick)\s+(?:is|would\s+be)"
    r"|\b(?:we|you)\s+should\s+(?:choose|pick|select|go\s+with))"
    r"\s*:?\s*(?i:(?:option|choice|letter)\s+)?(?:\(\s*([A-E])\s*\)|\b([A-E])(?=\s*[):,.]|\s*$))"
)
_LETTER_NAMED = re.compile(r"(?<![\w'])\(?([A-E])\)?(?![\w'])")  # a letter standing alone: "B", "(B)", "B)"
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)|\n")
_SAYS_WRONG = re.compile(r"\b(?:incorrect|wrong|not\s+(?:correct|right|the\s+answer))\b", re.IGNORECASE)


# --------------------------------------------------------------------------- extraction


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """Return ``(start, end, content)`` of every balanced ``\\boxed{...}`` in ``text``, linear time."""
    found: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        m = _BOXED.search(text, pos)
        if m is None:
            return found
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            depth += (c == "{") - (c == "}")
            i += 1
        if depth == 0:
            found.append((m.start(), i, text[m.end() : i - 1]))
            pos = i
        else:  # unbalanced: every later \boxed{ is inside it, so none can close either
            return found


def _boxed_contents(text: str) -> list[tuple[int, str]]:
    """Return ``(position, content)`` of every balanced ``\\boxed{...}`` in ``text``."""
    return [(start, content) for start, _, content in _boxed_spans(text)]


def _last_boxed(text: str, grader: Grader) -> list[tuple[int, str]]:
    """The last ``\\boxed{}`` answer of ``text`` as ``[(position, answer)]`` (``[]``: none). For a grader of
    multi-part answers, boxes one after another with only separators between them ("\\boxed{3} and \\boxed{5}",
    "x=\\boxed{2}, y=\\boxed{-1}") are one answer: their parts joined by ", " ("3, 5"; "x=2, y=-1")."""
    spans = _boxed_spans(text)
    if not spans:
        return []
    run = [spans[-1]]
    while grader.multi_part and len(run) < len(spans):
        before = spans[-len(run) - 1]
        if not _BOX_GAP.fullmatch(text, before[1], run[0][0]):
            break
        run.insert(0, before)
    parts = []
    for start, _, content in run:
        label = _BOX_LABEL.search(text[max(0, start - 20) : start])
        parts.append((label.group(1) + "=" if label else "") + _clean_stated(content))
    if len(run) == 1 or len(set(parts)) == 1 or not all(parts):
        return [(run[-1][0], run[-1][2])]
    return [(run[-1][0], ", ".join(parts))]


def _clean_stated(ans: str) -> str:
    """Unwrap a stated answer (``\\boxed{}``, ``$..$``, ``\\(..\\)``, ``**``, a final period) until nothing changes."""
    if len(ans) > 2 * _MAX_ANSWER:  # not an answer (rejected by length); don't unwrap it level by level
        return ans.strip()
    while True:
        before = ans
        ans = ans.strip()
        inner = _boxed_contents(ans)
        if inner:
            ans = inner[-1][1]
        ans = ans.strip().strip("*").strip()
        ans = ans[_FILLER.match(ans).end() :] if _FILLER.match(ans) else ans
        if len(ans) > 1 and ans[0] + ans[-1] in ('""', "“”"):  # 'The correct answer is "E"'
            ans = ans[1:-1]
        if ans.startswith("$") and ans.endswith("$") and len(ans) > 1:
            ans = ans.strip("$")
        for wrap in (("\\(", "\\)"), ("\\[", "\\]")):
            if ans.startswith(wrap[0]) and ans.endswith(wrap[1]):
                ans = ans[2:-2]
        ans = re.sub(r"\s*\n\s*", " ", ans.strip().rstrip(".").strip())  # an answer is one line
        if ans == before:
            return ans


def _stated_text(text: str, m: re.Match) -> str:
    """What a marker states: the rest of its line, or for a heading (alone on its line) the paragraph under it."""
    rest = m.group(1)
    if _HEADING_REST.fullmatch(rest) is None:
        return rest
    marker = m.group(0)[: m.start(1) - m.start()].rstrip()
    if not marker.endswith((":", "：", "is")) and not _HEADING_LEAD.fullmatch(
        text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
    ):
        return ""  # "... we compute the final answer" ending a line of prose is no heading
    after = text[m.end() :].lstrip("\n \t")
    end = _PARAGRAPH.search(after)
    return after[: end.start() if end else _MAX_ANSWER]


def _unnest(grader: Grader, cand: str) -> str:
    """A statement holding another marker ("Final Answer: The answer is (C) garden", "The answer is B. Final
    Answer: C") states what the last of them states, when that is an answer."""
    for _ in range(8):
        inner = _STATED.search(cand)
        if inner is None:
            return cand
        if not cand[: inner.start()].strip() and not inner.group(1).strip():  # "Final Answer:" repeated: nothing
            return ""
        stated = _clean_stated(inner.group(1))
        if not _states_answer(grader, stated):
            return cand
        cand = stated
    return cand


def _states_answer(grader: Grader, cand: str) -> bool:
    """Whether a stated candidate is an answer: not a verdict, a placeholder or too long, and one the grader's
    kind accepts (:meth:`Grader.states_answer`)."""
    if not cand or len(cand) > _MAX_ANSWER or _VERDICT.match(cand) or _SELF_VERDICT.search(cand):
        return False
    if _PLACEHOLDER.fullmatch(cand.strip("\"'“”.")):
        return False
    return grader.states_answer(cand)


def _last_stated(text: str, grader: Grader) -> str | None:
    """The last final answer stated in ``text`` by any of the supported markers (see the module docstring)."""
    text = text[-_MAX_TEXT:]
    found = [(m.start(), _unnest(grader, _clean_stated(_stated_text(text, m)))) for m in _STATED.finditer(text)]
    found += [(pos, _clean_stated(content)) for pos, content in _last_boxed(text, grader)]
    for _, cand in sorted(found, key=lambda pc: pc[0], reverse=True):
        if _states_answer(grader, cand):
            return cand
    return None


def _number(s: str) -> Fraction | None:
    """Parse a GSM8K-style number ("$1,000.00", "18%", "-3/4") to a Fraction."""
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("{,}", ",")
    frac = re.fullmatch(r"\s*\\[dt]?frac\{(-?\d+)\}\{(\d+)\}\s*", s)
    if frac:
        s = f"{frac.group(1)}/{frac.group(2)}"
    m = _NUMBER.search(s)
    if m is None:
        return None
    tok = m.group(0).replace(",", "")
    if len(tok) > 400:
        return None
    try:
        if "/" in tok:
            num, den = tok.split("/")
            return Fraction(int(num), int(den)) if int(den) else None
        return Fraction(Decimal(tok))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None


def _format_number(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    d = Decimal(x.numerator) / Decimal(x.denominator)
    return format(d.normalize(), "f")


def _csqa_letter(ans: str) -> str | None:
    ans = ans.strip().strip("*").strip()
    for pat in _LETTER_PATTERNS:
        m = pat.match(ans)
        if m:
            return m.group(1).upper()
    return None


def _unmarked(text: str) -> str | None:
    """A CSQA reply without any marker: a short one ("B", "(B) rope") is its answer; a longer one names the choice
    it opens with ("B) bookstore is where ..."); a list of choices ("A: coffee shop / C: table") states nothing."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    listed = sum(bool(_CHOICE_LINE.match(line)) for line in lines)
    if len(text.strip()) < 40 and listed <= 1:
        stated = _clean_stated(lines[-1])
        return None if not stated or _SELF_VERDICT.search(stated) else stated
    opening = _CHOICE_LINE.match(lines[0])
    return _one_letter(text, re.match(r"\s*\(?([A-E])", text), 0) if opening and listed == 1 else None


def _one_letter(text: str, m: re.Match, start: int) -> str | None:
    """The letter ``m`` names (its last group that matched), unless its sentence (from ``start``) names another
    letter or calls itself wrong ("I think it's (B) or (C)", "B: cabinet is incorrect because ...")."""
    letter = next(g for g in reversed(m.groups()) if g)
    end = _SENTENCE_END.search(text, m.end())
    sentence = text[start : end.start() if end else len(text)]
    others = {x for x in _LETTER_NAMED.findall(text[m.end() : end.start() if end else len(text)])} - {letter}
    return None if others or _SAYS_WRONG.search(sentence) else letter


def extract_answer(task: str, text: str, faults: GraderFaults | None = None) -> str | None:
    """Extract the final answer a model stated in ``text``.

    GSM8K returns the normalised number ("1,000.00" -> "1000"); MATH returns the LaTeX of the
    answer; CSQA returns a letter ``A``-``E``, or the stated text when it is not a letter (mapped
    to a letter by :func:`is_correct`, which knows the choices). ``None`` when nothing is stated,
    and when the grader raised (recorded in ``faults``; raised in strict mode: :mod:`harness.grading_faults`).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    return guarded(lambda: _extract(task_grader(task), text), None, text, faults)


def _extract(grader: Grader, text: str) -> str | None:
    return grader.extract(text, _last_stated(text, grader))


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
    """:meth:`Grader.normalize` of a non-empty answer (stripped, at most ``_MAX_ANSWER`` long)."""
    if answer is None or not str(answer).strip():
        return None
    return grader.normalize(str(answer).strip()[:_MAX_ANSWER])


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
    (:func:`~harness.grading_faults.time_budget`; past it, :class:`~harness.grading_faults.GraderTimeout`)."""
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
    record it (:class:`~harness.grading_faults.GraderFaults`).
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
        return _NUMBER.search(cand) is not None

    def extract(self, text: str, stated: str | None) -> str | None:
        if stated is None:
            return None
        num = _number(stated.rsplit("=", 1)[-1]) if "=" in stated else None
        num = num if num is not None else _number(stated)
        return _format_number(num) if num is not None else None

    def normalize(self, answer: str) -> str | None:
        num = _number(answer)
        return _format_number(num) if num is not None else answer

    def gold(self, doc: dict) -> str:
        return str(doc["answer"]).split("####")[-1].strip()

    def match(self, answer: str, gold: str, doc: dict) -> bool:
        a, g = _number(answer), _number(gold)
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
            num = _number(plain)
            if num is not None:
                return _format_number(num)
        return s.rstrip(".")

    def gold(self, doc: dict) -> str:
        if doc.get("answer") not in (None, ""):
            return str(doc["answer"])
        boxed = _boxed_contents(str(doc["solution"]))
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
        return _csqa_letter(cand) is not None or len(cand.split()) <= 10

    def extract(self, text: str, stated: str | None) -> str | None:
        if stated is None:  # a choice picked in prose ("I think it's (B) bookstore"), else a reply without marker
            found = list(_PICKS.finditer(text))
            stated = _one_letter(text, found[-1], found[-1].start()) if found else None
            stated = stated or (None if _STATED.search(text) else _unmarked(text))
        if stated is None or _HEDGE.search(stated):  # "B or C": undecided, no answer
            return None
        return _csqa_letter(stated) or stated

    def normalize(self, answer: str) -> str | None:
        return _csqa_letter(answer) or answer.lower()

    def gold(self, doc: dict) -> str:
        return str(doc["answerKey"]).strip().upper()

    def letter(self, answer: str, doc: dict) -> str | None:
        """The choice ``answer`` names: its letter, or the letter of the choice whose exact text it is."""
        letter = _csqa_letter(answer)
        if letter is None:
            wanted = answer.strip().strip(".").lower()
            bare = re.sub(r"^(?:a|an|the)\s+", "", wanted)  # "A snow storm": choice text "snow storm"
            texts = {k: v.strip().lower() for k, v in csqa_choices(doc).items()}
            letter = next((k for k, v in texts.items() if v == wanted), None)
            letter = letter or next((k for k, v in texts.items() if v == bare), None)
        return letter

    def match(self, answer: str, gold: str, doc: dict) -> bool:
        return self.letter(answer, doc) == gold
