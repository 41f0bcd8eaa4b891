"""Per-condition metrics: hand-computed 3-gene examples, the oracle, the ceiling and the registry."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests._synth import synth_lognorm
from priorgnn.data.io import from_anndata
from priorgnn.data.splits import make_split
from priorgnn.errors import ConfigError, DataValidationError
from priorgnn.metrics import (
    DEFAULT_METRICS,
    MetricContext,
    compute_condition_metrics,
    get_metric,
    metric_names,
    noise_ceiling,
    rowwise_pearson,
    split_half_means,
)
from priorgnn.metrics.core import _top_k_inclusion

# The 3-gene example used by most tests:
#   control c = [1, 2, 3]
#   reference r = [2, 2, 1]      -> δr = r − c = [1, 0, −2]
#   prediction p = [1.5, 2.5, 2] -> δp = p − c = [0.5, 0.5, −1]
C3 = np.array([1.0, 2.0, 3.0])
R3 = np.array([[2.0, 2.0, 1.0]])
P3 = np.array([[1.5, 2.5, 2.0]])


def ctx3(de=(0, 1, 2), mu=None, **kw) -> MetricContext:
    return MetricContext(conditions=["A+ctrl"], control=C3, de_idx=np.array([de]),
                         expressed_idx=np.arange(3), perturbed_mean=mu, **kw)


def one(metric: str, ctx=None, pred=P3, ref=R3) -> float:
    t = compute_condition_metrics(pred, ref, ctx or ctx3(), metrics=[metric])
    return float(t[metric].iloc[0])


def test_mse_3_genes():
    # p − r = [−0.5, 0.5, 1]; mean of squares = (0.25 + 0.25 + 1) / 3 = 0.5
    assert one("mse") == pytest.approx(0.5)


def test_mse_top20_de_3_genes():
    # DE genes {0, 2} (−1 pads the list): (0.25 + 1) / 2 = 0.625
    assert one("mse_top20_de", ctx3(de=(0, 2, -1))) == pytest.approx(0.625)
    assert one("mse_top20_de", ctx3(de=(0, 1, 2))) == pytest.approx(0.5)


def test_pearson_delta_3_genes():
    # δp = [0.5, 0.5, −1] (mean 0); δr = [1, 0, −2] (mean −1/3) → centred [4/3, 1/3, −5/3]
    # Σ xy = 0.5·4/3 + 0.5·1/3 + 1·5/3 = 2.5;  Σx² = 1.5;  Σy² = 42/9 = 14/3
    # r = 2.5 / sqrt(1.5 · 14/3) = 2.5 / sqrt(7)
    assert one("pearson_delta") == pytest.approx(2.5 / np.sqrt(7))


def test_pearson_delta_top20_de_3_genes():
    # all three genes DE: as pearson_delta; DE {0, 2}: two points [0.5, −1] vs [1, −2] → r = 1
    assert one("pearson_delta_top20_de") == pytest.approx(2.5 / np.sqrt(7))
    assert one("pearson_delta_top20_de", ctx3(de=(0, 2, -1))) == pytest.approx(1.0)


def test_direction_top20_de_3_genes():
    # signs δp = [+, +, −], δr = [+, 0, −]: right, wrong, right → 2/3 (GEARS compares np.sign exactly)
    assert one("direction_top20_de") == pytest.approx(2 / 3)


def test_l2_top1000_expressed_3_genes():
    # fewer than 1,000 genes: all of them; sqrt(0.25 + 0.25 + 1) = sqrt(1.5)
    assert one("l2_top1000_expressed") == pytest.approx(np.sqrt(1.5))
    # only the two most expressed genes {1, 2}: sqrt(0.25 + 1)
    ctx = ctx3()
    ctx.expressed_idx = np.array([1, 2])
    assert one("l2_top1000_expressed", ctx) == pytest.approx(np.sqrt(1.25))


def test_pearson_delta_vs_perturbed_mean_3_genes():
    # μ = [1, 2, 0]: p − μ = [0.5, 0.5, 2] (mean 1 → [−0.5, −0.5, 1]);
    # r − μ = [1, 0, 1] (mean 2/3 → [1/3, −2/3, 1/3]); Σxy = −1/6 + 1/3 + 1/3 = 1/2;
    # Σx² = 1.5, Σy² = 2/3 → r = 0.5 / sqrt(1) = 0.5
    assert one("pearson_delta_vs_perturbed_mean", ctx3(mu=np.array([1.0, 2.0, 0.0]))) == pytest.approx(0.5)
    assert np.isnan(one("pearson_delta_vs_perturbed_mean", ctx3(mu=None)))


def _disc_ctx(exclude=None):
    return MetricContext(conditions=["A+ctrl", "B+ctrl", "C+ctrl"], control=np.zeros(3),
                         de_idx=np.tile([0, 1, 2], (3, 1)), expressed_idx=np.arange(3),
                         exclude_idx=exclude or [])


def test_discrimination_score_3_genes():
    # control 0, so means are changes. References: R0 = [1,0,0], R1 = [0,1,0], R2 = [0,0,1].
    # P0 = [.9,0,0]: L1 to R0, R1, R2 = .1, 1.9, 1.9 → own closest, rank 0 → 1 − 0/3 = 1
    # P1 = [1,0,0]:  to R0, R1, R2 = 0, 2, 2 → one closer, one tie (half) → rank 1.5 → 1 − 1.5/3 = 0.5
    # P2 = [0,0,1]:  own distance 0 → 1
    ref = np.eye(3)
    pred = np.array([[0.9, 0, 0], [1, 0, 0], [0, 0, 1.0]])
    t = compute_condition_metrics(pred, ref, _disc_ctx(), metrics=["discrimination_score_l1"])
    np.testing.assert_allclose(t["discrimination_score_l1"], [1.0, 0.5, 1.0])
    # leaving out B's own gene (index 1) for B: distances 0, 1, 2 → one closer → 1 − 1/3
    ex = [np.array([0]), np.array([1]), np.array([2])]
    t = compute_condition_metrics(pred, ref, _disc_ctx(ex), metrics=["discrimination_score_l1"])
    assert t["discrimination_score_l1"].iloc[1] == pytest.approx(2 / 3)


def test_top_k_inclusion_and_overlap():
    # |x| = [3, 1, 2] with k = 2: the top two are genes 0 and 2
    np.testing.assert_allclose(_top_k_inclusion(np.array([[3.0, -1.0, 2.0]]), 2), [[1, 0, 1]])
    # all tied (no change predicted): each gene is in the top 2 with probability 2/3
    np.testing.assert_allclose(_top_k_inclusion(np.zeros((1, 3)), 2), [[2 / 3] * 3])
    # 3 genes: k = min(20, 3) = 3, so any prediction overlaps fully
    assert one("overlap_top20_delta") == pytest.approx(1.0)
    # 22 genes: reference top 20 = genes 0..19 (|δr| = 22..3); the prediction swaps genes 18, 19
    # for 20, 21 → 18 of 20 shared = 0.9; predicting no change: expected overlap 20/22
    G = 22
    ref_d = np.arange(G, 0, -1.0)[None, :]
    pred_d = ref_d.copy()
    pred_d[0, [18, 19, 20, 21]] = pred_d[0, [20, 21, 18, 19]]
    ctx = MetricContext(conditions=["A+ctrl"], control=np.zeros(G), de_idx=np.arange(20)[None, :],
                        expressed_idx=np.arange(G))
    t = compute_condition_metrics(pred_d, ref_d, ctx, metrics=["overlap_top20_delta"])
    assert t["overlap_top20_delta"].iloc[0] == pytest.approx(0.9)
    t = compute_condition_metrics(np.zeros((1, G)), ref_d, ctx, metrics=["overlap_top20_delta"])
    assert t["overlap_top20_delta"].iloc[0] == pytest.approx(20 / 22)


def test_gi_label_match_3_genes():
    # singles δA = [1, 0, 2], δB = [0, 1, 1]; every 2-gene subset is regular, so Theil–Sen is exact.
    # Reference double δA + δB = [1, 1, 3]: c = (1, 1), magnitude √2 (in the additive band
    # [√2 − 0.3, √2 + 0.3]), corr_fit 1, dominance 0 → "additive".
    # Prediction δA + δB → "additive" (match 1); 2·δA + 0.5·δB → c = (2, 0.5), dominance
    # log10(4) = 0.60 > 0.25 → "epistatic" (match 0). The single (row 1) gets no label (NaN).
    a, b = np.array([1.0, 0, 2]), np.array([0.0, 1, 1])
    ctx = MetricContext(conditions=["A+B", "A+ctrl"], control=np.zeros(3), de_idx=np.tile([0, 1, 2], (2, 1)),
                        expressed_idx=np.arange(3), gi_singles={0: (a, b)})
    ref = np.vstack([a + b, a])
    for pred_double, match, label in ((a + b, 1.0, "additive"), (2 * a + 0.5 * b, 0.0, "epistatic")):
        t = compute_condition_metrics(np.vstack([pred_double, a]), ref, ctx, metrics=["gi_label_match"])
        assert t["gi_label_match"].iloc[0] == match
        assert np.isnan(t["gi_label_match"].iloc[1])
        assert (t["gi_label_ref"].iloc[0], t["gi_label_pred"].iloc[0]) == ("additive", label)


def test_pearson_undefined_is_zero_as_in_gears():
    # the no-change prediction has a constant (zero) change: GEARS sets the undefined correlation to 0
    assert one("pearson_delta", pred=C3[None, :]) == 0.0
    assert rowwise_pearson(np.ones((1, 3)), np.array([[1.0, 2, 3]]))[0] == 0.0


def test_shape_errors():
    with pytest.raises(DataValidationError, match="conditions"):
        compute_condition_metrics(np.zeros((2, 3)), np.zeros((2, 3)), ctx3())
    with pytest.raises(ConfigError, match="unknown metric"):
        compute_condition_metrics(P3, R3, ctx3(), metrics=["nope"])


def test_registry():
    assert metric_names()[: len(DEFAULT_METRICS)] == list(DEFAULT_METRICS)
    for name in DEFAULT_METRICS:
        spec = get_metric(name)
        assert spec.best_value in (0.0, 1.0)
        assert spec.description and spec.source and spec.func.__doc__
    mse, pear = get_metric("mse"), get_metric("pearson_delta")
    assert not mse.higher_is_better and pear.higher_is_better
    assert mse.orient(2.0 - 1.0) == -1.0 and pear.orient(0.9 - 0.5) == pytest.approx(0.4)
    assert mse.best_indices([0.3, 0.1, 0.1, np.nan]) == [1, 2]
    assert pear.best_index([np.nan, 0.2, 0.7]) == 2 and pear.best_index([np.nan]) is None


# -- on data ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_split():
    a = synth_lognorm(n_genes=30, cells=24, ctrl_cells=80, seed=3)
    data = from_anndata(a)
    split = make_split(data.conditions, "simulation", seed=1, require_subgroups=())
    return data, split


def test_context_from_data(data_split):
    data, split = data_split
    conds = split.test
    ctx = MetricContext.from_data(data, split, conds)
    s = data.summaries
    for i, c in enumerate(conds):
        np.testing.assert_array_equal(ctx.de_idx[i], s.top_de(c, 20))
        assert set(ctx.exclude_idx[i]) == {data.gene_index[g] for g in c.split("+") if g != "ctrl"}
    train = [c for c in split.train if c != "ctrl"]
    np.testing.assert_allclose(ctx.perturbed_mean, np.mean([s.mean(c) for c in train], axis=0))
    for i in ctx.gi_singles:
        assert all(f"{g}+ctrl" in split.train for g in conds[i].split("+"))
    with pytest.raises(DataValidationError, match="ctrl"):
        MetricContext.from_data(data, split, ["ctrl"])


def test_oracle_reaches_best_values(data_split):
    data, split = data_split
    conds = [c for c in data.perturbations]
    ctx = MetricContext.from_data(data, split, conds)
    obs = np.stack([data.summaries.mean(c) for c in conds]).astype(np.float64)
    t = compute_condition_metrics(obs, obs, ctx)
    for m in DEFAULT_METRICS:
        vals = t[m].dropna()
        assert len(vals), m
        np.testing.assert_allclose(vals, get_metric(m).best_value, atol=1e-9, err_msg=m)


def _noiseless_data():
    """Control cells are noisy (so the DE t-test is defined); every perturbed condition's cells are
    identical, so both halves of a condition have the same mean."""
    rng = np.random.default_rng(0)
    G = 25
    base = rng.uniform(1, 3, G)
    conds = ["ctrl"] * 40
    rows = [base + 0.2 * rng.normal(size=(40, G))]
    effects = {"G0+ctrl": 0, "G1+ctrl": 1, "G2+ctrl": 2, "G0+G1": None, "G0+G2": None}
    for c, k in effects.items():
        x = base.copy()
        for g in c.split("+"):
            if g != "ctrl":
                x[int(g[1:])] += 1.5
                x[int(g[1:]) + 10] -= 0.7
        rows.append(np.tile(x, (6, 1)))
        conds += [c] * 6
    X = np.clip(np.vstack(rows), 0, None)
    a = ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)), obs=pd.DataFrame({"condition": conds},
                   index=[f"c{i}" for i in range(len(conds))]),
                   var=pd.DataFrame(index=[f"G{i}" for i in range(G)]))
    return from_anndata(a)


def test_ceiling_of_noiseless_data_is_best():
    data = _noiseless_data()
    split = make_split(data.conditions, "combo", seed=0, test_frac=0.5, require_subgroups=())
    conds = data.perturbations
    a, b, n = split_half_means(data, conds, seed=0)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert (n == 3).all()
    ctx = MetricContext.from_data(data, split, conds)
    t = noise_ceiling(data, ctx, seed=0)
    for m in DEFAULT_METRICS:
        vals = t[m].dropna()
        if len(vals):
            np.testing.assert_allclose(vals, get_metric(m).best_value, atol=1e-5, err_msg=m)


def test_ceiling_halves_and_repeats(data_split):
    data, split = data_split
    conds = split.test[:3]
    a, b, n = split_half_means(data, conds, seed=1)
    X = data.X.toarray()
    for i, c in enumerate(conds):
        cells = data.cells_of(c)
        assert n[i].sum() == cells.size and abs(n[i, 0] - n[i, 1]) <= 1
        # the two halves together give the full mean
        full = (a[i] * n[i, 0] + b[i] * n[i, 1]) / n[i].sum()
        np.testing.assert_allclose(full, X[cells].mean(axis=0), atol=1e-5)
    ctx = MetricContext.from_data(data, split, split.test)
    t1 = noise_ceiling(data, ctx, seed=0)
    t3 = noise_ceiling(data, ctx, seed=0, n_repeats=3)
    assert list(t3.index) == split.test and "gi_label_pred" not in t3
    assert not np.allclose(t1["mse"], t3["mse"])
    np.testing.assert_allclose(noise_ceiling(data, ctx, seed=0)["mse"], t1["mse"])  # seeded



def test_ceiling_of_a_one_cell_condition_is_nan(data_split, monkeypatch):
    # the data layer needs two cells per condition for its DE test, so a one-cell condition is
    # simulated here by the halves function: its row is NaN and the others are scored without it
    data, split = data_split
    conds = split.test
    import priorgnn.metrics.ceiling as ceiling_mod

    real = ceiling_mod.split_half_means

    def one_cell_first(data, conditions, *, seed=0):
        a, b, n = real(data, conditions, seed=seed)
        a[0], b[0], n[0] = np.nan, np.nan, (1, 0)
        return a, b, n

    monkeypatch.setattr(ceiling_mod, "split_half_means", one_cell_first)
    ctx = MetricContext.from_data(data, split, conds)
    t = noise_ceiling(data, ctx, seed=0)
    assert list(t.index) == conds
    assert t.iloc[0][list(DEFAULT_METRICS)].isna().all() and t.iloc[1:]["mse"].notna().all()
    # split_half_means itself: a condition of one cell has no halves
    a = synth_lognorm(n_genes=30, cells=12, ctrl_cells=40, seed=4)
    keep = np.ones(a.n_obs, dtype=bool)
    keep[np.nonzero((a.obs["condition"] == "G1+ctrl").to_numpy())[0][1:]] = False
    small = from_anndata(a[keep].copy(), min_cells=1)
    h1, h2, n = real(small, ["G1+ctrl", "G2+ctrl"])
    assert np.isnan(h1[0]).all() and np.isnan(h2[0]).all() and list(n[0]) == [0, 0] and n[1].sum() == 12


def test_pearson_delta_excl_target_3_genes():
    # gene 0 is the target and is left out: δp = [0.5, −1] vs δr = [0, −2]; two points on a line
    # with positive slope -> r = 1; leaving out gene 2 instead: [0.5, 0.5] is constant -> 0
    ctx = ctx3(exclude_idx=[np.array([0])])
    assert one("pearson_delta_excl_target", ctx) == pytest.approx(1.0)
    assert one("pearson_delta_excl_target", ctx3(exclude_idx=[np.array([2])])) == 0.0
    assert one("pearson_delta_excl_target", ctx3()) == pytest.approx(2.5 / np.sqrt(7))


def test_target_metrics_3_genes():
    # δp = [0.5, 0.5, −1], δr = [1, 0, −2] (P3, R3 with control 0).
    # target gene 0: signs + and + -> right; |0.5 − 1| = 0.5
    ctx = ctx3(exclude_idx=[np.array([0])])
    assert one("target_sign_match", ctx) == 1.0
    assert one("target_abs_error", ctx) == pytest.approx(0.5)
    # targets {1, 2} (a double): signs (+ vs 0) wrong, (− vs −) right -> 1/2; (|0.5 − 0| + |−1 + 2|) / 2 = 0.75
    ctx = ctx3(exclude_idx=[np.array([1, 2])])
    assert one("target_sign_match", ctx) == pytest.approx(0.5)
    assert one("target_abs_error", ctx) == pytest.approx(0.75)
    # no target among the genes (e.g. the real Norman subset): undefined, not 0
    assert np.isnan(one("target_sign_match", ctx3()))
    assert np.isnan(one("target_abs_error", ctx3()))


def test_target_metrics_several_conditions():
    # two conditions; the second has no measured target and must not borrow the first one's
    pred = np.array([[2.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ctx = MetricContext(conditions=["A+ctrl", "B+ctrl"], control=np.zeros(3), de_idx=np.tile([0, 1, 2], (2, 1)),
                        expressed_idx=np.arange(3), exclude_idx=[np.array([0]), np.array([], dtype=np.int64)])
    t = compute_condition_metrics(pred, ref, ctx, metrics=["target_sign_match", "target_abs_error"])
    assert t["target_sign_match"].iloc[0] == 1.0 and t["target_abs_error"].iloc[0] == pytest.approx(1.0)
    assert np.isnan(t["target_sign_match"].iloc[1]) and np.isnan(t["target_abs_error"].iloc[1])
