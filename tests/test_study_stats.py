"""Statistics of the knowledge-bias study (``priorgnn.metrics.stats``): the dose-response trend test,
multiplicity-adjusted verdicts and shared rankings, against hand-worked values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from priorgnn.metrics.stats import adjusted_verdict, holm, rankings_identical, trend_test

LEVELS = [0.0, 0.25, 0.5, 0.75]


def _curve(rng, means_by_seed, n_cond=15, noise=0.01):
    """Per seed an (L, n_cond) array: a condition effect shared across levels plus the level's mean."""
    out = []
    for means in means_by_seed:
        cond = rng.normal(0, 0.2, n_cond)
        out.append(np.asarray(means)[:, None] + cond[None, :] + rng.normal(0, noise, (len(means), n_cond)))
    return out


def test_trend_single_seed_by_hand():
    # means 1, 3, 2, 4 over levels 0..3: ranks differ by one swap, Spearman = 1 - 6*2/(4*15) = 0.8
    vals = [np.array([[1.0], [3.0], [2.0], [4.0]])]
    r = trend_test([0, 1, 2, 3], vals, n_boot=200)
    assert r.rho == pytest.approx(0.8)
    assert r.rho == pytest.approx(sps.spearmanr([0, 1, 2, 3], [1, 3, 2, 4]).statistic)
    # of the 24 orderings, |rho| >= 0.8 for the identity, its 3 adjacent swaps and their 4 reversals
    assert r.exact and r.p_value == pytest.approx(8 / 24)
    assert r.p_min == pytest.approx(2 / 24)
    assert (r.n_levels, r.n_seeds, r.n_conditions) == (4, 1, 1)


def test_trend_passes_on_a_constructed_monotone_curve(rng):
    vals = _curve(rng, [[0.70, 0.65, 0.60, 0.55]] * 3)
    r = trend_test(LEVELS, vals)
    assert r.rho == pytest.approx(-1.0)
    # only the perfectly ordered and perfectly reversed combinations of the three seeds reach |rho| = 1
    assert r.p_value == pytest.approx(2 / 24**3)
    assert r.hi < 0 and r.lo <= r.rho <= r.hi


def test_trend_fails_on_a_shuffled_curve(rng):
    # the same four levels' means, in an order with no trend (Spearman 0 per seed): the control
    shuffled = [[0.65, 0.55, 0.70, 0.60], [0.60, 0.70, 0.55, 0.65], [0.55, 0.65, 0.60, 0.70]]
    r = trend_test(LEVELS, _curve(rng, shuffled))
    assert abs(r.rho) < 0.5
    assert r.p_value > 0.05
    # a curve that rises and falls by more than the condition noise (the review's GO-fidelity shape)
    r2 = trend_test([0, 0.25, 0.5, 0.75, 1.0], _curve(rng, [[0.725, 0.733, 0.729, 0.724, 0.737]] * 3, noise=0.001))
    assert r2.p_value > 0.05


def test_trend_cannot_reach_significance_with_one_seed_and_four_levels(rng):
    r = trend_test(LEVELS, _curve(rng, [[0.7, 0.6, 0.5, 0.4]]))
    assert r.rho == pytest.approx(-1.0)
    assert r.p_value == pytest.approx(2 / 24) and r.p_value > 0.05


def test_trend_monte_carlo_agrees_with_the_exact_null(rng):
    vals = _curve(rng, [[0.70, 0.65, 0.60, 0.55], [0.70, 0.60, 0.65, 0.55], [0.70, 0.65, 0.60, 0.55]])
    exact = trend_test(LEVELS, vals)
    mc = trend_test(LEVELS, vals, max_exact=10, n_perm=40000, seed=3)
    assert not mc.exact and exact.exact
    assert mc.rho == exact.rho
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.003)


def test_trend_drops_incomplete_conditions_and_checks_shapes():
    v = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 1.0]])
    r = trend_test([0, 1, 2], [v], n_boot=100)
    assert r.n_conditions == 1 and r.rho == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        trend_test([0, 1, 2], [np.zeros((2, 3))])
    with pytest.raises(ValueError, match="distinct levels"):
        trend_test([1, 1], [np.zeros((2, 3))])


def test_adjusted_verdict_uses_the_adjusted_p():
    # raw p 0.01 is 'real' alone, but among 10 tests Holm multiplies the smallest p by 10
    p_raw = [0.01, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    p_adj = holm(p_raw)
    assert p_adj[0] == pytest.approx(0.1)
    assert adjusted_verdict(0.01, 0.002, 0.02, p_adj[0]) == "inconclusive"
    assert adjusted_verdict(0.01, 0.002, 0.02, 0.01) == "better"
    assert adjusted_verdict(-0.01, -0.02, -0.002, 0.01) == "worse"
    assert adjusted_verdict(0.01, -0.002, 0.02, 0.5) == "indistinguishable"
    assert adjusted_verdict(0.01, -0.002, 0.02, 0.01) == "inconclusive"
    assert adjusted_verdict(0.01, 0.002, 0.02, math.nan) == "inconclusive"


def test_rankings_identical_on_constructed_predictions(rng):
    shared = rng.normal(size=30)
    # a 'mean'-style model: the same predicted change for every target
    assert rankings_identical(np.tile(shared, (5, 1)))
    # the same vector scaled per target still ranks the genes identically
    assert rankings_identical(np.abs(shared)[None, :] * np.array([[1.0], [2.0], [0.5]]))
    # 'no_change': all ties in every row
    assert rankings_identical(np.zeros((4, 30)))
    # the target's own gene set apart in each row does not make the rankings differ
    s = np.tile(np.abs(shared), (3, 1))
    for i in range(3):
        s[i, i] = 100.0
    assert not rankings_identical(s)
    assert rankings_identical(s, exclude=[0, 1, 2])
    # a target-specific model: different orders
    assert not rankings_identical(np.abs(rng.normal(size=(5, 30))))
    # one swap in one row is enough to differ
    t = np.tile(np.arange(30.0), (3, 1))
    t[2, [4, 5]] = t[2, [5, 4]]
    assert not rankings_identical(t)
    assert not rankings_identical(np.zeros((1, 30)))
