"""The one state object that flows through the solver steps, the sample logs and the MALT trees."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.backends.base import Messages


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

    def to_dict(self) -> dict:
        """JSON-ready form used in sample logs."""
        return {
            "doc_id": self.doc_id,
            "sample": self.sample,
            "turns": {k: asdict(v) for k, v in self.turns.items()},
            "answer": self.answer,
        }
