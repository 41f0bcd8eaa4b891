"""The systematic-variation statistic (priorgnn.metrics.diagnostics, used by benchmarks/calibrate_knowledge.py
and benchmarks/interaction_targets.py) against a direct computation, and the calibration's summary."""

from __future__ import annotations

import numpy as np
import pytest

import calibrate_knowledge as ck
from priorgnn.data import from_anndata
from priorgnn.errors import DataValidationError
from priorgnn.metrics.diagnostics import systematic_variation
from priorgnn.data.conditions import parse_condition
from priorgnn.testing import synth_lognorm


def test_mean_of_others_is_the_pearson_with_the_other_perturbations_mean_off_target():
    data = from_anndata(synth_lognorm(n_genes=24, cells=20, ctrl_cells=60))
    got = systematic_variation(data)
    s = data.summaries
    perts = [c for c in data.conditions if parse_condition(c)]
    singles = [c for c in perts if len(parse_condition(c)) == 1]
    genes = list(data.genes)
    assert len(got) == len(singles)
    for k, c in enumerate(singles):
        others = np.mean([s.delta(o) for o in perts if o != c], axis=0)
        keep = np.array([g != parse_condition(c)[0] for g in genes])
        expected = np.corrcoef(others[keep], s.delta(c)[keep])[0, 1]
        np.testing.assert_allclose(got[k], expected, rtol=0, atol=1e-9)


def test_systematic_variation_needs_a_single_and_another_perturbation():
    adata = synth_lognorm(n_genes=24, cells=20, ctrl_cells=60)
    keep = adata.obs["condition"].astype(str).isin(["ctrl", adata.obs["condition"].astype(str).iloc[-1]])
    with pytest.raises(DataValidationError, match="at least one single and one other perturbation"):
        systematic_variation(from_anndata(adata[keep].copy()))


def test_summary_averages_seeds_and_leaves_real_rows_without_simulation_columns():
    import pandas as pd

    table = pd.DataFrame([
        {"data": "real: cells", "seed": "", "mean_of_others_median": 0.6, "coex_genes_with_edge": 0.1,
         "coex_mean_degree": 0.2, "git_commit": "x"},
        {"data": "simulated: pos", "seed": 0, "mean_of_others_median": 0.5, "coex_genes_with_edge": 0.2,
         "coex_mean_degree": 1.0, "mean": 0.4, "go_knn": 0.5, "network_knn": 0.6, "git_commit": "x"},
        {"data": "simulated: pos", "seed": 1, "mean_of_others_median": 0.7, "coex_genes_with_edge": 0.4,
         "coex_mean_degree": 2.0, "mean": 0.6, "go_knn": 0.7, "network_knn": 1.0, "git_commit": "x"},
    ])
    out = ck.summarise(table).set_index("data")
    assert out.loc["pos", "n_seeds"] == 2
    assert out.loc["pos", "mean_of_others_median"] == 0.6
    assert abs(out.loc["pos", "oracle_minus_mean"] - 0.3) < 1e-12  # (0.6 + 1.0) / 2 - (0.4 + 0.6) / 2
    assert np.isnan(out.loc["cells", "network_knn"]) and out.loc["cells", "n_seeds"] == 0
