"""Merge a LoRA adapter into its base model (for ``training.merge`` and GGUF export). Child processes only."""

from __future__ import annotations

from pathlib import Path


def merged_model(model_dir: str, adapter_dir: Path, precision: str):
    """The base model, loaded unquantized at ``precision``, with the adapter's weights added in.

    A QLoRA adapter is merged into the full-precision base, as is usual: merging into 4-bit
    weights would round the update away.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from levcustom.providers.local.train_child import DTYPES

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, DTYPES[precision]))
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def save_merged(model_dir: str, adapter_dir: Path, out: Path, precision: str) -> Path:
    """Write the merged model and the base tokenizer to ``out`` (a loadable model folder)."""
    from transformers import AutoTokenizer

    merged_model(model_dir, adapter_dir, precision).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out
