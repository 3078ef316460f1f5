"""A base model's architecture (``config.json`` values), found offline without importing ML libraries.

The plan's memory estimate needs layer counts and widths, not weights. Sources, in order: a
model folder, the converted copy of a packaged model in the shared cache, the header of the
packaged GGUF file (read with ``struct``: the ``gguf`` package's reader takes seconds), and
the local Hugging Face cache. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from levcustom.workspace import model_cache_dir

# GGUF value types (gguf spec): fixed-size scalars by struct format; 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def find_model_dir(base_model: str, root: Path) -> Path | None:
    """The HF-format folder of ``base_model`` already on disk (a repository folder, the converted copy
    of a packaged GGUF, or an HF cache snapshot), or None. Never converts or downloads."""
    folder = Path(base_model) if os.path.isabs(base_model) else root / base_model
    converted = model_cache_dir() / "models" / base_model.replace("/", "--")
    for candidate in (folder, converted):
        if (candidate / "config.json").is_file():
            return candidate
    found = _hf_cache_snapshots(base_model)
    return found[-1] if found else None


def find_model_config(base_model: str, model_sources: dict[str, Any], root: Path) -> dict[str, Any] | None:
    """The HF ``config.json`` of ``base_model`` (or its GGUF equivalent), or None when none is on disk."""
    folder = find_model_dir(base_model, root)
    if folder is not None:
        return _read_json(folder / "config.json")
    source = model_sources.get(base_model)
    if source:
        spec = importlib.util.find_spec(source["package"])
        if spec is not None and spec.origin is not None:
            gguf = Path(spec.origin).parent / source["gguf_file"]
            if gguf.is_file():
                return gguf_config(gguf)
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _hf_cache_snapshots(repo_id: str) -> list[Path]:
    """The model's snapshot folders in the local HF cache that hold a config.json, oldest first."""
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
               / "hub")
    snapshots = hub / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return [f.parent for f in found]


def _read(f: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    return struct.unpack(fmt, f.read(size))[0]


def _string(f: BinaryIO) -> str:
    return f.read(_read(f, "<Q")).decode("utf-8", errors="replace")


def _value(f: BinaryIO, vtype: int):
    """A scalar or string value; arrays are skipped and return their length."""
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        etype, count = _read(f, "<I"), _read(f, "<Q")
        if etype in _SCALARS:
            f.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
        else:
            for _ in range(count):
                _value(f, etype)
        return count
    raise ValueError(f"unknown GGUF value type {vtype}")


def gguf_metadata(path: Path) -> tuple[dict[str, Any], list[str]]:
    """A GGUF file's key-values (arrays as their lengths) and tensor names, from its header only."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        _read(f, "<I")  # version
        n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
        meta = {}
        for _ in range(n_kv):
            key = _string(f)
            meta[key] = _value(f, _read(f, "<I"))
        names = []
        for _ in range(n_tensors):
            names.append(_string(f))
            f.seek(8 * _read(f, "<I") + 4 + 8, 1)  # dims, type, offset
    return meta, names


def gguf_config(path: Path) -> dict[str, Any] | None:
    """The ``config.json`` values the memory estimate needs, from a GGUF header (Llama-family keys)."""
    try:
        meta, names = gguf_metadata(path)
    except (OSError, ValueError, struct.error):
        return None
    arch = meta.get("general.architecture")
    if not arch or f"{arch}.block_count" not in meta:
        return None
    heads = meta[f"{arch}.attention.head_count"]
    hidden = meta[f"{arch}.embedding_length"]
    return {
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": meta[f"{arch}.block_count"],
        "intermediate_size": meta[f"{arch}.feed_forward_length"],
        "num_attention_heads": heads,
        "num_key_value_heads": meta.get(f"{arch}.attention.head_count_kv", heads),
        "head_dim": meta.get(f"{arch}.rope.dimension_count", hidden // heads),
        "vocab_size": meta.get(f"{arch}.vocab_size", meta.get("tokenizer.ggml.tokens")),
        "tie_word_embeddings": "output.weight" not in names,
    }
