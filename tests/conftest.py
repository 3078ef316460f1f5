"""Shared fixtures: a tiny offline model and throwaway levcustom repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

SYSTEM = "Answer with one word."
QUESTIONS = [f"question number {i} about {topic}" for i, topic in
             enumerate(["cats", "dogs", "rain", "sun", "maps", "code", "tea", "jazz"] * 4)]


def chat_rows(answer: str = "ok", n: int = 32) -> list[dict]:
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                          {"role": "assistant", "content": answer}]} for q in QUESTIONS[:n]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tinymodel import build_tiny_model

    corpus = [q for q in QUESTIONS] + [SYSTEM, "ok", "no", "user assistant system"]
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", corpus)


SPEC = """\
apiVersion: levcustom/v1
kind: Model
metadata:
  name: {name}
spec:
  base_model: {base}
  provider: local
  hardware: cpu
  overrides: ["hardware.per_device_batch_size=8"]
  dataset:
    sources:
      - {{type: jsonl, path: data/train.jsonl}}
    split: {{validation: 0.1, seed: 1}}
  training:
    epochs: {epochs}
    learning_rate: 0.01
    max_length: 64
    save_steps: 2
    lora: {{r: 8, alpha: 16, dropout: 0.0}}
  evals:
    suites:
      - {{name: golden, path: evals/golden.jsonl, metric: contains}}
    gates:
      - {{metric: golden.contains, min: {gate_min}}}
  deploy:
    agents: [helper]
    tasks: [answering]
"""


@dataclass
class Repo:
    """A throwaway levcustom repository with the project's conf/ and one tiny-model spec."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the CLI (e.g. provider endpoints)

    def run(self, *args: str, check: int | None = 0, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "levcustom.cli", *args, "-C", str(self.root)],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, "COLUMNS": "200", **self.env})
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def write_spec(self, name: str = "tiny", **kw) -> Path:
        values = {"name": name, "base": kw.pop("base"), "epochs": 4, "gate_min": 0.5, **kw}
        path = self.root / "specs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SPEC.format(**values))
        return path

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new))

    def lock(self) -> dict:
        return json.loads((self.root / "levcustom.lock").read_text())


@pytest.fixture
def repo(tmp_path, tiny_model) -> Repo:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    write_jsonl(tmp_path / "data" / "train.jsonl", chat_rows())
    write_jsonl(tmp_path / "evals" / "golden.jsonl",
                [{"messages": r["messages"][:2], "expected": "ok"} for r in chat_rows(n=6)])
    r = Repo(tmp_path)
    r.write_spec(base=str(tiny_model))
    return r


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# -- provider: openai against the loopback fake ------------------------------------------

SECRET = "sk-test-secret-value-1234567890"

OPENAI_SPEC = """\
apiVersion: levcustom/v1
kind: Model
metadata:
  name: {name}
spec:
  base_model: gpt-4o-mini-2024-07-18
  provider: openai
  method: {method}
  overrides: ["provider.poll_interval_s=0.01", "provider.max_poll_interval_s=0.05"]
  dataset:
    sources:
      - {{type: jsonl, path: {data}}}
    split: {{validation: 0.0}}
  training: {{epochs: 2}}
  evals:
    suites:
      - {{name: golden, path: evals/golden.jsonl, metric: contains}}
    gates:
      - {{metric: golden.contains, min: 0.9}}
  deploy:
    agents: [{name}-agent]
"""


def preference_rows(n: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"greet person {i}"}],
             "chosen": [{"role": "assistant", "content": f"Hello {i}!"}],
             "rejected": [{"role": "assistant", "content": "no"}]} for i in range(n)]


@pytest.fixture
def fake_openai():
    from fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def openai_repo(tmp_path, fake_openai) -> Repo:
    """A repository with one openai spec (ft-one), its CLI pointed at the fake API."""
    fake = fake_openai
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    write_jsonl(tmp_path / "data" / "train.jsonl", chat_rows(n=16))
    write_jsonl(tmp_path / "data" / "prefs.jsonl", preference_rows(12))
    write_jsonl(tmp_path / "evals" / "golden.jsonl",
                [{"messages": r["messages"][:2], "expected": "ok"} for r in chat_rows(n=4)])
    r = Repo(tmp_path, env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": SECRET})
    add_openai_spec(r, "ft-one")
    return r


def add_openai_spec(repo: Repo, name: str, method: str = "sft", data: str = "data/train.jsonl") -> Path:
    path = repo.root / "specs" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(OPENAI_SPEC.format(name=name, method=method, data=data))
    return path
