"""provider: anthropic (Claude fine-tuning on Bedrock), end to end through the CLI and the real boto3
against moto's server. moto keeps a job InProgress until the test finishes it, as Bedrock would later."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import PROJECT, Repo, write_jsonl
from fakes.aws import BUCKET, ROLE_ARN, MotoAws

SPEC = """\
apiVersion: levcustom/v1
kind: Model
metadata:
  name: {name}
spec:
  base_model: claude-3-haiku
  provider: anthropic
  overrides:
    - provider.poll_interval_s=0.01
    - provider.max_poll_interval_s=0.05
    - provider.role_arn={role}
    - provider.s3_uri=s3://{bucket}/levcustom
  dataset:
    sources:
      - {{type: jsonl, path: {data}}}
    split: {{validation: 0.1, seed: 1}}
  training: {{epochs: 2, batch_size: 8, learning_rate_multiplier: 0.5}}
  deploy:
    agents: [{name}-agent]
"""


def support_rows(n: int = 40) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "You are a support agent."},
                          {"role": "user", "content": f"My order {i} has not arrived."},
                          {"role": "assistant", "content": f"Sorry about order {i}: I have reshipped it."}]}
            for i in range(n)]


@pytest.fixture
def aws():
    with MotoAws() as server:
        server.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield server


@pytest.fixture
def repo(tmp_path, aws) -> Repo:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    write_jsonl(tmp_path / "data" / "train.jsonl", support_rows())
    r = Repo(tmp_path, env=dict(aws.env))
    add_spec(r, "haiku-support")
    return r


def add_spec(repo: Repo, name: str, data: str = "data/train.jsonl") -> None:
    path = repo.root / "specs" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(SPEC.format(name=name, data=data, role=ROLE_ARN, bucket=BUCKET))


def start_apply(repo: Repo, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", *extra,
                             "-C", str(repo.root)], env={**os.environ, "COLUMNS": "200", **repo.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_jobs(aws: MotoAws, proc: subprocess.Popen, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 120
    while len(aws.jobs) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no customization job was created"
        time.sleep(0.02)
    return list(aws.jobs)


def apply_finishing_jobs(repo: Repo, aws: MotoAws, count: int = 1, *extra: str, **finish) -> tuple[int, str, str]:
    """Run apply; when its jobs exist at 'Bedrock', end them the way Bedrock would."""
    proc = start_apply(repo, *extra)
    before = len(aws.jobs)
    for name in wait_for_jobs(aws, proc, before + count)[before:]:
        aws.finish_job(name, **finish)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_plan_is_offline_with_bedrock_cost(repo, aws):
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        repo.env.pop(key)
    plan = json.loads(repo.run("plan", "--json").stdout)
    [est] = plan["estimates"]
    assert "x 2 epochs x $4/1M on Bedrock" in est["note"] and est["usd"] > 0 and est["tokens"] % 2 == 0
    assert any("provisioned throughput, which is not enabled" in w for w in plan["warnings"])
    text = repo.run("plan").stdout
    assert "haiku-support: $0.00" in text or "haiku-support: $0.01" in text
    assert aws.jobs == {} and aws.objects() == []


def test_end_to_end_then_nothing_to_do(repo, aws):
    code, out, err = apply_finishing_jobs(repo, aws, loss=0.31)
    assert code == 0, out + err
    train = repo.lock()["models"]["haiku-support"]["train"]
    [name] = aws.jobs
    job = aws.jobs[name]
    assert name == f"haiku-support-{train['fingerprint']}" == train["job_id"]
    assert job.client_request_token == name  # the idempotency key Bedrock honors: model + fingerprint
    assert job.base_model_identifier == "anthropic.claude-3-haiku-20240307-v1:0:200k"
    assert job.customization_type == "FINE_TUNING" and job.role_arn == ROLE_ARN
    assert job.hyper_parameters == {"epochCount": "2", "batchSize": "8", "learningRateMultiplier": "0.5"}
    assert {"key": "levcustom:model", "value": "haiku-support"} in job.job_tags
    assert train["model_ref"] == f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{name}"
    assert train["metrics"]["train_loss"] == pytest.approx(0.31) and train["cost_usd"] > 0

    # the uploaded data is Bedrock's Claude format, stored under its content hash
    keys = aws.objects()
    assert len(keys) == 2 and all(k.startswith("levcustom/data/levcustom-") for k in keys)
    train_key = job.training_data_config["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    assert train_key in keys and job.validation_data_config["validators"][0]["s3Uri"] != f"s3://{BUCKET}/{train_key}"
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=train_key)
    row = json.loads(body["Body"].read().decode().splitlines()[0])
    assert row["system"] == "You are a support agent." and [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert set(repo.lock()["uploads"]) == {f"anthropic:{k.split('levcustom-')[1].removesuffix('.jsonl')}"
                                           for k in keys}

    resolved = json.loads(repo.run("resolve", "haiku-support-agent", "--json").stdout)
    assert resolved["model_ref"] == train["model_ref"] and resolved["provider"] == "anthropic"
    assert "No changes." in repo.run("plan").stdout
    logs = repo.run("logs", "haiku-support").stdout
    assert f"created {name}" in logs and "train_loss: 0.31" in logs and "Completed" in logs
    lock_text = (repo.root / "levcustom.lock").read_text()
    for text in (out, err, lock_text, logs):
        assert "testing-secret-access-key" not in text


def test_kill_after_job_creation_never_duplicates(repo, aws):
    proc = start_apply(repo)
    [name] = wait_for_jobs(aws, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # between create and the lockfile write of the result
    proc.wait()
    (repo.root / ".levcustom.lock.info").unlink()
    assert "resumes the apply interrupted" in repo.run("plan").stdout
    aws.finish_job(name)
    repo.run("apply", "--auto-approve")
    assert list(aws.jobs) == [name] and len(aws.objects()) == 2
    assert repo.lock()["models"]["haiku-support"]["train"]["job_id"] == name


def test_failed_job_shows_bedrock_error_and_next_apply_retries(repo, aws):
    code, _, err = apply_finishing_jobs(repo, aws, status="Failed", failure="Training data has invalid records")
    assert code == 1 and "Training data has invalid records" in err and "Traceback" not in err
    model = repo.lock()["models"]["haiku-support"]
    assert "train" not in model and model["intents"] == {}
    code, out, err = apply_finishing_jobs(repo, aws)
    assert code == 0, out + err
    first, second = sorted(aws.jobs, key=len)
    assert second == f"{first}-r2" and repo.lock()["models"]["haiku-support"]["train"]["job_id"] == second
    assert len(aws.objects()) == 2  # the retry found its data already uploaded


def test_same_data_uploaded_once_and_new_data_retrains(repo, aws):
    add_spec(repo, "haiku-two")
    code, out, err = apply_finishing_jobs(repo, aws, count=2)
    assert code == 0, out + err
    assert len(aws.jobs) == 2 and len(aws.objects()) == 2
    write_jsonl(repo.root / "data" / "train.jsonl", support_rows(44))
    assert "source jsonl:data/train.jsonl changed: +4 / -0 records" in repo.run("plan").stdout
    code, out, err = apply_finishing_jobs(repo, aws, count=2)
    assert code == 0, out + err
    assert len(aws.jobs) == 4 and 3 <= len(aws.objects()) <= 4


def test_bad_data_and_settings_rejected_at_plan_time(repo, aws):
    rows = support_rows()
    rows[3]["messages"].insert(1, {"role": "assistant", "content": "Hello!"})
    rows[5]["messages"].append({"role": "user", "content": "thanks"})
    write_jsonl(repo.root / "data" / "train.jsonl", rows)
    repo.edit("specs/haiku-support.yaml", "epochs: 2, batch_size: 8", "epochs: 20, batch_size: 2")
    repo.edit("specs/haiku-support.yaml", f"    - provider.role_arn={ROLE_ARN}\n", "")
    err = repo.run("plan", check=1).stderr
    assert "data/train.jsonl:4:1: the conversation must start with a user message after the system prompt" in err
    assert "data/train.jsonl:6:1: the last message must be the assistant's" in err
    assert "spec.training.epochs: 20 is outside Bedrock's range [1, 10]" in err
    assert "spec.training.batch_size: 2 is outside Bedrock's range [4, 256]" in err
    assert "spec.provider: conf/provider/anthropic.yaml: role_arn is not set" in err
    assert "Traceback" not in err and aws.jobs == {}


def test_dpo_is_refused_with_the_reason(repo, aws):
    repo.edit("specs/haiku-support.yaml", "provider: anthropic", "provider: anthropic\n  method: dpo")
    err = repo.run("plan", check=1).stderr
    assert "spec.method: Bedrock fine-tunes Claude on supervised chat data only" in err


def test_credential_and_region_errors_are_one_clear_line(repo, aws, tmp_path):
    no_files = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true"}
    repo.env.update(no_files)
    repo.env.pop("AWS_ACCESS_KEY_ID")
    repo.env.pop("AWS_SECRET_ACCESS_KEY")
    err = repo.run("apply", "--auto-approve", check=1).stderr
    assert "anthropic: list customization jobs failed: no AWS credentials found" in err and "Traceback" not in err

    repo.env.update({"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key"})
    repo.env.pop("AWS_REGION")
    repo.edit("specs/haiku-support.yaml", "    - provider.poll_interval_s=0.01\n",
              "    - provider.poll_interval_s=0.01\n    - provider.region=null\n")
    err = repo.run("apply", "--auto-approve", check=1).stderr
    assert "anthropic: no AWS region: set provider.region or AWS_REGION" in err and "Traceback" not in err

    repo.env["AWS_REGION"] = "us-west-2"
    repo.env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    repo.edit("specs/haiku-support.yaml", "provider.region=null", "provider.max_retries=0")
    err = repo.run("apply", "--auto-approve", check=1).stderr
    assert "list customization jobs failed: cannot reach http://127.0.0.1:9 (check the region and network)" in err
    assert "testing-secret-access-key" not in err


def test_drift_stopped_job_and_deleted_model_plan_replacement(repo, aws):
    code, out, err = apply_finishing_jobs(repo, aws)
    assert code == 0, out + err
    [name] = aws.jobs
    aws.client("bedrock").delete_custom_model(modelIdentifier=name)
    assert "No changes." in repo.run("plan").stdout  # a plain plan reads no network
    assert "was deleted at the provider" in repo.run("plan", "--refresh").stdout
    assert "haiku-support: drift" in repo.run("refresh").stdout
    code, out, err = apply_finishing_jobs(repo, aws)
    assert code == 0, out + err
    assert len(aws.jobs) == 2 and "No changes." in repo.run("plan").stdout


def test_stop_at_provider_fails_the_apply(repo, aws):
    proc = start_apply(repo)
    [name] = wait_for_jobs(aws, proc)
    aws.client("bedrock").stop_model_customization_job(jobIdentifier=name)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"training job {name} cancelled: drift: job stopped at provider" in " ".join(err.split())


def test_destroy_purge_deletes_the_custom_model(repo, aws):
    code, out, err = apply_finishing_jobs(repo, aws)
    assert code == 0, out + err
    [name] = aws.jobs
    (repo.root / "specs" / "haiku-support.yaml").unlink()
    repo.run("apply", "--auto-approve", "--purge")
    assert name not in aws.bedrock.custom_models and repo.lock()["models"] == {}


def test_plan_shows_the_hourly_price_only_with_the_opt_in(repo):
    plan = json.loads(repo.run("plan", "--json").stdout)
    assert [e for e in plan["estimates"] if "per hour" in e["note"]] == []
    deploy_fp = next(c["fingerprint"] for c in plan["changes"] if c["stage"] == "deploy")
    repo.edit("specs/haiku-support.yaml", f"    - provider.role_arn={ROLE_ARN}\n",
              f"    - provider.role_arn={ROLE_ARN}\n    - provider.provisioned_throughput.enabled=true\n"
              "    - provider.provisioned_throughput.model_units=2\n")
    plan = json.loads(repo.run("plan", "--json").stdout)
    [hourly] = [e for e in plan["estimates"] if "per hour" in e["note"]]
    assert hourly["usd"] == pytest.approx(70.0)  # 2 units x the configured $35/h
    assert "2 model unit(s) x $35/h (no commitment), ~$50,400 per 30 days" in hourly["note"]
    assert next(c["fingerprint"] for c in plan["changes"] if c["stage"] == "deploy") != deploy_fp
    assert not any("not enabled" in w for w in plan["warnings"])
    assert "$70.00  (per hour while deployed" in repo.run("plan").stdout


def test_cancel_stops_the_job_at_bedrock(repo, aws, monkeypatch):
    from levcustom.plan.desired import load_and_resolve
    from levcustom.providers.anthropic import AnthropicProvider
    from levcustom.providers.base import TrainRequest
    from levcustom.workspace import Workspace

    proc = start_apply(repo)
    [name] = wait_for_jobs(aws, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    ws = Workspace(repo.root)
    _, configs, _ = load_and_resolve(ws, [ws.specs_dir], [])
    cfg = configs["haiku-support"]
    request = TrainRequest(model="haiku-support", key="k", base_model="claude-3-haiku", method="sft",
                           dataset_dir=repo.root, config=cfg, work_dir=repo.root)
    AnthropicProvider(ws).cancel(name, request)
    assert aws.jobs[name].status == "Stopped"
    assert AnthropicProvider(ws).poll(name, request).state == "cancelled"
