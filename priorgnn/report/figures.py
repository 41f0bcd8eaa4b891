"""Report figures (matplotlib, Agg backend): metric bars, delta scatter, DE heatmap.

Every function takes an :class:`~priorgnn.metrics.evaluation.EvaluationResult`, draws one figure and
writes it atomically (:func:`priorgnn._io.save_figure`). File names never derive from data values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from priorgnn._io import save_figure  # noqa: E402
from priorgnn.metrics.registry import get_metric  # noqa: E402
from priorgnn.metrics.stats import SUBGROUP_ORDER  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["plot_metric_bars", "plot_delta_scatter", "plot_de_heatmap", "select_example_conditions",
           "model_colors"]

_LIMIT_LABEL = {"ceiling": "split-half noise ceiling", "observed_data": "observed data vs truth"}


def model_colors(models: Sequence[str]) -> dict[str, tuple]:
    """A stable colour per model (tab10, then tab20)."""
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _subgroups(summary, include_all: bool = True) -> list[str]:
    present = list(dict.fromkeys(summary["subgroup"]))
    order = [s for s in SUBGROUP_ORDER if s in present and (include_all or s != "all")]
    return order + [s for s in present if s not in order]


def plot_metric_bars(result, metric: str, path: str | Path, *, reference: str = "observed") -> Path | None:
    """Mean of ``metric`` per subgroup (x) and model (bars) with 95% CIs; the limit as a black line.

    The limit is the split-half noise ceiling for the observed reference and the observed data's own
    score for the truth reference. Returns the path, or ``None`` if there is nothing to draw.
    """
    spec = get_metric(metric)
    s = result.summary
    s = s[(s["metric"] == metric) & (s["reference"] == reference)]
    if s.empty or not np.isfinite(s["mean"]).any():
        return None
    subgroups = _subgroups(s)
    models = [m for m in result.models if m in set(s["model"])]
    limit = "ceiling" if reference == "observed" else "observed_data"
    colors = model_colors(result.models)
    width = 0.8 / max(1, len(models))
    fig_w = max(6.0, 1.0 + len(subgroups) * (0.45 * len(models) + 0.6))
    fig, ax = plt.subplots(figsize=(fig_w, 4.2))
    x = np.arange(len(subgroups))
    for j, m in enumerate(models):
        rows = s[s["model"] == m].set_index("subgroup").reindex(subgroups)
        mean = rows["mean"].to_numpy(dtype=float)
        err = np.vstack([mean - rows["ci_lo"].to_numpy(dtype=float), rows["ci_hi"].to_numpy(dtype=float) - mean])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
        ax.bar(x - 0.4 + width * (j + 0.5), np.nan_to_num(mean), width * 0.92, yerr=err, capsize=2,
               color=colors[m], label=m, error_kw={"elinewidth": 0.8, "ecolor": "0.2"})
    lim_rows = s[s["model"] == limit].set_index("subgroup").reindex(subgroups)
    drew = False
    for i, v in enumerate(lim_rows["mean"].to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.hlines(v, i - 0.45, i + 0.45, colors="black", linestyles="--", linewidth=1.4,
                      label=_LIMIT_LABEL[limit] if not drew else None, zorder=5)
            drew = True
    n_cond = (s[s["model"] == models[0]].set_index("subgroup").reindex(subgroups)["n_conditions"]
              if models else None)
    ticks = [f"{sg}\n(n={int(n)})" if n_cond is not None and np.isfinite(n) else sg
             for sg, n in zip(subgroups, n_cond if n_cond is not None else [np.nan] * len(subgroups),
                              strict=True)]
    ax.set_xticks(x)
    ax.set_xticklabels(ticks, fontsize=9)
    ax.axhline(0, color="0.6", linewidth=0.6)
    arrow = "higher is better" if spec.higher_is_better else "lower is better"
    ax.set_ylabel(f"{spec.label}\n({arrow})", fontsize=10)
    ref_txt = "observed data" if reference == "observed" else "noise-free truth"
    ax.set_title(f"{spec.label} (reference: {ref_txt})\nmean and 95% bootstrap CI over test conditions",
                 fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def select_example_conditions(examples, n: int = 4) -> list[int]:
    """Rows of up to ``n`` example conditions, deterministic: the double with the largest observed
    change on its top-20 DE genes from each of ``combo_seen2``, ``combo_seen1``, ``combo_seen0`` in
    turn, then the next largest doubles, then singles."""
    obs = examples.observed_delta
    de = np.maximum(examples.de_idx, 0)
    size = np.sqrt(np.sum(np.where(examples.de_idx >= 0, np.take_along_axis(obs, de, axis=1), 0) ** 2, axis=1))
    is_double = np.array([len([g for g in c.split("+") if g != "ctrl"]) == 2 for c in examples.conditions])
    by_size = [int(i) for i in np.lexsort((np.arange(len(size)), -size))]
    queues = []
    for sg in ("combo_seen2", "combo_seen1", "combo_seen0"):
        q = [i for i in by_size if is_double[i] and examples.subgroups.get(examples.conditions[i]) == sg]
        if q:
            queues.append(q)
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    rest = [i for i in by_size if i not in chosen]
    rest = [i for i in rest if is_double[i]] + [i for i in rest if not is_double[i]]
    return chosen + rest[: n - len(chosen)]


def plot_delta_scatter(result, path: str | Path, *, seed: int | None = None, n_conditions: int = 4,
                       models: Sequence[str] | None = None) -> Path | None:
    """Predicted vs observed change on the top-20 DE genes of a few test conditions (rows) for each
    model (columns), with the identity line and the Pearson correlation."""
    if not result.examples:
        return None
    ex = result.examples[seed if seed is not None else min(result.examples)]
    models = [m for m in (models or result.models) if m in ex.predicted_delta]
    rows = select_example_conditions(ex, n_conditions)
    if not rows or not models:
        return None
    colors = model_colors(result.models)
    fig, axes = plt.subplots(len(rows), len(models), figsize=(2.5 * len(models) + 0.8, 2.5 * len(rows) + 0.4),
                             squeeze=False)
    for r, i in enumerate(rows):
        de = ex.de_idx[i][ex.de_idx[i] >= 0]
        o = ex.observed_delta[i, de]
        preds = {m: ex.predicted_delta[m][i, de] for m in models}
        allv = np.concatenate([o, *preds.values()])
        lo, hi = float(np.min(allv)), float(np.max(allv))
        pad = 0.08 * (hi - lo if hi > lo else 1.0)
        lo, hi = lo - pad, hi + pad
        for c, m in enumerate(models):
            ax = axes[r, c]
            p = preds[m]
            ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=0.8, linestyle="--")
            ax.axhline(0, color="0.85", linewidth=0.6)
            ax.axvline(0, color="0.85", linewidth=0.6)
            ax.scatter(o, p, s=14, color=colors[m], edgecolor="none")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal", adjustable="box")
            if np.std(p) > 0 and np.std(o) > 0:
                rr = float(np.corrcoef(o, p)[0, 1])
                ax.text(0.04, 0.95, f"r = {rr:.2f}", transform=ax.transAxes, va="top", fontsize=8)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(m, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{ex.conditions[i]} ({ex.subgroups.get(ex.conditions[i], '')})\n"
                              "predicted Δ", fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("observed Δ", fontsize=8)
    fig.suptitle(f"Top-20 DE genes: predicted vs observed change from control (seed {ex.seed})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def plot_de_heatmap(result, path: str | Path, *, seed: int | None = None, n_conditions: int = 3,
                    models: Sequence[str] | None = None) -> Path | None:
    """Heatmaps of the change on the top-20 DE genes of a few conditions: observed (and the truth on
    simulated data) above each model's prediction, one shared colour scale per condition."""
    if not result.examples:
        return None
    ex = result.examples[seed if seed is not None else min(result.examples)]
    models = [m for m in (models or result.models) if m in ex.predicted_delta]
    rows = select_example_conditions(ex, n_conditions)
    if not rows:
        return None
    labels = ["observed"] + (["truth"] if ex.truth_delta is not None else []) + models
    n_genes = int(max((ex.de_idx[i] >= 0).sum() for i in rows))
    heights = [0.32 * len(labels) + 1.3 for _ in rows]
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(7.0, 0.36 * n_genes + 3.2), sum(heights)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for r, i in enumerate(rows):
        ax = axes[r, 0]
        de = ex.de_idx[i][ex.de_idx[i] >= 0]
        mats = [ex.observed_delta[i, de]]
        if ex.truth_delta is not None:
            mats.append(ex.truth_delta[i, de])
        mats += [ex.predicted_delta[m][i, de] for m in models]
        M = np.vstack(mats)
        v = float(np.max(np.abs(M[0]))) or 1.0
        im = ax.imshow(M, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xticks(range(len(de)))
        ax.set_xticklabels([ex.genes[g] for g in de], rotation=90, fontsize=7)
        ax.axhline(0.5 + (1 if ex.truth_delta is not None else 0), color="black", linewidth=1.0)
        ax.set_title(f"{ex.conditions[i]} ({ex.subgroups.get(ex.conditions[i], '')})", fontsize=9)
        cb = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
        cb.set_label("Δ from control", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    fig.suptitle(f"Change on the top-20 DE genes (seed {ex.seed}); colour clipped to the observed range",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
