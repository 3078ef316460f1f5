"""Paired statistics for A/B evals: bootstrap confidence intervals, McNemar's test, sample sizes.

Pure functions over per-case scores. Resampling uses a fixed seed so a gate's verdict is
reproducible run to run (the same lockfile for the same answers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

RESAMPLES = 10_000
_CELLS_PER_CHUNK = 2_000_000  # resample indices drawn at once (16 MB of int64), whatever the suite size


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def format(self, signed: bool = False) -> str:
        f = "{:+.3f}" if signed else "{:.3f}"
        return f"{f.format(self.estimate)} ({self.confidence:.0%} CI {f.format(self.low)}..{f.format(self.high)})"


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired pass/fail outcomes: only the discordant pairs carry information."""

    improved: int  # candidate passed where the reference failed
    regressed: int  # candidate failed where the reference passed
    p_value: float
    exact: bool  # exact binomial test (few discordant pairs) or chi-square with continuity correction


def _means_of_resamples(values, resamples: int, seed: int):
    import numpy as np

    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    chunk = max(1, _CELLS_PER_CHUNK // len(x))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        out[start:start + k] = x[rng.integers(0, len(x), size=(k, len(x)))].mean(axis=1)
    return out


def _percentiles(samples, estimate: float, confidence: float) -> Interval:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = RESAMPLES,
                 seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the mean of ``values``."""
    if not len(values):
        raise ValueError("no values to bootstrap")
    mean = math.fsum(values) / len(values)
    return _percentiles(_means_of_resamples(values, resamples, seed), mean, confidence)


def paired_bootstrap_ci(candidate: Sequence[float], reference: Sequence[float], confidence: float = 0.95,
                        resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """CI of mean(candidate - reference) over the same cases: cases are resampled, pairs kept together,
    so the case-to-case variation both models share cancels out."""
    if len(candidate) != len(reference):
        raise ValueError(f"paired scores differ in length: {len(candidate)} vs {len(reference)}")
    return bootstrap_ci([c - r for c, r in zip(candidate, reference, strict=True)], confidence, resamples, seed)


def unpaired_bootstrap_ci(candidate: Sequence[float], reference: Sequence[float], confidence: float = 0.95,
                          resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """CI of mean(candidate) - mean(reference) for independent samples (online A/B: different requests)."""
    if not len(candidate) or not len(reference):
        raise ValueError("both groups need at least one value")
    diff = math.fsum(candidate) / len(candidate) - math.fsum(reference) / len(reference)
    samples = (_means_of_resamples(candidate, resamples, seed)
               - _means_of_resamples(reference, resamples, seed + 1))
    return _percentiles(samples, diff, confidence)


def mcnemar(candidate: Sequence[float], reference: Sequence[float], exact_below: int = 25) -> McNemar:
    """Two-sided McNemar test for paired pass (1) / fail (0) scores.

    With fewer than ``exact_below`` discordant pairs the exact binomial test is used (the chi-square
    approximation is poor there); above, chi-square with Edwards' continuity correction.
    """
    b = sum(1 for c, r in zip(candidate, reference, strict=True) if c >= 0.5 > r)
    c = sum(1 for cand, r in zip(candidate, reference, strict=True) if cand < 0.5 <= r)
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, True)
    if n < exact_below:
        tail = math.fsum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
        return McNemar(b, c, min(1.0, 2 * tail), True)
    statistic = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, math.erfc(math.sqrt(statistic / 2)), False)  # chi-square(1) survival function


def _z(confidence: float, power: float) -> tuple[float, float]:
    normal = NormalDist()
    return normal.inv_cdf(1 - (1 - confidence) / 2), normal.inv_cdf(power)


def cases_needed(effect: float, sd: float, confidence: float = 0.95, power: float = 0.8) -> int | None:
    """Paired cases needed to detect a mean difference ``effect`` whose per-case differences have
    standard deviation ``sd`` (two-sided test at 1 - confidence, normal approximation):
    n = ((z_{1-alpha/2} + z_power) * sd / effect)^2. None when no effect can be detected."""
    if effect == 0:
        return None
    za, zb = _z(confidence, power)
    return max(2, math.ceil(((za + zb) * sd / effect) ** 2))


def cases_needed_mcnemar(discordant: float, effect: float, confidence: float = 0.95,
                         power: float = 0.8) -> int | None:
    """Connor (1987): pairs needed for McNemar's test to detect a difference ``effect`` = p10 - p01 in
    pass rates, given the share of discordant pairs ``discordant`` = p10 + p01.
    n = (z_{1-alpha/2} sqrt(pd) + z_power sqrt(pd - effect^2))^2 / effect^2."""
    if effect == 0 or discordant <= effect ** 2:
        return None
    za, zb = _z(confidence, power)
    return max(2, math.ceil((za * math.sqrt(discordant) + zb * math.sqrt(discordant - effect ** 2)) ** 2
                            / effect ** 2))


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
