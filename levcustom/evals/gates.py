"""Gates: pure decisions over eval results. A failed gate blocks the deploy (exit 3)."""

from __future__ import annotations

from levcustom.spec.schema import Gate
from levcustom.state.lockfile import GateResult, MetricResult


def check_gates(gates: list[Gate], results: dict[str, MetricResult],
                deployed: dict[str, MetricResult] | None) -> list[GateResult]:
    """Evaluate every gate; ``deployed`` holds the currently deployed version's results, if any."""
    out = []
    for gate in gates:
        r = results[gate.metric]
        checks: list[tuple[bool, str]] = []
        if gate.min is not None:
            checks.append((r.tuned >= gate.min, f"{gate.metric} {r.tuned:.3f} >= {gate.min}"))
        if gate.max is not None:
            checks.append((r.tuned <= gate.max, f"{gate.metric} {r.tuned:.3f} <= {gate.max}"))
        if gate.min_delta_vs is not None:
            ref_name, ref = gate.min_delta_vs, None
            if ref_name == "deployed" and deployed and gate.metric in deployed:
                ref = deployed[gate.metric].tuned
            if ref is None:  # nothing deployed yet: the base model is the incumbent
                ref_name, ref = "base", r.base
            if ref is None:
                checks.append((False, f"{gate.metric}: no {gate.min_delta_vs} score to compare with"))
            else:
                delta = r.tuned - ref
                checks.append((delta >= gate.min_delta,
                               f"{gate.metric} {r.tuned:.3f} vs {ref_name} {ref:.3f}: "
                               f"delta {delta:+.3f} >= {gate.min_delta:+}"))
        passed = all(ok for ok, _ in checks)
        detail = "; ".join(text if ok else f"FAILED {text}" for ok, text in checks)
        out.append(GateResult(gate=_describe(gate), passed=passed, detail=detail))
    return out


def _describe(gate: Gate) -> str:
    parts = [gate.metric]
    if gate.min is not None:
        parts.append(f"min {gate.min}")
    if gate.max is not None:
        parts.append(f"max {gate.max}")
    if gate.min_delta_vs:
        parts.append(f"min_delta {gate.min_delta:+} vs {gate.min_delta_vs}")
    return " ".join(parts)
