"""The exact moment form of GEARS's cell-level loss, the direction term, and the batch sampler."""

from __future__ import annotations

import numpy as np
import torch

from priorgnn.data import from_anndata
from priorgnn.training.losses import perturbation_loss
from priorgnn.training.plan import ConditionBatchSampler
from priorgnn.training.targets import ConditionTargets
from tests._synth import synth_lognorm


def _targets_tensors(t: ConditionTargets):
    return {"delta": torch.from_numpy(t.delta), "c2": torch.from_numpy(t.c2), "c3": torch.from_numpy(t.c3),
            "c4": torch.from_numpy(t.c4), "retain": torch.from_numpy(t.retain)}


def test_moment_loss_equals_average_over_all_cell_pairs():
    """GEARS: mean over a perturbation's cells y and control partners x of (x + d - y)^4, over the
    genes with non-zero mean; here averaged over *all* (y, x) pairs, computed by brute force."""
    a = synth_lognorm(n_genes=12, singles=("G0", "G1"), doubles=(("G0", "G1"),), cells=15, ctrl_cells=25)
    data = from_anndata(a)
    conds = ["G0+ctrl", "G0+G1", "ctrl"]
    t = ConditionTargets.from_data(data, conds)
    rng = np.random.default_rng(1)
    pred = rng.normal(0, 0.5, (3, data.n_genes))
    X = data.X.toarray().astype(np.float64)
    ctrl = X[data.cells_of("ctrl")]
    expected = []
    for i, c in enumerate(conds):
        if c == "ctrl":
            # GEARS trains control cells as their own input (y = x): error is the prediction itself
            err = np.broadcast_to(pred[i] ** 4, (1, data.n_genes))
        else:
            Y = X[data.cells_of(c)]
            r = Y[:, None, :] - ctrl[None, :, :]  # all pairs [ny, nx, G]
            err = ((pred[i] - r) ** 4).reshape(-1, data.n_genes)
        keep = t.retain[i]
        expected.append(err.mean(0)[keep].mean())
    out = perturbation_loss(torch.from_numpy(pred), _targets_tensors(t), gamma=2, direction_lambda=0.0)
    np.testing.assert_allclose(out.loss.item(), np.mean(expected), rtol=1e-9)
    # gamma = 0 is MSE over the same pairs
    mse = [((pred[0] - (X[data.cells_of("G0+ctrl")][:, None] - ctrl[None])) ** 2).mean((0, 1))[t.retain[0]].mean()]
    out0 = perturbation_loss(torch.from_numpy(pred[:1]), {k: v[:1] for k, v in _targets_tensors(t).items()},
                             gamma=0, direction_lambda=0.0)
    np.testing.assert_allclose(out0.loss.item(), mse[0], rtol=1e-9)


def test_retained_genes_are_gears_nonzero_genes():
    a = synth_lognorm(n_genes=12, singles=("G0",), doubles=(), cells=10)
    X = a.X.toarray()
    X[a.obs["condition"].to_numpy() == "G0+ctrl", 5] = 0
    a.X = X
    data = from_anndata(a)
    t = ConditionTargets.from_data(data, ["G0+ctrl", "ctrl"])
    assert not t.retain[0, 5] and t.retain[0].sum() == 11
    assert t.retain[1].all()


def test_direction_term_has_gradient_towards_right_sign():
    targets = {"delta": torch.tensor([[1.0, -1.0]], dtype=torch.float64),
               "c2": torch.zeros(1, 2, dtype=torch.float64), "c3": torch.zeros(1, 2, dtype=torch.float64),
               "c4": torch.zeros(1, 2, dtype=torch.float64), "retain": torch.ones(1, 2, dtype=torch.bool)}
    pred = torch.tensor([[-0.05, 0.05]], requires_grad=True)  # both signs wrong
    out = perturbation_loss(pred, targets, gamma=2, direction_lambda=1.0)
    out.parts["direction"].backward()
    g = pred.grad.numpy()[0]
    assert g[0] < 0 < g[1]  # descending the gradient raises gene 0 and lowers gene 1
    # GEARS's sign-based term has no gradient at all
    p2 = torch.tensor([[-0.05, 0.05]], requires_grad=True)
    ((torch.sign(targets["delta"]) - torch.sign(p2)) ** 2).sum().backward()
    assert torch.all(p2.grad == 0)


def test_uncertainty_head_minimised_at_expected_squared_error():
    # NLL 0.5 (s + q e^{-s}) is minimised at s = log q with q = E[(pred - r)^2] = d^2 + c2
    targets = {"delta": torch.tensor([[0.5]], dtype=torch.float64), "c2": torch.tensor([[0.3]], dtype=torch.float64),
               "c3": torch.zeros(1, 1, dtype=torch.float64), "c4": torch.zeros(1, 1, dtype=torch.float64),
               "retain": torch.ones(1, 1, dtype=torch.bool)}
    pred = torch.tensor([[0.1]])
    q = (0.1 - 0.5) ** 2 + 0.3
    s = torch.tensor([[np.log(q)]], requires_grad=True, dtype=torch.float32)
    perturbation_loss(pred, targets, direction_lambda=0.0, logvar=s).parts["uncertainty"].backward()
    assert abs(s.grad.item()) < 1e-6


def test_batch_sampler_covers_each_condition_once_and_replays_by_epoch():
    s = ConditionBatchSampler(23, 8, seed=3)
    s.set_epoch(4)
    first = list(s)
    assert sorted(sum(first, [])) == list(range(23))
    assert all(len(b) >= 2 for b in first)
    s.set_epoch(5)
    assert list(s) != first
    s.set_epoch(4)
    assert list(s) == first
    # batch size 1 would leave lone conditions (BatchNorm cannot train on one row): 3 rows -> one batch
    assert [len(b) for b in ConditionBatchSampler(3, 1)] == [3]
    assert [len(b) for b in ConditionBatchSampler(4, 1)] == [2, 2]


def test_condition_moments_chunked_match_direct_central_moments():
    import scipy.sparse as sp

    from priorgnn.training.targets import condition_moments

    rng = np.random.default_rng(0)
    X = sp.random(500, 30, density=0.3, random_state=1, format="csr")
    labels = rng.choice(["a", "b", "c", "other"], 500)
    m = condition_moments(X, labels, ["a", "b", "c"], chunk_rows=37)  # chunks cut across groups
    dense = X.toarray()
    for i, g in enumerate("abc"):
        Y = dense[labels == g]
        mu = Y.mean(0)
        for k, ref in enumerate([mu, ((Y - mu) ** 2).mean(0), ((Y - mu) ** 3).mean(0), ((Y - mu) ** 4).mean(0)]):
            np.testing.assert_allclose(m[k, i], ref, atol=1e-12)
