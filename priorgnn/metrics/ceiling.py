"""The split-half noise ceiling: the best score the data's own noise allows.

For every evaluated condition, its cells are split at random into two halves (seeded; with an odd
number of cells the second half has one more). The pseudobulk mean of the first half plays the
prediction and that of the second half the observation, and every metric is computed exactly as for
a model: the same DE genes, highly expressed genes, control mean (all from the full data), the same
training-perturbation mean and, for the interaction label, the same measured singles. A model that
knew each condition's true mean would be compared with a full observation; the ceiling compares two
noisy halves, each with twice the sampling variance of the full mean, so it is **conservative**: for
the mean squared error, a perfect model scores about a quarter of the split-half value in
expectation (error variance σ²/n against (2σ²/n)·2), and correlations are likewise attenuated. A
model can therefore score beyond this "ceiling"; one that does not reach it is not limited by noise.
Conditions with fewer than two cells get no ceiling (NaN).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from priorgnn.metrics.core import MetricContext, compute_condition_metrics

if TYPE_CHECKING:
    from priorgnn.data.dataset import PerturbationData

log = logging.getLogger(__name__)

__all__ = ["split_half_means", "noise_ceiling"]


def split_half_means(data: PerturbationData, conditions: Sequence[str], *, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudobulk means of two random halves of the cells of each condition.

    Returns
    -------
    ``(half_a, half_b, n_cells)``: two ``[C, G]`` float64 arrays (NaN rows for conditions with
    fewer than two cells) and ``[C, 2]`` the cells in each half.
    """
    rng = np.random.default_rng(seed)
    C = len(conditions)
    rows, cols = [], []
    counts = np.zeros((C, 2), dtype=np.int64)
    for i, c in enumerate(conditions):
        cells = rng.permutation(data.cells_of(c))
        if cells.size < 2:
            continue
        h = cells.size // 2
        for half, part in ((0, cells[:h]), (1, cells[h:])):
            rows.append(np.full(part.size, 2 * i + half))
            cols.append(part)
            counts[i, half] = part.size
    if rows:
        r, c_ = np.concatenate(rows), np.concatenate(cols)
        ind = sp.csr_matrix((np.ones(r.size), (r, c_)), shape=(2 * C, data.n_cells))
        sums = ind @ data.X
        sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    else:
        sums = np.zeros((2 * C, data.n_genes))
    flat = counts.reshape(-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / flat[:, None]
    means[flat == 0] = np.nan
    return means[0::2], means[1::2], counts


def noise_ceiling(
    data: PerturbationData,
    ctx: MetricContext,
    *,
    seed: int = 0,
    n_repeats: int = 1,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every metric between two random halves of each condition's cells (module docstring).

    Parameters
    ----------
    data
        The data set the context was built from.
    ctx
        The observed-reference :class:`~priorgnn.metrics.core.MetricContext` of the evaluated
        conditions.
    seed
        Seed of the random halves; repeat ``r`` uses ``seed + r``.
    n_repeats
        Independent random splits to average per condition (reduces the ceiling's own variance;
        the interaction labels are then left out).

    Returns
    -------
    Condition-indexed metric table, like :func:`~priorgnn.metrics.core.compute_condition_metrics`.
    """
    tables = []
    for r in range(max(1, int(n_repeats))):
        a, b, _ = split_half_means(data, ctx.conditions, seed=seed + r)
        ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        n_bad = int((~ok).sum())
        if n_bad and r == 0:
            log.warning("%d condition(s) have fewer than two cells and get no noise ceiling", n_bad)
        sub = ctx.subset(np.nonzero(ok)[0]) if n_bad else ctx
        t = compute_condition_metrics(a[ok], b[ok], sub, metrics=metrics)
        tables.append(t.reindex(ctx.conditions))
    if len(tables) == 1:
        return tables[0]
    numeric = [c for c in tables[0].columns if pd.api.types.is_numeric_dtype(tables[0][c])]
    stacked = np.stack([t[numeric].to_numpy(dtype=np.float64) for t in tables])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN conditions stay NaN
        mean = np.nanmean(stacked, axis=0)
    return pd.DataFrame(mean, index=tables[0].index, columns=numeric)
