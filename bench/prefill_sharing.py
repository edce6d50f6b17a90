"""n samples of one prompt: one shared prefill (our hf backend) vs the prompt repeated n times.

    python bench/prefill_sharing.py [--model smollm2-135m] [--prompts 4] [--n 3] [--max-new-tokens 32]

MALT trees and votes ask for n samples of one prompt; the hf backend prefills each prompt once and
decodes the n samples from copies of its KV cache (``HFBackend._prefill``). Prints both wall times.
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.inference.backends.base import SamplingParams
from harness.inference.backends.hf import HFBackend
from harness.inference.models import resolve_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    be = HFBackend(resolve_model(a.model), batch_size=a.prompts * a.n, dtype="float32")
    text = "A farmer has apples and oranges and sells them at the market. " * 40
    prompts = [[{"role": "user", "content": f"Problem {i}: {text}"}] for i in range(a.prompts)]
    n_prompt = len(be.tokenizer(be.render(prompts[0]))["input_ids"])
    for _ in range(2):
        t = time.time()
        be.generate(prompts, SamplingParams(a.max_new_tokens, 0.7, 1.0, a.n, 0))
        shared = time.time() - t
        t = time.time()
        be.generate([p for p in prompts for _ in range(a.n)], SamplingParams(a.max_new_tokens, 0.7, 1.0, 1, 0))
        repeated = time.time() - t
        print(
            f"{a.prompts} prompts x {a.n} samples, {n_prompt} prompt tokens, {a.max_new_tokens} new: "
            f"shared prefill {shared:.2f} s, repeated prompts {repeated:.2f} s, {repeated / shared:.2f}x"
        )


if __name__ == "__main__":
    main()
