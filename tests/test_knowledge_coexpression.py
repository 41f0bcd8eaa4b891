"""The co-expression graph: chunked Pearson correlation over training cells only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from knowledge.coexpression import (
    build_coexpression_graph,
    coexpression_graph,
    pearson_correlation,
    training_cells,
)
from priorgnn.data import from_anndata
from priorgnn.data.splits import Split
from priorgnn.errors import GraphError
from tests._synth import synth_lognorm

TRAIN = ["ctrl", "G0+ctrl", "G1+ctrl", "G2+ctrl", "G0+G1"]
VAL = ["G3+ctrl"]
TEST = ["G4+ctrl", "G5+ctrl", "G2+G3", "G0+G4", "G1+G5"]


@pytest.fixture(scope="module")
def data():
    return from_anndata(synth_lognorm(n_genes=30, seed=3))


@pytest.fixture(scope="module")
def split():
    return Split(kind="custom", seed=0, train=TRAIN, val=VAL, test=TEST)


def _random_sparse(rng, n=300, g=25, density=0.3):
    X = sp.random(n, g, density=density, random_state=np.random.RandomState(1), format="csr",
                  dtype=np.float32, data_rvs=lambda k: rng.gamma(2.0, 1.0, k))
    X = X.toarray()
    X[:, 3] = 0.0  # never expressed
    X[:, 7] = 2.5  # expressed, but constant
    X[:, 11] = X[:, 10] * 2 + 1  # a perfect linear relation
    return sp.csr_matrix(X)


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_correlation_matches_numpy_corrcoef(rng, chunk):
    X = _random_sparse(rng)
    rows = np.sort(rng.choice(X.shape[0], 200, replace=False))
    corr, constant = pearson_correlation(X, rows, chunk_size=chunk)
    dense = X[rows].toarray().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.corrcoef(dense, rowvar=False)
    varies = dense.std(axis=0) > 0
    np.testing.assert_array_equal(constant, ~varies)
    assert constant[3] and constant[7]
    np.testing.assert_allclose(corr[np.ix_(varies, varies)], ref[np.ix_(varies, varies)], atol=1e-12)
    assert np.all(corr[~varies] == 0) and np.all(corr[:, ~varies] == 0)  # zero, not NaN
    assert np.all(np.diag(corr)[varies] == 1.0)


def test_correlation_is_stable_for_large_means(rng):
    # cancellation test: a large offset must not change the correlation
    X = rng.normal(size=(500, 6))
    corr, _ = pearson_correlation(X + 1e6)
    np.testing.assert_allclose(corr, np.corrcoef(X, rowvar=False), atol=1e-8)


def test_graph_keeps_top_k_by_absolute_correlation(rng):
    base = rng.normal(size=(400, 4))
    # genes 0-3 independent; 4-7 noisy copies, 8 an anti-correlated copy of 0, 9 constant
    X = np.hstack([base, base + 0.5 * rng.normal(size=(400, 4)), -base[:, :1] + 0.3 * rng.normal(size=(400, 1)),
                   np.ones((400, 1))])
    genes = [f"g{i}" for i in range(X.shape[1])]
    graph = coexpression_graph(sp.csr_matrix(X), genes, k=1, threshold=0.4)
    ref = np.abs(np.corrcoef(X[:, :9], rowvar=False))
    expected = set()
    for t in range(9):
        order = sorted(range(9), key=lambda s: (-ref[t, s], s))[:2]
        expected |= {(genes[s], genes[t]) for s in order if ref[t, s] > 0.4}
    got = {(s, t) for s, t, _ in graph.edge_frame().itertuples(index=False)}
    assert got == expected
    assert ("g8", "g0") in got  # |r| of an anti-correlated pair
    assert not any("g9" in e for e in got)  # constant gene: no edge at all, not even to itself
    frame = graph.edge_frame()
    w = {(s, t): x for s, t, x in frame.itertuples(index=False)}
    assert w[("g8", "g0")] == pytest.approx(ref[0, 8], abs=1e-6)
    assert np.isfinite(graph.edge_weight).all()


def test_training_cells_are_control_plus_training_conditions(data, split):
    rows, conds = training_cells(data, split)
    assert conds == sorted(TRAIN)
    assert set(data.cell_conditions[rows]) == set(TRAIN)
    assert len(rows) == sum(int((data.cell_conditions == c).sum()) for c in TRAIN)
    rows1, conds1 = training_cells(data, split, include_combinations=False)
    assert "G0+G1" not in conds1 and set(data.cell_conditions[rows1]) == {"ctrl", "G0+ctrl", "G1+ctrl", "G2+ctrl"}


def test_graph_from_training_cells_matches_corrcoef_of_those_cells(data, split):
    graph = build_coexpression_graph(data, split, k=3, threshold=0.4)
    rows = np.isin(data.cell_conditions, TRAIN)
    dense = data.X[rows].toarray().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.abs(np.nan_to_num(np.corrcoef(dense, rowvar=False)))
    frame = graph.edge_frame()
    idx = data.gene_index
    for s, t, w in frame.itertuples(index=False):
        assert w == pytest.approx(1.0 if s == t else ref[idx[t], idx[s]], abs=1e-6)
    assert graph.provenance["n_cells"] == int(rows.sum())
    assert graph.provenance["params"] == {"k": 3, "threshold": 0.4, "include_combinations": True}


def test_no_test_or_validation_cell_influences_the_graph(data, split, rng):
    before = build_coexpression_graph(data, split, k=5, threshold=0.2)
    held_out = np.nonzero(~np.isin(data.cell_conditions, TRAIN))[0]
    altered = data.adata.copy()
    X = altered.X.toarray()
    X[held_out] = rng.permutation(X[held_out].ravel()).reshape(X[held_out].shape)
    X[held_out[:10]] = rng.uniform(0.0, 5.0, size=(10, X.shape[1]))
    altered.X = sp.csr_matrix(X.astype(np.float32))
    after = build_coexpression_graph(from_anndata(altered), split, k=5, threshold=0.2)
    np.testing.assert_array_equal(after.edge_index, before.edge_index)
    np.testing.assert_array_equal(after.edge_weight, before.edge_weight)  # bit-identical
    # while a single training cell does change it
    train_cell = np.nonzero(np.isin(data.cell_conditions, TRAIN))[0][0]
    changed = data.adata.copy()
    X = changed.X.toarray()
    X[train_cell] = X[train_cell][::-1] + 3.0
    changed.X = sp.csr_matrix(X.astype(np.float32))
    moved = build_coexpression_graph(from_anndata(changed), split, k=5, threshold=0.2)
    assert moved.n_edges != before.n_edges or not np.array_equal(moved.edge_weight, before.edge_weight)


def test_split_for_other_data_is_refused(data):
    other = Split(kind="custom", seed=0, train=["ctrl", "ZZZ+ctrl"], val=[], test=["G0+ctrl"])
    with pytest.raises(GraphError, match="not in the data"):
        build_coexpression_graph(data, other)
    with pytest.raises(GraphError, match="at least 2 cells"):
        pearson_correlation(np.ones((5, 3)), np.array([0]))


@pytest.mark.reference
def test_coexpression_reproduces_cell_gears(data, split, tmp_path):
    gears_utils = pytest.importorskip("gears.utils")
    k, threshold = 5, 0.2
    adata = data.adata.copy()
    adata.var["gene_name"] = list(data.genes)
    (tmp_path / "synth").mkdir()
    ref = gears_utils.get_coexpression_network_from_train(
        adata, threshold, k, str(tmp_path), "synth", "custom", 0, 0.75, {"train": TRAIN},
    )
    # GEARS uses the training conditions whose name contains 'ctrl': control and singles
    ours = build_coexpression_graph(data, split, k=k, threshold=threshold, include_combinations=False)
    theirs = {(s, t): w for s, t, w in ref[["source", "target", "importance"]].itertuples(index=False)}
    mine = {(s, t): w for s, t, w in ours.edge_frame().itertuples(index=False)}
    # GEARS correlates in float32; leave out pairs within float32 noise of the threshold
    close = {e for e, w in {**theirs, **mine}.items() if abs(w - threshold) < 1e-5}
    assert set(mine) - close == set(theirs) - close
    for e in set(mine) & set(theirs):
        assert mine[e] == pytest.approx(theirs[e], abs=1e-5)
    assert isinstance(ref, pd.DataFrame) and len(theirs) > len(data.genes)
