"""What the provenance record costs: building it for a 10-question default-model GSM8K run, and hashing weights.

Two measurements, each cold (empty digest cache: a temporary ``MALT_CACHE`` for the digest cache only, so the
user's cache is untouched) and warm (the digests on record, keyed by path, size and mtime):

1. ``record``: :func:`harness.run.runner.spec_provenance` of ``malt-eval --tasks malt_gsm8k --seeds 1 --subset 10``
   on the default model (``qwen2.5-coder-0.5b``): questions drawn, prompts, plan, settings, package versions,
   git commit. The embedded model's weights digest is its GGUF's sha256 (verified when assembled), so no weight
   file is read here.
2. ``weights``: hashing the default model's weight files as a local model folder is hashed (``--model DIR``):
   the converted bf16 folder in the model cache when it is there, else the embedded GGUF's installed parts
   (the same bytes the converted copy is made from). Cold is sha256 over every byte; warm reads the cache.

The share of a run: the time of (1) (plus (2) when the model is passed as a folder) divided by the run's own wall
time, which the results file holds per task as ``malt.wall_time`` (seconds). Pass a finished run's results file
with ``--results FILE`` to print the share; this script never runs a model.

    python bench/provenance_cost.py [--results OUT/results_<time>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.core.digests import file_digest  # noqa: E402
from harness.core.runfiles import cache_dir
from harness.inference.models import DEFAULT_MODEL, EMBEDDED, part_path


def processor() -> str:
    """``lscpu``'s model name (or the platform's processor)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown"


def weight_files() -> tuple[str, list[Path]]:
    """The default model's weight files: the converted folder's, else the GGUF parts."""
    converted = cache_dir() / "models" / DEFAULT_MODEL
    if (converted / "config.json").is_file():
        return f"converted folder {converted}", sorted(p for p in converted.iterdir() if p.is_file())
    parts = [part_path(pkg, rel) for pkg, rel in EMBEDDED[DEFAULT_MODEL].parts]
    return "embedded GGUF parts (installed packages)", parts


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--results", help="a finished run's results file: print the share of its wall time")
    args = parser.parse_args()
    from harness.run.runner import spec_provenance
    from harness.spec import EvalSpec

    what, files = weight_files()  # resolved in the real model cache, before the digest cache moves
    size = sum(p.stat().st_size for p in files)
    spec = EvalSpec(tasks="malt_gsm8k", seeds=1, subset=10, agents="g,v,r")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MALT_CACHE"] = tmp  # an empty digest cache (digests.json), nothing else is read from it
        record = [timed(lambda: spec_provenance(spec, lambda _: None)) for _ in range(2)]
        cold = timed(lambda: [file_digest(p) for p in files])
        warm = timed(lambda: [file_digest(p) for p in files])
    print(f"# provenance cost ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {processor()})")
    print("command: python bench/provenance_cost.py" + (f" --results {args.results}" if args.results else ""))
    print(f"record of a 10-question {DEFAULT_MODEL} GSM8K run: cold {record[0]:.3f} s, warm {record[1]:.3f} s")
    print(
        f"weights ({what}: {len(files)} files, {size / 1e6:.0f} MB): cold {cold:.2f} s "
        f"({size / 1e6 / max(cold, 1e-9):.0f} MB/s), warm {warm * 1000:.1f} ms"
    )
    if args.results:
        wall = sum(json.loads(Path(args.results).read_text())["malt"]["wall_time"].values())
        print(f"share of the run's {wall:.1f} s: record {record[1] / wall:.3%} warm, {record[0] / wall:.3%} cold")


if __name__ == "__main__":
    main()
