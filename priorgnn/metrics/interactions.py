"""Metrics of genetic interactions: how well a model predicts what is *not* additive in a double.

All functions score arrays; none imports a model. For a double ``A+B``:

* the **non-additive part** of a prediction is ``p_AB − (m_A + m_B)``, with ``m`` the *measured*
  single changes the model was given (the training singles), and the true one is
  ``t_AB − (t_A + t_B)`` (on simulated data the noise-free truth, on real data the observed means);
  :func:`nonadditive_correlation` correlates them per double and pooled over doubles. A constant
  predicted part (the ``additive`` baseline predicts exactly zero) has correlation **0**, not NaN:
  the metric then says "no interaction predicted", which is the additive baseline's score;
* **Norman et al.'s scores** (``c1, c2, magnitude, corr_fit``; :func:`priorgnn.interactions.interaction_scores`)
  of the predicted double, fitted on the measured singles, against those of the true double on the
  true singles: absolute error per double and Spearman correlation across doubles
  (:func:`interaction_score_agreement`);
* **GI label accuracy**: the share of doubles whose label (:func:`priorgnn.interactions.interaction_label`)
  matches the truth's (:func:`gi_label_accuracy`);
* **precision@k** of a ranking of pairs by predicted interaction strength against a set of truly
  interacting pairs (:func:`precision_at_k`, :func:`top_k_pairs`).

:func:`interaction_metrics` computes all of them for a set of doubles. Two are also registered as
per-condition metrics (they need the singles, ``needs=('gi',)``, like ``gi_label_match``) so that
:func:`~priorgnn.metrics.core.compute_condition_metrics` can compute them: ``nonadditive_corr`` and
``gi_magnitude_abs_error``. A per-condition metric sees only the reference's singles
(``MetricContext.gi_singles``), so both sides use those: on the observed reference these are the
measured singles, exactly the definition above; on the truth reference they are the true singles,
and the predicted part then also carries the measurement error of the singles the model was given.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from priorgnn.data.conditions import parse_condition
from priorgnn.errors import DataValidationError
from priorgnn.interactions import (
    ZERO_RTOL,
    GIThresholds,
    interaction_label,
    interaction_scores,
    relative_nonadditive,
    zero_rounding,
)
from priorgnn.metrics.core import MetricBatch, keep_mask
from priorgnn.metrics.registry import BestValue, register_metric

__all__ = [
    "ZERO_RTOL",
    "TIE_TOL",
    "SCORED",
    "corr_or_zero",
    "nonadditive_parts",
    "nonadditive_correlation",
    "relative_nonadditive_size",
    "interaction_score_agreement",
    "gi_label_accuracy",
    "precision_at_k",
    "top_k_pairs",
    "interaction_metrics",
]

#: (defined in :mod:`priorgnn.interactions`, which ranks pairs by the same quantity)
#: Scores (or ranking values) this close, relative to ``max(1, max|value|)``, count as equal: far
#: above float32 rounding (~1e-7 relative), far below any difference that means something.
TIE_TOL = 1e-6
#: Norman et al.'s scores compared between prediction and truth.
SCORED = ("c1", "c2", "magnitude", "corr_fit")


def corr_or_zero(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of ``x`` and ``y``; 0 when either is constant (no variation predicts or
    explains nothing), NaN when either holds a non-finite value."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise DataValidationError(f"corr_or_zero: lengths differ ({x.size} and {y.size}).")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    x = x - x.mean()
    y = y - y.mean()
    d = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / d) if d > 0 else 0.0


def nonadditive_parts(double: np.ndarray, single_a: np.ndarray, single_b: np.ndarray) -> np.ndarray:
    """``double − (single_a + single_b)``, row by row (``[D, G]`` or ``[G]``)."""
    double, a, b = (np.asarray(v, dtype=np.float64) for v in (double, single_a, single_b))
    if not (double.shape == a.shape == b.shape):
        raise DataValidationError(
            f"nonadditive_parts: shapes differ (double {double.shape}, singles {a.shape}, {b.shape}); "
            "pass the doubles and their two singles over the same genes, row by row."
        )
    return double - a - b


def nonadditive_correlation(
    pred_double: np.ndarray,
    measured_a: np.ndarray,
    measured_b: np.ndarray,
    true_double: np.ndarray,
    true_a: np.ndarray,
    true_b: np.ndarray,
    *,
    exclude: Sequence[Sequence[int]] | None = None,
) -> tuple[np.ndarray, float]:
    """Correlation of the predicted non-additive part with the true one.

    Parameters
    ----------
    pred_double
        ``[D, G]`` predicted changes of the doubles.
    measured_a, measured_b
        ``[D, G]`` the measured (training) changes of each double's two singles.
    true_double, true_a, true_b
        ``[D, G]`` the true changes of the doubles and of their singles.
    exclude
        Per double, gene indices to leave out (e.g. its own perturbed genes).

    Returns
    -------
    ``(per_double [D], pooled)``: the Pearson correlation over genes of each double, and one over
    all doubles' genes together. A constant predicted part gives 0 (see the module docstring).
    """
    pred = np.atleast_2d(np.asarray(pred_double, dtype=np.float64))
    p = zero_rounding(nonadditive_parts(pred, np.atleast_2d(measured_a), np.atleast_2d(measured_b)), pred)
    t = nonadditive_parts(np.atleast_2d(true_double), np.atleast_2d(true_a), np.atleast_2d(true_b))
    if p.shape != t.shape:
        raise DataValidationError(f"predicted {p.shape} and true {t.shape} doubles differ in shape.")
    keep = keep_mask(p.shape, exclude, row="double")
    per = np.array([corr_or_zero(p[i, keep[i]], t[i, keep[i]]) for i in range(p.shape[0])])
    return per, corr_or_zero(p[keep], t[keep])


def relative_nonadditive_size(double: np.ndarray, single_a: np.ndarray, single_b: np.ndarray, *,
                              exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Size of the non-additive part relative to the additive expectation, per double:
    ``‖δAB − δA − δB‖₂ / ‖δA + δB‖₂`` over the genes not in ``exclude`` (e.g. the pair's own perturbed
    genes). 0 for an additive double (within float32 rounding, :data:`ZERO_RTOL`); NaN when the sum
    of the singles is zero there. Unlike Norman's magnitude it needs no fit, so it is defined for
    every pair, collinear singles included.
    """
    double = np.atleast_2d(np.asarray(double, dtype=np.float64))
    return relative_nonadditive(double, single_a, single_b, keep_mask(double.shape, exclude, row="double"))


def _constant(x: np.ndarray) -> bool:
    """Whether ``x`` varies only by rounding error (:data:`TIE_TOL`; an additive prediction's
    magnitudes are √2 ± 1e-8, whose rank order is noise)."""
    return bool(np.ptp(x) <= TIE_TOL * max(1.0, float(np.abs(x).max())))


def interaction_score_agreement(pred_scores: pd.DataFrame, true_scores: pd.DataFrame,
                                scores: Sequence[str] = SCORED) -> dict[str, float]:
    """Agreement of predicted and true Norman scores across doubles.

    ``pred_scores`` and ``true_scores`` are tables of :func:`priorgnn.interactions.score_interactions`
    (one row per double, aligned by ``condition``). Returns, for each score ``s``,
    ``{s}_abs_error`` (mean over doubles of ``|pred − true|``) and ``{s}_spearman`` (Spearman
    correlation across doubles; NaN when either side is constant, up to rounding, or fewer than 3
    doubles are finite).
    """
    p = pred_scores.set_index("condition")
    t = true_scores.set_index("condition")
    common = [c for c in t.index if c in p.index]
    if not common:
        raise DataValidationError("the predicted and true score tables share no double; score the same doubles.")
    out: dict[str, float] = {}
    for s in scores:
        a = p.loc[common, s].to_numpy(dtype=np.float64)
        b = t.loc[common, s].to_numpy(dtype=np.float64)
        ok = np.isfinite(a) & np.isfinite(b)
        out[f"{s}_abs_error"] = float(np.mean(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan")
        if ok.sum() >= 3 and not _constant(a[ok]) and not _constant(b[ok]):
            out[f"{s}_spearman"] = float(spearmanr(a[ok], b[ok]).statistic)
        else:
            out[f"{s}_spearman"] = float("nan")
    return out


def gi_label_accuracy(pred_labels: Sequence[str], true_labels: Sequence[str]) -> float:
    """Share of doubles whose predicted GI label equals the true one; doubles whose true label is
    ``'undetermined'`` are left out (NaN if none is left)."""
    if len(pred_labels) != len(true_labels):
        raise DataValidationError(f"{len(pred_labels)} predicted and {len(true_labels)} true labels; pass one per double.")
    pairs = [(p, t) for p, t in zip(pred_labels, true_labels) if t != "undetermined"]
    return float(np.mean([p == t for p, t in pairs])) if pairs else float("nan")


def top_k_pairs(scores: Mapping[str, float] | pd.Series, k: int) -> set[str]:
    """The ``k`` pairs with the largest finite scores (with all pairs tied at the ``k``-th value)."""
    s = pd.Series(scores, dtype=np.float64).dropna()
    if s.empty or k < 1:
        return set()
    kth = np.sort(s.to_numpy())[::-1][min(k, len(s)) - 1]
    return set(s.index[s.to_numpy() >= kth])


def precision_at_k(scores: Mapping[str, float] | pd.Series, relevant: Collection[str], k: int, *,
                   tol: float = TIE_TOL) -> float:
    """Share of truly interacting pairs among the ``k`` best-scored pairs (higher score first).

    Ties at the ``k``-th place are broken at random in expectation: a tied pair counts with its
    probability of being among the top ``k`` (so a ranking that scores every pair alike, as the
    additive baseline's does, gets the rate of interacting pairs, not whatever the input order
    gives). Scores within ``tol · max(1, max|score|)`` of the ``k``-th count as tied with it: an
    additive prediction stored as float32 has Norman magnitudes of √2 ± 1e-8, whose order is
    rounding error, not a ranking. Pairs with a NaN score come last, tied with each other.

    Parameters
    ----------
    scores
        Pair → predicted interaction score (larger = more interacting).
    relevant
        The pairs that truly interact (the truth set).
    k
        How many top pairs to look at (at most the number of pairs).
    """
    s = pd.Series(scores, dtype=np.float64)
    if k < 1 or k > len(s):
        raise DataValidationError(f"precision_at_k: k={k} must be between 1 and the number of pairs ({len(s)}).")
    v = s.to_numpy()
    v = np.where(np.isnan(v), -np.inf, v)
    kth = np.sort(v)[::-1][k - 1]
    finite = v[np.isfinite(v)]
    eps = tol * max(1.0, float(np.abs(finite).max())) if finite.size else 0.0
    tie = (v == kth) | (np.abs(v - kth) <= eps)
    above = (v > kth) & ~tie
    inclusion = above + tie * ((k - above.sum()) / tie.sum())
    rel = np.array([c in set(relevant) for c in s.index], dtype=np.float64)
    return float(np.sum(inclusion * rel) / k)


def interaction_metrics(
    doubles: Sequence[str],
    pred_double: np.ndarray,
    measured_singles: Mapping[str, np.ndarray],
    true_double: np.ndarray,
    true_singles: Mapping[str, np.ndarray],
    *,
    genes: np.ndarray | None = None,
    gene_index: Mapping[str, int] | None = None,
    thresholds: GIThresholds | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """All interaction metrics of a set of doubles.

    Parameters
    ----------
    doubles
        Double conditions ``'A+B'``, the rows of ``pred_double`` and ``true_double`` (``[D, G]``).
    measured_singles, true_singles
        Gene → ``[G]`` change of its single: the measured (training) singles the model was given, and
        the true singles.
    genes
        Gene indices for Norman's fit (e.g. :func:`priorgnn.interactions.highly_expressed_genes`);
        all genes if ``None``.
    gene_index
        Measured gene → column, to leave each double's perturbed genes out of the non-additive
        correlation; nothing is left out if ``None``.

    Returns
    -------
    ``(per_double, summary)``: a table with ``condition``, ``nonadditive_corr``, the predicted and
    true ``c1, c2, magnitude, corr_fit`` and labels and ``magnitude_abs_error``; and a dict with
    ``nonadditive_corr_mean`` (over doubles), ``nonadditive_corr_pooled``,
    ``gi_label_accuracy`` and :func:`interaction_score_agreement`'s numbers.
    """
    doubles = list(doubles)
    pairs = [parse_condition(c) for c in doubles]
    bad = [c for c, g in zip(doubles, pairs) if len(g) != 2]
    if bad:
        raise DataValidationError(f"{bad[:3]} are not doubles; interaction metrics need 'A+B' conditions.")
    missing = sorted({g for p in pairs for g in p if g not in measured_singles or g not in true_singles})
    if missing:
        raise DataValidationError(f"no measured or true single for {missing[:5]}; pass both singles of every double.")
    ma = np.stack([measured_singles[a] for a, _ in pairs]) if pairs else np.zeros((0, 0))
    mb = np.stack([measured_singles[b] for _, b in pairs]) if pairs else np.zeros((0, 0))
    ta = np.stack([true_singles[a] for a, _ in pairs]) if pairs else np.zeros((0, 0))
    tb = np.stack([true_singles[b] for _, b in pairs]) if pairs else np.zeros((0, 0))
    exclude = None
    if gene_index is not None:
        exclude = [[gene_index[g] for g in p if g in gene_index] for p in pairs]
    per, pooled = nonadditive_correlation(pred_double, ma, mb, true_double, ta, tb, exclude=exclude)
    rows = []
    for i, c in enumerate(doubles):
        ps = interaction_scores(ma[i], mb[i], pred_double[i], genes=genes)
        ts = interaction_scores(ta[i], tb[i], true_double[i], genes=genes)
        rows.append({"condition": c, "nonadditive_corr": per[i],
                     **{f"pred_{s}": ps[s] for s in SCORED}, **{f"true_{s}": ts[s] for s in SCORED},
                     "pred_label": interaction_label(ps, thresholds), "true_label": interaction_label(ts, thresholds),
                     "magnitude_abs_error": abs(ps["magnitude"] - ts["magnitude"])})
    table = pd.DataFrame(rows)
    summary = {"n_doubles": len(doubles),
               "nonadditive_corr_mean": float(np.nanmean(per)) if len(per) else float("nan"),
               "nonadditive_corr_pooled": pooled}
    if rows:
        summary["gi_label_accuracy"] = gi_label_accuracy(table["pred_label"].tolist(), table["true_label"].tolist())
        pred_t = table.rename(columns={f"pred_{s}": s for s in SCORED})
        true_t = table.rename(columns={f"true_{s}": s for s in SCORED})
        summary.update(interaction_score_agreement(pred_t, true_t))
    return table, summary


# -- per-condition metrics of the registry ---------------------------------------------------------
@register_metric(
    "nonadditive_corr", BestValue.ONE, label="non-additive corr", needs=("gi",), scope="excl_target",
    description="Pearson correlation over genes (perturbed genes left out) of p - mA - mB and r - sA - sB, "
                "mA, mB the measured singles, sA, sB the reference's; 0 for a constant (e.g. additive) part",
    source="issue 'Beyond additive'; Norman et al. (2019) non-additive residual",
)
def nonadditive_corr(b: MetricBatch) -> np.ndarray:
    """Correlation of the predicted non-additive part of a double with the reference's.

    For doubles ``A+B`` whose two singles are in training (NaN otherwise): the Pearson correlation
    over the genes other than A and B of ``δp_AB − mA − mB`` (the prediction's part beyond the sum of
    the *measured* singles, which is what a model could add up) and ``δr_AB − δA − δB`` (the
    reference's own non-additive part, with its own singles: the noise-free ones against the truth).
    0 when the predicted part is constant or within float32 rounding of zero (:data:`ZERO_RTOL`), as
    for the ``additive`` baseline.
    """
    out = np.full(b.pred.shape[0], np.nan)
    measured = b.ctx.measured_singles if b.ctx.measured_singles is not None else b.ctx.gi_singles
    for i, (sa, sb) in b.ctx.gi_singles.items():
        ma, mb = measured.get(i, (sa, sb))
        per, _ = nonadditive_correlation(b.pred_delta[i], ma, mb, b.ref_delta[i], sa, sb,
                                         exclude=[b.ctx.exclude_idx[i]])
        out[i] = per[0]
    return out


@register_metric(
    "gi_magnitude_abs_error", BestValue.ZERO, label="GI magnitude error", needs=("gi",),
    description="|magnitude(p) - magnitude(r)| of Norman's fit on the reference singles",
    source="Norman et al. (2019) scores; priorgnn.interactions",
)
def gi_magnitude_abs_error(b: MetricBatch) -> np.ndarray:
    """Absolute error of Norman et al.'s interaction magnitude ``sqrt(c1² + c2²)``.

    For doubles whose two singles are in training (NaN otherwise), both fits use the reference's
    single changes and the context's gene subset (``gi_genes``), as ``gi_label_match`` does:
    ``|mag(δA, δB, δp_AB) − mag(δA, δB, δr_AB)|``.
    """
    out = np.full(b.pred.shape[0], np.nan)
    for i, (sa, sb) in b.ctx.gi_singles.items():
        p = interaction_scores(sa, sb, b.pred_delta[i], genes=b.ctx.gi_genes)["magnitude"]
        r = interaction_scores(sa, sb, b.ref_delta[i], genes=b.ctx.gi_genes)["magnitude"]
        out[i] = abs(p - r)
    return out
