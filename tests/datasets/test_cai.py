"""method: cai, end to end through the CLI: the real anthropic SDK against a loopback fake Messages API
writes the data, then the real openai SDK against its fake trains on it (CAI data for any provider)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import PROJECT, Repo, write_jsonl
from fakes.anthropic_server import FakeAnthropic, FakeError
from fakes.openai_server import FakeOpenAI

SPEC = """\
apiVersion: levcustom/v1
kind: Model
metadata:
  name: harmless
spec:
  base_model: gpt-4o-mini-2024-07-18
  provider: openai
  method: cai
  cai:
    constitution: cai/constitution.yaml
    train: {train}
    rounds: {rounds}
  overrides: ["provider.poll_interval_s=0.01", "provider.max_poll_interval_s=0.05", "cai.concurrency=3"]
  dataset:
    sources:
      - {{type: jsonl, path: cai/prompts.jsonl}}
    split: {{validation: 0.0}}
"""

CONSTITUTION = """\
name: test-constitution
principles:
  - name: harm
    critique: Identify ways in which the response is harmful.
    revision: Rewrite the response to remove harmful content.
    preference: Which response is less harmful?
  - name: honesty
    critique: Identify anything false in the response.
    revision: Rewrite the response to be accurate.
"""


class CaiResponder:
    """Plays Claude: samples differ per draw (as at temperature 1), critiques, revisions and labels
    follow the requests; ``broken`` prompts answer 400 and ``malformed`` ones get a non-JSON label."""

    def __init__(self):
        self.draws = itertools.count()
        self.lock = threading.Lock()
        self.broken: set[str] = set()
        self.malformed: set[str] = set()

    def __call__(self, body: dict) -> str:
        text = body["messages"][-1]["content"]
        if any(b in text for b in self.broken):
            raise FakeError(400, "prompt is too long")
        if "system" not in body:
            with self.lock:
                return f"Sure, here is exactly how (draw {next(self.draws)})."
        if "Revision request" in text:
            return "I can't help with that, but here is a safe alternative."
        if "Critique request" in text:
            return "The response gives dangerous instructions."
        if any(m in text for m in self.malformed):
            return "I prefer the second one."
        return '{"choice": "B", "reason": "B refuses the harmful part."}'


@pytest.fixture
def claude():
    responder = CaiResponder()
    with FakeAnthropic(responder) as server:
        server.cai = responder
        yield server


@pytest.fixture
def openai_fake():
    with FakeOpenAI() as server:
        yield server


def make_repo(tmp_path, claude, openai_fake, train: str = "dpo", rounds: int = 1, n: int = 12) -> Repo:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    (tmp_path / "cai").mkdir()
    (tmp_path / "cai" / "constitution.yaml").write_text(CONSTITUTION)
    write_jsonl(tmp_path / "cai" / "prompts.jsonl", [{"prompt": f"How do I do harmful thing number {i}?"}
                                                      for i in range(n)])
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "harmless.yaml").write_text(SPEC.format(train=train, rounds=rounds))
    return Repo(tmp_path, env={"ANTHROPIC_BASE_URL": claude.base_url, "ANTHROPIC_API_KEY": "test",
                               "OPENAI_BASE_URL": openai_fake.base_url, "OPENAI_API_KEY": "sk-test"})


def manifest(repo: Repo) -> dict:
    return json.loads((repo.root / repo.lock()["models"]["harmless"]["dataset"]["artifact"] / "manifest.json")
                      .read_text())


def built_rows(repo: Repo) -> list[dict]:
    path = repo.root / repo.lock()["models"]["harmless"]["dataset"]["artifact"] / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_plan_is_offline_and_shows_the_generation_cost(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    repo.env.pop("ANTHROPIC_API_KEY")
    plan = json.loads(repo.run("plan", "--json").stdout)
    generation = next(e for e in plan["estimates"] if e["note"].startswith("constitutional-AI data"))
    assert "12 prompts x 3 Messages API calls = 36 calls on claude-haiku-4-5" in generation["note"]
    assert generation["usd"] > 0
    assert claude.requests == [] and openai_fake.requests == []


def test_preference_pairs_train_dpo_on_another_provider(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    out = repo.run("apply", "--auto-approve")
    assert "12 of 12 prompts generated (36 API calls, 0 from the cache)" in out.stdout, out.stdout + out.stderr
    rows = built_rows(repo)
    assert len(rows) == 12
    assert all(r["chosen"][0]["content"] != r["rejected"][0]["content"] for r in rows)
    # the labeler always answers "B": which sample won depends on the randomized order shown
    prov = manifest(repo)["provenance"]
    assert {p["shown_first"] for p in prov} == {"a", "b"} and all(p["label"] == "B" for p in prov)
    assert {p["principle"] for p in prov} <= {"harm", "honesty"}
    [job] = openai_fake.jobs.values()
    assert job["method"]["type"] == "dpo"
    # the constitution is the shared, cacheable prefix of every critic call
    labels = [b for b in claude.requests if "system" in b]
    assert len(labels) == 12 and all(b["system"][0]["cache_control"] == {"type": "ephemeral"} for b in labels)
    assert "test-constitution" in labels[0]["system"][0]["text"]
    assert claude.max_in_flight <= 3
    before = len(claude.requests)
    assert "No changes." in repo.run("apply", "--auto-approve").stdout
    assert len(claude.requests) == before


@pytest.mark.slow
def test_preference_pairs_train_local_dpo(tmp_path, claude, openai_fake, tiny_model):
    repo = make_repo(tmp_path, claude, openai_fake)
    repo.edit("specs/harmless.yaml", "base_model: gpt-4o-mini-2024-07-18\n  provider: openai",
              f"base_model: {tiny_model}\n  provider: local\n  hardware: cpu")
    repo.edit("specs/harmless.yaml", '"provider.poll_interval_s=0.01", "provider.max_poll_interval_s=0.05", ', "")
    repo.edit("specs/harmless.yaml", "    split: {validation: 0.0}\n",
              "    split: {validation: 0.0}\n  training: {epochs: 1, max_length: 64}\n")
    out = repo.run("apply", "--auto-approve")
    assert "12 of 12 prompts generated" in out.stdout, out.stdout + out.stderr
    [work] = repo.root.glob(".levcustom/runs/train/*")
    result = json.loads((work / "result.json").read_text())
    assert result["trainer"] == "DPOTrainer" and result["metrics"]["train_loss"] > 0
    assert openai_fake.requests == []  # the pairs trained here, on the local model


@pytest.mark.slow
def test_local_model_stands_in_for_claude_offline(tmp_path, claude, openai_fake, tiny_model):
    repo = make_repo(tmp_path, claude, openai_fake, train="sft", n=6)
    repo.edit("specs/harmless.yaml", "base_model: gpt-4o-mini-2024-07-18\n  provider: openai",
              f"base_model: {tiny_model}\n  provider: local\n  hardware: cpu")
    repo.edit("specs/harmless.yaml", '"provider.poll_interval_s=0.01", "provider.max_poll_interval_s=0.05", ',
              f'"cai.model=local:{tiny_model}", "cai.max_tokens=16", ')
    repo.edit("specs/harmless.yaml", "    split: {validation: 0.0}\n",
              "    split: {validation: 0.0}\n  training: {epochs: 1, max_length: 64}\n")
    repo.env.pop("ANTHROPIC_API_KEY")  # offline: no key, no API
    plan = json.loads(repo.run("plan", "--json").stdout)
    note = next(e for e in plan["estimates"] if e["note"].startswith("constitutional-AI data"))
    assert "6 prompts x 3 generations on the local model (no API cost)" in note["note"] and note["usd"] == 0
    out = repo.run("apply", "--auto-approve")
    assert "6 of 6 prompts generated (18 API calls, 0 from the cache)" in out.stdout, out.stdout + out.stderr
    assert claude.requests == [] and openai_fake.requests == []
    rows, prov = built_rows(repo), manifest(repo)["provenance"]
    # The tiny model's own sampled text, revised once: real generations, kept with their provenance.
    assert len(rows) == 6 and all(r["messages"][-1]["content"] == p["rounds"][-1]["revision"]
                                  for r, p in zip(rows, prov, strict=True))
    assert len({p["rounds"][0]["response"] for p in prov}) > 1  # sampled, not one canned answer
    assert manifest(repo)["usage"]["output_tokens"] > 0
    # A rebuild from scratch draws nothing again: every reply comes from the cache.
    (repo.root / "levcustom.lock").unlink()
    out = repo.run("apply", "--auto-approve")
    assert "(0 API calls, 18 from the cache)" in out.stdout, out.stdout


def test_supervised_revisions_keep_their_provenance(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake, train="sft", rounds=2)
    repo.run("apply", "--auto-approve")
    rows = built_rows(repo)
    assert len(rows) == 12
    assert all(r["messages"][-1] == {"role": "assistant",
                                     "content": "I can't help with that, but here is a safe alternative."}
               for r in rows)
    prov = manifest(repo)["provenance"][0]
    assert prov["phase"] == "supervised" and len(prov["rounds"]) == 3  # the sample, then two rounds
    assert prov["rounds"][0]["response"].startswith("Sure, here is exactly how")
    assert prov["rounds"][1]["critique"] == "The response gives dangerous instructions."
    assert {r["principle"] for r in prov["rounds"][1:]} <= {"harm", "honesty"}
    assert len(claude.requests) == 12 * 5  # a sample, then critique + revision twice
    [job] = openai_fake.jobs.values()
    assert job["method"]["type"] == "supervised"


def test_overloaded_and_rate_limited_calls_are_retried(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    claude.fail_next(2, 529)
    claude.fail_next(1, 429)
    out = repo.run("apply", "--auto-approve")
    assert "12 of 12 prompts generated (36 API calls" in out.stdout
    assert not claude._fail  # all three faults were served, and the SDK retried past them
    assert len(claude.requests) == 36 and len(built_rows(repo)) == 12


def test_malformed_label_is_recorded_visibly(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    claude.cai.malformed = {"thing number 4?"}
    out = repo.run("apply", "--auto-approve")
    text = " ".join(out.stdout.split())
    assert "11 of 12 prompts generated" in text and "1 failed, e.g. cai/prompts.jsonl:5:" in text
    assert "label reply is not the JSON asked for: 'I prefer the second one.'" in text
    [failure] = manifest(repo)["failures"]
    assert failure["line"] == 5 and "not the JSON asked for" in failure["error"]
    assert len(built_rows(repo)) == 11


def test_crash_half_way_reuses_finished_calls(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake, train="sft")
    claude.cai.broken = {"thing number 3?", "thing number 7?"}
    err = repo.run("apply", "--auto-approve", check=1).stderr
    assert "cai: 2 of 12 prompts failed" in " ".join(err.split()) and "HTTP 400" in err
    assert not (repo.root / "levcustom.lock").exists()  # nothing was recorded as built
    first_run = len(claude.requests)
    assert first_run == 10 * 3 + 2  # each broken prompt failed at its first call
    claude.cai.broken = set()
    out = repo.run("apply", "--auto-approve")
    assert len(claude.requests) - first_run == 2 * 3  # only the two missing prompts were generated
    assert "12 of 12 prompts generated (6 API calls, 30 from the cache)" in out.stdout


def test_killed_generation_pays_only_for_calls_it_had_not_finished(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    claude.latency = 0.02  # real calls take a while: the kill lands mid-generation
    proc = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(repo.root)],
                            env={**os.environ, **repo.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while len(claude.requests) < 12:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (repo.root / ".levcustom.lock.info").unlink()
    log = repo.root / ".levcustom" / "cache" / "cai" / "replies.jsonl"
    finished = len([line for line in log.read_text().splitlines() if line.endswith("}")])
    assert 0 < finished < 36
    before = len(claude.requests)
    out = repo.run("apply", "--auto-approve")
    assert len(claude.requests) - before == 36 - finished
    assert f"({36 - finished} API calls, {finished} from the cache)" in out.stdout


def test_bad_constitution_and_prompts_are_located_at_plan_time(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    repo.edit("cai/constitution.yaml", "    critique: Identify anything false", "    critque: Identify anything false")
    with open(repo.root / "cai" / "prompts.jsonl", "a") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}))
    err = repo.run("plan", check=1).stderr
    assert "cai/constitution.yaml:8:5: principles[1].critque: Extra inputs are not permitted" in err
    assert "cai/constitution.yaml:7:5: principles[1].critique: required key is missing" in err
    assert "cai/prompts.jsonl:13:1: a cai prompt must end with the user's turn" in err
    assert "Traceback" not in err and claude.requests == []


def test_missing_api_key_is_one_clear_line(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    repo.env["ANTHROPIC_API_KEY"] = ""
    err = repo.run("apply", "--auto-approve", check=1).stderr
    assert "method cai: Claude generates the data: set ANTHROPIC_API_KEY" in err and "Traceback" not in err


def test_spec_needs_the_cai_block_with_method_cai(tmp_path, claude, openai_fake):
    repo = make_repo(tmp_path, claude, openai_fake)
    repo.edit("specs/harmless.yaml", "  method: cai\n", "  method: sft\n")
    err = repo.run("validate", check=1).stderr
    assert "specs/harmless.yaml:" in err and "'cai' is required by method cai and only allowed with it" in err
