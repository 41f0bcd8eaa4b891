"""benchmarks/interaction_targets.py: the room the truth leaves above additive, by hand."""

from __future__ import annotations

import interaction_targets as bench  # benchmarks/ is on the path (conftest)
import numpy as np
import pytest


def test_room_terms_by_hand():
    """Two scored genes (the third is left out):
    additive: (1 + 0 − 0.5)² = 0.25 and (0 + 1 − 1.2)² = 0.04, mean 0.145;
    true non-additive part: (0.5 − 0.9 − 0)² = 0.16 and (1.2 − 0 − 1.2)² = 0, mean 0.08;
    floor, the singles' error: (0.1 + 0)² = 0.01 and (0 − 0.2)² = 0.04, mean 0.025."""
    obs_a, obs_b = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.0])
    true_a, true_b, true_ab = np.array([0.9, 0.0, 2.0]), np.array([0.0, 1.2, 0.0]), np.array([0.5, 1.2, 9.0])
    out = bench.room_terms(obs_a, obs_b, true_a, true_b, true_ab, np.array([0, 1]))
    assert out == pytest.approx({"additive": 0.145, "nonadditive": 0.08, "floor": 0.025})
    # with exactly measured singles the floor is 0 and additive's error is the non-additive part
    exact = bench.room_terms(true_a, true_b, true_a, true_b, true_ab, np.array([0, 1]))
    assert exact["floor"] == 0.0 and exact["additive"] == pytest.approx(exact["nonadditive"])


def test_rule_ceiling_is_one_for_a_rule_of_the_singles_and_low_for_pair_specific_noise():
    """A truth built by a rule of the singles (buffering of shared targets, 0.5 of the overlap, plus a
    product term) is recovered exactly: the ceiling is 1 on every double. A non-additive part unrelated
    to the singles leaves the in-sample fit of 7 coefficients over thousands of genes near 0."""
    from priorgnn.models.interaction_baselines import overlap_terms

    rng = np.random.default_rng(0)
    G = 600
    truths, noise = [], []
    for k in range(5):
        a, b = rng.normal(size=G), rng.normal(size=G) * 0.5
        keep = np.ones(G, dtype=bool)
        keep[[k]] = False
        feats = bench.rule_features(a, b, keep)
        big, small = feats[:, 0], feats[:, 1]
        assert np.array_equal(feats[:, 2:4], np.stack(overlap_terms(big, small), axis=1))
        ab = a + b - 0.5 * feats[:, 2] + 0.2 * big * small
        truths.append((a, b, ab, [k]))
        noise.append((a, b, a + b + rng.normal(size=G), [k]))
    np.testing.assert_allclose(bench.rule_ceiling(truths), 1.0, atol=1e-9)
    low = bench.rule_ceiling(noise)
    assert np.all(np.abs(low) < 0.15)


def test_rule_features_order_the_singles_by_effect_off_the_perturbed_genes():
    a = np.array([10.0, 0.1, 0.1])  # large only on gene 0, a perturbed gene
    b = np.array([0.0, 1.0, 1.0])
    keep = np.array([False, True, True])
    f = bench.rule_features(a, b, keep)
    np.testing.assert_array_equal(f[:, 0], b)  # b is the larger off the perturbed gene
    np.testing.assert_array_equal(f[:, 1], a)
    np.testing.assert_allclose(f[:, 4], a * b)
    np.testing.assert_allclose(f[:, 5], np.sign(b) * b ** 2)


def test_all_genes_line_reports_the_trade_off_from_the_per_double_means():
    """Two combo_seen2 doubles per model (a combo_seen1 row must not count): means worked out by hand."""
    import pandas as pd

    rows = []
    for model, nac, mse in (("priorgnn", (0.1, 0.2), (0.08, 0.10)), ("priorgnn_all_genes", (0.3, 0.4), (0.09, 0.13)),
                            ("additive", (0.0, 0.0), (0.10, 0.12))):
        for k in range(2):
            rows.append({"model": model, "subgroup": "combo_seen2", "nonadditive_corr": nac[k], "mse_top20_de": mse[k]})
    rows.append({"model": "priorgnn_all_genes", "subgroup": "combo_seen1", "nonadditive_corr": -9.0, "mse_top20_de": 9.0})
    text = " ".join(bench._all_genes_line(pd.DataFrame(rows)))
    assert "`nonadditive_corr` 0.350 (T3 met; the default 0.150)" in text
    assert "0.1100 against the default's 0.0900 and `additive`'s 0.1100" in text
    assert bench._all_genes_line(pd.DataFrame(rows[:2])) == []
