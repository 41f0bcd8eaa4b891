"""benchmarks/interaction_power.py: noise-free training doubles, the three-seed subsets and the summaries."""

from __future__ import annotations

import interaction_power as bench  # benchmarks/ is on the path (conftest)
import numpy as np
import pandas as pd
import pytest


def test_noise_free_doubles_replace_only_the_doubles_changes():
    from priorgnn.data.conditions import parse_condition
    from priorgnn.simulate import simulate

    sim = simulate("tiny", seed=0)
    data = sim.data
    wrapped = bench.NoiseFreeDoubles(data, sim)
    double = next(c for c in sim.conditions if len(parse_condition(c)) == 2)
    single = next(c for c in sim.conditions if len(parse_condition(c)) == 1)
    np.testing.assert_allclose(wrapped.summaries.delta(double), sim.truth_delta([double])[0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(data.summaries.delta(double), sim.truth_delta([double])[0])  # the data are noisy
    np.testing.assert_array_equal(wrapped.summaries.delta(single), data.summaries.delta(single))
    np.testing.assert_array_equal(wrapped.summaries.top_de(double, 5), data.summaries.top_de(double, 5))
    assert list(wrapped.genes) == list(data.genes)  # everything else is the data's own
    np.testing.assert_array_equal(wrapped.summaries.control_mean, data.summaries.control_mean)


def _per_double(effects: dict[int, float], n: int = 8) -> pd.DataFrame:
    """PriorGNN's top-20-DE MSE below additive's and scaled_additive's by ``effects[seed]`` (plus a small
    spread) on every double of a seed, in both subgroups."""
    rows = []
    for seed, gain in effects.items():
        for sub in ("combo_seen1", "combo_seen2"):
            for k in range(n):
                base = 1.0 + 0.1 * k
                for model, mse in (("additive", base), ("scaled_additive", base),
                                   ("priorgnn", base - gain - 0.01 * k)):
                    rows.append({"setting": "norman", "data_seed": seed, "model": model, "reference": "truth",
                                 "subgroup": sub, "condition": f"A{k}+B{k}_{sub}", "mse_top20_de": mse,
                                 "nonadditive_corr": 0.0})
    return pd.DataFrame(rows)


def test_subset_tests_run_the_targets_test_on_every_three_seed_subset():
    """Four seeds: 4 subsets of three. PriorGNN better on every double of seeds 0-2 and worse on every
    double of seed 3: only the subset without seed 3 shows all four comparisons."""
    per = _per_double({0: 0.2, 1: 0.2, 2: 0.2, 3: -0.5})
    tested = bench.subset_tests(per, n_boot=200)
    assert sorted(tested["seeds"].unique()) == ["0,1,2", "0,1,3", "0,2,3", "1,2,3"]
    assert len(tested) == 4 * 4  # four comparisons per subset
    per["pearson_delta"] = 0.5
    summary = bench.summarise(tested, bench.t1_per_seed(per)).iloc[0]
    assert summary["subsets"] == 4 and summary["t2_met"] == 1 and summary["seen2_additive_shown"] == 1
    # T1: seed 3's MSE is 0.5 above additive's on average (more than 0.01): 3 of 4 seeds meet it
    assert summary["seeds"] == 4 and summary["t1_met"] == 3
    good = tested[tested["seeds"] == "0,1,2"]
    assert (good["verdict"] == "better").all() and (good["wins"] == 24).all()


def test_model_means_by_hand():
    """Seed 0: two combo_seen2 doubles, seed 1: one; a combo_seen1 row must not count.
    priorgnn's MSE: seed 0 mean (0.5 + 1.5) / 2 = 1, seed 1 3, mean over seeds 2; additive's: seed 0
    (1 + 1) / 2 = 1, seed 1 2, mean 1.5; priorgnn below additive on A+B (0.5 < 1) and above on C+D and E+F."""
    rows = [(0, "A+B", "additive", 1.0), (0, "A+B", "priorgnn", 0.5), (0, "C+D", "additive", 1.0),
            (0, "C+D", "priorgnn", 1.5), (1, "E+F", "additive", 2.0), (1, "E+F", "priorgnn", 3.0)]
    per = pd.DataFrame([{"setting": "norman", "data_seed": s, "condition": c, "model": m, "subgroup": "combo_seen2",
                         "mse_top20_de": v, "nonadditive_corr": 0.1 * v} for s, c, m, v in rows]
                       + [{"setting": "norman", "data_seed": 0, "condition": "A+X", "model": "priorgnn",
                           "subgroup": "combo_seen1", "mse_top20_de": 99.0, "nonadditive_corr": 9.0}])
    out = bench.model_means(per).set_index("model")
    assert out.loc["priorgnn", "mse_top20_de"] == pytest.approx(2.0)
    assert out.loc["additive", "mse_top20_de"] == pytest.approx(1.5)
    assert out.loc["priorgnn", "nonadditive_corr"] == pytest.approx(0.2)
    assert (out.loc["priorgnn", "wins"], out.loc["priorgnn", "losses"], out.loc["priorgnn", "doubles"]) == (1, 2, 3)


def test_t1_per_seed_by_hand():
    """One seed, combo_seen2: additive Pearson Δ mean 0.8, MSE mean 0.1. PriorGNN 0.795 (≥ 0.79) and
    0.105 (≤ 0.11): met. With PriorGNN's MSE 0.12 (> 0.11): not met; with its Pearson Δ 0.78 (< 0.79): not met."""
    def frame(pd_p, mse_p):
        rows = []
        for model, pdv, mse in (("additive", (0.7, 0.9), (0.05, 0.15)), ("priorgnn", pd_p, mse_p)):
            for k in range(2):
                rows.append({"setting": "norman", "subgroup": "combo_seen2", "data_seed": 0, "model": model,
                             "condition": f"A{k}+B{k}", "pearson_delta": pdv[k], "mse_top20_de": mse[k]})
        return pd.DataFrame(rows)

    ok = bench.t1_per_seed(frame((0.79, 0.80), (0.1, 0.11))).iloc[0]
    assert ok["pearson_delta_additive"] == pytest.approx(0.8) and ok["mse_top20_de_priorgnn"] == pytest.approx(0.105)
    assert bool(ok["met"])
    assert not bool(bench.t1_per_seed(frame((0.79, 0.80), (0.1, 0.14))).iloc[0]["met"])
    assert not bool(bench.t1_per_seed(frame((0.76, 0.80), (0.1, 0.11))).iloc[0]["met"])


def test_fewer_than_three_seeds_is_refused():
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "11,11,12"])
