"""Builds Llama-shaped models with random weights for the GPU benchmarks, offline.

Throughput and memory depend on a model's shape, not its weights, and the device machine can
receive only 64 MiB: so the benchmark builds SmolLM2-135M's architecture (its ``config.json``
and tokenizer, copied from the converted demo model) and SmolLM2-1.7B's (its published shape)
with random bf16 weights, instead of shipping the pretrained weights.

    python benchmarks/gpu_models.py --tokenizer DIR --out /tmp/models
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# SmolLM2-1.7B's shape (HuggingFaceTB/SmolLM2-1.7B config.json); the rest as the 135M model.
SMOLLM2_1_7B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24, "num_attention_heads": 32,
                "num_key_value_heads": 32, "head_dim": 64, "rope_parameters": {"rope_theta": 130000.0,
                                                                             "rope_type": "default"}}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def build(tokenizer_dir: Path, out: Path, name: str, overrides: dict) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = out / name
    if (target / "config.json").is_file():
        return target
    config = json.loads((tokenizer_dir / "config.json").read_text()) | overrides
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(target), dtype=torch.bfloat16)
    model.save_pretrained(target)
    for f in TOKENIZER_FILES:
        if (tokenizer_dir / f).is_file():
            shutil.copy(tokenizer_dir / f, target / f)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params / 1e6:.0f}M parameters -> {target}")
    return target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", type=Path, required=True, help="folder with config.json and the tokenizer files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    build(args.tokenizer, args.out, "smollm2-135m", {})
    build(args.tokenizer, args.out, "smollm2-1.7b", SMOLLM2_1_7B)


if __name__ == "__main__":
    main()
