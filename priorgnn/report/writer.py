"""Write the full report of an :class:`~priorgnn.metrics.evaluation.EvaluationResult`.

``OUT/`` receives::

    report.md            the report: honest summary, tables per subgroup, comparisons, figures
    per_condition.csv    one row per (model, reference, seed, condition)
    summary.csv, .json   means and CIs per model, reference, subgroup, metric (+ provenance in JSON)
    comparisons.csv      paired comparisons with the additive and no-change baselines
    diagnostics.csv      per model, seed and subgroup: spread of the predictions across conditions
    table.tex            booktabs table for the paper (table_truth.tex on simulated data)
    figures/*.png        bars with CIs per metric, delta scatter, DE heatmap
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from priorgnn._io import safe_name, write_csv, write_json, write_text
from priorgnn.metrics.diagnostics import CONSTANT_THRESHOLD
from priorgnn.metrics.registry import get_metric
from priorgnn.metrics.stats import SUBGROUP_ORDER
from priorgnn.report.figures import plot_de_heatmap, plot_delta_scatter, plot_metric_bars
from priorgnn.report.summary import best_models, summary_lines
from priorgnn.report.tables import comparison_markdown, latex_table, md_escape, summary_markdown

log = logging.getLogger(__name__)

__all__ = ["write_report", "DEFAULT_HEADLINE", "DEFAULT_TABLE_METRICS"]

#: Metrics of the summary and the comparison tables in ``report.md``.
DEFAULT_HEADLINE = ("l2_top1000_expressed", "pearson_delta", "pearson_delta_top20_de", "mse_top20_de")
#: Columns of ``table.tex``.
DEFAULT_TABLE_METRICS = ("mse_top20_de", "pearson_delta", "pearson_delta_top20_de", "direction_top20_de",
                         "l2_top1000_expressed", "pearson_delta_vs_perturbed_mean")


def _clean(obj: Any) -> Any:
    """NaN/inf → None, numpy scalars → Python, so summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _records(df) -> list[dict]:
    return _clean(df.to_dict(orient="records"))


def _rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def write_report(
    result,
    out: str | Path,
    *,
    headline: Sequence[str] | None = None,
    table_metrics: Sequence[str] | None = None,
    ci_style: str = "pm",
    figures: bool = True,
) -> Path:
    """Write ``report.md`` and its tables and figures to ``out`` (see the module docstring).

    Parameters
    ----------
    result
        From :func:`priorgnn.metrics.evaluate_runs`.
    out
        Output folder (created).
    headline
        Metrics of the summary and comparison tables (default :data:`DEFAULT_HEADLINE`, those
        evaluated).
    table_metrics
        Columns of ``table.tex`` (default :data:`DEFAULT_TABLE_METRICS`, those evaluated).
    ci_style
        ``'pm'`` (mean ± CI half-width) or ``'interval'`` (mean [lo, hi]) in ``table.tex``.
    figures
        Draw the PNG figures.

    Returns
    -------
    The path of ``report.md``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = list(result.metrics)
    headline = [m for m in (headline or DEFAULT_HEADLINE) if m in metrics] or metrics[:4]
    table_metrics = [m for m in (table_metrics or DEFAULT_TABLE_METRICS) if m in metrics] or metrics
    info = result.info

    # data files
    write_csv(out / "per_condition.csv", result.per_condition, index=False)
    write_csv(out / "summary.csv", result.summary, index=False)
    write_csv(out / "comparisons.csv", result.comparisons, index=False)
    diagnostics = getattr(result, "diagnostics", None)
    if diagnostics is not None and len(diagnostics):
        write_csv(out / "diagnostics.csv", diagnostics, index=False)
    lines_obs = summary_lines(result, headline, reference="observed")
    lines_truth = summary_lines(result, headline, reference="truth") if "truth" in result.references else []
    best = {ref: {m: {sg: list(v) for sg, v in best_models(result, m, reference=ref).items()} for m in metrics}
            for ref in result.references}
    write_json(out / "summary.json", _clean({
        "info": info, "models": result.models, "references": result.references,
        "summary": _records(result.summary), "comparisons": _records(result.comparisons),
        "best": best, "summary_text": {"observed": lines_obs, "truth": lines_truth},
        "diagnostics": _records(diagnostics) if diagnostics is not None and len(diagnostics) else [],
    }))
    write_text(out / "table.tex", latex_table(result, table_metrics, reference="observed", ci_style=ci_style,
                                             label="tab:benchmark-observed"))
    if "truth" in result.references:
        write_text(out / "table_truth.tex", latex_table(result, table_metrics, reference="truth",
                                                        ci_style=ci_style, label="tab:benchmark-truth"))

    # figures
    figs: dict[str, Path] = {}
    if figures:
        fig_dir = out / "figures"
        for ref in result.references:
            for m in metrics:
                name = f"bars_{'truth_' if ref == 'truth' else ''}{safe_name(m)}.png"
                p = plot_metric_bars(result, m, fig_dir / name, reference=ref)
                if p is not None:
                    figs[f"{ref}:{m}"] = p
        p = plot_delta_scatter(result, fig_dir / "scatter_top20_de.png")
        if p is not None:
            figs["scatter"] = p
        p = plot_de_heatmap(result, fig_dir / "heatmap_top20_de.png")
        if p is not None:
            figs["heatmap"] = p

    text = _markdown(result, out, headline, lines_obs, lines_truth, figs)
    write_text(out / "report.md", text)
    log.info("report written to %s", out)
    return out / "report.md"


_NOTE_TEXT = {
    "n_fallback": "a perturbed gene the model has no effect for, predicted by its documented fallback "
                  "(additive: an unseen single is the mean training single; linear: an unmeasured gene "
                  "has a zero embedding; go_knn: a gene without a measured GO neighbour is the mean "
                  "training single; priorgnn: a gene never perturbed in training, without a measured GO "
                  "neighbour and without a trained embedding within its GO hops is the mean training single)",
    "n_untrained_genes": "a perturbed gene never perturbed in training, predicted from its learned token",
}


def _notes_markdown(notes: dict, models: Sequence[str] = ()) -> list[str]:
    """How often each model fell back (test conditions, summed over seeds), per subgroup. Every model
    of ``models`` has a row; one that reports no fallback counts says so."""
    if not notes and not models:
        return []
    subgroups = sorted({sg for per_key in notes.values() for per in per_key.values() for sg in per},
                       key=lambda g: (SUBGROUP_ORDER.index(g) if g in SUBGROUP_ORDER else len(SUBGROUP_ORDER), g))
    keys = [k for k in _NOTE_TEXT if any(k in per_key for per_key in notes.values())]
    L = ["", "## Fallbacks", "",
         "Test conditions (summed over seeds) that each model predicted for a gene it has no measured effect "
         "for" + (": " + "; ".join(f"`{k}`: {_NOTE_TEXT[k]}" for k in keys) if keys else "") + ". A model "
         "that does not count its fallbacks is listed with `none reported`: its predictions for unseen genes "
         "are not known to be fallbacks or not; see the near-constant flags in the summary.", "",
         "| model | count | " + " | ".join(subgroups) + " | all |",
         "|---|---|" + "---:|" * (len(subgroups) + 1)]
    for model in list(dict.fromkeys([*models, *notes])):
        per_key = notes.get(model) or {}
        if not per_key:
            L.append(f"| `{md_escape(model)}` | none reported | " + " | ".join("" for _ in subgroups) + " | |")
        for key, per in per_key.items():
            cells = [f"{per[sg][0]} / {per[sg][1]}" if sg in per else "" for sg in subgroups]
            k, n = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
            L.append(f"| `{md_escape(model)}` | `{key}` | " + " | ".join(cells) + f" | {k} / {n} |")
    return L


def _markdown(result, out: Path, headline, lines_obs, lines_truth, figs) -> str:
    info = result.info
    d = info["data"]
    L: list[str] = ["# Perturbation-prediction benchmark report", ""]
    kind = "simulated (noise-free truth known)" if d.get("simulated") else "measured"
    L.append(f"**Data:** `{md_escape(d['name'])}`, {kind}: {d['n_cells']} cells, {d['n_genes']} genes, "
             f"{d['n_conditions']} perturbed conditions.  ")
    seeds = info["seeds"]
    L.append(f"**Seeds:** {', '.join(map(str, seeds))}; split kind "
             f"{', '.join(sorted({v['kind'] for v in info['splits'].values()}))}.  ")
    runs = ", ".join(f"`{md_escape(r['label'])}` (seed {r['seed']})" for r in info["runs"])
    L.append(f"**Runs:** {runs}.  ")
    if info.get("baselines"):
        L.append(f"**Baselines fitted here** on the same data and splits: "
                 f"{', '.join(f'`{b}`' for b in info['baselines'])}.  ")
    sizes = "; ".join(
        f"seed {s}: " + ", ".join(f"{k} {v}" for k, v in sp["subgroups"].items())
        for s, sp in info["splits"].items())
    L.append(f"**Test conditions per subgroup:** {sizes}.")
    L += ["", "## Summary", "",
          "Means over test conditions with 95% bootstrap CIs; differences are paired over the same "
          "conditions and seeds (Δ > 0: the model is better). A difference counts as real when its CI "
          "excludes 0 and the Wilcoxon signed-rank p, Holm-adjusted over the models and subgroups of "
          "that metric and baseline, is below 0.05. For unseen perturbations (`unseen_single`, "
          "`combo_seen0`) the summary uses `pearson_delta_excl_target` (the perturbed genes left out) "
          "and scores the perturbed genes' own change apart (`target_sign_match`, `target_abs_error`).",
          ""]
    if "additive" not in result.models:
        L += ["**The `additive` baseline was not evaluated**, so no model is compared with it; rerun with "
              "`--baselines` (published benchmarks found it hard to beat on double perturbations).", ""]
    L += lines_obs or ["- No results."]
    if lines_truth:
        L += ["", "Against the simulator's noise-free truth:", ""] + lines_truth
    L += _notes_markdown(info.get("prediction_notes") or {}, result.models)
    for ref in result.references:
        title = "observed data" if ref == "observed" else "noise-free truth (simulation)"
        L += ["", f"## Results against the {title}", ""]
        if ref == "observed":
            L.append("The italic row is the split-half noise ceiling: each metric between two random halves "
                     "of each condition's cells. It is conservative (each half has twice the sampling "
                     "noise of the full mean; for the MSE a perfect model scores about a quarter of it), "
                     "so it shows the scale of noise, not a hard limit.")
        else:
            L.append("The italic row scores the observed data themselves against the truth: what a model "
                     "would score by reproducing the measurements exactly.")
        s = result.summary[result.summary["reference"] == ref]
        subgroups = list(dict.fromkeys(s["subgroup"]))
        subgroups = [g for g in SUBGROUP_ORDER if g in subgroups] + [g for g in subgroups if g not in SUBGROUP_ORDER]
        for sg in subgroups:
            L += ["", f"### {sg}", "", summary_markdown(result, sg, result.metrics, reference=ref)]
        shown = [m for m in result.metrics if f"{ref}:{m}" in figs]
        if shown:
            L += ["", "#### Figures", ""]
            for m in shown:
                L.append(f"![{get_metric(m).label}]({_rel(figs[f'{ref}:{m}'], out)})")
                L.append("")
        for base in info.get("compare_with", []):
            tab = comparison_markdown(result, base, headline, reference=ref)
            if tab:
                L += ["", f"### Paired comparison with `{base}` ({title})", "",
                      "Δ > 0: the model is better than the baseline. Holm p corrects over models and "
                      "subgroups for each metric. All metrics are in comparisons.csv.", "", tab]
    if "scatter" in figs or "heatmap" in figs:
        L += ["", "## Example conditions", "",
              "Doubles with the largest observed change on their top-20 DE genes (first seed)."]
        if "scatter" in figs:
            L += ["", f"![predicted vs observed change]({_rel(figs['scatter'], out)})"]
        if "heatmap" in figs:
            L += ["", f"![top DE genes heatmap]({_rel(figs['heatmap'], out)})"]
    L += ["", "## Metric definitions", ""]
    rows = []
    for m in result.metrics:
        sp = get_metric(m)
        rows.append(f"| `{m}` | {sp.best_value:g} ({'higher' if sp.higher_is_better else 'lower'} is better) "
                    f"| {md_escape(sp.description)} | {md_escape(sp.source)} |")
    L += ["| metric | best | definition | source |", "|---|---|---|---|", *rows]
    gi = info.get("gi_thresholds", {})
    bs = info["bootstrap"]
    L += ["", "## Methods", "",
          "- p, r: predicted and reference mean log-normalised expression of a condition; Δ: change "
          "from the control mean. Top-20 DE genes: scanpy t-test of the condition against control on "
          "the full data, ranked by |t| (GEARS). Most expressed genes: highest observed control mean. "
          "Undefined Pearson correlations (a constant prediction) count as 0, as in GEARS.",
          f"- CIs: percentile bootstrap over conditions, {bs['n_boot']} resamples, seed {bs['seed']}; with "
          "several seeds the estimate is the mean of per-seed means and conditions are resampled within "
          "each seed. The spread between seeds is in summary.csv (seed_sd).",
          "- Paired comparisons: per-condition differences averaged over seeds; two-sided Wilcoxon "
          "signed-rank test (exact ties dropped and counted as ties; all ties give p = 1); Holm "
          "correction within each metric and baseline.",
          "- Near-constant predictions: per model, seed and subgroup, the root mean square deviation of the "
          "predicted changes from their mean across the subgroup's conditions, divided by the same for the "
          "observed changes (perturbed genes left out). A model below "
          f"{CONSTANT_THRESHOLD:g} predicts nearly one change for every condition and is flagged next to its "
          "scores (`no_change` and `mean` do so by design, `additive` for unseen singles by its fallback).",
          "- Discrimination score: rank of the own condition among all test conditions of the seed by L1 "
          "distance of changes (perturbed genes left out), 1 − rank/N (cell-eval).",
          "- Genetic-interaction label (doubles whose two singles are in training): Norman et al. (2019) "
          "Theil–Sen fit of the double's change on the singles' changes over the 1,000 most expressed "
          "genes; thresholds "
          + ", ".join(f"{k} = {v:.3g}" for k, v in gi.items())
          + ". Both labels use the reference's single changes; only the double differs.",
          "", "## Files", "",
          "`per_condition.csv` (one row per model, reference, seed and condition), `summary.csv` / "
          "`summary.json` (means and CIs), `comparisons.csv` (all paired comparisons), `diagnostics.csv` "
          "(spread of each model's predictions per seed and subgroup), `table.tex`"
          + (" and `table_truth.tex`" if "truth" in result.references else "")
          + " (booktabs)" + (", `figures/`." if figs else "."), ""]
    return "\n".join(L)
