"""Online A/B: deterministic routing by request key, outcome records, promote / roll back decisions."""

from __future__ import annotations

import pytest

from levcustom.deploy import online
from levcustom.deploy.registry import resolve
from levcustom.errors import LevcustomError
from levcustom.spec.schema import TrafficSpec
from levcustom.state.lockfile import DeployState, Lock, ModelState, PreviousDeployment

TRAFFIC = TrafficSpec(candidate=10, min_outcomes=50)


def split_deploy(phase: str = online.SPLIT, traffic: int = 10) -> DeployState:
    return DeployState(fingerprint="new", inputs={"eval": "e2"}, agents=["router"], tasks=[], provider="local",
                       base_model="b", model_ref="store/v2", eval_results={}, phase=phase, traffic=traffic,
                       previous=PreviousDeployment(fingerprint="old", provider="local", base_model="b",
                                                   model_ref="store/v1"))


def outcomes(ref: str, arm: str, successes: int, failures: int) -> list[online.Outcome]:
    return [online.Outcome(f"{arm}-{i}", ref, arm, i < successes) for i in range(successes + failures)]


def test_bucket_is_deterministic_and_splits_in_proportion():
    assert online.bucket("req-1", "m") == online.bucket("req-1", "m")
    share = sum(online.bucket(f"req-{i}", "m") < 10 for i in range(20_000)) / 20_000
    assert share == pytest.approx(0.10, abs=0.01)


def test_resolve_routes_by_request_key_during_a_split():
    lock = Lock(models={"router": ModelState(spec_file="s.yaml", deploy=split_deploy())})
    arms = {k: resolve(lock, "router", key=k) for k in (f"req-{i}" for i in range(400))}
    cand = [r for r in arms.values() if r.arm == "candidate"]
    assert all(r.model_ref == "store/v2" for r in cand)
    assert all(r.model_ref == "store/v1" for r in arms.values() if r.arm == "stable")
    assert 20 <= len(cand) <= 60  # about 10% of 400
    assert resolve(lock, "router", key="req-7") == arms["req-7"]  # the same request, the same version
    assert resolve(lock, "router").arm == "stable"  # no key: the stable version
    lock.models["router"].deploy = split_deploy(online.ROLLED_BACK, traffic=0)
    assert {resolve(lock, "router", key=k).model_ref for k in arms} == {"store/v1"}


def test_decide_waits_then_promotes_or_rolls_back():
    wait = online.decide(TRAFFIC, outcomes("store/v2", "candidate", 40, 9), "store/v2", "store/v1")
    assert wait.phase == online.SPLIT and "waiting for outcomes: candidate 49, stable 0" in wait.reason
    better = outcomes("store/v2", "candidate", 90, 10) + outcomes("store/v1", "stable", 60, 40)
    promote = online.decide(TRAFFIC, better, "store/v2", "store/v1")
    assert promote.phase == online.PROMOTED and "success candidate 0.900 (n=100) vs stable 0.600" in promote.reason
    worse = outcomes("store/v2", "candidate", 50, 50) + outcomes("store/v1", "stable", 85, 15)
    assert online.decide(TRAFFIC, worse, "store/v2", "store/v1").phase == online.ROLLED_BACK
    close = outcomes("store/v2", "candidate", 41, 19) + outcomes("store/v1", "stable", 39, 21)
    assert online.decide(TRAFFIC, close, "store/v2", "store/v1").reason.endswith("undecided")


def test_phase_of_a_deployment():
    assert online.phase(None, split_deploy(), "e2", []) is None
    assert online.phase(TRAFFIC, None, "e1", []).phase == online.FULL
    assert online.phase(TRAFFIC, split_deploy(), "e3", []).phase == online.SPLIT  # a newer version
    assert online.phase(TRAFFIC, split_deploy(online.PROMOTED), "e2", []).phase == online.PROMOTED  # final
    better = outcomes("store/v2", "candidate", 90, 10) + outcomes("store/v1", "stable", 60, 40)
    assert online.phase(TRAFFIC, split_deploy(), "e2", better).phase == online.PROMOTED


def test_outcomes_round_trip_and_bad_lines(tmp_path):
    path = online.outcomes_path(tmp_path, "router")
    online.record(path, online.Outcome("k1", "store/v2", "candidate", True, 4.5))
    online.record(path, online.Outcome("k2", "store/v1", "stable", False))
    assert online.read(path) == [online.Outcome("k1", "store/v2", "candidate", True, 4.5),
                                 online.Outcome("k2", "store/v1", "stable", False)]
    with open(path, "a") as f:
        f.write('{"key": "k3"}\n')
    with pytest.raises(LevcustomError, match=r"router.jsonl:3: not an outcome record"):
        online.read(path)
