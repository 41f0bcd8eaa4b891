"""Baselines against hand-worked values: no_change, mean, additive, linear, go_knn."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from knowledge.graph import GeneGraph
from priorgnn.data import from_anndata
from priorgnn.data.splits import Split
from priorgnn.models import PriorGraphs, get_model_class, load_model
from priorgnn.models.linear import ridge_bilinear

GENES = ["g0", "g1", "g2", "g3"]
CTRL = np.array([1.0, 2.0, 0.5, 1.5])
EFFECT = {"A": np.array([0.5, 0.0, 0.0, 0.2]), "B": np.array([0.0, -0.8, 0.3, 0.0]),
          "C": np.array([0.2, 0.0, 0.0, -0.4])}


def _exact_data(extra_genes=("A", "B", "C")) -> ad.AnnData:
    """Noise-free, interaction-free data: each condition's mean is control + the sum of its genes'
    effects exactly. Two cells per condition at mean +/- 0.01, so pseudobulk means are exact."""
    genes = GENES + list(extra_genes)
    conds = {"ctrl": (), "A+ctrl": ("A",), "B+ctrl": ("B",), "C+ctrl": ("C",), "A+B": ("A", "B"),
             "A+C": ("A", "C"), "B+C": ("B", "C")}
    rows, labels = [], []
    for c, gs in conds.items():
        mean = np.concatenate([CTRL + sum((EFFECT[g] for g in gs), np.zeros(4)), np.ones(len(extra_genes))])
        for sign in (+1, -1):
            rows.append(mean + sign * 0.01 * np.arange(1, len(genes) + 1) / len(genes))
            labels.append(c)
    obs = pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(len(labels))])
    return ad.AnnData(X=np.array(rows, dtype=np.float32), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def exact():
    data = from_anndata(_exact_data())
    split = Split("custom", 0, train=["ctrl", "A+ctrl", "B+ctrl", "A+B"], val=[], test=["A+C", "B+C", "C+ctrl"])
    return data, split


def _delta(gs):
    return np.concatenate([sum((EFFECT[g] for g in gs), np.zeros(4)), np.zeros(3)])


def test_no_change_and_mean(exact):
    data, split = exact
    assert np.all(get_model_class("no_change")().fit(data, split).predict_delta(["A+C"]) == 0)
    mean = get_model_class("mean")().fit(data, split)
    # training perturbations: A, B, A+B -> mean delta = (dA + dB + dA + dB) / 3
    expected = (2 * _delta(["A"]) + 2 * _delta(["B"])) / 3
    np.testing.assert_allclose(mean.predict_delta(["C+ctrl"])[0], expected, atol=1e-6)


def test_additive_is_exact_without_interactions(exact):
    data, split = exact
    m = get_model_class("additive")().fit(data, split)
    # A+B: both singles measured -> exactly control + dA + dB
    np.testing.assert_allclose(m.predict_delta(["A+B"])[0], _delta(["A", "B"]), atol=1e-6)
    pred = m.predict(["A+B", "A+C", "C+ctrl"])
    np.testing.assert_allclose(pred.X[0], np.concatenate([CTRL + EFFECT["A"] + EFFECT["B"], np.ones(3)]), atol=1e-6)
    # C was never measured: fallback 'mean' uses the mean training single (dA + dB) / 2, counted
    np.testing.assert_allclose(pred.layers["delta"][1], _delta(["A"]) + (_delta(["A"]) + _delta(["B"])) / 2,
                               atol=1e-6)
    assert list(pred.obs["n_fallback"]) == [0, 1, 1]
    assert m.fit_info["fallback_counts"] == {"conditions": 3, "conditions_with_fallback": 2, "genes_fallen_back": 2}
    zero = get_model_class("additive")(fallback="zero").fit(data, split)
    np.testing.assert_allclose(zero.predict_delta(["A+C"])[0], _delta(["A"]), atol=1e-6)


def test_ridge_bilinear_closed_form():
    rng = np.random.default_rng(0)
    G, P, Y = rng.normal(size=(7, 3)), rng.normal(size=(5, 2)), rng.normal(size=(7, 5))
    lam = 0.1
    W = ridge_bilinear(G, Y, P, lam)
    # the formula, written out with explicit inverses
    ref = np.linalg.inv(G.T @ G + lam * np.eye(3)) @ G.T @ Y @ P @ np.linalg.inv(P.T @ P + lam * np.eye(2))
    np.testing.assert_allclose(W, ref, rtol=1e-10)
    # at lambda = 0 it is the least-squares solution of vec(Y) = (P kron G) vec(W)
    W0 = ridge_bilinear(G, Y, P, 0.0)
    vecW, *_ = np.linalg.lstsq(np.kron(P, G), Y.reshape(-1, order="F"), rcond=None)
    np.testing.assert_allclose(W0, vecW.reshape(3, 2, order="F"), rtol=1e-8)


def test_linear_model_prediction_by_hand(exact):
    data, split = exact
    m = get_model_class("linear")(n_components=2, ridge=0.1).fit(data, split)
    s = data.summaries
    train = ["A+ctrl", "B+ctrl", "A+B"]
    Y = np.stack([s.mean(c) for c in train], 1)
    b = Y.mean(1)
    U, S, _ = np.linalg.svd(Y - b[:, None], full_matrices=False)
    G = U[:, :2] * S[:2]
    row = {g: i for i, g in enumerate(data.genes)}
    P = np.stack([G[row["A"]], G[row["B"]], G[row["A"]] + G[row["B"]]])
    W = np.linalg.inv(G.T @ G + 0.1 * np.eye(2)) @ G.T @ (Y - b[:, None]) @ P @ np.linalg.inv(P.T @ P + 0.1 * np.eye(2))
    pred_c = G @ W @ G[row["C"]] + b
    np.testing.assert_allclose(m.predict_delta(["C+ctrl"])[0], pred_c - s.control_mean, atol=1e-8)
    assert np.all(m.predict_delta(["ctrl"]) == 0)


def _go(genes, edges):
    src = [genes.index(a) for a, b, _ in edges] + [genes.index(b) for a, b, _ in edges] + list(range(len(genes)))
    dst = [genes.index(b) for a, b, _ in edges] + [genes.index(a) for a, b, _ in edges] + list(range(len(genes)))
    w = [x for *_, x in edges] * 2 + [1.0] * len(genes)
    return GeneGraph(genes, np.array([src, dst]), np.array(w), {"kind": "go"})


def test_go_knn_weighted_neighbour_average(exact, tmp_path):
    data, split = exact
    genes = list(data.genes)
    # C's GO neighbours: A (0.75) and B (0.25); g0 is a neighbour without a measured single
    go = _go(genes, [("C", "A", 0.75), ("C", "B", 0.25), ("C", "g0", 0.9)])
    m = get_model_class("go_knn")().fit(data, split, graphs=PriorGraphs(go=go))
    expected_c = 0.75 * _delta(["A"]) + 0.25 * _delta(["B"])
    np.testing.assert_allclose(m.predict_delta(["C+ctrl"])[0], expected_c, atol=1e-6)
    np.testing.assert_allclose(m.predict_delta(["A+C"])[0], _delta(["A"]) + expected_c, atol=1e-6)
    m.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_delta(["B+C"]), m.predict_delta(["B+C"]))
    with pytest.raises(Exception, match="GO graph"):
        get_model_class("go_knn")().fit(data, split)


def test_linear_go_uses_neighbours_for_unseen(exact, tmp_path):
    data, split = exact
    genes = list(data.genes)
    go = _go(genes, [("C", "A", 1.0)])
    lin = get_model_class("linear")(n_components=2).fit(data, split)
    lgo = get_model_class("linear_go")(n_components=2).fit(data, split, graphs=PriorGraphs(go=go))
    # with A as C's only GO neighbour, linear_go predicts C like A
    np.testing.assert_allclose(lgo.predict_delta(["C+ctrl"]), lin.predict_delta(["A+ctrl"]), atol=1e-10)
    lgo.save(tmp_path / "l")
    np.testing.assert_array_equal(load_model(tmp_path / "l").predict_delta(["C+ctrl"]), lgo.predict_delta(["C+ctrl"]))


def test_baselines_round_trip(exact, tmp_path):
    data, split = exact
    for name in ("no_change", "mean", "additive", "linear"):
        m = get_model_class(name)().fit(data, split)
        m.save(tmp_path / name)
        again = load_model(tmp_path / name)
        np.testing.assert_array_equal(again.predict_delta(split.test), m.predict_delta(split.test))
        assert again.name == name


def test_prediction_notes_are_public_and_reach_predict(exact):
    """``prediction_notes`` is the one hook for per-condition notes: ``predict`` puts them in ``obs``,
    and the experiment layer's per-subgroup counts read the same method."""
    from priorgnn.experiment import prediction_notes

    data, split = exact
    m = get_model_class("additive")().fit(data, split)
    conds = ["A+B", "A+C", "C+ctrl"]
    assert m.prediction_notes(conds) == {"n_fallback": [0, 1, 1]}
    assert list(m.predict(conds).obs["n_fallback"]) == [0, 1, 1]
    subgroups = {"A+C": "combo_seen1", "C+ctrl": "unseen_single"}  # A+B: in no subgroup
    assert prediction_notes(m, conds, subgroups) == {
        "n_fallback": {"other": [0, 1], "combo_seen1": [1, 1], "unseen_single": [1, 1]}}
    mean = get_model_class("mean")().fit(data, split)
    assert mean.prediction_notes(conds) == {}
    assert list(mean.predict(conds).obs.columns) == ["condition", "n_genes_perturbed"]


def test_models_without_embeddings_or_variance_say_so(exact):
    from priorgnn.models import DeltaPrediction

    data, split = exact
    m = get_model_class("mean")().fit(data, split)
    assert m.embeddings() is None
    out = m.predict_output(["C+ctrl"])
    assert isinstance(out, DeltaPrediction) and out.variance is None
    np.testing.assert_array_equal(out.delta, m.predict_delta(["C+ctrl"]))
    assert "variance" not in m.predict(["C+ctrl"]).layers
