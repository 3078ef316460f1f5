"""Peak training memory of LoRA / QLoRA on one device, and the per-device batch that fits.

Pure arithmetic over ``config.json`` values and the resolved config (no torch), so ``plan``
can show it and refuse a config that cannot fit. It counts what autograd keeps for a
decoder-only (Llama-family) model with frozen base weights:

* weights at the loading precision (nf4: 4.127 bits a parameter with double quantization;
  int8: 1 byte; embeddings, norms and the output layer stay unquantized and, for k-bit
  training, are upcast to fp32 by peft's ``prepare_model_for_kbit_training``);
* LoRA parameters in fp32 with their gradients and AdamW's two moments (16 bytes each);
* activations per token and layer: the fp32 inputs of both RMSNorms, the inputs LoRA's A
  matrices keep (one dropout copy and mask per adapted module when dropout > 0, one shared
  input per projection group otherwise), the query/key/value/output tensors SDPA keeps, and
  the MLP's gate, SiLU and up tensors. With gradient checkpointing only each layer's input is
  kept, plus one layer recomputed during backward. (Checked against the bytes autograd's
  saved-tensor hooks see for SmolLM2-135M: within 3%.) On CPU, dropout is not fused: its
  mask is a tensor of the activation dtype, not of bytes;
* the loss: trl's fused LM head never holds the full logits. It projects tiles of at most
  4,096 positions x 32,768 vocabulary entries into one reused buffer in the compute dtype. On
  CUDA a Triton kernel folds each tile in registers, so the buffer is all; elsewhere the torch
  fallback keeps about five fp32 copies of the tile (the backward's logits, log-probabilities,
  probabilities and gradient). Add the gathered hidden states and their fp32 gradient;
* DPO runs chosen and rejected rows together: twice the rows per batch;
* the runtime: on CPU the trainer's Python heap (tokenizer, dataset, trl state), measured at
  about 0.15 GiB; on CUDA the context and cuBLAS workspaces outside PyTorch's allocator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from levcustom.config.models import HardwareConfig, TrainingConfig

GIB = 1024**3
_DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
_NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # 4-bit codes + 8-bit absmax per 64 + fp32 per 256 blocks
_TRAINABLE_BYTES = 4 + 4 + 8  # fp32 LoRA weight, gradient, AdamW exp_avg + exp_avg_sq
# Memory a CUDA process holds outside PyTorch's allocator (context, cuBLAS workspaces).
_RUNTIME_OVERHEAD = {"cuda": 0.75 * GIB, "cpu": 0.15 * GIB, "mps": 0.25 * GIB}
# trl's fused LM head (trl.kernels.chunked_logprob): TOKEN_CHUNK_SIZE x _CHUNKED_LOGPROB_CHUNK_SIZE tiles
_LOSS_TILE_TOKENS, _LOSS_TILE_VOCAB = 4096, 32768
_LOSS_TILE_COPIES = {"cuda": 0, "cpu": 5 * 4, "mps": 5 * 4}  # fp32 bytes per tile entry beyond the buffer
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a Llama-family decoder that decide its memory."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From an HF ``config.json`` (raises KeyError when a dimension is missing)."""
        heads = config["num_attention_heads"]
        return cls(hidden=config["hidden_size"], layers=config["num_hidden_layers"],
                   intermediate=config["intermediate_size"], heads=heads,
                   kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   vocab=config["vocab_size"], tied=bool(config.get("tie_word_embeddings", False)))

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder block."""
        h, q, kv, f = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, f), "up_proj": (h, f), "down_proj": (f, h)}

    @property
    def linear_params(self) -> int:
        return self.layers * sum(i * o for i, o in self.module_dims().values())

    @property
    def other_params(self) -> int:
        """Embeddings, output layer and norms (never quantized)."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + (2 * self.layers + 1) * self.hidden

    @property
    def params(self) -> int:
        return self.linear_params + self.other_params


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device at the peak of a training step, by component."""

    weights: float
    trainable: float
    activations: float
    loss: float
    overhead: float
    rows: int
    seq_len: int

    @property
    def total(self) -> float:
        return self.weights + self.trainable + self.activations + self.loss + self.overhead

    def describe(self) -> str:
        parts = (("weights", self.weights), ("LoRA+optimizer", self.trainable), ("activations", self.activations),
                 ("loss", self.loss), ("runtime", self.overhead))
        detail = ", ".join(f"{name} {gib(v)}" for name, v in parts if v)
        return f"{gib(self.total)} ({detail})"


def gib(n: float) -> str:
    """Bytes for people: GiB, or MiB below one GiB (tiny models)."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 1024**2:.1f} MiB"


def target_modules(target: str | list[str]) -> tuple[str, ...]:
    """The decoder-block linears LoRA adapts (``all-linear``: all of them; the output layer never)."""
    if target == "all-linear":
        return LINEAR_MODULES
    names = [target] if isinstance(target, str) else target
    return tuple(m for m in LINEAR_MODULES if any(m == n or m.endswith(n) for n in names))


def lora_params(shape: ModelShape, rank: int, target: str | list[str]) -> int:
    dims = shape.module_dims()
    return shape.layers * sum(rank * sum(dims[m]) for m in target_modules(target))


def estimate_memory(shape: ModelShape, training: TrainingConfig, hardware: HardwareConfig, *,
                    per_device_batch: int, method: str = "sft") -> MemoryEstimate:
    """Peak bytes on one device for ``per_device_batch`` rows of ``training.max_length`` tokens."""
    act = _DTYPE_BYTES[hardware.precision]
    quant = hardware.quantization
    if quant == "none":
        weights = shape.params * act
    else:
        per_param = _NF4_BYTES if quant == "nf4" else 1.0
        weights = shape.linear_params * per_param + shape.other_params * 4  # unquantized parts upcast to fp32
    dist = hardware.distributed
    if dist.strategy in ("fsdp", "deepspeed-zero3") and dist.num_processes > 1:
        # Sharded: each device keeps its shard, plus one block gathered at a time.
        weights = weights / dist.num_processes + weights * (shape.linear_params / shape.layers) / shape.params
    modules = target_modules(training.lora.target_modules)
    trainable = lora_params(shape, training.lora.r, training.lora.target_modules) * _TRAINABLE_BYTES
    rows = per_device_batch * (2 if method == "dpo" else 1)
    tokens = rows * training.max_length
    mask = 1 if hardware.device == "cuda" else act  # fused dropout keeps a bool mask; CPU keeps a float one
    per_layer = _layer_activation_bytes(shape, modules, training.lora.dropout, act, mask, training.lora.r)
    if hardware.gradient_checkpointing:
        activations = tokens * (shape.layers * shape.hidden * act + per_layer)
    else:
        activations = tokens * shape.layers * per_layer
    activations += tokens * shape.hidden * (act + 4)  # embedding output, final norm input (fp32)
    tile = min(tokens, _LOSS_TILE_TOKENS) * min(shape.vocab, _LOSS_TILE_VOCAB)
    loss = tile * (act + _LOSS_TILE_COPIES[hardware.device]) + tokens * shape.hidden * (act + 4)
    return MemoryEstimate(weights=weights, trainable=trainable, activations=activations, loss=loss,
                          overhead=_RUNTIME_OVERHEAD[hardware.device], rows=rows, seq_len=training.max_length)


def _layer_activation_bytes(shape: ModelShape, modules: tuple[str, ...], dropout: float, act: int, mask: int,
                            rank: int) -> float:
    """Bytes autograd keeps per token for one decoder block (see the module docstring)."""
    h, q, kv, f = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    dims = shape.module_dims()
    norms = 2 * h * 4  # RMSNorm computes in fp32 and keeps its input
    attention = (2 * q + 2 * kv + q) * act  # SDPA keeps q, k, v and its output; o_proj gets a contiguous copy
    mlp = 3 * f * act  # gate, silu(gate), up (their product is kept only as down_proj's LoRA input)
    if dropout > 0:  # each adapted module keeps its own dropout output and mask
        lora_in = sum(dims[m][0] * (act + mask) for m in modules)
    else:  # modules reading the same tensor share it
        lora_in = sum({dims[m][0] for m in modules if m in ("q_proj", "k_proj", "v_proj")}) * act
        lora_in += sum({dims[m][0] for m in modules if m in ("gate_proj", "up_proj")}) * act
        lora_in += sum(dims[m][0] for m in modules if m in ("o_proj", "down_proj")) * act
    lora_mid = len(modules) * rank * 4
    return norms + attention + mlp + lora_in + lora_mid


@dataclass(frozen=True)
class BatchChoice:
    """How the effective batch is split on one device, and whether it fits."""

    per_device: int
    accumulation: int
    effective: int
    estimate: MemoryEstimate
    budget: float

    @property
    def fits(self) -> bool:
        return self.estimate.total <= self.budget


def effective_batch(training: TrainingConfig, hardware: HardwareConfig) -> int:
    """Rows per optimizer step: ``training.batch_size`` when set, else the profile's batch x accumulation
    x processes."""
    if isinstance(training.batch_size, int):
        return training.batch_size
    return hardware.per_device_batch_size * hardware.gradient_accumulation_steps * hardware.distributed.num_processes


def choose_batch(shape: ModelShape, training: TrainingConfig, hardware: HardwareConfig, method: str) -> BatchChoice:
    """The per-device batch and gradient accumulation for this profile.

    With ``training.batch_size`` set: the largest per-device batch (at most the profile's) that
    divides the effective batch and fits in memory. Otherwise the profile's own values.
    """
    effective = effective_batch(training, hardware)
    if not isinstance(training.batch_size, int):
        return _choice(shape, training, hardware, method, effective, hardware.per_device_batch_size)
    per_device = largest_fitting(shape, training, hardware, method, effective, cap=hardware.per_device_batch_size)
    return _choice(shape, training, hardware, method, effective, per_device or 1)


def largest_fitting(shape: ModelShape, training: TrainingConfig, hardware: HardwareConfig, method: str,
                    effective: int, cap: int | None = None) -> int | None:
    """The largest per-device batch (at most ``cap``) dividing each process's share of ``effective`` that fits."""
    per_process = effective // hardware.distributed.num_processes
    for b in range(min(cap or per_process, per_process), 0, -1):
        if per_process % b == 0 and _choice(shape, training, hardware, method, effective, b).fits:
            return b
    return None


def _choice(shape: ModelShape, training: TrainingConfig, hardware: HardwareConfig, method: str, effective: int,
            per_device: int) -> BatchChoice:
    est = estimate_memory(shape, training, hardware, per_device_batch=per_device, method=method)
    accumulation = max(1, effective // (per_device * hardware.distributed.num_processes))
    return BatchChoice(per_device, accumulation, effective, est, hardware.memory_gb * GIB)
