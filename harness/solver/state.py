"""The one state object that flows through the solver steps, the sample logs and the MALT trees."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.inference.backends.base import Messages
from harness.tasks.grading import GraderFaults, extract_answer

_ROLES = ("generator", "verifier", "refiner")


@dataclass
class Turn:
    """One role's call: the messages it saw, the text it wrote and the answer extracted from it."""

    role: str
    messages: Messages
    text: str
    answer: str | None
    n_tokens: int
    truncated: bool = False
    prompt_truncated: bool = False
    issues: list[str] = field(default_factory=list)  # why this turn may have gone wrong (sample logs)
    correct: bool | None = None  # the answer graded against the reference (set by evaluation; None: not graded)
    grader_fault: str | None = None  # "error": the grader raised reading the text (its answer is None)


def read_answer(task: str, text: str) -> tuple[str | None, str | None]:
    """The answer stated in ``text`` and the grader's fault reading it (:meth:`GraderFaults.kind`, ``None``: none)."""
    faults = GraderFaults()
    answer = extract_answer(task, text, faults)
    return answer, faults.kind()


@dataclass
class SolveState:
    """One pipeline (one vote) on one question."""

    task: str
    doc: dict
    doc_id: int
    question: str
    sample: int = 0
    turns: dict[str, Turn] = field(default_factory=dict)
    final_turn: str | None = None  # set by steps other than the roles (debate): the turn that answers
    prompt: str | None = None  # a finished prompt the generator answers as it is (an lm-eval task's context)

    @property
    def answer(self) -> str | None:
        """The system's answer: the last answering role's.

        ``final_turn`` set: that turn's answer. Refiner present: its answer. Else the verifier's
        stated (corrected) answer when it states one, else the generator's.
        """
        if self.final_turn is not None:
            return self.turns[self.final_turn].answer
        if "refiner" in self.turns:
            return self.turns["refiner"].answer
        if "verifier" in self.turns and self.turns["verifier"].answer is not None:
            return self.turns["verifier"].answer
        gen = self.turns.get("generator")
        return gen.answer if gen else None

    @property
    def final_text(self) -> str:
        """Text of the last role that ran."""
        return list(self.turns.values())[-1].text if self.turns else ""

    @classmethod
    def from_dict(cls, task: str, doc: dict, doc_id: int, data: dict) -> SolveState:
        """A logged state (:meth:`to_dict`) again, every turn's answer read anew from its text by the current
        grader. Turns other than the three roles are debate rounds: the last one answers. ``ValueError``: a turn
        without its text (a log written without the texts)."""
        turns = {}
        for name, t in data["turns"].items():
            text = t.get("text") if isinstance(t, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"row {doc_id}: turn {name!r} has no text (written without --log-samples?)")
            answer, fault = read_answer(task, text)
            turns[name] = Turn(
                name,
                t.get("messages") or [],
                text,
                answer,
                int(t.get("n_tokens", 0)),
                truncated=bool(t.get("truncated", False)),
                prompt_truncated=bool(t.get("prompt_truncated", False)),
                issues=list(t.get("issues") or []),
                grader_fault=fault,
            )
        final = None if set(turns) <= set(_ROLES) else next(reversed(turns), None)
        return cls(task, doc, doc_id, "", int(data.get("sample", 0)), turns, final)

    def to_dict(self) -> dict:
        """JSON-ready form used in sample logs."""
        return {
            "doc_id": self.doc_id,
            "sample": self.sample,
            "turns": {k: asdict(v) for k, v in self.turns.items()},
            "answer": self.answer,
        }
