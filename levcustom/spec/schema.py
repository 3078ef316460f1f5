"""The spec format (``apiVersion: levcustom/v1, kind: Model``) as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting.
``spec.training`` is validated against the resolved training config (see
``levcustom.config.models``) after Hydra composition, so its keys live in one place.
"""

from __future__ import annotations

import string
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SUITE_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

Metric = Literal["exact_match", "contains", "regex", "json_valid", "json_schema", "tool_call_match", "rouge_l", "chrf",
                 "latency", "tokens", "judge"]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]


# The kind of training example each method learns from (see levcustom.datasets.jsonl).
EXAMPLE_KIND = {"sft": "chat", "dpo": "preference"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Unique model name: the model's identity in the lockfile.")
    labels: dict[str, str] = Field(default_factory=dict)


OnError = Literal["fail", "skip"]


def _as_list(value: object) -> object:
    """Filters take one value or a list: ``agent: reviewer`` or ``agent: [reviewer, critic]``."""
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_as_list)]


class _FileSource(Strict):
    path: str = Field(description="File or folder (every *.jsonl inside, sorted), relative to the repository root.")
    on_error: OnError = Field("fail", description="Malformed rows fail the build (file:line) or are skipped.")


class JsonlSource(_FileSource):
    """Chat rows ``{"messages": [...]}`` or ``{"prompt", "completion"}`` rows, one JSON object a line
    (preference rows for ``method: dpo``)."""

    type: Literal["jsonl"]


EPISODE_FIELDS = ("context", "approach", "outcome", "type")


class EpisodeTemplate(Strict):
    """How an episode becomes a chat: ``{context}``, ``{approach}``, ``{outcome}``, ``{type}`` are filled in."""

    system: str | None = Field(None, description="System message (omitted when unset).")
    user: str = "{context}"
    assistant: str = "{approach}"

    @model_validator(mode="after")
    def _known_fields(self) -> EpisodeTemplate:
        for text in (self.system or "", self.user, self.assistant):
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            except ValueError as exc:
                raise ValueError(f"invalid template {text!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
            unknown = names - set(EPISODE_FIELDS)
            if unknown:
                raise ValueError(f"unknown template field {sorted(unknown)[0]!r}; "
                                 f"expected one of: {', '.join(EPISODE_FIELDS)}")
        return self


class EpisodicMemorySource(_FileSource):
    """Leviathan episodes ``{episode_id, timestamp, type, content: {approach, outcome, context, confidence}}``
    or experiences ``{approach, outcome, context, success, confidence}``, one a line."""

    type: Literal["episodic_memory"]
    outcome: Names | None = Field(None, description="Keep episodes whose outcome is one of these (case-insensitive).")
    success: bool | None = Field(None, description="Keep experiences whose success flag equals this.")
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    episode_type: Names | None = Field(None, description="Keep episodes of these types.")
    since: datetime | None = Field(None, description="Keep episodes at or after this time (ISO 8601).")
    until: datetime | None = Field(None, description="Keep episodes before this time (ISO 8601).")
    template: EpisodeTemplate = Field(default_factory=EpisodeTemplate)


class InteractionsSource(_FileSource):
    """Agent conversation logs: ``{agent, task, messages (OpenAI-style, tool calls included), rating?, feedback?}``."""

    type: Literal["interactions"]
    agent: Names | None = None
    task: Names | None = None
    min_rating: float | None = Field(None, description="Keep rated conversations at or above this rating.")


class WorkflowsSource(_FileSource):
    """Workflow run records ``{run_id, workflow, agent?, input, steps: [...], status, output}``."""

    type: Literal["workflows"]
    status: Names = Field(default_factory=lambda: ["succeeded"], description="Run statuses to keep.")
    workflow: Names | None = None


class PersonalitySource(Strict):
    """Renders every example of the other sources with an EEPS persona's system prompt."""

    type: Literal["personality"]
    persona: str = Field(description="The persona's context.yaml (contexts/agents/eeps/<id>/context.yaml).")
    variables: dict[str, str] = Field(default_factory=dict, description="Values for the template's {{variables}}.")

    @property
    def path(self) -> str:
        return self.persona


class HfDiskSource(Strict):
    """A Hugging Face ``datasets`` folder written by ``save_to_disk`` (rows as in a jsonl source)."""

    type: Literal["hf_disk"]
    path: str
    split: str | None = Field(None, description="Which split of a DatasetDict (required for one).")
    on_error: OnError = "fail"


class PreferencesSource(_FileSource):
    """Preference pairs for DPO: explicit chosen/rejected rows, or pairs derived from rated interactions
    (same prompt, higher vs lower rating)."""

    type: Literal["preferences"]
    derive: Literal["none", "ratings"] = Field("none", description="ratings: pair rated interactions.")
    agent: Names | None = None
    task: Names | None = None
    min_margin: float = Field(1.0, gt=0, description="ratings: least rating difference between chosen and rejected.")


Source = Annotated[JsonlSource | EpisodicMemorySource | InteractionsSource | WorkflowsSource | PersonalitySource
                   | HfDiskSource | PreferencesSource, Field(discriminator="type")]
SOURCE_TYPES: tuple[str, ...] = ("jsonl", "episodic_memory", "interactions", "workflows", "personality", "hf_disk",
                                 "preferences")
# What each source yields: chat examples, preference pairs, or whichever the method needs.
SOURCE_KINDS: dict[str, tuple[str, ...]] = {
    "jsonl": ("chat", "preference"), "hf_disk": ("chat", "preference"), "episodic_memory": ("chat",),
    "interactions": ("chat",), "workflows": ("chat",), "personality": ("chat", "preference"),
    "preferences": ("preference",),
}


class Cap(Strict):
    """Balance: at most ``max`` examples per value of ``by`` (the ones with the lowest row hash are kept)."""

    by: Literal["agent", "task", "source", "persona"]
    max: int = Field(gt=0)


class Curation(Strict):
    dedupe: Literal["none", "exact", "near"] = Field(
        "exact", description="exact: drop rows whose normalized text repeats; near: also MinHash LSH near-duplicates.")
    near_threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity (character 5-grams) "
                                                                   "at which two rows are near-duplicates.")
    scrub_pii: bool = Field(True, description="Replace emails, phone numbers, API keys and tokens with placeholders.")
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    tokenizer: Literal["approx", "cl100k_base", "o200k_base"] = Field(
        "approx", description="Counts max_tokens: approx (characters / 4) or an OpenAI encoding (quicktok).")
    languages: Names | None = Field(None, description="ISO 639-1 codes to keep (py3langid on the user+assistant "
                                                     "text).")
    answer_format: Literal["any", "json"] = Field("any", description="json: keep rows whose final answer is JSON.")
    cap: Cap | None = None


class Split(Strict):
    validation: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out, assigned by row hash.")
    eval: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction held out for evaluation, never trained on.")
    seed: int = 0

    @model_validator(mode="after")
    def _fractions(self) -> Split:
        if self.validation + self.eval >= 1.0:
            raise ValueError("validation + eval must leave some rows for training (sum < 1)")
        return self


class DatasetSpec(Strict):
    sources: list[Source] = Field(min_length=1)
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
    split: Literal["eval", "validation"] | None = Field(
        None, description="Instead of a path: a held-out split of this model's dataset (prompt = the "
                          "conversation, expected = its last assistant answer). eval: the split set aside by "
                          "dataset.split.eval, never seen in training; validation: the one training reports loss on.")
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
