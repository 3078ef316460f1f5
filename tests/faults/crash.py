"""Crash harness: apply against the fake OpenAI API (with injected 429/500s), SIGKILL it at random
moments, apply again, and check that every run converges to the same lockfile with no provider
job or upload duplicated and a lockfile that always parses. Used by the test suite (a few
trials) and by benchmarks/crash_harness.py (many)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from conftest import PROJECT, Repo, add_openai_spec, chat_rows, write_jsonl
from fakes.openai_server import FakeOpenAI
from levcustom.state.lockfile import read_lock
from levcustom.state.statelock import read_lock_info


@dataclass
class TrialResult:
    kills: int = 0
    killed_during_apply: int = 0  # kills that hit a running apply (not one that had already finished)
    lock_parsed: int = 0
    duplicate_jobs: int = 0
    duplicate_uploads: int = 0
    converged: bool = False
    reruns: int = 0  # final applies that failed (e.g. retries exhausted) and were run again
    problems: list[str] = field(default_factory=list)


def make_repo(root: Path) -> Path:
    """Three models: two share their training data (one upload, one job), one has its own."""
    shutil.copytree(PROJECT / "conf", root / "conf")
    write_jsonl(root / "data" / "train.jsonl", chat_rows(n=16))
    write_jsonl(root / "data" / "other.jsonl", chat_rows(answer="fine", n=12))
    write_jsonl(root / "evals" / "golden.jsonl",
                [{"messages": r["messages"][:2], "expected": "ok"} for r in chat_rows(n=4)])
    repo = Repo(root)
    add_openai_spec(repo, "alpha")
    add_openai_spec(repo, "beta")
    add_openai_spec(repo, "gamma", data="data/other.jsonl")
    return root


def normalized(lock_path: Path) -> dict:
    """What must converge: per model, each stage's fingerprint and results (not ids or times)."""
    lock = read_lock(lock_path)
    out = {}
    for name, m in lock.models.items():
        out[name] = {
            "stages": {s: getattr(m, s).fingerprint for s in ("dataset", "train", "eval", "deploy") if getattr(m, s)},
            "results": {k: r.model_dump() for k, r in (m.eval.results.items() if m.eval else [])},
            "agents": m.deploy.agents if m.deploy else None,
            "intents": sorted(m.intents),
        }
    return {"models": out, "uploads": len(lock.uploads)}


def _apply(root: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(root)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def reference(work: Path) -> tuple[dict, float]:
    """An uninterrupted apply, no faults: the state every trial must reach, and how long it takes."""
    root = make_repo(work / "reference")
    with FakeOpenAI() as fake:
        env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test"}
        start = time.monotonic()
        assert _apply(root, env).wait(timeout=300) == 0
        return normalized(root / "levcustom.lock"), time.monotonic() - start


def trial(work: Path, rng: random.Random, expected: dict, duration: float, fail_rate: float = 0.3,
          max_kills: int = 2) -> TrialResult:
    """Kill apply 1..max_kills times at random moments, then apply to the end and check."""
    root = make_repo(work)
    result = TrialResult()
    with FakeOpenAI(fail_rate=fail_rate, seed=rng.randrange(1 << 30)) as fake:
        env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test"}
        for _ in range(rng.randint(1, max_kills)):
            proc = _apply(root, env)
            time.sleep(rng.uniform(0.2, duration * 1.5))
            if proc.poll() is None:
                result.killed_during_apply += 1
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            result.kills += 1
            if (root / "levcustom.lock").exists():
                try:
                    read_lock(root / "levcustom.lock")
                    result.lock_parsed += 1
                except Exception as exc:  # the property under test: report, do not raise
                    result.problems.append(f"lockfile unreadable after kill: {exc}")
            else:
                result.lock_parsed += 1  # killed before the first write: no lockfile is a valid state
            held = read_lock_info(root / ".levcustom.lock.info")
            if held is not None:  # the killed apply could not release it: clear it as a user would
                subprocess.run([sys.executable, "-m", "levcustom.cli", "unlock", held.id, "-C", str(root)],
                               env=env, check=True, capture_output=True)
        for _ in range(3):  # a rate-limit storm can outlast the SDK's retries: apply is re-run, as CI would
            final = subprocess.run([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C",
                                    str(root)], env=env, capture_output=True, text=True, timeout=300)
            if final.returncode == 0:
                break
            result.reruns += 1
        else:
            result.problems.append(f"final apply exited {final.returncode}: {final.stderr.strip()[-300:]}")
        jobs = Counter(j["metadata"].get("levcustom_fingerprint") for j in fake.jobs.values())
        result.duplicate_jobs = sum(n - 1 for n in jobs.values())
        contents = Counter(fake.file_content(f) for f in fake.files)
        result.duplicate_uploads = sum(n - 1 for n in contents.values())
    got = normalized(root / "levcustom.lock")
    result.converged = got == expected
    if not result.converged:
        result.problems.append(f"did not converge: {json.dumps(got)[:400]}")
    return result
