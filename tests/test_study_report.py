"""The study report's statistics on constructed inputs: causal recovery with shared rankings, and
Holm-adjusted verdicts within a family."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from priorgnn.metrics.stats import holm, wilcoxon_signed_rank
from priorgnn.report.study import _View, _verdict, causal_tests
from priorgnn.study import _causal_rows, average_precision


def _toy_sim():
    # genes g0..g5; perturbing g0 affects g1, g2; perturbing g3 affects g4, g5
    genes = [f"g{i}" for i in range(6)]
    down = {"g0": {"g1", "g2"}, "g3": {"g4", "g5"}}
    return SimpleNamespace(simulator=SimpleNamespace(genes=genes, descendants=lambda a: down.get(a, set())))


def test_causal_rows_flag_a_shared_ranking_and_score_the_target_agnostic_one():
    sim = _toy_sim()
    conds = ["g0+ctrl", "g3+ctrl"]
    # a 'mean'-style model: one vector for both targets
    shared = np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    rows = _causal_rows(sim, conds, np.tile(shared, (2, 1)), "mean")
    assert rows["ranking_identical"].all() and rows["ranking_agreement"].iloc[0] == pytest.approx(1.0)
    # its AUPRC for g0 (genes g1..g5 ranked 0.4, 0.3, 0.2, 0.1, 0.05; positives g1, g2): 1
    assert rows.loc[0, "auprc"] == pytest.approx(1.0)
    # the target-agnostic ranking for g0 is the g3 row without g3's own change: g1, g2, g4, g5 (and g3 at 0)
    assert rows.loc[0, "auprc_agnostic"] == pytest.approx(1.0)
    # a target-specific model: each target's own downstream genes first, the own gene changes most
    delta = np.array([[9.0, 1.0, 0.9, 0.0, 0.1, 0.2],
                      [0.0, 0.1, 0.2, 9.0, 1.0, 0.9]])
    rows = _causal_rows(sim, conds, delta, "specific")
    assert not rows["ranking_identical"].any()
    assert rows["auprc"].tolist() == pytest.approx([1.0, 1.0])
    # for g0 the agnostic score is the g3 row with g3's own change masked: g1 .1, g2 .2, g3 0, g4 1, g5 .9;
    # g3's own 9.0 must not count (it says nothing about g0's targets)
    labels_g0 = np.array([1, 1, 0, 0, 0])  # g1, g2, g3, g4, g5
    expected = average_precision(np.array([0.1, 0.2, 0.0, 1.0, 0.9]), labels_g0)
    assert rows.loc[0, "auprc_agnostic"] == pytest.approx(expected)
    assert expected == pytest.approx((1 / 3 + 2 / 4) / 2)
    # the two targets' rankings of g1, g2, g4, g5 are reversed: agreement −1 (Spearman of 1, .9, .1, .2 vs .1, .2, 1, .9)
    assert rows["ranking_agreement"].iloc[0] == pytest.approx(-1.0)


def _causal_frame(rng, n=12):
    rows = []
    for seed in (0, 1):
        for c in range(n):
            base = {"setting": "base", "seed": seed, "condition": f"c{c}", "positive_rate": 0.1}
            # the mean model ranks every target the same way, well above the positive rate
            rows.append({**base, "model": "mean", "auprc": 0.3 + rng.normal(0, 0.01), "auprc_agnostic": 0.3,
                         "ranking_identical": True, "ranking_agreement": 1.0})
            # a model that is above chance and beats its own shared ranking
            rows.append({**base, "model": "good", "auprc": 0.5 + rng.normal(0, 0.01), "auprc_agnostic": 0.3,
                         "ranking_identical": False, "ranking_agreement": 0.2})
            # a model above chance through a ranking it gives every target (its agnostic ranking does as well)
            v = 0.3 + rng.normal(0, 0.01)
            rows.append({**base, "model": "generic", "auprc": v, "auprc_agnostic": v + rng.normal(0, 0.001),
                         "ranking_identical": False, "ranking_agreement": 0.999})
            # a model at chance
            rows.append({**base, "model": "chance", "auprc": 0.1 + rng.normal(0, 0.01), "auprc_agnostic": 0.1,
                         "ranking_identical": False, "ranking_agreement": 0.2})
    return pd.DataFrame(rows)


def test_causal_tests_never_call_a_shared_ranking_above_chance(rng):
    out = causal_tests(_causal_frame(rng), n_boot=200).set_index("model")
    m = out.loc["mean"]
    assert m["above_chance"] > 0.15 and m["above_chance_lo"] > 0  # numerically far above the positive rate ...
    assert m["verdict"] == "ranking identical across targets; not a model-specific ranking"  # ... yet no verdict
    assert np.isnan(m["p_value"]) and np.isnan(m["p_holm"])
    assert out.loc["good", "verdict"] == "target-specific, above chance"
    assert out.loc["chance", "verdict"] == "not shown above chance"
    assert out.loc["generic", "verdict"] == "above chance, but not beyond its own target-agnostic ranking"
    # tables without the agnostic AUPRC give no verdict
    old = causal_tests(_causal_frame(rng).drop(columns="auprc_agnostic"), n_boot=100).set_index("model")
    assert old.loc["good", "verdict"].startswith("not assessed") and np.isnan(old.loc["good", "p_holm"])
    # Holm over the two tests of each tested model (6 p-values), by hand
    tested = ["good", "generic", "chance"]
    p = [out.loc[m, "p_value"] for m in tested] + [out.loc[m, "p_value_specific"] for m in tested]
    adj = holm(p)
    assert out.loc["good", "p_holm"] == pytest.approx(adj[0])
    assert out.loc["chance", "p_holm_specific"] == pytest.approx(adj[5])
    # the Wilcoxon p of the 'good' model: 12 conditions, all positive after averaging the seeds
    f = _causal_frame(np.random.default_rng(0))
    g = f[f["model"] == "good"]
    d = (g["auprc"] - g["positive_rate"]).groupby(g["condition"]).mean().to_numpy()
    assert wilcoxon_signed_rank(d)[1] == pytest.approx(2 / 2**12)


def _per_condition(rng, effects: dict[str, float], n=20):
    """Per-condition pearson_delta vs truth for a few models; ``effects`` shifts each model."""
    rows = []
    for seed in (0, 1, 2):
        base = rng.normal(0.6, 0.1, n)
        for model, shift in effects.items():
            vals = base + shift + rng.normal(0, 0.005, n)
            for i in range(n):
                rows.append({"setting": "base", "model": model, "reference": "truth", "seed": seed,
                             "condition": f"c{i}", "subgroup": "unseen_single", "pearson_delta": vals[i]})
    return pd.DataFrame(rows)


def test_view_adjusts_within_each_family_and_the_verdict_uses_the_adjusted_p(rng):
    df = _per_condition(rng, {"a": 0.0, "b": -0.004, "c": 0.0, "d": 0.0005, "e": -0.0002})
    view = _View(SimpleNamespace(), pd.DataFrame(), df, n_boot=300)
    fam = "toy family"
    keys = [("a", m) for m in ("b", "c", "d", "e")]
    for _ in range(2):  # the report's two passes: register, adjust, render again
        recs = [view.compare("base", x, y, "pearson_delta", "truth", "all", family=fam) for x, y in keys]
        other = view.compare("base", "a", "b", "pearson_delta", "truth", "all", family="another family")
        view.finalize()
    recs = [view.compare("base", x, y, "pearson_delta", "truth", "all", family=fam) for x, y in keys]
    raw = [r["p_value"] for r in recs]
    assert [r["p_holm"] for r in recs] == pytest.approx(list(holm(raw)))
    assert all(r["m_family"] == 4 for r in recs)
    # the same test alone in its own family is not adjusted
    other = view.compare("base", "a", "b", "pearson_delta", "truth", "all", family="another family")
    assert other["p_holm"] == pytest.approx(other["p_value"]) and other["m_family"] == 1
    # a = b + 0.004 on 60 paired conditions: real even after adjustment
    assert _verdict(recs[0]) == "better"
    # tests.csv rows carry the family, raw and adjusted p and the verdict
    t = view.tests_table()
    assert set(t["family"]) == {fam, "another family"}
    assert (t["p_holm"] >= t["p_value"] - 1e-15).all()
    assert {"verdict", "estimate", "ci_lo", "ci_hi", "m_family"} <= set(t.columns)


def test_view_trend_registers_in_its_family(rng):
    # the metric rises with the level (a, b, c at levels 0, 0.5, 1) in every seed
    df = _per_condition(rng, {"lo": 0.0, "mid": 0.02, "hi": 0.04})
    view = _View(SimpleNamespace(), pd.DataFrame(), df, n_boot=300)
    pts = [(0.0, "base", "lo"), (0.5, "base", "mid"), (1.0, "base", "hi")]
    for _ in range(2):
        rec = view.trend(pts, "pearson_delta", "truth", "unseen_single", family="axis", label="level")
        view.finalize()
    rec = view.trend(pts, "pearson_delta", "truth", "unseen_single", family="axis", label="level")
    assert rec["estimate"] == pytest.approx(1.0)
    # three seeds with three levels: p = 2 / 6**3, alone in its family
    assert rec["p_value"] == pytest.approx(2 / 216) and rec["p_holm"] == pytest.approx(2 / 216)
    assert _verdict(rec) == "better"
