"""LLM-judge throughput: 1,000 cases judged through the real anthropic SDK against the loopback
fake Messages API, sequentially vs concurrently (with the rate limit on), then re-run on the
cache. Both runs are in this script, side by side, on the same requests and server.

    python benchmarks/judge_throughput.py [--cases 1000] [--latency 0.02] [--concurrency 16]

``--latency`` is what the fake server waits per request (a remote judge's response time).
Targets: concurrent >= 5x faster than sequential; the re-run answers 100% from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakes.anthropic_server import FakeAnthropic  # noqa: E402
from levcustom.evals.judge import JudgeRequest, judge_all  # noqa: E402
from levcustom.spec.schema import JudgeSpec  # noqa: E402
from levcustom.state.jsoncache import JsonCache  # noqa: E402


def grade(body: dict) -> str:
    answer = body["messages"][-1]["content"].split("<answer>\n")[1]
    return json.dumps({"score": 1 + len(answer) % 5, "reason": "graded by length"})


def run(spec: JudgeSpec, requests: list[JudgeRequest], cache: JsonCache) -> tuple[float, list]:
    start = time.perf_counter()
    verdicts = judge_all(spec, requests, cache)
    return time.perf_counter() - start, verdicts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rpm", type=int, default=30_000, help="the judge's rate limit (requests per minute)")
    args = ap.parse_args()
    requests = [JudgeRequest([{"role": "user", "content": f"Question {i}: route this request."}], "",
                             f'{{"tool": "t{i % 7}"}} answer {i}') for i in range(args.cases)]
    base = {"model": "claude-judge", "rubric": "Routes to the right tool.", "requests_per_minute": args.rpm}
    # The server refuses (429) anything over the rate limit plus 20%: the limiter must keep under it.
    with FakeAnthropic(grade, latency=args.latency, max_requests_per_s=int(args.rpm / 60 * 1.2)) as fake:
        os.environ.update(ANTHROPIC_API_KEY="test", ANTHROPIC_BASE_URL=fake.base_url)
        run(JudgeSpec(**base), requests[:5], JsonCache(None))  # warm-up: SDK import, connections
        with tempfile.TemporaryDirectory() as tmp:
            seq_s, seq = run(JudgeSpec(**base, concurrency=1), requests, JsonCache(None))
            sent = len(fake.requests)
            con_s, con = run(JudgeSpec(**base, concurrency=args.concurrency), requests, JsonCache(Path(tmp) / "j.json"))
            calls = len(fake.requests) - sent
            again_s, again = run(JudgeSpec(**base, concurrency=args.concurrency), requests,
                                 JsonCache(Path(tmp) / "j.json"))
            recalls = len(fake.requests) - sent - calls
    assert [v.score for v in seq] == [v.score for v in con] == [v.score for v in again], "verdicts differ"
    assert all(v.error is None for v in seq + con), "a judge call failed"
    hits = sum(v.cached for v in again) / len(again)
    print(f"{args.cases} cases, server latency {args.latency * 1000:.0f} ms, rate limit {args.rpm}/min")
    print(f"  sequential (concurrency 1):   {seq_s:7.2f} s  ({args.cases / seq_s:6.1f} judgments/s)")
    print(f"  concurrent (concurrency {args.concurrency}):  {con_s:7.2f} s  ({args.cases / con_s:6.1f} judgments/s), "
          f"{calls} calls, max {fake.max_in_flight} in flight, {fake.rejected} refused by the rate limit")
    print(f"  re-run on the cache:          {again_s:7.2f} s  cache hits {hits:.0%}, {recalls} judge calls")
    print(f"  speed-up concurrent / sequential: {seq_s / con_s:.1f}x (target >= 5x)")
    ok = seq_s / con_s >= 5 and hits == 1.0 and recalls == 0 and fake.rejected == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
