"""Report tables, summary text and figures on a hand-made evaluation result."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from priorgnn.metrics.evaluation import EvaluationResult, SeedExamples
from priorgnn.report import (
    latex_table,
    markdown_table,
    plot_de_heatmap,
    plot_delta_scatter,
    plot_metric_bars,
    summary_lines,
    summary_markdown,
    verdict,
    write_report,
)
from priorgnn.report.writer import _clean


def _summary_rows():
    # (model, subgroup, metric, mean, lo, hi)
    rows = [
        ("my_model&co", "all", "mse", 0.10, 0.08, 0.12),
        ("additive", "all", "mse", 0.20, 0.15, 0.25),
        ("ceiling", "all", "mse", 0.01, 0.005, 0.02),
        ("my_model&co", "all", "pearson_delta", 0.50, 0.40, 0.60),
        ("additive", "all", "pearson_delta", 0.50, 0.45, 0.55),
        ("ceiling", "all", "pearson_delta", 0.90, 0.85, 0.95),
        ("my_model&co", "combo_seen2", "mse", 0.30, np.nan, np.nan),
        ("additive", "combo_seen2", "mse", 0.25, np.nan, np.nan),
    ]
    return pd.DataFrame([{"model": m, "reference": "observed", "subgroup": sg, "metric": me, "mean": v,
                          "ci_lo": lo, "ci_hi": hi, "n_conditions": 12 if sg == "all" else 1, "n_seeds": 1,
                          "seed_sd": np.nan} for m, sg, me, v, lo, hi in rows])


def _comparisons():
    base = {"reference": "observed", "baseline": "additive", "model": "my_model&co", "n": 12, "ties": 0,
            "wilcoxon_stat": 3.0, "p_holm": np.nan}
    return pd.DataFrame([
        {**base, "subgroup": "all", "metric": "mse", "wins": 10, "losses": 2, "mean_diff": 0.1,
         "diff_ci_lo": 0.05, "diff_ci_hi": 0.15, "p_value": 0.003},
        {**base, "subgroup": "all", "metric": "pearson_delta", "wins": 6, "losses": 6, "mean_diff": 0.0,
         "diff_ci_lo": -0.05, "diff_ci_hi": 0.05, "p_value": 0.9},
    ])


def _examples():
    rng = np.random.default_rng(0)
    conds = ["A+B", "A+C", "B+C", "A+ctrl"]
    G = 30
    obs = rng.normal(size=(4, G))
    de = np.argsort(-np.abs(obs), axis=1)[:, :20]
    return SeedExamples(seed=1, conditions=conds,
                        subgroups={"A+B": "combo_seen2", "A+C": "combo_seen1", "B+C": "combo_seen0",
                                   "A+ctrl": "unseen_single"},
                        genes=[f"gene{i}" for i in range(G)], observed_delta=obs, de_idx=de,
                        predicted_delta={"my_model&co": obs + rng.normal(0, 0.5, obs.shape),
                                         "additive": 0.5 * obs})


@pytest.fixture
def result():
    return EvaluationResult(
        per_condition=pd.DataFrame({"model": ["additive"], "reference": ["observed"], "seed": [1],
                                    "condition": ["A+B"], "subgroup": ["combo_seen2"], "mse": [0.25]}),
        summary=_summary_rows(), comparisons=_comparisons(), metrics=["mse", "pearson_delta"],
        models=["additive", "my_model&co"], references=["observed"],
        info={"data": {"name": "toy|data", "n_cells": 100, "n_genes": 30, "n_conditions": 4, "simulated": False},
              "seeds": [1], "splits": {1: {"kind": "combo", "subgroups": {"combo_seen2": 1}}},
              "runs": [{"label": "my_model&co", "seed": 1}], "baselines": ["additive"],
              "bootstrap": {"n_boot": 1000, "seed": 0}, "gi_thresholds": {"magnitude_tolerance": 0.3},
              "compare_with": ["additive"]},
        examples={1: _examples()},
    )


def test_latex_table(result):
    tex = latex_table(result, ["mse", "pearson_delta"])
    lines = tex.splitlines()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\begin{tabular}{lcc}" in tex
    assert r"MSE $\downarrow$" in tex and r"Pearson $\Delta$ $\uparrow$" in tex
    row = next(ln for ln in lines if ln.startswith(r"my\_model\&co") and "0.100" in ln)
    # mse: 0.10 < 0.20 → bold; pearson: 0.50 = 0.50 → tied, both bold; half-width (0.12 − 0.08)/2
    assert r"\textbf{0.100 $\pm$ 0.020}" in row and r"\textbf{0.500 $\pm$ 0.100}" in row
    add = next(ln for ln in lines if ln.startswith("additive") and "0.200" in ln)
    assert r"\textbf{0.200" not in add and r"\textbf{0.500 $\pm$ 0.050}" in add
    ceil = next(ln for ln in lines if "split-half ceiling" in ln)
    assert r"\textbf" not in ceil and r"\textit{0.010" in ceil  # the ceiling is never "best"
    # no interval (one condition per seed): the mean alone
    assert "0.250 &" in tex or r"\textbf{0.250}" in tex
    assert "[0.080, 0.120]" in latex_table(result, ["mse"], ci_style="interval")


def test_markdown_tables_escape_and_bold(result):
    md = summary_markdown(result, "all", ["mse", "pearson_delta"])
    assert "**0.100 [0.080, 0.120]**" in md and "*ceiling*" in md
    assert markdown_table(pd.DataFrame({"a|b": ["x|y"]})).splitlines()[2] == r"| x\|y |"


def test_verdicts_and_summary_text(result):
    c = result.comparisons
    assert verdict(c.iloc[0]) == "better" and verdict(c.iloc[1]) == "indistinguishable"
    assert verdict({"diff_ci_lo": 0.1, "diff_ci_hi": 0.2, "p_value": 0.2}) == "inconclusive"
    assert verdict({"diff_ci_lo": -0.3, "diff_ci_hi": -0.1, "p_value": 0.01}) == "worse"
    text = "\n".join(summary_lines(result, ["mse", "pearson_delta"]))
    assert "best `my_model&co` 0.100 (ceiling 0.010); better than `additive`" in text
    assert "p = 0.003" in text and "10/2/0 wins/losses/ties" in text
    assert "best `additive` = `my_model&co` 0.500 (tied)" in text
    assert "Only 1 condition-seed pair:" in text  # combo_seen2


def test_figures(result, tmp_path):
    from PIL import Image

    p = plot_metric_bars(result, "mse", tmp_path / "bars.png")
    w, h = Image.open(p).size
    assert w > 600 and h > 400
    assert plot_metric_bars(result, "mse", tmp_path / "none.png", reference="truth") is None
    for fn in (plot_delta_scatter, plot_de_heatmap):
        p = fn(result, tmp_path / f"{fn.__name__}.png")
        assert p.exists() and p.stat().st_size > 10_000


def test_write_report_strict_json(result, tmp_path):
    write_report(result, tmp_path, figures=False)
    d = json.loads((tmp_path / "summary.json").read_text(),
                   parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
    assert d["best"]["observed"]["mse"]["all"] == ["my_model&co", 0.1]
    md = (tmp_path / "report.md").read_text()
    assert r"toy\|data" in md and "![" not in md and "figures/" not in md
    assert _clean({"a": [np.nan, np.float32(1.5), np.int64(2)]}) == {"a": [None, 1.5, 2]}


def test_verdict_uses_holm_adjusted_p():
    # CI above 0 and a raw p of 0.01, but Holm-adjusted over its family p = 0.2: not "better"
    row = pd.Series({"diff_ci_lo": 0.01, "diff_ci_hi": 0.05, "p_value": 0.01, "p_holm": 0.2})
    assert verdict(row) == "inconclusive"
    assert verdict({**row, "p_holm": 0.03}) == "better"
    # a row without an adjusted p (its own family of one) falls back to the raw p
    assert verdict({"diff_ci_lo": 0.01, "diff_ci_hi": 0.05, "p_value": 0.01}) == "better"


def test_unseen_subgroups_headline_leaves_the_target_out():
    from priorgnn.metrics.registry import get_metric
    from priorgnn.report.summary import headline_for

    metrics = ["mse", "pearson_delta", "pearson_delta_excl_target", "target_sign_match", "target_abs_error",
               "mse_top20_de", "discrimination_score_l1"]
    for sg in ("unseen_single", "combo_seen0"):
        chosen = headline_for(sg, ["pearson_delta", "mse_top20_de", "discrimination_score_l1"], metrics)
        assert chosen == ["pearson_delta_excl_target", "target_sign_match", "target_abs_error",
                          "discrimination_score_l1"]
        assert all(get_metric(m).scope != "all" for m in chosen)
    assert headline_for("combo_seen2", ["pearson_delta", "mse_top20_de"], metrics) == ["pearson_delta", "mse_top20_de"]
    # a metric that was not computed is not named
    assert headline_for("unseen_single", ["pearson_delta"], ["pearson_delta"]) == []
