"""Per-row top-k selection on dense score chunks, shared by the GO and co-expression builders.

GEARS keeps, for every target gene, the ``k + 1`` highest-scoring genes (itself included) whose
score passes a threshold. Its GO graph does so with ``pandas`` ``nlargest(k + 1, keep='first')``
over rows listed in gene order, so a tie at the cut-off goes to the gene that comes first. The
selection here reproduces that rule on whole chunks of rows at once (no per-row Python loop).

The row-wise top-k itself is ``torch.topk`` (about twice as fast as ``np.argpartition`` here);
the other passes over a chunk are numpy's, faster than torch's for comparisons and counts.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["select_top_k", "auto_chunk_rows"]


def auto_chunk_rows(n_cols: int, budget_bytes: int = 64 << 20, itemsize: int = 8) -> int:
    """Rows per chunk so that one dense ``[rows, n_cols]`` array takes about ``budget_bytes``."""
    return int(max(1, min(budget_bytes // max(1, n_cols * itemsize), 1 << 16)))


def select_top_k(scores: np.ndarray, k1: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``k1`` largest scores per row that are ``> threshold``.

    Parameters
    ----------
    scores
        Dense ``[rows, cols]`` float array (C-contiguous arrays are used without a copy). NaN counts
        as below any threshold.
    k1
        How many to keep per row (GEARS's ``k + 1``: ``k`` neighbours plus the gene itself).
    threshold
        Strict lower bound on kept scores.

    Returns
    -------
    rows, cols
        Indices of the kept entries, ordered by row then column. A tie at a row's cut-off is
        broken in favour of the lower column index, as ``nlargest(keep='first')`` does over rows in
        column order.
    """
    scores = np.ascontiguousarray(scores)
    n_rows, n_cols = scores.shape
    empty = np.zeros(0, dtype=np.int64)
    if n_rows == 0 or n_cols == 0 or k1 <= 0:
        return empty, empty
    if k1 >= n_cols:
        rows, cols = np.nonzero(scores > threshold)  # NaN compares False
        return rows.astype(np.int64), cols.astype(np.int64)
    vals, idx = _top_k(scores, k1)  # [rows, k1], descending
    if np.isnan(vals).any():  # torch.topk ranks NaN first; rank it last and select again
        scores = np.where(np.isnan(scores), -np.inf, scores)
        vals, idx = _top_k(scores, k1)
    kth = vals[:, -1]
    # values above the k1-th largest are all among the returned ones; a row whose count of values
    # >= its k1-th largest exceeds k1 has ties at the cut-off outside them, broken by column
    n_at_least = np.count_nonzero(scores >= kth[:, None], axis=1)
    fix = np.nonzero((n_at_least > k1) & (kth > threshold))[0]
    keep = vals > threshold
    keep[fix] &= vals[fix] > kth[fix, None]
    rows = np.broadcast_to(np.arange(n_rows)[:, None], vals.shape)[keep]
    cols = idx[keep]
    if fix.size:
        need = k1 - keep[fix].sum(axis=1)
        tr, tc = np.nonzero(scores[fix] == kth[fix, None])  # row by row, columns ascending
        rank = np.arange(tr.size) - np.searchsorted(tr, tr, side="left")
        sel = rank < need[tr]
        rows = np.concatenate([rows, fix[tr[sel]]])
        cols = np.concatenate([cols, tc[sel]])
    order = np.lexsort((cols, rows))
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def _top_k(scores: np.ndarray, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and column indices of the ``k1`` largest entries of each row, descending."""
    values, indices = torch.topk(torch.from_numpy(scores), k1, dim=1, sorted=True)
    return values.numpy(), indices.numpy()
