"""Genetic-interaction scores and labels for double perturbations.

Norman et al. (Science 2019, "Exploring genetic interaction manifolds constructed from rich
single-cell phenotypes") describe the expression change of a double perturbation ``A+B`` from
control, ``δAB``, as a linear combination of the single changes,

    δAB ≈ c1·δA + c2·δB   (no intercept, fitted over a gene subset),

with a robust Theil–Sen fit, and summarise the interaction by scores computed from the fit. GEARS
(Roohani et al., Nature Biotechnology 2024; ``gears.utils.get_coeffs``) reuses Norman's code. The
scores here follow that code exactly (names in brackets are GEARS's keys):

``c1``, ``c2``
    Theil–Sen coefficients (``TheilSenRegressor(fit_intercept=False, max_subpopulation=1e5,
    max_iter=1000, random_state=1000)``), see :func:`theil_sen`.
``magnitude`` [``mag``]
    ``sqrt(c1² + c2²)``. Note that a purely additive double (c1 = c2 = 1) has magnitude √2.
``corr_fit``
    Pearson correlation of the fitted values ``c1·δA + c2·δB`` with ``δAB`` ("model fit").
``corr_sum``
    Pearson correlation of ``δAB`` with ``δA + δB`` (agreement with the additive expectation;
    not in GEARS's ``get_coeffs``; Norman et al. compare doubles to the sum of singles).
``dcor`` / ``dcor_singles`` / ``dcor_first`` / ``dcor_second``
    Distance correlations (Székely et al. 2007) of ``[δA, δB]`` with ``δAB``, of ``δA`` with
    ``δB``, of ``δA`` with ``δAB`` and of ``δB`` with ``δAB``.
``eq_contr``
    Equality of contributions: ``min(dcor_first, dcor_second) / max(dcor_first, dcor_second)``.
``dominance``
    ``|log10(|c1| / |c2|)|``. GEARS writes ``|log10(c1 / c2)|``, which is NaN when the two
    coefficients have opposite signs; the absolute values here give the same number whenever GEARS's
    is defined and a finite, meaningful one otherwise.
``residual_norm``
    ``‖δAB − (δA + δB)‖₂`` over the gene subset: the size of the departure from additivity, in
    expression units (not in GEARS; used to rank predicted interactions without a fit).

**Gene subset.** Norman et al. and GEARS fit over "genes with high mean expression" (GEARS loads
them from ``genes_with_hi_mean.npy``). Here the subset is explicit: :func:`highly_expressed_genes`
returns the ``n`` genes with the highest control mean (default 1,000, the same set as the
``l2_top1000_expressed`` metric), and every function takes ``genes=`` to choose another.

**Labels.** :func:`interaction_label` assigns one of :data:`GI_LABELS` by the rules of
:class:`GIThresholds`; the thresholds are those of GEARS's genetic-interaction accuracy analysis
(``pertnet/GI_accuracy.py`` in the GEARS repository: synergy ``mag > 1``, suppressor ``mag < 1``,
additive ``|mag − 1| ≤ 0.3``, neomorphic ``corr_fit < 0.85``, redundant ``dcor > 0.8``, epistasis
``dominance > 0.25``). GEARS uses them to check membership of Norman et al.'s hand-curated classes,
not as one exclusive classifier, so two choices are made here and documented on the class: the
rules are applied in a fixed order, and the additive reference magnitude defaults to √2 (the
magnitude of c1 = c2 = 1) rather than GEARS's 1, so that an exactly additive double is labelled
``additive``. :data:`GEARS_THRESHOLDS` reproduces GEARS's reference of 1.

**Implementation notes.** :func:`theil_sen` is the estimator of scikit-learn's
``TheilSenRegressor`` (spatial median of the exact least-squares solutions of 2-gene subsets),
vectorised: it is identical to scikit-learn when all gene pairs are used (at most
``max_subpopulation`` pairs, i.e. up to 447 genes) and otherwise differs only in which random pairs
are drawn, which scikit-learn does with one Python call per pair (seconds per double; this is
milliseconds). :func:`distance_correlation` is the V-statistic of Székely et al. in numpy, equal to
``dcor.distance_correlation`` to rounding error; it avoids making ``dcor`` (a dependency of the
optional cell-gears only) a dependency of the project. Both are tested against the reference
packages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from priorgnn.data.conditions import make_condition, parse_condition
from priorgnn.errors import ConfigError, DataValidationError

log = logging.getLogger(__name__)

__all__ = [
    "GI_LABELS",
    "GIThresholds",
    "GEARS_THRESHOLDS",
    "RANK_SCORES",
    "theil_sen",
    "distance_correlation",
    "highly_expressed_genes",
    "interaction_scores",
    "interaction_label",
    "score_interactions",
    "all_pairs",
    "rank_pair_interactions",
    "fit_condition_number",
    "ILL_CONDITIONED",
    "ZERO_RTOL",
    "relative_nonadditive",
    "zero_rounding",
]

GI_LABELS = ("neomorphic", "redundant", "epistatic", "synergy", "suppressor", "additive")
_EPS = np.finfo(np.float64).eps


# -- thresholds and labels ------------------------------------------------------------------------
@dataclass(frozen=True)
class GIThresholds:
    """Thresholds of :func:`interaction_label`; the rules are applied in this order.

    1. ``neomorphic`` if ``corr_fit < neomorphic_corr_fit``: no linear combination of the singles
       explains the double (Norman et al.'s "neomorphic" behaviour, a new phenotype).
    2. ``redundant`` if ``dcor_singles > redundant_dcor_singles`` and the magnitude is below the
       additive band (``magnitude < additive_magnitude - magnitude_tolerance``): the two singles
       have the same phenotype and the double is no stronger than one of them, rather than their
       sum (Norman et al.'s redundancy). GEARS tests redundancy with ``dcor`` (singles jointly vs the
       double) ``> 0.8``, which is also high for any well-fitted additive double; the similarity of
       the two singles is what distinguishes redundancy, so it is used here. (With near-identical
       singles the split of the fit between ``c1`` and ``c2`` is ill-determined; their magnitude
       is not, which is why the rule uses it.)
    3. ``epistatic`` if ``dominance > epistatic_dominance``: one gene's effect dominates the double.
    4. ``synergy`` if ``magnitude > additive_magnitude + magnitude_tolerance``.
    5. ``suppressor`` if ``magnitude < additive_magnitude - magnitude_tolerance``.
    6. ``additive`` otherwise.

    Parameters
    ----------
    additive_magnitude
        The magnitude of a non-interacting double. √2 (c1 = c2 = 1) by default; GEARS's checks use 1.
    magnitude_tolerance
        Half-width of the additive band (GEARS: 0.3).
    neomorphic_corr_fit, redundant_dcor_singles, epistatic_dominance
        GEARS's 0.85, 0.8 and 0.25.
    """

    additive_magnitude: float = float(np.sqrt(2.0))
    magnitude_tolerance: float = 0.3
    neomorphic_corr_fit: float = 0.85
    redundant_dcor_singles: float = 0.8
    epistatic_dominance: float = 0.25

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: GEARS's thresholds with its reference magnitude of 1 (``pertnet/GI_accuracy.py``).
GEARS_THRESHOLDS = GIThresholds(additive_magnitude=1.0)


def interaction_label(scores: Mapping[str, float], thresholds: GIThresholds | None = None) -> str:
    """The genetic-interaction label of one double from its :func:`interaction_scores`.

    Returns ``'undetermined'`` when the scores are not finite (e.g. both singles have no effect).
    See :class:`GIThresholds` for the rules.
    """
    t = thresholds or GIThresholds()
    mag, fit = scores["magnitude"], scores["corr_fit"]
    if not (np.isfinite(mag) and np.isfinite(fit)):
        return "undetermined"
    if fit < t.neomorphic_corr_fit:
        return "neomorphic"
    upper = t.additive_magnitude + t.magnitude_tolerance
    lower = t.additive_magnitude - t.magnitude_tolerance
    if scores.get("dcor_singles", 0.0) > t.redundant_dcor_singles and mag < lower:
        return "redundant"
    if scores["dominance"] > t.epistatic_dominance:
        return "epistatic"
    if mag > upper:
        return "synergy"
    if mag < lower:
        return "suppressor"
    return "additive"


# -- estimators -----------------------------------------------------------------------------------
def _weiszfeld_step(x: np.ndarray, y: np.ndarray, old: np.ndarray) -> np.ndarray:
    """One modified Weiszfeld step (Kärkkäinen & Äyrämö 2005) for 2-D points ``(x, y)``, as
    scikit-learn's ``_modified_weiszfeld_step`` (written per column: the same arithmetic, faster)."""
    dx, dy = x - old[0], y - old[1]
    norm = np.hypot(dx, dy)
    mask = norm >= _EPS
    is_in = int(mask.sum() < x.size)
    inv = 1.0 / norm[mask]
    quotient_norm = float(np.hypot(np.sum(dx[mask] * inv), np.sum(dy[mask] * inv)))
    if quotient_norm > _EPS:
        w = inv.sum()
        new_direction = np.array([np.sum(x[mask] * inv) / w, np.sum(y[mask] * inv) / w])
    else:
        new_direction, quotient_norm = 1.0, 1.0
    return max(0.0, 1.0 - is_in / quotient_norm) * new_direction + min(1.0, is_in / quotient_norm) * old


def _spatial_median(W: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    tol = tol**2
    x, y = np.ascontiguousarray(W[:, 0]), np.ascontiguousarray(W[:, 1])
    old = np.array([x.mean(), y.mean()])
    for _ in range(max_iter):
        new = _weiszfeld_step(x, y, old)
        if np.sum((old - new) ** 2) < tol:
            return new
        old = new
    log.debug("spatial median did not converge in %d iterations", max_iter)
    return old


def _solve_2x2(a11, a12, a21, a22, b1, b2) -> np.ndarray:
    """Minimum-norm least-squares solutions of many 2x2 systems ``[[a11, a12], [a21, a22]] w = b``.

    Regular systems are solved in closed form; those whose smaller singular value is at most
    ``eps`` times the larger (numerically rank-deficient, e.g. two genes that neither single changes)
    go through ``pinv`` with that cut-off, which is what LAPACK's ``gelss`` (scikit-learn) does.
    """
    det = a11 * a22 - a12 * a21
    fro2 = a11**2 + a12**2 + a21**2 + a22**2
    disc = np.sqrt(np.maximum(fro2**2 - 4 * det**2, 0.0))
    s1 = np.sqrt((fro2 + disc) / 2)
    s2 = np.sqrt(np.maximum((fro2 - disc) / 2, 0.0))
    singular = s2 <= _EPS * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        W = np.stack([(a22 * b1 - a12 * b2) / det, (a11 * b2 - a21 * b1) / det], axis=1)
    if singular.any():
        A = np.stack([np.stack([a11, a12], 1), np.stack([a21, a22], 1)], 1)[singular]
        b = np.stack([b1, b2], axis=1)[singular][..., None]
        W[singular] = (np.linalg.pinv(A, rcond=_EPS) @ b)[..., 0]
    return W


def theil_sen(
    X: np.ndarray,
    y: np.ndarray,
    *,
    max_subpopulation: int = 100_000,
    max_iter: int = 1000,
    tol: float = 1e-3,
    random_state: int = 1000,
) -> np.ndarray:
    """Theil–Sen regression without intercept for two predictors (Norman et al.'s GI fit).

    The spatial median of the exact (minimum-norm least-squares) solutions of every 2-sample subset,
    or of ``max_subpopulation`` random ones when there are more, as scikit-learn's
    ``TheilSenRegressor(fit_intercept=False, ...)`` computes it.

    Parameters
    ----------
    X
        ``[n, 2]`` predictors (the two single deltas).
    y
        ``[n]`` response (the double delta).

    Returns
    -------
    ``[2]`` coefficients ``(c1, c2)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    n, p = X.shape
    if p != 2:
        raise ValueError(f"theil_sen fits two predictors, got {p}")
    if n < 2:
        return np.full(2, np.nan)
    n_pairs = n * (n - 1) // 2
    if n_pairs <= max_subpopulation:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(random_state)
        m = int(max_subpopulation)
        i = rng.integers(0, n, m)
        j = rng.integers(0, n - 1, m)
        j = j + (j >= i)
    W = _solve_2x2(X[i, 0], X[i, 1], X[j, 0], X[j, 1], y[i], y[j])
    return _spatial_median(W, max_iter=max_iter, tol=tol)


def _centred_distances(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        d = np.abs(x[:, None] - x[None, :])
    else:
        sq = np.sum(x * x, axis=1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    return d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + d.mean()


def _dcor_from_centred(a: np.ndarray, b: np.ndarray, va: float, vb: float) -> float:
    denom = np.sqrt(va * vb)
    if denom <= 0:
        return 0.0
    return float(np.sqrt(max(np.mean(a * b), 0.0) / denom))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Distance correlation (Székely, Rizzo & Bakirov 2007; V-statistic), as ``dcor``.

    ``x`` and ``y`` are ``[n]`` or ``[n, d]`` (rows are observations). 0 when either has zero
    distance variance (``dcor``'s convention). Memory is ``O(n²)``: keep ``n`` to a few thousand.
    """
    a, b = _centred_distances(x), _centred_distances(y)
    return _dcor_from_centred(a, b, float(np.mean(a * a)), float(np.mean(b * b)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    d = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / d) if d > 0 else float("nan")


# -- scores ---------------------------------------------------------------------------------------
def highly_expressed_genes(control_mean: np.ndarray, n: int = 1000) -> np.ndarray:
    """Indices of the ``n`` genes with the highest control mean (all genes if fewer), ties by gene
    order. The gene subset of the interaction fit and of ``l2_top1000_expressed``."""
    control_mean = np.asarray(control_mean, dtype=np.float64)
    order = np.argsort(-control_mean, kind="stable")
    return np.sort(order[: min(int(n), control_mean.size)])


def interaction_scores(
    delta_a: np.ndarray,
    delta_b: np.ndarray,
    delta_ab: np.ndarray,
    *,
    genes: np.ndarray | None = None,
) -> dict[str, float]:
    """Norman et al.'s interaction scores of one double (see the module docstring).

    Parameters
    ----------
    delta_a, delta_b, delta_ab
        ``[G]`` changes from control of the two singles and the double.
    genes
        Indices (or a boolean mask) of the genes to fit over; all genes if ``None``.

    Returns
    -------
    dict with ``c1, c2, magnitude, corr_fit, corr_sum, dcor, dcor_singles, dcor_first,
    dcor_second, eq_contr, dominance, residual_norm, n_genes``.
    """
    a, b, ab = (np.asarray(v, dtype=np.float64).ravel() for v in (delta_a, delta_b, delta_ab))
    if not (a.shape == b.shape == ab.shape):
        raise DataValidationError(
            f"interaction_scores: the deltas have different lengths ({a.size}, {b.size}, {ab.size}); "
            "pass vectors over the same genes."
        )
    if genes is not None:
        a, b, ab = a[genes], b[genes], ab[genes]
    singles = np.stack([a, b], axis=1)
    c1, c2 = theil_sen(singles, ab)
    fit = singles @ np.array([c1, c2])
    ca, cb, cab, cs = (_centred_distances(v) for v in (a, b, ab, singles))
    va, vb, vab, vs = (float(np.mean(m * m)) for m in (ca, cb, cab, cs))
    d_first = _dcor_from_centred(ca, cab, va, vab)
    d_second = _dcor_from_centred(cb, cab, vb, vab)
    hi = max(d_first, d_second)
    with np.errstate(divide="ignore", invalid="ignore"):
        dominance = float(np.abs(np.log10(np.abs(c1) / np.abs(c2))))
    return {
        "c1": float(c1),
        "c2": float(c2),
        "magnitude": float(np.hypot(c1, c2)),
        "corr_fit": _pearson(fit, ab),
        "corr_sum": _pearson(ab, a + b),
        "dcor": _dcor_from_centred(cs, cab, vs, vab),
        "dcor_singles": _dcor_from_centred(ca, cb, va, vb),
        "dcor_first": d_first,
        "dcor_second": d_second,
        "eq_contr": float(min(d_first, d_second) / hi) if hi > 0 else float("nan"),
        "dominance": dominance,
        "residual_norm": float(np.linalg.norm(ab - a - b)),
        "n_genes": int(a.size),
    }


def score_interactions(
    doubles: Sequence[str],
    double_deltas: np.ndarray,
    single_deltas: Mapping[str, np.ndarray],
    *,
    genes: np.ndarray | None = None,
    thresholds: GIThresholds | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Scores and label of each double, one row per double.

    Parameters
    ----------
    doubles
        Double conditions (``'A+B'``).
    double_deltas
        ``[len(doubles), G]`` their changes from control.
    single_deltas
        Gene → ``[G]`` change of its single perturbation. A double whose single is missing raises.
    genes, thresholds
        As in :func:`interaction_scores` and :func:`interaction_label`.
    """
    double_deltas = np.asarray(double_deltas, dtype=np.float64)
    if double_deltas.ndim != 2 or double_deltas.shape[0] != len(doubles):
        raise DataValidationError(
            f"score_interactions: {len(doubles)} doubles but deltas of shape {double_deltas.shape}."
        )
    rows = []
    it = enumerate(doubles)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=len(doubles), desc="interaction scores", unit="double")
    for k, cond in it:
        g = parse_condition(cond)
        if len(g) != 2:
            raise DataValidationError(f"{cond!r} is not a double; interaction scores need 'A+B'.")
        missing = [x for x in g if x not in single_deltas]
        if missing:
            raise DataValidationError(
                f"no single delta for {missing} (needed for {cond!r}); pass the singles' predictions "
                "or measurements as well."
            )
        s = interaction_scores(single_deltas[g[0]], single_deltas[g[1]], double_deltas[k], genes=genes)
        s["label"] = interaction_label(s, thresholds)
        rows.append({"condition": cond, "gene_a": g[0], "gene_b": g[1], **s})
    cols = ["condition", "gene_a", "gene_b", "label", "c1", "c2", "magnitude", "corr_fit", "corr_sum",
            "dcor", "dcor_singles", "dcor_first", "dcor_second", "eq_contr", "dominance",
            "residual_norm", "n_genes"]
    return pd.DataFrame(rows, columns=cols)


# -- conditioning ---------------------------------------------------------------------------------
#: Condition number of the fit's 2x2 normal equations ``XᵀX`` (``X = [δA δB]`` over the fitted genes)
#: above which :func:`rank_pair_interactions` flags a double as ill-conditioned instead of ranking it.
#: 1e4 means the two singles' directions are so close (smaller singular value of ``X`` below 1% of
#: the larger) that ``c1`` and ``c2`` are not determined separately: any split with the same sum fits
#: (e.g. c1 = 3746, c2 = -3743), so magnitude, dominance and the label are meaningless. Measured
#: singles of the calibrated norman simulation reach at most 24.
ILL_CONDITIONED = 1e4


def fit_condition_number(delta_a: np.ndarray, delta_b: np.ndarray, genes: np.ndarray | None = None) -> float:
    """Condition number of ``XᵀX`` for ``X = [δA δB]`` (over ``genes``): ``(s_max / s_min)²`` of ``X``;
    ``inf`` if the singles are collinear, ``nan`` if both are zero (nothing to fit)."""
    a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (delta_a, delta_b))
    if genes is not None:
        a, b = a[genes], b[genes]
    sv = np.linalg.svd(np.stack([a, b], axis=1), compute_uv=False)
    if not np.isfinite(sv).all() or sv[0] == 0:
        return float("nan")
    return float("inf") if sv[1] <= _EPS * sv[0] else float((sv[0] / sv[1]) ** 2)


# -- all pairs ------------------------------------------------------------------------------------
def all_pairs(genes: Sequence[str]) -> list[str]:
    """All double conditions of a gene list (canonical ``'A+B'``, sorted)."""
    uniq = sorted(set(genes))
    return [make_condition(p) for p in combinations(uniq, 2)]


#: Ranking scores of :func:`rank_pair_interactions`: name → (column, descending, description).
RANK_SCORES: dict[str, tuple[str, bool, str]] = {
    "magnitude_deviation": ("magnitude_deviation", True,
                            "|magnitude - additive magnitude|: strongest synergy or suppression"),
    "magnitude": ("magnitude", True, "largest magnitude first (synergy)"),
    "suppression": ("magnitude", False, "smallest magnitude first (suppression)"),
    "residual_norm": ("residual_norm", True, "largest departure from the sum of singles"),
    "relative_nonadditive": ("relative_nonadditive", True,
                             "largest departure from the sum of singles relative to the sum, over all genes "
                             "but the pair's own (defined for every pair; no fit)"),
    "corr_fit": ("corr_fit", False, "worst linear fit first (neomorphic)"),
    "corr_sum": ("corr_sum", False, "least like the sum of singles first"),
    "dominance": ("dominance", True, "most dominated by one gene first (epistasis)"),
    "dcor_singles": ("dcor_singles", True, "most similar singles first (redundancy)"),
}


def _deltas_of(adata) -> np.ndarray:
    if "delta" in adata.layers:
        return np.asarray(adata.layers["delta"], dtype=np.float64)
    if "control_mean" in adata.uns:
        return np.asarray(adata.X, dtype=np.float64) - np.asarray(adata.uns["control_mean"])[None, :]
    raise DataValidationError(
        "the predictions have neither layers['delta'] nor uns['control_mean']; pass the AnnData "
        "returned by model.predict()."
    )


def _conditions_of(adata) -> list[str]:
    if "condition" in adata.obs:
        return adata.obs["condition"].astype(str).tolist()
    return list(map(str, adata.obs_names))


#: A predicted non-additive part no larger than this fraction of the prediction (L2 norms) counts as
#: exactly zero: predictions are stored as float32, so ``additive``'s part is rounding error
#: (relative size ~1e-7), which must not correlate with anything, or rank pairs, by chance.
ZERO_RTOL = 1e-5


def _var_names(predictions) -> list[str] | None:
    names = getattr(predictions, "var_names", None)
    return None if names is None else [str(g) for g in names]


def zero_rounding(part: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``part`` (a non-additive part, ``[D, G]``) with rows set to exactly 0 where they are rounding
    error of the prediction ``pred`` (:data:`ZERO_RTOL`)."""
    part = np.array(part, dtype=np.float64, copy=True)
    tiny = np.linalg.norm(part, axis=-1) <= ZERO_RTOL * np.linalg.norm(pred, axis=-1)
    part[tiny] = 0.0
    return part


def relative_nonadditive(double: np.ndarray, single_a: np.ndarray, single_b: np.ndarray,
                         keep: np.ndarray | None = None) -> np.ndarray:
    """``‖δAB − δA − δB‖₂ / ‖δA + δB‖₂`` per row over the genes where ``keep`` (``[D, G]`` booleans,
    default all) is true; 0 for an additive double (within float32 rounding, :data:`ZERO_RTOL`), NaN
    where the sum of the singles is zero there. Needs no fit, so it is defined for every pair.
    :func:`priorgnn.metrics.interactions.relative_nonadditive_size` scores with it."""
    double = np.atleast_2d(np.asarray(double, dtype=np.float64))
    a, b = (np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in (single_a, single_b))
    if not (double.shape == a.shape == b.shape):
        raise DataValidationError(
            f"relative_nonadditive: shapes differ (double {double.shape}, singles {a.shape}, {b.shape}); "
            "pass the doubles and their two singles over the same genes, row by row.")
    part = zero_rounding(double - a - b, double)
    keep = np.ones(double.shape, dtype=bool) if keep is None else keep
    num = np.sqrt(np.sum(np.where(keep, part, 0.0) ** 2, axis=1))
    den = np.sqrt(np.sum(np.where(keep, a + b, 0.0) ** 2, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _pair_relative_nonadditive(doubles: Sequence[str], deltas: np.ndarray, singles: Mapping[str, np.ndarray],
                               names: Sequence[str] | None, chunk: int = 1024) -> np.ndarray:
    """:func:`relative_nonadditive` of each double over every gene but the pair's own (when the genes'
    names are known), in chunks of rows so that all pairs of many genes need little extra memory."""
    pos = {g: i for i, g in enumerate(names)} if names is not None else {}
    out = np.empty(len(doubles))
    for start in range(0, len(doubles), chunk):
        conds = doubles[start:start + chunk]
        pairs = [parse_condition(c) for c in conds]
        keep = np.ones((len(conds), deltas.shape[1]), dtype=bool)
        for i, genes in enumerate(pairs):
            keep[i, [pos[g] for g in genes if g in pos]] = False
        out[start:start + len(conds)] = relative_nonadditive(
            deltas[start:start + len(conds)], np.stack([singles[a] for a, _ in pairs]),
            np.stack([singles[b] for _, b in pairs]), keep)
    return out


def rank_pair_interactions(
    predictions,
    singles=None,
    *,
    score: str = "relative_nonadditive",
    top: int | None = 100,
    genes: np.ndarray | None = None,
    n_expressed: int = 1000,
    thresholds: GIThresholds | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every predicted double and return the top interactions, ready to write as CSV.

    Parameters
    ----------
    predictions
        AnnData from ``model.predict(conditions)`` holding the doubles (``'A+B'``) and, unless
        ``singles`` is given, the singles (``'A+ctrl'``) of their genes.
    singles
        Optional: the single deltas, as an AnnData from ``model.predict`` or a mapping gene →
        ``[G]`` delta (e.g. measured singles). Take precedence over singles in ``predictions``.
    score
        How to rank, one of :data:`RANK_SCORES`.
    top
        Number of rows to return (all if ``None``).
    genes
        Gene indices to fit over; by default the ``n_expressed`` genes with the highest control mean
        (``uns['control_mean']`` of the predictions), as Norman et al. fit on highly expressed genes.
    thresholds
        Label thresholds (:class:`GIThresholds`).

    Returns
    -------
    DataFrame with ``rank``, ``condition``, ``gene_a``, ``gene_b``, ``label``, the scores,
    ``magnitude_deviation``, ``relative_nonadditive``, ``condition_number`` and ``ill_conditioned``, best
    first. The default score, ``relative_nonadditive``, ranks pairs by the size of their predicted
    departure from the sum of singles relative to that sum (on held-out simulations it found
    interacting pairs where Norman's magnitude did not: ``benchmarks/results/pair_ranking.md``); it
    ranks every pair, ill-conditioned fits included (labelled ``'ill-conditioned'``). For the other
    scores, doubles whose fit is ill-conditioned (``condition_number >`` :data:`ILL_CONDITIONED`) are not ranked: they follow
    the ranked rows with an empty ``rank`` and ``label`` ``'ill-conditioned'`` (the label the scores
    would give is kept in ``fit_label``); at most ``top`` of them are listed.
    """
    if score not in RANK_SCORES:
        raise ConfigError(f"unknown interaction score {score!r}; choose one of {', '.join(RANK_SCORES)}.")
    thresholds = thresholds or GIThresholds()
    conds = _conditions_of(predictions)
    deltas = _deltas_of(predictions)
    single_map: dict[str, np.ndarray] = {}
    double_rows: list[int] = []
    for i, c in enumerate(conds):
        g = parse_condition(c)
        if len(g) == 1:
            single_map[g[0]] = deltas[i]
        elif len(g) == 2:
            double_rows.append(i)
    if singles is not None:
        if isinstance(singles, Mapping):
            single_map.update({k: np.asarray(v, dtype=np.float64) for k, v in singles.items()})
        else:
            sd = _deltas_of(singles)
            for i, c in enumerate(_conditions_of(singles)):
                g = parse_condition(c)
                if len(g) == 1:
                    single_map[g[0]] = sd[i]
    if not double_rows:
        raise DataValidationError(
            "the predictions hold no double perturbations ('A+B'); predict all pairs first "
            "(priorgnn.interactions.all_pairs(genes))."
        )
    if genes is None:
        if "control_mean" in predictions.uns:
            genes = highly_expressed_genes(np.asarray(predictions.uns["control_mean"]), n_expressed)
        else:
            log.warning("no uns['control_mean'] in the predictions; fitting interactions on all genes")
    doubles = [conds[i] for i in double_rows]
    table = score_interactions(doubles, deltas[double_rows], single_map, genes=genes,
                               thresholds=thresholds, progress=progress)
    table["magnitude_deviation"] = np.abs(table["magnitude"] - thresholds.additive_magnitude)
    table["relative_nonadditive"] = _pair_relative_nonadditive(doubles, deltas[double_rows], single_map,
                                                               _var_names(predictions))
    kappa = np.array([fit_condition_number(single_map[a], single_map[b], genes)
                      for a, b in zip(table["gene_a"], table["gene_b"])], dtype=np.float64)
    table["condition_number"] = kappa
    table["ill_conditioned"] = np.nan_to_num(kappa, nan=0.0) > ILL_CONDITIONED
    table["fit_label"] = table["label"]
    column, descending, _ = RANK_SCORES[score]
    table = table.sort_values(column, ascending=not descending, kind="stable", na_position="last")
    # a score read off Norman's fit is meaningless where the fit is ill-conditioned; the relative
    # non-additive size needs no fit, so it ranks every pair (shared targets, the pairs most likely to
    # interact, are often the ones whose singles are nearly collinear)
    demote = table["ill_conditioned"] if score != "relative_nonadditive" else np.zeros(len(table), dtype=bool)
    bad = table[demote].copy()
    table = table[~demote]
    if top is not None:
        table, bad = table.head(int(top)), bad.head(int(top))
    if len(bad):
        log.warning("%d double(s) have ill-conditioned interaction fits (the two singles' predicted changes are "
                    "nearly collinear: condition number of the fit > %g); they are listed unranked, labelled "
                    "'ill-conditioned'", int(len(bad)), ILL_CONDITIONED)
    bad["label"] = "ill-conditioned"
    n_ranked_bad = int(table["ill_conditioned"].sum())
    if n_ranked_bad:
        log.warning("%d double(s) have ill-conditioned interaction fits (the two singles' predicted changes are "
                    "nearly collinear): their Norman scores and labels are unreliable, so they are labelled "
                    "'ill-conditioned'; the %s ranking needs no fit and ranks them", n_ranked_bad, score)
    table.loc[table["ill_conditioned"], "label"] = "ill-conditioned"
    table.insert(0, "rank", pd.array(np.arange(1, len(table) + 1), dtype="Int64"))
    bad.insert(0, "rank", pd.array([pd.NA] * len(bad), dtype="Int64"))
    table = pd.concat([table, bad]) if len(bad) else table
    table.attrs["score"] = score
    return table.reset_index(drop=True)
