"""``levcustom.lock``: what exists, per model and stage. Versioned, atomic, thread-safe.

Like Terraform state, every write bumps ``serial`` and keeps ``lineage`` so a saved plan can
tell whether the state moved under it. A stage's block is written only once the stage has
completed; an *intent* is written before any side effect so a crash is resumed, not repeated.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from levcustom.errors import LevcustomError
from levcustom.state.atomic import atomic_write_text

LOCK_VERSION = 1
STAGES = ("dataset", "train", "eval", "deploy")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageState(_Model):
    """Common to every completed stage: what it was computed from."""

    fingerprint: str
    inputs: dict[str, Any] = Field(description="The fingerprinted inputs, kept to explain later changes.")
    updated_at: str = Field(default_factory=now_iso)
    drift: str | None = Field(None, description="Set by refresh when the provider's real state differs.")


class SourceRecord(_Model):
    path: str
    sha256: str
    records: int


class DatasetState(StageState):
    artifact: str = Field(description="Content-addressed folder of the built dataset, relative to the root.")
    sha256: str
    train_rows: int
    validation_rows: int
    sources: list[SourceRecord]


class TrainState(StageState):
    provider: str
    job_id: str
    model_ref: str = Field(description="What serves the model: an adapter folder or a provider model id.")
    artifact_sha256: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    cost_usd: float = 0.0


class PairedResult(_Model):
    """The tuned model minus a reference model on the same cases (per-case differences)."""

    cases: int
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float | None = Field(None, description="McNemar's test, for pass/fail metrics.")
    improved: int | None = Field(None, description="Cases the tuned model passes and the reference fails.")
    regressed: int | None = Field(None, description="Cases the tuned model fails and the reference passes.")


class MetricResult(_Model):
    tuned: float
    base: float | None = None
    deployed: float | None = None
    cases: int
    errors: int = Field(0, description="Cases that could not be scored (e.g. judge errors): never a pass.")
    ci_low: float | None = None
    ci_high: float | None = None
    paired: dict[str, PairedResult] = Field(default_factory=dict, description="vs base / vs deployed.")


class GateResult(_Model):
    gate: str
    passed: bool
    detail: str


class EvalState(StageState):
    results: dict[str, MetricResult]
    gates: list[GateResult]
    passed: bool
    run_dir: str
    cases_sha256: str | None = Field(None, description="Hash of run_dir/cases.jsonl (per-case outputs and scores).")


class PreviousDeployment(_Model):
    """The version a candidate is A/B-tested against (it keeps the rest of the traffic)."""

    fingerprint: str
    provider: str
    base_model: str
    model_ref: str


class OllamaDeployment(_Model):
    """A model created on an Ollama server by the deploy stage (removed again on destroy)."""

    host: str
    model: str
    digest: str = Field(description="sha256 of the GGUF blob Ollama serves.")


class DeployState(StageState):
    agents: list[str]
    tasks: list[str]
    provider: str
    base_model: str
    model_ref: str
    eval_results: dict[str, MetricResult] = Field(description="Scores of the deployed version, for A/B gates.")
    eval_run: str | None = Field(None, description="Per-case results of the deployed version (run folder).")
    cases_sha256: str | None = None
    traffic: int | None = Field(None, description="Online A/B: percent of requests for this version; the rest "
                                                  "go to ``previous``. None: all of them.")
    previous: PreviousDeployment | None = None
    phase: str | None = Field(None, description="Online A/B: split, promoted or rolled-back.")
    endpoint: str | None = Field(None, description="A paid endpoint this deployment created (e.g. Bedrock "
                                                   "provisioned throughput): deleted when the deployment goes.")
    ollama: OllamaDeployment | None = None


class Intent(_Model):
    """Written before a side effect: a crash leaves this behind and the next apply resumes it."""

    stage: str
    fingerprint: str
    provider: str
    key: str = Field(description="Idempotency key given to the provider (the stage fingerprint).")
    job_id: str | None = None
    pid: int
    started_at: str = Field(default_factory=now_iso)


class ModelState(_Model):
    spec_file: str
    dataset: DatasetState | None = None
    train: TrainState | None = None
    eval: EvalState | None = None
    deploy: DeployState | None = None
    intents: dict[str, Intent] = Field(default_factory=dict)

    def stage(self, name: str) -> StageState | None:
        return getattr(self, name)


class UploadRecord(_Model):
    """A file at a provider, by content hash: found here first, so bytes are never uploaded twice."""

    provider: str
    sha256: str
    file_id: str
    bytes: int
    created_at: str = Field(default_factory=now_iso)


class Lock(_Model):
    version: int = LOCK_VERSION
    lineage: str = Field("", description="Set by the first write; empty while no lockfile exists.")
    serial: int = 0
    models: dict[str, ModelState] = Field(default_factory=dict)
    uploads: dict[str, UploadRecord] = Field(default_factory=dict, description="Keyed '<provider>:<sha256>'.")


def read_lock(path: Path) -> Lock:
    """Read the lockfile; a missing one is a new, empty state (serial 0)."""
    if not path.exists():
        return Lock()
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise LevcustomError(f"cannot read {path.name}: {exc}") from None
    return parse_lock(text, path.name)


def parse_lock(text: str, name: str) -> Lock:
    """Validate lockfile text; ``name`` says where it came from in errors."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LevcustomError(f"{name} is not valid JSON ({exc}); restore it from git") from None
    if isinstance(data, dict) and isinstance(data.get("version"), int) and data["version"] > LOCK_VERSION:
        raise LevcustomError(f"{name} has version {data['version']}; this levcustom reads up to {LOCK_VERSION}")
    try:
        return Lock.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LevcustomError(f"{name} is invalid at {where}: {first['msg']}") from None


def dump_lock(lock: Lock) -> str:
    """Canonical text: sorted keys, one model a block, stable across runs (diff-friendly in git)."""
    return json.dumps(lock.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True) + "\n"


class StateStore:
    """The lock in memory plus its file. Mutations from concurrent threads are group-committed:
    whoever writes takes every mutation queued so far into one atomic write (serial + 1), and
    each ``update`` returns only once its own mutation is on disk."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = read_lock(path)
        self._write = threading.Lock()
        self._queue = threading.Lock()
        self._pending: list[tuple[int, Callable[[Lock], None]]] = []
        self._enqueued = 0  # mutations queued so far
        self._durable = 0  # mutations written so far (a prefix of the queue)

    def update(self, mutate: Callable[[Lock], None]) -> None:
        """Apply ``mutate`` and persist it before returning."""
        with self._queue:
            self._enqueued += 1
            mine = self._enqueued
            self._pending.append((mine, mutate))
        with self._write:
            if self._durable >= mine:
                return  # another thread's write carried it
            with self._queue:
                batch, self._pending = self._pending, []
            candidate = self.lock.model_copy(deep=True)
            for _, m in batch:
                m(candidate)
            candidate.serial += 1
            candidate.lineage = candidate.lineage or str(uuid.uuid4())
            try:
                atomic_write_text(self.path, dump_lock(candidate))
            except BaseException:
                with self._queue:  # not written: the next writer retries these, the old state stands
                    self._pending[:0] = [b for b in batch if b[0] != mine]
                raise
            self.lock = candidate  # only after the write succeeded: memory never runs ahead of disk
            self._durable = batch[-1][0]

    def model(self, name: str, spec_file: str) -> Callable[[Lock], ModelState]:
        """Helper for mutations: get or create a model's block."""

        def get(lock: Lock) -> ModelState:
            if name not in lock.models:
                lock.models[name] = ModelState(spec_file=spec_file)
            return lock.models[name]

        return get
