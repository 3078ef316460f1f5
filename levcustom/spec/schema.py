"""The spec format (``apiVersion: levcustom/v1, kind: Model``) as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting.
``spec.training`` is validated against the resolved training config (see
``levcustom.config.models``) after Hydra composition, so its keys live in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SUITE_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

Metric = Literal["exact_match", "contains", "json_valid"]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]


# The kind of training example each method learns from (see levcustom.datasets.jsonl).
EXAMPLE_KIND = {"sft": "chat", "dpo": "preference"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Unique model name: the model's identity in the lockfile.")
    labels: dict[str, str] = Field(default_factory=dict)


class JsonlSource(Strict):
    """Chat rows ``{"messages": [...]}`` or ``{"prompt", "completion"}`` rows, one JSON object a line."""

    type: Literal["jsonl"]
    path: str = Field(description="Path relative to the repository root.")
    on_error: Literal["fail", "skip"] = Field("fail", description="Malformed rows fail the build or are skipped.")


class Curation(Strict):
    dedupe: Literal["none", "exact"] = Field("exact", description="Drop rows whose normalized text repeats.")


class Split(Strict):
    validation: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out, assigned by row hash.")
    seed: int = 0


class DatasetSpec(Strict):
    sources: list[JsonlSource] = Field(min_length=1)
    curation: Curation = Field(default_factory=Curation)
    split: Split = Field(default_factory=Split)


class Suite(Strict):
    name: str = Field(pattern=SUITE_PATTERN)
    path: str = Field(description="JSONL rows: {messages | prompt, expected, tags?}.")
    metric: Metric


class Gate(Strict):
    """``min``/``max`` bound a score; ``min_delta_vs`` requires tuned - reference >= ``min_delta``."""

    metric: str = Field(description="<suite>.<metric>, e.g. routing.exact_match")
    min: float | None = None
    max: float | None = None
    min_delta_vs: Literal["base", "deployed"] | None = None
    min_delta: float = 0.0

    @model_validator(mode="after")
    def _has_condition(self) -> Gate:
        if self.min is None and self.max is None and self.min_delta_vs is None:
            raise ValueError("a gate needs at least one of min, max, min_delta_vs")
        return self


class EvalSpec(Strict):
    suites: list[Suite] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)


class OllamaTarget(Strict):
    """Where and how a local model is served by Ollama (``deploy.target: ollama``)."""

    host: str = Field("http://127.0.0.1:11434", description="Ollama's REST endpoint.")
    model: str | None = Field(None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._/-]*(:[a-zA-Z0-9._-]+)?$",
                              description="Ollama model name (default: the spec's metadata.name).")
    system: str | None = Field(None, description="System prompt baked into the Modelfile.")
    parameters: dict[str, float | int | str | list[str]] = Field(
        default_factory=dict, description="Modelfile PARAMETERs, e.g. {temperature: 0, num_ctx: 4096}.")
    template: str | None = Field(None, description="Go chat template; default: derived from the model's "
                                                   "chat template.")
    dtype: Literal["f16", "f32"] = Field("f16", description="GGUF tensor type of the exported weights.")
    quantize: str | None = Field(None, description="Have Ollama quantize on create, e.g. q4_K_M.")


class DeploySpec(Strict):
    agents: list[str] = Field(default_factory=list, description="Leviathan agents that get this model.")
    tasks: list[str] = Field(default_factory=list, description="Task types routed to this model.")
    target: Literal["registry", "ollama"] = Field(
        "registry", description="registry: record it for agents only; ollama: also serve it through Ollama.")
    ollama: OllamaTarget = Field(default_factory=OllamaTarget)


class ModelBody(Strict):
    base_model: str = Field(description="HF id, local path, or provider model id.")
    provider: str = Field("local", description="Selects conf/provider/<name>.yaml.")
    hardware: str = Field("cpu", description="Selects conf/hardware/<name>.yaml (local provider).")
    overrides: list[str] = Field(default_factory=list, description="Hydra overrides, applied last.")
    method: Literal["sft", "dpo"] = Field("sft", description="sft: chat rows; dpo: preference rows.")
    dataset: DatasetSpec
    training: dict[str, Any] = Field(default_factory=dict, description="Overrides of the training config group.")
    evals: EvalSpec = Field(default_factory=EvalSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)

    @model_validator(mode="after")
    def _ollama_serves_local_models(self) -> ModelBody:
        if self.deploy.target == "ollama" and self.provider != "local":
            raise ValueError("deploy.target 'ollama' serves models trained by provider 'local' "
                             f"(this spec uses provider {self.provider!r})")
        return self


class ModelSpec(Strict):
    apiVersion: Literal["levcustom/v1"]
    kind: Literal["Model"]
    metadata: Metadata
    spec: ModelBody

    @property
    def name(self) -> str:
        return self.metadata.name
