"""The report's opening summary, generated from the numbers.

For each subgroup and headline metric: which model is best, and whether the best model's difference
from the ``additive`` baseline is supported by the data (the paired bootstrap 95% CI of the mean
difference excludes 0 *and* the Holm-adjusted Wilcoxon signed-rank p is below 0.05; the Holm family is
one metric, reference and baseline over all models and subgroups, see
:func:`priorgnn.metrics.paired_comparison`), with the noise ceiling for scale. When ``additive`` itself
is best, the best non-baseline model's difference from it is given.

Claims about unseen perturbations (``unseen_single``, ``combo_seen0``) use only metrics that leave
the perturbed genes out or score their own change apart (:data:`UNSEEN_HEADLINE`): under CRISPRa/i the
target's own change is large and known from the perturbation type, and a metric over all genes
rewards a model for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from priorgnn.metrics.evaluation import BASELINE_ORDER, ORACLES
from priorgnn.metrics.registry import UNSEEN_SUBGROUPS, get_metric, unseen_claim_metrics
from priorgnn.metrics.stats import REFERENCE_ROWS, SUBGROUP_ORDER
from priorgnn.report.tables import fmt, fmt_p

__all__ = ["best_models", "summary_lines", "verdict", "UNSEEN_HEADLINE", "headline_for", "constant_flags",
           "constant_note"]

#: Headline metrics of the unseen subgroups: the change off the perturbed genes, then the perturbed
#: genes' own change (direction and size) as metrics of their own.
UNSEEN_HEADLINE = ("pearson_delta_excl_target", "target_sign_match", "target_abs_error")


def headline_for(subgroup: str, metrics: Sequence[str], available: Sequence[str]) -> list[str]:
    """The headline metrics of ``subgroup``: ``metrics`` for seen perturbations; for an unseen
    subgroup, :data:`UNSEEN_HEADLINE` and any other metric of ``metrics`` that does not score the
    perturbed genes together with the rest. Only metrics in ``available`` are returned."""
    if subgroup in UNSEEN_SUBGROUPS:
        chosen = list(dict.fromkeys([*UNSEEN_HEADLINE, *unseen_claim_metrics(metrics)]))
    else:
        chosen = list(metrics)
    return [m for m in chosen if m in available]


def constant_flags(result, subgroup: str) -> dict[str, tuple[int, int, float]]:
    """Model → (seeds in which it is flagged as near-constant, seeds with a defined spread, median
    relative spread) in ``subgroup``, for the models flagged in at least one seed (from
    ``result.diagnostics``, see :mod:`priorgnn.metrics.diagnostics`)."""
    d = getattr(result, "diagnostics", None)
    if d is None or len(d) == 0:
        return {}
    d = d[(d["subgroup"] == subgroup) & np.isfinite(d["relative_spread"].astype(float))]
    out = {}
    for model, part in d.groupby("model", sort=False):
        k = int(part["constant"].sum())
        if k:
            out[str(model)] = (k, len(part), float(np.median(part["relative_spread"].astype(float))))
    return out


def constant_note(flag: tuple[int, int, float]) -> str:
    """Words for one entry of :func:`constant_flags`."""
    k, n, rel = flag
    seeds = "" if n == 1 else (f" in {k} of {n} seeds" if k < n else f" in all {n} seeds")
    return (f"near-constant predictions{seeds}: spread across conditions {fmt(rel)} × the data's")


def best_models(result, metric: str, *, reference: str = "observed") -> dict[str, tuple[str, float]]:
    """Subgroup → (best model, its mean) for ``metric`` (limits excluded). Tied models are joined
    with ``' = '`` in report order."""
    spec = get_metric(metric)
    s = result.summary
    s = s[(s["metric"] == metric) & (s["reference"] == reference) & ~s["model"].isin(REFERENCE_ROWS)]
    out = {}
    order = {m: i for i, m in enumerate(result.models)}
    for sg, part in s.groupby("subgroup", sort=False):
        part = part.assign(_o=part["model"].map(order).fillna(len(order))).sort_values("_o", kind="stable")
        idx = spec.best_indices(part["mean"].to_numpy(dtype=float))
        if idx:
            names = [str(part.iloc[i]["model"]) for i in idx]
            out[sg] = (" = ".join(names), float(part.iloc[idx[0]]["mean"]))
    return out


def verdict(row, alpha: float = 0.05) -> str:
    """From a comparison row (oriented Δ): ``'better'`` / ``'worse'`` when the CI excludes 0 and the
    Holm-adjusted Wilcoxon p (``p_holm``; the raw ``p_value`` only for a row without one, e.g. a single
    comparison, which is its own family) < ``alpha``; ``'inconclusive'`` when only one of the two says
    so; ``'indistinguishable'`` when neither does."""
    lo, hi = row["diff_ci_lo"], row["diff_ci_hi"]
    p = row.get("p_holm", np.nan) if hasattr(row, "get") else np.nan
    if p is None or not np.isfinite(p):
        p = row["p_value"]
    ci_pos = bool(np.isfinite(lo) and lo > 0)
    ci_neg = bool(np.isfinite(hi) and hi < 0)
    sig = bool(np.isfinite(p) and p < alpha)
    if sig and ci_pos:
        return "better"
    if sig and ci_neg:
        return "worse"
    if sig or ci_pos or ci_neg:
        return "inconclusive"
    return "indistinguishable"


def _cmp_text(row) -> str:
    holm = row.get("p_holm", np.nan)
    p_txt = (f"Wilcoxon p = {fmt_p(row['p_value'])}, Holm p = {fmt_p(holm)}" if holm is not None and np.isfinite(holm)
             else f"Wilcoxon p = {fmt_p(row['p_value'])}")
    return (f"Δ = {fmt(row['mean_diff'])} (95% CI [{fmt(row['diff_ci_lo'])}, {fmt(row['diff_ci_hi'])}], "
            f"{p_txt}, {row['wins']}/{row['losses']}/{row['ties']} "
            "wins/losses/ties over conditions)")


def _comparison(result, model: str, baseline: str, metric: str, subgroup: str, reference: str):
    c = result.comparisons
    c = c[(c["model"] == model) & (c["baseline"] == baseline) & (c["metric"] == metric)
          & (c["subgroup"] == subgroup) & (c["reference"] == reference)]
    return None if c.empty else c.iloc[0]


def _every_model_line(result, part, subgroup: str, headline: Sequence[str]) -> str:
    """Every model's mean on the subgroup's first headline metric, with a warning next to the score
    of a model whose predictions hardly vary across the subgroup's conditions."""
    if not headline:
        return ""
    metric = headline[0]
    spec = get_metric(metric)
    flags = constant_flags(result, subgroup)
    cells = []
    for m in result.models:
        v = part[(part["model"] == m) & (part["metric"] == metric)]["mean"]
        if not len(v):
            continue
        txt = f"`{m}` {fmt(float(v.iloc[0]))}"
        if m in flags:
            txt += f" (**{constant_note(flags[m])}**)"
        cells.append(txt)
    if not cells:
        return ""
    return f"Every model, {spec.label}: " + ", ".join(cells)


def summary_lines(result, metrics: Sequence[str], *, reference: str = "observed") -> list[str]:
    """Markdown bullet lines: per subgroup, the best model per headline metric and the verdict
    against ``additive``. For the unseen subgroups the headline metrics are those of
    :func:`headline_for` (the perturbed genes left out, and their own change apart)."""
    lines = []
    s = result.summary[result.summary["reference"] == reference]
    present = list(dict.fromkeys(s["subgroup"]))
    subgroups = [g for g in SUBGROUP_ORDER if g in present] + [g for g in present if g not in SUBGROUP_ORDER]
    limit = "ceiling" if reference == "observed" else "observed_data"
    has_additive = "additive" in result.models
    learned = [m for m in result.models if m not in BASELINE_ORDER]
    for sg in subgroups:
        part = s[s["subgroup"] == sg]
        n = int(part["n_conditions"].max()) if len(part) else 0
        seeds = int(part["n_seeds"].max()) if len(part) else 0
        bits = []
        for metric in headline_for(sg, metrics, result.metrics):
            spec = get_metric(metric)
            best = best_models(result, metric, reference=reference).get(sg)
            if best is None:
                continue
            model, mean = best
            tied = " = " in model
            model_txt = " = ".join(f"`{m}`" + (" (oracle: reads the simulator's true network)" if m in ORACLES else "")
                                   for m in model.split(" = "))
            arrow = "higher" if spec.higher_is_better else "lower"
            txt = f"{spec.label} ({arrow} is better): best {model_txt} {fmt(mean)}" + (" (tied)" if tied else "")
            lim = part[(part["model"] == limit) & (part["metric"] == metric)]
            if len(lim) and np.isfinite(lim["mean"].iloc[0]):
                txt += f" ({'ceiling' if limit == 'ceiling' else 'observed data'} {fmt(lim['mean'].iloc[0])})"
            first = model.split(" = ")[0]
            if has_additive and "additive" not in model.split(" = "):
                row = _comparison(result, first, "additive", metric, sg, reference)
                if row is not None:
                    v = verdict(row)
                    word = {"better": "better than `additive`", "worse": "worse than `additive`",
                            "inconclusive": "not clearly different from `additive` (CI and test disagree)",
                            "indistinguishable": "not distinguishable from `additive`"}[v]
                    txt += f"; {word}: {_cmp_text(row)}"
            elif has_additive and learned:
                cands = {m: part[(part["model"] == m) & (part["metric"] == metric)]["mean"] for m in learned}
                cands = {m: float(v.iloc[0]) for m, v in cands.items() if len(v) and np.isfinite(v.iloc[0])}
                if cands:
                    names = list(cands)
                    i = spec.best_index([cands[m] for m in names])
                    other = names[i]
                    row = _comparison(result, other, "additive", metric, sg, reference)
                    if row is not None:
                        v = verdict(row)
                        word = {"better": "better than it", "worse": "worse than it",
                                "inconclusive": "not clearly different from it (CI and test disagree)",
                                "indistinguishable": "not distinguishable from it"}[v]
                        txt += f"; the best learned model, `{other}`, is {word}: {_cmp_text(row)}"
            bits.append(txt)
        every = _every_model_line(result, part, sg, headline_for(sg, metrics, result.metrics))
        if every:
            bits.append(every)
        if bits:
            head = f"**{sg}** ({n} condition-seed pairs, {seeds} seed{'s' if seeds != 1 else ''})"
            lines.append(f"- {head}:")
            lines.extend(f"  - {b}." for b in bits)
            if n < 10:
                lines.append(f"  - Only {n} condition-seed pair{'s' if n != 1 else ''}: intervals are wide or "
                             "missing and the test has little power.")
    return lines
