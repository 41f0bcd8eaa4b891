"""Streamed summaries of an .h5ad (for data too large for memory) equal the in-memory ones."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from priorgnn.data import from_anndata
from priorgnn.data.stream import _bh_adjust, summarise_h5ad
from priorgnn.errors import DataValidationError
from tests._synth import lognorm_h5ad, synth_lognorm


@pytest.fixture(scope="module")
def lognorm_file(tmp_path_factory):
    return lognorm_h5ad(tmp_path_factory, "stream", n_genes=40, seed=3)


def test_streamed_summaries_match_in_memory(lognorm_file):
    adata, path = lognorm_file
    ref = from_anndata(adata).summaries  # pseudobulk + scanpy rank_genes_groups
    got = summarise_h5ad(path, chunk_rows=37)  # chunks that split conditions
    assert got.conditions == ref.conditions
    np.testing.assert_array_equal(got.n_cells, ref.n_cells)
    np.testing.assert_allclose(got.means, ref.means, rtol=0, atol=1e-9)
    for name in ("de_scores", "de_logfc", "de_pvals_adj"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-4, atol=1e-4,
                                   err_msg=name)
    for cond in ref.conditions[1:]:
        assert set(got.top_de(cond)) == set(ref.top_de(cond)), cond
        assert set(got.top_de(cond, non_dropout=True)) == set(ref.top_de(cond, non_dropout=True)), cond
    assert (got.de_rank[0] == -1).all()


def test_chunk_size_does_not_change_the_result(lognorm_file):
    _, path = lognorm_file
    a = summarise_h5ad(path, chunk_rows=1000)
    b = summarise_h5ad(path, chunk_rows=11)
    np.testing.assert_allclose(a.means, b.means, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a.de_rank, b.de_rank)


def test_bh_adjust_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(0).uniform(size=(3, 50)) ** 3
    expected = np.stack([multipletests(row, method="fdr_bh")[1] for row in p])
    np.testing.assert_allclose(_bh_adjust(p), expected, rtol=1e-12)


@pytest.mark.parametrize("bad, match", [("nan", "NaN"), ("negative", "negative"), ("counts", "raw counts|reaches")])
def test_streamed_validation_rejects_bad_values_in_a_late_chunk(tmp_path, bad, match):
    a = synth_lognorm(n_genes=40, seed=3)
    X = a.X.toarray()
    if bad == "nan":
        X[-1, 5] = np.nan  # only the last chunk holds it
    elif bad == "negative":
        X[-1, 5] = -0.5
    else:
        X = np.round(np.expm1(X))
    a.X = sp.csr_matrix(X)
    path = tmp_path / "bad.h5ad"
    a.write_h5ad(path)
    with pytest.raises(DataValidationError, match=match):
        summarise_h5ad(path, chunk_rows=50)


def test_streamed_rejects_missing_control_and_empty_file(tmp_path):
    a = synth_lognorm(n_genes=40, seed=3)
    a = a[a.obs["condition"] != "ctrl"].copy()
    path = tmp_path / "noctrl.h5ad"
    a.write_h5ad(path)
    with pytest.raises(DataValidationError, match="no control cells"):
        summarise_h5ad(path)
    empty = tmp_path / "empty.h5ad"
    empty.write_bytes(b"")
    with pytest.raises(DataValidationError, match="empty"):
        summarise_h5ad(empty)


def test_from_anndata_leaves_its_input_alone_unless_copy_false(lognorm_file):
    adata, path = lognorm_file
    before = adata.X.copy()
    data = from_anndata(adata)
    assert adata.X is not None and (adata.X != before).nnz == 0
    assert data.X is not adata.X
    # read_h5ad reuses the matrix it just read (no second copy) and gives the same data
    from priorgnn.data import read_h5ad

    read = read_h5ad(path)
    assert (read.X != data.X).nnz == 0 and read.conditions == data.conditions


@pytest.mark.parametrize("chunk_nnz", [7, 300, 1 << 24])
@pytest.mark.parametrize("dense", [False, True])
def test_chunked_pseudobulk_equals_per_group_means(chunk_nnz, dense):
    from priorgnn.data.dataset import pseudobulk

    rng = np.random.default_rng(0)
    X = sp.random(500, 30, density=0.2, format="csr", dtype=np.float32, random_state=1)
    labels = rng.choice(["a", "b", "c", "unused-label"], 500)
    groups = ["a", "b", "c", "absent"]
    means, counts = pseudobulk(X.toarray() if dense else X, labels, groups, chunk_nnz=chunk_nnz)
    M = X.toarray().astype(np.float64)
    for i, g in enumerate(groups[:3]):
        assert counts[i] == (labels == g).sum()
        np.testing.assert_allclose(means[i], M[labels == g].mean(axis=0), rtol=0, atol=1e-12)
    assert counts[3] == 0 and np.isnan(means[3]).all()
