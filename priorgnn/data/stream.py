"""Per-condition summaries of an ``.h5ad`` too large for memory, in one streamed pass.

:func:`priorgnn.data.io.read_h5ad` loads the whole matrix: its limit is the machine's memory (see
``benchmarks/results/scale_limits.md``). At genome-wide Perturb-seq scale (Replogle et al. 2022,
K562: about 10,000 genes x 2 million cells) that matrix does not fit in 24 GB, and scanpy's
``rank_genes_groups`` alone would hold a ``[conditions, cells]`` boolean mask (20 GB there).

:func:`summarise_h5ad` reads the file in backed mode, row chunk by row chunk, validates each chunk
as :func:`~priorgnn.data.validate.check_matrix_values` does, and accumulates per-condition sums and
sums of squares. From them it computes the same :class:`~priorgnn.data.dataset.ConditionSummaries`
as :attr:`PerturbationData.summaries <priorgnn.data.dataset.PerturbationData.summaries>`:
pseudobulk means, cell counts, and the DE ranking against control by Welch's t-test with
Benjamini-Hochberg adjusted p-values and log2 fold changes, as scanpy's ``rank_genes_groups``
(``method='t-test'``, ``reference='ctrl'``, ``rankby_abs=True``) computes them. Memory is bounded
by the ``[conditions, genes]`` results and one chunk, never by the number of cells.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from priorgnn.data.conditions import CTRL
from priorgnn.data.dataset import ConditionSummaries, add_sparse_rows, central_moments
from priorgnn.data.validate import (
    MAX_LOG_VALUE,
    canonicalise_conditions,
    check_cells_per_condition,
    check_perturbed_genes_measured,
    check_unique_names,
)
from priorgnn.errors import DataValidationError

log = logging.getLogger(__name__)

__all__ = ["summarise_h5ad", "welch_de", "SummaryData"]


def _bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along the last axis (statsmodels' ``fdr_bh``)."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * (m / np.arange(1, m + 1))
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    np.minimum(ranked, 1.0, out=ranked)
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, axis=-1)
    return out


def welch_de(means: np.ndarray, variances: np.ndarray, n_cells: np.ndarray, ctrl_row: int,
             *, block: int = 256) -> dict[str, np.ndarray]:
    """DE of every row against ``ctrl_row`` from per-group means and variances (``ddof=1``).

    Welch's t-test as scanpy's ``rank_genes_groups(method='t-test')``: a NaN score (equal means,
    no variance) becomes 0 and its p-value 1. Returns ``rank`` (genes by ``|t|``, most significant
    first), ``scores``, ``logfc`` and ``pvals_adj``, ``[C, G]``; the control row is ``-1`` / NaN.
    Rows are processed in blocks, so temporaries stay at ``block x genes``.
    """
    from scipy import stats

    C, G = means.shape
    rank = np.full((C, G), -1, dtype=np.int32)
    scores = np.full((C, G), np.nan, dtype=np.float32)
    logfc = np.full((C, G), np.nan, dtype=np.float32)
    padj = np.full((C, G), np.nan, dtype=np.float32)
    m_ref, sd_ref, n_ref = means[ctrl_row], np.sqrt(variances[ctrl_row]), int(n_cells[ctrl_row])
    e_ref = np.expm1(m_ref) + 1e-9
    rows = np.array([i for i in range(C) if i != ctrl_row], dtype=np.int64)
    for s in range(0, rows.size, block):
        r = rows[s:s + block]
        with np.errstate(invalid="ignore", divide="ignore"):
            t, p = stats.ttest_ind_from_stats(
                mean1=means[r], std1=np.sqrt(variances[r]), nobs1=n_cells[r][:, None],
                mean2=m_ref[None, :], std2=sd_ref[None, :], nobs2=n_ref, equal_var=False,
            )
        t = np.asarray(t, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        t[np.isnan(t)] = 0.0
        p[np.isnan(p)] = 1.0
        scores[r] = t
        padj[r] = _bh_adjust(p)
        logfc[r] = np.log2((np.expm1(means[r]) + 1e-9) / e_ref[None, :])
        rank[r] = np.argsort(-np.abs(t), axis=1, kind="stable")
    return {"rank": rank, "scores": scores, "logfc": logfc, "pvals_adj": padj}


def _check_chunk(X, start: int, state: dict) -> None:
    vals = np.asarray(X.data if sp.issparse(X) else X).ravel()
    if vals.size == 0:
        return
    if not np.issubdtype(vals.dtype, np.number):
        raise DataValidationError(f"the expression matrix has dtype {vals.dtype}; it must be numeric.")
    bad = ~np.isfinite(vals)
    if bad.any():
        raise DataValidationError(
            f"the expression matrix holds {int(bad.sum())} NaN or infinite values in cells "
            f"{start}..{start + X.shape[0] - 1}. Impute or remove them upstream and reload."
        )
    lo, hi = float(vals.min()), float(vals.max())
    if lo < 0:
        raise DataValidationError(
            f"the expression matrix has negative values (min {lo:.3g}, cells from {start}). priorgnn "
            "expects log1p of normalised counts; load the unscaled log-normalised layer instead."
        )
    if hi > MAX_LOG_VALUE:
        raise DataValidationError(
            f"the expression matrix reaches {hi:.4g} (cells from {start}), more than log1p of normalised "
            "counts can: the data are raw counts or not log-transformed. Normalise and log1p them first."
        )
    state["max"] = max(state["max"], hi)
    if state["integer"]:
        sample = vals[:: max(1, vals.size // 200_000)]
        state["integer"] = bool(np.all(sample == np.round(sample)))


def summarise_h5ad(
    path: str | os.PathLike, *, condition_column: str = "condition", gene_column: str | None = "gene_name",
    chunk_rows: int = 20_000, min_cells: int = 2, allow_unmeasured_perturbations: bool = False,
    progress: bool = False, moments: bool = False,
) -> ConditionSummaries | tuple[ConditionSummaries, np.ndarray]:
    """Pseudobulk means and DE rankings of a GEARS-style ``.h5ad``, streamed from disk.

    The file must hold log-normalised expression (as :func:`~priorgnn.data.io.read_h5ad` expects,
    without ``normalize``); it is validated chunk by chunk with the same errors. Conditions are
    canonicalised; conditions with fewer than ``min_cells`` cells are an error.

    Parameters
    ----------
    path
        The ``.h5ad`` (GEARS style: ``obs[condition_column]``, gene symbols in ``var[gene_column]``
        or the var index).
    chunk_rows
        Cells read per chunk. Peak memory is about the summaries (six ``[conditions, genes]``
        float64 arrays) plus one chunk.
    progress
        Show a progress bar.
    moments
        Also return the central moments ``[4, conditions, genes]`` (mean, c2, c3, c4; population
        moments, as :func:`priorgnn.data.dataset.condition_moments` computes them from the
        matrix), accumulated from the third and fourth power sums in the same pass.
    """
    from priorgnn.data.io import _read_file

    adata = _read_file(path, backed=True)
    try:
        if condition_column not in adata.obs:
            raise DataValidationError(
                f"no obs column {condition_column!r} naming each cell's perturbation. Available columns: "
                f"{', '.join(map(str, adata.obs.columns)) or '(none)'}."
            )
        if gene_column and gene_column in adata.var:
            genes = pd.Index(adata.var[gene_column].astype(str).to_numpy(), dtype=str)
        else:
            genes = pd.Index(adata.var_names.astype(str), dtype=str)
        check_unique_names(genes, "gene")
        check_unique_names(pd.Index(adata.obs_names.astype(str)), "cell")
        cond = canonicalise_conditions(adata.obs[condition_column])
        check_cells_per_condition(cond, min_cells=min_cells)
        codes, uniques = pd.factorize(cond.to_numpy())
        conditions = [CTRL] + sorted(set(uniques) - {CTRL})
        perturbed = sorted({g for c in conditions[1:] for g in c.split("+") if g != CTRL})
        check_perturbed_genes_measured(perturbed, genes, allow_unmeasured=allow_unmeasured_perturbations)
        row_of = pd.Series(np.arange(len(conditions)), index=conditions)[list(uniques)].to_numpy()
        cell_row = row_of[codes]

        C, G = len(conditions), len(genes)
        sums = np.zeros((C, G))
        sumsq = np.zeros((C, G))
        higher = np.zeros((2, C, G)) if moments else None  # sums of x^3 and x^4
        state = {"integer": True, "max": 0.0}
        n = adata.n_obs
        spans = range(0, n, chunk_rows)
        if progress:
            from tqdm.auto import tqdm

            spans = tqdm(spans, desc="summaries", unit="chunk")
        for s in spans:
            e = min(n, s + chunk_rows)
            X = adata.X[s:e]
            X = sp.csr_matrix(X, dtype=np.float64) if not sp.issparse(X) else X.tocsr().astype(np.float64)
            _check_chunk(X, s, state)
            present, local = np.unique(cell_row[s:e], return_inverse=True)
            ind = sp.csr_matrix((np.ones(e - s), (local, np.arange(e - s))), shape=(present.size, e - s))
            add_sparse_rows(sums, present, ind @ X)
            base = X.data.copy() if moments else None
            X.data **= 2
            add_sparse_rows(sumsq, present, ind @ X)
            if moments:  # the same sparsity pattern, its values raised to the 3rd and 4th power
                for k in range(2):
                    X.data *= base
                    add_sparse_rows(higher[k], present, ind @ X)
        if state["integer"] and state["max"] > 1:
            raise DataValidationError(
                f"the expression matrix holds integer values up to {state['max']:.0f}: these look like raw "
                "counts, but log-normalised data are expected. Normalise and log1p them first."
            )
    finally:
        adata.file.close()

    n_cells = np.bincount(cell_row, minlength=C).astype(np.int64)
    means = sums / n_cells[:, None]
    central = None
    if moments:
        central = central_moments(means.copy(), sumsq / n_cells[:, None], higher[0] / n_cells[:, None],
                                  higher[1] / n_cells[:, None])
        del higher
    # unbiased variance (ddof=1), as scanpy's t-test uses; clipped at 0 against round-off
    variances = sumsq
    variances -= sums * means
    variances /= np.maximum(n_cells - 1, 1)[:, None]
    np.maximum(variances, 0.0, out=variances)
    del sums
    de = welch_de(means, variances, n_cells, ctrl_row=0)
    log.info("streamed summaries: %d conditions x %d genes from %d cells", C, G, n)
    summaries = ConditionSummaries(
        conditions=conditions, genes=genes, means=means, n_cells=n_cells, de_rank=de["rank"],
        de_scores=de["scores"], de_logfc=de["logfc"], de_pvals_adj=de["pvals_adj"],
    )
    return (summaries, central) if moments else summaries


class SummaryData:
    """A data set held as per-condition statistics only: summaries and the central moments that the
    training losses use, streamed from an ``.h5ad`` by :func:`summarise_h5ad` without ever holding
    the cell matrix (``train.py --summaries-only``). It offers what models that learn from
    per-condition statistics read (PriorGNN and the baselines but the transformer); anything that
    needs cells (the co-expression graph from cells, the transformer's pretraining, cell-gears, the
    noise ceiling) raises an error that says so.

    ``content_hash`` is the SHA-256 of the file, not :attr:`PerturbationData.content_hash` (that one
    hashes the loaded matrix); a run records it as ``file_sha256`` and checks the file against it.
    """

    def __init__(self, summaries: ConditionSummaries, moments: np.ndarray, *, name: str, source: str,
                 file_sha256: str) -> None:
        self.summaries, self.moments, self.name, self.source = summaries, moments, name, source
        self.content_hash = self.file_sha256 = file_sha256
        self.de_method = "t-test"

    @classmethod
    def from_h5ad(cls, path: str | os.PathLike, *, name: str | None = None, progress: bool = False,
                  chunk_rows: int = 4096, **kwargs) -> SummaryData:
        """Stream ``path`` (chunks of ``chunk_rows`` cells: a float64 chunk and a copy of its values are
        held at once) into summaries and moments, and checksum the file."""
        from pathlib import Path

        from priorgnn.io import sha256_file

        summaries, moments = summarise_h5ad(path, moments=True, progress=progress, chunk_rows=chunk_rows, **kwargs)
        return cls(summaries, moments, name=name or Path(path).stem, source=str(path),
                   file_sha256=sha256_file(path))

    genes = property(lambda self: self.summaries.genes)
    conditions = property(lambda self: list(self.summaries.conditions))
    perturbations = property(lambda self: self.conditions[1:])
    n_genes = property(lambda self: len(self.summaries.genes))
    n_cells = property(lambda self: int(self.summaries.n_cells.sum()))
    control_mean = property(lambda self: self.summaries.control_mean)

    @cached_property
    def gene_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}

    @cached_property
    def perturbed_genes(self) -> list[str]:
        from priorgnn.data.conditions import parse_condition

        return sorted({g for c in self.perturbations for g in parse_condition(c)})

    def condition_moments(self, groups: list[str]) -> np.ndarray:
        """``[4, len(groups), G]`` central moments, as :func:`~priorgnn.data.dataset.condition_moments`."""
        row = self.summaries.row
        missing = [g for g in groups if g not in row]
        if missing:
            raise DataValidationError(f"conditions not in the data: {', '.join(missing[:5])}.")
        return self.moments[:, [row[g] for g in groups]]

    def _needs_cells(self, what: str):
        raise DataValidationError(
            f"{what} needs the cell matrix, but the data ({self.source}) were loaded as per-condition "
            "summaries only (--summaries-only). Drop --summaries-only, or give what needs cells as a file "
            "(e.g. --coexpression GRAPH.npz)."
        )

    X = property(lambda self: self._needs_cells("this step"))
    cell_conditions = property(lambda self: self._needs_cells("this step"))
    adata = property(lambda self: self._needs_cells("this step"))

    def __repr__(self) -> str:
        return (f"SummaryData({self.name!r}: {len(self.conditions)} conditions x {self.n_genes} genes, "
                f"{self.n_cells} cells summarised)")
