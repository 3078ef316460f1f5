"""Metrics and gates decide deploys: check both directions of each rule."""

from __future__ import annotations

from levcustom.evals.gates import check_gates
from levcustom.evals.metrics import score
from levcustom.spec.schema import Gate
from levcustom.state.lockfile import MetricResult


def test_metrics():
    assert score("exact_match", [' {"a": 1} ', "x"], ['{"a": 1}', "y"]) == 0.5
    assert score("contains", ["The answer is OK."], ["ok"]) == 1.0
    assert score("json_valid", ['{"tool": "x"}', "{tool: x}"], ["", ""]) == 0.5


def test_min_max_and_delta_vs_base():
    results = {"s.exact_match": MetricResult(tuned=0.8, base=0.7, cases=10)}
    [ok, too_low, delta] = check_gates([Gate(metric="s.exact_match", min=0.8, max=0.9),
                                        Gate(metric="s.exact_match", min=0.81),
                                        Gate(metric="s.exact_match", min_delta_vs="base", min_delta=0.2)],
                                       results, None)
    assert ok.passed and not too_low.passed
    assert not delta.passed and "vs base 0.700: delta +0.100 >= +0.2" in delta.detail


def test_delta_vs_deployed_uses_deployed_scores_else_base():
    results = {"s.exact_match": MetricResult(tuned=0.8, base=0.1, cases=10)}
    gate = Gate(metric="s.exact_match", min_delta_vs="deployed")
    [regressed] = check_gates([gate], results, {"s.exact_match": MetricResult(tuned=0.9, cases=10)})
    assert not regressed.passed and "vs deployed 0.900" in regressed.detail
    [first] = check_gates([gate], results, None)
    assert first.passed and "vs base 0.100" in first.detail
