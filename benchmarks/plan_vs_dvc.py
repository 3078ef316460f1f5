#!/usr/bin/env python3
"""Warm ``levcustom plan`` vs ``dvc status`` over equivalent projects, timed side by side.

Builds, under ``benchmarks/_work/plan_vs_dvc/`` (git-ignored):

* the folder itself: a levcustom repository: ``conf/`` (copied from this repo), N specs
  ``specs/mXXX.yaml`` (one Model each), each with its own chat-JSONL source
  ``data/mXXX.jsonl`` of R rows (~139 bytes a row: 200 x 10,000 rows ~ 277 MB).
* ``dvc/``: a DVC project (``dvc init --no-scm``) with the same N data files
  (hard links, or copies where linking fails) and a ``dvc.yaml`` of N stages, each
  depending on one data file and writing a small ``out/mXXX.txt``; committed with
  ``dvc commit -f`` so that ``dvc status`` reports everything up to date.

Then it times, as subprocesses (after one untimed warm-up run of each tool):

* process start cost: ``levcustom --help`` and ``dvc --version``;
* a cold run of each (no caches: ``.levcustom/cache/`` (file hashes and resolved Hydra
  configs) and DVC's state db in ``core.site_cache_dir`` are deleted first; the data files
  are in the OS page cache either way, since they were just written or read);
* K warm repetitions, interleaved (levcustom, dvc, levcustom, dvc, ...) so that machine
  noise hits both; median and min of each and the levcustom/dvc ratios;
* an incremental case: 100 rows appended to one source file, then one ``levcustom plan``
  (re-hashes that file only) and one ``dvc status`` (same); the file is then restored
  (truncated back, mtime reset) and both caches re-settled.

levcustom's plan memo (a no-change plan replays the last output) is off here
(``LEVCUSTOM_PLAN_MEMO=0``): DVC has no such thing, and this compares the planners' work.

Every levcustom plan's output must contain ``Plan: 4N to add`` (4 stages a model), and
every warm ``dvc status`` must report up to date: the benchmark proves both tools looked
at all N models/stages. Results are printed as a table and written to
``benchmarks/_work/plan_vs_dvc.json``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/plan_vs_dvc.py                       # 200 specs x 10,000 rows, 5 repeats
    .venv/bin/python benchmarks/plan_vs_dvc.py --specs 20 --rows 1000 --repeats 2   # quick check
    .venv/bin/python benchmarks/plan_vs_dvc.py --reuse               # keep the generated projects

The children run with bytecode caching on (``PYTHONPYCACHEPREFIX=benchmarks/_work/pycache``,
``PYTHONDONTWRITEBYTECODE`` unset), as on a developer machine; ``--inherit-bytecode-env`` keeps
the caller's settings instead (see ``_env``).

Needs ``dvc`` (``pip install -e '.[bench]'``); found next to this interpreter, else on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK_ROOT = REPO / "benchmarks" / "_work"
WORK = WORK_ROOT / "plan_vs_dvc"
RESULTS = WORK_ROOT / "plan_vs_dvc.json"
LEV = WORK                       # the levcustom repository (conf/, specs/, data/)
DVC = WORK / "dvc"               # the DVC twin
DVC_SITE_CACHE = DVC / ".dvc" / "site-cache"  # its state db (file-hash cache), kept local
STAMP = WORK / ".bench-params.json"
STAGES_PER_MODEL = 4  # dataset, train, eval, deploy
INCREMENTAL_ROWS = 100

PYCACHE = WORK_ROOT / "pycache"  # bytecode of both tools (see _env)

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1", "COLUMNS": "120", "LEVCUSTOM_PLAN_MEMO": "0"}
ENV.pop("FORCE_COLOR", None)


def _env(bytecode_cache: bool) -> None:
    """Bytecode caching on, as on a user's machine, without writing into the repository.

    With PYTHONDONTWRITEBYTECODE=1 inherited (as in some CI/sandbox shells), levcustom (an
    editable install, whose source tree has no __pycache__) recompiles its own modules on every
    run (~0.1 s), while dvc's site-packages ship precompiled .pyc: an unfair handicap. So the
    children get PYTHONPYCACHEPREFIX=benchmarks/_work/pycache instead; the untimed warm-up runs
    fill it. ``--inherit-bytecode-env`` keeps the caller's settings.
    """
    if bytecode_cache:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = str(PYCACHE)

_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar "
          "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu route tool search "
          "weather calendar email invoice refund ticket deploy rollback metric latency cache shard").split()


def _tool(name: str) -> str:
    """The executable next to this interpreter (the venv), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        sys.exit(f"error: {name} not found (next to {sys.executable} or on PATH)")
    return found


# ---------------------------------------------------------------------------- generation

def _row(i: int, j: int) -> str:
    w = _WORDS
    n = len(w)
    a, b, c, d = w[(i * 7 + j) % n], w[(j * 13 + 3) % n], w[(i + j * 31) % n], w[(j * j + i) % n]
    q = f"question {i} {j} {a} {b} {c}"
    ans = f"answer {d} {(i * 1_000_003 + j * 7919) % 1000:03d}"
    # Hand-formatted JSON (the text is plain ASCII with no quotes or backslashes): identical to
    # json.dumps(..., ensure_ascii=True) output, and several times faster for ~2M rows.
    return ('{"messages": [{"role": "user", "content": "' + q + '"}, '
            '{"role": "assistant", "content": "' + ans + '"}]}\n')


def _spec(i: int) -> str:
    name = f"m{i:03d}"
    return f"""apiVersion: levcustom/v1
kind: Model
metadata:
  name: {name}
spec:
  base_model: org/base-model
  provider: local
  hardware: cpu
  dataset:
    sources:
      - {{type: jsonl, path: data/{name}.jsonl}}
  deploy:
    agents: [a{i:03d}]
"""


def _dvc_yaml(n: int) -> str:
    lines = ["stages:"]
    for i in range(n):
        name = f"m{i:03d}"
        lines += [f"  {name}:",
                  f"    cmd: echo {name} > out/{name}.txt",
                  f"    deps: [data/{name}.jsonl]",
                  f"    outs: [out/{name}.txt]"]
    return "\n".join(lines) + "\n"


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} (in {cwd}) exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def generate(n: int, rows: int, lev_bin: str, dvc_bin: str) -> dict:
    """Create both projects from scratch; returns generation facts."""
    t0 = time.perf_counter()
    if WORK.exists():
        shutil.rmtree(WORK)
    lev, dvc = LEV, DVC
    (lev / "specs").mkdir(parents=True)
    (lev / "data").mkdir()
    shutil.copytree(REPO / "conf", lev / "conf")
    total = 0
    for i in range(n):
        name = f"m{i:03d}"
        data = "".join(_row(i, j) for j in range(rows)).encode()
        (lev / "data" / f"{name}.jsonl").write_bytes(data)
        total += len(data)
        (lev / "specs" / f"{name}.yaml").write_text(_spec(i))
    gen_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    p = _run([lev_bin, "validate", "-C", str(lev)], lev)
    validate_s = time.perf_counter() - t0
    said = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    print(f"  levcustom validate: ok ({validate_s:.2f} s) {said}")

    # The DVC twin: same data files (hard links: same bytes, same page cache).
    dvc.mkdir()
    (dvc / "data").mkdir()
    (dvc / "out").mkdir()
    linked = True
    for i in range(n):
        src, dst = lev / "data" / f"m{i:03d}.jsonl", dvc / "data" / f"m{i:03d}.jsonl"
        try:
            os.link(src, dst)
        except OSError:
            linked = False
            shutil.copy2(src, dst)
    t0 = time.perf_counter()
    _run([dvc_bin, "init", "--no-scm", "-q"], dvc)
    # Keep DVC's state db (its file-hash cache) inside the work folder, so "cold" can clear it.
    _run([dvc_bin, "config", "core.site_cache_dir", str(DVC_SITE_CACHE)], dvc)
    _run([dvc_bin, "config", "core.analytics", "false"], dvc)
    (dvc / "dvc.yaml").write_text(_dvc_yaml(n))
    for i in range(n):  # what each stage's cmd would write; then commit instead of running N shells
        (dvc / "out" / f"m{i:03d}.txt").write_text(f"m{i:03d}\n")
    _run([dvc_bin, "commit", "-f", "-q"], dvc)
    dvc_setup_s = time.perf_counter() - t0
    st = _run([dvc_bin, "status"], dvc)
    if "up to date" not in st.stdout:
        sys.exit(f"error: dvc status after commit is not up to date:\n{st.stdout}\n{st.stderr}")
    return {"data_bytes": total, "generate_s": round(gen_s, 3), "validate_s": round(validate_s, 3),
            "dvc_setup_s": round(dvc_setup_s, 3), "hard_linked": linked}


# ---------------------------------------------------------------------------- timing

def _timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    return dt, p


def _check_plan(p: subprocess.CompletedProcess, expect_add: int, what: str) -> None:
    if p.returncode != 0:
        sys.exit(f"error: levcustom plan ({what}) exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    m = re.search(r"Plan: (\d+) to add", p.stdout)
    if not m or int(m.group(1)) != expect_add:
        tail = "\n".join(p.stdout.strip().splitlines()[-5:])
        sys.exit(f"error: levcustom plan ({what}) did not say 'Plan: {expect_add} to add'; its last lines:\n{tail}")


def _check_dvc(p: subprocess.CompletedProcess, what: str, up_to_date: bool = True) -> None:
    if p.returncode != 0:
        sys.exit(f"error: dvc status ({what}) exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    if up_to_date and "up to date" not in p.stdout:
        sys.exit(f"error: dvc status ({what}) did not report up to date:\n{p.stdout[-2000:]}")
    if not up_to_date and "changed deps" not in p.stdout:
        sys.exit(f"error: dvc status ({what}) did not report the changed dependency:\n{p.stdout[-2000:]}")


def _stats(xs: list[float]) -> dict:
    return {"median_s": round(statistics.median(xs), 4), "min_s": round(min(xs), 4),
            "max_s": round(max(xs), 4), "runs_s": [round(x, 4) for x in xs]}


def bench(n: int, rows: int, repeats: int, lev_bin: str, dvc_bin: str) -> dict:
    lev, dvc = LEV, DVC
    plan_cmd = [lev_bin, "plan", "-C", str(lev)]
    status_cmd = [dvc_bin, "status"]
    expect = STAGES_PER_MODEL * n
    res: dict = {}

    # Process start cost, for context (one warm-up each, then best-of / median of 3).
    base = {"levcustom --help": [lev_bin, "--help"], "dvc --version": [dvc_bin, "--version"]}
    for label, cmd in base.items():
        _timed(cmd, lev)
        res[label] = _stats([_timed(cmd, lev)[0] for _ in range(3)])

    # Untimed warm-up: fills the bytecode cache (see _env) and the OS page cache (--reuse).
    _check_plan(_timed(plan_cmd, lev)[1], expect, "warm-up")
    _check_dvc(_timed(status_cmd, dvc)[1], "warm-up")

    # Cold: no hash cache (page cache stays warm).
    shutil.rmtree(lev / ".levcustom" / "cache", ignore_errors=True)
    dt, p = _timed(plan_cmd, lev)
    _check_plan(p, expect, "cold")
    res["levcustom plan cold"] = round(dt, 4)
    shutil.rmtree(DVC_SITE_CACHE, ignore_errors=True)
    dt, p = _timed(status_cmd, dvc)
    _check_dvc(p, "cold")
    res["dvc status cold"] = round(dt, 4)

    # Warm, interleaved.
    lev_t, dvc_t = [], []
    for k in range(repeats):
        dt, p = _timed(plan_cmd, lev)
        _check_plan(p, expect, f"warm #{k + 1}")
        lev_t.append(dt)
        dt, p = _timed(status_cmd, dvc)
        _check_dvc(p, f"warm #{k + 1}")
        dvc_t.append(dt)
        print(f"  warm #{k + 1}: levcustom plan {lev_t[-1]:.3f} s   dvc status {dvc_t[-1]:.3f} s", flush=True)
    res["levcustom plan warm"] = _stats(lev_t)
    res["dvc status warm"] = _stats(dvc_t)

    # Incremental: one source grows by 100 rows (in both projects when hard-linked).
    target = lev / "data" / "m000.jsonl"
    st = os.stat(target)
    extra = "".join(_row(0, rows + j) for j in range(INCREMENTAL_ROWS)).encode()
    try:
        with open(target, "ab") as f:
            f.write(extra)
        dt, p = _timed(plan_cmd, lev)
        _check_plan(p, expect, "incremental")
        res["levcustom plan incremental"] = round(dt, 4)
        dvc_target = dvc / "data" / "m000.jsonl"
        if os.path.samefile(target, dvc_target):
            dt, p = _timed(status_cmd, dvc)
            _check_dvc(p, "incremental", up_to_date=False)
            res["dvc status incremental"] = round(dt, 4)
    finally:
        os.truncate(target, st.st_size)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Re-settle both caches on the restored file (untimed), and prove they agree again.
    _check_plan(_timed(plan_cmd, lev)[1], expect, "after restore")
    _check_dvc(_timed(status_cmd, dvc)[1], "after restore")
    return res


# ---------------------------------------------------------------------------- report

def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def report(res: dict, meta: dict) -> None:
    lw, dw = res["levcustom plan warm"], res["dvc status warm"]
    ratios = {"warm median levcustom/dvc": _ratio(lw["median_s"], dw["median_s"]),
              "warm min levcustom/dvc": _ratio(lw["min_s"], dw["min_s"]),
              "cold levcustom/dvc": _ratio(res["levcustom plan cold"], res["dvc status cold"])}
    if "dvc status incremental" in res:
        ratios["incremental levcustom/dvc"] = _ratio(res["levcustom plan incremental"], res["dvc status incremental"])
    start_lev, start_dvc = res["levcustom --help"]["median_s"], res["dvc --version"]["median_s"]
    ratios["start (help/version) levcustom/dvc"] = _ratio(start_lev, start_dvc)
    targets = {"levcustom warm median < 1 s": lw["median_s"] < 1.0,
               "levcustom warm median <= 0.5x dvc": ratios["warm median levcustom/dvc"] <= 0.5}

    n, rows = meta["specs"], meta["rows"]
    print()
    print(f"plan_vs_dvc: {n} specs x {rows:,} rows = {meta['data_bytes'] / 1e6:.1f} MB "
          f"({n * STAGES_PER_MODEL} levcustom stages, {n} DVC stages), {meta['repeats']} warm repeats")
    print(f"{'':34}{'levcustom plan':>16}{'dvc status':>14}{'ratio':>9}")
    print(f"{'process start (--help / --version)':34}{start_lev:>14.3f} s{start_dvc:>12.3f} s"
          f"{ratios['start (help/version) levcustom/dvc']:>8.2f}x")
    print(f"{'cold (no hash cache)':34}{res['levcustom plan cold']:>14.3f} s{res['dvc status cold']:>12.3f} s"
          f"{ratios['cold levcustom/dvc']:>8.2f}x")
    print(f"{'warm median':34}{lw['median_s']:>14.3f} s{dw['median_s']:>12.3f} s"
          f"{ratios['warm median levcustom/dvc']:>8.2f}x")
    print(f"{'warm min':34}{lw['min_s']:>14.3f} s{dw['min_s']:>12.3f} s{ratios['warm min levcustom/dvc']:>8.2f}x")
    print(f"{'warm max':34}{lw['max_s']:>14.3f} s{dw['max_s']:>12.3f} s")
    if "dvc status incremental" in res:
        print(f"{f'incremental (+{INCREMENTAL_ROWS} rows, 1 file)':34}{res['levcustom plan incremental']:>14.3f} s"
              f"{res['dvc status incremental']:>12.3f} s{ratios['incremental levcustom/dvc']:>8.2f}x")
    else:
        print(f"{f'incremental (+{INCREMENTAL_ROWS} rows, 1 file)':34}{res['levcustom plan incremental']:>14.3f} s")
    print(f"load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']} "
          f"({meta['cpus']} CPUs); bytecode cache: {meta['bytecode_cache']}")
    for name, ok in targets.items():
        print(f"target {name}: {'PASS' if ok else 'FAIL'}")

    out = {"meta": meta, "results": res, "ratios": ratios, "targets": targets}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", type=int, default=200, help="number of specs/models/stages (default 200)")
    ap.add_argument("--rows", type=int, default=10_000, help="rows per source file (default 10,000)")
    ap.add_argument("--repeats", type=int, default=5, help="warm repetitions of each command (default 5)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the projects in benchmarks/_work/plan_vs_dvc/ (if they match --specs/--rows)")
    ap.add_argument("--inherit-bytecode-env", action="store_true",
                    help="keep the caller's PYTHONDONTWRITEBYTECODE/PYTHONPYCACHEPREFIX (default: bytecode "
                         "cached under benchmarks/_work/pycache for both tools)")
    a = ap.parse_args(argv)
    _env(not a.inherit_bytecode_env)
    if a.specs < 1 or a.specs > 1000 or a.rows < 1 or a.repeats < 1:
        ap.error("need 1 <= --specs <= 1000, --rows >= 1, --repeats >= 1")

    lev_bin, dvc_bin = _tool("levcustom"), _tool("dvc")
    params = {"specs": a.specs, "rows": a.rows}
    if a.reuse and STAMP.is_file() and json.loads(STAMP.read_text()).get("params") == params:
        gen = json.loads(STAMP.read_text())["generation"]
        print(f"reusing {WORK.relative_to(REPO)}")
    else:
        if a.reuse:
            print("--reuse: no matching projects to reuse; generating")
        print(f"generating {a.specs} specs x {a.rows:,} rows in {WORK.relative_to(REPO)} ...", flush=True)
        gen = generate(a.specs, a.rows, lev_bin, dvc_bin)
        STAMP.write_text(json.dumps({"params": params, "generation": gen}))
        print(f"  {gen['data_bytes'] / 1e6:.1f} MB in {gen['generate_s']:.1f} s; "
              f"dvc init+commit {gen['dvc_setup_s']:.1f} s", flush=True)

    dvc_version = _run([dvc_bin, "--version"], WORK).stdout.strip()
    load0 = _loadavg()
    res = bench(a.specs, a.rows, a.repeats, lev_bin, dvc_bin)
    meta = {"specs": a.specs, "rows": a.rows, "repeats": a.repeats, "data_bytes": gen["data_bytes"],
            "bytes_per_row": round(gen["data_bytes"] / (a.specs * a.rows), 1), "generation": gen,
            "levcustom": lev_bin, "dvc": dvc_bin, "dvc_version": dvc_version,
            "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "bytecode_cache": not a.inherit_bytecode_env,
            "child_env": {k: ENV.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")},
            "loadavg_before": load0, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta["loadavg_after"] = _loadavg()
    report(res, meta)


if __name__ == "__main__":
    main()
