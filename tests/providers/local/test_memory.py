"""The plan's memory estimate: parameter counts checked against real models, and the batch split."""

from __future__ import annotations

import json

import pytest

from levcustom.config.models import HardwareConfig, LoraConfig, TrainingConfig
from levcustom.providers.local.memory import (
    GIB,
    ModelShape,
    choose_batch,
    estimate_memory,
    largest_fitting,
    lora_params,
    target_modules,
)

# SmolLM2-135M's config.json values (the demo's base model).
SMOLLM2 = ModelShape(hidden=576, layers=30, intermediate=1536, heads=9, kv_heads=3, head_dim=64, vocab=49152,
                     tied=True)


def training(**kw) -> TrainingConfig:
    base = dict(epochs=1, learning_rate=1e-4, lr_scheduler_type="constant", warmup_ratio=0.0, weight_decay=0.0,
                max_length=512, seed=0, assistant_only_loss=False, completion_only_loss=True,
                lora=LoraConfig(r=8, alpha=16, dropout=0.05, target_modules="all-linear"), logging_steps=1,
                save_steps=10)
    return TrainingConfig(**{**base, **kw})


def hardware(**kw) -> HardwareConfig:
    base = dict(name="gpu", device="cuda", precision="bf16", per_device_batch_size=8, gradient_accumulation_steps=1,
                quantization="none", packing=True, group_by_length=False, gradient_checkpointing=False,
                memory_gb=24, tokens_per_second=1000)
    return HardwareConfig(**{**base, **kw})


def test_parameter_counts_match_real_models(tiny_model):
    import torch
    from peft import LoraConfig as PeftLora
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    shape = ModelShape.from_config(json.loads((tiny_model / "config.json").read_text()))
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert shape.params == sum(p.numel() for p in model.parameters())
    peft = get_peft_model(model, PeftLora(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert lora_params(shape, 4, "all-linear") == trainable
    assert SMOLLM2.params == 134_515_008  # counted from the tensors of the converted SmolLM2-135M-Instruct


def test_estimate_responds_to_each_setting():
    t, hw = training(), hardware()
    full = estimate_memory(SMOLLM2, t, hw, per_device_batch=8)
    assert estimate_memory(SMOLLM2, t, hw, per_device_batch=16).activations == pytest.approx(2 * full.activations)
    checkpointed = estimate_memory(SMOLLM2, t, hardware(gradient_checkpointing=True), per_device_batch=8)
    assert checkpointed.activations < full.activations / 5 and checkpointed.weights == full.weights
    nf4 = estimate_memory(SMOLLM2, t, hardware(quantization="nf4"), per_device_batch=8)
    # 4-bit linears, but embeddings (28M of 135M parameters) stay unquantized, upcast to fp32 for k-bit training.
    assert SMOLLM2.linear_params * 0.5 < nf4.weights < full.weights
    dpo = estimate_memory(SMOLLM2, t, hw, per_device_batch=8, method="dpo")
    assert dpo.rows == 16 and dpo.activations == pytest.approx(2 * full.activations)
    no_dropout = estimate_memory(SMOLLM2, training(lora=LoraConfig(r=8, alpha=16, dropout=0.0,
                                                                   target_modules="all-linear")), hw,
                                 per_device_batch=8)
    assert no_dropout.activations < full.activations
    sharded = estimate_memory(SMOLLM2, t, hardware(distributed={"strategy": "fsdp", "num_processes": 8}),
                              per_device_batch=8)
    assert sharded.weights < full.weights / 4


def test_target_module_names():
    assert target_modules("all-linear") == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj")
    assert target_modules(["q_proj", "v_proj"]) == ("q_proj", "v_proj")
    assert lora_params(SMOLLM2, 8, ["q_proj"]) == 30 * 8 * (576 + 576)


def test_batch_split_picks_the_largest_fitting_divisor():
    t = training(max_length=2048, batch_size=32)
    hw = hardware(memory_gb=12, per_device_batch_size=16)
    choice = choose_batch(SMOLLM2, t, hw, "sft")
    assert choice.fits and choice.per_device * choice.accumulation == 32
    assert 32 % choice.per_device == 0 and choice.per_device < 16
    bigger = estimate_memory(SMOLLM2, t, hw, per_device_batch=2 * choice.per_device)
    assert bigger.total > 12 * GIB  # the next divisor up would not fit
    # Without training.batch_size the profile's own split is used and only checked.
    profile = choose_batch(SMOLLM2, training(max_length=2048), hw, "sft")
    assert (profile.per_device, profile.accumulation, profile.fits) == (16, 1, False)
    assert largest_fitting(SMOLLM2, training(max_length=2048), hw, "sft", 16) == choice.per_device
    assert largest_fitting(SMOLLM2, training(max_length=2048), hardware(memory_gb=0.1), "sft", 16) is None


def test_loss_term_follows_trls_fused_lm_head_tiles():
    from trl.kernels import chunked_logprob
    from trl.trainer import utils as trl_utils

    from levcustom.providers.local import memory

    # The tile the estimate assumes is the one trl's fused LM head allocates.
    assert memory._LOSS_TILE_TOKENS == chunked_logprob.TOKEN_CHUNK_SIZE
    assert memory._LOSS_TILE_VOCAB == trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    t = training()
    cuda = [estimate_memory(SMOLLM2, t, hardware(), per_device_batch=b).loss for b in (16, 32)]
    # Past one tile of 4,096 positions only the hidden states and their gradient grow, never the logits.
    assert cuda[1] - cuda[0] == 16 * 512 * SMOLLM2.hidden * (2 + 4)
    assert cuda[0] < 0.3 * GIB  # one bf16 tile (256 MiB) plus hidden states, not 8,192 x 49,152 logits
    cpu = estimate_memory(SMOLLM2, t, hardware(device="cpu", precision="fp32"), per_device_batch=16).loss
    assert cpu > 5 * cuda[0]  # the torch fallback keeps fp32 copies of the tile


def test_estimate_within_15_percent_of_the_h100_measurements():
    """The peaks measured on one H100 (benchmarks/results/h100, bf16, rows of 512 tokens)."""
    from pathlib import Path

    results = Path(__file__).parents[3] / "benchmarks" / "results" / "h100" / "memory_estimate_cuda_smollm2-135m.json"
    measured = {int(r["setting"].split(",")[0].split()[1]): r["measured_gib"]
                for r in json.loads(results.read_text())["results"]}
    assert set(measured) == {16, 32}
    t = training(max_length=512, completion_only_loss=False)
    for batch, gib in measured.items():
        est = estimate_memory(SMOLLM2, t, hardware(per_device_batch_size=batch, memory_gb=80), per_device_batch=batch)
        assert abs(est.total / GIB / gib - 1) <= 0.15, (batch, est.describe(), gib)
