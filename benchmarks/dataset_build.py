#!/usr/bin/env python3
"""Dataset build at scale: a 1,000,000-row interaction source, exact + near dedupe, scrubbing, split.

Generates (once; ``--reuse`` keeps it) under ``benchmarks/_work/dataset_build/`` (git-ignored) a
levcustom repository whose one spec reads ``data/logs/`` (``--files`` JSONL files, ``--rows`` in
all) with ``curation: {dedupe: near, scrub_pii: true}`` and ``split: {validation: 0.05, eval: 0.05}``.
Rows are agent conversations (system, user, assistant; every 5th with a tool call whose output
holds a fake API key; every 7th with an email); 3% are exact copies of an earlier row and 3% an
earlier row with one word changed.

Then, timed in this process (``time.perf_counter``), each figure next to its baseline:

1. **Full build** (``build_dataset`` with the per-file cache emptied): total seconds, rows/s.
2. **Steps**: the same work split into its steps (parse + validate, scrub, serialize + keys,
   MinHash signatures, exact dedupe, near dedupe, split, write), each over every row, rows/s
   each. The steps run sequentially here, so their sum is close to, not equal to, (1).
3. **Append 1,000 rows** to one file, then build: seconds, vs a full rebuild of the same data
   (cache emptied), side by side; the build reports how many rows it read vs reused.
4. **No-change plan** (subprocess ``levcustom plan``, after ``levcustom dataset build``): warm
   wall time (median of ``--repeats``, process start included) answered from the plan memo,
   and planned without it (``LEVCUSTOM_PLAN_MEMO=0``), and ``make_plan`` in-process, vs the
   same plan with the stat cache deleted (every source file re-hashed).

Figures go to ``benchmarks/_work/dataset_build.json``. Usage::

    .venv/bin/python benchmarks/dataset_build.py                 # 1,000,000 rows in 10 files
    .venv/bin/python benchmarks/dataset_build.py --rows 20000    # quick check
    .venv/bin/python benchmarks/dataset_build.py --reuse --plan-only   # (4) alone, on the last data
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
WORK_ROOT = REPO / "benchmarks" / "_work"
WORK = WORK_ROOT / "dataset_build"
RESULTS = WORK_ROOT / "dataset_build.json"
APPENDED = 1_000

SPEC = """apiVersion: levcustom/v1
kind: Model
metadata:
  name: big
spec:
  base_model: HuggingFaceTB/SmolLM2-135M-Instruct
  dataset:
    sources:
      - {type: interactions, path: data/logs/}
    curation: {dedupe: near, scrub_pii: true}
    split: {validation: 0.05, eval: 0.05, seed: 1}
"""


def _sentences(n: int, rng: random.Random) -> list[str]:
    words = [f"{rng.choice('bcdfghklmnprstvz')}{rng.choice('aeiou')}{rng.choice('bcdfgklmnprst')}{i}"
             for i in range(4000)]
    return [" ".join(rng.choice(words) for _ in range(12)) for _ in range(n)]


def generate(rows: int, files: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    sentences = _sentences(4096, rng)
    system = "You are the support agent of the billing team. Answer briefly, cite the ticket, never guess."
    out: list[bytes] = []
    for i in range(rows):
        r = rng.random()
        if i > 100 and r < 0.03:  # exact copy of an earlier row
            out.append(out[rng.randrange(i)])
            continue
        user = f"Ticket {i}: {sentences[i % 4096]} {sentences[(i // 4096 + 7 * i) % 4096]}"
        answer = f"{sentences[(i * 31 + 5) % 4096]} {sentences[(i * 17 + 3) % 4096]} Resolved ticket {i}."
        if i % 7 == 0:
            user += f" Reach me at user{i}@example.com."
        if 0.03 <= r < 0.06 and out:  # near-duplicate of an earlier row: one word changed
            prev = orjson.loads(out[rng.randrange(len(out))])
            words = prev["messages"][1]["content"].split()
            words[len(words) // 2] = "changed"
            prev["messages"][1]["content"] = " ".join(words)
            prev["id"] = f"conv-{i}"
            out.append(orjson.dumps(prev))
            continue
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if i % 5 == 0:
            msgs += [{"role": "assistant", "content": None, "tool_calls": [
                        {"id": f"c{i}", "type": "function",
                         "function": {"name": "lookup_ticket", "arguments": f'{{"id": {i}}}'}}]},
                     {"role": "tool", "tool_call_id": f"c{i}",
                      "content": f"status=open owner=ops token=sk-test{i:07d}abcdefghijklmnopq"}]
        msgs.append({"role": "assistant", "content": answer})
        out.append(orjson.dumps({"id": f"conv-{i}", "agent": "support", "task": "billing",
                                 "rating": 1 + i % 5, "messages": msgs}))
    logs = WORK / "data" / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    per = -(-rows // files)
    for f in range(files):
        chunk = out[f * per:(f + 1) * per]
        (logs / f"part-{f:03d}.jsonl").write_bytes(b"\n".join(chunk) + b"\n")
    shutil.rmtree(WORK / "conf", ignore_errors=True)
    shutil.copytree(REPO / "conf", WORK / "conf")
    (WORK / "specs").mkdir(exist_ok=True)
    (WORK / "specs" / "big.yaml").write_text(SPEC)


def _clear(*names: str) -> None:
    for name in names:
        path = WORK / ".levcustom" / "cache" / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _spec():
    from levcustom.spec.loader import load_specs

    return load_specs([WORK / "specs"], WORK)[0].model.spec.dataset


def full_build() -> dict:
    from levcustom.datasets.build import build_dataset
    from levcustom.workspace import Workspace

    _clear("datasets", "stat.json")
    load = os.getloadavg()[0]
    cpu = _cpu()
    t = time.perf_counter()
    built = build_dataset(Workspace(WORK), _spec(), 1)
    seconds = time.perf_counter() - t
    cpu = _cpu() - cpu
    manifest = json.loads((built.artifact / "manifest.json").read_text())
    return {"seconds": seconds, "rows": manifest["steps"]["read"], "rows_per_s": manifest["steps"]["read"] / seconds,
            "cpu_seconds": cpu, "loadavg_1min_before": load, "steps": manifest["steps"],
            "scrubbed": manifest["scrubbed"], "split": manifest["rows"]}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the build's worker processes): less
    sensitive than wall time to other work on a shared machine."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def steps() -> dict:
    """The build's work step by step over every row, with the library's own functions."""
    import numpy as np

    from levcustom.datasets.build import _first_occurrences
    from levcustom.datasets.curate import RowCurator
    from levcustom.datasets.dedupe import exact_key, near_duplicates, near_text, signatures
    from levcustom.datasets.interactions import InteractionReader
    from levcustom.datasets.jsonl import Provenance
    from levcustom.datasets.records import ReadState, read_jsonl
    from levcustom.datasets.split import assign
    from levcustom.spec.schema import Curation

    spec = _spec()
    timings: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def timed(name, fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        timings[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        return out

    reader = InteractionReader(spec.sources[0])
    files = sorted((WORK / "data" / "logs").glob("*.jsonl"))

    def parse():
        out = []
        for path in files:
            rel = str(path.relative_to(WORK))
            for line, row in read_jsonl(path, ReadState()):
                out.append(reader(row, Provenance("interactions", rel, line)))
        return out

    examples = timed("parse + validate", parse)
    curator = RowCurator(Curation(scrub_pii=True))
    scrubbed = timed("scrub", lambda: [curator(e) for e in examples])
    rows = timed("serialize + exact keys", lambda: [(orjson.dumps(e.to_row()), exact_key(e)) for e in scrubbed])
    sig = timed("MinHash signatures", lambda: signatures([near_text(e) for e in scrubbed]))
    keep = timed("exact dedupe", lambda: _first_occurrences([k for _, k in rows]))
    kept = np.flatnonzero(keep)
    timed("near dedupe (LSH)", lambda: near_duplicates(sig[kept], spec.curation.near_threshold))
    sides = timed("split", lambda: [assign(rows[i][1], 0.05, 0.05, 1) for i in kept])

    def write():
        with open(WORK / "steps-out.jsonl", "wb") as f:
            for i, _ in zip(kept, sides, strict=True):
                f.write(rows[i][0] + b"\n")

    timed("write", write)
    (WORK / "steps-out.jsonl").unlink()
    n = len(examples)
    return {name: {"seconds": s, "rows_per_s": n / s, "cpu_seconds": cpu[name]} for name, s in timings.items()}


def incremental() -> dict:
    from levcustom.datasets.build import build_dataset
    from levcustom.workspace import Workspace

    ws = Workspace(WORK)
    build_dataset(ws, _spec(), 1)  # warm: the cache holds every file
    target = sorted((WORK / "data" / "logs").glob("*.jsonl"))[-1]
    size = target.stat().st_size
    with open(target, "ab") as f:
        f.write(b"".join(orjson.dumps({"id": f"new-{i}", "agent": "support", "task": "billing", "rating": 5,
                                       "messages": [{"role": "user", "content": f"appended question {i}"},
                                                    {"role": "assistant", "content": f"appended answer {i}"}]})
                         + b"\n" for i in range(APPENDED)))
    try:
        load = os.getloadavg()[0]
        t = time.perf_counter()
        inc = build_dataset(ws, _spec(), 1)
        inc_s = time.perf_counter() - t
        _clear("datasets", "stat.json")
        t = time.perf_counter()
        full = build_dataset(ws, _spec(), 1)
        full_s = time.perf_counter() - t
        assert inc.artifact == full.artifact, "incremental and full builds differ"
    finally:
        with open(target, "r+b") as f:
            f.truncate(size)
    return {"appended_rows": APPENDED, "incremental_s": inc_s, "full_rebuild_s": full_s,
            "ratio_incremental_vs_full": inc_s / full_s, "loadavg_1min_before": load,
            "incremental_rows_read": inc.work.read, "incremental_rows_reused": inc.work.reused}


def _lev(*args: str, memo: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", "LEVCUSTOM_PLAN_MEMO": "1" if memo else "0"}
    return subprocess.run([str(Path(sys.executable).parent / "levcustom"), *args, "-C", str(WORK)],
                          capture_output=True, text=True, env=env, check=False)


def no_change_plan(repeats: int) -> dict:
    from levcustom.plan.memo import RACY_NS

    for path in (WORK / "levcustom.lock", WORK / ".levcustom.lock.info"):
        path.unlink(missing_ok=True)
    built = _lev("dataset", "build")
    assert built.returncode == 0, built.stderr
    _lev("plan")  # untimed: fills the preflight cache for the planned training
    time.sleep(RACY_NS / 1e9)  # the memo records no input changed less than this before the plan
    _lev("plan", "--json")  # untimed: records the plan memo

    def plan_once(memo: bool) -> float:
        t = time.perf_counter()
        out = _lev("plan", "--json", memo=memo)
        elapsed = time.perf_counter() - t
        plan = json.loads(out.stdout)
        assert {c["stage"]: c["action"] for c in plan["changes"]}["dataset"] == "no-op", out.stdout
        return elapsed

    warm = [plan_once(True) for _ in range(repeats)]
    no_memo = [plan_once(False) for _ in range(repeats)]
    cold = []
    for _ in range(repeats):
        _clear("stat.json")
        cold.append(plan_once(False))
    from levcustom.plan.desired import make_plan
    from levcustom.state.lockfile import read_lock
    from levcustom.workspace import Workspace

    ws = Workspace(WORK)
    make_plan(ws, read_lock(ws.lockfile), [ws.specs_dir])
    inproc = []
    for _ in range(repeats):
        t = time.perf_counter()
        make_plan(ws, read_lock(ws.lockfile), [ws.specs_dir])
        inproc.append(time.perf_counter() - t)
    help_s = statistics.median(_time(lambda: _lev("--help")) for _ in range(repeats))
    return {"warm_plan_s": statistics.median(warm), "warm_plan_no_memo_s": statistics.median(no_memo),
            "stat_cache_deleted_plan_s": statistics.median(cold),
            "ratio_warm_vs_rehash": statistics.median(warm) / statistics.median(cold),
            "ratio_no_memo_vs_rehash": statistics.median(no_memo) / statistics.median(cold),
            "make_plan_in_process_s": statistics.median(inproc), "levcustom_help_s": help_s}


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reuse", action="store_true", help="keep the generated data of the last run")
    ap.add_argument("--skip-steps", action="store_true", help="skip the step-by-step breakdown (memory)")
    ap.add_argument("--plan-only", action="store_true", help="only the no-change plan (4); needs --reuse")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    stamp = WORK / ".bench-params.json"
    params = {"rows": args.rows, "files": args.files}
    if not (args.reuse and stamp.is_file() and json.loads(stamp.read_text()) == params):
        t = time.perf_counter()
        WORK.mkdir(parents=True, exist_ok=True)
        generate(args.rows, args.files)
        stamp.write_text(json.dumps(params))
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    load = os.getloadavg()
    results: dict = {"params": params, "cpus": os.cpu_count(), "loadavg_before": load}
    if args.plan_only:
        results["plan"] = no_change_plan(args.repeats)
        print(json.dumps(results["plan"], indent=1))
        return
    results["full_build"] = full_build()
    fb = results["full_build"]
    print(f"full build: {fb['seconds']:.1f} s, {fb['rows_per_s']:,.0f} rows/s, {fb['cpu_seconds']:.1f} CPU s "
          f"(load {fb['loadavg_1min_before']:.1f}); steps {fb['steps']}", flush=True)
    if not args.skip_steps:
        results["steps"] = steps()
        for name, s in results["steps"].items():
            print(f"  {name:<24} {s['seconds']:7.2f} s  {s['rows_per_s']:>12,.0f} rows/s  "
                  f"({s['cpu_seconds']:.2f} CPU s)", flush=True)
    results["incremental"] = inc = incremental()
    print(f"append {APPENDED} rows: {inc['incremental_s']:.2f} s vs full rebuild {inc['full_rebuild_s']:.2f} s "
          f"(ratio {inc['ratio_incremental_vs_full']:.3f}; read {inc['incremental_rows_read']}, reused "
          f"{inc['incremental_rows_reused']})", flush=True)
    results["plan"] = p = no_change_plan(args.repeats)
    print(f"no-change plan: {p['warm_plan_s']:.3f} s warm from the plan memo, {p['warm_plan_no_memo_s']:.3f} s "
          f"planning without it (levcustom --help alone {p['levcustom_help_s']:.3f} s; make_plan in-process "
          f"{p['make_plan_in_process_s']:.3f} s) vs {p['stat_cache_deleted_plan_s']:.3f} s re-hashing (ratios "
          f"{p['ratio_warm_vs_rehash']:.3f}, {p['ratio_no_memo_vs_rehash']:.3f})", flush=True)
    results["loadavg_after"] = os.getloadavg()
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
