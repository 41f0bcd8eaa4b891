"""Diagnostics of a model's predictions as a whole (arrays in, numbers out; no model is imported).

:func:`relative_spread` asks whether a model tells test conditions apart at all: the spread of its
predicted changes across the conditions of a subgroup, relative to the spread of the observed
changes across the same conditions. A model that returns (nearly) one vector for every condition has
a relative spread near 0 even when its scores look reasonable (a constant vector close to the mean
change scores well on Pearson Δ under the systematic variation of real screens), so the report
flags it next to its scores.

The spread of a ``[C, G]`` matrix ``X`` is the root mean square deviation from the per-gene mean
across conditions::

    spread(X) = sqrt( mean_{c, g} (X[c, g] - mean_c' X[c', g])² )

over the entries that are not masked out. The perturbed genes of each condition are masked out
(``exclude``), as in the ``*_excl_target`` metrics: a model that sets each target's own expression
but predicts the same change everywhere else should still be flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from priorgnn.errors import DataValidationError
from priorgnn.metrics.core import keep_mask

__all__ = ["CONSTANT_THRESHOLD", "spread", "relative_spread", "constant_prediction_table", "systematic_variation"]

#: A model whose relative spread in a subgroup is below this is flagged as predicting (nearly) the
#: same change for every condition of the subgroup.
CONSTANT_THRESHOLD = 0.05


def spread(x: np.ndarray, exclude: Sequence[Sequence[int]] | None = None) -> float:
    """Root mean square deviation of ``x`` ``[C, G]`` from its per-gene mean across conditions.

    Entries ``x[c, exclude[c]]`` are left out of both the per-gene means and the average. NaN for
    fewer than two conditions (no spread is defined).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataValidationError(f"spread needs a [conditions, genes] matrix, got shape {x.shape}.")
    if x.shape[0] < 2:
        return float("nan")
    keep = keep_mask(x.shape, exclude)
    n = keep.sum(axis=0)
    col_mean = np.where(n > 0, np.where(keep, x, 0.0).sum(axis=0) / np.maximum(n, 1), 0.0)
    dev = np.where(keep, x - col_mean[None, :], 0.0)
    total = keep.sum()
    return float(np.sqrt((dev ** 2).sum() / total)) if total else float("nan")


def relative_spread(predicted: np.ndarray, observed: np.ndarray,
                    exclude: Sequence[Sequence[int]] | None = None) -> float:
    """``spread(predicted) / spread(observed)`` over the same conditions and genes.

    Near 0: the model predicts (nearly) the same change for every condition; about 1: its
    predictions vary across conditions as much as the data do. NaN when fewer than two conditions
    or the observed changes do not vary.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if predicted.shape != observed.shape:
        raise DataValidationError(f"predicted {predicted.shape} and observed {observed.shape} changes differ "
                                  "in shape; give both for the same conditions and genes.")
    so = spread(observed, exclude)
    if not np.isfinite(so) or so == 0:
        return float("nan")
    return spread(predicted, exclude) / so


def constant_prediction_table(predicted: Mapping[str, np.ndarray], observed: np.ndarray,
                              subgroups: Sequence[str], *, seed: int = 0,
                              exclude: Sequence[Sequence[int]] | None = None,
                              threshold: float = CONSTANT_THRESHOLD) -> pd.DataFrame:
    """Per model and subgroup: the spread of predicted and observed changes and the flag.

    Parameters
    ----------
    predicted
        Model label → predicted changes ``[C, G]`` (rows in the order of ``observed``).
    observed
        Observed changes ``[C, G]``.
    subgroups
        The subgroup of each of the ``C`` conditions.
    seed
        The seed label of the rows.
    exclude
        Per condition, the gene indices left out (its perturbed genes).
    threshold
        ``constant`` is true where ``relative_spread < threshold``.

    Returns
    -------
    Columns ``model, seed, subgroup, n_conditions, predicted_spread, observed_spread,
    relative_spread, constant`` (``constant`` is false where the ratio is undefined).
    """
    observed = np.asarray(observed, dtype=np.float64)
    subgroups = np.asarray(list(subgroups), dtype=object)
    if len(subgroups) != observed.shape[0]:
        raise DataValidationError(f"{len(subgroups)} subgroup labels for {observed.shape[0]} conditions.")
    rows = []
    for label, pred in predicted.items():
        pred = np.asarray(pred, dtype=np.float64)
        for sg in dict.fromkeys(subgroups.tolist()):
            idx = np.flatnonzero(subgroups == sg)
            ex = None if exclude is None else [exclude[i] for i in idx]
            ps, os_ = spread(pred[idx], ex), spread(observed[idx], ex)
            rel = ps / os_ if np.isfinite(os_) and os_ > 0 else float("nan")
            rows.append({"model": label, "seed": seed, "subgroup": sg, "n_conditions": len(idx),
                         "predicted_spread": ps, "observed_spread": os_, "relative_spread": rel,
                         "constant": bool(np.isfinite(rel) and rel < threshold)})
    return pd.DataFrame(rows, columns=["model", "seed", "subgroup", "n_conditions", "predicted_spread",
                                       "observed_spread", "relative_spread", "constant"])


def systematic_variation(data) -> np.ndarray:
    """Systematic variation of a perturbation data set: per single perturbation, the Pearson
    correlation of its observed change with the mean change of all *other* perturbations (singles and
    doubles, as the ``mean`` baseline averages its training perturbations), off its own target
    (:func:`~priorgnn.metrics.core.rowwise_pearson`). Its median is what the ``mean`` baseline scores
    on a held-out single without noise in its own estimate; real screens show a large common
    component (Systema, Viñas Torné et al. 2025)."""
    from priorgnn.data.conditions import parse_condition
    from priorgnn.metrics.core import perturbed_gene_idx, rowwise_pearson

    s = data.summaries
    perts = [c for c in data.conditions if parse_condition(c)]
    singles = [c for c in perts if len(parse_condition(c)) == 1]
    if len(perts) < 2 or not singles:
        raise DataValidationError(f"systematic_variation needs at least one single and one other perturbation; "
                                  f"the data hold {len(singles)} single(s) among {len(perts)} perturbation(s).")
    total = np.sum([s.delta(c) for c in perts], axis=0)
    D = np.stack([s.delta(c) for c in singles])
    others = (total[None, :] - D) / (len(perts) - 1)
    return rowwise_pearson(others, D, keep_mask(D.shape, perturbed_gene_idx(singles, data.genes)))
