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

Metric = Literal["exact_match", "contains", "regex", "json_valid", "json_schema", "tool_call_match", "rouge_l", "chrf",
                 "latency", "judge"]
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


class JudgeSpec(Strict):
    """An LLM judge (``metric: judge``). Credentials come from the SDK's environment variables
    (ANTHROPIC_API_KEY / OPENAI_API_KEY, and *_BASE_URL), never from the spec."""

    provider: Literal["anthropic", "openai"] = Field("anthropic", description="Which SDK calls the judge.")
    model: str = Field(min_length=1, description="Judge model id, e.g. claude-sonnet-4-5 or gpt-4.1.")
    rubric: str = Field(min_length=1, description="What a good answer is; the judge grades against it.")
    mode: Literal["pointwise", "pairwise"] = Field(
        "pointwise", description="pointwise: score 1..scale per answer; pairwise: prefer the tuned answer or "
                                 "the reference model's (order randomized), scored 1 win / 0.5 tie / 0 loss.")
    scale: int = Field(5, ge=2, le=10, description="pointwise: best score (normalized to 0..1).")
    vs: Literal["base", "deployed"] = Field("base", description="pairwise: the model the tuned one is compared "
                                                                "with (deployed falls back to base).")
    max_tokens: int = Field(400, ge=16, le=8192)
    concurrency: int = Field(8, ge=1, le=64, description="Judge requests in flight at once.")
    requests_per_minute: int = Field(600, ge=1, description="Rate limit of judge requests.")


class Suite(Strict):
    name: str = Field(pattern=SUITE_PATTERN)
    path: str | None = Field(None, description="JSONL rows: {messages | prompt, expected, tags?}.")
    split: Literal["validation"] | None = Field(
        None, description="Instead of a path: the held-out split of this model's dataset "
                          "(prompt = the conversation, expected = its last assistant answer).")
    metric: Metric
    schema_path: str | None = Field(None, alias="schema",
                                    description="json_schema: a JSON Schema file the output must validate against.")
    judge: JudgeSpec | None = Field(None, description="metric: judge: the judge and its rubric.")

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        if (self.path is None) == (self.split is None):
            raise ValueError("a suite needs exactly one of path, split")
        if (self.metric == "json_schema") != (self.schema_path is not None):
            raise ValueError("'schema' is required by metric json_schema and only allowed with it")
        if (self.metric == "judge") != (self.judge is not None):
            raise ValueError("'judge' is required by metric judge and only allowed with it")
        return self


class Gate(Strict):
    """``min``/``max`` bound a score; ``min_delta_vs`` requires tuned - reference >= ``min_delta`` on the
    same cases. With ``confidence`` the bound applies to the confidence interval (bootstrap over cases),
    not the point estimate: the lower CI bound must clear ``min``/``min_delta``, the upper one ``max``."""

    metric: str = Field(description="<suite>.<metric>, e.g. routing.exact_match")
    min: float | None = None
    max: float | None = None
    min_delta_vs: Literal["base", "deployed"] | None = None
    min_delta: float = 0.0
    confidence: float | None = Field(None, gt=0.5, lt=1.0, description="e.g. 0.95: the CI bound must clear it.")

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


class TrafficSpec(Strict):
    """Online A/B: a new version first serves ``candidate`` percent of requests; recorded outcomes
    promote it (lower CI bound of success-rate difference >= min_delta) or roll it back (upper bound
    below min_delta) on a later apply, once each arm has ``min_outcomes``."""

    candidate: int = Field(ge=1, le=99, description="Percent of requests routed to the new version.")
    min_outcomes: int = Field(100, ge=1, description="Outcomes each arm needs before a decision.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    min_delta: float = Field(0.0, ge=-1.0, le=1.0, description="Success rate the candidate must add (or may lose).")


class DeploySpec(Strict):
    agents: list[str] = Field(default_factory=list, description="Leviathan agents that get this model.")
    tasks: list[str] = Field(default_factory=list, description="Task types routed to this model.")
    target: Literal["registry", "ollama"] = Field(
        "registry", description="registry: record it for agents only; ollama: also serve it through Ollama.")
    ollama: OllamaTarget = Field(default_factory=OllamaTarget)
    traffic: TrafficSpec | None = Field(None, description="Online A/B split against the deployed version.")


class CaiSpec(Strict):
    """``method: cai``: the dataset's rows are prompts (red-team or task); Claude critiques and revises
    sampled answers against the constitution (-> sft) or labels the better of two (-> dpo)."""

    constitution: str = Field(description="YAML file of principles: {name, critique, revision, preference?}.")
    train: Literal["sft", "dpo"] = Field("dpo", description="sft: final revisions; dpo: AI-labeled preference pairs.")
    rounds: int = Field(1, ge=1, le=4, description="Critique-revision rounds per prompt (sft).")
    seed: int = Field(0, description="Chooses the principle for each prompt and round.")


class ModelBody(Strict):
    base_model: str = Field(description="HF id, local path, or provider model id.")
    provider: str = Field("local", description="Selects conf/provider/<name>.yaml.")
    hardware: str = Field("cpu", description="Selects conf/hardware/<name>.yaml (local provider).")
    overrides: list[str] = Field(default_factory=list, description="Hydra overrides, applied last.")
    method: Literal["sft", "dpo", "cai"] = Field("sft", description="sft: chat rows; dpo: preference rows; "
                                                                    "cai: constitutional AI data from prompt rows.")
    cai: CaiSpec | None = Field(None, description="method: cai: the constitution and what to train on.")
    dataset: DatasetSpec
    training: dict[str, Any] = Field(default_factory=dict, description="Overrides of the training config group.")
    evals: EvalSpec = Field(default_factory=EvalSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)

    @model_validator(mode="after")
    def _cai_block(self) -> ModelBody:
        if (self.method == "cai") != (self.cai is not None):
            raise ValueError("'cai' is required by method cai and only allowed with it")
        return self

    @model_validator(mode="after")
    def _ollama_serves_local_models(self) -> ModelBody:
        if self.deploy.target == "ollama" and self.provider != "local":
            raise ValueError("deploy.target 'ollama' serves models trained by provider 'local' "
                             f"(this spec uses provider {self.provider!r})")
        if self.deploy.target == "ollama" and self.deploy.traffic is not None:
            raise ValueError("deploy.traffic (online A/B) needs two versions served at once; "
                             "deploy.target 'ollama' serves one version per model name")
        return self

    @property
    def train_method(self) -> str:
        """What the provider trains: the method, or for cai the kind of data generated."""
        return self.cai.train if self.cai else self.method


class ModelSpec(Strict):
    apiVersion: Literal["levcustom/v1"]
    kind: Literal["Model"]
    metadata: Metadata
    spec: ModelBody

    @property
    def name(self) -> str:
        return self.metadata.name
