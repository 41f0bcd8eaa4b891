"""The knowledge-bias study: the smoke grid end to end, and its building blocks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from priorgnn.study import GRIDS, MODELS, average_precision, run_study

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # evaluate.py is a script at the repository root
    sys.path.insert(0, str(ROOT))


# -- building blocks --------------------------------------------------------------------------------
def test_average_precision_against_hand_worked_values():
    # positives at ranks 1 and 3: precisions 1/1 and 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert average_precision(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0])) == pytest.approx(1.0)
    assert average_precision(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0])) == pytest.approx(1 / 3)
    # all scores tied: one threshold, the precision there is the positive rate
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1])
    assert average_precision(np.zeros(8), labels) == pytest.approx(3 / 8)
    # ties between a positive and a negative at the top count as one threshold (precision 1/2)
    assert average_precision(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0])) == pytest.approx(0.5)
    assert np.isnan(average_precision(np.array([1.0, 2.0]), np.array([0, 0])))


def test_average_precision_of_random_scores_is_near_the_positive_rate(rng):
    labels = rng.random(20000) < 0.2
    ap = average_precision(rng.random(20000), labels)
    assert ap == pytest.approx(labels.mean(), abs=0.01)


def test_grids_have_the_issues_models_and_seeds():
    full = GRIDS["full"]
    assert len(full.seeds) >= 3
    for label in ("priorgnn", "priorgnn_no_go", "priorgnn_no_coex", "priorgnn_go_drop25", "priorgnn_go_drop50",
                  "priorgnn_go_drop75", "priorgnn_go_rewired", "priorgnn_go_permuted", "priorgnn_go_random",
                  "transformer_pretrained", "transformer_no_pretrain", "linear", "linear_go", "go_knn",
                  "additive", "mean", "no_change", "priorgnn_shared_decoder"):
        assert label in full.base_models and label in GRIDS["quick"].base_models
    axes = {s.axis for s in full.settings()}
    assert axes == {"base", "negative_control", "real_go", "go_fidelity", "train_frac", "interaction",
                    "pretrain_mult"}
    # the base simulation is the positive control; the negative control differs only in informativeness
    assert full.sim_overrides["prior_informativeness"] == 1.0
    neg = next(s for s in full.settings() if s.axis == "negative_control")
    assert neg.informativeness == 0.0
    # the negative control also draws regulators from anywhere, so that GO modules share targets by chance only
    assert full.negative_overrides["p_same_submodule"] == 0.0 and full.negative_overrides["p_same_module"] == 0.0
    assert {"priorgnn", "priorgnn_no_go", "network_knn", "mean"} <= set(neg.models)
    # the real-GO setting: the positive control on real human genes, with the negative control's models
    real = next(s for s in full.settings() if s.axis == "real_go")
    assert real.name == "real_go" and real.gene_names == "real_go" and real.informativeness is None
    assert set(real.models) == {"priorgnn", "priorgnn_no_go", "priorgnn_go_permuted", "network_knn",
                                "network_knn_degree", "go_knn", "mean", "additive"}
    assert all(s.gene_names == "synthetic" for s in full.settings() if s.axis != "real_go")
    assert not any(s.axis == "real_go" for g in ("smoke", "quick") for s in GRIDS[g].settings())
    assert "network_knn" in full.base_models
    assert MODELS["priorgnn_shared_decoder"].options["decoder"] == "shared"


# -- the smoke grid end to end ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    path = run_study("smoke", out, progress=False)
    return out, path


def test_smoke_study_writes_the_report(smoke):
    out, path = smoke
    assert path == out / "study.md" and path.exists()
    for name in ("summary.csv", "comparisons.csv", "causal_recovery.csv", "genetic_interactions.csv",
                 "latent.csv", "fits.csv", "tests.csv", "timing.json"):
        assert (out / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    for name in ("base_truth_pearson_delta.png", "heatmap_truth_pearson_delta.png", "go_degradation.png", "curve_go_fidelity.png",
                 "curve_train_frac.png", "curve_interaction.png", "curve_pretrain_mult.png", "causal_auprc.png",
                 "latent_spearman.png"):
        assert name in pngs
    assert all((out / "figures" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    text = path.read_text()
    assert "## Headline: base setting" in text and "Holm p" in text and "Multiple comparisons" in text
    assert "Causal recovery" in text and "Latent space" in text and "Genetic-interaction" in text


def test_smoke_summary_has_every_model_and_subgroup(smoke):
    out, _ = smoke
    s = pd.read_csv(out / "summary.csv")
    base = s[(s["setting"] == "base") & (s["metric"] == "pearson_delta")]
    split_subgroups = set(pd.read_csv(out / "cells" / "base" / "priorgnn_s0.csv")["subgroup"])
    assert split_subgroups >= {"unseen_single", "combo_seen1"}
    for ref in ("observed", "truth"):
        r = base[base["reference"] == ref]
        for model in GRIDS["smoke"].base_models:
            got = set(r.loc[r["model"] == model, "subgroup"])
            assert got == split_subgroups | {"all"}, (model, ref, got)
    limits = set(base["model"]) - set(GRIDS["smoke"].base_models)
    assert limits == {"ceiling", "observed_data"}
    # the limit rows are counted once per condition, not once per model
    n_all = base[(base["model"] == "observed_data") & (base["subgroup"] == "all")]["n_conditions"].iloc[0]
    n_model = base[(base["model"] == "priorgnn") & (base["subgroup"] == "all")
                   & (base["reference"] == "truth")]["n_conditions"].iloc[0]
    assert n_all == n_model
    # no_change predicts no change: its Pearson delta is 0 by the metric's convention
    nc = base[(base["model"] == "no_change")]
    assert np.allclose(nc["mean"], 0.0)
    # every axis setting holds its models
    for setting in GRIDS["smoke"].settings():
        got = set(s.loc[s["setting"] == setting.name, "model"]) - {"ceiling", "observed_data"}
        assert got == set(setting.models), setting.name


def test_smoke_headline_numbers_come_from_the_summary(smoke):
    out, path = smoke
    from priorgnn.report.tables import fmt

    s = pd.read_csv(out / "summary.csv")
    r = s[(s["setting"] == "base") & (s["model"] == "priorgnn") & (s["metric"] == "pearson_delta")
          & (s["reference"] == "truth") & (s["subgroup"] == "all")].iloc[0]
    cell = f"{fmt(r['mean'])} [{fmt(r['ci_lo'])}, {fmt(r['ci_hi'])}]"
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith("| priorgnn |"))
    assert cell in line


def test_smoke_causal_recovery_is_a_valid_auprc_and_chance_equals_the_positive_rate(smoke):
    out, _ = smoke
    from priorgnn.simulate import load_simulation

    causal = pd.concat([pd.read_csv(p) for p in (out / "cells" / "base").glob("*.causal.csv")], ignore_index=True)
    assert {"priorgnn", "transformer_no_pretrain", "no_change", "truth", "observed_data"} <= set(causal["model"])
    a = causal["auprc"].dropna()
    assert len(a) and ((a >= 0) & (a <= 1)).all()
    # the positive rate computed independently from the simulator's network
    sim = load_simulation(out / "sims" / "interaction_1")
    genes = sim.simulator.genes
    nc = causal[causal["model"] == "no_change"]
    assert len(nc)
    for _, row in nc.iterrows():
        down = set(sim.simulator.descendants(row["gene"])) - {row["gene"]}
        rate = len(down) / (len(genes) - 1)
        assert row["positive_rate"] == pytest.approx(rate)
        if down:  # constant predictions rank at chance: AUPRC is exactly the positive rate
            assert row["auprc"] == pytest.approx(rate)
    # the noise-free truth ranks its own targets better than chance
    tr = causal[causal["model"] == "truth"].dropna(subset=["auprc"])
    assert (tr["auprc"] > tr["positive_rate"]).mean() > 0.5
    summ = pd.read_csv(out / "causal_recovery.csv")
    assert ((summ["mean"].dropna() >= 0) & (summ["mean"].dropna() <= 1)).all()


def test_smoke_interactions_and_latent(smoke):
    out, _ = smoke
    gi = pd.read_csv(out / "genetic_interactions.csv")
    base = gi[gi["setting"] == "base"]
    assert set(GRIDS["smoke"].base_models) == set(base["model"])
    assert ((base["accuracy"] >= 0) & (base["accuracy"] <= 1)).all()
    # precision is defined exactly when the model calls an interaction
    assert (base["precision"].isna() == (base["n_calls"] == 0)).all()
    # the true labels do not depend on the model; the summary recomputes from the per-double rows
    rows = pd.concat([pd.read_csv(p) for p in (out / "cells" / "base").glob("*.gi.csv")], ignore_index=True)
    assert (rows.groupby("condition")["label_true"].nunique() == 1).all()
    for model, g in rows.groupby("model"):
        r = base[base["model"] == model].iloc[0]
        assert r["n_doubles"] == len(g)
        assert r["accuracy"] == pytest.approx((g["label_pred"] == g["label_true"]).mean())
        assert r["n_calls"] == (g["label_pred"] != "additive").sum()
    lat = pd.read_csv(out / "latent.csv")
    lb = lat[lat["setting"] == "base"]
    assert {"priorgnn", "priorgnn_no_go", "transformer_no_pretrain", "_go_vs_effect"} <= set(lb["model"])
    vals = lb[["spearman_go_mean", "spearman_effect_mean"]].to_numpy(dtype=float)
    assert np.all(np.isnan(vals) | (np.abs(vals) <= 1))
    # PriorGNN's embeddings after GO message passing reflect GO similarity
    assert lb.loc[lb["model"] == "priorgnn", "spearman_go_mean"].iloc[0] > 0.2


def test_smoke_study_resumes_without_refitting(smoke):
    out, _ = smoke
    import json

    cell = out / "cells" / "base" / "priorgnn_s0.csv"
    before = os.stat(cell).st_mtime_ns
    timing = json.loads((out / "timing.json").read_text())
    run_study("smoke", out, progress=False, render=False)
    assert os.stat(cell).st_mtime_ns == before
    assert json.loads((out / "timing.json").read_text())["cells_run"] == timing["cells_run"]


def test_cli_study_report_only(smoke, capsys):
    out, _ = smoke
    import evaluate

    (out / "study.md").unlink()
    rc = evaluate.main(["study", "--grid", "smoke", "--out", str(out), "--report-only", "--no-figures", "--quiet"])
    assert rc == 0 and (out / "study.md").exists()
    assert "study.md" in capsys.readouterr().out


def test_cli_study_rejects_an_empty_folder_for_report_only(tmp_path, capsys):
    import evaluate

    rc = evaluate.main(["study", "--grid", "smoke", "--out", str(tmp_path / "none"), "--report-only", "--quiet"])
    assert rc == 2
    assert "no study results" in capsys.readouterr().err


def test_a_cell_of_other_code_is_fitted_again_on_resume(smoke, monkeypatch):
    """Resuming never mixes code: a finished cell recorded by another code version is refitted, and the
    refit records the current version."""
    import json

    import priorgnn.study.runner as runner

    out, _ = smoke
    cell = out / "cells" / "base" / "priorgnn_s0.json"
    assert json.loads(cell.read_text())["code_version"] == runner.code_version()
    monkeypatch.setattr(runner, "code_version", lambda: "another-version")
    before = os.stat(cell).st_mtime_ns
    run_study("smoke", out, progress=False, render=False, only=["base"])
    assert os.stat(cell).st_mtime_ns != before
    assert json.loads(cell.read_text())["code_version"] == "another-version"
