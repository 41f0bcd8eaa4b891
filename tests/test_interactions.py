"""Genetic-interaction scores and labels (priorgnn.interactions) on hand-constructed deltas."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from priorgnn.errors import ConfigError, DataValidationError
from priorgnn.interactions import (
    GEARS_THRESHOLDS,
    GIThresholds,
    all_pairs,
    distance_correlation,
    highly_expressed_genes,
    interaction_label,
    interaction_scores,
    rank_pair_interactions,
    score_interactions,
    theil_sen,
)


@pytest.fixture
def singles(rng):
    return rng.normal(size=300), rng.normal(size=300)


def test_exact_linear_combination_closed_form(singles):
    a, b = singles
    s = interaction_scores(a, b, 2 * a + 0.5 * b)
    # every 2-gene subset solves exactly to (2, 0.5), so the spatial median is (2, 0.5)
    assert s["c1"] == pytest.approx(2.0, abs=1e-9)
    assert s["c2"] == pytest.approx(0.5, abs=1e-9)
    assert s["magnitude"] == pytest.approx(np.sqrt(4.25), abs=1e-9)  # sqrt(2^2 + 0.5^2)
    assert s["corr_fit"] == pytest.approx(1.0, abs=1e-12)
    assert s["dominance"] == pytest.approx(np.log10(4.0), abs=1e-9)  # |log10(2 / 0.5)|
    assert s["residual_norm"] == pytest.approx(np.linalg.norm(a - 0.5 * b))  # ‖ab − a − b‖
    assert interaction_label(s) == "epistatic"  # dominance 0.60 > 0.25


def test_additive_double(singles):
    a, b = singles
    s = interaction_scores(a, b, a + b)
    assert (s["c1"], s["c2"]) == pytest.approx((1.0, 1.0), abs=1e-9)
    assert s["magnitude"] == pytest.approx(np.sqrt(2.0), abs=1e-9)
    assert s["corr_sum"] == pytest.approx(1.0, abs=1e-12)
    assert s["dominance"] == pytest.approx(0.0, abs=1e-9)
    assert s["residual_norm"] == pytest.approx(0.0, abs=1e-9)
    assert s["eq_contr"] == pytest.approx(
        min(s["dcor_first"], s["dcor_second"]) / max(s["dcor_first"], s["dcor_second"]))
    assert interaction_label(s) == "additive"
    # GEARS's reference magnitude is 1, so under its thresholds the additive double is "synergy"
    assert interaction_label(s, GEARS_THRESHOLDS) == "synergy"


@pytest.mark.parametrize("factor, label", [(1.5, "synergy"), (0.4, "suppressor"), (1.1, "additive")])
def test_magnitude_labels(singles, factor, label):
    a, b = singles
    s = interaction_scores(a, b, factor * (a + b))
    # magnitude = factor * sqrt(2): 2.12 > 1.71 (synergy), 0.57 < 1.11 (suppressor), 1.56 in band
    assert s["magnitude"] == pytest.approx(factor * np.sqrt(2), abs=1e-9)
    assert interaction_label(s) == label


def test_neomorphic_and_redundant(rng, singles):
    a, b = singles
    s = interaction_scores(a, b, rng.normal(size=a.size))
    assert s["corr_fit"] < 0.85
    assert interaction_label(s) == "neomorphic"
    b2 = a + 0.05 * rng.normal(size=a.size)  # the same phenotype as a
    s = interaction_scores(a, b2, a)  # the double is no stronger than one single
    assert s["dcor_singles"] > 0.8
    assert interaction_label(s) == "redundant"
    assert interaction_label(interaction_scores(a, b2, a + b2)) == "additive"


def test_thresholds_are_parameters(singles):
    a, b = singles
    s = interaction_scores(a, b, 1.5 * (a + b))
    assert interaction_label(s, GIThresholds(magnitude_tolerance=1.0)) == "additive"
    assert interaction_label(s, GIThresholds(neomorphic_corr_fit=1.1)) == "neomorphic"


def test_undetermined_and_opposite_signs(singles):
    z = np.zeros(10)
    assert interaction_label(interaction_scores(z, z, z)) == "undetermined"
    a, b = singles
    s = interaction_scores(a, b, a - 0.5 * b)
    # GEARS's |log10(c1/c2)| would be NaN here; |log10(|c1|/|c2|)| = log10(2)
    assert s["dominance"] == pytest.approx(np.log10(2.0), abs=1e-9)


def test_gene_subset_and_length_check(singles):
    a, b = singles
    ab = a + b
    ab[:10] += 100.0  # ruin the first ten genes
    s = interaction_scores(a, b, ab, genes=np.arange(10, a.size))
    assert s["magnitude"] == pytest.approx(np.sqrt(2), abs=1e-9)
    assert s["n_genes"] == a.size - 10
    with pytest.raises(DataValidationError, match="same genes"):
        interaction_scores(a, b[:-1], ab)


def test_theil_sen_matches_sklearn(rng):
    sklearn = pytest.importorskip("sklearn.linear_model")
    kw = dict(fit_intercept=False, max_subpopulation=1e5, max_iter=1000, random_state=1000)
    # up to 447 genes every pair is used, as in scikit-learn: identical results
    X = rng.normal(size=(300, 2))
    y = X @ np.array([1.3, -0.4]) + rng.standard_t(2, size=300) * 0.3
    X[:3] = 0.0  # singular subsets take the minimum-norm solution, as gelss does
    X[3:6] = 2.0 * X[6:9]  # proportional rows: rank-1 subsets that are not zero
    ref = sklearn.TheilSenRegressor(**kw).fit(X, y).coef_
    np.testing.assert_allclose(theil_sen(X, y), ref, rtol=0, atol=1e-10)
    # beyond that both sample 1e5 random pairs (460 genes: 105,570 pairs); only which pairs differs
    X = rng.normal(size=(460, 2))
    y = X @ np.array([2.0, 0.5]) + rng.normal(size=460) * 0.3
    ref = sklearn.TheilSenRegressor(**kw).fit(X, y).coef_
    np.testing.assert_allclose(theil_sen(X, y), ref, atol=0.02)


def test_distance_correlation_matches_dcor(rng):
    dcor = pytest.importorskip("dcor")
    x = rng.normal(size=(120, 2))
    y = x[:, 0] ** 2 + 0.3 * rng.normal(size=120)
    assert distance_correlation(x, y) == pytest.approx(dcor.distance_correlation(x, y), abs=1e-10)
    assert distance_correlation(x[:, 1], y) == pytest.approx(dcor.distance_correlation(x[:, 1], y), abs=1e-10)
    assert distance_correlation(np.ones(5), np.arange(5.0)) == 0.0  # no variance: 0, as dcor
    assert distance_correlation(np.arange(5.0), 3 * np.arange(5.0)) == pytest.approx(1.0)


def test_highly_expressed_genes():
    # control means 5, 1, 7, 7, 0: the top 3 are genes 2, 3 (tie kept by order) and 0
    np.testing.assert_array_equal(highly_expressed_genes(np.array([5, 1, 7, 7, 0.0]), 3), [0, 2, 3])
    assert highly_expressed_genes(np.arange(4.0), 1000).size == 4


def test_all_pairs():
    assert all_pairs(["B", "A", "C", "A"]) == ["A+B", "A+C", "B+C"]


def _pair_predictions(rng, genes=("A", "B", "C", "D"), n_genes=60):
    """Predictions for every single and pair of ``genes``; A+B is synergistic (3x the sum)."""
    control = rng.uniform(1, 3, n_genes)
    single = {g: rng.normal(size=n_genes) for g in genes}
    conds, deltas = [], []
    for g in genes:
        conds.append(f"{g}+ctrl")
        deltas.append(single[g])
    for c in all_pairs(genes):
        x, y = c.split("+")
        conds.append(c)
        deltas.append((3.0 if c == "A+B" else 1.0) * (single[x] + single[y]))
    delta = np.vstack(deltas)
    pred = ad.AnnData(X=(control + delta).astype(np.float32), obs=pd.DataFrame({"condition": conds}, index=conds),
                      var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    pred.layers["delta"] = delta.astype(np.float32)
    pred.uns["control_mean"] = control.astype(np.float32)
    return pred, single


def test_rank_pair_interactions(rng):
    pred, single = _pair_predictions(rng)
    table = rank_pair_interactions(pred, score="magnitude_deviation", top=None, progress=False)
    assert len(table) == 6 and list(table["rank"]) == [1, 2, 3, 4, 5, 6]
    top = table.iloc[0]
    assert top["condition"] == "A+B" and top["label"] == "synergy"
    assert top["magnitude"] == pytest.approx(3 * np.sqrt(2), rel=1e-5)
    assert set(table["label"].iloc[1:]) == {"additive"}
    assert list(rank_pair_interactions(pred, score="suppression", top=2, progress=False)["condition"])[0] != "A+B"
    # singles given separately take precedence: with all singles zero nothing is determined
    zero = {g: np.zeros(pred.n_vars) for g in single}
    assert set(rank_pair_interactions(pred, zero, top=None, progress=False)["label"]) == {"undetermined"}


def test_rank_pair_interactions_relative_nonadditive_by_hand(rng):
    """The default score: A+B is 3 × the sum of its singles, so ‖δAB − δA − δB‖ / ‖δA + δB‖ = 2; the
    other doubles are their sums (0, up to float32 rounding)."""
    pred, _ = _pair_predictions(rng)
    table = rank_pair_interactions(pred, top=None, progress=False)
    assert table.attrs["score"] == "relative_nonadditive"
    assert table["condition"].iloc[0] == "A+B"
    assert table["relative_nonadditive"].iloc[0] == pytest.approx(2.0, rel=1e-5)
    assert np.all(table["relative_nonadditive"].iloc[1:] < 1e-5)


def test_rank_pair_interactions_errors(rng):
    pred, _ = _pair_predictions(rng)
    with pytest.raises(ConfigError, match="unknown interaction score"):
        rank_pair_interactions(pred, score="nope")
    doubles_only = pred[[c for c in pred.obs_names if "ctrl" not in c]].copy()
    with pytest.raises(DataValidationError, match="no single delta"):
        rank_pair_interactions(doubles_only, progress=False)
    singles_only = pred[[c for c in pred.obs_names if "ctrl" in c]].copy()
    with pytest.raises(DataValidationError, match="no double"):
        rank_pair_interactions(singles_only, progress=False)


def test_score_interactions_table(rng, singles):
    a, b = singles
    t = score_interactions(["A+B"], (a + b)[None, :], {"A": a, "B": b})
    assert list(t[["condition", "gene_a", "gene_b", "label"]].iloc[0]) == ["A+B", "A", "B", "additive"]
    with pytest.raises(DataValidationError, match="not a double"):
        score_interactions(["A+ctrl"], a[None, :], {"A": a})
