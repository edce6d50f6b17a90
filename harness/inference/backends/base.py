"""The backend interface every inference engine implements: chat messages (or finished prompt texts) in,
n completions out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

Messages = list[dict[str, str]]
#: What a backend answers: chat messages (rendered with the model's chat template), or a finished prompt text
#: sent as it is (an lm-eval task's context, already built by lm-eval with or without a chat template).
Prompt = Messages | str
#: The MALT paper's sampling temperature: the default of every sampled step (evaluation votes, trees).
PAPER_TEMPERATURE = 0.3


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: greedy when ``temperature`` is 0, else nucleus sampling.

    The whole recipe: backends add nothing of their own or of the model's ``generation_config`` (no top-k,
    no repetition penalty), so the same params sample the same distribution on every backend.
    ``stop``: strings that end a completion (lm-eval's ``until``); the text is cut before the first one.
    """

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """One generated text with its token count.

    ``truncated``: generation hit ``max_new_tokens``. ``prompt_truncated``: the prompt did not fit the
    model's context with room for ``max_new_tokens`` and lost its oldest (leftmost) tokens, as lm-eval does.
    """

    text: str
    n_tokens: int
    truncated: bool = False
    prompt_truncated: bool = False


class Backend(ABC):
    """An inference engine holding one base model and, optionally, named LoRA adapters."""

    name: str = "base"
    remote: bool = False  # True: model and adapter names are a server's, not local paths to resolve

    @abstractmethod
    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions for each prompt, in prompt order.

        Args:
            prompts: chat conversations, each a list of ``{"role", "content"}`` messages, or finished prompt
                texts (no chat template is applied to a ``str``).
            params: sampling parameters shared by the whole call.
            adapter: name of a loaded adapter to generate with, or ``None`` for the base model.
        """

    def load_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter under ``name`` (backends without adapter support refuse)."""
        raise NotImplementedError(f"backend {self.name!r} does not support adapters")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release the engine's resources."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` before the first of the ``stop`` strings (lm-eval's rule), and whether one was found."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(ends)], True) if ends else (text, False)
