"""An OpenAI-compatible backend: ``POST /v1/chat/completions`` of a vLLM (or any compatible) server.

One request per prompt with ``n`` samples (the server shares the prompt's prefill across them);
the prompts of a call are sent concurrently by a thread pool bounded by ``batch_size``. Connection
errors, timeouts, 429 and 5xx answers are retried with exponential backoff by the ``openai`` client;
what still fails is one :class:`~harness.core.errors.MaltError` line.

``model`` is the server's model name (``vllm serve BASE`` serves ``BASE``; ``--served-model-name``
renames it); nothing is resolved or downloaded locally. LoRA adapters are served by vLLM as models of
their own (``vllm serve BASE --enable-lora --lora-modules verifier=DIR ...``), so a role's adapter is
that served name: ``load_adapter(role, "verifier")`` sends the role's requests to model ``verifier``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from harness.core.errors import MaltError, ModelError
from harness.inference.backends import register_backend
from harness.inference.backends.base import Backend, Completion, Prompt, SamplingParams

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def split_tokens(total: int, texts: Sequence[str], truncated: Sequence[bool], max_tokens: int) -> list[int]:
    """Per-sample token counts from a response's total ``completion_tokens``.

    The API reports one total for the ``n`` choices of a request. A choice cut at the limit used
    exactly ``max_tokens``; the rest of the total is shared by text length (largest remainder),
    so the counts always sum to the server's total. Exact for ``n == 1``.
    """
    counts = [max_tokens if t else 0 for t in truncated]
    rest = max(0, total - sum(counts))
    free = [i for i, t in enumerate(truncated) if not t]
    if not free:
        return counts
    weights = [len(texts[i]) + 1 for i in free]
    shares = [rest * w / sum(weights) for w in weights]
    floors = [int(s) for s in shares]
    by_remainder = sorted(range(len(free)), key=lambda k: floors[k] - shares[k])
    for k in by_remainder[: rest - sum(floors)]:
        floors[k] += 1
    for i, c in zip(free, floors, strict=True):
        counts[i] = c
    return counts


@register_backend("openai")
class OpenAIBackend(Backend):
    """Client of an OpenAI-compatible chat-completions server.

    Args:
        model: the served model name; ``None`` takes the server's first model (``GET /models``).
        batch_size: most requests in flight at once.
        base_url: the server's API root (default ``$OPENAI_BASE_URL``, else ``http://127.0.0.1:8000/v1``).
        api_key: default ``$OPENAI_API_KEY``, else ``"EMPTY"`` (vLLM without ``--api-key``).
        dtype: ignored (the server decides); accepted so every backend takes the same options.
        timeout: seconds per request.
        max_retries: retries of a failed request (connection error, timeout, 429, 5xx), with backoff.
    """

    remote = True

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = 16,
        base_url: str | None = None,
        api_key: str | None = None,
        dtype: str = "auto",
        timeout: float = 600.0,
        max_retries: int | None = None,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise ModelError("the openai backend needs the openai package: pip install 'openai>=1.0'") from None
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        retries = int(os.environ.get("MALT_OPENAI_RETRIES", "3")) if max_retries is None else max_retries
        self.client = openai.OpenAI(
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            base_url=self.base_url,
            timeout=timeout,
            max_retries=retries,
        )
        self.batch_size = max(1, batch_size)
        self.adapters: dict[str, str] = {}
        served = self._served_models()
        if model is None:
            if not served:
                raise ModelError(f"{self.base_url} lists no models: pass --model (the served model name)")
            model = served[0]
        elif served and model not in served:
            raise ModelError(f"{self.base_url} does not serve model {model!r} (it serves: {', '.join(served)})")
        self.served = served
        self.model_id = model
        self._pool = ThreadPoolExecutor(max_workers=self.batch_size, thread_name_prefix="malt-openai")

    def _error(self, exc: Exception) -> MaltError:
        import openai

        if isinstance(exc, openai.APIStatusError):
            body = exc.body.get("message", exc.body) if isinstance(exc.body, dict) else exc.body
            return MaltError(f"server {self.base_url} answered {exc.status_code}: {_one_line(body or exc.message)}")
        cause = exc.__cause__ or exc.__context__ or exc
        return MaltError(
            f"cannot reach the OpenAI-compatible server at {self.base_url} ({_one_line(cause, 160)}); "
            "is it running? (e.g. vllm serve MODEL)"
        )

    def _served_models(self) -> list[str]:
        """Model ids from ``GET /models`` (empty where a server does not implement it)."""
        import openai

        try:
            return [m.id for m in self.client.models.list()]
        except openai.NotFoundError:
            return []
        except openai.OpenAIError as exc:
            raise self._error(exc) from None

    def load_adapter(self, name: str, path: str) -> None:
        """Map role ``name`` to the served LoRA model ``path`` (a name given to ``--lora-modules``)."""
        if self.served and path not in self.served:
            raise ModelError(
                f"{self.base_url} serves no adapter named {path!r} (it serves: {', '.join(self.served)}); "
                f"start vLLM with --enable-lora --lora-modules {path}=ADAPTER_DIR"
            )
        self.adapters[name] = path

    def _request(self, messages: Prompt, params: SamplingParams, model: str, seed: int | None) -> list[Completion]:
        import openai

        sampling = dict(
            n=params.n, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens
        )
        if params.stop:
            sampling["stop"] = list(params.stop)
        try:  # a finished prompt text (an lm-eval context) goes to /completions, a conversation to /chat/completions
            if isinstance(messages, str):
                resp = self.client.completions.create(model=model, prompt=messages, seed=seed, **sampling)
            else:
                resp = self.client.chat.completions.create(model=model, messages=messages, seed=seed, **sampling)
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        choices = sorted(resp.choices, key=lambda c: c.index)
        if len(choices) != params.n:
            raise MaltError(f"server {self.base_url} returned {len(choices)} choices, asked for n={params.n}")
        texts = [(c.text if isinstance(messages, str) else c.message.content) or "" for c in choices]
        cut = [c.finish_reason == "length" for c in choices]
        total = resp.usage.completion_tokens if resp.usage else 0
        counts = split_tokens(total, texts, cut, params.max_new_tokens)
        return [Completion(t, k, truncated=c) for t, k, c in zip(texts, counts, cut, strict=True)]

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, adapter: str | None = None
    ) -> list[list[Completion]]:
        if adapter is not None and adapter not in self.adapters:
            raise ModelError(f"adapter {adapter!r} is not loaded")
        model = self.adapters[adapter] if adapter is not None else self.model_id
        # Distinct seed ranges per prompt (vLLM seeds the n samples of a request seed, seed+1, ...).
        seeds = [None if params.seed is None else params.seed + i * params.n for i in range(len(prompts))]
        futures = [self._pool.submit(self._request, m, params, model, s) for m, s in zip(prompts, seeds, strict=True)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:  # the first error ends the call: requests not yet sent are dropped
                f.cancel()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
