"""End to end through the real CLI (subprocesses) on a tiny offline model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from levcustom.state.lockfile import read_lock
from levcustom.state.statelock import StateLock

pytestmark = pytest.mark.slow


def test_plan_apply_replan_cycle(repo):
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in repo.run("plan", "--detailed-exitcode", check=2).stdout
    out = repo.run("apply", "--auto-approve")
    assert "golden.contains 1.00 (base 0.00); gates passed" in out.stdout, out.stdout
    assert "Apply complete! Stages: 4 added, 0 changed, 0 destroyed." in out.stdout
    assert "No changes." in repo.run("plan", "--detailed-exitcode", check=0).stdout

    lock = repo.lock()
    train = lock["models"]["tiny"]["train"]
    assert lock["models"]["tiny"]["intents"] == {}
    assert (repo.root / train["model_ref"] / "adapter_config.json").is_file()
    resolved = json.loads(repo.run("resolve", "helper", "--task", "answering", "--json").stdout)
    assert resolved["model"] == "tiny" and resolved["model_ref"] == train["model_ref"]

    # A new gate threshold re-runs eval and deploy only, without training or generating again.
    repo.edit("specs/tiny.yaml", "min: 0.5", "min: 0.6")
    plan = json.loads(repo.run("plan", "--json").stdout)
    actions = {c["stage"]: c["action"] for c in plan["changes"]}
    assert actions == {"dataset": "no-op", "train": "no-op", "eval": "update", "deploy": "update"}
    assert next(c for c in plan["changes"] if c["stage"] == "eval")["reasons"] == ["gates[0].min: 0.5 -> 0.6"]
    generations = sorted((repo.root / ".levcustom" / "runs" / "generations").iterdir())
    repo.run("apply", "--auto-approve")
    assert repo.lock()["models"]["tiny"]["train"] == train
    # the answers were reused from the cache: no model was loaded, nothing new generated
    assert sorted((repo.root / ".levcustom" / "runs" / "generations").iterdir()) == generations

    # A gate the model cannot pass blocks the deploy (exit 3) and keeps the previous deployment.
    repo.edit("specs/tiny.yaml", "min: 0.6", "min: 1.01")
    out = repo.run("apply", "--auto-approve", check=3)
    assert "not deployed, eval gate failed: FAILED golden.contains 1.000 >= 1.01" in out.stderr
    after = repo.lock()["models"]["tiny"]
    assert after["eval"]["passed"] is False and after["deploy"]["inputs"]["eval"] != after["eval"]["fingerprint"]
    assert "blocked unless results change" in repo.run("plan").stdout

    # Removing the spec undeploys and forgets the model; --purge also deletes its artifacts.
    (repo.root / "specs" / "tiny.yaml").rename(repo.root / "tiny.yaml.off")
    (repo.root / "specs" / "other.yaml").write_text(
        (repo.root / "tiny.yaml.off").read_text().replace("name: tiny", "name: other").replace("[helper]", "[x]"))
    out = repo.run("plan", "--target", "tiny", "--purge").stdout
    assert "Plan: 0 to add, 0 to change, 4 to destroy." in out and "artifacts purged" in out
    repo.run("apply", "--auto-approve", "--target", "tiny", "--purge")
    assert "tiny" not in repo.lock()["models"]
    assert not (repo.root / train["model_ref"]).exists()
    assert "no model is deployed to agent 'helper'" in repo.run("resolve", "helper", check=1).stderr


def test_kill_mid_training_resumes_from_checkpoint(repo):
    repo.edit("specs/tiny.yaml", "epochs: 4", "epochs: 40")
    proc = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(repo.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(repo.root.glob(".levcustom/runs/train/*/checkpoints/checkpoint-*")):
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint was written"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its training child, at once
    proc.wait()
    lock = read_lock(repo.root / "levcustom.lock")  # still valid
    assert "train" in lock.models["tiny"].intents and lock.models["tiny"].train is None
    (repo.root / ".levcustom.lock.info").unlink()  # the killed apply could not release it
    assert "resumes the apply interrupted" in repo.run("plan").stdout
    repo.run("apply", "--auto-approve", timeout=600)
    [work] = repo.root.glob(".levcustom/runs/train/*")
    result = json.loads((work / "result.json").read_text())
    assert result["resumed_from"] and "checkpoint-" in result["resumed_from"]
    assert read_lock(repo.root / "levcustom.lock").models["tiny"].intents == {}


def test_ctrl_c_mid_training_stops_cleanly_and_resumes(repo):
    repo.edit("specs/tiny.yaml", "epochs: 4", "epochs: 40")
    proc = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(repo.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(repo.root.glob(".levcustom/runs/train/*/checkpoints/checkpoint-*")):
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint was written"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "nterrupted" in err and "Traceback" not in err
    assert not (repo.root / ".levcustom.lock.info").exists()  # released on the way out
    assert "train" in read_lock(repo.root / "levcustom.lock").models["tiny"].intents
    assert "resumes the apply interrupted" in repo.run("plan").stdout


def test_held_lock_is_refused_with_holder(repo):
    with StateLock(repo.root / ".levcustom.lock.info", "apply") as held:
        out = repo.run("apply", "--auto-approve", check=1)
    assert f"levcustom unlock {held.info.id}" in out.stderr and "Traceback" not in out.stderr


def test_saved_plan_refused_when_stale(repo):
    repo.run("plan", "-out", str(repo.root / "p.plan"))
    repo.edit("data/train.jsonl", "question number 0", "question number zero")
    out = repo.run("apply", str(repo.root / "p.plan"), check=1)
    assert "saved plan is stale" in out.stderr
    assert not (repo.root / "levcustom.lock").exists()


def test_invalid_spec_is_one_clear_error(repo):
    repo.edit("specs/tiny.yaml", "epochs: 4", "epochs: many")
    out = repo.run("plan", check=1)
    assert "specs/tiny.yaml:" in out.stderr and "spec.training.epochs" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_source_and_too_few_examples(repo):
    repo.edit("specs/tiny.yaml", "data/train.jsonl", "data/missing.jsonl")
    out = repo.run("plan", check=1)
    assert "spec.dataset.sources[0].path: file or folder not found: data/missing.jsonl" in out.stderr
    repo.edit("specs/tiny.yaml", "data/missing.jsonl", "data/empty.jsonl")
    (repo.root / "data" / "empty.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    out = repo.run("apply", "--auto-approve", check=1)
    assert "data/empty.jsonl:1:1: the last message must be the assistant's" in out.stderr
    assert read_lock(repo.root / "levcustom.lock").models == {}  # nothing half-built was recorded


def test_dataset_commands(repo):
    from conftest import write_jsonl

    logs = [{"id": f"c{i}", "agent": "helper", "task": "answering", "rating": 5,
             "messages": [{"role": "user", "content": f"log question {i} from me@example.com"},
                          {"role": "assistant", "content": "ok"}]} for i in range(20)]
    write_jsonl(repo.root / "data" / "logs" / "day1.jsonl", logs)
    repo.edit("specs/tiny.yaml", "      - {type: jsonl, path: data/train.jsonl}",
              "      - {type: jsonl, path: data/train.jsonl}\n"
              "      - {type: interactions, path: data/logs/, min_rating: 4}\n"
              "    curation: {dedupe: near}")
    repo.edit("specs/tiny.yaml", "split: {validation: 0.1, seed: 1}", "split: {validation: 0.1, eval: 0.2, seed: 1}")
    assert "has no built dataset: run levcustom dataset build tiny" in repo.run("dataset", "show", "tiny",
                                                                                check=1).stderr
    out = repo.run("dataset", "build", "tiny").stdout
    assert "tiny: dataset: done" in out and "eval examples" in out
    lock = repo.lock()["models"]["tiny"]
    assert "train" not in lock and lock["dataset"]["train_rows"] > 0  # the dataset stage only
    assert "Datasets are up to date." in repo.run("dataset", "build").stdout
    plan = json.loads(repo.run("plan", "--json").stdout)
    assert {c["stage"]: c["action"] for c in plan["changes"]}["dataset"] == "no-op"

    shown = repo.run("dataset", "show", "tiny", "--samples", "1").stdout
    assert "interactions:data/logs/: read 20, invalid 0" in shown and "Scrubbed: email 20" in shown
    manifest = json.loads(repo.run("dataset", "show", "tiny", "--json").stdout)
    assert manifest["rows"]["eval"] > 0 and "me@example.com" not in json.dumps(manifest)

    def append(n: int, tag: str) -> None:
        with open(repo.root / "data" / "logs" / "day1.jsonl", "a") as f:
            f.write("".join(json.dumps({**logs[0], "id": f"{tag}{i}", "messages": [
                {"role": "user", "content": f"new question {tag} {i}"}, {"role": "assistant", "content": "ok"}]}) + "\n"
                for i in range(n)))

    append(3, "a")
    diff = repo.run("dataset", "diff", "tiny").stdout
    assert "~ source interactions:data/logs/" in diff and "changed data/logs/day1.jsonl: +3 / -0 records" in diff
    out = repo.run("dataset", "build", "tiny").stdout
    assert "(3 source rows read, 52 reused from the cache)" in out  # only the appended tail was read
    append(2, "b")
    reasons = next(c for c in json.loads(repo.run("plan", "--json").stdout)["changes"]
                   if c["stage"] == "dataset")["reasons"]
    assert reasons[:2] == ["+2 / -0 records (1 source changed)",
                           "source interactions:data/logs/ changed: +2 / -0 records"]

    target = repo.root / "out" / "eval.jsonl"
    built = json.loads(repo.run("dataset", "show", "tiny", "--json").stdout)
    out = repo.run("dataset", "export", "tiny", "--split", "eval", "-o", str(target)).stdout
    assert f"Wrote {built['rows']['eval']} examples" in out
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert exported and all(set(r) == {"messages"} for r in exported)
    everything = repo.run("dataset", "export", "tiny", "-o", str(target), "--provenance").stdout
    assert "Wrote" in everything and "provenance" in target.read_text()
    assert "--split must be one of: train, validation, eval" in repo.run(
        "dataset", "export", "tiny", "--split", "test", "-o", str(target), check=1).stderr
