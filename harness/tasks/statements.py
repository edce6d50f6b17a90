"""What a model's text states: the markers, boxes, verdicts and letters the graders read (:mod:`harness.tasks.grading`
documents the rules; the graders add what their kind of answer needs)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Protocol


class Grader(Protocol):
    """What the statement readers ask of a grader (:class:`harness.tasks.grading.Grader` implements it)."""

    multi_part: bool

    def states_answer(self, cand: str) -> bool: ...  # noqa: D102


_MAX_TEXT = 200_000  # longer texts are graded on their tail only
MAX_ANSWER = 2_000  # an "answer" longer than this is not an answer

# "Final Answer: x", "**Final Answer:** x", "The final answer is x", "The answer is x", "The correct answer is
# x" (or "would be x"), "Correct Answer: x", "The answer to the problem/puzzle/... is x", "the correct answer, which
# is x", "#### x" up to the end
# of line; "Final Answer" alone on its line (a heading) states the paragraph under it. "the final answer, ..." in
# a sentence states nothing.
STATED = re.compile(
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
HEDGE = re.compile(r"(?<![\w'])\(?([A-E])\)?(?:\s*[:.]\s*[^\n/]*?)?\s*(?:\bor\b|\band\b|/)\s*\(?(?!\1)[A-E]\b(?!')")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# between two boxed parts of one answer: separators (",", ";", "and", "\quad"), "$", and the next part's label
_BOX_GAP = re.compile(
    r"[\s$]*(?:,|;|&|\band\b|\\quad|\\qquad|\\text\{\s*and\s*\})?[\s$]*(?:[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?\$?\s*"
)
_BOX_LABEL = re.compile(r"(?<![\\\w])([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*\$?\s*$")  # "x = " before a box
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_LETTER_PATTERNS = [
    re.compile(r"^\(?\s*([A-Ea-e])\s*\)?\s*(?:[:.)\]]|$)"),  # "B", "(B)", "B:", "B.", "b)"
    re.compile(r"^(?i:option|choice|answer)\s*[:.]?\s*\(?([A-E])\)?\b"),  # "Option B", "choice (B) rope"
    re.compile(r"^\(\s*([A-E])\s*\)"),  # "(B) rope"
    re.compile(r"^(?!A\s+[A-Za-z])([A-E])\b"),  # "B rope"; "A snow storm is ..." starts with an article
]
_CHOICE_LINE = re.compile(r"^\s*\(?[A-E]\)?\s*[:.)]")  # "B: bookstore", a line of a listed choice
# CSQA prose without a marker: a phrase that picks ("I think it's", "the best option is", "I'd go with") and then
# one letter as a choice's name: "(B)", or "B" before ")", ":", ",", "." or the end ("B bookstore" is too loose).
PICKS = re.compile(
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


def boxed_contents(text: str) -> list[tuple[int, str]]:
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
    if len(ans) > 2 * MAX_ANSWER:  # not an answer (rejected by length); don't unwrap it level by level
        return ans.strip()
    while True:
        before = ans
        ans = ans.strip()
        inner = boxed_contents(ans)
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
    return after[: end.start() if end else MAX_ANSWER]


def _unnest(grader: Grader, cand: str) -> str:
    """A statement holding another marker ("Final Answer: The answer is (C) garden", "The answer is B. Final
    Answer: C") states what the last of them states, when that is an answer."""
    for _ in range(8):
        inner = STATED.search(cand)
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
    if not cand or len(cand) > MAX_ANSWER or _VERDICT.match(cand) or _SELF_VERDICT.search(cand):
        return False
    if _PLACEHOLDER.fullmatch(cand.strip("\"'“”.")):
        return False
    return grader.states_answer(cand)


def last_stated(text: str, grader: Grader) -> str | None:
    """The last final answer stated in ``text`` by any of the supported markers (see the module docstring)."""
    text = text[-_MAX_TEXT:]
    found = [(m.start(), _unnest(grader, _clean_stated(_stated_text(text, m)))) for m in STATED.finditer(text)]
    found += [(pos, _clean_stated(content)) for pos, content in _last_boxed(text, grader)]
    for _, cand in sorted(found, key=lambda pc: pc[0], reverse=True):
        if _states_answer(grader, cand):
            return cand
    return None


def number(s: str) -> Fraction | None:
    """Parse a GSM8K-style number ("$1,000.00", "18%", "-3/4") to a Fraction."""
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("{,}", ",")
    frac = re.fullmatch(r"\s*\\[dt]?frac\{(-?\d+)\}\{(\d+)\}\s*", s)
    if frac:
        s = f"{frac.group(1)}/{frac.group(2)}"
    m = NUMBER.search(s)
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


def format_number(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    d = Decimal(x.numerator) / Decimal(x.denominator)
    return format(d.normalize(), "f")


def csqa_letter(ans: str) -> str | None:
    ans = ans.strip().strip("*").strip()
    for pat in _LETTER_PATTERNS:
        m = pat.match(ans)
        if m:
            return m.group(1).upper()
    return None


def unmarked(text: str) -> str | None:
    """A CSQA reply without any marker: a short one ("B", "(B) rope") is its answer; a longer one names the choice
    it opens with ("B) bookstore is where ..."); a list of choices ("A: coffee shop / C: table") states nothing."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    listed = sum(bool(_CHOICE_LINE.match(line)) for line in lines)
    if len(text.strip()) < 40 and listed <= 1:
        stated = _clean_stated(lines[-1])
        return None if not stated or _SELF_VERDICT.search(stated) else stated
    opening = _CHOICE_LINE.match(lines[0])
    return one_letter(text, re.match(r"\s*\(?([A-E])", text), 0) if opening and listed == 1 else None


def one_letter(text: str, m: re.Match, start: int) -> str | None:
    """The letter ``m`` names (its last group that matched), unless its sentence (from ``start``) names another
    letter or calls itself wrong ("I think it's (B) or (C)", "B: cabinet is incorrect because ...")."""
    letter = next(g for g in reversed(m.groups()) if g)
    end = _SENTENCE_END.search(text, m.end())
    sentence = text[start : end.start() if end else len(text)]
    others = {x for x in _LETTER_NAMED.findall(text[m.end() : end.start() if end else len(text)])} - {letter}
    return None if others or _SAYS_WRONG.search(sentence) else letter
