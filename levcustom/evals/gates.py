"""Gates: pure decisions over per-case results. A failed gate blocks the deploy (exit 3).

``min``/``max`` bound the tuned model's mean; ``min_delta_vs`` bounds its paired difference to the
base or deployed model on the same cases. With ``confidence`` the bound applies to the bootstrap
confidence interval, so a gate passes only when the suite is large enough to show it; a gate that
fails while its interval still straddles the threshold says how many cases would decide it.
"""

from __future__ import annotations

from levcustom.evals import stats
from levcustom.evals.metrics import PASS_FAIL
from levcustom.evals.results import CaseRow, by_metric, errors, role_scores
from levcustom.spec.schema import Gate
from levcustom.state.lockfile import GateResult, MetricResult

DEFAULT_CONFIDENCE = 0.95  # the interval shown when a gate bounds the point estimate only


def check_gates(gates: list[Gate], rows: list[CaseRow]) -> list[GateResult]:
    """Evaluate every gate on the per-case rows (the ``deployed`` role is present when a version is
    deployed; otherwise the base model is the incumbent)."""
    groups = by_metric(rows)
    return [_check(gate, groups.get(gate.metric, [])) for gate in gates]


def _check(gate: Gate, group: list[CaseRow]) -> GateResult:
    checks: list[tuple[bool, str]] = []
    tuned = role_scores(group, "tuned")
    if tuned is None:
        failed = errors(group)
        checks.append((False, f"{gate.metric}: {len(failed)} of {len(group)} cases could not be scored "
                              f"({failed[0] if failed else 'no cases'}); run levcustom eval again to retry them"))
        return _result(gate, checks)
    level = gate.confidence or DEFAULT_CONFIDENCE
    if gate.min is not None or gate.max is not None:
        ci = stats.bootstrap_ci(tuned, level)
        if gate.min is not None:
            checks.append(_bound(gate, ci, gate.min, lower=True))
        if gate.max is not None:
            checks.append(_bound(gate, ci, gate.max, lower=False))
    if gate.min_delta_vs is not None:
        checks.append(_delta(gate, group, tuned, level))
    return _result(gate, checks)


def _bound(gate: Gate, ci: stats.Interval, limit: float, lower: bool) -> tuple[bool, str]:
    op = ">=" if lower else "<="
    if gate.confidence is None:
        ok = ci.estimate >= limit if lower else ci.estimate <= limit
        return ok, f"{gate.metric} {ci.estimate:.3f} {op} {limit} ({ci.confidence:.0%} CI {ci.low:.3f}..{ci.high:.3f})"
    bound = ci.low if lower else ci.high
    ok = bound >= limit if lower else bound <= limit
    side = "lower" if lower else "upper"
    return ok, (f"{gate.metric} {ci.estimate:.3f}: {side} {ci.confidence:.0%} CI bound {bound:.3f} {op} {limit} "
                f"(CI {ci.low:.3f}..{ci.high:.3f})")


def _delta(gate: Gate, group: list[CaseRow], tuned: list[float], level: float) -> tuple[bool, str]:
    ref_name = gate.min_delta_vs
    reference = role_scores(group, "deployed") if ref_name == "deployed" else None
    if reference is None:  # nothing deployed yet: the base model is the incumbent
        ref_name, reference = "base", role_scores(group, "base")
    if reference is None:
        return False, f"{gate.metric}: no {gate.min_delta_vs} scores on the same cases to compare with"
    ci = stats.paired_bootstrap_ci(tuned, reference, level)
    metric = group[0].metric
    test = stats.mcnemar(tuned, reference) if metric in PASS_FAIL else None
    ref_mean = sum(reference) / len(reference)
    facts = f"n={len(tuned)}" + (f", McNemar p={test.p_value:.2g}" if test else "")
    head = f"{gate.metric} {sum(tuned) / len(tuned):.3f} vs {ref_name} {ref_mean:.3f}: "
    if gate.confidence is None:
        ok = ci.estimate >= gate.min_delta
        text = (f"{head}delta {ci.estimate:+.3f} >= {gate.min_delta:+} "
                f"({ci.confidence:.0%} CI {ci.low:+.3f}..{ci.high:+.3f}, {facts})")
    else:
        ok = ci.low >= gate.min_delta
        text = (f"{head}lower {ci.confidence:.0%} CI bound {ci.low:+.3f} >= {gate.min_delta:+} "
                f"(delta {ci.estimate:+.3f}, CI {ci.low:+.3f}..{ci.high:+.3f}, {facts})")
        if not ok and ci.high >= gate.min_delta:
            text += "; " + _undecided(metric, tuned, reference, gate.min_delta, level)
    return ok, text


def _undecided(metric: str, tuned: list[float], reference: list[float], threshold: float, level: float) -> str:
    """Why the suite cannot decide, and how many paired cases would (80% power)."""
    diffs = [t - r for t, r in zip(tuned, reference, strict=True)]
    effect = sum(diffs) / len(diffs) - threshold
    if metric in PASS_FAIL:
        need = stats.cases_needed_mcnemar(sum(d != 0 for d in diffs) / len(diffs), effect, level)
    else:
        need = stats.cases_needed(effect, stats.std(diffs), level)
    if need is None or effect <= 0:
        return "the suite is too small to decide"
    return (f"the suite is too small to decide: about {need} paired cases would detect a difference of "
            f"{effect:+.3f} over the threshold (it has {len(diffs)})")


def check_recorded(gates: list[Gate], results: dict[str, MetricResult]) -> list[GateResult]:
    """Gates re-checked on a version's recorded summary, where its per-case rows are not at hand (a
    fresh CI clone): point estimates, or the recorded CI bounds when a gate asks for confidence;
    deltas against the base model (a deployed version is its own incumbent)."""
    out = []
    for gate in gates:
        r = results[gate.metric]
        checks: list[tuple[bool, str]] = []
        if r.errors:
            checks.append((False, f"{gate.metric}: {r.errors} of {r.cases} cases could not be scored"))
        for limit, lower in ((gate.min, True), (gate.max, False)):
            if limit is None:
                continue
            bound = r.ci_low if lower else r.ci_high
            value = r.tuned if gate.confidence is None or bound is None else bound
            ok = value >= limit if lower else value <= limit
            checks.append((ok, f"{gate.metric} {value:.3f} {'>=' if lower else '<='} {limit} (recorded)"))
        if gate.min_delta_vs is not None:
            p = r.paired.get("base")
            if p is None:
                checks.append((r.base is not None and r.tuned - r.base >= gate.min_delta,
                               f"{gate.metric} delta vs base {r.tuned - (r.base or 0.0):+.3f} >= {gate.min_delta:+} "
                               "(recorded)"))
            else:
                value = p.delta if gate.confidence is None else p.ci_low
                checks.append((value >= gate.min_delta,
                               f"{gate.metric} delta vs base {value:+.3f} >= {gate.min_delta:+} (recorded)"))
        out.append(_result(gate, checks))
    return out


def _result(gate: Gate, checks: list[tuple[bool, str]]) -> GateResult:
    passed = all(ok for ok, _ in checks)
    detail = "; ".join(text if ok else f"FAILED {text}" for ok, text in checks)
    return GateResult(gate=_describe(gate), passed=passed, detail=detail)


def _describe(gate: Gate) -> str:
    parts = [gate.metric]
    if gate.min is not None:
        parts.append(f"min {gate.min}")
    if gate.max is not None:
        parts.append(f"max {gate.max}")
    if gate.min_delta_vs:
        parts.append(f"min_delta {gate.min_delta:+} vs {gate.min_delta_vs}")
    if gate.confidence is not None:
        parts.append(f"at {gate.confidence:.0%} confidence")
    return " ".join(parts)
