"""Typed view of the resolved Hydra config: what a stage may read."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraConfig(_Strict):
    r: int = Field(gt=0)
    alpha: int = Field(gt=0)
    dropout: float = Field(ge=0.0, lt=1.0)
    target_modules: str | list[str]


class TrainingConfig(_Strict):
    epochs: float = Field(gt=0)
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
    save_steps: int = Field(gt=0)


class EvalConfig(_Strict):
    max_new_tokens: int = Field(gt=0)
    batch_size: int = Field(gt=0)


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


class ResolvedConfig(_Strict):
    """The composed config for one model. ``provider`` is validated by the provider itself."""

    provider: dict[str, Any]
    hardware: HardwareConfig
    training: TrainingConfig
    eval: EvalConfig

    # Settings that change speed or memory but not the trained weights; kept out of fingerprints.
    RESULT_NEUTRAL_HARDWARE: ClassVar[tuple[str, ...]] = (
        "name", "gradient_checkpointing", "memory_gb", "tokens_per_second")

    def result_inputs(self) -> dict[str, Any]:
        """Config values that change a training result (fingerprinted)."""
        hw = self.hardware.model_dump(exclude=set(self.RESULT_NEUTRAL_HARDWARE))
        hw["effective_batch_size"] = hw.pop("per_device_batch_size") * hw.pop("gradient_accumulation_steps")
        return {"training": self.training.model_dump(), "hardware": hw}
