"""A scripted backend for unit tests: a Python function answers every prompt; calls are recorded."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.inference.backends import register_backend
from harness.inference.backends.base import Backend, Completion, Prompt, SamplingParams, cut_at_stop

Responder = Callable[[Prompt, int], "str | Completion"]


@register_backend("scripted")
class ScriptedBackend(Backend):
    """Answers with ``responder(messages, sample_index)`` (a text, or a full :class:`Completion`; a text is cut
    at the call's ``stop`` strings); keeps a log of every ``generate`` call."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder or (lambda messages, i: "Final Answer: 0")
        self.calls: list[tuple[int, SamplingParams, str | None]] = []
        self.adapters: dict[str, str] = {}

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        self.calls.append((len(prompts), params, adapter))
        out = []
        for msgs in prompts:
            replies = [self.responder(msgs, i) for i in range(params.n)]
            replies = [cut_at_stop(r, params.stop)[0] if isinstance(r, str) else r for r in replies]
            out.append([r if isinstance(r, Completion) else Completion(r, len(r.split())) for r in replies])
        return out

    def load_adapter(self, name: str, path: str) -> None:
        self.adapters[name] = path
