"""End to end through the real CLI (subprocesses) on a tiny offline model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    assert "agents [helper] tasks [answering]" in repo.run("show", "tiny").stdout

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
    # A complete checkpoint: the Trainer writes trainer_state.json last.
    while not list(repo.root.glob(".levcustom/runs/train/*/checkpoints/checkpoint-*/trainer_state.json")):
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
    # A terminal's foreground job takes Ctrl-C; a shell's background job starts with SIGINT ignored (and
    # a test run launched in the background would pass that on): give the CLI the terminal's disposition.
    proc = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(repo.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(repo.root.glob(".levcustom/runs/train/*/checkpoints/checkpoint-*")):
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint was written"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "nterrupted" in err and "Traceback" not in err, \
        f"exit {proc.returncode}\n{out}\n{err}"
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


def _gates(repo, *gates: str) -> None:
    repo.edit("specs/tiny.yaml", "      - {metric: golden.contains, min: 0.5}",
              "\n".join(f"      - {g}" for g in gates))


def test_eval_report_and_a_regressed_model_blocked_by_a_paired_gate(repo, tmp_path):
    import shutil

    _gates(repo, "{metric: golden.contains, min_delta_vs: deployed, confidence: 0.95}")
    repo.run("apply", "--auto-approve")
    out = repo.run("eval", "tiny")
    assert "golden.contains 1.00 (base 0.00); gates passed" in out.stdout
    report_dir = tmp_path / "report"
    md = repo.run("report", "tiny", "-o", str(report_dir), "--markdown").stdout
    assert "| golden.contains | 0.000 | 1.000 | 1.000 [1.000, 1.000] | +1.000 [+1.000, +1.000], McNemar p=" in md
    html = (report_dir / "report.html").read_text()
    assert "<svg" in html and "golden.contains" in html
    assert "<script" not in html and "src=" not in html and "href=" not in html  # self-contained

    # Answer length in tokens, counted with the tiny model's own tokenizer (no estimate), gated with max.
    repo.edit("specs/tiny.yaml", "metric: contains}", "metric: contains}\n      - {name: length, "
              "path: evals/golden.jsonl, metric: tokens}")
    gate = "      - {metric: golden.contains, min_delta_vs: deployed, confidence: 0.95}"
    repo.edit("specs/tiny.yaml", gate, gate + "\n      - {metric: length.tokens, max: 8}")
    assert "length.tokens" in repo.run("eval", "tiny").stdout
    ev = repo.lock()["models"]["tiny"]["eval"]
    rows = [json.loads(line) for line in (repo.root / ev["run_dir"] / "cases.jsonl").read_text().splitlines()]
    from tokenizers import Tokenizer

    base = Path(repo.lock()["models"]["tiny"]["train"]["inputs"]["base_model"])
    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    counted = [r for r in rows if r["metric"] == "tokens"]
    assert counted and all(r["scores"][role] == len(tok.encode(r["outputs"][role], add_special_tokens=False).ids)
                           and not r["reasons"] for r in counted for role in ("tuned", "base"))

    # Teach it the wrong answer: the regression against the deployed version fails the gate, with its interval.
    repo.edit("data/train.jsonl", '"content": "ok"}]}', '"content": "no"}]}')
    out = repo.run("apply", "--auto-approve", check=3)
    assert ("FAILED golden.contains 0.000 vs deployed 1.000: lower 95% CI bound -1.000 >= +0.0 "
            "(delta -1.000, CI -1.000..-1.000, n=6, McNemar p=0.031)") in out.stderr
    assert repo.run("eval", "tiny", check=3).returncode == 3
    lock = repo.lock()["models"]["tiny"]
    assert lock["eval"]["results"]["golden.contains"]["paired"]["deployed"]["regressed"] == 6
    assert lock["deploy"]["model_ref"] != lock["train"]["model_ref"]  # the previous version is kept

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless chromium is not installed: the report's rendering is not checked")
    repo.run("report", "tiny", "-o", str(report_dir))
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1000,900",
                    f"--screenshot={shot}", (report_dir / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # a page was drawn


def test_online_ab_split_then_promotion_from_recorded_outcomes(repo):
    from levcustom.deploy import online

    repo.edit("specs/tiny.yaml", "    tasks: [answering]", "    tasks: [answering]\n"
              "    traffic: {candidate: 30, min_outcomes: 40}")
    repo.run("apply", "--auto-approve")
    v1 = repo.lock()["models"]["tiny"]["deploy"]
    assert v1["phase"] == "full" and "previous" not in v1

    repo.edit("specs/tiny.yaml", "epochs: 4", "epochs: 5")  # a new version: it starts as a 30% candidate
    out = repo.run("apply", "--auto-approve")
    assert "online A/B split: new version gets 30% of requests" in out.stdout
    v2 = repo.lock()["models"]["tiny"]["deploy"]
    assert v2["previous"]["model_ref"] == v1["model_ref"] and v2["traffic"] == 30
    served = [json.loads(repo.run("resolve", "helper", "--key", f"r{i}", "--json").stdout) for i in range(6)]
    assert {s["model_ref"] for s in served} <= {v1["model_ref"], v2["model_ref"]}
    repo.run("outcome", "helper", "--key", "r0", "--success")
    recorded = online.read(online.outcomes_path(repo.root / ".levcustom", "tiny"))
    assert recorded[0].model_ref == served[0]["model_ref"] and recorded[0].arm == served[0]["arm"]

    # The agent system reports outcomes: the candidate does clearly better.
    path = online.outcomes_path(repo.root / ".levcustom", "tiny")
    for i in range(60):
        online.record(path, online.Outcome(f"c{i}", v2["model_ref"], "candidate", i % 10 != 0))
        online.record(path, online.Outcome(f"s{i}", v1["model_ref"], "stable", i % 2 == 0))
    plan = json.loads(repo.run("plan", "--json").stdout)
    deploy = next(c for c in plan["changes"] if c["stage"] == "deploy")
    assert deploy["action"] == "update" and deploy["reasons"] == ["online: 'split' -> 'promoted'"]
    out = repo.run("apply", "--auto-approve")
    assert "online A/B promoted: success candidate" in out.stdout
    assert {json.loads(repo.run("resolve", "helper", "--key", f"r{i}", "--json").stdout)["model_ref"]
            for i in range(3)} == {v2["model_ref"]}
    assert "No changes." in repo.run("plan").stdout


def test_judge_errors_block_the_gate_until_eval_retries_them(repo, monkeypatch):
    from fakes.anthropic_server import FakeAnthropic, FakeError

    def flaky(body: dict) -> str:
        if "question number 3 " in body["messages"][0]["content"]:
            raise FakeError(400, "the judge refused this case")
        return '{"score": 5, "reason": "fine"}'

    repo.edit("specs/tiny.yaml", "      - {name: golden, path: evals/golden.jsonl, metric: contains}",
              "      - {name: golden, path: evals/golden.jsonl, metric: contains}\n"
              "      - {name: graded, path: evals/golden.jsonl, metric: judge,"
              " judge: {model: claude-judge, rubric: Answers ok.}}")
    _gates(repo, "{metric: graded.judge, min: 0.5}")
    with FakeAnthropic(flaky) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        out = repo.run("apply", "--auto-approve", check=3)
        stdout, stderr = " ".join(out.stdout.split()), " ".join(out.stderr.split())  # unwrap console lines
        assert "graded.judge 1.00 (base 1.00) [1 unscored]" in stdout
        assert ("FAILED graded.judge: 1 of 6 cases could not be scored (line 4: judge API error: "
                "BadRequestError") in stderr
        assert len(fake.requests) == 12  # 6 cases x (tuned, base); case 4's two were refused
        fake.responder = lambda body: '{"score": 4}'
        assert "gates passed" in repo.run("eval", "tiny").stdout
        assert len(fake.requests) == 14  # the retry judged only the two failed answers: the rest were cached
    assert repo.lock()["models"]["tiny"]["eval"]["results"]["graded.judge"]["errors"] == 0


def test_usage_errors_are_one_message_not_a_traceback(repo):
    # Recent typer versions bundle their own copy of click, whose exceptions are not click's.
    out = repo.run("plan", "--no-such-flag", check=2)
    assert "No such option: --no-such-flag" in out.stderr and "Traceback" not in out.stderr
