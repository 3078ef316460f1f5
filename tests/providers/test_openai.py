"""provider: openai, end to end through the CLI and the real openai SDK against a loopback fake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import SECRET, add_openai_spec, chat_rows, write_jsonl
from fakes.openai_server import FakeOpenAI


@pytest.fixture
def fake(fake_openai):
    return fake_openai


@pytest.fixture
def repo(openai_repo):
    return openai_repo


def jobs_created(fake: FakeOpenAI) -> int:
    return fake.count("POST", "/fine_tuning/jobs")


def uploads(fake: FakeOpenAI) -> int:
    return fake.count("POST", "/files")


def test_plan_is_offline_with_cost_and_shutdown_warning(repo, fake):
    repo.env.pop("OPENAI_API_KEY")
    out = repo.run("plan", "--json")
    plan = json.loads(out.stdout)
    [est] = plan["estimates"]
    assert est["usd"] > 0 and "x 2 epochs x $3/1M" in est["note"] and "counted with o200k_base" in est["note"]
    assert est["tokens"] % 2 == 0
    assert any("accepts no new jobs from 2027-01-06" in w for w in plan["warnings"])
    assert fake.requests == []  # plan reads no network


def test_sft_end_to_end_then_nothing_to_do(repo, fake):
    out = repo.run("apply", "--auto-approve")
    assert "golden.contains 1.00 (base 0.00); gates passed" in out.stdout, out.stdout + out.stderr
    train = repo.lock()["models"]["ft-one"]["train"]
    assert train["model_ref"].startswith("ft:gpt-4o-mini-2024-07-18:")
    assert train["cost_usd"] > 0 and train["metrics"]["trained_tokens"] > 0
    [job] = fake.jobs.values()
    assert job["metadata"]["levcustom_fingerprint"] == train["fingerprint"]
    assert job["method"]["type"] == "supervised" and job["hyperparameters"]["n_epochs"] == 2
    resolved = json.loads(repo.run("resolve", "ft-one-agent", "--json").stdout)
    assert resolved["model_ref"] == train["model_ref"] and resolved["provider"] == "openai"

    before = len(fake.requests)
    assert "No changes." in repo.run("apply", "--auto-approve").stdout
    assert len(fake.requests) == before  # re-apply talks to nobody

    # A tokens suite counts the cached answers with the model's own encoding (o200k_base), asking nobody.
    repo.edit("specs/ft-one.yaml", "metric: contains}", "metric: contains}\n      - {name: length, "
              "path: evals/golden.jsonl, metric: tokens}")
    repo.run("eval", "ft-one")
    assert len(fake.requests) == before
    ev = repo.lock()["models"]["ft-one"]["eval"]
    rows = [json.loads(line) for line in (repo.root / ev["run_dir"] / "cases.jsonl").read_text().splitlines()]
    import quicktok

    enc = quicktok.get_encoding("o200k_base")
    counted = [r for r in rows if r["metric"] == "tokens"]
    assert counted and all(r["scores"]["tuned"] == len(enc.encode(r["outputs"]["tuned"])) and not r["reasons"]
                           for r in counted)

    logs = repo.run("logs", "ft-one").stdout
    assert "Fine-tuning job started" in logs and "training loss" in logs

    lock_text = (repo.root / "levcustom.lock").read_text()
    for text in (out.stdout, out.stderr, lock_text, logs):
        assert SECRET not in text


def test_dpo_end_to_end(repo, fake):
    (repo.root / "specs" / "ft-one.yaml").unlink()
    add_openai_spec(repo, "prefs", method="dpo", data="data/prefs.jsonl")
    repo.run("apply", "--auto-approve")
    [job] = fake.jobs.values()
    assert job["method"]["type"] == "dpo"
    row = json.loads(fake.file_content(job["training_file"]).splitlines()[0])
    assert set(row) == {"input", "preferred_output", "non_preferred_output"}
    assert row["preferred_output"][0]["role"] == "assistant"


def test_changed_data_retrains_and_identical_data_is_uploaded_once(repo, fake):
    add_openai_spec(repo, "ft-two")  # same data and settings as ft-one: one upload, one job serve both
    repo.run("apply", "--auto-approve")
    assert uploads(fake) == 1 and jobs_created(fake) == 1
    write_jsonl(repo.root / "data" / "train.jsonl", chat_rows(n=20))
    plan = repo.run("plan").stdout
    assert "source jsonl:data/train.jsonl changed: +4 / -0 records" in plan
    repo.run("apply", "--auto-approve")
    assert uploads(fake) == 2 and jobs_created(fake) == 2


def test_faults_are_retried_and_converge(repo, fake):
    fake.fail_rate = 0.3
    repo.run("apply", "--auto-approve")
    fake.fail_rate = 0.0
    assert jobs_created(fake) >= 1
    assert len({j["id"] for j in fake.jobs.values()}) == 1  # retries never made a second job
    assert 429 in fake.status_codes and 500 in fake.status_codes
    assert "No changes." in repo.run("plan").stdout


def test_failed_job_shows_provider_error(repo, fake):
    fake.min_examples = 1000  # the fake service rejects the file on validation, as the real one would
    out = repo.run("apply", "--auto-approve", check=1)
    assert "must have at least 1000 examples" in out.stderr
    assert "Traceback" not in out.stderr
    lock = repo.lock()["models"]["ft-one"]
    assert "train" not in lock and lock["intents"] == {}


def test_kill_after_job_creation_never_duplicates(repo, fake):
    fake.auto_advance = False  # the job stays 'validating_files' until we let it go
    proc = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(repo.root)],
                            env={**os.environ, **repo.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while jobs_created(fake) == 0:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (repo.root / ".levcustom.lock.info").unlink()
    fake.auto_advance = True
    repo.run("apply", "--auto-approve")
    assert jobs_created(fake) == 1 and uploads(fake) == 1
    assert repo.lock()["models"]["ft-one"]["train"]["job_id"] == next(iter(fake.jobs))


def test_upload_found_again_after_crash_before_recording(repo, fake):
    fake.fine_tunable_models = set()  # job creation fails after the upload
    assert "HTTP 400" in repo.run("apply", "--auto-approve", check=1).stderr
    lock = repo.lock()
    assert len(lock["uploads"]) == 1
    # as if the crash had come before the upload was recorded: the provider's file list has it
    lock["uploads"] = {}
    (repo.root / "levcustom.lock").write_text(json.dumps(lock))
    fake.fine_tunable_models = {"gpt-4o-mini-2024-07-18"}
    repo.run("apply", "--auto-approve")
    assert uploads(fake) == 1 and len(repo.lock()["uploads"]) == 1


def test_malformed_rows_rejected_before_any_upload(repo, fake):
    with open(repo.root / "data" / "train.jsonl", "a") as f:
        f.write(json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
        f.write(json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    out = repo.run("apply", "--auto-approve", check=1)
    assert ("data/train.jsonl:17:1: messages[0].role must be one of system, user, assistant, tool (got 'robot')"
            in out.stderr)
    assert "data/train.jsonl:18:1: the last message must be the assistant's" in out.stderr
    assert fake.requests == []


def test_too_few_examples_and_bad_hyperparameters_at_plan_time(repo, fake):
    write_jsonl(repo.root / "data" / "train.jsonl", chat_rows(n=5))
    repo.edit("specs/ft-one.yaml", "training: {epochs: 2}", "training: {epochs: 80}")
    err = repo.run("plan", check=1).stderr
    assert "specs/ft-one.yaml:11:5: spec.dataset.sources: 5 examples; the openai provider needs at least 10" in err
    assert "specs/ft-one.yaml:" in err and "spec.training.epochs: 80 is outside OpenAI's range [1, 50]" in err


def test_missing_key_is_a_clear_error(repo, fake):
    repo.env["OPENAI_API_KEY"] = ""
    out = repo.run("apply", "--auto-approve", check=1)
    assert "openai: no API key: set OPENAI_API_KEY" in out.stderr


def test_drift_deleted_model_and_cancelled_job_plan_replacement(repo, fake):
    repo.run("apply", "--auto-approve")
    model = repo.lock()["models"]["ft-one"]["train"]["model_ref"]
    fake.client().models.delete(model)
    assert "No changes." in repo.run("plan").stdout  # a plain plan reads no network
    assert f"drift: fine-tuned model {model} was deleted at the provider" in repo.run("plan", "--refresh").stdout
    assert "ft-one: drift" in repo.run("refresh").stdout
    plan = repo.run("plan", "--detailed-exitcode", check=2).stdout
    assert "-/+ train" in plan and "was deleted at the provider" in plan
    repo.run("apply", "--auto-approve")
    assert jobs_created(fake) == 2 and "No changes." in repo.run("plan").stdout


def test_destroy_keeps_model_unless_purged(repo, fake):
    write_jsonl(repo.root / "data" / "other.jsonl", chat_rows(answer="fine", n=12))
    add_openai_spec(repo, "ft-two", data="data/other.jsonl")
    add_openai_spec(repo, "ft-three", data="data/other.jsonl")  # identical training: shares ft-two's model
    repo.run("apply", "--auto-approve")
    kept = repo.lock()["models"]["ft-one"]["train"]["model_ref"]
    purged = repo.lock()["models"]["ft-two"]["train"]["model_ref"]
    (repo.root / "specs" / "ft-one.yaml").unlink()
    repo.run("apply", "--auto-approve")
    assert kept in fake.models and "ft-one" not in repo.lock()["models"]
    (repo.root / "specs" / "ft-two.yaml").unlink()
    out = repo.run("apply", "--auto-approve", "--purge").stdout
    assert f"kept {purged}: still used by ft-three" in " ".join(out.split())
    assert purged in fake.models  # ft-three still serves it
    (repo.root / "specs" / "ft-three.yaml").unlink()
    repo.run("apply", "--auto-approve", "--purge")
    assert purged not in fake.models and kept in fake.models


def test_job_cancelled_at_provider_fails_then_retrains(repo, fake):
    fake.auto_advance = False
    proc = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(repo.root)],
                            env={**os.environ, **repo.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not fake.jobs:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    fake.cancel_externally(next(iter(fake.jobs)))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "cancelled: drift: job cancelled at provider" in " ".join(err.split())
    fake.auto_advance = True
    repo.run("apply", "--auto-approve")
    assert jobs_created(fake) == 2
