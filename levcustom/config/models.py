"""Typed view of the resolved Hydra config: what a stage may read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraConfig(_Strict):
    r: int = Field(gt=0)
    alpha: int = Field(gt=0)
    dropout: float = Field(ge=0.0, lt=1.0)
    target_modules: str | list[str]


Auto = Literal["auto"]


class TrainingConfig(_Strict):
    epochs: Annotated[float, Field(gt=0)] | Auto = Field(description="'auto' lets a hosted provider choose.")
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: str
    warmup_ratio: float = Field(ge=0.0, le=1.0)
    weight_decay: float = Field(ge=0.0)
    max_length: int = Field(gt=0)
    seed: int
    assistant_only_loss: bool
    completion_only_loss: bool
    lora: LoraConfig
    logging_steps: int = Field(gt=0)
    # Hosted fine-tuning hyperparameters (OpenAI / Bedrock names); local training uses the hardware profile.
    batch_size: int | Auto = "auto"
    learning_rate_multiplier: float | Auto = "auto"
    beta: float | Auto = Field("auto", description="DPO: strength of the preference penalty.")
    save_steps: int = Field(gt=0)
    # Local training artifacts and continued training (defaults keep older fingerprints unchanged).
    merge: bool = Field(False, description="Also save the base model with the adapter merged in.")
    init_adapter: str | None = Field(None, description="Continue training this LoRA adapter folder "
                                                        "(relative to the repository root).")


class EvalConfig(_Strict):
    max_new_tokens: int = Field(gt=0)
    batch_size: int = Field(gt=0)


class DistributedConfig(_Strict):
    """Processes per training and how they share the model (accelerate's distributed types)."""

    strategy: Literal["none", "ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = "none"
    num_processes: int = Field(1, gt=0, description="One per GPU (or CPU process for ddp on CPU).")


class SlurmConfig(_Strict):
    """Where a ``launcher: slurm`` training runs (submitit's Slurm parameters)."""

    partition: str | None = None
    timeout_min: int = Field(240, gt=0)
    nodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(0, ge=0)
    cpus_per_task: int = Field(4, gt=0)
    mem_gb: float | None = Field(None, gt=0)
    account: str | None = None


class HardwareConfig(_Strict):
    name: str
    device: Literal["cpu", "cuda", "mps"]
    precision: Literal["fp32", "fp16", "bf16"]
    per_device_batch_size: int = Field(gt=0)
    gradient_accumulation_steps: int = Field(gt=0)
    quantization: Literal["none", "nf4", "int8"]
    packing: bool
    group_by_length: bool
    gradient_checkpointing: bool
    memory_gb: float = Field(gt=0)
    tokens_per_second: float = Field(gt=0, description="Training throughput assumed by the plan's estimate.")
    peak_tflops: float | None = Field(None, gt=0, description="Peak dense bf16 TFLOPS of one device (for MFU).")
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    launcher: Literal["process", "slurm", "submitit-local"] = Field(
        "process", description="process: a child process here; slurm: a Slurm job (submitit); "
                               "submitit-local: submitit's local executor (same path as slurm, on this machine).")
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


class ResolvedConfig(_Strict):
    """The composed config for one model. ``provider`` is validated by the provider itself."""

    provider: dict[str, Any]
    cai: dict[str, Any] = Field(default_factory=dict, description="Validated by levcustom.cai.settings.")
    hardware: HardwareConfig
    training: TrainingConfig
    eval: EvalConfig
