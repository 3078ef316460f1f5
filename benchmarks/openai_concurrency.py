"""Applying N openai specs vs one, against the loopback fake OpenAI API, same poll interval.

Jobs are submitted and followed concurrently (bounded), so N models should take about as
long as one. Prints both wall times and the ratio (target: < 2x for N = 50).

    python benchmarks/openai_concurrency.py [--models 50] [--poll 1.0]

With a very short poll interval the fixed costs (CLI start, plan, eval requests to the
single-process fake) dominate and the ratio grows; real intervals are seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.openai_server import FakeOpenAI  # noqa: E402

SPEC = """\
apiVersion: levcustom/v1
kind: Model
metadata: {{name: m{i:03d}}}
spec:
  base_model: gpt-4o-mini-2024-07-18
  provider: openai
  overrides: ["provider.poll_interval_s={poll}", "provider.max_poll_interval_s={poll}"]
  dataset:
    sources: [{{type: jsonl, path: data/m{i:03d}.jsonl}}]
    split: {{validation: 0.0}}
  evals:
    suites: [{{name: golden, path: evals/golden.jsonl, metric: contains}}]
  deploy: {{agents: [agent-{i:03d}]}}
"""


def make_repo(root: Path, n: int, poll: float) -> None:
    """N specs with their own data (unique per run: the fake keeps jobs across runs)."""
    nonce = uuid.uuid4().hex[:8]
    shutil.copytree(ROOT / "conf", root / "conf")
    (root / "specs").mkdir()
    (root / "data").mkdir()
    (root / "evals").mkdir()
    (root / "evals" / "golden.jsonl").write_text(
        "".join(json.dumps({"prompt": f"say ok {k}", "expected": "ok"}) + "\n" for k in range(4)))
    for i in range(n):
        rows = [{"messages": [{"role": "user", "content": f"model {i} question {j} ({nonce})"},
                              {"role": "assistant", "content": f"answer {j}"}]} for j in range(12)]
        (root / "data" / f"m{i:03d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / "specs" / f"m{i:03d}.yaml").write_text(SPEC.format(i=i, poll=poll))


def timed_apply(n: int, poll: float, fake: FakeOpenAI) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root, n, poll)
        env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "bench"}
        subprocess.run([sys.executable, "-m", "levcustom.cli", "plan", "-C", str(root)], env=env, check=True,
                       capture_output=True)  # warm the config cache outside the timing
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C", str(root)],
                              env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)
        lock = json.loads((root / "levcustom.lock").read_text())
        assert sum(1 for m in lock["models"].values() if "deploy" in m) == n, "not every model was deployed"
        return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    one, many = [], []
    with FakeOpenAI() as fake:
        for _ in range(args.repeats):  # interleaved, so machine noise hits both
            one.append(timed_apply(1, args.poll, fake))
            many.append(timed_apply(args.models, args.poll, fake))
        jobs = len(fake.jobs)
    best_one, best_many = min(one), min(many)
    result = {"models": args.models, "poll_interval_s": args.poll, "one_model_s": one, "n_models_s": many,
              "ratio": best_many / best_one, "jobs_created": jobs}
    out = ROOT / "benchmarks" / "_work"
    out.mkdir(parents=True, exist_ok=True)
    (out / "openai_concurrency.json").write_text(json.dumps(result, indent=1))
    print(f"1 model: {best_one:.2f} s | {args.models} models: {best_many:.2f} s | ratio {best_many / best_one:.2f} "
          f"(target < 2) | jobs created {jobs} (expected {args.repeats * (args.models + 1)})")


if __name__ == "__main__":
    main()
