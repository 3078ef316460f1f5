"""Crash harness at scale: N trials of apply killed with SIGKILL at random moments (30% of API
requests answered 429/500), then applied again. Reports how many kills hit a running apply, and
counts of unreadable lockfiles, duplicated jobs/uploads and runs that did not converge (all must
be 0). The test suite runs a few of the same trials (tests/faults/test_crash.py).

    python benchmarks/crash_harness.py [--trials 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from faults.crash import reference, trial  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        expected, duration = reference(Path(tmp))
        results = []
        for i in range(args.trials):
            r = trial(Path(tmp) / f"t{i}", rng, expected, duration)
            results.append(r)
            print(f"trial {i + 1}/{args.trials}: kills {r.kills} (during apply {r.killed_during_apply}), "
                  f"converged {r.converged}, dup jobs {r.duplicate_jobs}, dup uploads {r.duplicate_uploads}"
                  + (f", problems {r.problems}" if r.problems else ""), flush=True)
    totals = {
        "trials": len(results),
        "kills": sum(r.kills for r in results),
        "kills_during_apply": sum(r.killed_during_apply for r in results),
        "lockfile_unreadable": sum(r.kills - r.lock_parsed for r in results),
        "duplicate_jobs": sum(r.duplicate_jobs for r in results),
        "duplicate_uploads": sum(r.duplicate_uploads for r in results),
        "not_converged": sum(not r.converged for r in results),
        "final_apply_reruns": sum(r.reruns for r in results),
        "reference_apply_s": round(duration, 2),
    }
    out = ROOT / "benchmarks" / "_work"
    out.mkdir(parents=True, exist_ok=True)
    (out / "crash_harness.json").write_text(json.dumps(totals, indent=1))
    print(json.dumps(totals, indent=1))
    failures = ("lockfile_unreadable", "duplicate_jobs", "duplicate_uploads", "not_converged")
    sys.exit(1 if any(totals[k] for k in failures) else 0)


if __name__ == "__main__":
    main()
