"""The one Protocol every provider implements, and the data crossing it.

The planner only calls the light, offline methods (``estimate``, ``risks``); the executor
calls the rest. Implementations import their SDKs lazily so ``plan`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from levcustom.config.models import ResolvedConfig
from levcustom.datasets.jsonl import Example
from levcustom.errors import Issue
from levcustom.spec.schema import ModelBody
from levcustom.state.lockfile import TrainState

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class TrainRequest:
    """Everything a provider needs to train one model version; ``key`` makes submit idempotent."""

    model: str
    key: str
    base_model: str
    method: str
    dataset_dir: Path
    config: ResolvedConfig
    work_dir: Path
    known_uploads: dict[str, str] = field(default_factory=dict)  # content sha256 -> provider file id (lockfile)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    message: str = ""
    progress: float | None = None  # 0..1 where the provider knows it
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    """A data file stored at a provider, addressed by the sha256 of its bytes."""

    provider: str
    sha256: str
    file_id: str
    bytes: int


@dataclass(frozen=True)
class TrainResult:
    job_id: str
    model_ref: str
    artifact_sha256: str | None
    metrics: dict[str, float]
    cost_usd: float


@dataclass(frozen=True)
class CostEstimate:
    tokens: int
    hours: float
    usd: float
    note: str


@dataclass(frozen=True)
class DatasetReport:
    """A provider's offline verdict on training examples: count, tokens (one epoch), located issues."""

    examples: int
    tokens: int
    issues: list[Issue] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class ConfigProblem:
    """A spec setting the provider cannot honor, located by key path (e.g. ``("spec", "method")``)."""

    key_path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class ModelRef:
    """What to run for generation: the base model alone, or with a tuned ``ref`` applied."""

    base_model: str
    ref: str | None = None


class Provider(Protocol):
    name: str

    def poll_intervals(self, config: ResolvedConfig) -> tuple[float, float]:
        """Seconds between job polls: the first, and the most it backs off to while nothing changes."""

    def min_examples(self, config: ResolvedConfig) -> int:
        """Fewest training examples a job accepts."""

    def max_parallel_jobs(self, config: ResolvedConfig) -> int:
        """Trainings this provider runs at once (apply bounds its submissions by this)."""

    def result_config(self, config: ResolvedConfig) -> dict[str, Any]:
        """The resolved settings that change this provider's training result (they are fingerprinted:
        anything else, e.g. LoRA rank for a hosted provider, never triggers a paid retrain)."""

    def check(self, method: str, base_model: str, config: ResolvedConfig) -> list[ConfigProblem]:
        """Offline: settings this provider cannot honor (method, base model, hyperparameter ranges)."""

    def inspect(self, examples: list[Example], method: str, base_model: str, config: ResolvedConfig) -> DatasetReport:
        """Offline: validate examples the way the provider will, and count their tokens."""

    def estimate(self, tokens: int, config: ResolvedConfig, base_model: str) -> CostEstimate:
        """Offline cost estimate for training on ``tokens`` (one epoch's worth) for the configured epochs."""

    def risks(self, base_model: str, config: ResolvedConfig, today: date) -> list[str]:
        """Offline warnings for the plan (deprecations, shutdown dates)."""

    def submit(self, request: TrainRequest, record_upload: Callable[[Upload], None]) -> str:
        """Start training, or find the job already started under ``request.key``; return its id.

        Each file uploaded on the way is passed to ``record_upload`` at once (it lands in the lockfile),
        so the same bytes are never uploaded twice."""

    def poll(self, job_id: str, request: TrainRequest) -> JobStatus:
        """Current state and progress of a job."""

    def result(self, job_id: str, request: TrainRequest) -> TrainResult:
        """The finished job's model reference, artifact hash and metrics."""

    def cancel(self, job_id: str, request: TrainRequest) -> None:
        """Stop a running job."""

    def delete(self, state: TrainState, config: ResolvedConfig) -> None:
        """Delete a trained model's artifacts (destroy with --purge)."""

    def refresh(self, state: TrainState, config: ResolvedConfig) -> str | None:
        """Read the real state: None when it matches, else the drift, as a reason."""

    def logs(self, state: TrainState, config: ResolvedConfig) -> list[str]:
        """The training job's event lines, oldest first."""

    def generate(self, models: list[ModelRef], prompts: list[list[dict[str, str]]],
                 config: ResolvedConfig) -> list[list[str]]:
        """Greedy answers of each model to each prompt (one list per model)."""


@runtime_checkable
class DeployChecker(Protocol):
    """Optional capability: offline, plan-time checks of a spec's deploy block (for example that
    the deploy target can serve this base model), so a deploy that cannot work fails at plan."""

    def check_deploy(self, body: ModelBody, config: ResolvedConfig) -> list[ConfigProblem]:
        """Problems located by key path in the spec; [] when the deployment can proceed."""


@runtime_checkable
class TokenCounter(Protocol):
    """Optional capability: count tokens with the model's own tokenizer (the ``tokens`` eval metric).
    For a provider without it, or when the tokenizer is not on disk, answers are counted as
    characters / 4 and the eval row says so."""

    def count_tokens(self, base_model: str, texts: list[str], config: ResolvedConfig) -> list[int] | None:
        """Tokens in each text as the model tokenizes it, or None when its tokenizer is unavailable."""


@runtime_checkable
class Serving(Protocol):
    """Optional capability: a provider whose tuned models serve only through an endpoint that costs
    money while it exists (Bedrock provisioned throughput). The deploy stage creates it, destroy and
    redeploys delete it; without the user's opt-in nothing is provisioned."""

    def serving_config(self, config: ResolvedConfig) -> dict[str, Any]:
        """The endpoint settings, fingerprinted into the deploy stage ({} when nothing is provisioned)."""

    def serving_estimate(self, base_model: str, config: ResolvedConfig) -> CostEstimate | None:
        """Offline: what the endpoint costs per hour, for the plan (None when nothing is provisioned)."""

    def serve(self, train: TrainState, config: ResolvedConfig) -> str | None:
        """Create (or find, idempotently) the endpoint serving a trained model and wait until it serves;
        its id, or None when the user did not opt in."""

    def unserve(self, endpoint: str, config: ResolvedConfig) -> None:
        """Delete an endpoint (already gone is fine)."""
