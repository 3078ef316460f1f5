"""What each stage does when applied. Each runner writes its lock block only on success,
and writes an intent before any side effect that costs money or time (training)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from dataclasses import dataclass

from levcustom.apply.progress import Reporter
from levcustom.config.models import ResolvedConfig
from levcustom.datasets.build import build_dataset
from levcustom.errors import GateFailedError, LevcustomError, ProviderError
from levcustom.evals.gates import check_gates
from levcustom.evals.metrics import METRIC_FUNCTIONS
from levcustom.evals.suite import EvalCase, load_suite
from levcustom.plan.desired import Context
from levcustom.plan.model import StageChange
from levcustom.providers import get_provider
from levcustom.providers.base import JobStatus, ModelRef, Provider, TrainRequest, Upload
from levcustom.spec.loader import LoadedSpec
from levcustom.spec.schema import EXAMPLE_KIND
from levcustom.state.atomic import atomic_write_text
from levcustom.state.keyedlock import keyed_lock
from levcustom.state.lockfile import (
    DatasetState,
    DeployState,
    EvalState,
    Intent,
    Lock,
    MetricResult,
    ModelState,
    SourceRecord,
    StateStore,
    TrainState,
    UploadRecord,
)
from levcustom.workspace import Workspace


class Interrupted(LevcustomError):
    """Apply was interrupted; the lockfile is consistent and the next apply resumes."""


@dataclass
class StageContext:
    ws: Workspace
    store: StateStore
    reporter: Reporter
    cancel: threading.Event
    job_slots: dict[str, threading.Semaphore]
    purge: bool = False


def _model(lock: Lock, name: str) -> ModelState:
    return lock.models[name]


def run_dataset(sc: StageContext, ls: LoadedSpec, cfg: ResolvedConfig, change: StageChange) -> str:
    provider = get_provider(ls.model.spec.provider, sc.ws)
    built = build_dataset(sc.ws, ls.model.spec.dataset, provider.min_examples(cfg), EXAMPLE_KIND[ls.model.spec.method])
    sources = [SourceRecord(path=s["key"], sha256=s["sha256"], records=s["records"])
               for s in change.inputs["sources"]]
    state = DatasetState(fingerprint=change.fingerprint, inputs=change.inputs, artifact=sc.ws.rel(built.artifact),
                         sha256=built.sha256, train_rows=built.train_rows, validation_rows=built.validation_rows,
                         sources=sources)

    def write(lock: Lock) -> None:
        sc.store.model(ls.name, ls.file)(lock).dataset = state

    sc.store.update(write)
    return (f"{built.train_rows} train / {built.validation_rows} validation / {built.rows['eval']} eval examples "
            f"({built.work.read} source rows read, {built.work.reused} reused from the cache)")


def run_train(sc: StageContext, ls: LoadedSpec, cfg: ResolvedConfig, change: StageChange) -> str:
    body = ls.model.spec
    provider = get_provider(body.provider, sc.ws)
    dataset = _model(sc.store.lock, ls.name).dataset
    known = {u.sha256: u.file_id for u in sc.store.lock.uploads.values() if u.provider == provider.name}
    key = _job_key(_model(sc.store.lock, ls.name), change.fingerprint)
    request = TrainRequest(model=ls.name, key=key, base_model=body.base_model, method=body.method,
                           dataset_dir=sc.ws.root / dataset.artifact, config=cfg,
                           work_dir=sc.ws.runs / "train" / change.fingerprint, known_uploads=known)

    def set_intent(job_id: str | None, key: str):
        def write(lock: Lock) -> None:
            m = sc.store.model(ls.name, ls.file)(lock)
            m.intents["train"] = Intent(stage="train", fingerprint=change.fingerprint, provider=provider.name,
                                        key=key, job_id=job_id, pid=os.getpid())
        sc.store.update(write)

    slot = sc.job_slots.setdefault(provider.name, threading.Semaphore(provider.max_parallel_jobs(cfg)))
    with slot:
        set_intent(None, request.key)  # before submit: a crash from here on is resumed by key, never re-submitted blind
        with keyed_lock(f"{provider.name}:{request.key}"):  # models with identical training share one job
            job_id = provider.submit(request, lambda upload: _record_upload(sc, upload))
        set_intent(job_id, request.key)
        _follow(sc, provider, job_id, request)
    result = provider.result(job_id, request)
    state = TrainState(fingerprint=change.fingerprint, inputs=change.inputs, provider=provider.name,
                       job_id=result.job_id, model_ref=result.model_ref, artifact_sha256=result.artifact_sha256,
                       metrics=result.metrics, cost_usd=result.cost_usd)

    def write(lock: Lock) -> None:
        m = _model(lock, ls.name)
        m.train = state
        m.intents.pop("train", None)

    sc.store.update(write)
    loss = result.metrics.get("train_loss")
    return f"{result.model_ref}" + (f" (train loss {loss:.3f})" if loss is not None else "")


def _job_key(state: ModelState, fingerprint: str) -> str:
    """The idempotency key of a training: its fingerprint, unless it replaces a version the provider
    lost (drift) with the same fingerprint; then the old job must not be found and followed again."""
    old = state.train
    if old is not None and old.drift and old.fingerprint == fingerprint:
        return hashlib.sha256(f"{fingerprint}:replaces:{old.job_id}".encode()).hexdigest()[:32]
    return fingerprint


def _record_upload(sc: StageContext, upload: Upload) -> None:
    def write(lock: Lock) -> None:
        lock.uploads[f"{upload.provider}:{upload.sha256}"] = UploadRecord(
            provider=upload.provider, sha256=upload.sha256, file_id=upload.file_id, bytes=upload.bytes)
    sc.store.update(write)


def _follow(sc: StageContext, provider: Provider, job_id: str, request: TrainRequest) -> None:
    """Poll with backoff until the job ends (the delay resets whenever the status changes);
    a provider failure clears the intent so the next apply starts fresh."""
    first, most = provider.poll_intervals(request.config)
    delay, last = first, None
    while True:
        status = provider.poll(job_id, request)
        sc.reporter.job_status(request.model, status)
        delay = first if status != last else min(delay * 1.5, most)
        last = status
        if status.state == "succeeded":
            return
        if status.state in ("failed", "cancelled"):
            def clear(lock: Lock) -> None:
                _model(lock, request.model).intents.pop("train", None)
            sc.store.update(clear)
            raise ProviderError(f"training job {job_id} {status.state}: {status.message}")
        if sc.cancel.is_set():
            raise Interrupted("interrupted while training; the job's checkpoints are kept")
        sc.cancel.wait(delay)


def run_eval(sc: StageContext, ls: LoadedSpec, cfg: ResolvedConfig, change: StageChange) -> str:
    body = ls.model.spec
    provider = get_provider(body.provider, sc.ws)
    m = _model(sc.store.lock, ls.name)
    suites = {s.path: load_suite(sc.ws.resolve_path(s.path), s.path) for s in body.evals.suites}
    cases: list[EvalCase] = [c for path in suites for c in suites[path]]
    starts, n = {}, 0
    for path, suite_cases in suites.items():  # suites sharing a file share its answers
        starts[path], n = n, n + len(suite_cases)
    prompts = [c.as_messages() for c in cases]
    base_out = _cached_generate(sc, ls.name, provider, cfg, ModelRef(body.base_model), prompts)
    tuned_out = _cached_generate(sc, ls.name, provider, cfg, ModelRef(body.base_model, m.train.model_ref), prompts)
    results: dict[str, MetricResult] = {}
    rows = []
    for suite in body.evals.suites:
        fn = METRIC_FUNCTIONS[suite.metric]
        tuned_scores, base_scores = [], []
        for i, case in enumerate(suites[suite.path], start=starts[suite.path]):
            t, b = fn(tuned_out[i], case.expected), fn(base_out[i], case.expected)
            tuned_scores.append(t)
            base_scores.append(b)
            rows.append({"suite": suite.name, "metric": suite.metric, "line": case.line, "tags": case.tags,
                         "expected": case.expected, "tuned": tuned_out[i], "base": base_out[i],
                         "tuned_score": t, "base_score": b})
        count = len(tuned_scores)
        results[f"{suite.name}.{suite.metric}"] = MetricResult(tuned=sum(tuned_scores) / count,
                                                               base=sum(base_scores) / count, cases=count)
    deployed = m.deploy.eval_results if m.deploy else None
    gates = check_gates(list(body.evals.gates), results, deployed)
    run_dir = sc.ws.runs / "eval" / change.fingerprint
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "cases.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    state = EvalState(fingerprint=change.fingerprint, inputs=change.inputs, results=results, gates=gates,
                      passed=all(g.passed for g in gates), run_dir=sc.ws.rel(run_dir))

    def write(lock: Lock) -> None:
        _model(lock, ls.name).eval = state

    sc.store.update(write)
    scores = ", ".join(f"{k} {r.tuned:.2f} (base {r.base:.2f})" for k, r in results.items())
    verdict = "gates passed" if state.passed else "GATE FAILED: " + "; ".join(g.detail for g in gates if not g.passed)
    return f"{scores}; {verdict}" if scores else verdict


def _cached_generate(sc: StageContext, model: str, provider: Provider, cfg: ResolvedConfig, ref: ModelRef,
                     prompts: list[list[dict[str, str]]]) -> list[str]:
    """Generation is deterministic (greedy): cache it by model, prompts and settings, so a new gate
    threshold or a re-run of an unchanged model costs no inference."""
    key = hashlib.sha256(json.dumps([provider.name, ref.base_model, ref.ref, prompts, cfg.eval.model_dump(),
                                     cfg.hardware.precision], sort_keys=True).encode()).hexdigest()[:32]
    path = sc.ws.runs / "generations" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if not prompts:
        return []
    which = "tuned" if ref.ref else "base"
    sc.reporter.job_status(model, JobStatus("running", f"generating {len(prompts)} answers ({which} model)"))
    outputs = provider.generate([ref], prompts, cfg)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(outputs))
    return outputs


def run_deploy(sc: StageContext, ls: LoadedSpec, cfg: ResolvedConfig, change: StageChange) -> str:
    m = _model(sc.store.lock, ls.name)
    if not m.eval.passed:
        failed = "; ".join(g.detail for g in m.eval.gates if not g.passed)
        kept = " (the previous deployment is kept)" if m.deploy else ""
        raise GateFailedError(f"{ls.name}: not deployed, eval gate failed: {failed}{kept}")
    dep = ls.model.spec.deploy
    state = DeployState(fingerprint=change.fingerprint, inputs=change.inputs, agents=sorted(dep.agents),
                        tasks=sorted(dep.tasks), provider=m.train.provider, base_model=ls.model.spec.base_model,
                        model_ref=m.train.model_ref, eval_results=m.eval.results)

    def write(lock: Lock) -> None:
        _model(lock, ls.name).deploy = state

    sc.store.update(write)
    return f"to agents [{', '.join(state.agents)}] tasks [{', '.join(state.tasks)}]"


def run_destroy(sc: StageContext, ctx: Context, model: str, change: StageChange) -> str:
    m = _model(sc.store.lock, model)
    note = "removed from the lockfile"
    if sc.purge and change.stage == "train" and m.train:
        get_provider(m.train.provider, sc.ws).delete(m.train, ctx.config_for(model, m.train.provider))
        note = f"deleted {m.train.model_ref}"
    if sc.purge and change.stage == "dataset" and m.dataset:
        shutil.rmtree(sc.ws.root / m.dataset.artifact, ignore_errors=True)
        note = f"deleted {m.dataset.artifact}"

    def write(lock: Lock) -> None:
        state = _model(lock, model)
        setattr(state, change.stage, None)
        if not any(state.stage(s) for s in ("dataset", "train", "eval", "deploy")):
            del lock.models[model]

    sc.store.update(write)
    return note


RUNNERS = {"dataset": run_dataset, "train": run_train, "eval": run_eval, "deploy": run_deploy}
