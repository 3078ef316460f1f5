"""Paired statistics against textbook values, scipy, and simulation of what they promise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from levcustom.evals.stats import (
    bootstrap_ci,
    cases_needed,
    cases_needed_mcnemar,
    mcnemar,
    paired_bootstrap_ci,
    std,
    unpaired_bootstrap_ci,
)


def pairs(improved: int, regressed: int, both: int = 0, neither: int = 0) -> tuple[list[float], list[float]]:
    cand = [1.0] * improved + [0.0] * regressed + [1.0] * both + [0.0] * neither
    ref = [0.0] * improved + [1.0] * regressed + [1.0] * both + [0.0] * neither
    return cand, ref


def test_mcnemar_chi_square_matches_agresti_example():
    # Agresti, Categorical Data Analysis: approval of the Prime Minister in two surveys,
    # 150 changed approve -> disapprove and 86 the other way (794 and 570 kept their opinion).
    cand, ref = pairs(improved=86, regressed=150, both=794, neither=570)
    result = mcnemar(cand, ref)
    assert (result.improved, result.regressed, result.exact) == (86, 150, False)
    statistic = (abs(150 - 86) - 1) ** 2 / 236  # 16.82 with continuity correction
    assert result.p_value == pytest.approx(sp.chi2.sf(statistic, 1), rel=1e-9)
    assert result.p_value == pytest.approx(4.1e-5, rel=0.05)


def test_mcnemar_exact_for_few_discordant_pairs_matches_binomial_test():
    cand, ref = pairs(improved=1, regressed=6, both=10, neither=3)
    result = mcnemar(cand, ref)
    assert result.exact and result.p_value == pytest.approx(sp.binomtest(1, 7, 0.5).pvalue) == 0.125
    assert mcnemar(*pairs(0, 0, both=5)).p_value == 1.0
    assert mcnemar(*pairs(12, 0)).p_value == pytest.approx(sp.binomtest(12, 12, 0.5).pvalue)


def test_bootstrap_ci_agrees_with_normal_theory_on_a_large_sample():
    x = np.random.default_rng(1).normal(0.6, 0.2, size=2000)
    ci = bootstrap_ci(x.tolist())
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low == pytest.approx(x.mean() - half, abs=0.002) and ci.high == pytest.approx(x.mean() + half, abs=0.002)
    assert bootstrap_ci(x.tolist()) == ci  # seeded: the same verdict every run
    assert bootstrap_ci([0.5] * 10).low == bootstrap_ci([0.5] * 10).high == 0.5


def test_paired_ci_is_narrower_than_unpaired_when_cases_vary_together():
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 1, size=300)  # shared by both models: pairing cancels it
    ref = difficulty + rng.normal(0, 0.1, size=300)
    cand = difficulty + 0.1 + rng.normal(0, 0.1, size=300)
    paired = paired_bootstrap_ci(cand.tolist(), ref.tolist())
    unpaired = unpaired_bootstrap_ci(cand.tolist(), ref.tolist())
    assert paired.estimate == pytest.approx(unpaired.estimate) == pytest.approx((cand - ref).mean())
    assert paired.low > 0  # the paired design detects the +0.1 ...
    assert unpaired.low < 0 < unpaired.high  # ... the unpaired one cannot on the same data
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_ci([1.0], [1.0, 0.0])


def test_bootstrap_covers_the_true_mean_about_as_often_as_promised():
    rng = np.random.default_rng(3)
    hits = 0
    for i in range(200):
        sample = rng.binomial(1, 0.7, 60).astype(float).tolist()
        ci = bootstrap_ci(sample, resamples=1000, seed=i)
        hits += ci.low <= 0.7 <= ci.high
    assert 0.88 <= hits / 200 <= 0.99


def test_sample_size_for_a_mean_difference_matches_the_textbook_and_delivers_its_power():
    # (1.96 + 0.8416)^2 / 0.5^2 = 31.4 -> 32 pairs to detect half a standard deviation.
    assert cases_needed(0.5, 1.0) == 32
    assert cases_needed(0.0, 1.0) is None
    rng = np.random.default_rng(4)
    diffs = rng.normal(0.5, 1.0, size=(4000, 32))
    z = diffs.mean(axis=1) / (1.0 / math.sqrt(32))
    assert np.mean(np.abs(z) > 1.96) == pytest.approx(0.80, abs=0.03)


def test_sample_size_for_mcnemar_delivers_its_power():
    # Connor (1987) with p10 = 0.2, p01 = 0.1: discordant 0.3, effect 0.1.
    n = cases_needed_mcnemar(0.3, 0.1)
    za, zb = sp.norm.ppf(0.975), sp.norm.ppf(0.8)
    assert n == math.ceil((za * math.sqrt(0.3) + zb * math.sqrt(0.3 - 0.01)) ** 2 / 0.01) == 234
    rng = np.random.default_rng(5)
    rejected = 0
    for _ in range(400):
        cells = rng.multinomial(n, [0.2, 0.1, 0.7])
        rejected += mcnemar(*pairs(int(cells[0]), int(cells[1]), neither=int(cells[2]))).p_value < 0.05
    assert 0.72 <= rejected / 400 <= 0.88
    assert cases_needed_mcnemar(0.01, 0.2) is None  # impossible: the effect exceeds the discordance


def test_std():
    assert std([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert std([1.0]) == 0.0
