"""``provider: openai``: OpenAI fine-tuning (files + fine_tuning.jobs, SFT and DPO).

Idempotency, since the API has no idempotency key:
- uploads are named by the sha256 of their bytes; before uploading, the lockfile's record is
  verified at the provider, else the provider's file list is searched by that name;
- jobs carry the stage fingerprint in ``metadata``; before creating one, the jobs with that
  metadata are listed and a live or finished one is followed instead.
So a crash between any two calls is resumed, never repeated. The SDK reads OPENAI_API_KEY,
OPENAI_BASE_URL and OPENAI_ORG_ID itself; config values override them when set. The key is
never printed, logged or stored.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from levcustom.config.models import ResolvedConfig
from levcustom.datasets.jsonl import ChatExample, Example, message_lists
from levcustom.errors import Issue, ProviderError
from levcustom.providers.base import (
    ConfigProblem,
    CostEstimate,
    DatasetReport,
    JobStatus,
    ModelRef,
    TrainRequest,
    TrainResult,
    Upload,
)
from levcustom.providers.hosted import range_problems, training_file, validated_settings
from levcustom.state.keyedlock import keyed_lock
from levcustom.state.lockfile import TrainState
from levcustom.workspace import Workspace

METADATA_KEY = "levcustom_fingerprint"
AUTO_EPOCHS_ASSUMED = 3  # what the cost estimate assumes when n_epochs is 'auto'
_STATES: dict[str, Literal["queued", "running", "succeeded", "failed", "cancelled"]] = {
    "validating_files": "queued", "queued": "queued", "running": "running", "succeeded": "succeeded",
    "failed": "failed", "cancelled": "cancelled"}


class OpenAISettings(BaseModel):
    """``conf/provider/openai.yaml``, validated."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["openai"]
    min_examples: int = Field(10, ge=1)
    max_tokens_per_example: int = Field(65_536, gt=0)
    base_url: str | None = None
    organization: str | None = None
    api_key_env: str | None = Field(None, description="Read the key from this variable instead of OPENAI_API_KEY.")
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(5.0, gt=0)
    max_poll_interval_s: float = Field(60.0, gt=0)
    max_parallel_jobs: int = Field(64, ge=1)
    generate_concurrency: int = Field(8, ge=1)
    training_price_per_1m_tokens: dict[str, float]
    service_shutdown: str | None = None
    model_shutdowns: dict[str, str] = Field(default_factory=dict)
    hyperparameter_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)


def encoding_name(base_model: str) -> str:
    """The tokenizer OpenAI uses for a model family (gpt-4o, gpt-4.1, o-series: o200k_base)."""
    return "cl100k_base" if base_model.startswith(("gpt-3.5", "gpt-4-", "gpt-4-turbo")) or base_model == "gpt-4" \
        else "o200k_base"


def encoded_lengths(texts: list[str], base_model: str) -> list[int] | None:
    """Tokens in each text with the model family's real BPE (``quicktok`` ships the encodings
    offline), or None when quicktok is not installed."""
    try:
        import quicktok
    except ImportError:
        return None
    enc = quicktok.get_encoding(encoding_name(base_model))
    if hasattr(enc, "count_batch"):
        return [int(c) for c in enc.count_batch(texts)]
    return [len(enc.encode(t)) for t in texts]


def count_tokens(examples: list[Example], base_model: str) -> tuple[list[int], str]:
    """Tokens per example, counted like OpenAI's cookbook: 3 per message + role + content, + 3 per example.
    Uses the real BPE (``quicktok`` ships the encodings offline) or, without it, characters / 4."""
    texts: list[list[str]] = [[t for msgs in message_lists(ex) for m in msgs for t in m] for ex in examples]
    flat = [t for ts in texts for t in ts]
    exact = encoded_lengths(flat, base_model)
    if exact is not None:
        counts = iter(exact)
        note = f"counted with {encoding_name(base_model)}"
    else:
        counts = iter(len(t) // 4 for t in flat)
        note = "estimated as characters / 4 (quicktok not installed)"
    per_example = []
    for ts in texts:
        n_messages = len(ts) // 2
        per_example.append(sum(next(counts) for _ in ts) + 3 * n_messages + 3)
    return per_example, note


def hyperparameters(config: ResolvedConfig, method: str) -> dict[str, Any]:
    """The job's hyperparameters under OpenAI's names ('auto' lets the service choose)."""
    t = config.training
    epochs = t.epochs if t.epochs == "auto" else int(t.epochs)
    out = {"n_epochs": epochs, "batch_size": t.batch_size, "learning_rate_multiplier": t.learning_rate_multiplier}
    if method == "dpo":
        out["beta"] = t.beta
    return out


def format_row(row: dict, method: str) -> dict:
    """A built dataset row (provider-neutral) in OpenAI's training format."""
    if method == "dpo":
        return {"input": {"messages": row["prompt"]}, "preferred_output": row["chosen"],
                "non_preferred_output": row["rejected"]}
    return {"messages": row["messages"]}


class OpenAIProvider:
    name = "openai"

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._clients: dict[tuple, Any] = {}
        self._clients_lock = threading.Lock()

    # -- offline (plan) --------------------------------------------------------------------

    def settings(self, config: ResolvedConfig) -> OpenAISettings:
        return validated_settings(OpenAISettings, config.provider, "conf/provider/openai.yaml")

    def min_examples(self, config: ResolvedConfig) -> int:
        return self.settings(config).min_examples

    def max_parallel_jobs(self, config: ResolvedConfig) -> int:
        return self.settings(config).max_parallel_jobs

    def result_config(self, config: ResolvedConfig) -> dict[str, Any]:
        return {"hyperparameters": hyperparameters(config, "dpo"), "seed": config.training.seed}

    def check(self, method: str, base_model: str, config: ResolvedConfig) -> list[ConfigProblem]:
        s = self.settings(config)
        problems = []
        if base_model not in s.training_price_per_1m_tokens:
            known = ", ".join(sorted(s.training_price_per_1m_tokens))
            problems.append(ConfigProblem(("spec", "base_model"),
                                          f"{base_model!r} is not a fine-tunable OpenAI model in conf/provider/"
                                          f"openai.yaml (known: {known})"))
        t = config.training
        problems += range_problems((("epochs", t.epochs), ("batch_size", t.batch_size),
                                    ("learning_rate_multiplier", t.learning_rate_multiplier), ("beta", t.beta)),
                                   s.hyperparameter_ranges, "OpenAI")
        if method == "sft" and t.beta != "auto":
            problems.append(ConfigProblem(("spec", "training", "beta"), "beta applies to method dpo only"))
        if t.epochs != "auto" and float(t.epochs) != int(t.epochs):
            problems.append(ConfigProblem(("spec", "training", "epochs"), "OpenAI trains whole epochs"))
        return problems

    def inspect(self, examples: list[Example], method: str, base_model: str, config: ResolvedConfig) -> DatasetReport:
        s = self.settings(config)
        issues = []
        tokens, note = count_tokens(examples, base_model)
        for ex, n in zip(examples, tokens, strict=True):
            if isinstance(ex, ChatExample) and not any(r == "assistant" for r, _ in ex.messages):
                issues.append(Issue(ex.source, ex.line, 1, "", "no assistant message: nothing to learn"))
            if n > s.max_tokens_per_example:
                issues.append(Issue(ex.source, ex.line, 1, "",
                                    f"example has {n:,} tokens; OpenAI accepts at most {s.max_tokens_per_example:,}"))
        return DatasetReport(len(examples), sum(tokens), issues, note)

    def estimate(self, tokens: int, config: ResolvedConfig, base_model: str) -> CostEstimate:
        s = self.settings(config)
        epochs = config.training.epochs
        n = AUTO_EPOCHS_ASSUMED if epochs == "auto" else float(epochs)
        price = s.training_price_per_1m_tokens.get(base_model, 0.0)
        trained = int(tokens * n)
        usd = trained / 1e6 * price
        auto = f" (epochs auto: assumed {AUTO_EPOCHS_ASSUMED})" if epochs == "auto" else ""
        return CostEstimate(trained, 0.0, usd, f"{tokens:,} tokens x {n:g} epochs{auto} x ${price:g}/1M")

    def risks(self, base_model: str, config: ResolvedConfig, today: date) -> list[str]:
        s = self.settings(config)
        out = []
        for what, when in (("OpenAI hosted fine-tuning accepts no new jobs", s.service_shutdown),
                           (f"base model {base_model} shuts down", s.model_shutdowns.get(base_model))):
            if when:
                days = (date.fromisoformat(when) - today).days
                tense = f"from {when} (in {days} days)" if days >= 0 else f"since {when}"
                out.append(f"{what} {tense}; plan a move to another provider (e.g. local)")
        return out

    # -- network (apply) -------------------------------------------------------------------

    def poll_intervals(self, config: ResolvedConfig) -> tuple[float, float]:
        s = self.settings(config)
        return s.poll_interval_s, s.max_poll_interval_s

    def client(self, config: ResolvedConfig):
        """An SDK client (one per endpoint, shared by threads); env variables are the SDK's own,
        config values override them."""
        s = self.settings(config)
        key = (s.base_url, s.organization, s.api_key_env, s.max_retries, s.timeout_s)
        with self._clients_lock:
            return self._clients.get(key) or self._clients.setdefault(key, self._new_client(s))

    def _new_client(self, s: OpenAISettings):
        import httpx2
        import openai

        # Many models apply at once, each with concurrent requests: widen the connection pool.
        limits = httpx2.Limits(max_connections=s.max_parallel_jobs * s.generate_concurrency,
                              max_keepalive_connections=64)
        kwargs: dict[str, Any] = {"max_retries": s.max_retries, "timeout": s.timeout_s,
                                  "http_client": openai.DefaultHttpxClient(limits=limits)}
        if s.base_url:
            kwargs["base_url"] = s.base_url
        if s.organization:
            kwargs["organization"] = s.organization
        if s.api_key_env:
            kwargs["api_key"] = os.environ.get(s.api_key_env)
        try:
            return openai.OpenAI(**kwargs)
        except openai.OpenAIError:
            var = s.api_key_env or "OPENAI_API_KEY"
            raise ProviderError(f"openai: no API key: set {var}") from None

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run an SDK call (the SDK already retried 408/409/429/5xx); map its errors to one clear line."""
        import openai

        try:
            return fn()
        except openai.APIStatusError as exc:
            message = exc.body.get("message") if isinstance(exc.body, dict) else None
            raise ProviderError(f"openai: {what} failed: HTTP {exc.status_code}: {message or exc.message}") from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"openai: {what} failed: cannot reach the API ({exc})") from None

    def submit(self, request: TrainRequest, record_upload: Callable[[Upload], None]) -> str:
        client = self.client(request.config)
        existing = self._find_job(client, request.key)
        if existing is not None:
            return existing.id
        files = {}
        for split in ("train", "validation"):
            data = training_file(request.dataset_dir, split, lambda row: format_row(row, request.method))
            if data:
                files[split] = self._upload(client, data, request.known_uploads, record_upload)
        t = request.config.training
        hyper = {k: v for k, v in hyperparameters(request.config, request.method).items() if v != "auto"}
        kind = "dpo" if request.method == "dpo" else "supervised"
        method = {"type": kind, kind: {"hyperparameters": hyper}}
        job = self._call("create job", lambda: client.fine_tuning.jobs.create(
            model=request.base_model, training_file=files["train"], validation_file=files.get("validation"),
            suffix=request.model[:40], seed=t.seed, method=method,
            metadata={METADATA_KEY: request.key, "levcustom_model": request.model}))
        return job.id

    def _find_job(self, client, key: str):
        """A job already created for this fingerprint that is running or succeeded (failed ones are retried)."""
        page = self._call("list jobs", lambda: client.fine_tuning.jobs.list(metadata={METADATA_KEY: key}, limit=20))
        for job in page.data:
            if job.status not in ("failed", "cancelled"):
                return job
        return None

    def _upload(self, client, data: bytes, known: dict[str, str], record: Callable[[Upload], None]) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with keyed_lock(f"upload:{sha}"):  # models sharing a dataset in one apply: the first uploads, the rest find it
            return self._upload_once(client, data, sha, known, record)

    def _upload_once(self, client, data: bytes, sha: str, known: dict[str, str],
                     record: Callable[[Upload], None]) -> str:
        filename = f"levcustom-{sha[:40]}.jsonl"
        import openai

        if sha in known:
            try:
                client.files.retrieve(known[sha])
                return known[sha]
            except openai.NotFoundError:
                pass  # deleted at the provider since: upload again
        for f in self._call("list files", lambda: client.files.list(purpose="fine-tune")):
            if f.filename == filename:  # uploaded by an apply that crashed before recording it
                record(Upload(self.name, sha, f.id, len(data)))
                return f.id
        uploaded = self._call("upload", lambda: client.files.create(file=(filename, data), purpose="fine-tune"))
        record(Upload(self.name, sha, uploaded.id, len(data)))
        return uploaded.id

    def poll(self, job_id: str, request: TrainRequest) -> JobStatus:
        client = self.client(request.config)
        job = self._call("poll job", lambda: client.fine_tuning.jobs.retrieve(job_id))
        state = _STATES.get(job.status, "running")
        if state == "failed":
            err = job.error
            return JobStatus("failed", (err.message if err and err.message else "job failed at the provider"))
        if state == "cancelled":
            return JobStatus("cancelled", "drift: job cancelled at provider")
        metrics, progress, message = {}, None, job.status
        events = self._call("list events", lambda: client.fine_tuning.jobs.list_events(job_id, limit=10)).data
        step = next((e for e in events if e.type == "metrics" and e.data), None)
        if step is not None:
            data = dict(step.data)
            if data.get("total_steps"):
                progress = data["step"] / data["total_steps"]
                message = f"{job.status} step {data['step']}/{data['total_steps']}"
            if data.get("train_loss") is not None:
                metrics["loss"] = float(data["train_loss"])
        if state == "running":
            checkpoints = self._call("list checkpoints",
                                     lambda: client.fine_tuning.jobs.checkpoints.list(job_id, limit=1)).data
            if checkpoints:
                message += f", checkpoint at step {checkpoints[0].step_number}"
        if job.trained_tokens:
            metrics["trained_tokens"] = float(job.trained_tokens)
        return JobStatus(state, message, 1.0 if state == "succeeded" else progress, metrics)

    def result(self, job_id: str, request: TrainRequest) -> TrainResult:
        client = self.client(request.config)
        job = self._call("read job", lambda: client.fine_tuning.jobs.retrieve(job_id))
        metrics = {"trained_tokens": float(job.trained_tokens or 0)}
        events = self._call("list events", lambda: client.fine_tuning.jobs.list_events(job_id, limit=50)).data
        last = next((e for e in events if e.type == "metrics" and e.data and "train_loss" in e.data), None)
        if last is not None:
            metrics["train_loss"] = float(last.data["train_loss"])
        price = self.settings(request.config).training_price_per_1m_tokens.get(request.base_model, 0.0)
        cost = metrics["trained_tokens"] / 1e6 * price
        return TrainResult(job_id, job.fine_tuned_model, None, metrics, cost)

    def cancel(self, job_id: str, request: TrainRequest) -> None:
        client = self.client(request.config)
        self._call("cancel job", lambda: client.fine_tuning.jobs.cancel(job_id))

    def delete(self, state: TrainState, config: ResolvedConfig) -> None:
        client = self.client(config)
        import openai

        try:
            client.models.delete(state.model_ref)
        except openai.NotFoundError:
            pass  # already gone

    def refresh(self, state: TrainState, config: ResolvedConfig) -> str | None:
        client = self.client(config)
        import openai

        job = self._call("read job", lambda: client.fine_tuning.jobs.retrieve(state.job_id))
        if job.status == "cancelled":
            return "drift: job cancelled at provider"
        try:
            client.models.retrieve(state.model_ref)
        except openai.NotFoundError:
            return f"drift: fine-tuned model {state.model_ref} was deleted at the provider"
        return None

    def logs(self, state: TrainState, config: ResolvedConfig) -> list[str]:
        client = self.client(config)
        events = list(self._call("list events", lambda: client.fine_tuning.jobs.list_events(state.job_id, limit=100)))
        return [f"{e.created_at} [{e.level}] {e.message}" for e in reversed(events)]

    def count_tokens(self, base_model: str, texts: list[str], config: ResolvedConfig) -> list[int] | None:
        return encoded_lengths(texts, base_model)

    def generate(self, models: list[ModelRef], prompts: list[list[dict[str, str]]],
                 config: ResolvedConfig) -> list[list[str]]:
        client = self.client(config)
        s = self.settings(config)

        def answer(model: str, messages: list[dict[str, str]]) -> str:
            reply = self._call("chat completion", lambda: client.chat.completions.create(
                model=model, messages=messages, temperature=0, max_tokens=config.eval.max_new_tokens))
            return (reply.choices[0].message.content or "").strip()

        with ThreadPoolExecutor(max_workers=s.generate_concurrency) as pool:
            return [list(pool.map(lambda p, m=m: answer(m.ref or m.base_model, p), prompts)) for m in models]

