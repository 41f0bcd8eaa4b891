"""Tables of the report: markdown for ``report.md`` and a booktabs LaTeX table for the paper."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from priorgnn.metrics.registry import get_metric
from priorgnn.metrics.stats import REFERENCE_ROWS, SUBGROUP_ORDER

__all__ = ["fmt", "markdown_table", "summary_markdown", "comparison_markdown", "latex_table",
           "latex_escape", "md_escape"]

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


_LATEX_UNICODE = {"Δ": r"$\Delta$", "|": r"$|$", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
                  "–": "--", "μ": r"$\mu$"}


def latex_escape(s: str) -> str:
    """Escape LaTeX's special characters (and the few non-ASCII symbols of metric labels)."""
    return "".join(_LATEX_SPECIAL.get(ch, _LATEX_UNICODE.get(ch, ch)) for ch in str(s))


def md_escape(s: str) -> str:
    """Make a data value safe inside a markdown table cell."""
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("\n", " ")


def fmt(v: float, digits: int = 3) -> str:
    """A number with ``digits`` significant decimals scaled to its size; ``–`` for NaN."""
    if v is None or not np.isfinite(v):
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1e-3 or a == 0:
        return f"{v:.{digits}f}"
    return f"{v:.2e}"


def fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of ``df`` (cells are escaped)."""
    cols = [md_escape(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(md_escape(v) for v in row.to_list()) + " |")
    return "\n".join(lines)


def _subgroups_of(summary: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(summary["subgroup"]))
    return [s for s in SUBGROUP_ORDER if s in present] + [s for s in present if s not in SUBGROUP_ORDER]


def _cell(row, ci_style: str) -> str:
    if row is None or not np.isfinite(row["mean"]):
        return "–"
    if not np.isfinite(row["ci_lo"]):
        return f"{fmt(row['mean'])} (no CI)"
    if ci_style == "interval":
        return f"{fmt(row['mean'])} [{fmt(row['ci_lo'])}, {fmt(row['ci_hi'])}]"
    return f"{fmt(row['mean'])} ± {fmt((row['ci_hi'] - row['ci_lo']) / 2)}"


def summary_markdown(result, subgroup: str, metrics: Sequence[str], *, reference: str = "observed",
                     ci_style: str = "interval") -> str:
    """Markdown table of one subgroup: a row per model (then the limit row), a column per metric,
    ``mean [CI]``; the best model per column in bold."""
    s = result.summary
    s = s[(s["reference"] == reference) & (s["subgroup"] == subgroup)]
    limit = "ceiling" if reference == "observed" else "observed_data"
    models = [m for m in result.models if m in set(s["model"])] + ([limit] if limit in set(s["model"]) else [])
    table = {"model": models}
    for m in metrics:
        spec = get_metric(m)
        sm = s[s["metric"] == m].set_index("model")
        vals = [sm.loc[x] if x in sm.index else None for x in models]
        cand = [float(v["mean"]) if v is not None and x not in REFERENCE_ROWS else np.nan
                for v, x in zip(vals, models, strict=True)]
        best = set(spec.best_indices(cand))
        cells = []
        for k, (v, x) in enumerate(zip(vals, models, strict=True)):
            c = _cell(v, ci_style)
            if k in best:
                c = f"**{c}**"
            if x in REFERENCE_ROWS:
                c = f"*{c}*"
            cells.append(c)
        arrow = "↑" if spec.higher_is_better else "↓"
        table[f"{spec.label} {arrow}"] = cells
    df = pd.DataFrame(table)
    from priorgnn.report.summary import constant_flags, constant_note  # summary imports this module

    flags = constant_flags(result, subgroup) if reference == "observed" else {}
    df["model"] = [f"*{m}*" if m in REFERENCE_ROWS else (f"{m} ({constant_note(flags[m])})" if m in flags else m)
                   for m in df["model"]]
    return markdown_table(df)


def comparison_markdown(result, baseline: str, metrics: Sequence[str], *, reference: str = "observed"
                        ) -> str:
    """Markdown table of the paired comparisons with ``baseline`` (positive Δ = model better)."""
    c = result.comparisons
    c = c[(c["reference"] == reference) & (c["baseline"] == baseline) & (c["metric"].isin(metrics))]
    if c.empty:
        return ""
    rows = []
    for sg in _subgroups_of(c):
        for m in metrics:
            for _, r in c[(c["subgroup"] == sg) & (c["metric"] == m)].iterrows():
                rows.append({
                    "subgroup": sg, "metric": get_metric(m).label, "model": r["model"], "n": r["n"],
                    "wins/losses/ties": f"{r['wins']}/{r['losses']}/{r['ties']}",
                    "Δ (model better > 0) [95% CI]":
                        f"{fmt(r['mean_diff'])} [{fmt(r['diff_ci_lo'])}, {fmt(r['diff_ci_hi'])}]",
                    "Wilcoxon p": fmt_p(r["p_value"]), "Holm p": fmt_p(r["p_holm"]),
                })
    return markdown_table(pd.DataFrame(rows))


def latex_table(result, metrics: Sequence[str], *, reference: str = "observed", ci_style: str = "pm",
                subgroups: Sequence[str] | None = None, caption: str | None = None,
                label: str = "tab:benchmark") -> str:
    """A booktabs LaTeX table: a block of rows per subgroup, a column per metric.

    Cells are ``mean ± half-width of the 95% CI`` (``ci_style='pm'``) or ``mean [lo, hi]``
    (``'interval'``); a missing interval (fewer than two conditions in a seed) shows the mean alone.
    The best model per subgroup and column is bold (all of them when tied); the limit row (noise
    ceiling or observed data vs truth) is italic and never bold. Needs ``\\usepackage{booktabs}``.
    """
    s = result.summary
    s = s[s["reference"] == reference]
    subgroups = list(subgroups or _subgroups_of(s))
    limit = "ceiling" if reference == "observed" else "observed_data"
    limit_name = "split-half ceiling" if limit == "ceiling" else "observed data"
    specs = [get_metric(m) for m in metrics]
    ncol = len(specs) + 1
    head = " & ".join(
        [r"\textbf{Model}"] + [rf"{latex_escape(sp.label)} $\{'uparrow' if sp.higher_is_better else 'downarrow'}$"
                               for sp in specs]
    )
    lines = [
        "% Generated by priorgnn (evaluate.py). Requires \\usepackage{booktabs}. For a single-column",
        "% layout use table* or wrap the tabular in \\resizebox{\\linewidth}{!}{...} (graphicx).",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        rf"\begin{{tabular}}{{l{'c' * len(specs)}}}",
        r"\toprule",
        head + r" \\",
    ]
    for sg in subgroups:
        part = s[s["subgroup"] == sg]
        if part.empty:
            continue
        models = [m for m in result.models if m in set(part["model"])]
        n = part["n_conditions"].max()
        lines.append(r"\midrule")
        lines.append(rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{latex_escape(sg)}}} ($n={int(n)}$)}} \\")
        best = {}
        for sp in specs:
            sm = part[part["metric"] == sp.name].set_index("model")
            vals = [float(sm.loc[m, "mean"]) if m in sm.index else np.nan for m in models]
            best[sp.name] = set(sp.best_indices(vals))
        for k, m in enumerate(models + ([limit] if limit in set(part["model"]) else [])):
            cells = [latex_escape(m) if m != limit else rf"\textit{{{limit_name}}}"]
            for sp in specs:
                sm = part[part["metric"] == sp.name].set_index("model")
                if m not in sm.index or not np.isfinite(sm.loc[m, "mean"]):
                    cells.append("--")
                    continue
                r = sm.loc[m]
                if not np.isfinite(r["ci_lo"]):
                    txt = fmt(r["mean"])
                elif ci_style == "interval":
                    txt = f"{fmt(r['mean'])} [{fmt(r['ci_lo'])}, {fmt(r['ci_hi'])}]"
                else:
                    txt = rf"{fmt(r['mean'])} $\pm$ {fmt((r['ci_hi'] - r['ci_lo']) / 2)}"
                if m == limit:
                    txt = rf"\textit{{{txt}}}"
                elif k in best[sp.name]:
                    txt = rf"\textbf{{{txt}}}"
                cells.append(txt)
            lines.append(" & ".join(cells) + r" \\")
    ref_txt = "observed data" if reference == "observed" else "the simulator's noise-free truth"
    cap = caption or (
        f"Per-condition metrics against {ref_txt}: mean over test conditions "
        + ("$\\pm$ half-width of" if ci_style == "pm" else "and")
        + " the 95\\% bootstrap confidence interval (conditions resampled within seeds). Best model per "
        "subgroup in bold; arrows give the better direction."
        + (" The split-half noise ceiling is conservative (each half has twice the sampling noise)."
           if reference == "observed" else "")
    )
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{cap}}}", rf"\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(lines)
