"""Cross-check with the PyPI package cell-eval on identical pseudobulk inputs.

cell-eval's metric functions are called directly on a ``PerturbationAnndataPair`` whose "cells" are
the pseudobulk means themselves (one row per condition), so its pseudobulking returns our inputs
unchanged. Agreement is required to 1e-6 for ``pearson_delta``, ``mse`` and the discrimination score.

The DE overlap: cell-eval's ``overlap_at_20`` ranks the genes of real and predicted DE tables by
absolute log2 fold change after an FDR filter; ``overlap_top20_delta`` ranks both sides by the
absolute pseudobulk change (a prediction has no cells to test). Given DE tables whose fold changes are
those changes and whose FDRs all pass, the two definitions coincide, and the numbers must agree.
(On real DE tables they differ by design: the ranking statistic, the fold-change scale and the FDR
filter; see the metric's docstring.)
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from priorgnn.metrics import MetricContext, compute_condition_metrics

pytestmark = pytest.mark.filterwarnings("ignore:the string cache:DeprecationWarning")

cell_eval = pytest.importorskip("cell_eval")
pl = pytest.importorskip("polars")

N_GENES = 30
PERTS = [f"G{i}" for i in range(8)]  # named like genes, so cell-eval leaves the target gene out


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(7)
    genes = [f"G{i}" for i in range(N_GENES)]
    ctrl_real = rng.uniform(0.5, 3.0, N_GENES)
    ctrl_pred = ctrl_real + rng.normal(0, 0.05, N_GENES)
    real = ctrl_real + rng.normal(0, 0.6, (len(PERTS), N_GENES))
    pred = ctrl_pred + 0.3 * (real - ctrl_real) + rng.normal(0, 0.9, (len(PERTS), N_GENES))
    return genes, ctrl_real, ctrl_pred, real, pred


def _adata(ctrl, means, genes):
    conds = ["ctrl", *PERTS]
    X = np.vstack([ctrl, means]).astype(np.float64)
    return ad.AnnData(X=X, obs=pd.DataFrame({"condition": conds}, index=[f"cell{i}" for i in range(len(conds))]),
                      var=pd.DataFrame(index=genes))


def _ours(inputs, metrics):
    genes, ctrl_real, ctrl_pred, real, pred = inputs
    ctx = MetricContext(conditions=[f"{p}+ctrl" for p in PERTS], control=ctrl_real,
                        de_idx=np.zeros((len(PERTS), 20), dtype=int), expressed_idx=np.arange(N_GENES),
                        exclude_idx=[np.array([genes.index(p)]) for p in PERTS])
    t = compute_condition_metrics(pred, real, ctx, pred_control=ctrl_pred, metrics=metrics)
    t.index = PERTS
    return t


def test_pearson_delta_mse_discrimination_match_cell_eval(inputs):
    from cell_eval._types import PerturbationAnndataPair
    from cell_eval.metrics import discrimination_score, mse, pearson_delta

    genes, ctrl_real, ctrl_pred, real, pred = inputs
    pair = PerturbationAnndataPair(real=_adata(ctrl_real, real, genes), pred=_adata(ctrl_pred, pred, genes),
                                   pert_col="condition", control_pert="ctrl")
    ours = _ours(inputs, ["pearson_delta", "mse", "discrimination_score_l1"])
    theirs = {
        "pearson_delta": pearson_delta(pair),
        "mse": mse(pair),
        "discrimination_score_l1": discrimination_score(pair, metric="l1", exclude_target_gene=True),
    }
    for metric, values in theirs.items():
        got = ours.loc[list(values), metric].to_numpy()
        np.testing.assert_allclose(got, list(values.values()), rtol=0, atol=1e-6, err_msg=metric)
    # the check is not vacuous: the discrimination scores vary between conditions
    assert len(set(np.round(list(theirs["discrimination_score_l1"].values()), 6))) > 1


def test_de_overlap_matches_cell_eval(inputs):
    from cell_eval._types import initialize_de_comparison
    from cell_eval.metrics import de_overlap_metric

    genes, ctrl_real, ctrl_pred, real, pred = inputs

    def de_table(delta):
        rows = [(p, g, float(delta[i, j])) for i, p in enumerate(PERTS) for j, g in enumerate(genes)]
        df = pl.DataFrame(rows, schema=["target", "feature", "log2_fold_change"], orient="row")
        return df.with_columns(pl.lit(0.0).alias("p_value"), pl.lit(0.0).alias("fdr"))

    comp = initialize_de_comparison(real=de_table(real - ctrl_real), pred=de_table(pred - ctrl_pred))
    theirs = de_overlap_metric(comp, k=20, metric="overlap")
    ours = _ours(inputs, ["overlap_top20_delta"])
    got = ours.loc[list(theirs), "overlap_top20_delta"].to_numpy()
    np.testing.assert_allclose(got, list(theirs.values()), rtol=0, atol=1e-6)
    assert 0 < min(theirs.values()) < 1  # neither trivially empty nor trivially full
