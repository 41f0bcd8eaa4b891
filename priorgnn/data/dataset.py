"""The validated data container and its per-condition summaries.

:class:`PerturbationData` wraps a validated AnnData (log-normalised expression as CSR float32,
``obs['condition']`` in canonical GEARS form, gene symbols as ``var_names``). Its
:attr:`~PerturbationData.summaries` are computed once and cached on disk, keyed by the data's
content:

* pseudobulk mean expression per condition, the control mean and deltas;
* the differential-expression ranking of every condition against control, computed as GEARS does
  (``scanpy.tl.rank_genes_groups``, t-test, ``rankby_abs=True``, reference ``ctrl``), from which
  the top-20 DE genes and GEARS's "non-dropout" top-20 variant are taken;
* the genes with non-zero mean per condition (the genes GEARS's loss uses).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import cached_property

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from priorgnn.cache import cache_load, cache_save
from priorgnn.io import hash_arrays
from priorgnn.data.conditions import CTRL, parse_condition
from priorgnn.errors import DataValidationError

log = logging.getLogger(__name__)

__all__ = ["PerturbationData", "ConditionSummaries", "pseudobulk", "rank_de_genes", "condition_moments",
           "central_moments"]

#: Version of the summary computation; bump to invalidate cached summaries.
_SUMMARY_VERSION = 2


def add_sparse_rows(out: np.ndarray, rows: np.ndarray, block) -> None:
    """``out[rows] += block`` for a sparse ``block``, touching only its stored entries (a dense
    ``[len(rows), genes]`` temporary per block could cost more than the block itself)."""
    block = sp.csr_matrix(block)
    block.sum_duplicates()  # a no-op for the canonical result of a product
    block = block.tocoo()
    flat = rows[block.row].astype(np.int64) * out.shape[1] + block.col
    out.reshape(-1)[flat] += block.data  # one entry per (row, col) after sum_duplicates


def central_moments(m1: np.ndarray, m2: np.ndarray, m3: np.ndarray, m4: np.ndarray) -> np.ndarray:
    """``[4, ...]``: mean, c2, c3, c4 (population central moments) from the raw moments ``E[x^k]``;
    c2 and c4 are clipped at 0 against round-off."""
    c2 = np.maximum(m2 - m1**2, 0.0)
    c3 = m3 - 3 * m1 * m2 + 2 * m1**3
    c4 = np.maximum(m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4, 0.0)
    return np.stack([m1, c2, c3, c4])


def condition_moments(X, labels: np.ndarray, groups: list[str], chunk_rows: int = 20_000) -> np.ndarray:
    """Central moments ``[4, len(groups), G]``: mean, c2, c3, c4 of each group's rows (float64).

    Raw power sums are accumulated over row chunks, so only one chunk is ever held in float64.
    """
    X = sp.csr_matrix(X)
    index = {g: i for i, g in enumerate(groups)}
    rows = np.array([index.get(lab, -1) for lab in labels])
    sums = np.zeros((4, len(groups), X.shape[1]))
    counts = np.bincount(rows[rows >= 0], minlength=len(groups)).astype(np.float64)
    for start in range(0, X.shape[0], chunk_rows):
        r = rows[start:start + chunk_rows]
        keep = r >= 0
        if not keep.any():
            continue
        block = X[start:start + chunk_rows][keep].astype(np.float64)
        ind = sp.csr_matrix((np.ones(int(keep.sum())), (r[keep], np.arange(int(keep.sum())))),
                            shape=(len(groups), int(keep.sum())))
        power = block.copy()
        for k in range(4):
            if k:
                power.data *= block.data
            sums[k] += (ind @ power).toarray()
    with np.errstate(invalid="ignore", divide="ignore"):
        m1, m2, m3, m4 = sums / counts[None, :, None]
    return central_moments(m1, m2, m3, m4)


def pseudobulk(X, labels: np.ndarray, groups: list[str], *, chunk_nnz: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of ``X`` per group, as ``[len(groups), n_genes]`` float64, and the counts.

    Sparse indicator-matrix products over row chunks of about ``chunk_nnz`` stored values, summed
    in float64: one pass over ``X``, with extra memory bounded by one chunk (a single product
    would hold a float64 copy of the whole float32 matrix).
    """
    index = {g: i for i, g in enumerate(groups)}
    rows = np.array([index.get(lab, -1) for lab in labels], dtype=np.int64)
    n, G = X.shape
    counts = np.bincount(rows[rows >= 0], minlength=len(groups)).astype(np.int64)
    sums = np.zeros((len(groups), G))
    if sp.issparse(X):
        X = X.tocsr()
        per_row = max(1.0, X.nnz / max(n, 1))
    else:
        X = np.asarray(X)
        per_row = float(max(G, 1))
    step = max(1, int(chunk_nnz // per_row))
    for s in range(0, n, step):
        e = min(n, s + step)
        r = rows[s:e]
        keep = np.nonzero(r >= 0)[0]
        if keep.size == 0:
            continue
        present, local = np.unique(r[keep], return_inverse=True)
        ind = sp.csr_matrix((np.ones(keep.size), (local, keep)), shape=(present.size, e - s))
        block = X[s:e]
        if sp.issparse(block):
            add_sparse_rows(sums, present, ind @ block.astype(np.float64))
        else:
            sums[present] += ind @ np.asarray(block, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    return means, counts


def rank_de_genes(adata: ad.AnnData, conditions: list[str], method: str = "t-test") -> dict[str, np.ndarray]:
    """Rank all genes for each condition against control with ``scanpy.tl.rank_genes_groups``.

    Returns ``rank`` (gene indices, most significant first, ``[C, G]``), and ``scores``, ``logfc``
    and ``pvals_adj`` in gene order (``[C, G]``). The control row is ``-1`` / NaN.
    """
    import scanpy as sc

    genes = adata.var_names
    gidx = pd.Series(np.arange(len(genes)), index=genes)
    C, G = len(conditions), len(genes)
    rank = np.full((C, G), -1, dtype=np.int32)
    scores = np.full((C, G), np.nan, dtype=np.float32)
    logfc = np.full((C, G), np.nan, dtype=np.float32)
    padj = np.full((C, G), np.nan, dtype=np.float32)
    pert = [c for c in conditions if c != CTRL]
    if not pert:
        return {"rank": rank, "scores": scores, "logfc": logfc, "pvals_adj": padj}
    tmp = ad.AnnData(X=adata.X, obs=adata.obs[["condition"]].copy(), var=pd.DataFrame(index=genes))
    tmp.uns["log1p"] = {"base": None}
    with warnings.catch_warnings():
        # scanpy fills its result frame column by column; pandas warns about fragmentation
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        sc.tl.rank_genes_groups(
            tmp, groupby="condition", reference=CTRL, groups=pert, rankby_abs=True, n_genes=G,
            use_raw=False, method=method,
        )
    res = tmp.uns["rank_genes_groups"]
    row_of = {c: i for i, c in enumerate(conditions)}
    for cond in res["names"].dtype.names:
        i = row_of[cond]
        idx = gidx[np.asarray(res["names"][cond], dtype=str)].to_numpy()
        rank[i] = idx
        scores[i, idx] = res["scores"][cond]
        logfc[i, idx] = res["logfoldchanges"][cond]
        padj[i, idx] = res["pvals_adj"][cond]
    return {"rank": rank, "scores": scores, "logfc": logfc, "pvals_adj": padj}


@dataclass(frozen=True)
class ConditionSummaries:
    """Per-condition summaries; rows follow ``conditions``, columns the data's genes."""

    conditions: list[str]
    genes: pd.Index
    means: np.ndarray  # [C, G] pseudobulk mean log expression
    n_cells: np.ndarray  # [C]
    de_rank: np.ndarray  # [C, G] gene indices by DE significance (|t|), -1 row for ctrl
    de_scores: np.ndarray  # [C, G] t-scores, gene order
    de_logfc: np.ndarray  # [C, G]
    de_pvals_adj: np.ndarray  # [C, G] Benjamini-Hochberg adjusted p-values

    @cached_property
    def row(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.conditions)}

    @property
    def control_mean(self) -> np.ndarray:
        return self.means[self.row[CTRL]]

    def mean(self, condition: str) -> np.ndarray:
        return self.means[self._row(condition)]

    def delta(self, condition: str) -> np.ndarray:
        return self.mean(condition) - self.control_mean

    @cached_property
    def deltas(self) -> np.ndarray:
        return self.means - self.control_mean[None, :]

    def _row(self, condition: str) -> int:
        try:
            return self.row[condition]
        except KeyError:
            raise DataValidationError(
                f"condition {condition!r} is not in the data ({len(self.conditions)} conditions)."
            ) from None

    @cached_property
    def nonzero(self) -> np.ndarray:
        """``[C, G]`` bool: gene has a non-zero mean in the condition (GEARS's loss genes)."""
        return self.means != 0

    def top_de(self, condition: str, n: int = 20, non_dropout: bool = False) -> np.ndarray:
        """Indices of the top-``n`` DE genes of ``condition`` against control.

        ``non_dropout=True`` gives GEARS's ``top_non_dropout_de_20``: only genes with a non-zero
        mean in the condition, or zero in both the condition and control, are eligible.
        """
        i = self._row(condition)
        ranked = self.de_rank[i]
        if ranked[0] < 0:
            raise DataValidationError(f"no DE ranking for {condition!r} (the control has none).")
        if non_dropout:
            m = self.means[i]
            eligible = (m != 0) | ((m == 0) & (self.control_mean == 0))
            ranked = ranked[eligible[ranked]]
        return ranked[:n]

    def n_de_genes(self, condition: str, alpha: float = 0.05) -> int:
        """Number of genes with BH-adjusted t-test p below ``alpha``."""
        p = self.de_pvals_adj[self._row(condition)]
        return int(np.sum(p < alpha))


class PerturbationData:
    """A validated perturbation data set. Build it with :mod:`priorgnn.data.io` or the simulator.

    Parameters
    ----------
    adata
        Validated AnnData: CSR float32 log-normalised ``X``, canonical ``obs['condition']``,
        unique gene symbols as ``var_names``.
    name
        A short name used in run directories and reports.
    source
        Where the data came from (a path), recorded in run provenance.
    """

    def __init__(self, adata: ad.AnnData, *, name: str = "data", source: str | None = None,
                 de_method: str = "t-test") -> None:
        if "condition" not in adata.obs:
            raise DataValidationError("PerturbationData needs obs['condition']; load through priorgnn.data.io.")
        self.adata = adata
        self.name = name
        self.source = source
        self.de_method = de_method

    # -- basic views ---------------------------------------------------------------------------
    @property
    def X(self) -> sp.csr_matrix:
        return self.adata.X

    @property
    def genes(self) -> pd.Index:
        return self.adata.var_names

    @cached_property
    def gene_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}

    @property
    def n_genes(self) -> int:
        return self.adata.n_vars

    @property
    def n_cells(self) -> int:
        return self.adata.n_obs

    @cached_property
    def cell_conditions(self) -> np.ndarray:
        return self.adata.obs["condition"].astype(str).to_numpy()

    @cached_property
    def conditions(self) -> list[str]:
        """All conditions, ``ctrl`` first, then sorted."""
        present = set(self.cell_conditions)
        return [CTRL] + sorted(present - {CTRL})

    @property
    def perturbations(self) -> list[str]:
        return self.conditions[1:]

    @cached_property
    def perturbed_genes(self) -> list[str]:
        return sorted({g for c in self.perturbations for g in parse_condition(c)})

    @cached_property
    def _cells_by_condition(self) -> dict[str, np.ndarray]:
        codes, uniques = pd.factorize(self.cell_conditions)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        return {u: order[bounds[i]:bounds[i + 1]] for i, u in enumerate(uniques)}

    def cells_of(self, condition: str) -> np.ndarray:
        """Row indices of the cells of ``condition``."""
        try:
            return self._cells_by_condition[condition]
        except KeyError:
            raise DataValidationError(f"condition {condition!r} is not in the data.") from None

    def cells_in(self, conditions) -> np.ndarray:
        """Row indices of the cells of any of ``conditions``, in data order."""
        return np.nonzero(np.isin(self.cell_conditions, list(conditions)))[0]

    def subset(self, conditions, name: str | None = None) -> PerturbationData:
        """A new data set with only the cells of ``conditions`` (control must be among them)."""
        idx = self.cells_in(conditions)
        return PerturbationData(self.adata[idx].copy(), name=name or self.name, source=self.source,
                                de_method=self.de_method)

    # -- summaries -------------------------------------------------------------------------------
    @cached_property
    def content_hash(self) -> str:
        X = self.X
        return hash_arrays(
            X, np.asarray(self.cell_conditions, dtype=object), np.asarray(self.genes, dtype=object)
        )

    @cached_property
    def summaries(self) -> ConditionSummaries:
        key = hash_arrays(self.content_hash, {"v": _SUMMARY_VERSION, "de": self.de_method})
        arrays = cache_load("summaries", key, required=("means", "n_cells", "de_rank"))
        if arrays is None:
            log.info("computing pseudobulk means and DE rankings for %d conditions", len(self.conditions))
            means, counts = pseudobulk(self.X, self.cell_conditions, self.conditions)
            de = rank_de_genes(self.adata, self.conditions, method=self.de_method)
            arrays = {
                "means": means.astype(np.float64),
                "n_cells": counts,
                "de_rank": de["rank"],
                "de_scores": de["scores"],
                "de_logfc": de["logfc"],
                "de_pvals_adj": de["pvals_adj"],
                "conditions": np.array(self.conditions, dtype=str),
            }
            cache_save("summaries", key, arrays)
        if list(arrays["conditions"]) != self.conditions:
            raise DataValidationError("cached summaries do not match the data's conditions; clear the cache.")
        return ConditionSummaries(
            conditions=self.conditions, genes=self.genes, means=arrays["means"],
            n_cells=arrays["n_cells"], de_rank=arrays["de_rank"], de_scores=arrays["de_scores"],
            de_logfc=arrays["de_logfc"], de_pvals_adj=arrays["de_pvals_adj"],
        )

    @property
    def control_mean(self) -> np.ndarray:
        return self.summaries.control_mean

    def condition_moments(self, groups: list[str]) -> np.ndarray:
        """``[4, len(groups), G]`` central moments of each condition's cells (see :func:`condition_moments`)."""
        return condition_moments(self.X, self.cell_conditions, groups)

    def __repr__(self) -> str:
        n_single = sum(1 for c in self.perturbations if "ctrl" in c)
        return (
            f"PerturbationData({self.name!r}: {self.n_cells} cells x {self.n_genes} genes, "
            f"{n_single} singles, {len(self.perturbations) - n_single} doubles)"
        )
