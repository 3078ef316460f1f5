"""A few crash trials in the suite; benchmarks/crash_harness.py runs many more."""

from __future__ import annotations

import random

from faults.crash import reference, trial


def test_killed_applies_converge_without_duplicates(tmp_path):
    expected, duration = reference(tmp_path)
    assert set(expected["models"]) == {"alpha", "beta", "gamma"} and expected["uploads"] == 2
    rng = random.Random(7)
    results = [trial(tmp_path / f"t{i}", rng, expected, duration) for i in range(4)]
    for r in results:
        assert r.problems == [] and r.converged
        assert r.duplicate_jobs == 0 and r.duplicate_uploads == 0
        assert r.lock_parsed == r.kills
    assert sum(r.killed_during_apply for r in results) >= 1  # the kills really interrupted something
