"""The knowledge-bias study's report: summary tables, curves and the generated ``study.md``.

:func:`write_study_report` turns the per-cell tables of :mod:`priorgnn.study` into CSVs, PNG figures
and ``study.md``. Means and CIs come from :func:`priorgnn.metrics.aggregate` and
:func:`priorgnn.metrics.bootstrap_ci`, paired differences from
:func:`priorgnn.metrics.paired_comparison`, verdicts from :func:`priorgnn.report.verdict`. Every
sentence of ``study.md`` that states a result is built from those numbers.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from priorgnn._io import read_json, save_figure, write_csv, write_text  # noqa: E402
from priorgnn.metrics.registry import get_metric  # noqa: E402
from priorgnn.metrics.stats import aggregate, bootstrap_ci, paired_comparison  # noqa: E402
from priorgnn.report.figures import model_colors, plot_metric_bars  # noqa: E402
from priorgnn.report.summary import verdict  # noqa: E402
from priorgnn.report.tables import fmt, fmt_p, markdown_table  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["write_study_report", "monotone_within_noise"]

_SUBS = ("all", "unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")
_LIMITS = ("ceiling", "observed_data")


# -- numbers ------------------------------------------------------------------------------------------
def _ci_row(values_by_seed: list[np.ndarray], n_boot: int) -> dict[str, float]:
    r = bootstrap_ci(values_by_seed, n_boot=n_boot)
    return {"mean": r.mean, "ci_lo": r.lo, "ci_hi": r.hi, "n": r.n, "n_seeds": r.n_seeds}


def _causal_summary(causal: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    rows = []
    if causal.empty:
        return pd.DataFrame(columns=["setting", "model", "mean", "ci_lo", "ci_hi", "n", "n_seeds", "positive_rate"])
    for (setting, model), g in causal.groupby(["setting", "model"], sort=False):
        g = g[np.isfinite(g["auprc"])]
        by_seed = [s["auprc"].to_numpy(dtype=float) for _, s in g.groupby("seed")]
        lift = [(s["auprc"] - s["positive_rate"]).to_numpy(dtype=float) for _, s in g.groupby("seed")]
        above = _ci_row(lift, n_boot)
        rows.append({"setting": setting, "model": model, **_ci_row(by_seed, n_boot),
                     "positive_rate": float(g["positive_rate"].mean()),
                     "above_chance": above["mean"], "above_chance_lo": above["ci_lo"],
                     "above_chance_hi": above["ci_hi"]})
    return pd.DataFrame(rows)


def _gi_summary(gi: pd.DataFrame) -> pd.DataFrame:
    rows = []
    if gi.empty:
        return pd.DataFrame(columns=["setting", "model", "n_doubles", "accuracy", "n_calls", "precision",
                                     "n_true_interactions", "recall"])
    for (setting, model), g in gi.groupby(["setting", "model"], sort=False):
        match = g["label_pred"] == g["label_true"]
        calls = g["label_pred"] != "additive"
        true_int = g["label_true"] != "additive"
        rows.append({"setting": setting, "model": model, "n_doubles": int(len(g)),
                     "accuracy": float(match.mean()), "n_calls": int(calls.sum()),
                     "precision": float(match[calls].mean()) if calls.any() else np.nan,
                     "n_true_interactions": int(true_int.sum()),
                     "recall": float(match[true_int].mean()) if true_int.any() else np.nan})
    return pd.DataFrame(rows)


def _latent_summary(latent: pd.DataFrame) -> pd.DataFrame:
    if latent.empty:
        return pd.DataFrame()
    g = latent.groupby(["setting", "model", "space"], sort=False)
    out = g[["spearman_go", "spearman_effect"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["n_seeds"] = g.size()
    out["n_genes"] = g["n_genes"].first()
    return out.reset_index()


def monotone_within_noise(x: list[float], means: list[float], lo: list[float], hi: list[float],
                          higher_is_better: bool, *, decreasing_in_x: bool = True) -> tuple[bool, list[str]]:
    """Whether a curve moves in the expected direction within noise: no step goes the wrong way by more
    than the combined half-widths of the two points' CIs (``sqrt(h1² + h2²)``). Returns the verdict
    and the violating steps."""
    bad = []
    sign = -1.0 if decreasing_in_x else 1.0  # expected sign of the change of "goodness" along x
    for i in range(len(x) - 1):
        a, b = means[i], means[i + 1]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        good_change = (b - a) if higher_is_better else (a - b)
        h1 = (hi[i] - lo[i]) / 2 if np.isfinite(hi[i] - lo[i]) else 0.0
        h2 = (hi[i + 1] - lo[i + 1]) / 2 if np.isfinite(hi[i + 1] - lo[i + 1]) else 0.0
        tol = float(np.hypot(h1, h2))
        if sign * good_change < -tol:
            bad.append(f"{x[i]:g} → {x[i + 1]:g}: {fmt(a)} → {fmt(b)} (noise band ±{fmt(tol)})")
    return not bad, bad


# -- small accessors ----------------------------------------------------------------------------------
class _View:
    def __init__(self, grid, summary: pd.DataFrame, metrics: pd.DataFrame, n_boot: int) -> None:
        self.grid, self.s, self.per_condition, self.n_boot = grid, summary, metrics, n_boot
        self._cmp: dict = {}

    def get(self, setting, model, metric, ref, sub="all") -> pd.Series | None:
        s = self.s
        r = s[(s["setting"] == setting) & (s["model"] == model) & (s["metric"] == metric)
              & (s["reference"] == ref) & (s["subgroup"] == sub)]
        return None if r.empty else r.iloc[0]

    def mean(self, *a, **k) -> float:
        r = self.get(*a, **k)
        return float("nan") if r is None else float(r["mean"])

    def cell(self, *a, **k) -> str:
        r = self.get(*a, **k)
        if r is None:
            return "–"
        if not np.isfinite(r["ci_lo"]):
            return fmt(r["mean"])
        return f"{fmt(r['mean'])} [{fmt(r['ci_lo'])}, {fmt(r['ci_hi'])}]"

    def compare(self, setting, model, base, metric, ref, sub="all", *, base_setting: str | None = None
                ) -> pd.Series | None:
        """Paired comparison of ``model`` with ``base`` on the same conditions and seeds; ``base_setting``
        takes the baseline from another setting with the same data and split."""
        key = (setting, model, base, metric, ref, base_setting)
        if key not in self._cmp:
            df = self.per_condition
            if base_setting is None:
                df = df[(df["setting"] == setting) & df["model"].isin([model, base])]
            else:
                a = df[(df["setting"] == setting) & (df["model"] == model)]
                b = df[(df["setting"] == base_setting) & (df["model"] == base)]
                if base == model:
                    b = b.assign(model=f"{base}@{base_setting}")
                    base = f"{base}@{base_setting}"
                df = pd.concat([a, b], ignore_index=True)
            if df["model"].nunique() < 2:
                self._cmp[key] = None
            else:
                self._cmp[key] = paired_comparison(df, [metric], baselines=(base,), reference=ref,
                                                   n_boot=self.n_boot)
        c = self._cmp[key]
        if c is None:
            return None
        r = c[(c["model"] == model) & (c["subgroup"] == sub)]
        return None if r.empty else r.iloc[0]


def _delta_text(row) -> str:
    if row is None:
        return "not measured"
    v = verdict(row)
    word = {"better": "better, beyond its CI", "worse": "worse, beyond its CI",
            "inconclusive": "inconclusive (CI and test disagree)",
            "indistinguishable": "within noise (CI includes 0)"}[v]
    return (f"Δ = {fmt(row['mean_diff'])} [{fmt(row['diff_ci_lo'])}, {fmt(row['diff_ci_hi'])}], "
            f"p = {fmt_p(row['p_value'])}, n = {int(row['n'])}: {word}")


def _models_in(summary: pd.DataFrame, setting: str) -> list[str]:
    from priorgnn.study import MODELS

    present = set(summary.loc[summary["setting"] == setting, "model"])
    return [m for m in MODELS if m in present]


# -- figures -----------------------------------------------------------------------------------------
def _bars(view: _View, setting: str, metric: str, ref: str, path: Path) -> Path | None:
    s = view.s[view.s["setting"] == setting].drop(columns="setting")
    res = SimpleNamespace(summary=s, models=_models_in(view.s, setting))
    return plot_metric_bars(res, metric, path, reference=ref)


def _heatmap(view: _View, setting: str, metric: str, ref: str, path: Path) -> Path | None:
    """Model × subgroup table of a metric's means as an annotated heatmap (with the limit row)."""
    models = _models_in(view.s, setting) + ["ceiling" if ref == "observed" else "observed_data"]
    M = np.array([[view.mean(setting, m, metric, ref, sub) for sub in _SUBS] for m in models])
    if not np.isfinite(M).any():
        return None
    spec = get_metric(metric)
    fig, ax = plt.subplots(figsize=(6.2, 0.28 * len(models) + 1.3))
    cmap = "viridis" if spec.higher_is_better else "viridis_r"
    ax.imshow(np.ma.masked_invalid(M), aspect="auto", cmap=cmap)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            if np.isfinite(M[i, j]):
                ax.text(j, i, fmt(M[i, j]), ha="center", va="center", fontsize=6.5, color="white"
                        if (M[i, j] - np.nanmin(M)) / (np.ptp(M[np.isfinite(M)]) or 1) < 0.5 else "black")
    ax.set_xticks(range(len(_SUBS)))
    ax.set_xticklabels(_SUBS, fontsize=7)
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models, fontsize=7)
    ax.set_title(f"{spec.label} vs {ref} ({setting}; {'higher' if spec.higher_is_better else 'lower'} is better)",
                 fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def _axis_points(grid, axis: str) -> list[tuple[float, str]]:
    pts = [(st.value, st.name) for st in grid.settings() if st.axis == axis]
    base = {"go_fidelity": 1.0, "train_frac": 1.0, "interaction": 1.0, "pretrain_mult": 1.0}[axis]
    if any(x == base for x, _ in pts):  # the axis has its own point at the base value (its own protocol)
        return sorted(pts)
    return sorted(pts + [(base, "base")])


def _axis_models(grid, axis: str) -> list[str]:
    return list(dict.fromkeys(m for st in grid.settings() if st.axis == axis for m in st.models))


def _curve_data(view: _View, points, model, metric, ref, sub):
    xs, ms, lo, hi = [], [], [], []
    for x, setting in points:
        r = view.get(setting, model, metric, ref, sub)
        if r is None:
            continue
        xs.append(x)
        ms.append(float(r["mean"]))
        lo.append(float(r["ci_lo"]))
        hi.append(float(r["ci_hi"]))
    return xs, ms, lo, hi


def _plot_curves(view: _View, axis: str, xlabel: str, path: Path, metric: str, ref: str,
                 flat: list[str] = ()) -> Path | None:
    points = _axis_points(view.grid, axis)
    models = _axis_models(view.grid, axis)
    if len(points) < 2 or not models:
        return None
    colors = model_colors(list(dict.fromkeys([*models, *flat])))
    spec = get_metric(metric)
    fig, axes = plt.subplots(1, len(_SUBS), figsize=(3.1 * len(_SUBS), 3.4), sharey=False)
    for ax, sub in zip(axes, _SUBS):
        for m in models:
            xs, ms, lo, hi = _curve_data(view, points, m, metric, ref, sub)
            if not xs:
                continue
            err = np.vstack([np.array(ms) - np.array(lo), np.array(hi) - np.array(ms)])
            err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            ax.errorbar(xs, ms, yerr=err, marker="o", ms=3, capsize=2, lw=1.2, color=colors[m], label=m)
        for m in flat:  # models whose data do not change along the axis: their base value
            v = view.mean("base", m, metric, ref, sub)
            if np.isfinite(v):
                ax.axhline(v, ls="--", lw=1, color=colors[m], label=f"{m} (base)")
        ax.set_title(sub, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(f"{spec.label}\nvs {ref}", fontsize=8)
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="upper center", ncol=min(6, len(lab)), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_degradation(view: _View, path: Path, metric: str, ref: str) -> Path | None:
    from priorgnn.study import GO_DEGRADED

    fracs = [0.0, 0.25, 0.5, 0.75]
    spec = get_metric(metric)
    if not any(np.isfinite(view.mean("base", m, metric, ref)) for m in GO_DEGRADED[1:]):
        return None
    fig, axes = plt.subplots(1, len(_SUBS), figsize=(3.1 * len(_SUBS), 3.4))
    others = [("priorgnn_go_rewired", "rewired"), ("priorgnn_go_permuted", "permuted"),
              ("priorgnn_go_random", "random"), ("priorgnn_no_go", "no GO")]
    colors = model_colors([o for o, _ in others] + ["curve"])
    for ax, sub in zip(axes, _SUBS):
        xs, ms, lo, hi = [], [], [], []
        for f, m in zip(fracs, GO_DEGRADED):
            r = view.get("base", m, metric, ref, sub)
            if r is not None:
                xs.append(f)
                ms.append(r["mean"])
                lo.append(r["ci_lo"])
                hi.append(r["ci_hi"])
        if xs:
            err = np.vstack([np.array(ms) - np.array(lo), np.array(hi) - np.array(ms)])
            err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            ax.errorbar(xs, ms, yerr=err, marker="o", color="black", capsize=2, label="GO edge dropout")
        for m, name in others:
            v = view.mean("base", m, metric, ref, sub)
            if np.isfinite(v):
                ax.axhline(v, ls="--", lw=1, color=colors[m], label=name)
        ax.set_title(sub, fontsize=9)
        ax.set_xlabel("GO edges dropped", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(f"PriorGNN {spec.label}\nvs {ref}", fontsize=8)
    h, lab = axes[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="upper center", ncol=5, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_hbar(df: pd.DataFrame, value: str, lo: str | None, hi: str | None, title: str, path: Path,
               vline: float | None = None, vline_label: str = "") -> Path | None:
    if df.empty or not np.isfinite(df[value]).any():
        return None
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(df) + 1.2))
    y = np.arange(len(df))
    err = None
    if lo and hi:
        err = np.vstack([df[value] - df[lo], df[hi] - df[value]])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
    ax.barh(y, np.nan_to_num(df[value].to_numpy(dtype=float)), xerr=err, color="0.55", capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels(df["model"], fontsize=8)
    ax.invert_yaxis()
    if vline is not None and np.isfinite(vline):
        ax.axvline(vline, color="black", ls="--", lw=1, label=vline_label)
        ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_latent(lat: pd.DataFrame, path: Path) -> Path | None:
    if lat.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(lat) + 1.3))
    y = np.arange(len(lat))
    ax.barh(y - 0.2, np.nan_to_num(lat["spearman_go_mean"]), 0.4, label="vs GO similarity", color="tab:blue")
    ax.barh(y + 0.2, np.nan_to_num(lat["spearman_effect_mean"]), 0.4, label="vs true-effect similarity",
            color="tab:orange")
    ax.set_yticks(y)
    ax.set_yticklabels(lat["model"], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel("Spearman of pairwise cosine similarities of the embeddings", fontsize=8)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


# -- the report -----------------------------------------------------------------------------------------
def _timing_text(out: Path) -> list[str]:
    L = []
    t = out / "time.txt"
    if t.exists():
        txt = t.read_text(encoding="utf-8", errors="replace")
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", txt)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt)
        cmd = re.search(r'Command being timed: "(.*)"', txt)
        user = re.search(r"User time \(seconds\): ([\d.]+)", txt)
        system = re.search(r"System time \(seconds\): ([\d.]+)", txt)
        share = re.search(r"Percent of CPU this job got: (\d+)%", txt)
        if wall and rss:
            cpu = ""
            if user and system and share:
                cpu = (f"; CPU time {float(user.group(1)) + float(system.group(1)):.0f} s, i.e. the job got "
                       f"{share.group(1)}% of one core on average (the machine's cores were shared with other "
                       "jobs, so the wall time is mostly waiting)")
            L.append(f"**Measured with `/usr/bin/time -v`:** wall time {wall.group(1)}, peak RSS "
                     f"{int(rss.group(1)) / 1024 ** 2:.2f} GiB{cpu}"
                     + (f" (`{cmd.group(1)}`)" if cmd else "") + ".  ")
    j = out / "timing.json"
    if j.exists():
        tj = read_json(j)
        L.append(f"**In-process timing:** {tj['cells_run']} cells fitted in {tj['wall_s'] / 60:.1f} min; peak "
                 f"RSS {tj['peak_rss_gib']:.2f} GiB.  ")
        if tj.get("git_revision"):
            L.append(f"**Code:** git revision `{tj['git_revision']}` at the start of the run.  ")
    for part in sorted(out.glob("timing_*.json")):  # parts of the grid fitted on another machine
        tj = read_json(part)
        where = tj.get("device") or tj.get("accelerator", "cpu")
        L.append(f"**Part fitted separately ({part.stem[len('timing_'):]}):** {tj['cells_run']} cells in "
                 f"{tj['wall_s'] / 60:.1f} min on {where}, accelerator `{tj.get('accelerator', 'cpu')}`"
                 + (f", git revision `{tj['git_revision']}`" if tj.get("git_revision") else "")
                 + (f" (`{tj['command']}`)" if tj.get("command") else "") + "."
                 + (f" {tj['note']}" if tj.get("note") else "") + "  ")
    return L


def write_study_report(grid, out: Path, tables: dict[str, pd.DataFrame], *, command: str | None = None,
                       figures: bool = True) -> Path:
    """Write the study's CSVs, figures (unless ``figures=False``) and ``study.md`` into ``out``; returns the
    ``study.md`` path."""
    from priorgnn.study import GO_DEGRADED, MODELS, PRIMARY, STUDY_METRICS

    out = Path(out)
    fig_dir = out / "figures"
    metrics_df = tables["metrics"]
    metrics = [m for m in STUDY_METRICS if m in metrics_df]
    n_boot = grid.n_boot
    summary = aggregate(metrics_df, metrics, group_cols=("setting", "model", "reference"), n_boot=n_boot)
    write_csv(out / "summary.csv", summary.round(6), index=False)
    view = _View(grid, summary, metrics_df, n_boot)
    pm, pref = PRIMARY
    spec = get_metric(pm)

    # comparisons: every model against additive and PriorGNN, per setting, both references
    cmp_frames = []
    for setting, df in metrics_df.groupby("setting", sort=False):
        for ref in ("observed", "truth"):
            c = paired_comparison(df, [pm, "pearson_delta_excl_target", "mse_top20_de"],
                                  baselines=("additive", "priorgnn"), reference=ref, n_boot=n_boot)
            c.insert(0, "setting", setting)
            cmp_frames.append(c)
    comparisons = pd.concat([c for c in cmp_frames if len(c)], ignore_index=True)
    write_csv(out / "comparisons.csv", comparisons.round(6), index=False)

    causal = _causal_summary(tables["causal"], n_boot)
    write_csv(out / "causal_recovery.csv", causal.round(6), index=False)
    gi = _gi_summary(tables["gi"])
    write_csv(out / "genetic_interactions.csv", gi.round(6), index=False)
    lat = _latent_summary(tables["latent"])
    write_csv(out / "latent.csv", lat.round(6), index=False)
    fits = tables["fits"]
    if not fits.empty:
        ft = fits.groupby(["setting", "model"], sort=False).agg(
            fit_s=("fit_s", "mean"), epochs=("epochs", "mean"), pretrain_cells=("pretrain_cells", "mean"),
            pretrain_steps=("pretrain_steps", "mean"), n_seeds=("seed", "nunique")).reset_index()
        if "accelerator" in fits:
            acc = fits.groupby(["setting", "model"], sort=False)["accelerator"].agg(
                lambda a: ",".join(sorted(set(a.dropna().astype(str)))) or "cpu")
            ft = ft.merge(acc.reset_index(), on=["setting", "model"], how="left")
        write_csv(out / "fits.csv", ft.round(3), index=False)

    figs: dict[str, Path] = {}
    if figures:
        figs = _figures(grid, view, summary, causal, lat, fig_dir)
    text = _markdown(grid, out, view, summary, comparisons, causal, gi, lat, tables, figs, command)
    write_text(out / "study.md", text)
    return out / "study.md"


def _figures(grid, view: _View, summary: pd.DataFrame, causal: pd.DataFrame, lat: pd.DataFrame,
             fig_dir: Path) -> dict[str, Path]:
    from priorgnn.study import MODELS, PRIMARY

    pm, pref = PRIMARY
    figs: dict[str, Path] = {}
    p = _bars(view, "base", pm, pref, fig_dir / f"base_{pref}_{pm}.png")
    if p is not None:
        figs[f"bars:{pref}:{pm}"] = p
    for m, ref in ((pm, "truth"), (pm, "observed"), ("pearson_delta_excl_target", "truth"), ("mse_top20_de", "truth")):
        p = _heatmap(view, "base", m, ref, fig_dir / f"heatmap_{ref}_{m}.png")
        if p is not None:
            figs[f"heatmap:{ref}:{m}"] = p
    p = _plot_degradation(view, fig_dir / "go_degradation.png", pm, pref)
    if p:
        figs["degradation"] = p
    prior_free = [m for m in ("transformer_no_pretrain", "transformer_pretrained", "additive", "priorgnn_no_go")
                  if m in set(summary.loc[summary["setting"] == "base", "model"])]
    for axis, xlabel, flat in (("go_fidelity", "GO annotation fidelity", prior_free),
                               ("train_frac", "share of training perturbations", ()),
                               ("interaction", "interaction strength", ()),
                               ("pretrain_mult", "pretraining cells (x own)", ("transformer_no_pretrain",))):
        p = _plot_curves(view, axis, xlabel, fig_dir / f"curve_{axis}.png", pm, pref,
                         [f for f in flat if f not in _axis_models(grid, axis)])
        if p:
            figs[f"curve:{axis}"] = p
    cb = causal[causal["setting"] == "base"].copy()
    order = {m: i for i, m in enumerate([*MODELS, "truth", "observed_data"])}
    cb = cb.sort_values("model", key=lambda s: s.map(order))
    p = _plot_hbar(cb, "mean", "ci_lo", "ci_hi", "Causal recovery (base): AUPRC of |predicted change| for true "
                   "downstream targets,\nheld-out singles; dashed: positive rate (random ranking)",
                   fig_dir / "causal_auprc.png", vline=float(cb["positive_rate"].mean()) if len(cb) else None,
                   vline_label="positive rate")
    if p:
        figs["causal"] = p
    lb = lat[lat["setting"] == "base"] if not lat.empty else lat
    p = _plot_latent(lb, fig_dir / "latent_spearman.png") if len(lb) else None
    if p:
        figs["latent"] = p
    for path in figs.values():
        _shrink_png(path)
    return figs


def _shrink_png(path: Path) -> None:
    """Re-save a figure with a 256-colour palette (plots have few colours): about 3x smaller files."""
    from PIL import Image

    from priorgnn._io import atomic_path

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(path, ".png") as tmp:
        small.save(tmp, format="PNG", optimize=True)


def _rel(p: Path, out: Path) -> str:
    return str(Path(p).relative_to(out))


def _best_text(view: _View, setting: str, metric: str, ref: str, sub: str, models: list[str]) -> str:
    spec = get_metric(metric)
    vals = [(m, view.mean(setting, m, metric, ref, sub)) for m in models]
    vals = [(m, v) for m, v in vals if np.isfinite(v)]
    if len(vals) < 2:
        return f"- `{sub}`: too few models measured."
    vals.sort(key=lambda t: -t[1] if spec.higher_is_better else t[1])
    (m1, v1), (m2, v2) = vals[0], vals[1]
    row = view.compare(setting, m1, m2, metric, ref, sub)
    return (f"- `{sub}`: **{m1}** ({fmt(v1)}) leads, ahead of {m2} ({fmt(v2)}); paired {m1} − {m2}: "
            f"{_delta_text(row)}.")


def _markdown(grid, out, view, summary, comparisons, causal, gi, lat, tables, figs, command) -> str:
    from priorgnn.study import GO_DEGRADED, MODELS, PRIMARY, grid_summary

    pm, pref = PRIMARY
    spec = get_metric(pm)
    base_models = _models_in(summary, "base")
    fits = tables["fits"]
    metrics_df = tables["metrics"]
    L = [f"# The knowledge-bias study (`{grid.name}` grid)", ""]
    L.append(f"**Command:** `{command or f'python evaluate.py study --grid {grid.name}'}`  ")
    L += _timing_text(out)
    gs = grid_summary(grid)
    base_pc = metrics_df[(metrics_df["setting"] == "base") & (metrics_df["reference"] == "truth")]
    sizes = base_pc[base_pc["model"] == base_pc["model"].iloc[0]] if len(base_pc) else base_pc
    sizes = sizes.groupby(["seed", "subgroup"]).size().groupby("subgroup").mean() if len(sizes) else pd.Series()
    sim_json = out / "sims" / "interaction_1" / "simulator.json"
    if sim_json.exists():
        sm = read_json(sim_json)["summary"]
        L.append(f"**Data:** the simulator's `{grid.preset}` preset"
                 + (f" with overrides {grid.sim_overrides}" if grid.sim_overrides else "")
                 + f", data seed {grid.data_seed}: {sm['n_genes']} genes, {sm['n_cells']} cells, "
                 f"{sm['n_singles']} singles, {sm['n_doubles']} doubles (CRISPRa), noise-free truth and "
                 "regulatory network known.  ")
    L.append(f"**Grid:** {gs['n_cells']} fits (setting × model × seed); seeds {', '.join(map(str, grid.seeds))} "
             "(split seed 1 + s, training seed s); gradient-trained models at most "
             f"{grid.max_epochs} epochs (early stopping patience {grid.patience or 'off'}); transformer options "
             f"{grid.transformer_options or 'defaults'}.  ")
    L.append("**Test conditions per subgroup (base, mean over seeds):** "
             + ", ".join(f"{k} {v:g}" for k, v in sizes.items()) + ".  ")
    n_missing = int(tables["missing"]["n"].iloc[0])
    if n_missing:
        L.append(f"**Incomplete:** {n_missing} fits of the grid have no results yet; rerun the same command "
                 "to finish them (finished fits are kept).  ")
    if len(grid.seeds) < 3:
        L.append(f"**Caution:** {len(grid.seeds)} seed(s) only; CIs reflect the finite test conditions, "
                 "not training-run variation. The `full` grid has 3 seeds.  ")
    L += ["", f"Primary metric: `{pm}` ({spec.label}) against the simulator's noise-free **{pref}**; "
          "means over test conditions with 95% bootstrap CIs (conditions resampled within seeds). "
          "Paired differences Δ are oriented so that Δ > 0 means the first model is better; a difference "
          "is called real when its CI excludes 0 and the Wilcoxon p < 0.05.", ""]

    # headline table
    L += ["## Headline: base setting", ""]
    cols = ["model", *_SUBS]
    rows = []
    for m in [*base_models, "observed_data"]:
        rows.append([m, *[view.cell("base", m, pm, pref, sub) for sub in cols[1:]]])
    L += [f"`{pm}` vs truth, mean [95% CI]. `observed_data` = the measured data scored against the truth "
          "(what reproducing the measurements exactly would score).", "",
          markdown_table(pd.DataFrame(rows, columns=cols)), ""]
    rows = []
    for m in [*base_models, "ceiling"]:
        rows.append([m, *[view.cell("base", m, pm, "observed", sub) for sub in cols[1:]]])
    L += [f"`{pm}` vs the observed data; `ceiling` = split-half noise ceiling.", "",
          markdown_table(pd.DataFrame(rows, columns=cols)), ""]
    for key in (f"heatmap:truth:{pm}", "heatmap:truth:pearson_delta_excl_target", "heatmap:truth:mse_top20_de",
                f"heatmap:observed:{pm}", f"bars:truth:{pm}"):
        if key in figs:
            L += [f"![{key}]({_rel(figs[key], out)})", ""]

    # conclusions
    L += ["## Conclusions (generated from the numbers above)", "", "### Who wins where (base)", ""]
    for ref in (pref, "observed"):
        L.append(f"Against the {'noise-free truth' if ref == 'truth' else 'observed data'} (`{pm}`):")
        L.append("")
        for sub in cols[1:]:
            L.append(_best_text(view, "base", pm, ref, sub, base_models))
        L.append("")
    L.append("Downstream genes only (`pearson_delta_excl_target`, the perturbed genes' own change left out), "
             "vs truth:")
    L.append("")
    for sub in cols[1:]:
        L.append(_best_text(view, "base", "pearson_delta_excl_target", "truth", sub, base_models))
    L.append("")

    L += ["### Does the explicit prior help? (base, paired, vs truth)", ""]
    pairs = [("priorgnn", "priorgnn_no_go", "GO prior (with vs without GO)"),
             ("priorgnn", "priorgnn_no_coex", "co-expression prior (with vs without)"),
             ("priorgnn", "transformer_no_pretrain", "PriorGNN vs the prior-free transformer (no pretraining)"),
             ("priorgnn", "transformer_pretrained", "PriorGNN vs the pretrained transformer"),
             ("priorgnn", "additive", "PriorGNN vs additive"),
             ("linear_go", "linear", "GO in the linear model (linear_go vs linear)"),
             ("priorgnn", "priorgnn_shared_decoder", "decoder: gene-specific vs shared linear")]
    for a, b, what in pairs:
        if a not in base_models or b not in base_models:
            continue
        L.append(f"- **{what}**:")
        for sub, metric in [(s, pm) for s in cols[1:]] + [("all", "pearson_delta_excl_target")]:
            row = view.compare("base", a, b, metric, pref, sub)
            if row is not None:
                L.append(f"  - `{sub}`, `{metric}`: {a} − {b}: {_delta_text(row)}")
    L.append("")
    go_rows = [view.compare("base", "priorgnn", "priorgnn_no_go", pm, pref, sub) for sub in cols[1:]]
    go_v = [verdict(r) for r in go_rows if r is not None]
    if go_v:
        if "better" in go_v:
            L.append("Verdict: the GO prior helps PriorGNN beyond noise in "
                     + ", ".join(f"{s} (Δ = {fmt(r['mean_diff'])})" for s, r in zip(cols[1:], go_rows)
                                 if r is not None and verdict(r) == "better")
                     + f" (`{pm}`, truth).")
            rnd = view.compare("base", "priorgnn", "priorgnn_go_random", pm, pref, "all")
            if rnd is not None and verdict(rnd) != "better":
                L.append(f"But the intact GO graph does not beat a random graph with as many edges (intact − random, "
                         f"all: Δ = {fmt(rnd['mean_diff'])}, {verdict(rnd)}): the gain comes from message passing "
                         "over a graph, not from GO's content.")
        else:
            L.append(f"Verdict: **the GO prior does not measurably help PriorGNN** here: with vs without GO, no "
                     f"subgroup shows a difference beyond noise in `{pm}` against the truth.")
        if "worse" in go_v:
            L.append("It measurably hurts in "
                     + ", ".join(s for s, r in zip(cols[1:], go_rows) if r is not None and verdict(r) == "worse")
                     + ".")
        L.append("")

    # degradation
    L += ["### Degraded GO prior (base data, PriorGNN)", ""]
    if "degradation" in figs:
        L += [f"![GO degradation]({_rel(figs['degradation'], out)})", ""]
    fracs = [0.0, 0.25, 0.5, 0.75]
    mono_rows = []
    for sub in cols[1:]:
        ms = [view.get("base", m, pm, pref, sub) for m in GO_DEGRADED]
        if any(r is None for r in ms):
            continue
        ok, bad = monotone_within_noise(fracs, [r["mean"] for r in ms], [r["ci_lo"] for r in ms],
                                        [r["ci_hi"] for r in ms], spec.higher_is_better)
        paired_bad = []
        for (fa, a), (fb, b) in zip(zip(fracs, GO_DEGRADED), zip(fracs[1:], GO_DEGRADED[1:])):
            row = view.compare("base", b, a, pm, pref, sub)
            if row is not None and verdict(row) == "better":
                paired_bad.append(f"{fa:g} → {fb:g} (Δ = {fmt(row['mean_diff'])})")
        mono_rows.append({"subgroup": sub, **{f"drop {f:g}": fmt(r["mean"]) for f, r in zip(fracs, ms)},
                          **{k: fmt(view.mean("base", f"priorgnn_go_{k}", pm, pref, sub))
                             for k in ("rewired", "permuted", "random")},
                          "no GO": fmt(view.mean("base", "priorgnn_no_go", pm, pref, sub)),
                          "monotone within noise": "yes" if ok else "NO: " + "; ".join(bad),
                          "paired steps where more dropout is better": "; ".join(paired_bad) or "none"})
    if mono_rows:
        L += [f"`{pm}` vs truth along the GO edge-dropout curve, and the destroyed priors:", "",
              markdown_table(pd.DataFrame(mono_rows)), ""]
        n_bad = sum(not r["monotone within noise"].startswith("yes") for r in mono_rows)
        n_pbad = sum(r["paired steps where more dropout is better"] != "none" for r in mono_rows)
        L.append("Sanity check (the issue's): the degraded-prior curve is "
                 + ("**monotone within noise in every subgroup**" if n_bad == 0 else
                    f"**not monotone within noise in {n_bad} subgroup(s)** (listed above)")
                 + ". Noise band of a step: the two points' CI half-widths combined in quadrature. The stricter "
                 "paired test (same conditions and seeds, Δ beyond its CI and Wilcoxon p < 0.05) finds a step "
                 "where more dropout is better in "
                 + (f"{n_pbad} subgroup(s) (listed above)." if n_pbad else "no subgroup."))
        d75 = view.compare("base", "priorgnn", "priorgnn_go_drop75", pm, pref, "all")
        if d75 is not None:
            v75 = verdict(d75)
            L.append(f"Intact GO − 75% of GO edges dropped (all): {_delta_text(d75)}. "
                     + {"better": "Removing GO edges costs accuracy beyond noise: the model uses the GO edges.",
                        "worse": f"The curve is flat to within {fmt(abs(d75['mean_diff']))}: removing most GO edges "
                                 "costs nothing (the sparser graph is even marginally better), so PriorGNN draws no "
                                 "usable information from the GO graph's edges here; the paired step violations "
                                 "above are of this size.",
                        }.get(v75, "The curve is flat: removing most of the GO edges costs nothing measurable, so "
                                   "PriorGNN draws no usable information from the GO graph's edges here."))
        for k in ("rewired", "permuted", "random"):
            row = view.compare("base", "priorgnn", f"priorgnn_go_{k}", pm, pref, "all")
            if row is not None:
                L.append(f"- intact GO − {k} GO (all test conditions): {_delta_text(row)}.")
        L.append("")

    # curves
    L += ["### Curves along the simulator axes", ""]
    for axis, title in (("go_fidelity", "GO annotation fidelity (recall f, plus (1 − f) × as many false "
                                        "annotations; the cells do not change)"),
                        ("train_frac", "training data (share of the training perturbations kept; "
                                       "validation and test unchanged; subgroups re-derived)"),
                        ("interaction", "strength of non-additive interactions (a new simulation per value)"),
                        ("pretrain_mult", "transformer pretraining pool (× its own pretraining cells; extra "
                                          "cells freshly drawn from the same system, control and training "
                                          "perturbations only)")):
        points = _axis_points(grid, axis)
        models = _axis_models(grid, axis)
        if len(points) < 2:
            continue
        L += [f"#### {title}", ""]
        if f"curve:{axis}" in figs:
            L += [f"![{axis}]({_rel(figs[f'curve:{axis}'], out)})", ""]
        rows = []
        for m in models:
            for sub in ("all", "unseen_single", "combo_seen2"):
                r = [m, sub] + [view.cell(s, m, pm, pref, sub) for _, s in points]
                rows.append(r)
        L += [markdown_table(pd.DataFrame(rows, columns=["model", "subgroup",
                                                         *[f"{x:g}" for x, _ in points]])), ""]
        L += _axis_conclusions(view, axis, points, models, pm, pref)
        L.append("")

    # causal recovery
    L += ["### Causal recovery (held-out singles)", "",
          "For each unseen single `A` the genes `B ≠ A` are ranked by |predicted change of B|; positives are "
          "the genes downstream of `A` in the simulator's network (`Simulator.descendants`). AUPRC per "
          "condition, mean and bootstrap CI; a ranking by chance (e.g. `no_change`, all ties) scores the "
          "positive rate. `truth`: ranking by the noise-free change; `observed_data`: by the measured change.", ""]
    if "causal" in figs:
        L += [f"![causal]({_rel(figs['causal'], out)})", ""]
    cb = causal[causal["setting"] == "base"]
    if len(cb):
        order = {m: i for i, m in enumerate([*MODELS, "truth", "observed_data"])}
        cb = cb.sort_values("model", key=lambda s: s.map(order))
        L += [markdown_table(pd.DataFrame({
            "model": cb["model"], "AUPRC [95% CI]": [f"{fmt(a)} [{fmt(b)}, {fmt(c)}]" for a, b, c in
                                                     zip(cb["mean"], cb["ci_lo"], cb["ci_hi"])],
            "positive rate": cb["positive_rate"].map(fmt),
            "AUPRC − positive rate [95% CI]": [f"{fmt(a)} [{fmt(b)}, {fmt(c)}]" for a, b, c in
                                               zip(cb["above_chance"], cb["above_chance_lo"], cb["above_chance_hi"])],
            "n": cb["n"]})), ""]
        models_only = cb[~cb["model"].isin(["truth", "observed_data"])]
        if len(models_only):
            beyond = models_only[models_only["above_chance_lo"] > 0]["model"].tolist()
            best = models_only.sort_values("mean", ascending=False).iloc[0]
            L.append(f"Best model: **{best['model']}**, AUPRC {fmt(best['mean'])} against a positive rate of "
                     f"{fmt(best['positive_rate'])} (AUPRC − positive rate {fmt(best['above_chance'])} "
                     f"[{fmt(best['above_chance_lo'])}, {fmt(best['above_chance_hi'])}]).")
            L.append("Models ranking true downstream targets above chance beyond the CI (paired over conditions): "
                     + (", ".join(beyond) if beyond else "**none**") + ".")
            for ref in ("truth", "observed_data"):
                r = cb[cb["model"] == ref]
                if len(r):
                    L.append(f"Ranking by the {'noise-free' if ref == 'truth' else 'measured'} change scores "
                             f"{fmt(r['mean'].iloc[0])}.")
            pg, tf = (models_only[models_only["model"] == m] for m in ("priorgnn", "transformer_no_pretrain"))
            if len(pg) and len(tf):
                a, b = pg.iloc[0], tf.iloc[0]
                overlap = not (a["ci_lo"] > b["ci_hi"] or b["ci_lo"] > a["ci_hi"])
                L.append(f"PriorGNN {fmt(a['mean'])} vs prior-free transformer {fmt(b['mean'])}: "
                         + ("CIs overlap, no difference shown." if overlap else
                            f"{'PriorGNN' if a['mean'] > b['mean'] else 'the transformer'} is better beyond the CIs."))
        L.append("")

    # genetic interactions
    L += ["### Genetic-interaction labels of the test doubles (base)", "",
          "Norman et al.'s scores and GEARS-style labels (`priorgnn.interactions`) of each test double: the "
          "model's predicted double against the true double, both fitted on the true singles (as the "
          "`gi_label_match` metric does: only the double differs). Accuracy: share "
          "of doubles with the true label; precision: share of the model's non-additive calls whose label is "
          "the true one; recall: share of truly non-additive doubles labelled correctly.", ""]
    gb = gi[gi["setting"] == "base"] if len(gi) else gi
    if len(gb):
        L += [markdown_table(gb.drop(columns="setting").assign(
            accuracy=gb["accuracy"].map(fmt), precision=gb["precision"].map(fmt), recall=gb["recall"].map(fmt))), ""]
        called = gb[gb["n_calls"] > 0]
        if len(called):
            b = called.sort_values("precision", ascending=False).iloc[0]
            L.append(f"Highest precision of interaction calls: **{b['model']}** ({fmt(b['precision'])} over "
                     f"{b['n_calls']} calls; {int(b['n_true_interactions'])} of {int(b['n_doubles'])} doubles are "
                     "truly non-additive summed over seeds). Few doubles per seed: treat these as indicative.")
        nocall = gb[gb["n_calls"] == 0]["model"].tolist()
        if nocall:
            L.append(f"Models that never call an interaction (precision undefined): {', '.join(nocall)}.")
        L.append("")

    # latent space
    L += ["### Latent space (base)", "",
          "Spearman correlation, over pairs of perturbed genes, of the cosine similarity of the learned "
          "embeddings with (a) the Jaccard similarity of the genes' GO annotations and (b) the cosine similarity "
          "of their true single-perturbation effects (own gene left out). PriorGNN: perturbation embeddings "
          "after GO message passing; transformer: gene identity embeddings.", ""]
    if "latent" in figs:
        L += [f"![latent]({_rel(figs['latent'], out)})", ""]
    if len(lat):
        lb = lat[lat["setting"] == "base"]
        L += [markdown_table(lb.drop(columns="setting").round(3)), ""]
        ref = lb[lb["model"] == "_go_vs_effect"]
        if len(ref):
            L.append(f"Reference: GO similarity itself correlates with true-effect similarity at Spearman "
                     f"{fmt(ref['spearman_effect_mean'].iloc[0])} (`_go_vs_effect`): how much the GO annotations "
                     "of this simulation say about which perturbations have similar effects.")
        for m in ("priorgnn", "priorgnn_no_go", "transformer_no_pretrain", "transformer_pretrained"):
            r = lb[lb["model"] == m]
            if len(r):
                go_, eff = r["spearman_go_mean"].iloc[0], r["spearman_effect_mean"].iloc[0]
                if max(abs(go_), abs(eff)) < 0.1:
                    what = "neither (both |ρ| < 0.1)"
                elif abs(go_) > abs(eff):
                    what = "GO similarity more than true-effect similarity"
                else:
                    what = "true-effect similarity more than GO similarity"
                L.append(f"- {m}: GO {fmt(go_)}, true effect {fmt(eff)} → reflects {what}.")
        L.append("PriorGNN's embeddings are read after GO message passing, so part of their GO similarity is "
                 "imposed by the graph itself; the no-GO and degraded-GO rows show how much.")
        L.append("")

    L += ["## Methods and caveats", "",
          "- Each fit (setting × model × seed) uses the library's own calls: `pipeline.build_priors` (GO "
          "graph from the simulation's annotations, co-expression from training cells only, "
          "`knowledge.degrade` for the degraded GO graphs, seeded by the training seed), the model "
          "registry's `fit`, `metrics.predict_conditions` and `metrics.evaluate_seed` (observed and truth "
          "references, split-half ceiling). Aggregates: `metrics.aggregate`; paired tests: "
          "`metrics.paired_comparison`.",
          "- PriorGNN runs with `allow_prior_free=True`, so that genes that lose every GO annotation at low "
          "fidelity are still predicted (from the mean training single) rather than refused.",
          f"- Training is short (≤ {grid.max_epochs} epochs) to fit the grid's time budget; absolute numbers of "
          "the trained models are therefore lower bounds of what longer training gives.",
          "- The transformer pretrains on control cells and training-condition cells only (never on "
          "validation or test conditions), one pass capped at the `pretrain_steps` above; the pool multiples "
          f"run here are {', '.join(f'{m:g}x' for m in grid.pretrain_mults) or 'none'}"
          + (f", with these options on that axis: {grid.pretrain_arm_options} (so a larger pool also means "
             "proportionally more optimiser updates; the `pretrain_steps` column of `fits.csv` gives them)"
             if grid.pretrain_arm_options else "")
          + ". The extra cells are new draws of the same simulated system under the same conditions.",
          "- Data scaling subsamples the training perturbations with a seeded draw (nested: each smaller set "
          "is part of the larger ones); conditions left out are not moved to the test set, so test sets are "
          "identical across fractions (their subgroup labels follow the remaining training singles). The epoch "
          "budget is fixed and a batch holds 32 conditions, so a training set of 32 or fewer conditions gets "
          "one gradient step per epoch, against two for the full set: slow learners (the transformer) are "
          "partly limited by steps, not only by data, at the small fractions.",
          "- PriorGNN's latent rows are labelled 'after GO message passing'; for `priorgnn_no_go` there is no "
          "GO graph, so they are its raw perturbation embeddings.",
          "", "## Files", "",
          "`summary.csv` (every metric, setting, model, reference and subgroup: mean, CI, n), "
          "`comparisons.csv` (paired comparisons with `additive` and `priorgnn` per setting), "
          "`causal_recovery.csv`, `genetic_interactions.csv`, `latent.csv`, `fits.csv` (fit time, epochs), "
          "`figures/`. Per-fit tables are under `cells/` (not needed to read the report).", ""]
    return "\n".join(L)


def _axis_conclusions(view: _View, axis: str, points, models, metric: str, ref: str) -> list[str]:
    spec = get_metric(metric)
    L = []
    sign = 1 if spec.higher_is_better else -1
    if axis == "go_fidelity":
        for m in models:
            xs, ms, lo, hi = _curve_data(view, points, m, metric, ref, "all")
            if len(xs) >= 2:
                ok, bad = monotone_within_noise(xs, ms, lo, hi, spec.higher_is_better, decreasing_in_x=False)
                gain = sign * (ms[-1] - ms[0])
                low = next(st for x, st in points if x == xs[0])
                row = view.compare("base", m, m, metric, ref, "all", base_setting=low) if low != "base" else None
                L.append(f"- {m}: from fidelity {xs[0]:g} to {xs[-1]:g}, `{metric}` (all) changes by "
                         f"{fmt(ms[-1] - ms[0])} ({'better' if gain > 0 else 'worse' if gain < 0 else 'equal'} with the "
                         f"better prior; paired, full − lowest fidelity: {_delta_text(row)}); monotone within noise: "
                         f"{'yes' if ok else 'no (' + '; '.join(bad) + ')'}.")
    if axis in ("train_frac", "interaction"):
        a, b = "priorgnn", "transformer_no_pretrain"
        if a in models and b in models:
            level = []
            for x, setting in points:
                row = view.compare(setting, a, b, metric, ref, "all")
                if row is not None:
                    L.append(f"- {axis} = {x:g}: priorgnn − transformer_no_pretrain (all): {_delta_text(row)}.")
                    if verdict(row) != "better":
                        level.append(f"{x:g}")
            L.append(f"- Where the prior-free transformer is not behind PriorGNN beyond noise (all): "
                     + (f"{axis} = {', '.join(level)}." if level else "nowhere on this axis."))
        if "additive" in models:
            for x, setting in points:
                best = max(((m, view.mean(setting, m, metric, ref, "combo_seen2")) for m in models),
                           key=lambda t: sign * t[1] if np.isfinite(t[1]) else -np.inf)
                if np.isfinite(best[1]):
                    L.append(f"- {axis} = {x:g}: best on `combo_seen2` is {best[0]} ({fmt(best[1])}); additive "
                             f"{fmt(view.mean(setting, 'additive', metric, ref, 'combo_seen2'))}.")
    if axis == "pretrain_mult":
        for x, setting in points:
            row = view.compare(setting, "transformer_pretrained", "transformer_no_pretrain", metric, ref, "all",
                               base_setting="base")
            v = view.mean(setting, "transformer_pretrained", metric, ref, "all")
            L.append(f"- pool {x:g}x: pretrained transformer `{metric}` (all) = {fmt(v)}"
                     + (f"; vs no pretraining: {_delta_text(row)}" if row is not None else "") + ".")
        nv = view.mean("base", "transformer_no_pretrain", metric, ref, "all")
        L.append(f"- no pretraining: {fmt(nv)}.")
        if points:  # does the largest pool catch up with PriorGNN (base setting, same data and splits)?
            x, setting = points[-1]
            for sub in ("all", "unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"):
                row = view.compare(setting, "transformer_pretrained", "priorgnn", metric, ref, sub,
                                   base_setting="base")
                if row is not None:
                    L.append(f"- pool {x:g}x vs PriorGNN (`{sub}`): transformer_pretrained − priorgnn: "
                             f"{_delta_text(row)}.")
    return L
