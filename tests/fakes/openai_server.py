"""A realistic, in-process fake of the OpenAI fine-tuning REST API.

The openai SDK (3.x) talks through ``httpx2``, which respx cannot intercept, so this fake is a real
HTTP/1.1 server bound to 127.0.0.1 on an ephemeral port, driven by the real SDK::

    with FakeOpenAI() as fake:
        client = OpenAI(base_url=fake.base_url, api_key="test", max_retries=5)
        f = client.files.create(file=("train.jsonl", data), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=f.id)
        while client.fine_tuning.jobs.retrieve(job.id).status not in ("succeeded", "failed", "cancelled"):
            pass

Response bodies follow the shapes of the real service (and of the SDK's pydantic types), errors use
the real envelope ``{"error": {"message", "type", "param", "code"}}``.

Job lifecycle: a job is created in ``steps[0]``; every ``GET /v1/fine_tuning/jobs/{id}`` moves it one
entry further along ``steps`` (default validating_files -> queued -> running -> running -> succeeded)
while ``auto_advance`` is true.  Leaving ``validating_files`` validates the training file (valid JSONL,
right record shape for the method, at least ``min_examples`` lines); an invalid file sends the job to
``failed`` with ``error = {code, message, param}``, like the real service does on a later poll.

Fault injection: ``fail_next(n, status)`` fails the next *n* authenticated requests; ``fail_rate``
fails that fraction of requests with a status drawn from ``fail_statuses`` by ``random.Random(seed)``.
Retryable faults carry ``retry-after-ms`` (the SDK prefers it over ``retry-after`` and honours any
value in (0, 120 s]), so SDK retries take milliseconds instead of its 0.5-8 s default backoff.

Everything is guarded by one re-entrant lock (``fake.lock``); the dicts exposed for introspection are
the live state, so hold the lock if you mutate them while requests are in flight.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import socket
import string
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["FakeOpenAI", "RecordedRequest", "DEFAULT_FINE_TUNABLE_MODELS", "DEFAULT_STEPS", "default_responder"]

DEFAULT_FINE_TUNABLE_MODELS = frozenset({"gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14", "gpt-4o-2024-08-06"})
DEFAULT_BASE_ALIASES = frozenset({"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "gpt-4.1-nano"})
DEFAULT_STEPS = ("validating_files", "queued", "running", "running", "succeeded")

JOB_STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
AUTO_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8, "beta": 0.1}
MAX_METRIC_EVENTS = 100  # at most this many "Step i/N" events per job (evenly spaced, last step always)

_ALNUM = string.ascii_letters + string.digits
_NO_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
           "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if "
           "you're accessing the API from your browser and are prompted for a username and password. You can "
           "obtain an API key from https://platform.openai.com/account/api-keys.")


class RecordedRequest(NamedTuple):
    """One request as received (faulted and unauthorised ones included)."""

    method: str
    path: str  # full path without the query string, e.g. "/v1/fine_tuning/jobs"
    query: dict  # decoded query parameters, last value wins: {"metadata[team]": "a", "limit": "2"}
    body: Any  # the decoded JSON body, or None (no body, multipart upload, undecodable)


class ApiError(Exception):
    """Raised inside handlers; rendered as the real error envelope."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def default_responder(model: str, messages: list[dict]) -> str:
    """Fine-tuned models (``ft:...``) answer "ok"; base models hedge with "I think it depends."."""
    return "ok" if model.startswith("ft:") else "I think it depends."


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):  # content parts
        return sum(_words(p.get("text", "")) if isinstance(p, dict) else _words(p) for p in value)
    return 0


class _JobState:
    """Private per-job bookkeeping (what the real service knows but doesn't return)."""

    def __init__(self, planned_model: str, step_index: int):
        self.planned_model = planned_model
        self.step_index = step_index
        self.validated = False
        self.started = False
        self.steps_done = 0
        self.running_polls = 0
        self.total_steps: int | None = None
        self.steps_per_epoch: int | None = None
        self.n_epochs: int | None = None
        self.metrics: list[dict] = []


class FakeOpenAI:
    """Fake OpenAI API server on ``127.0.0.1:<ephemeral port>``; starts on construction.

    See the module docstring for behaviour; all keyword arguments are also plain attributes that can
    be changed at any time (``seed`` re-seeds the fault generator when assigned).
    """

    def __init__(self, *, fine_tunable_models=DEFAULT_FINE_TUNABLE_MODELS, base_models=None,
                 steps=DEFAULT_STEPS, auto_advance: bool = True, min_examples: int = 10,
                 validate_format: bool = True, responder: Callable[[str, list], str] | None = None,
                 fail_rate: float = 0.0, fail_statuses=(429, 500), seed: int = 0,
                 retry_after_ms: int | None = 1, api_key: str | None = None, org: str = "fake-org",
                 host: str = "127.0.0.1", port: int = 0):
        self.lock = threading.RLock()
        self.fine_tunable_models: set[str] = set(fine_tunable_models)
        self.steps: list[str] = list(steps)
        self.auto_advance = auto_advance
        self.min_examples = min_examples
        self.validate_format = validate_format
        self.responder: Callable[[str, list], str] = responder or default_responder
        self.fail_rate = fail_rate
        self.fail_statuses = tuple(fail_statuses)
        self.retry_after_ms = retry_after_ms
        self.api_key = api_key
        self.org = org
        self.organization_id = f"org-{org}"
        self.seed = seed  # property: (re)creates the fault and id generators

        self.requests: list[RecordedRequest] = []
        self.status_codes: list[int] = []  # response status of requests[i]
        self.errors: list[BaseException] = []  # unexpected exceptions inside the fake (or the responder)
        self.files: dict[str, dict] = {}  # file id -> file object (as returned)
        self.file_bytes: dict[str, bytes] = {}  # file id -> uploaded content
        self.jobs: dict[str, dict] = {}  # job id -> fine_tuning.job object (as returned), in creation order
        self.events: dict[str, list[dict]] = {}  # job id -> events, oldest first (the API returns newest first)
        self.checkpoints: dict[str, list[dict]] = {}  # job id -> checkpoints, oldest first
        self.models: dict[str, dict] = {}  # model id -> model object
        self.deleted_models: set[str] = set()
        self._job_state: dict[str, _JobState] = {}
        self._pending_faults: deque[int] = deque()
        self._clock_last = 0
        self._seq = 0

        now = int(time.time())
        for mid in sorted(set(base_models) if base_models is not None
                          else self.fine_tunable_models | DEFAULT_BASE_ALIASES):
            self.models[mid] = {"id": mid, "object": "model", "created": now - 86400, "owned_by": "system"}

        self._validate_steps()
        self._connections: set[socket.socket] = set()
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeOpenAI:{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and drop open keep-alive connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def client(self, **kwargs):
        """An ``openai.OpenAI`` client pointed at this fake (``api_key="test"``, ``max_retries=5`` unless given)."""
        from openai import OpenAI

        kwargs.setdefault("api_key", "test")
        kwargs.setdefault("max_retries", 5)
        kwargs.setdefault("timeout", 10.0)
        return OpenAI(base_url=self.base_url, **kwargs)

    # ------------------------------------------------------------------ knobs & introspection

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        with self.lock:
            self._seed = value
            self.rng = random.Random(value)  # fault injection draws
            self._id_rng = random.Random(f"ids:{value}")  # ids, model-name suffixes, seeds, losses

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` (before ``fail_rate`` is consulted)."""
        with self.lock:
            self._pending_faults.extend([status] * n)

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        """Requests received whose method matches (None/"*" = any) and whose path starts with ``path_prefix``
        (a prefix without the leading "/v1" is matched against the path after "/v1"). Counts retries and
        faulted requests too."""
        prefix = path_prefix if path_prefix.startswith("/v1") or not path_prefix else "/v1" + (
            path_prefix if path_prefix.startswith("/") else "/" + path_prefix)
        with self.lock:
            return sum(1 for r in self.requests
                       if (method in (None, "*") or r.method == method.upper()) and r.path.startswith(prefix))

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self.status_codes.clear()

    def file_content(self, file_id: str) -> bytes:
        with self.lock:
            return self.file_bytes[file_id]

    def add_model(self, model_id: str, owned_by: str = "system") -> dict:
        """Register a model (e.g. a fine-tuned model from "another project") so retrieve/chat find it."""
        with self.lock:
            self.deleted_models.discard(model_id)
            self.models[model_id] = {"id": model_id, "object": "model", "created": self._now(), "owned_by": owned_by}
            return copy.deepcopy(self.models[model_id])

    def advance(self, job_id: str, status: str | None = None, *, error: dict | None = None) -> dict:
        """Move a job one step along ``steps`` (``status=None``, validating the file like a poll does) or
        force it into ``status`` with that status's side effects (e.g. "succeeded" creates the model;
        "failed" uses ``error`` or a generic internal error). Works with ``auto_advance`` off. Returns a copy."""
        with self.lock:
            job = self.jobs[job_id]
            if status is None:
                self._step(job)
            else:
                if status not in JOB_STATUSES:
                    raise ValueError(f"unknown job status {status!r}")
                self._enter(job, status, error=error)
            return copy.deepcopy(job)

    def cancel_externally(self, job_id: str) -> dict:
        """Simulate the job being cancelled at the provider (dashboard, another client). Returns a copy."""
        with self.lock:
            if self.jobs[job_id]["status"] in ("succeeded", "failed"):
                raise ValueError(f"job {job_id} already {self.jobs[job_id]['status']}")
            return self.advance(job_id, "cancelled")

    # ------------------------------------------------------------------ helpers

    def _validate_steps(self) -> None:
        bad = [s for s in self.steps if s not in JOB_STATUSES]
        if not self.steps or bad:
            raise ValueError(f"steps must be a non-empty sequence of {JOB_STATUSES}, got {self.steps!r}")

    def _now(self) -> int:
        return int(time.time())

    def _rand(self, n: int, alphabet: str = _ALNUM) -> str:
        return "".join(self._id_rng.choice(alphabet) for _ in range(n))

    def _new_id(self, prefix: str, n: int = 24) -> str:
        return f"{prefix}{self._rand(n)}"

    def _pick_fault(self) -> int | None:
        if self._pending_faults:
            return self._pending_faults.popleft()
        if self.fail_rate and self.fail_statuses and self.rng.random() < self.fail_rate:
            return self.rng.choice(self.fail_statuses)
        return None

    def _fault_error(self, status: int) -> ApiError:
        headers = {}
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
            headers["retry-after"] = str(max(0, math.ceil(self.retry_after_ms / 1000)))
        if status == 429:
            headers.update({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
                            "x-ratelimit-reset-requests": f"{self.retry_after_ms or 1000}ms"})
            return ApiError(429, "Rate limit reached for requests. Please try again shortly.", type="requests",
                            code="rate_limit_exceeded", headers=headers)
        if status == 503:
            return ApiError(503, "The engine is currently overloaded, please try again later.",
                            type="server_error", headers=headers)
        if status >= 500:
            return ApiError(status, "The server had an error while processing your request. Sorry about that!",
                            type="server_error", headers=headers)
        return ApiError(status, f"Injected fault (HTTP {status}).", headers=headers)

    def _check_auth(self, headers) -> None:
        auth = headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, _NO_KEY)
        if self.api_key is not None and token != self.api_key:
            shown = token[:3] + "*" * max(0, len(token) - 7) + token[-4:] if len(token) > 7 else "*" * len(token)
            raise ApiError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    @staticmethod
    def _limit(query: dict, default: int, maximum: int) -> int:
        raw = query.get("limit")
        if raw is None:
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise ApiError(400, f"Invalid 'limit': expected an integer, but got '{raw}' instead.", param="limit",
                           code="invalid_type") from None
        if not 1 <= limit <= maximum:
            raise ApiError(400, f"Invalid 'limit': integer must be between 1 and {maximum}, got {limit}.",
                           param="limit", code="integer_out_of_range")
        return limit

    @staticmethod
    def _page(items: list[dict], query: dict, default: int, maximum: int) -> dict:
        limit = FakeOpenAI._limit(query, default, maximum)
        after = query.get("after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        return {"object": "list", "data": copy.deepcopy(page), "has_more": len(items) > limit}

    def _file(self, file_id: str, param: str | None = "file_id") -> dict:
        if file_id not in self.files:
            raise ApiError(404, f"No such File object: {file_id}", param=param)
        return self.files[file_id]

    def _job(self, job_id: str) -> dict:
        if job_id not in self.jobs:
            raise ApiError(404, f"Fine-tuning job {job_id} not found.", param="fine_tuning_job_id",
                           code="fine_tune_not_found")
        return self.jobs[job_id]

    def _model(self, model_id: str, param: str | None = "model") -> dict:
        if model_id not in self.models:
            raise ApiError(404, f"The model '{model_id}' does not exist", param=param, code="model_not_found")
        return self.models[model_id]

    def _store_file(self, filename: str, data: bytes, purpose: str, status: str = "processed") -> dict:
        fid = self._new_id("file-")
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": self._now(),
                           "filename": filename, "purpose": purpose, "status": status, "status_details": None,
                           "expires_at": None}
        self.file_bytes[fid] = data
        return self.files[fid]

    def _event(self, job_id: str, message: str, *, level: str = "info", type: str = "message",
               data: dict | None = None) -> None:
        self.events[job_id].append({"id": self._new_id("ftevent-"), "object": "fine_tuning.job.event",
                                    "created_at": self._now(), "level": level, "message": message,
                                    "data": data if data is not None else {}, "type": type})

    # ------------------------------------------------------------------ job lifecycle

    def _validate_training(self, job: dict) -> dict | None:
        """The error the real service would report for this job's files, or None."""
        method = (job.get("method") or {}).get("type", "supervised")

        def check(file_id: str, param: str, min_lines: int) -> dict | None:
            code = f"invalid_{param}"
            what = "training" if param == "training_file" else "validation"
            data = self.file_bytes.get(file_id)
            if data is None:
                return {"code": code, "param": param, "message": f"The job failed due to an invalid {what} file. "
                                                                 f"File {file_id} was deleted."}
            try:
                lines = [ln for ln in data.decode("utf-8").splitlines() if ln.strip()]
            except UnicodeDecodeError:
                return {"code": code, "param": param,
                        "message": f"The job failed due to an invalid {what} file. Unable to decode file as UTF-8."}
            for n, line in enumerate(lines, 1):
                try:
                    row = json.loads(line)
                except ValueError:
                    return {"code": code, "param": param,
                            "message": f"The job failed due to an invalid {what} file. Invalid file format. "
                                       f"Line {n} is not valid JSON."}
                problem = self._row_problem(row, method) if self.validate_format else None
                if problem:
                    return {"code": code, "param": param,
                            "message": f"The job failed due to an invalid {what} file. Invalid file format. "
                                       f"Example {n}: {problem}"}
            if len(lines) < min_lines:
                return {"code": code, "param": param,
                        "message": f"The job failed due to an invalid {what} file. {what.capitalize()} file has "
                                   f"{len(lines)} example(s), but must have at least {min_lines} examples"}
            return None

        return check(job["training_file"], "training_file", self.min_examples) or (
            check(job["validation_file"], "validation_file", 1) if job.get("validation_file") else None)

    @staticmethod
    def _row_problem(row: Any, method: str) -> str | None:
        if not isinstance(row, dict):
            return "each line must be a JSON object"
        if method == "dpo":
            for key in ("input", "preferred_output", "non_preferred_output"):
                if key not in row:
                    return f"missing required key '{key}'"
            return None
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            return "missing required key 'messages'" if "messages" not in row else "'messages' must be a non-empty list"
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
                return "each message must be an object with a valid 'role'"
        if not any(m["role"] == "assistant" for m in messages):
            return "no assistant messages found"
        return None

    def _resolve_hyperparameters(self, job: dict, st: _JobState) -> None:
        method = job["method"]
        hp = method[method["type"]]["hyperparameters"]
        keys = ("batch_size", "learning_rate_multiplier", "n_epochs") + (("beta",) if method["type"] == "dpo" else ())
        for key in keys:
            if hp.get(key) in (None, "auto"):
                hp[key] = AUTO_HYPERPARAMETERS[key]
        job["hyperparameters"] = {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}
        st.n_epochs = int(hp["n_epochs"])
        examples = len([ln for ln in self.file_bytes.get(job["training_file"], b"").splitlines() if ln.strip()])
        st.steps_per_epoch = max(1, math.ceil(examples / max(1, int(hp["batch_size"]))))
        st.total_steps = st.steps_per_epoch * st.n_epochs

    def _train_until(self, job: dict, st: _JobState, target: int) -> None:
        """Emit metric events / checkpoints for steps (st.steps_done, target]."""
        total = st.total_steps or 1
        stride = max(1, total // MAX_METRIC_EVENTS)
        has_valid = bool(job.get("validation_file"))
        rng = random.Random(f"{job['id']}:{job['seed']}")
        for _ in range(st.steps_done):  # keep the loss curve deterministic however steps are chunked
            rng.random(), rng.random()
        for step in range(st.steps_done + 1, min(target, total) + 1):
            frac = step / total
            loss = round(2.2 * math.exp(-3.0 * frac) + 0.05 + 0.05 * rng.random(), 4)
            acc = round(min(0.999, 0.45 + 0.5 * frac + 0.02 * rng.random()), 4)
            metrics = {"step": step, "train_loss": loss, "train_mean_token_accuracy": acc}
            if has_valid:
                metrics.update(valid_loss=round(loss * 1.08, 4), valid_mean_token_accuracy=round(acc * 0.97, 4))
            st.metrics.append(metrics)
            if step % stride == 0 or step == total:
                self._event(job["id"], f"Step {step}/{total}: training loss={loss:.4f}", type="metrics",
                            data={**metrics, "total_steps": total})
            if st.steps_per_epoch and step % st.steps_per_epoch == 0:
                ckpt_metrics = dict(metrics)
                if has_valid:
                    ckpt_metrics.update(full_valid_loss=metrics["valid_loss"],
                                        full_valid_mean_token_accuracy=metrics["valid_mean_token_accuracy"])
                name = f"{st.planned_model}:ckpt-step-{step}"
                ckpts = self.checkpoints[job["id"]]
                ckpts.append({"id": self._new_id("ftckpt-"), "object": "fine_tuning.job.checkpoint",
                              "created_at": self._now(), "fine_tuned_model_checkpoint": name,
                              "fine_tuning_job_id": job["id"], "metrics": ckpt_metrics, "step_number": step})
                del ckpts[:-3]  # the service keeps the last three epochs
                self.add_model(name, owned_by=self.organization_id)
                self._event(job["id"], f"Checkpoint created at step {step}")
        st.steps_done = max(st.steps_done, min(target, total))

    def _step(self, job: dict) -> None:
        """One poll's worth of progress along ``steps``."""
        st = self._job_state[job["id"]]
        if job["status"] in TERMINAL:
            return
        if not st.validated:
            st.validated = True
            error = self._validate_training(job)
            if error:
                self._enter(job, "failed", error=error)
                return
            if job["status"] == "validating_files":
                self._event(job["id"], "Files validated, moving job to queued state")
        if st.step_index + 1 < len(self.steps):
            st.step_index += 1
            self._enter(job, self.steps[st.step_index])

    def _enter(self, job: dict, status: str, *, error: dict | None = None) -> None:
        st = self._job_state[job["id"]]
        if status in self.steps and status != job["status"]:
            # keep the auto-advance cursor in sync with forced jumps
            idx = [i for i, s in enumerate(self.steps) if s == status]
            later = [i for i in idx if i >= st.step_index]
            st.step_index = (later or idx)[0]
        job["status"] = status
        now = self._now()
        if status == "validating_files":
            return
        if status == "queued":
            return
        if status == "running":
            if not st.started:
                st.started = True
                self._resolve_hyperparameters(job, st)
                self._event(job["id"], "Fine-tuning job started")
            st.running_polls += 1
            chunks = max(1, self.steps.count("running"))
            self._train_until(job, st, math.ceil(st.total_steps * st.running_polls / chunks))
            job["estimated_finish"] = now + 60 * max(1, chunks - st.running_polls + 1)
            return
        job["estimated_finish"] = None
        if status == "succeeded":
            if not st.started:
                st.started = True
                self._resolve_hyperparameters(job, st)
                self._event(job["id"], "Fine-tuning job started")
            self._train_until(job, st, st.total_steps)
            tokens = len(self.file_bytes.get(job["training_file"], b"").decode("utf-8", "replace").split())
            job["trained_tokens"] = tokens * st.n_epochs
            job["fine_tuned_model"] = st.planned_model
            job["finished_at"] = now
            job["error"] = None
            header = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
            rows = "".join(f"{m['step']},{m['train_loss']},{m['train_mean_token_accuracy']},"
                           f"{m.get('valid_loss', '')},{m.get('valid_mean_token_accuracy', '')}\n" for m in st.metrics)
            results = self._store_file("step_metrics.csv", (header + rows).encode(), "fine-tune-results")
            job["result_files"] = [results["id"]]
            self.add_model(st.planned_model, owned_by=self.organization_id)
            self._event(job["id"], f"New fine-tuned model created: {st.planned_model}")
            self._event(job["id"], "The job has successfully completed")
        elif status == "failed":
            err = {"code": "internal_error", "message": "Fine-tuning job failed due to an internal error.",
                   "param": None}
            err.update(error or {})
            job["error"] = err
            job["finished_at"] = now
            self._event(job["id"], err["message"], level="error")
        elif status == "cancelled":
            self._event(job["id"], "Fine-tuning job cancelled")

    # ------------------------------------------------------------------ endpoints

    def _route(self, method: str, path: str, query: dict, body: Any, raw: bytes, headers) -> tuple[int, Any, dict]:
        """Returns (status, json-able body or bytes, extra headers); raises ApiError."""
        rest = path[len("/v1"):] if path.startswith("/v1/") else None
        parts = [unquote(p) for p in rest.strip("/").split("/")] if rest else []
        m = method
        if parts[:1] == ["files"]:
            if len(parts) == 1 and m == "POST":
                return 200, self._create_file(raw, headers), {}
            if len(parts) == 1 and m == "GET":
                return 200, self._list_files(query), {}
            if len(parts) == 2 and m == "GET":
                return 200, copy.deepcopy(self._file(parts[1])), {}
            if len(parts) == 2 and m == "DELETE":
                self._file(parts[1])
                del self.files[parts[1]]
                self.file_bytes.pop(parts[1], None)
                return 200, {"id": parts[1], "object": "file", "deleted": True}, {}
            if len(parts) == 3 and parts[2] == "content" and m == "GET":
                self._file(parts[1])
                return 200, self.file_bytes[parts[1]], {"Content-Type": "application/octet-stream"}
        if parts[:2] == ["fine_tuning", "jobs"]:
            if len(parts) == 2 and m == "POST":
                return 200, self._create_job(body), {}
            if len(parts) == 2 and m == "GET":
                return 200, self._list_jobs(query), {}
            if len(parts) == 3 and m == "GET":
                job = self._job(parts[2])
                if self.auto_advance:
                    self._step(job)
                return 200, copy.deepcopy(job), {}
            if len(parts) == 4 and parts[3] == "cancel" and m == "POST":
                job = self._job(parts[2])
                if job["status"] in ("succeeded", "failed"):
                    raise ApiError(400, f"Job has already {'completed' if job['status'] == 'succeeded' else 'failed'}"
                                        f": {job['id']}", param="fine_tuning_job_id")
                if job["status"] != "cancelled":
                    self._enter(job, "cancelled")
                return 200, copy.deepcopy(job), {}
            if len(parts) == 4 and parts[3] == "events" and m == "GET":
                self._job(parts[2])
                return 200, self._page(self.events[parts[2]][::-1], query, 20, 100), {}
            if len(parts) == 4 and parts[3] == "checkpoints" and m == "GET":
                self._job(parts[2])
                page = self._page(self.checkpoints[parts[2]][::-1], query, 10, 100)
                page["first_id"] = page["data"][0]["id"] if page["data"] else None
                page["last_id"] = page["data"][-1]["id"] if page["data"] else None
                return 200, page, {}
        if parts[:1] == ["models"]:
            if len(parts) == 1 and m == "GET":
                return 200, {"object": "list", "data": copy.deepcopy(list(self.models.values()))}, {}
            if len(parts) >= 2 and m in ("GET", "DELETE"):
                model_id = "/".join(parts[1:])
                model = self._model(model_id)
                if m == "GET":
                    return 200, copy.deepcopy(model), {}
                if model["owned_by"] != self.organization_id:
                    raise ApiError(403, "You have insufficient permissions for this operation.", param="model",
                                   code="insufficient_permissions")
                del self.models[model_id]
                self.deleted_models.add(model_id)
                return 200, {"id": model_id, "object": "model", "deleted": True}, {}
        if parts == ["chat", "completions"] and m == "POST":
            return 200, self._chat_prepare(body), {}
        raise ApiError(404, f"Invalid URL ({method} {path})")

    def _create_file(self, raw: bytes, headers) -> dict:
        ctype = headers.get("Content-Type") or ""
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "Invalid Content-Type header (expected multipart/form-data).")
        fields, uploads = _parse_multipart(raw, ctype)
        purpose = fields.get("purpose")
        if not purpose:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose",
                           code="missing_required_parameter")
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid value for 'purpose': '{purpose}'.", param="purpose",
                           code="invalid_value")
        if "file" not in uploads:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        filename, data = uploads["file"]
        return copy.deepcopy(self._store_file(filename or "upload", data, purpose))

    def _list_files(self, query: dict) -> dict:
        items = list(self.files.values())
        if query.get("purpose"):
            items = [f for f in items if f["purpose"] == query["purpose"]]
        if query.get("order", "desc") == "desc":
            items.reverse()
        page = self._page(items, query, 10000, 10000)
        page["first_id"] = page["data"][0]["id"] if page["data"] else None
        page["last_id"] = page["data"][-1]["id"] if page["data"] else None
        return page

    def _create_job(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)")
        for key in ("model", "training_file"):
            if not body.get(key):
                raise ApiError(400, f"Missing required parameter: '{key}'.", param=key,
                               code="missing_required_parameter")
        model = body["model"]
        owned_ft = model.startswith("ft:") and self.models.get(model, {}).get("owned_by") == self.organization_id
        if model not in self.fine_tunable_models and not owned_ft:
            raise ApiError(400, f"Model {model} is not available for fine-tuning or does not exist.", param="model",
                           code="model_not_available")
        for key in ("training_file", "validation_file"):
            fid = body.get(key)
            if fid is None:
                continue
            if fid not in self.files:
                raise ApiError(400, f"invalid {key}: {fid}", param=key)
            if self.files[fid]["purpose"] != "fine-tune":
                raise ApiError(400, f"File {fid} has purpose '{self.files[fid]['purpose']}'; fine-tuning requires "
                                    "purpose 'fine-tune'.", param=key, code="invalid_file_purpose")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise ApiError(400, "Invalid 'suffix': string must be at most 64 characters.", param="suffix")
        metadata = body.get("metadata")
        if metadata is not None:
            if (not isinstance(metadata, dict) or len(metadata) > 16 or
                    any(not isinstance(k, str) or not isinstance(v, str) or len(k) > 64 or len(v) > 512
                        for k, v in metadata.items())):
                raise ApiError(400, "Invalid 'metadata': at most 16 string keys (<= 64 chars) with string values "
                                    "(<= 512 chars).", param="metadata", code="invalid_value")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ApiError(400, "Invalid 'seed': expected an integer.", param="seed", code="invalid_type")

        method = copy.deepcopy(body.get("method"))
        if method is None:
            method = {"type": "supervised", "supervised": {"hyperparameters": copy.deepcopy(
                body.get("hyperparameters") or {})}}
        mtype = method.get("type") if isinstance(method, dict) else None
        if mtype not in ("supervised", "dpo", "reinforcement"):
            raise ApiError(400, "Invalid 'method.type': expected one of 'supervised', 'dpo', 'reinforcement'.",
                           param="method.type", code="invalid_value")
        if mtype == "reinforcement":
            raise ApiError(400, f"Fine-tuning method 'reinforcement' is not available for model {model}.",
                           param="method.type", code="model_not_available")
        section = method.get(mtype) or {}
        hp = dict(section.get("hyperparameters") or {})
        allowed = {"batch_size", "learning_rate_multiplier", "n_epochs"} | ({"beta"} if mtype == "dpo" else set())
        for key, value in hp.items():
            if key not in allowed:
                raise ApiError(400, f"Unknown hyperparameter '{key}' for method '{mtype}'.",
                               param=f"method.{mtype}.hyperparameters.{key}", code="invalid_value")
            if value != "auto" and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                raise ApiError(400, f"Invalid value for hyperparameter '{key}': {value!r}.",
                               param=f"method.{mtype}.hyperparameters.{key}", code="invalid_value")
        for key in allowed:
            hp.setdefault(key, "auto")
        method = {"type": mtype, mtype: {**section, "hyperparameters": hp}}

        job_id = self._new_id("ftjob-")
        base = model.split(":")[1] if owned_ft else model
        planned = f"ft:{base}:{self.org}:{suffix or 'custom'}:{self._rand(8)}"
        job = {
            "object": "fine_tuning.job", "id": job_id, "model": model, "created_at": self._now(),
            "finished_at": None, "fine_tuned_model": None, "organization_id": self.organization_id,
            "result_files": [], "status": self.steps[0], "validation_file": body.get("validation_file"),
            "training_file": body["training_file"],
            "hyperparameters": {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")},
            "trained_tokens": None, "error": None, "user_provided_suffix": suffix,
            "seed": seed if seed is not None else self._id_rng.randrange(1, 2**31),
            "estimated_finish": None, "integrations": copy.deepcopy(body.get("integrations")) or None,
            "metadata": copy.deepcopy(metadata), "method": method,
        }
        self.jobs[job_id] = job
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self._job_state[job_id] = _JobState(planned, 0)
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        self._event(job_id, f"Validating training file: {job['training_file']}"
                    + (f" and validation file: {job['validation_file']}" if job["validation_file"] else ""))
        if job["status"] != "validating_files":
            self._enter(job, job["status"])
        return copy.deepcopy(job)

    def _list_jobs(self, query: dict) -> dict:
        items = list(self.jobs.values())[::-1]  # newest first
        if query.get("metadata") == "null":
            items = [j for j in items if j.get("metadata") is None]
        wanted = {}
        for key, value in query.items():
            mm = re.fullmatch(r"metadata\[(.+)\]", key)
            if mm:
                wanted[mm.group(1)] = value
        if wanted:
            items = [j for j in items if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
        return self._page(items, query, 20, 100)

    def _chat_prepare(self, body: Any) -> dict:
        """Validation under the lock; the responder runs later, outside it (see _Handler)."""
        if not isinstance(body, dict):
            raise ApiError(400, "We could not parse the JSON body of your request.")
        model = body.get("model")
        if not model:
            raise ApiError(400, "Missing required parameter: 'model'.", param="model",
                           code="missing_required_parameter")
        if model not in self.models:
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "Missing required parameter: 'messages'." if messages is None else
                           "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                           param="messages", code="missing_required_parameter" if messages is None else "empty_array")
        if body.get("stream"):
            raise ApiError(400, "stream=true is not supported by FakeOpenAI.", param="stream")
        return {"__chat__": copy.deepcopy(body), "id": self._new_id("chatcmpl-", 29)}

    def _chat_respond(self, prepared: dict) -> dict:
        body = prepared["__chat__"]
        model, messages = body["model"], body["messages"]
        n = int(body.get("n") or 1)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        choices, completion_tokens = [], 0
        for i in range(n):
            text = self.responder(model, copy.deepcopy(messages))
            if not isinstance(text, str):
                raise TypeError(f"responder must return str, got {type(text).__name__}")
            finish = "stop"
            words = text.split()
            if max_tokens and len(words) > max_tokens:
                text, finish = " ".join(words[:max_tokens]), "length"
            completion_tokens += _words(text)
            choices.append({"index": i, "message": {"role": "assistant", "content": text, "refusal": None,
                                                    "annotations": []},
                            "logprobs": None, "finish_reason": finish})
        prompt_tokens = sum(_words(m.get("content")) + 4 for m in messages if isinstance(m, dict)) + 3
        return {
            "id": prepared["id"], "object": "chat.completion", "created": self._now(), "model": model,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "service_tier": "default", "system_fingerprint": "fp_fake0000",
        }

    # ------------------------------------------------------------------ request entry point

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        raw = handler._read_body()
        body = None
        if raw and "json" in (handler.headers.get("Content-Type") or ""):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        started = time.perf_counter()
        with self.lock:
            self.requests.append(RecordedRequest(handler.command, path, query, body))
            self.status_codes.append(0)
            index = len(self.requests) - 1
            token = self.requests[index]
        try:
            with self.lock:
                self._check_auth(handler.headers)
                fault = self._pick_fault()
                if fault is not None:
                    raise self._fault_error(fault)
                if raw and "json" in (handler.headers.get("Content-Type") or "") and body is None:
                    raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely "
                                        "means you aren't using your HTTP library correctly. The OpenAI API expects "
                                        "a JSON payload, but what was sent was not valid JSON.)")
                status, payload, extra = self._route(handler.command, path, query, body, raw, handler.headers)
            if isinstance(payload, dict) and "__chat__" in payload:
                payload = self._chat_respond(payload)
        except ApiError as e:
            status, payload, extra = e.status, e.body(), e.headers
        except Exception as e:  # a bug in the fake or the responder: surface it, answer like the service
            with self.lock:
                self.errors.append(e)
            traceback.print_exc()
            status, payload, extra = 500, ApiError(500, f"FakeOpenAI internal error: {e!r}",
                                                   type="server_error").body(), {"x-should-retry": "false"}
        with self.lock:
            if index < len(self.requests) and self.requests[index] is token:  # not cleared meanwhile
                self.status_codes[index] = status
        headers = {"x-request-id": f"req_{self._rand(32, string.hexdigits[:16])}",
                   "openai-organization": self.org,
                   "openai-processing-ms": str(int((time.perf_counter() - started) * 1000)),
                   "openai-version": "2020-10-01", **extra}
        handler._send(status, payload, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not block close()
    allow_reuse_address = True
    fake: FakeOpenAI

    def handle_error(self, request, client_address) -> None:
        # A client killed mid-request (the crash harness does it on purpose) is not the fake's error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every response has a Content-Length
    server_version = "FakeOpenAI/1.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        try:  # no Nagle: a response must not wait ~40 ms for the client's delayed ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with self.server.fake.lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.fake.lock:
                self.server.fake._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr logging
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict) -> None:
        if isinstance(payload, bytes):
            data = payload
            headers.setdefault("Content-Type", "application/octet-stream")
        else:
            data = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n" + data)  # headers and body in one send
        self.flush_headers()

    def _dispatch(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """(plain fields, file fields name -> (filename, bytes)) of a multipart/form-data body."""
    mm = re.search(r'boundary="?([^";]+)"?', content_type)
    if not mm:
        raise ApiError(400, "Invalid multipart/form-data body: no boundary.")
    delimiter = b"--" + mm.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    uploads: dict[str, tuple[str, bytes]] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
        nm = re.search(r'(?:^|;)\s*name="([^"]*)"', disposition)
        fm = re.search(r'(?:^|;)\s*filename="([^"]*)"', disposition)
        if not nm:
            continue
        if fm is not None:
            uploads[nm.group(1)] = (fm.group(1), data)
        else:
            fields[nm.group(1)] = data.decode("utf-8", "replace")
    return fields, uploads
