"""The OpenAI fake, exercised through the real openai SDK over loopback HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from openai import OpenAI
from openai.pagination import SyncCursorPage
from openai.types import FileDeleted, FileObject, Model, ModelDeleted
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from fakes.openai_server import DEFAULT_FINE_TUNABLE_MODELS, FakeOpenAI, RecordedRequest

BASE = "gpt-4o-mini-2024-07-18"
TERMINAL = ("succeeded", "failed", "cancelled")

pytestmark = pytest.mark.timeout(30)


def jsonl(n: int, answer: str = "ok") -> bytes:
    rows = [{"messages": [{"role": "user", "content": f"question {i} about things"},
                          {"role": "assistant", "content": answer}]} for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def dpo_jsonl(n: int) -> bytes:
    rows = [{"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
             "preferred_output": [{"role": "assistant", "content": "ok"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]} for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f
    assert not f.errors, f.errors  # no exception inside the fake itself


@pytest.fixture
def client(fake) -> OpenAI:
    return OpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=10)


def upload(client: OpenAI, data: bytes, name: str = "train.jsonl") -> FileObject:
    return client.files.create(file=(name, data), purpose="fine-tune")


def poll(client: OpenAI, job_id: str, limit: int = 20) -> FineTuningJob:
    for _ in range(limit):
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in TERMINAL:
            return job
    raise AssertionError(f"job {job_id} did not finish: {job.status}")


def test_server_basics(fake):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", fake.base_url)
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
    assert DEFAULT_FINE_TUNABLE_MODELS <= fake.fine_tunable_models
    other = FakeOpenAI()
    other.close()
    other.close()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(other.base_url + "/models", timeout=2)


def test_files_roundtrip(fake, client):
    data = jsonl(12)
    f = upload(client, data)
    assert isinstance(f, FileObject)
    assert f.id.startswith("file-") and f.bytes == len(data) and f.filename == "train.jsonl"
    assert (f.purpose, f.status, f.object) == ("fine-tune", "processed", "file")
    assert fake.file_content(f.id) == data and fake.files[f.id]["bytes"] == len(data)
    assert client.files.retrieve(f.id) == f
    assert client.files.content(f.id).content == data
    g = upload(client, b"{}\n", "other.jsonl")
    page = client.files.list()
    assert isinstance(page, SyncCursorPage) and [x.id for x in page.data] == [g.id, f.id]
    assert [x.id for x in client.files.list(limit=1, after=g.id).data] == [f.id]
    deleted = client.files.delete(f.id)
    assert isinstance(deleted, FileDeleted) and deleted.deleted and deleted.id == f.id
    with pytest.raises(openai.NotFoundError) as exc:
        client.files.retrieve(f.id)
    assert exc.value.body == {"message": f"No such File object: {f.id}", "type": "invalid_request_error",
                              "param": "file_id", "code": None}


def test_job_lifecycle_metadata_events_checkpoints_models_chat(fake, client):
    data = jsonl(20)
    f = upload(client, data)
    job = client.fine_tuning.jobs.create(
        model=BASE, training_file=f.id, suffix="triage", seed=7, metadata={"levcustom": "spec-a", "env": "test"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}})
    other = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, metadata={"levcustom": "spec-b"})
    assert isinstance(job, FineTuningJob)
    assert job.id.startswith("ftjob-") and job.status == "validating_files" and job.object == "fine_tuning.job"
    assert (job.fine_tuned_model, job.trained_tokens, job.error, job.result_files) == (None, None, None, [])
    assert job.metadata == {"levcustom": "spec-a", "env": "test"} and job.seed == 7
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.n_epochs == 2
    assert job.hyperparameters.learning_rate_multiplier == "auto"
    assert other.method.supervised.hyperparameters.n_epochs == "auto"

    # metadata filter: the SDK sends deepObject-style `metadata[key]=value`
    found = client.fine_tuning.jobs.list(metadata={"levcustom": "spec-a"})
    assert [j.id for j in found.data] == [job.id]
    assert fake.requests[-1] == RecordedRequest("GET", "/v1/fine_tuning/jobs", {"metadata[levcustom]": "spec-a"}, None)
    assert client.fine_tuning.jobs.list(metadata={"levcustom": "nope"}).data == []
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [other.id, job.id]  # newest first
    first = client.fine_tuning.jobs.list(limit=1)
    assert first.has_more and [j.id for j in first.data] == [other.id]
    assert [j.id for j in first.get_next_page().data] == [job.id]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == [other.id, job.id]  # auto-pagination

    statuses = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(5)]
    assert statuses == ["queued", "running", "running", "succeeded", "succeeded"]
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert re.fullmatch(rf"ft:{BASE}:fake-org:triage:[A-Za-z0-9]{{8}}", done.fine_tuned_model)
    assert done.trained_tokens == len(data.split()) * 2
    assert done.finished_at and done.error is None and len(done.result_files) == 1
    assert done.hyperparameters.batch_size == 4 and done.hyperparameters.learning_rate_multiplier == 1.8
    assert client.files.retrieve(done.result_files[0]).purpose == "fine-tune-results"
    assert fake.jobs[job.id]["status"] == "succeeded"

    events = client.fine_tuning.jobs.list_events(job.id, limit=100)
    assert all(isinstance(e, FineTuningJobEvent) for e in events.data) and not events.has_more
    messages = [e.message for e in events.data]
    assert messages[0] == "The job has successfully completed" and messages[-1].startswith("Created fine-tuning job")
    assert "Fine-tuning job started" in messages and any(m.startswith("Validating training file") for m in messages)
    metrics = [e for e in events.data if e.type == "metrics"]
    assert metrics and metrics[0].message == f"Step 10/10: training loss={metrics[0].data['train_loss']:.4f}"
    assert metrics[0].data["step"] == 10 and metrics[0].data["total_steps"] == 10 and metrics[-1].data["step"] == 1
    assert all(e.level == "info" for e in events.data)
    head = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert head.has_more and [e.id for e in head.data] == [e.id for e in events.data[:3]]
    nxt = client.fine_tuning.jobs.list_events(job.id, limit=3, after=head.data[-1].id)
    assert [e.id for e in nxt.data] == [e.id for e in events.data[3:6]]

    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in ckpts.data] == [10, 5]
    assert all(isinstance(c, FineTuningJobCheckpoint) for c in ckpts.data)
    assert ckpts.data[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-10"
    assert ckpts.data[0].metrics.train_loss > 0 and ckpts.data[0].fine_tuning_job_id == job.id

    model = client.models.retrieve(done.fine_tuned_model)
    assert isinstance(model, Model) and model.id == done.fine_tuned_model and model.owned_by == "org-fake-org"
    reply = client.chat.completions.create(model=done.fine_tuned_model,
                                           messages=[{"role": "user", "content": "question 3 about things"}])
    assert isinstance(reply, ChatCompletion) and reply.choices[0].message.content == "ok"
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens == 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    base = client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "hi"}])
    assert base.choices[0].message.content.startswith("I think")

    gone = client.models.delete(done.fine_tuned_model)
    assert isinstance(gone, ModelDeleted) and gone.deleted and gone.id == done.fine_tuned_model
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve(done.fine_tuned_model)
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(BASE)


def test_custom_responder_and_max_tokens(fake, client):
    fake.responder = lambda model, messages: f"{model}|{messages[-1]['content'].upper()} extra words"
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "yo"}],
                                           max_tokens=1)
    assert reply.choices[0].message.content == "gpt-4o-mini|YO"
    assert reply.choices[0].finish_reason == "length"
    assert fake.requests[-1].body["messages"] == [{"role": "user", "content": "yo"}]


def test_create_validation_errors(fake, client):
    f = upload(client, jsonl(12))
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model=BASE, training_file="file-missing")
    assert exc.value.status_code == 400
    assert exc.value.body == {"message": "invalid training_file: file-missing", "type": "invalid_request_error",
                              "param": "training_file", "code": None}
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model="gpt-3.5-turbo-0301", training_file=f.id)
    assert exc.value.param == "model" and exc.value.code == "model_not_available"
    assert fake.jobs == {}


def test_small_file_fails_on_later_poll(client):
    f = upload(client, jsonl(3))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id)
    assert job.status == "validating_files"
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert failed.error.code == "invalid_training_file" and failed.error.param == "training_file"
    assert "3 example(s), but must have at least 10 examples" in failed.error.message
    assert client.fine_tuning.jobs.retrieve(job.id).status == "failed"
    assert client.fine_tuning.jobs.list_events(job.id).data[0].level == "error"

    bad = upload(client, b"not json\n" * 12)
    job = client.fine_tuning.jobs.create(model=BASE, training_file=bad.id)
    assert "not valid JSON" in poll(client, job.id).error.message


def test_dpo_job(client):
    f = upload(client, dpo_jsonl(10))
    job = client.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=f.id,
                                         method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}})
    done = poll(client, job.id)
    assert done.status == "succeeded" and done.method.type == "dpo"
    assert done.method.dpo.hyperparameters.beta == 0.2 and done.method.dpo.hyperparameters.n_epochs == 3
    assert done.fine_tuned_model.startswith("ft:gpt-4.1-mini-2025-04-14:fake-org:custom:")
    wrong = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client, jsonl(10)).id,
                                           method={"type": "dpo"})
    assert "missing required key 'input'" in poll(client, wrong.id).error.message


def test_freeze_advance_and_cancel(fake, client):
    fake.auto_advance = False
    f = upload(client, jsonl(10))
    a = client.fine_tuning.jobs.create(model=BASE, training_file=f.id)
    b = client.fine_tuning.jobs.create(model=BASE, training_file=f.id)
    assert client.fine_tuning.jobs.retrieve(a.id).status == "validating_files"
    assert fake.advance(a.id)["status"] == "queued"
    assert fake.advance(a.id, "running")["status"] == "running"
    assert client.fine_tuning.jobs.retrieve(a.id).status == "running"
    assert client.fine_tuning.jobs.checkpoints.list(a.id).data  # checkpoints appear while running
    cancelled = client.fine_tuning.jobs.cancel(a.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    fake.cancel_externally(b.id)
    assert client.fine_tuning.jobs.retrieve(b.id).status == "cancelled"
    fake.auto_advance = True
    assert client.fine_tuning.jobs.retrieve(b.id).status == "cancelled"  # terminal stays terminal
    c = client.fine_tuning.jobs.create(model=BASE, training_file=f.id)
    fake.advance(c.id, "succeeded")
    assert client.fine_tuning.jobs.retrieve(c.id).fine_tuned_model
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(c.id)
    with pytest.raises(openai.NotFoundError) as exc:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert exc.value.body["type"] == "invalid_request_error"


def test_configurable_steps():
    with FakeOpenAI(steps=("queued", "succeeded"), fine_tunable_models={"my-base"}) as fake:
        client = fake.client(max_retries=0)
        job = client.fine_tuning.jobs.create(model="my-base", training_file=upload(client, jsonl(10)).id)
        assert job.status == "queued"
        assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"


def test_injected_faults_are_retried_quickly(fake):
    client = OpenAI(base_url=fake.base_url, api_key="test", max_retries=4)
    fake.fail_next(2, status=429)
    fake.fail_next(2, status=500)
    started = time.perf_counter()
    assert client.files.list().data == []
    assert time.perf_counter() - started < 1.0  # retry-after-ms honoured, not the 0.5-8 s backoff
    assert fake.status_codes == [429, 429, 500, 500, 200]
    assert fake.count("GET", "/files") == 5
    fake.fail_next(3, status=503)
    with pytest.raises(openai.InternalServerError):
        client.with_options(max_retries=2).files.list()
    assert fake.status_codes[-3:] == [503, 503, 503]


def test_fail_rate_converges_and_is_seeded():
    def run(seed: int) -> list[int]:
        with FakeOpenAI(fail_rate=0.3, seed=seed) as fake:
            client = fake.client(max_retries=20)
            f = upload(client, jsonl(12))
            job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, metadata={"k": "v"})
            assert poll(client, job.id).status == "succeeded"
            assert [j.id for j in client.fine_tuning.jobs.list(metadata={"k": "v"})] == [job.id]
            done = client.fine_tuning.jobs.retrieve(job.id)
            reply = client.chat.completions.create(model=done.fine_tuned_model,
                                                   messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content == "ok"
            assert len(fake.jobs) == 1  # failed POSTs had no side effects
            return list(fake.status_codes)

    codes = run(3)
    assert {429, 500} <= set(codes) and codes[-1] == 200
    assert run(3) == codes


def test_auth_required(fake, client):
    with pytest.raises(openai.AuthenticationError) as exc:
        client.files.list(extra_headers={"Authorization": openai.Omit()})
    assert exc.value.status_code == 401 and exc.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=fake.base_url, api_key="x", default_headers={"Authorization": "Basic abc"}).models.list()
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(fake.base_url + "/models", timeout=5)
    assert raw.value.code == 401
    assert set(json.loads(raw.value.read())["error"]) == {"message", "type", "param", "code"}
    fake.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError) as exc:
        client.models.list()
    assert exc.value.code == "invalid_api_key"
    assert fake.client(api_key="sk-right").models.retrieve(BASE).id == BASE


def test_concurrent_uploads_are_thread_safe(fake):
    client = fake.client(max_retries=0)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                upload(client, jsonl(1 + j), f"t{i}-{j}.jsonl")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not fake.errors
    assert len(fake.files) == 40 and len({f["filename"] for f in fake.files.values()}) == 40
    assert fake.count("POST", "/files") == 40
