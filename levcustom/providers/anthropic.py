"""``provider: anthropic``: Claude fine-tuning as an Amazon Bedrock model customization job.

Anthropic's own API has no fine-tuning endpoint; Bedrock tunes Claude (3 Haiku) on supervised
chat data. Idempotency:
- training files go to S3 under the sha256 of their bytes; the lockfile's record is verified with
  a HEAD, else the key is looked for before uploading, so the same bytes are never sent twice;
- a job's name and ``clientRequestToken`` are ``<model>-<stage fingerprint>``, and the name is
  looked up before creating (Bedrock honors the token; the name lookup also covers moto, which
  does not), so a crash between create and the lockfile write never makes a second job. A
  failed or stopped attempt is retried under the next attempt name (``-r2``, ...).
The custom model is named like its job, so it can be found, refreshed and deleted by name.
Serving it needs provisioned throughput (``levcustom.providers.provisioned``), created by
the deploy stage only when ``provider.provisioned_throughput.enabled`` is set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from levcustom.config.models import ResolvedConfig
from levcustom.datasets.jsonl import ChatExample, Example, load_examples
from levcustom.errors import Issue, ProviderError
from levcustom.providers import provisioned
from levcustom.providers.aws import AwsClients, tag_list
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
from levcustom.providers.bedrock_format import estimate_tokens, format_problem, to_bedrock
from levcustom.providers.hosted import range_problems, training_file, validated_settings
from levcustom.state.keyedlock import keyed_lock
from levcustom.state.lockfile import TrainState
from levcustom.workspace import Workspace

CONF = "conf/provider/anthropic.yaml"
_STATES: dict[str, Literal["queued", "running", "succeeded", "failed", "cancelled"]] = {
    "InProgress": "running", "Completed": "succeeded", "Failed": "failed", "Stopping": "cancelled",
    "Stopped": "cancelled"}


class ProvisionedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    model_units: int = Field(1, ge=1)
    commitment: Literal["none", "OneMonth", "SixMonths"] = "none"
    wait_timeout_s: float = Field(3600.0, gt=0)


class AnthropicSettings(BaseModel):
    """``conf/provider/anthropic.yaml``, validated."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["anthropic"]
    region: str | None = None
    role_arn: str | None = None
    s3_uri: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    tags: dict[str, str] = Field(default_factory=dict)
    base_models: dict[str, str]
    inference_models: dict[str, str] = Field(default_factory=dict)
    min_examples: int = Field(32, ge=1)
    max_examples: int = Field(10_000, ge=1)
    max_validation_examples: int = Field(1_000, ge=0)
    max_tokens_per_example: int = Field(32_000, gt=0)
    hyperparameter_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    default_epochs: int = Field(2, ge=1)
    training_price_per_1m_tokens: dict[str, float] = Field(default_factory=dict)
    max_retries: int = Field(5, ge=0)
    poll_interval_s: float = Field(30.0, gt=0)
    max_poll_interval_s: float = Field(300.0, gt=0)
    max_parallel_jobs: int = Field(4, ge=1)
    generate_concurrency: int = Field(4, ge=1)
    provisioned_throughput: ProvisionedSettings = Field(default_factory=ProvisionedSettings)
    provisioned_usd_per_hour: dict[str, dict[str, float]] = Field(default_factory=dict)

    def bedrock_id(self, base_model: str) -> str:
        """A spec's base model (alias or Bedrock id) as Bedrock's fine-tunable model id."""
        return self.base_models.get(base_model, base_model)

    def bucket_and_prefix(self) -> tuple[str, str]:
        bucket, _, prefix = (self.s3_uri or "").removeprefix("s3://").partition("/")
        return bucket, prefix.strip("/")


def job_name(model: str, key: str, attempt: int = 1) -> str:
    """The job (and custom model) name of one training attempt, and its clientRequestToken: the
    model's name (two specs may train on identical inputs, each gets its own job) and the
    idempotency key, within Bedrock's 63 characters."""
    stem = f"{model[:24]}-{key}"
    return stem if attempt == 1 else f"{stem}-r{attempt}"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.aws = AwsClients("anthropic")

    # -- offline (plan) --------------------------------------------------------------------

    def settings(self, config: ResolvedConfig) -> AnthropicSettings:
        return validated_settings(AnthropicSettings, config.provider, CONF)

    def min_examples(self, config: ResolvedConfig) -> int:
        return self.settings(config).min_examples

    def max_parallel_jobs(self, config: ResolvedConfig) -> int:
        return self.settings(config).max_parallel_jobs

    def poll_intervals(self, config: ResolvedConfig) -> tuple[float, float]:
        s = self.settings(config)
        return s.poll_interval_s, s.max_poll_interval_s

    def result_config(self, config: ResolvedConfig) -> dict[str, Any]:
        t = config.training
        return {"hyperparameters": {"epochCount": t.epochs, "batchSize": t.batch_size,
                                    "learningRateMultiplier": t.learning_rate_multiplier}}

    def check(self, method: str, base_model: str, config: ResolvedConfig) -> list[ConfigProblem]:
        s = self.settings(config)
        problems = []
        if method != "sft":
            problems.append(ConfigProblem(("spec", "method"), f"Bedrock fine-tunes Claude on supervised chat data "
                                                              f"only (method sft; got {method!r})"))
        known = set(s.base_models) | set(s.base_models.values())
        if base_model not in known:
            problems.append(ConfigProblem(("spec", "base_model"), f"{base_model!r} is not a fine-tunable Claude model "
                                                                  f"in {CONF} (known: {', '.join(sorted(known))})"))
        for key in ("role_arn", "s3_uri"):
            if not getattr(s, key):
                problems.append(ConfigProblem(("spec", "provider"), f"{CONF}: {key} is not set (add "
                                                                    f"\"provider.{key}=...\" to spec.overrides)"))
        t = config.training
        problems += range_problems((("epochs", t.epochs), ("batch_size", t.batch_size),
                                    ("learning_rate_multiplier", t.learning_rate_multiplier)),
                                   s.hyperparameter_ranges, "Bedrock")
        if t.epochs != "auto" and float(t.epochs) != int(t.epochs):
            problems.append(ConfigProblem(("spec", "training", "epochs"), "Bedrock takes a whole number of epochs"))
        if t.beta != "auto":
            problems.append(ConfigProblem(("spec", "training", "beta"), "beta applies to DPO, which Bedrock does "
                                                                        "not offer for Claude"))
        return problems

    def inspect(self, examples: list[Example], method: str, base_model: str, config: ResolvedConfig) -> DatasetReport:
        s = self.settings(config)
        issues, tokens = [], 0
        for ex in examples:
            if not isinstance(ex, ChatExample):
                continue  # check() already refuses preference data
            problem = format_problem(ex.messages)
            n = estimate_tokens(ex.messages)
            tokens += n
            if problem is None and n > s.max_tokens_per_example:
                problem = f"example has ~{n:,} tokens; Bedrock accepts at most {s.max_tokens_per_example:,}"
            if problem:
                issues.append(Issue(ex.source, ex.line, 1, "", problem))
        if len(examples) > s.max_examples:
            first = examples[0]
            issues.append(Issue(first.source, first.line, 1, "", f"{len(examples):,} examples; Bedrock accepts at "
                                                                 f"most {s.max_examples:,} per job"))
        return DatasetReport(len(examples), tokens, issues, "estimated as characters / 4")

    def estimate(self, tokens: int, config: ResolvedConfig, base_model: str) -> CostEstimate:
        s = self.settings(config)
        epochs = config.training.epochs
        n = s.default_epochs if epochs == "auto" else int(epochs)
        price = s.training_price_per_1m_tokens.get(s.bedrock_id(base_model), 0.0)
        trained = tokens * n
        auto = f" (epochs auto: Bedrock's default {s.default_epochs})" if epochs == "auto" else ""
        return CostEstimate(trained, 0.0, trained / 1e6 * price,
                            f"{tokens:,} tokens x {n} epochs{auto} x ${price:g}/1M on Bedrock")

    def risks(self, base_model: str, config: ResolvedConfig, today: date) -> list[str]:
        if self.settings(config).provisioned_throughput.enabled:
            return []
        return ["a Claude model tuned on Bedrock answers only through provisioned throughput, which is not "
                "enabled: evals of the tuned model fail and resolve returns the custom model ARN (opt in with "
                "provider.provisioned_throughput.enabled=true; billed per hour)"]

    # -- serving (the deploy stage) ---------------------------------------------------------

    def serving_config(self, config: ResolvedConfig) -> dict[str, Any]:
        pt = self.settings(config).provisioned_throughput
        return {"provisioned_throughput": pt.model_dump(include={"model_units", "commitment"})} if pt.enabled else {}

    def serving_estimate(self, base_model: str, config: ResolvedConfig) -> CostEstimate | None:
        s = self.settings(config)
        pt = s.provisioned_throughput
        if not pt.enabled:
            return None
        hourly = s.provisioned_usd_per_hour.get(s.bedrock_id(base_model), {}).get(pt.commitment, 0.0)
        usd = hourly * pt.model_units
        term = "no commitment" if pt.commitment == "none" else f"{pt.commitment} commitment"
        return CostEstimate(0, 1.0, usd, f"per hour while deployed: provisioned throughput {pt.model_units} model "
                                         f"unit(s) x ${hourly:g}/h ({term}), ~${usd * 24 * 30:,.0f} per 30 days")

    def serve(self, train: TrainState, config: ResolvedConfig) -> str | None:
        s = self.settings(config)
        if not s.provisioned_throughput.enabled:
            return None
        pt = s.provisioned_throughput
        capacity = provisioned.Capacity(pt.model_units, pt.commitment, pt.wait_timeout_s, s.poll_interval_s)
        tags = {**s.tags, "levcustom:job": train.job_id}
        return provisioned.ensure(self.aws, self._bedrock(s), train.model_ref, capacity, tags)

    def unserve(self, endpoint: str, config: ResolvedConfig) -> None:
        provisioned.delete(self.aws, self._bedrock(self.settings(config)), endpoint)

    # -- network (apply) -------------------------------------------------------------------

    def _bedrock(self, s: AnthropicSettings):
        return self.aws.client("bedrock", s.region, s.max_retries)

    def submit(self, request: TrainRequest, record_upload: Callable[[Upload], None]) -> str:
        s = self.settings(request.config)
        client = self._bedrock(s)
        attempts = self._attempts(client, request.model, request.key)
        live = [j for j in attempts if j["status"] not in ("Failed", "Stopped", "Stopping")]
        if live:
            return live[0]["jobName"]
        uris = {}
        for split in ("train", "validation"):
            data = training_file(request.dataset_dir, split, lambda row: to_bedrock(row["messages"]))
            if data:
                uris[split] = self._upload(s, data, request.known_uploads, record_upload)
        name = job_name(request.model, request.key, len(attempts) + 1)
        bucket, prefix = s.bucket_and_prefix()
        t = request.config.training
        hyper = {k: str(int(v) if k == "epochCount" else v)
                 for k, v in (("epochCount", t.epochs), ("batchSize", t.batch_size),
                              ("learningRateMultiplier", t.learning_rate_multiplier)) if v != "auto"}
        tags = tag_list({**s.tags, "levcustom:model": request.model, "levcustom:fingerprint": request.key})
        kwargs: dict[str, Any] = {}
        if "validation" in uris:
            kwargs["validationDataConfig"] = {"validators": [{"s3Uri": uris["validation"]}]}
        self.aws.call("create customization job", lambda: client.create_model_customization_job(
            jobName=name, customModelName=name, roleArn=s.role_arn, clientRequestToken=name,
            baseModelIdentifier=s.bedrock_id(request.base_model), customizationType="FINE_TUNING",
            trainingDataConfig={"s3Uri": uris["train"]},
            outputDataConfig={"s3Uri": f"s3://{bucket}/{_join(prefix, 'output', request.model)}/"},
            hyperParameters=hyper, jobTags=tags, customModelTags=tags, **kwargs))
        return name

    def _attempts(self, client, model: str, key: str) -> list[dict]:
        """Every job created for this model and key, newest attempt first."""
        stem = job_name(model, key)
        page = self.aws.call("list customization jobs", lambda: client.list_model_customization_jobs(
            nameContains=stem, maxResults=100))
        jobs = [j for j in page.get("modelCustomizationJobSummaries", [])
                if j["jobName"] == stem or j["jobName"].startswith(f"{stem}-r")]
        return sorted(jobs, key=lambda j: 1 if j["jobName"] == stem else int(j["jobName"].rsplit("-r", 1)[1]),
                      reverse=True)

    def _upload(self, s: AnthropicSettings, data: bytes, known: dict[str, str],
                record: Callable[[Upload], None]) -> str:
        sha = hashlib.sha256(data).hexdigest()
        bucket, prefix = s.bucket_and_prefix()
        key = _join(prefix, "data", f"levcustom-{sha}.jsonl")
        uri = f"s3://{bucket}/{key}"
        s3 = self.aws.client("s3", s.region, s.max_retries)
        with keyed_lock(f"upload:{sha}"):  # models sharing a dataset in one apply: the first uploads, the rest find it
            head = self.aws.call("check upload", lambda: s3.head_object(Bucket=bucket, Key=key), missing_ok=True)
            if head is None or head["ContentLength"] != len(data):
                self.aws.call("upload", lambda: s3.put_object(Bucket=bucket, Key=key, Body=data,
                                                              ContentType="application/jsonl"))
            if known.get(sha) != uri:  # new, or uploaded by an apply that crashed before recording it
                record(Upload(self.name, sha, uri, len(data)))
        return uri

    def _job(self, job_id: str, config: ResolvedConfig) -> dict:
        client = self._bedrock(self.settings(config))
        return self.aws.call("read customization job",
                             lambda: client.get_model_customization_job(jobIdentifier=job_id))

    def poll(self, job_id: str, request: TrainRequest) -> JobStatus:
        job = self._job(job_id, request.config)
        state = _STATES.get(job["status"], "running")
        if state == "failed":
            return JobStatus("failed", job.get("failureMessage") or "job failed at the provider")
        if state == "cancelled":
            return JobStatus("cancelled", "drift: job stopped at provider")
        steps = job.get("statusDetails", {})
        current = next((f"{name.removesuffix('Details')} {d['status']}" for name, d in steps.items()
                        if isinstance(d, dict) and d.get("status") == "InProgress"), "")
        metrics = _metrics(job)
        message = f"{job['status']}" + (f" ({current})" if current else "")
        return JobStatus(state, message, 1.0 if state == "succeeded" else None,
                         {"loss": metrics["train_loss"]} if "train_loss" in metrics else {})

    def result(self, job_id: str, request: TrainRequest) -> TrainResult:
        s = self.settings(request.config)
        job = self._job(job_id, request.config)
        client = self._bedrock(s)
        model = self.aws.call("read custom model", lambda: client.get_custom_model(modelIdentifier=job_id))
        metrics = _metrics(job)
        # Bedrock reports no trained-token count: the cost is the plan's estimate for the data it trained on.
        rows = load_examples(request.dataset_dir / "train.jsonl")
        tokens = sum(estimate_tokens(tuple((m["role"], m["content"]) for m in r["messages"])) for r in rows)
        est = self.estimate(tokens, request.config, request.base_model)
        metrics["estimated_trained_tokens"] = float(est.tokens)
        return TrainResult(job_id, model["modelArn"], None, metrics, est.usd)

    def cancel(self, job_id: str, request: TrainRequest) -> None:
        client = self._bedrock(self.settings(request.config))
        self.aws.call("stop customization job", lambda: client.stop_model_customization_job(jobIdentifier=job_id))

    def delete(self, state: TrainState, config: ResolvedConfig) -> None:
        client = self._bedrock(self.settings(config))
        self.aws.call("delete custom model", lambda: client.delete_custom_model(modelIdentifier=state.job_id),
                      missing_ok=True)

    def refresh(self, state: TrainState, config: ResolvedConfig) -> str | None:
        client = self._bedrock(self.settings(config))
        job = self.aws.call("read customization job",
                            lambda: client.get_model_customization_job(jobIdentifier=state.job_id), missing_ok=True)
        if job is None:
            return f"drift: customization job {state.job_id} no longer exists at the provider"
        if job["status"] in ("Stopped", "Stopping"):
            return "drift: job stopped at provider"
        model = self.aws.call("read custom model",
                              lambda: client.get_custom_model(modelIdentifier=state.job_id), missing_ok=True)
        if model is None:
            return f"drift: custom model {state.model_ref} was deleted at the provider"
        return None

    def logs(self, state: TrainState, config: ResolvedConfig) -> list[str]:
        """Bedrock keeps no event stream for a job: its timeline, per-step status and metrics instead."""
        job = self._job(state.job_id, config)
        lines = [f"{job.get('creationTime')} created {job['jobName']} ({job.get('baseModelArn', '')})"]
        for name, d in job.get("statusDetails", {}).items():
            if isinstance(d, dict):
                lines.append(f"{d.get('lastModifiedTime', '')} {name.removesuffix('Details')}: {d.get('status')}")
        lines += [f"{job.get('lastModifiedTime')} {k}: {v:g}" for k, v in _metrics(job).items()]
        end = job.get("failureMessage") if job["status"] == "Failed" else ""
        lines.append(f"{job.get('endTime', '')} {job['status']}" + (f": {end}" if end else ""))
        return lines

    def generate(self, models: list[ModelRef], prompts: list[list[dict[str, str]]],
                 config: ResolvedConfig) -> list[list[str]]:
        """Answers through the Converse API: the base model on demand, a tuned one through its
        provisioned throughput (created here first when the user opted in)."""
        s = self.settings(config)
        runtime = self.aws.client("bedrock-runtime", s.region, s.max_retries)

        def model_id(m: ModelRef) -> str:
            if m.ref is None:
                base = s.bedrock_id(m.base_model)
                return s.inference_models.get(base, base)
            found = provisioned.serving(self.aws, self._bedrock(s), m.ref)
            if found:
                return found
            raise ProviderError(f"anthropic: {m.ref} has no provisioned throughput in service, so it cannot answer "
                                "eval prompts: enable provider.provisioned_throughput (the plan shows the hourly "
                                "price) or drop spec.evals")

        def answer(mid: str, messages: list[dict[str, str]]) -> str:
            system = [{"text": m["content"]} for m in messages if m["role"] == "system"]
            turns = [{"role": m["role"], "content": [{"text": m["content"]}]}
                     for m in messages if m["role"] != "system"]
            kwargs = {"system": system} if system else {}
            reply = self.aws.call("converse", lambda: runtime.converse(
                modelId=mid, messages=turns, inferenceConfig={"maxTokens": config.eval.max_new_tokens,
                                                              "temperature": 0.0}, **kwargs))
            return "".join(b.get("text", "") for b in reply["output"]["message"]["content"]).strip()

        with ThreadPoolExecutor(max_workers=s.generate_concurrency) as pool:
            out = []
            for m in models:
                mid = model_id(m)
                out.append(list(pool.map(lambda p, mid=mid: answer(mid, p), prompts)))
            return out


def _metrics(job: dict) -> dict[str, float]:
    out = {}
    loss = job.get("trainingMetrics", {}).get("trainingLoss")
    if loss is not None:
        out["train_loss"] = float(loss)
    validation = [v["validationLoss"] for v in job.get("validationMetrics", []) if "validationLoss" in v]
    if validation:
        out["validation_loss"] = float(validation[-1])
    return out


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)
