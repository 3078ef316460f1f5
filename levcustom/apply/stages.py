"""What each stage does when applied. Each runner writes its lock block only on success,
and writes an intent before any side effect that costs money or time (training)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass

from levcustom.apply.progress import Reporter
from levcustom.config.models import ResolvedConfig
from levcustom.datasets.build import build_dataset
from levcustom.datasets.cai import build_cai_dataset
from levcustom.deploy import online
from levcustom.errors import GateFailedError, LevcustomError, ProviderError
from levcustom.evals.runner import Generation, evaluate, load_suites
from levcustom.plan.desired import Context, ab_phase
from levcustom.plan.model import StageChange
from levcustom.providers import get_provider
from levcustom.providers.base import JobStatus, ModelRef, Provider, Serving, TokenCounter, TrainRequest, Upload
from levcustom.spec.loader import LoadedSpec
from levcustom.spec.schema import EXAMPLE_KIND
from levcustom.state.atomic import atomic_write_text
from levcustom.state.jsoncache import JsonCache
from levcustom.state.keyedlock import keyed_lock
from levcustom.state.lockfile import (
    DatasetState,
    DeployState,
    EvalState,
    Intent,
    Lock,
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
    body = ls.model.spec
    provider = get_provider(body.provider, sc.ws)
    note = ""
    if body.cai:
        def progress(done: int, total: int) -> None:
            sc.reporter.job_status(ls.name, JobStatus("running", f"constitutional AI: {done}/{total} prompts",
                                                      done / total))
        built, note = build_cai_dataset(sc.ws, body, cfg, provider.min_examples(cfg), progress)
    else:
        built = build_dataset(sc.ws, body.dataset, provider.min_examples(cfg), EXAMPLE_KIND[body.method])
    sources = [SourceRecord(path=s["key"], sha256=s["sha256"], records=s["records"])
               for s in change.inputs["sources"]]
    state = DatasetState(fingerprint=change.fingerprint, inputs=change.inputs, artifact=sc.ws.rel(built.artifact),
                         sha256=built.sha256, train_rows=built.train_rows, validation_rows=built.validation_rows,
                         sources=sources)

    def write(lock: Lock) -> None:
        sc.store.model(ls.name, ls.file)(lock).dataset = state

    sc.store.update(write)
    base = f"{built.train_rows} train / {built.validation_rows} validation / {built.rows['eval']} eval examples"
    if note:
        return f"{base}; {note}"
    return f"{base} ({built.work.read} source rows read, {built.work.reused} reused from the cache)"


def run_train(sc: StageContext, ls: LoadedSpec, cfg: ResolvedConfig, change: StageChange) -> str:
    body = ls.model.spec
    provider = get_provider(body.provider, sc.ws)
    dataset = _model(sc.store.lock, ls.name).dataset
    known = {u.sha256: u.file_id for u in sc.store.lock.uploads.values() if u.provider == provider.name}
    key = _job_key(_model(sc.store.lock, ls.name), change.fingerprint)
    request = TrainRequest(model=ls.name, key=key, base_model=body.base_model, method=body.train_method,
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
    suites = load_suites(sc.ws, body.evals, sc.ws.root / m.dataset.artifact if m.dataset else None)
    models: dict[str, tuple[Provider, ModelRef]] = {"tuned": (provider, ModelRef(body.base_model, m.train.model_ref)),
                                                   "base": (provider, ModelRef(body.base_model))}
    if m.deploy:  # paired comparisons with the deployed version need its answers to the same cases
        models["deployed"] = (get_provider(m.deploy.provider, sc.ws), ModelRef(m.deploy.base_model, m.deploy.model_ref))

    def generate(role: str, prompts: list[list[dict[str, str]]]) -> Generation:
        p, ref = models[role]
        return _cached_generate(sc, ls.name, p, cfg, ref, prompts)

    def judging(suite: str, done: int, total: int) -> None:
        sc.reporter.job_status(ls.name, JobStatus("running", f"judging {suite}: {done}/{total}", done / total))

    def count_tokens(role: str, texts: list[str]) -> list[int] | None:
        p, ref = models[role]
        return p.count_tokens(ref.base_model, texts, cfg) if isinstance(p, TokenCounter) else None

    run = evaluate(suites, body.evals.gates, list(models), generate, JsonCache(sc.ws.cache / "judge.json"),
                   judge_progress=judging, count_tokens=count_tokens)
    run_dir = sc.ws.runs / "eval" / change.fingerprint
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(r.to_json() + "\n" for r in run.rows)
    atomic_write_text(run_dir / "cases.jsonl", text)
    state = EvalState(fingerprint=change.fingerprint, inputs=change.inputs, results=run.results, gates=run.gates,
                      passed=run.passed, run_dir=sc.ws.rel(run_dir),
                      cases_sha256=hashlib.sha256(text.encode()).hexdigest())

    def write(lock: Lock) -> None:
        _model(lock, ls.name).eval = state

    sc.store.update(write)
    scores = ", ".join(f"{k} {r.tuned:.2f}" + (f" (base {r.base:.2f})" if r.base is not None else "")
                       + (f" [{r.errors} unscored]" if r.errors else "") for k, r in run.results.items())
    verdict = "gates passed" if state.passed else "GATE FAILED: " + "; ".join(g.detail for g in run.gates
                                                                               if not g.passed)
    return f"{scores}; {verdict}" if scores else verdict


def _cached_generate(sc: StageContext, model: str, provider: Provider, cfg: ResolvedConfig, ref: ModelRef,
                     prompts: list[list[dict[str, str]]]) -> Generation:
    """Generation is deterministic (greedy): cache it by model, prompts and settings, so a new gate
    threshold or a re-run of an unchanged model costs no inference. The measured wall time is kept
    with the answers (the latency metric)."""
    key = hashlib.sha256(json.dumps(["v2", provider.name, ref.base_model, ref.ref, prompts, cfg.eval.model_dump(),
                                     cfg.hardware.precision], sort_keys=True).encode()).hexdigest()[:32]
    path = sc.ws.runs / "generations" / f"{key}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        return Generation(cached["outputs"], cached["seconds"])
    if not prompts:  # no suites: nothing to ask (a hosted model may not even be servable yet)
        return Generation([], 0.0)
    which = "tuned" if ref.ref else "base"
    sc.reporter.job_status(model, JobStatus("running", f"generating {len(prompts)} answers ({which} model)"))
    start = time.perf_counter()
    outputs = provider.generate([ref], prompts, cfg)[0]
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"outputs": outputs, "seconds": seconds}))
    return Generation(outputs, seconds)


def run_deploy(sc: StageContext, ls: LoadedSpec, cfg: ResolvedConfig, change: StageChange) -> str:
    m = _model(sc.store.lock, ls.name)
    if not m.eval.passed:
        failed = "; ".join(g.detail for g in m.eval.gates if not g.passed)
        kept = " (the previous deployment is kept)" if m.deploy else ""
        raise GateFailedError(f"{ls.name}: not deployed, eval gate failed: {failed}{kept}")
    dep = ls.model.spec.deploy
    served = None
    if m.train.provider == "local":  # model card with eval results; Ollama when deploy.target says so
        from levcustom.deploy.local import deploy_local

        served = deploy_local(sc.ws, ls.name, ls.model.spec, cfg, m)
    ab = ab_phase(sc.ws, ls, m, change.inputs["eval"])
    provider = get_provider(m.train.provider, sc.ws)
    endpoint = provider.serve(m.train, cfg) if isinstance(provider, Serving) else None
    replaced = m.deploy.endpoint if m.deploy and m.deploy.endpoint != endpoint else None
    state = DeployState(fingerprint=change.fingerprint, inputs=change.inputs, agents=sorted(dep.agents),
                        tasks=sorted(dep.tasks), provider=m.train.provider, base_model=ls.model.spec.base_model,
                        model_ref=endpoint or m.train.model_ref, eval_results=m.eval.results, eval_run=m.eval.run_dir,
                        cases_sha256=m.eval.cases_sha256, phase=ab.phase if ab else None, endpoint=endpoint,
                        ollama=served)
    if ab is not None and ab.phase == online.SPLIT and m.deploy is not None:
        incumbent = online.stable(m.deploy) if m.deploy.inputs.get("eval") != change.inputs["eval"] \
            else m.deploy.previous
        state = state.model_copy(update={"previous": incumbent, "traffic": dep.traffic.candidate})
    elif ab is not None and ab.phase == online.ROLLED_BACK:
        state = state.model_copy(update={"previous": m.deploy.previous, "traffic": 0})

    def write(lock: Lock) -> None:
        _model(lock, ls.name).deploy = state

    sc.store.update(write)
    if replaced:  # only once agents point at the new endpoint: the old one stops billing
        provider.unserve(replaced, cfg)
    if m.deploy and m.deploy.ollama:  # likewise an Ollama model the new deployment no longer uses
        from levcustom.deploy.local import retire_ollama

        retire_ollama(m.deploy.ollama, served)
    through = f" through {endpoint}" if endpoint else f"; served by Ollama as {served.model}" if served else ""
    where = f"to agents [{', '.join(state.agents)}] tasks [{', '.join(state.tasks)}]{through}"
    return f"{where}; online A/B {ab.phase}: {ab.reason}" if ab else where


def run_destroy(sc: StageContext, ctx: Context, model: str, change: StageChange) -> str:
    m = _model(sc.store.lock, model)
    note = "removed from the lockfile"
    if change.stage == "deploy" and m.deploy and m.deploy.ollama:
        from levcustom.deploy.ollama import undeploy

        gone = undeploy(m.deploy.ollama)
        note = f"deleted Ollama model {m.deploy.ollama.model}" + ("" if gone else " (it was already gone)")
    if change.stage == "deploy" and m.deploy and m.deploy.endpoint:  # a paid endpoint goes with its deployment
        get_provider(m.deploy.provider, sc.ws).unserve(m.deploy.endpoint,
                                                       ctx.config_for(model, m.deploy.provider))
        note = f"deleted {m.deploy.endpoint}"
    artifact = {"train": m.train.model_ref if m.train else None,
                "dataset": m.dataset.artifact if m.dataset else None}.get(change.stage)
    if sc.purge and artifact:
        # Identical inputs share one artifact (one job, one stored dataset): delete only the last user's.
        users = sorted(n for n, o in sc.store.lock.models.items() if n != model and artifact in
                       (o.train.model_ref if o.train else None, o.deploy.model_ref if o.deploy else None,
                        o.dataset.artifact if o.dataset else None))
        if users:
            note = f"kept {artifact}: still used by {', '.join(users)}"
        elif change.stage == "train":
            get_provider(m.train.provider, sc.ws).delete(m.train, ctx.config_for(model, m.train.provider))
            note = f"deleted {artifact}"
        else:
            shutil.rmtree(sc.ws.root / artifact, ignore_errors=True)
            note = f"deleted {artifact}"

    def write(lock: Lock) -> None:
        state = _model(lock, model)
        setattr(state, change.stage, None)
        if not any(state.stage(s) for s in ("dataset", "train", "eval", "deploy")):
            del lock.models[model]

    sc.store.update(write)
    return note


RUNNERS = {"dataset": run_dataset, "train": run_train, "eval": run_eval, "deploy": run_deploy}
