"""Aggregation and paired statistics over conditions and seeds.

**Means and confidence intervals.** A metric is summarised per model, reference and subgroup by the
mean over the test conditions, with a percentile bootstrap 95% confidence interval over conditions
(seeded; 2,000 resamples by default). With several seeds (different splits and model
initialisations), the estimate is the mean over seeds of the per-seed means, and each bootstrap
replicate resamples the conditions *within* each seed, independently, and averages the per-seed
resampled means. The interval therefore reflects the uncertainty from the finite set of test
conditions; the spread between seeds (reported as ``seed_sd``) shows the variation of splits and
training runs, which the interval does not model when there are few seeds.

**Paired comparisons.** Two models are compared on the same conditions of the same seeds. The
per-condition difference is oriented by the metric's direction (positive = the model is better than
the baseline). Differences are averaged over the seeds in which a condition was tested, so each
condition counts once (the same condition in several seeds' test sets is not independent); wins,
losses and ties, and the two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``,
``zero_method='wilcox'``: exact ties are dropped and reported as ties) use these per-condition
differences. If every difference is a tie, the test has nothing to rank and ``p = 1``. The CI of
the mean difference uses the within-seed bootstrap above. Holm's step-down correction is applied
within each family of (reference, metric, baseline) over models and subgroups (``p_holm``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from priorgnn.data.splits import SUBGROUPS
from priorgnn.metrics.registry import get_metric

log = logging.getLogger(__name__)

__all__ = [
    "BootstrapResult",
    "bootstrap_ci",
    "aggregate",
    "paired_comparison",
    "paired_differences",
    "wilcoxon_signed_rank",
    "holm",
    "TrendResult",
    "trend_test",
    "adjusted_verdict",
    "rankings_identical",
    "ranking_agreement",
    "SUBGROUP_ORDER",
    "REFERENCE_ROWS",
]

#: Subgroups in report order (``all`` = every test condition).
SUBGROUP_ORDER = ("all", *SUBGROUPS)
#: Rows that are limits, not models: never "best", never compared.
REFERENCE_ROWS = ("ceiling", "observed_data")
_BLOCK = 256


@dataclass(frozen=True)
class BootstrapResult:
    mean: float
    lo: float
    hi: float
    n: int
    n_seeds: int
    seed_sd: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


def _as_groups(values) -> list[np.ndarray]:
    if isinstance(values, np.ndarray) and values.ndim == 1:
        groups = [values]
    elif isinstance(values, np.ndarray) and values.ndim == 2:
        groups = list(values)
    else:
        groups = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    groups = [g[np.isfinite(g)] for g in groups]
    return [g for g in groups if g.size]


def bootstrap_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> BootstrapResult:
    """Mean and percentile bootstrap CI over conditions, resampled within seeds.

    Parameters
    ----------
    values
        A 1-D array (one seed), or a sequence of 1-D arrays, one per seed (they may differ in
        length). Non-finite values are dropped.
    n_boot
        Bootstrap resamples (at least 1000 recommended).
    level
        Confidence level.
    seed
        Seed of the resampling.

    Returns
    -------
    :class:`BootstrapResult`. The interval is NaN when a seed has fewer than two values: resampling
    one value cannot show its uncertainty, and a zero-width interval would claim certainty.
    """
    groups = _as_groups(values)
    if not groups:
        return BootstrapResult(np.nan, np.nan, np.nan, 0, 0, np.nan)
    seed_means = np.array([g.mean() for g in groups])
    n_total = int(sum(g.size for g in groups))
    seed_sd = float(seed_means.std(ddof=1)) if len(groups) > 1 else float("nan")
    if min(g.size for g in groups) < 2:
        # a seed with one condition has no within-seed variability to resample: no interval
        return BootstrapResult(float(seed_means.mean()), np.nan, np.nan, n_total, len(groups), seed_sd)
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for g in groups:
        n = g.size
        out = np.empty(n_boot)
        for s in range(0, n_boot, _BLOCK):
            m = min(_BLOCK, n_boot - s)
            out[s:s + m] = g[rng.integers(0, n, size=(m, n))].mean(axis=1)
        boot += out
    boot /= len(groups)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return BootstrapResult(mean=float(seed_means.mean()), lo=float(lo), hi=float(hi), n=n_total,
                           n_seeds=len(groups), seed_sd=seed_sd)


def _subgroup_views(df: pd.DataFrame, subgroup_col: str, include_all: bool):
    if include_all:
        yield "all", df
    for sg in [s for s in SUBGROUP_ORDER if s != "all"] + sorted(set(df[subgroup_col]) - set(SUBGROUP_ORDER)):
        part = df[df[subgroup_col] == sg]
        if len(part):
            yield sg, part


def aggregate(
    per_condition: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group_cols: Sequence[str] = ("model", "reference"),
    subgroup_col: str = "subgroup",
    seed_col: str = "seed",
    include_all: bool = True,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrap CI of each metric per group and subgroup (see the module docstring).

    Parameters
    ----------
    per_condition
        One row per (model, reference, seed, condition) with a ``subgroup`` and metric columns.
    metrics
        The metric columns to summarise.
    include_all
        Also summarise all conditions together as subgroup ``'all'``.

    Returns
    -------
    Long table: ``group_cols..., subgroup, metric, mean, ci_lo, ci_hi, n_conditions, n_seeds,
    seed_sd``.
    """
    rows = []
    for key, gdf in per_condition.groupby(list(group_cols), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for sg, part in _subgroup_views(gdf, subgroup_col, include_all):
            by_seed = [s for _, s in part.groupby(seed_col, sort=True)]
            for m in metrics:
                if m not in part:
                    continue
                r = bootstrap_ci([s[m].to_numpy(dtype=np.float64) for s in by_seed],
                                 n_boot=n_boot, level=level, seed=seed)
                rows.append({**dict(zip(group_cols, key, strict=True)), "subgroup": sg, "metric": m,
                             "mean": r.mean, "ci_lo": r.lo, "ci_hi": r.hi, "n_conditions": r.n,
                             "n_seeds": r.n_seeds, "seed_sd": r.seed_sd})
    return pd.DataFrame(rows, columns=[*group_cols, "subgroup", "metric", "mean", "ci_lo", "ci_hi",
                                       "n_conditions", "n_seeds", "seed_sd"])


def _exact_tied_wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided p of the signed-rank statistic by enumerating all 2^n sign patterns (average ranks
    for tied |d|): the deterministic permutation test ``scipy.stats.wilcoxon`` runs for n <= 13 with
    ties, as one matrix product instead of scipy's per-pattern loop (same numbers, milliseconds)."""
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    n = d.size
    signs = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    null = signs @ ranks
    gamma = abs(1e-14 * observed)
    less = np.mean(null <= observed + gamma)
    greater = np.mean(null >= observed - gamma)
    return float(min(1.0, 2 * min(less, greater)))


def wilcoxon_signed_rank(d: np.ndarray, *, tol: float = 0.0) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired differences ``d`` against 0.

    Differences with ``|d| <= tol`` are ties and are dropped (``zero_method='wilcox'``). Returns
    ``(statistic, p)`` as ``scipy.stats.wilcoxon`` (statistic = min(W+, W-)); ``(0.0, 1.0)`` when
    every difference is a tie, ``(nan, nan)`` for no data. For 13 or fewer differences with tied
    magnitudes the exact permutation p-value that scipy computes is computed here directly (scipy's
    generic permutation loop takes about half a second per call); zeros are dropped first, so where
    zeros would push scipy's sample above 13 and make it use the normal approximation, the exact
    value is still used.
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan"), float("nan")
    d = d[np.abs(d) > tol]
    if d.size == 0:
        return 0.0, 1.0
    has_ties = np.unique(np.abs(d)).size < d.size
    if has_ties and d.size <= 13:
        ranks = sps.rankdata(np.abs(d))
        r_plus = ranks[d > 0].sum()
        return float(min(r_plus, ranks.sum() - r_plus)), _exact_tied_wilcoxon_p(d)
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    pv = p[ok]
    order = np.argsort(pv, kind="stable")
    m = pv.size
    adj = np.minimum(1.0, np.maximum.accumulate(pv[order] * (m - np.arange(m))))
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def paired_differences(per_condition: pd.DataFrame, metric: str, model: str, baseline: str, *,
                       reference: str = "observed", seed_col: str = "seed") -> pd.DataFrame:
    """Per (seed, condition): the oriented difference ``model − baseline`` (positive = model better).

    Only conditions both have a finite value for, in the same seed, are kept.
    """
    spec = get_metric(metric)
    df = per_condition[per_condition["reference"] == reference]
    cols = [seed_col, "condition", "subgroup", metric]
    a = df.loc[df["model"] == model, cols]
    b = df.loc[df["model"] == baseline, [seed_col, "condition", metric]]
    m = a.merge(b, on=[seed_col, "condition"], suffixes=("_model", "_baseline"))
    m["diff"] = spec.orient(m[f"{metric}_model"] - m[f"{metric}_baseline"])
    return m[np.isfinite(m["diff"])].reset_index(drop=True)


def paired_comparison(
    per_condition: pd.DataFrame,
    metrics: Sequence[str],
    *,
    baselines: Sequence[str] = ("additive", "no_change"),
    reference: str = "observed",
    subgroup_col: str = "subgroup",
    seed_col: str = "seed",
    include_all: bool = True,
    tol: float = 1e-12,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Every model against each baseline, per subgroup and metric (see the module docstring).

    Returns
    -------
    Table with ``reference, subgroup, metric, model, baseline, n, wins, losses, ties, mean_diff,
    diff_ci_lo, diff_ci_hi, wilcoxon_stat, p_value, p_holm``. ``mean_diff`` > 0 means the model is
    better than the baseline.
    """
    df = per_condition[per_condition["reference"] == reference]
    models = [m for m in pd.unique(df["model"]) if m not in REFERENCE_ROWS]
    rows = []
    for base in baselines:
        if base not in models:
            continue
        for model in models:
            if model == base:
                continue
            for metric in metrics:
                if metric not in df:
                    continue
                d_all = paired_differences(df, metric, model, base, reference=reference, seed_col=seed_col)
                for sg, part in _subgroup_views(d_all, subgroup_col, include_all):
                    per_cond = part.groupby("condition", sort=True)["diff"].mean().to_numpy()
                    by_seed = [g["diff"].to_numpy() for _, g in part.groupby(seed_col, sort=True)]
                    ci = bootstrap_ci(by_seed, n_boot=n_boot, level=level, seed=seed)
                    stat, p = wilcoxon_signed_rank(per_cond, tol=tol)
                    rows.append({
                        "reference": reference, "subgroup": sg, "metric": metric, "model": model,
                        "baseline": base, "n": int(per_cond.size),
                        "wins": int(np.sum(per_cond > tol)), "losses": int(np.sum(per_cond < -tol)),
                        "ties": int(np.sum(np.abs(per_cond) <= tol)),
                        "mean_diff": ci.mean, "diff_ci_lo": ci.lo, "diff_ci_hi": ci.hi,
                        "wilcoxon_stat": stat, "p_value": p,
                    })
    cols = ["reference", "subgroup", "metric", "model", "baseline", "n", "wins", "losses", "ties",
            "mean_diff", "diff_ci_lo", "diff_ci_hi", "wilcoxon_stat", "p_value", "p_holm"]
    out = pd.DataFrame(rows, columns=cols[:-1])
    out["p_holm"] = np.nan
    if len(out):
        for _, idx in out.groupby(["reference", "metric", "baseline"]).groups.items():
            out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy())
    return out[cols]


# -- trend along an axis, adjusted verdicts, shared rankings --------------------------------------------
@dataclass(frozen=True)
class TrendResult:
    """A dose-response test: ``rho`` is the mean over seeds of the within-seed Spearman correlation of
    the metric's mean with the axis level; ``lo``/``hi`` its bootstrap CI (conditions resampled within
    seeds, paired across levels); ``p_value`` the two-sided permutation p (levels permuted within each
    seed); ``p_min`` the smallest p the design can reach (few levels and seeds cannot reach 0.05)."""

    rho: float
    lo: float
    hi: float
    p_value: float
    p_min: float
    n_levels: int
    n_seeds: int
    n_conditions: int
    exact: bool


def _rowwise_spearman(levels: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``levels`` (L,) with every row of ``means`` (B, L); 0 for a constant row."""
    rl = sps.rankdata(levels)
    rl = rl - rl.mean()
    rm = sps.rankdata(means, axis=-1)
    rm = rm - rm.mean(axis=-1, keepdims=True)
    num = rm @ rl
    den = np.sqrt((rm**2).sum(axis=-1) * (rl**2).sum())
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def trend_test(levels: Sequence[float], values_by_seed: Sequence[np.ndarray], *, n_boot: int = 2000,
               n_perm: int = 20000, level: float = 0.95, seed: int = 0,
               max_exact: int = 2_000_000) -> TrendResult:
    """Does a metric change monotonically with an axis level? (See :class:`TrendResult`.)

    Parameters
    ----------
    levels
        The axis levels (``L`` distinct values).
    values_by_seed
        One array per seed, shape ``(L, n_conditions)``: the per-condition metric at each level, the
        same conditions in every row (paired). Conditions with a non-finite value at any level are
        dropped.

    The unit of the permutation test is the fit: under "no trend" the ``L`` per-level means of a seed
    are exchangeable, so the null distribution of the statistic is that of the mean over seeds of the
    Spearman correlation under independent random orderings of each seed's levels: enumerated exactly
    when there are at most ``max_exact`` orderings, else ``n_perm`` Monte Carlo draws (p = (1 + hits) /
    (1 + n_perm)). With ``L`` levels and ``S`` seeds the smallest exact p is ``2 / (L!)^S``, so one seed
    with four levels can never show a trend at 0.05: the result says so through ``p_min``.
    """
    import itertools
    import math

    lv = np.asarray(levels, dtype=np.float64)
    if lv.ndim != 1 or lv.size < 2 or np.unique(lv).size != lv.size:
        raise ValueError("trend_test needs at least two distinct levels.")
    mats = []
    for v in values_by_seed:
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 2 or v.shape[0] != lv.size:
            raise ValueError(f"each seed's values must have shape (n_levels={lv.size}, n_conditions); got {v.shape}.")
        v = v[:, np.all(np.isfinite(v), axis=0)]
        if v.shape[1]:
            mats.append(v)
    L, S = lv.size, len(mats)
    if S == 0:
        return TrendResult(np.nan, np.nan, np.nan, np.nan, np.nan, L, 0, 0, False)
    means = np.stack([m.mean(axis=1) for m in mats])  # (S, L)
    rho = float(_rowwise_spearman(lv, means).mean())
    # null: each seed's levels in a random order
    n_orders = math.factorial(L)
    exact = n_orders**S <= max_exact
    if exact:
        perms = np.array(list(itertools.permutations(range(L))))
        per_seed = [_rowwise_spearman(lv, means[s][perms]) for s in range(S)]  # each (L!,)
        null = np.zeros(1)
        for r in per_seed:
            null = (null[:, None] + r[None, :]).ravel()
        null /= S
        tol = 1e-12
        p = float(np.mean(np.abs(null) >= abs(rho) - tol))
        # the most extreme value |rho| = 1 is reached by 2 of the (L!)^S orderings
        p_min = 2.0 / n_orders**S
    else:
        rng = np.random.default_rng(seed)
        keys = rng.random((n_perm, S, L)).argsort(axis=-1)
        null = np.mean([_rowwise_spearman(lv, means[s][keys[:, s]]) for s in range(S)], axis=0)
        p = float((1 + np.sum(np.abs(null) >= abs(rho) - 1e-12)) / (1 + n_perm))
        p_min = max(2.0 / n_orders**S, 1.0 / (1 + n_perm))
    # bootstrap over conditions, paired across levels
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for m in mats:
        n = m.shape[1]
        idx = rng.integers(0, n, size=(n_boot, n))
        bm = m[:, idx].mean(axis=-1).T  # (n_boot, L)
        boot += _rowwise_spearman(lv, bm)
    boot /= S
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return TrendResult(rho=rho, lo=float(lo), hi=float(hi), p_value=min(1.0, p), p_min=p_min, n_levels=L,
                       n_seeds=S, n_conditions=int(sum(m.shape[1] for m in mats)), exact=exact)


def adjusted_verdict(mean_diff: float, ci_lo: float, ci_hi: float, p_adjusted: float,
                     alpha: float = 0.05) -> str:
    """``'better'`` / ``'worse'`` only when the multiplicity-adjusted p is below ``alpha`` *and* the CI
    excludes 0 on the same side; ``'inconclusive'`` when just one of the two holds; else
    ``'indistinguishable'``. (A positive ``mean_diff`` means better, as in :func:`paired_comparison`.)"""
    ci_pos = bool(np.isfinite(ci_lo) and ci_lo > 0)
    ci_neg = bool(np.isfinite(ci_hi) and ci_hi < 0)
    sig = bool(np.isfinite(p_adjusted) and p_adjusted < alpha)
    if sig and ci_pos and mean_diff > 0:
        return "better"
    if sig and ci_neg and mean_diff < 0:
        return "worse"
    if sig or ci_pos or ci_neg:
        return "inconclusive"
    return "indistinguishable"


def rankings_identical(scores: np.ndarray, *, exclude: Sequence[int] | None = None, tol: float = 1e-9) -> bool:
    """Whether every row of ``scores`` (targets × genes) orders the genes the same way (ties included),
    so that a ranking built from it is the same for every target and says nothing target-specific.

    ``exclude[i]`` is a column left out of row ``i`` (the target's own gene): the remaining genes must
    be in the same order as in every other row (compared on the genes no row excludes). Values
    within ``tol`` of each other count as tied. Fewer than two rows: ``False`` (nothing to compare).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        return False
    keep = np.ones(s.shape[1], dtype=bool)
    if exclude is not None:
        keep[np.asarray(list(exclude), dtype=np.int64)] = False
    s = s[:, keep]
    if s.shape[1] < 2:
        return False
    q = np.round(s / tol) if tol > 0 else s
    ranks = sps.rankdata(q, axis=1, method="dense")
    return bool(np.all(ranks == ranks[0]))


def ranking_agreement(scores: np.ndarray, *, exclude: Sequence[int] | None = None) -> float:
    """Mean over pairs of rows of the Spearman correlation between two rows of ``scores`` (targets ×
    genes), on the genes no row excludes (``exclude[i]``: the target's own gene): 1 when every target
    gets the same ranking, near 0 when the rankings are unrelated. Two constant rows agree (1), a
    constant and a varying row do not (0). NaN with fewer than two rows or two genes."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        return float("nan")
    keep = np.ones(s.shape[1], dtype=bool)
    if exclude is not None:
        keep[np.asarray(list(exclude), dtype=np.int64)] = False
    s = s[:, keep]
    if s.shape[1] < 2:
        return float("nan")
    r = sps.rankdata(s, axis=1)
    r = r - r.mean(axis=1, keepdims=True)
    norm = np.sqrt((r**2).sum(axis=1))
    const = norm == 0
    z = np.divide(r, norm[:, None], out=np.zeros_like(r), where=~const[:, None])
    c = z @ z.T
    c[np.ix_(const, const)] = 1.0
    iu = np.triu_indices(s.shape[0], k=1)
    return float(np.mean(c[iu]))
