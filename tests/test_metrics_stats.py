"""Aggregation and paired statistics: bootstrap CIs, Wilcoxon, wins/losses, Holm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from priorgnn.metrics import aggregate, bootstrap_ci, holm, paired_comparison, wilcoxon_signed_rank


def test_bootstrap_ci_contains_mean_and_shrinks(rng):
    small = rng.normal(1.0, 1.0, 20)
    large = rng.normal(1.0, 1.0, 500)
    a = bootstrap_ci(small, n_boot=2000, seed=0)
    b = bootstrap_ci(large, n_boot=2000, seed=0)
    assert a.lo < a.mean < a.hi and b.lo < b.mean < b.hi
    assert a.mean == pytest.approx(small.mean()) and a.n == 20 and a.n_seeds == 1
    assert (b.hi - b.lo) < (a.hi - a.lo) / 2  # width ~ 1/sqrt(n): 5x narrower in expectation
    # seeded: the same interval again
    again = bootstrap_ci(small, n_boot=2000, seed=0)
    assert (again.lo, again.hi) == (a.lo, a.hi)
    # the percentile interval of the mean of N(1, 1) with n = 500 is about ±1.96/sqrt(500) = ±0.088
    assert b.half_width == pytest.approx(1.96 / np.sqrt(500), rel=0.2)


def test_bootstrap_over_seeds():
    # seed 1: [1, 2, 3] (mean 2); seed 2: [10, 12] (mean 11) → mean of seed means 6.5 (not 5.6)
    r = bootstrap_ci([np.array([1.0, 2, 3]), np.array([10.0, 12])], n_boot=1000, seed=0)
    assert r.mean == pytest.approx(6.5) and r.n == 5 and r.n_seeds == 2
    assert r.seed_sd == pytest.approx(np.std([2.0, 11.0], ddof=1))
    # within-seed resampling: the interval lies within the averages of the seeds' extremes
    assert (1 + 10) / 2 <= r.lo < 6.5 < r.hi <= (3 + 12) / 2
    # NaN values are dropped; a seed with one value gives no interval (but a mean)
    r = bootstrap_ci([np.array([1.0, np.nan, 3]), np.array([5.0])], n_boot=1000)
    assert r.mean == pytest.approx((2 + 5) / 2) and np.isnan(r.lo) and np.isnan(r.hi)
    assert np.isnan(bootstrap_ci(np.array([np.nan])).mean)


def test_wilcoxon_against_scipy(rng):
    d = rng.normal(0.3, 1.0, 40)
    stat, p = wilcoxon_signed_rank(d)
    ref = sps.wilcoxon(d)
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    # a known case: five positive differences; exact two-sided p = 2 / 2^5 = 0.0625, W- = 0
    stat, p = wilcoxon_signed_rank(np.array([1.0, 2, 3, 4, 5]))
    assert stat == 0.0 and p == pytest.approx(0.0625)
    # all differences tied at zero: nothing to rank, p = 1; no data: NaN
    assert wilcoxon_signed_rank(np.zeros(7)) == (0.0, 1.0)
    assert np.isnan(wilcoxon_signed_rank(np.array([]))[1])
    # zeros are dropped (zero_method='wilcox'): same as testing the non-zero part
    assert wilcoxon_signed_rank(np.array([0, 0, 1.0, 2, 3, 4, 5]))[1] == pytest.approx(0.0625)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_with_ties_matches_scipy(seed):
    # ties and zeros in small samples: scipy runs an exact permutation test; ours must agree
    r = np.random.default_rng(seed)
    d = r.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0], size=int(r.integers(3, 14)))
    if not np.any(d):
        d[0] = 1.0
    ref = sps.wilcoxon(d, zero_method="wilcox")
    stat, p = wilcoxon_signed_rank(d)
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, abs=1e-12)


def test_holm_by_hand():
    # sorted p: 0.01, 0.03, 0.04 → × 3, 2, 1 = 0.03, 0.06, 0.04 → running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    # [0.5, 0.9] × [2, 1] = [1.0, 0.9] → running max [1.0, 1.0]; NaN stays NaN and is not counted
    out = holm([np.nan, 0.5, 0.9])
    assert np.isnan(out[0]) and out[1] == pytest.approx(1.0) and out[2] == pytest.approx(1.0)


def _table(values: dict[str, list[float]], metric: str, seeds=(1,), subgroups=None) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for model, vals in values.items():
            for i, v in enumerate(vals):
                rows.append({"model": model, "reference": "observed", "seed": seed, "condition": f"c{i}",
                             "subgroup": (subgroups or ["combo_seen2"] * len(vals))[i], metric: v})
    return pd.DataFrame(rows)


def test_paired_wins_losses_ties_by_hand():
    # mse (lower is better). model A = [1, 2, 3, 4, 5], additive = [2, 2, 1, 5, 5]
    # oriented differences (additive − A) = [1, 0, −2, 1, 0]: 2 wins, 1 loss, 2 ties; mean 0
    df = _table({"A": [1, 2, 3, 4, 5], "additive": [2, 2, 1, 5, 5]}, "mse")
    c = paired_comparison(df, ["mse"], baselines=["additive"], n_boot=1000)
    row = c[c["subgroup"] == "all"].iloc[0]
    assert (row["model"], row["baseline"], row["n"]) == ("A", "additive", 5)
    assert (row["wins"], row["losses"], row["ties"]) == (2, 1, 2)
    assert row["mean_diff"] == pytest.approx(0.0)
    assert row["p_value"] == pytest.approx(sps.wilcoxon([1.0, -2.0, 1.0]).pvalue)
    # higher-is-better metrics are oriented the other way: A = [.9, .5], additive = [.8, .6] → +.1, −.1
    df = _table({"A": [0.9, 0.5, 0.7], "additive": [0.8, 0.6, 0.7]}, "pearson_delta")
    row = paired_comparison(df, ["pearson_delta"], baselines=["additive"], n_boot=1000).iloc[0]
    assert (row["wins"], row["losses"], row["ties"]) == (1, 1, 1)


def test_paired_over_seeds_averages_conditions():
    # condition c0 in two seeds with differences +1 and −3 → averaged −1: one loss, not a win and a loss
    rows = []
    for seed, (a, b) in {1: (1.0, 2.0), 2: (5.0, 2.0)}.items():
        rows += [{"model": "A", "reference": "observed", "seed": seed, "condition": "c0", "subgroup": "x", "mse": a},
                 {"model": "additive", "reference": "observed", "seed": seed, "condition": "c0", "subgroup": "x",
                  "mse": b}]
    row = paired_comparison(pd.DataFrame(rows), ["mse"], baselines=["additive"], n_boot=1000).iloc[0]
    assert (row["n"], row["wins"], row["losses"]) == (1, 0, 1)
    assert row["mean_diff"] == pytest.approx(-1.0)


def test_paired_skips_limits_and_missing_baseline():
    df = _table({"A": [1, 2], "ceiling": [0, 0], "additive": [2, 3]}, "mse")
    c = paired_comparison(df, ["mse"], baselines=["additive", "no_change"], n_boot=1000)
    assert set(c["model"]) == {"A"} and set(c["baseline"]) == {"additive"}


def test_aggregate_by_subgroup():
    df = _table({"A": [1.0, 2, 3, 4]}, "mse", subgroups=["unseen_single", "unseen_single", "combo_seen0",
                                                           "combo_seen0"])
    s = aggregate(df, ["mse"], n_boot=1000)
    got = s.set_index("subgroup")
    assert list(s["subgroup"]) == ["all", "unseen_single", "combo_seen0"]
    assert got.loc["all", "mean"] == pytest.approx(2.5) and got.loc["all", "n_conditions"] == 4
    assert got.loc["unseen_single", "mean"] == pytest.approx(1.5)
    assert got.loc["combo_seen0", "ci_lo"] >= 3 and got.loc["combo_seen0", "ci_hi"] <= 4
