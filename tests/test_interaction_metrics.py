"""Interaction metrics (priorgnn.metrics.interactions) against hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest

from priorgnn.errors import DataValidationError
from priorgnn.metrics import MetricContext, compute_condition_metrics, get_metric
from priorgnn.metrics.interactions import (
    corr_or_zero,
    gi_label_accuracy,
    interaction_metrics,
    nonadditive_correlation,
    precision_at_k,
    relative_nonadditive_size,
    top_k_pairs,
)

G = 50


@pytest.fixture
def truth(rng):
    """Four doubles: true singles, and true doubles with a random non-additive part."""
    ta, tb = rng.normal(size=(4, G)), rng.normal(size=(4, G))
    t_ab = ta + tb + 0.5 * rng.normal(size=(4, G))
    ma, mb = ta + 0.1 * rng.normal(size=(4, G)), tb + 0.1 * rng.normal(size=(4, G))  # measured singles
    return ta, tb, t_ab, ma, mb


def test_nonadditive_corr_is_zero_for_additive(truth):
    ta, tb, t_ab, ma, mb = truth
    # the additive prediction as a model stores it (float32): its part is rounding error only
    additive = (ma + mb).astype(np.float32)
    per, pooled = nonadditive_correlation(additive, ma, mb, t_ab, ta, tb)
    assert np.all(per == 0.0) and pooled == 0.0


def test_nonadditive_corr_is_one_for_an_oracle(truth):
    ta, tb, t_ab, _, _ = truth
    # an oracle predicts the true double and was given the true singles
    per, pooled = nonadditive_correlation(t_ab, ta, tb, t_ab, ta, tb)
    np.testing.assert_allclose(per, 1.0, atol=1e-12)
    assert pooled == pytest.approx(1.0, abs=1e-12)
    # the opposite interaction scores -1
    per, _ = nonadditive_correlation(2 * (ta + tb) - t_ab, ta, tb, t_ab, ta, tb)
    np.testing.assert_allclose(per, -1.0, atol=1e-12)


def test_nonadditive_corr_by_hand_and_exclusion():
    # singles 0: part of the truth t = [1, 2, 3, 100]; predicted part p = [1, 2, 4, -50]
    t = np.array([1.0, 2, 3, 100])
    p = np.array([1.0, 2, 4, -50])
    z = np.zeros(4)
    per, _ = nonadditive_correlation(p[None], z[None], z[None], t[None], z[None], z[None], exclude=[[3]])
    # over the first three genes: p − p̄ = [-4/3, -1/3, 5/3], t − t̄ = [-1, 0, 1];
    # Σ = 4/3 + 5/3 = 3, |p| = sqrt(42/9), |t| = sqrt(2) → 3 / sqrt(84/9) = 0.98198
    assert per[0] == pytest.approx(3 / np.sqrt(84 / 9), abs=1e-12)
    with pytest.raises(DataValidationError, match="one per double"):
        nonadditive_correlation(p[None], z[None], z[None], t[None], z[None], z[None], exclude=[[3], [1]])


def test_corr_or_zero_conventions():
    assert corr_or_zero(np.zeros(5), np.arange(5.0)) == 0.0
    assert corr_or_zero(np.ones(5), np.arange(5.0)) == 0.0
    assert np.isnan(corr_or_zero(np.array([1.0, np.nan, 2.0]), np.arange(3.0)))
    assert corr_or_zero(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)


def test_precision_at_k_by_hand_on_four_pairs():
    scores = {"A+B": 0.9, "A+C": 0.5, "A+D": 0.5, "B+C": 0.1}
    truth = {"A+B", "A+D"}
    assert precision_at_k(scores, truth, 1) == 1.0  # [A+B]
    # top 2: A+B, then one of the tied A+C / A+D (each with probability 1/2): (1 + 1/2) / 2
    assert precision_at_k(scores, truth, 2) == pytest.approx(0.75)
    assert precision_at_k(scores, truth, 3) == pytest.approx(2 / 3)  # A+B, A+C, A+D
    assert precision_at_k(scores, truth, 4) == pytest.approx(0.5)
    # a ranking that scores every pair alike gets the rate of interacting pairs, 2 / 4
    flat = dict.fromkeys(scores, 1.414)
    assert precision_at_k(flat, truth, 1) == pytest.approx(0.5)
    # differences at the level of float32 rounding are ties, not a ranking
    noisy = {c: np.sqrt(2) + e for c, e in zip(scores, [3e-8, -1e-8, 2e-8, 0.0])}
    assert precision_at_k(noisy, truth, 1) == pytest.approx(0.5)
    assert precision_at_k(noisy, truth, 1, tol=0.0) == 1.0  # without the tolerance: A+B first
    # NaN scores come last
    assert precision_at_k({"A+B": np.nan, "A+C": 0.2, "A+D": 0.1, "B+C": 0.0}, truth, 2) == pytest.approx(0.5)
    with pytest.raises(DataValidationError, match="between 1 and the number of pairs"):
        precision_at_k(scores, truth, 5)


def test_top_k_pairs_keeps_ties():
    scores = {"A+B": 0.9, "A+C": 0.5, "A+D": 0.5, "B+C": 0.1, "B+D": np.nan}
    assert top_k_pairs(scores, 1) == {"A+B"}
    assert top_k_pairs(scores, 2) == {"A+B", "A+C", "A+D"}
    assert top_k_pairs(scores, 9) == {"A+B", "A+C", "A+D", "B+C"}


def test_gi_label_accuracy_by_hand():
    pred = ["synergy", "additive", "neomorphic", "epistatic"]
    true = ["synergy", "suppressor", "undetermined", "epistatic"]
    assert gi_label_accuracy(pred, true) == pytest.approx(2 / 3)  # the undetermined double is left out
    assert np.isnan(gi_label_accuracy(["additive"], ["undetermined"]))


def test_interaction_metrics_additive_and_oracle(rng):
    # true doubles f · (δA + δB): every 2-gene Theil–Sen subset solves to (f, f), so magnitude f·√2
    factors = np.array([0.4, 1.1, 1.5, 2.0])
    genes = ["A", "B", "C", "D", "E"]
    singles = {g: rng.normal(size=G) for g in genes}
    doubles = ["A+B", "A+C", "B+D", "C+E"]
    pairs = [d.split("+") for d in doubles]
    true = np.stack([f * (singles[a] + singles[b]) for f, (a, b) in zip(factors, pairs)])
    additive = np.stack([singles[a] + singles[b] for a, b in pairs])
    table, summary = interaction_metrics(doubles, additive, singles, true, singles)
    np.testing.assert_allclose(table["pred_magnitude"], np.sqrt(2), atol=1e-9)
    np.testing.assert_allclose(table["magnitude_abs_error"], np.abs(factors - 1) * np.sqrt(2), atol=1e-9)
    assert summary["magnitude_abs_error"] == pytest.approx(np.mean(np.abs(factors - 1)) * np.sqrt(2), abs=1e-9)
    assert summary["nonadditive_corr_mean"] == 0.0 and summary["nonadditive_corr_pooled"] == 0.0
    assert np.isnan(summary["magnitude_spearman"])  # a constant prediction has no rank order
    # labels: suppressor, additive, synergy, synergy against additive everywhere → 1 of 4
    assert list(table["true_label"]) == ["suppressor", "additive", "synergy", "synergy"]
    assert summary["gi_label_accuracy"] == pytest.approx(0.25)
    table, summary = interaction_metrics(doubles, true, singles, true, singles)
    assert summary["gi_label_accuracy"] == 1.0 and summary["magnitude_abs_error"] == pytest.approx(0, abs=1e-9)
    assert summary["magnitude_spearman"] == pytest.approx(1.0)
    # the oracle's non-additive part is the true one, (f - 1)·(δA + δB): 1 per double
    np.testing.assert_allclose(table["nonadditive_corr"], 1.0, atol=1e-12)


def test_registered_per_condition_metrics():
    # singles δA = [1, 0, 2], δB = [0, 1, 1] (every 2-gene subset regular: Theil–Sen is exact)
    a, b = np.array([1.0, 0, 2]), np.array([0.0, 1, 1])
    ref = 1.5 * (a + b)  # reference double: magnitude 1.5·√2
    ctx = MetricContext(conditions=["A+B"], control=np.zeros(3), de_idx=np.array([[0, 1, 2]]),
                        expressed_idx=np.arange(3), gi_singles={0: (a, b)})
    names = ["nonadditive_corr", "gi_magnitude_abs_error"]
    additive = compute_condition_metrics((a + b)[None].astype(np.float32), ref[None], ctx, metrics=names)
    assert additive["nonadditive_corr"].iloc[0] == 0.0
    assert additive["gi_magnitude_abs_error"].iloc[0] == pytest.approx(0.5 * np.sqrt(2), abs=1e-9)
    oracle = compute_condition_metrics(ref[None], ref[None], ctx, metrics=names)
    assert oracle["nonadditive_corr"].iloc[0] == pytest.approx(1.0)
    assert oracle["gi_magnitude_abs_error"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert get_metric("nonadditive_corr").higher_is_better and not get_metric("gi_magnitude_abs_error").higher_is_better
    assert get_metric("nonadditive_corr").scope == "excl_target"
    # a double without measured singles is not scored
    no_gi = MetricContext(conditions=["A+B"], control=np.zeros(3), de_idx=np.array([[0, 1, 2]]),
                          expressed_idx=np.arange(3))
    assert compute_condition_metrics(ref[None], ref[None], no_gi, metrics=names).isna().all().all()


def test_relative_nonadditive_size_by_hand():
    a, b = np.array([3.0, 0, 9]), np.array([0.0, 4, 9])
    # sum [3, 4, 18]; double [3, 4, 0]: part [0, 0, -18]; without gene 2: 0 / 5
    double = np.array([[3.0, 4, 0], [6.0, 8, 18], [3.0, 4, 18]])
    sizes = relative_nonadditive_size(double, np.tile(a, (3, 1)), np.tile(b, (3, 1)), exclude=[[2], [2], [2]])
    # part [3, 4] / sum [3, 4] → 1 for the doubled one; the additive one 0
    np.testing.assert_allclose(sizes, [0.0, 1.0, 0.0])
    full = relative_nonadditive_size(double[:1], a, b)
    assert full[0] == pytest.approx(18 / np.sqrt(9 + 16 + 324))
    assert np.isnan(relative_nonadditive_size(np.ones(3), np.zeros(3), np.zeros(3))[0])


def test_nonadditive_corr_against_the_truth_takes_the_prediction_beyond_the_measured_singles(tmp_path):
    """Against the simulator's truth, a prediction's non-additive part is taken beyond the *measured*
    singles (what a model adds up) and the truth's beyond the true singles: additive then scores
    exactly 0, and a prediction that adds the true non-additive part to the measured sum scores 1."""
    from priorgnn.data.conditions import parse_condition
    from priorgnn.data.splits import make_split
    from priorgnn.metrics import evaluate_seed, predict_conditions
    from priorgnn.models import get_model_class
    from priorgnn.simulate import simulate

    sim = simulate("tiny", seed=0, out=tmp_path / "sim")
    split = make_split(sim.conditions, "combo", seed=0)
    s = sim.data.summaries
    add = get_model_class("additive")().fit(sim.data, split)
    delta, control = predict_conditions(add, split.test, sim.data.genes, progress=False)
    oracle = delta.copy()
    for i, c in enumerate(split.test):
        g = parse_condition(c)
        if len(g) == 2 and all(f"{x}+ctrl" in split.train for x in g):
            t = sim.truth_delta([c, f"{g[0]}+ctrl", f"{g[1]}+ctrl"])
            oracle[i] = s.delta(f"{g[0]}+ctrl") + s.delta(f"{g[1]}+ctrl") + (t[0] - t[1] - t[2])
    table, _ = evaluate_seed(sim.data, split, {"additive": (delta, control), "oracle": (oracle, control)},
                             seed=0, metrics=["nonadditive_corr"], simulation=sim, ceiling=False)
    truth = table[(table["reference"] == "truth") & table["nonadditive_corr"].notna()]
    assert len(truth)
    assert (truth.loc[truth.model == "additive", "nonadditive_corr"] == 0).all()
    np.testing.assert_allclose(truth.loc[truth.model == "oracle", "nonadditive_corr"], 1.0, atol=1e-5)
