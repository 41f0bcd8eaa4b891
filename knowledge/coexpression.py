"""The co-expression graph, from training cells only.

GEARS's co-expression prior: the absolute Pearson correlation of every gene pair over the
training cells; each target gene keeps its ``k`` (20) most correlated genes plus itself, among
pairs with ``|r| > threshold`` (0.4). Edges run from the correlated gene (source) to the gene
(target).

The correlation is accumulated over chunks of cells (two passes: column means, then the
centred cross-product ``Xc^T Xc``), so that memory is bounded by the ``[genes, genes]`` result and
one dense chunk, never the dense cell x gene matrix. Only the cells of the split's training
conditions (control included) are read: no validation or test cell can influence the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from knowledge._select import auto_chunk_rows, select_top_k
from knowledge.graph import GeneGraph
from priorgnn.errors import GraphError

log = logging.getLogger(__name__)

__all__ = ["pearson_correlation", "coexpression_graph", "build_coexpression_graph", "training_cells"]


def _dense_rows(X, rows: np.ndarray) -> np.ndarray:
    block = X[rows]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return np.asarray(block, dtype=np.float64)


def _chunks(n: int, size: int):
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def _progress(items, *, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="chunk")


def _mirror_upper(a: np.ndarray, block: int = 512) -> None:
    """Copy the upper triangle of square ``a`` onto its lower triangle, in place, block by block
    (``np.triu(a) + np.triu(a, 1).T`` would hold three more ``[genes, genes]`` arrays)."""
    n = a.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        a[s:e, :s] = a[:s, s:e].T
        diag = a[s:e, s:e]
        lower = np.tril_indices(e - s, -1)
        diag[lower] = diag.T[lower]


def pearson_correlation(
    X, rows: np.ndarray | None = None, *, chunk_size: int | None = None, progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation between the columns of ``X`` over the given rows, chunk by chunk.

    Parameters
    ----------
    X
        ``[cells, genes]`` matrix, sparse (CSR) or dense.
    rows
        Cells to use (default: all). No other row is read.
    chunk_size
        Cells per dense chunk (default: about 64 MB per chunk).
    progress
        Show progress bars.

    Returns
    -------
    corr
        ``[genes, genes]`` float64 correlation, within ``[-1, 1]``; the diagonal is 1 for genes with
        variance and every entry of a gene without variance is 0 (not NaN).
    constant
        ``[genes]`` bool, genes with no variance over the rows.
    """
    from scipy.linalg.blas import dsyrk

    n_cells, n_genes = X.shape
    rows = np.arange(n_cells) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.size < 2:
        raise GraphError(f"co-expression needs at least 2 cells; {rows.size} given.")
    if sp.issparse(X):
        X = X.tocsr()
    chunk = chunk_size or auto_chunk_rows(n_genes)
    spans = _chunks(rows.size, chunk)
    # pass 1: column means, minimum and maximum (exact zero-variance test)
    total = np.zeros(n_genes)
    lo = np.full(n_genes, np.inf)
    hi = np.full(n_genes, -np.inf)
    for s, e in _progress(spans, enabled=progress, desc="co-expression means"):
        block = _dense_rows(X, rows[s:e])
        total += block.sum(axis=0)
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
    mean = total / rows.size
    constant = lo == hi
    # pass 2: centred cross-products; two passes rather than sum(x*y) - n*mean*mean, which loses
    # digits to cancellation when a gene's mean is large against its spread
    cross = np.zeros((n_genes, n_genes), order="F")
    for s, e in _progress(spans, enabled=progress, desc="co-expression"):
        block = _dense_rows(X, rows[s:e])
        block -= mean
        # BLAS syrk updates one triangle of cross += block.T @ block: half the work of a matmul
        cross = dsyrk(1.0, block.T, beta=1.0, c=cross, trans=0, lower=0, overwrite_c=1)
    _mirror_upper(cross)
    var = np.diag(cross).copy()
    var[constant] = 1.0  # their rows are zeroed below
    scale = 1.0 / np.sqrt(var)
    corr = cross
    corr *= scale[:, None]
    corr *= scale[None, :]
    np.clip(corr, -1.0, 1.0, out=corr)
    np.fill_diagonal(corr, 1.0)
    corr[constant, :] = 0.0
    corr[:, constant] = 0.0
    return corr, constant


def coexpression_graph(
    X, genes: Sequence[str], rows: np.ndarray | None = None, *, k: int = 20, threshold: float = 0.4,
    chunk_size: int | None = None, progress: bool = False, provenance: dict | None = None,
) -> GeneGraph:
    """GEARS's co-expression graph from the given rows of ``X``.

    Each target gene keeps the ``k + 1`` genes (itself included) of highest ``|r|`` with
    ``|r| > threshold``; the weight is ``|r|``. Ties at the cut-off go to the lower gene index.
    Genes without variance get no edge.

    Parameters
    ----------
    X, rows, chunk_size, progress
        As in :func:`pearson_correlation`.
    genes
        Names of the columns of ``X``.
    k, threshold
        GEARS's defaults: 20 and 0.4.
    provenance
        Extra provenance entries (sources, split) recorded on the graph.
    """
    genes = [str(g) for g in genes]
    if len(genes) != X.shape[1]:
        raise GraphError(f"{len(genes)} gene names for a matrix of {X.shape[1]} columns.")
    if k < 0:
        raise GraphError(f"k must be >= 0, not {k}.")
    if not 0 <= threshold < 1:
        raise GraphError(f"the correlation threshold must be in [0, 1), not {threshold}.")
    corr, constant = pearson_correlation(X, rows, chunk_size=chunk_size, progress=progress)
    np.abs(corr, out=corr)
    n = len(genes)
    src_parts, dst_parts, w_parts = [], [], []
    step = auto_chunk_rows(n)
    for s, e in _chunks(n, step):
        r, c = select_top_k(corr[s:e], k + 1, threshold)
        dst_parts.append(r + s)
        src_parts.append(c)
        w_parts.append(corr[s:e][r, c])
    src = np.concatenate(src_parts) if src_parts else np.zeros(0, dtype=np.int64)
    dst = np.concatenate(dst_parts) if dst_parts else np.zeros(0, dtype=np.int64)
    w = np.concatenate(w_parts) if w_parts else np.zeros(0)
    n_rows = X.shape[0] if rows is None else len(rows)
    prov = {
        "kind": "coexpression",
        "method": "|pearson r| over training cells; top k+1 per target (self included) with |r| > threshold",
        "params": {"k": int(k), "threshold": float(threshold)},
        "n_cells": int(n_rows),
        "n_constant_genes": int(constant.sum()),
        **(provenance or {}),
    }
    if constant.any():
        log.info("%d gene(s) do not vary over the %d training cells and get no co-expression edge",
                 int(constant.sum()), n_rows)
    graph = GeneGraph(genes, np.stack([src, dst]), w.astype(np.float32), prov)
    log.info("co-expression graph: %s from %d cells", graph, n_rows)
    return graph


def training_cells(data, split, *, include_combinations: bool = True) -> tuple[np.ndarray, list[str]]:
    """Rows of ``data`` in the training conditions of ``split`` (control included).

    ``include_combinations=False`` keeps control and single perturbations only, as GEARS does
    (its co-expression uses training conditions whose name contains ``ctrl``).
    """
    from priorgnn.data.conditions import CTRL, parse_condition

    conds = [c for c in split.train if include_combinations or len(parse_condition(c)) <= 1]
    if CTRL not in conds:
        conds = [CTRL, *conds]
    present = set(data.conditions)
    unknown = sorted(set(conds) - present)
    if unknown:
        raise GraphError(f"the split's training conditions {unknown[:5]} are not in the data; the split was "
                         "made for other data. Make a split for these data.")
    rows = data.cells_in(conds)
    return rows, sorted(conds)


def build_coexpression_graph(
    data, split, *, k: int = 20, threshold: float = 0.4, include_combinations: bool = True,
    chunk_size: int | None = None, progress: bool = False,
) -> GeneGraph:
    """The co-expression graph of a :class:`~priorgnn.data.dataset.PerturbationData` over the
    training cells (control + training conditions) of a :class:`~priorgnn.data.splits.Split`.

    Parameters
    ----------
    data
        The data set; its log-normalised ``X`` is read for training cells only.
    split
        The split whose ``train`` conditions (and control) provide the cells.
    k, threshold
        GEARS's defaults: 20 and 0.4.
    include_combinations
        Use training combinations too (default). ``False`` uses control and singles only, as
        GEARS does.
    chunk_size, progress
        As in :func:`pearson_correlation`.
    """
    from priorgnn.io import hash_arrays

    rows, conds = training_cells(data, split, include_combinations=include_combinations)
    prov = {
        "sources": [{"role": "data", "path": str(data.source or data.name), "content_hash": data.content_hash}],
        "split": {"kind": split.kind, "seed": split.seed, "train_hash": hash_arrays(sorted(split.train))},
        "conditions_used": "train" if include_combinations else "ctrl+train singles",
        "n_conditions": len(conds),
    }
    graph = coexpression_graph(data.X, list(data.genes), rows, k=k, threshold=threshold,
                               chunk_size=chunk_size, progress=progress, provenance=prov)
    graph.provenance["params"]["include_combinations"] = bool(include_combinations)
    return graph
