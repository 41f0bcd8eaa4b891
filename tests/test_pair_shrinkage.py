"""benchmarks/pair_shrinkage.py: the leave-one-double-out choice of the shrinkage, and the summary."""

from __future__ import annotations

import numpy as np
import pair_shrinkage as bench  # benchmarks/ is on the path (conftest)
import pandas as pd
import pytest


def _pairs_data(rng, n_singles=8, n_genes=30):
    singles = rng.normal(size=(n_singles, n_genes))
    pairs = np.array([(i, j) for i in range(n_singles) for j in range(i + 1, n_singles)])[:20]
    own = [[i] for i in range(n_singles)]
    additive = singles[pairs[:, 0]] + singles[pairs[:, 1]]
    focus = np.ones_like(additive, dtype=bool)
    for k, (a, b) in enumerate(pairs):
        focus[k, [a, b]] = False
    return singles, pairs, own, additive, focus


def test_with_an_in_sample_backbone_and_no_shrinkage_it_is_the_pair_kernels_own_choice(rng):
    """With ``backbone_loo = backbone`` and only ``s = 1``, the error is the closed-form leave-one-out error
    of :func:`priorgnn.models.pair_kernel.fit_pair_kernel` (a reference implementation), and the chosen
    width, ridge and coefficients are its."""
    from priorgnn.models.pair_kernel import fit_pair_kernel

    singles, pairs, own, additive, focus = _pairs_data(rng)
    backbone = additive + 0.3 * rng.normal(size=additive.shape)
    interaction = np.tanh(singles[pairs[:, 0]] * singles[pairs[:, 1]])
    observed = backbone + interaction + 0.05 * rng.normal(size=additive.shape)
    residual = np.where(focus, observed - backbone, 0.0)
    ref = fit_pair_kernel(singles, pairs, residual, focus, own=own)
    out = bench.loo_shrink_kernel(singles, pairs, own, observed, additive, backbone, backbone, focus, shrinks=(1.0,))
    assert ref["kept"] and out["shrink"] == 1.0
    assert out["error"] == pytest.approx(min(ref["loo_error"].values()), rel=1e-9)
    assert (out["gamma"], out["ridge"]) == (ref["gamma"], ref["ridge"])
    np.testing.assert_allclose(out["alpha"], ref["alpha"], rtol=1e-9, atol=1e-12)


def test_a_backbone_that_fails_on_held_out_doubles_is_shrunk_to_additive(rng):
    """The doubles are exactly additive. In sample the backbone fits them, but refitted without each
    double it is far off: the left-out error of every ``s > 0`` is larger, so ``s = 0`` with no
    correction is chosen, at error 0."""
    singles, pairs, own, additive, focus = _pairs_data(rng)
    observed = additive.copy()
    backbone_loo = additive + rng.normal(size=additive.shape)
    out = bench.loo_shrink_kernel(singles, pairs, own, observed, additive, additive, backbone_loo, focus)
    assert out["shrink"] == 0.0 and out["alpha"] is None and out["error"] == pytest.approx(0.0)


def test_summary_by_hand():
    """Two seeds of one setting, one test double each. additive 1.0 and 1.0; s=1: 0.5 (seed 0) and 1.05
    (seed 1): one double below, one above; its per-seed gaps −0.5 and +0.05, the worst +0.05, over 0.01 in
    one seed; means over seeds (0.5 + 1.05) / 2."""
    rows = []
    for seed, (a, m) in enumerate(((1.0, 0.5), (1.0, 1.05))):
        for model, v in (("additive", a), ("s=1", m)):
            rows.append({"setting": "norman", "part": "test", "data_seed": seed, "model": model,
                         "condition": f"A+B{seed}", "mse_top20_de": v, "nonadditive_corr": 0.2})
    out = bench.summarise(pd.DataFrame(rows)).set_index("model").loc["s=1"]
    assert out["mse_top20_de"] == pytest.approx(0.775)
    assert (out["wins"], out["losses"], out["seeds_over_tolerance"], out["seeds"]) == (1, 1, 1, 2)
    assert out["worst_seed_gap"] == pytest.approx(0.05)


def test_unknown_setting_is_refused():
    with pytest.raises(SystemExit):
        bench.main(["--settings", "norman,no_such_setting"])
