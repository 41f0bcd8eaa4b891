"""The pair kernel correction of doubles (priorgnn.models.pair_kernel), checked against hand values and a
brute-force reference, and its use inside PriorGNN."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from priorgnn.errors import ConfigError
from priorgnn.models import TrainConfig, get_model_class, load_model
from priorgnn.models.pair_kernel import fit_pair_kernel, gene_kernel, pair_kernel
from tests._synth import small_prior_data


def test_gene_kernel_by_hand_and_without_the_own_genes():
    singles = np.array([[1.0, 0.0, 5.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # gene 2 is single 0's own perturbed gene: left out, single 0 is (1, 0, 0), single 1 (1, 1, 0)
    k = gene_kernel(singles, 2.0, own=[[2], [], []])
    cos01 = 1 / np.sqrt(2)
    np.testing.assert_allclose(k[0, 1], np.exp(2.0 * (cos01 - 1)))
    np.testing.assert_allclose(np.diag(k)[:2], [1.0, 1.0])
    # a zero profile: cosine 0 with every other single and with itself
    np.testing.assert_allclose(k[2], np.exp(-2.0) * np.ones(3))
    # with the own gene kept, single 0 is dominated by gene 2 and far less like single 1
    assert gene_kernel(singles, 2.0)[0, 1] < k[0, 1]


def test_pair_kernel_is_symmetric_in_each_pair_and_matches_the_formula():
    kg = np.array([[1.0, 0.2, 0.5], [0.2, 1.0, 0.3], [0.5, 0.3, 1.0]])
    k = pair_kernel(kg, [[0, 1], [1, 0]], [[1, 2]])
    # K((0,1),(1,2)) = k01 k12 + k02 k11 = 0.2·0.3 + 0.5·1
    assert k[0, 0] == pytest.approx(0.2 * 0.3 + 0.5 * 1.0)
    assert k[1, 0] == pytest.approx(k[0, 0])
    assert pair_kernel(kg, [[1, 2]], [[0, 1]])[0, 0] == pytest.approx(k[0, 0])


def _pairs_and_residuals(seed=0, n_singles=12, n_genes=30, noise=0.0):
    """Singles in two groups; a double's residual is a fixed profile per combination of groups (what a
    saturating program shared by similar singles gives), plus noise."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_singles) % 2
    centres = rng.normal(size=(2, n_genes)) * 2
    singles = centres[group] + 0.3 * rng.normal(size=(n_singles, n_genes))
    profile = {(0, 0): rng.normal(size=n_genes), (1, 1): rng.normal(size=n_genes),
               (0, 1): rng.normal(size=n_genes)}
    pairs = np.array([(i, j) for i in range(n_singles) for j in range(i + 1, n_singles)])
    res = np.stack([profile[tuple(sorted((group[i], group[j])))] for i, j in pairs])
    return singles, pairs, res + noise * rng.normal(size=res.shape)


def test_leave_one_out_error_is_that_of_refitting_without_each_double():
    singles, pairs, res = _pairs_and_residuals(noise=0.5)
    pairs, res = pairs[:20], res[:20]
    focus = np.random.default_rng(1).random(res.shape) < 0.7
    fit = fit_pair_kernel(singles, pairs, res, focus, gammas=(1.0,), ridges=(0.3,))
    kg = gene_kernel(singles, 1.0)
    err = 0.0
    for j in range(len(pairs)):  # brute force: refit kernel ridge without double j, predict it
        rest = np.delete(np.arange(len(pairs)), j)
        k = pair_kernel(kg, pairs[rest], pairs[rest])
        full = pair_kernel(kg, pairs, pairs)
        lam = 0.3 * np.trace(full) / len(pairs)  # the ridge's scale is the full kernel's
        alpha = np.linalg.solve(k + lam * np.eye(len(rest)), res[rest])
        pred = pair_kernel(kg, pairs[[j]], pairs[rest]) @ alpha
        err += np.sum(((res[j] - pred[0]) ** 2)[focus[j]])
    assert fit["loo_error"]["gamma=1, ridge=0.3"] == pytest.approx(err, rel=1e-8)
    assert fit["loo_error"]["off"] == pytest.approx(np.sum(res[focus] ** 2))


def test_kept_when_similar_pairs_share_their_interaction_and_off_for_noise():
    singles, pairs, res = _pairs_and_residuals(noise=0.1)
    test = [0, 7, 30]  # held out
    train = np.setdiff1d(np.arange(len(pairs)), test)
    fit = fit_pair_kernel(singles, pairs[train], res[train], np.ones_like(res[train], bool))
    assert fit["kept"] and fit["alpha"].shape == (len(train), singles.shape[1])
    pred = pair_kernel(gene_kernel(singles, fit["gamma"]), pairs[test], pairs[train]) @ fit["alpha"]
    for p, r in zip(pred, res[test]):
        assert np.corrcoef(p, r)[0, 1] > 0.9
    # residuals that are pure noise: no kernel predicts a held-out double better than no correction
    noise = np.random.default_rng(3).normal(size=res.shape)
    off = fit_pair_kernel(singles, pairs, noise, np.ones_like(noise, bool))
    assert not off["kept"] and off["alpha"] is None
    assert min(off["loo_error"].values()) == off["loo_error"]["off"]


def test_too_few_doubles_and_mismatched_shapes():
    singles, pairs, res = _pairs_and_residuals()
    few = fit_pair_kernel(singles, pairs[:9], res[:9], np.ones_like(res[:9], bool))
    assert not few["kept"] and "fewer than 10" in few["reason"]
    with pytest.raises(ValueError, match="residual"):
        fit_pair_kernel(singles, pairs, res[:, :3], np.ones_like(res[:, :3], bool))


@pytest.fixture(scope="module")
def demo():
    return small_prior_data()


def test_priorgnn_adds_the_kernel_correction_to_measured_pairs_only(demo, tmp_path, monkeypatch):
    """With the correction forced on (the fixture has few training doubles), a double of two measured
    singles is the model without it plus Σ_j K(pair, training pair j) α_j, zero on its own genes;
    other conditions are unchanged, and the correction survives saving."""
    import priorgnn.models.pair_kernel as pk

    monkeypatch.setattr(pk, "MIN_DOUBLES", 1)
    monkeypatch.setattr(pk.fit_pair_kernel, "__kwdefaults__",
                        {**pk.fit_pair_kernel.__kwdefaults__, "min_doubles": 1})
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, pair_backbone="additive")
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    info = m.fit_info["pair_kernel"]
    singles = {c.split("+")[0] for c in split.train if c.endswith("+ctrl")}
    conds = ["G0+G1", "G0+ctrl", "G0+G7"]  # a measured pair, a single, a pair with an unmeasured gene
    assert set(conds[0].split("+")) <= singles and "G7" not in singles
    if not info["kept"]:  # force a fit so that the arithmetic below is exercised
        doubles = [c for c in split.train if "ctrl" not in c and set(c.split("+")) <= singles]
        rows = torch.tensor([[m.single_row[g] for g in c.split("+")] for c in doubles])
        m.net.pair_kernel_genes = torch.eye(len(m.single_genes)) * 0.5 + 0.5
        m.net.pair_kernel_rows = rows
        m.net.pair_kernel_alpha = torch.randn(len(doubles), len(m.genes))
    with_k = m.predict_delta(conds)
    kg, rows, alpha = (m.net.pair_kernel_genes.double().numpy(), m.net.pair_kernel_rows.numpy(),
                       m.net.pair_kernel_alpha.double().numpy())
    saved = (m.net.pair_kernel_genes, m.net.pair_kernel_rows, m.net.pair_kernel_alpha)
    m.net.pair_kernel_alpha = torch.zeros(0, len(m.genes))
    without = m.predict_delta(conds)
    expected = pair_kernel(kg, [[m.single_row["G0"], m.single_row["G1"]]], rows) @ alpha
    own = [list(m.genes).index(g) for g in ("G0", "G1") if g in m.genes]
    expected[0, own] = 0.0
    np.testing.assert_allclose(with_k[0] - without[0], expected[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(with_k[1:], without[1:], atol=1e-6)
    m.net.pair_kernel_genes, m.net.pair_kernel_rows, m.net.pair_kernel_alpha = saved
    m.save(tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m").predict_delta(conds), with_k, atol=1e-6)


def test_priorgnn_pair_kernel_off_and_nonsense(demo):
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, pair_kernel=False)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    assert "pair_kernel" not in m.fit_info and len(m.net.pair_kernel_alpha) == 0
    with pytest.raises(ConfigError, match="pair_kernel must be true or false"):
        get_model_class("priorgnn")(pair_kernel="yes")


def test_pair_kernel_baseline_is_pair_auto_plus_the_correction(tmp_path):
    """On a simulation with enough training doubles, ``pair_kernel`` without shrinkage is ``pair_auto`` plus Σ_j K α_j on
    doubles of measured singles (zero on their own genes) and ``pair_auto`` everywhere else."""
    from priorgnn.data.splits import make_split
    from priorgnn.metrics.core import perturbed_gene_idx
    from priorgnn.simulate import simulate

    sim = simulate("demo", seed=4, double_interaction_bias=2.5)
    split = make_split(sim.conditions, "simulation", seed=1)
    auto = get_model_class("pair_auto")().fit(sim.data, split)
    pk = get_model_class("pair_kernel")(shrink=1.0).fit(sim.data, split)
    info = pk.fit_info["pair_kernel"]
    assert info["n_doubles"] >= 10
    measured = [c for c in split.subgroups["combo_seen2"]]
    other = [c for c in split.test if c not in measured]
    assert measured and other
    np.testing.assert_allclose(pk.predict_delta(other), auto.predict_delta(other))
    expected = auto.predict_delta(measured)
    if info["kept"]:
        rows = [[pk._index[g] for g in c.split("+")] for c in measured]
        add = pair_kernel(pk.kernel_genes, rows, pk.kernel_rows) @ pk.kernel_alpha
        for k, own in enumerate(perturbed_gene_idx(measured, pk.genes)):
            add[k, own] = 0.0
        expected = expected + add
        assert np.abs(add).max() > 0
    np.testing.assert_allclose(pk.predict_delta(measured), expected)
    pk.save(tmp_path / "pk")
    np.testing.assert_allclose(load_model(tmp_path / "pk").predict_delta(measured), expected)


def test_priorgnn_saved_without_the_correction_loads_without_it(demo, tmp_path):
    """Weights saved before the correction existed (no pair_kernel_* keys) load, and predict as the model
    with the correction removed."""
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    m.net.pair_kernel_genes = torch.full((len(m.single_genes), len(m.single_genes)), 0.5)
    m.net.pair_kernel_rows = torch.tensor([[m.single_row["G0"], m.single_row["G1"]]])
    m.net.pair_kernel_alpha = torch.ones(1, len(m.genes))
    m.save(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)
    for key in ("pair_kernel_genes", "pair_kernel_rows", "pair_kernel_alpha"):
        del state[key]
    torch.save(state, tmp_path / "m" / "weights.pt")
    old = load_model(tmp_path / "m")
    assert len(old.net.pair_kernel_alpha) == 0
    m.net.pair_kernel_alpha = torch.zeros(0, len(m.genes))
    np.testing.assert_allclose(old.predict_delta(["G0+G1", "G2+G3"]), m.predict_delta(["G0+G1", "G2+G3"]), atol=1e-6)


def test_pair_kernel_baseline_shrinks_its_backbone_toward_additive(tmp_path):
    """``shrink=s``: a double of two measured singles starts from ``additive + s·(pair_auto − additive)``,
    worked out here from the two fitted baselines, and the correction is the one fitted (by the shared
    helper, a reference) on what that start leaves in the training doubles; everything else is
    ``pair_auto``. ``s=0`` starts from ``additive`` itself. A model saved before the option existed loads
    without shrinkage."""
    from priorgnn.data.splits import make_split
    from priorgnn.models.pair_kernel import fit_on_training_doubles
    from priorgnn.simulate import simulate

    sim = simulate("demo", seed=4, double_interaction_bias=2.5)
    split = make_split(sim.conditions, "simulation", seed=1)
    auto = get_model_class("pair_auto")().fit(sim.data, split)
    add = get_model_class("additive")().fit(sim.data, split)
    measured = list(split.subgroups["combo_seen2"])
    other = [c for c in split.test if c not in measured]
    for s in (0.0, 0.5):
        pk = get_model_class("pair_kernel")(shrink=s).fit(sim.data, split)
        assert pk.hparams["shrink"] == s

        def start(conds, s=s):
            a, b = add.predict_delta(conds), auto.predict_delta(conds)
            return a + s * (b - a)

        np.testing.assert_allclose(pk._backbone(measured), start(measured), atol=1e-12)
        np.testing.assert_allclose(pk.predict_delta(other), auto.predict_delta(other))
        ref, _ = fit_on_training_doubles(sim.data, split, auto.single_deltas, auto.single_genes, auto.genes, start)
        assert pk.fit_info["pair_kernel"]["kept"] == ref["kept"]
        if ref["kept"]:
            np.testing.assert_allclose(pk.kernel_alpha, ref["alpha"], atol=1e-10)
    assert s == 0.5 and pk.hparams["shrink"] == get_model_class("pair_kernel")().hparams["shrink"]  # the default
    # saved before the option existed (no "shrink" array): no shrinkage
    pk.save(tmp_path / "pk")
    np.testing.assert_allclose(load_model(tmp_path / "pk").predict_delta(measured), pk.predict_delta(measured))
    with np.load(tmp_path / "pk" / "model_state.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    del arrays["shrink"]
    np.savez(tmp_path / "pk" / "model_state.npz", **arrays)
    old = load_model(tmp_path / "pk")
    assert old.hparams["shrink"] == 1.0
    np.testing.assert_allclose(old._backbone(measured), auto.predict_delta(measured), atol=1e-12)


@pytest.mark.parametrize("value", [1.5, -0.1, "half", True, float("nan")])
def test_shrinkage_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match="from 0 .* to 1"):
        get_model_class("priorgnn")(pair_shrink=value)
    with pytest.raises(ConfigError, match="from 0 .* to 1"):
        get_model_class("pair_kernel")(shrink=value)


def test_priorgnn_shrinks_measured_doubles_toward_their_sum(demo, tmp_path):
    """After fitting, the buffer holds ``pair_shrink`` (default 0.5). With shrinkage ``s`` (correction
    off), a double of two measured singles is ``sum + s·(unshrunk − sum)`` with ``sum`` the two measured
    single profiles added by hand; ``s=0`` is that sum. Singles and doubles with an unmeasured gene do
    not move, training mode is not shrunk, and the factor survives saving; weights saved before it
    existed load with 1."""
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, pair_kernel=False, pair_backbone="scaled")
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    assert float(m.net.pair_shrink) == 0.5 and m.hparams["pair_shrink"] == 0.5
    conds = ["G0+G1", "G0+ctrl", "G0+G7"]  # a measured pair, a single, a pair with an unmeasured gene
    shrunk = m.predict_delta(conds)
    m.net.pair_shrink.fill_(1.0)
    full = m.predict_delta(conds)
    m.net.pair_shrink.fill_(0.0)
    summed = m.net.single_delta[m.single_row["G0"]] + m.net.single_delta[m.single_row["G1"]]
    np.testing.assert_allclose(m.predict_delta(conds)[0], summed.numpy(), atol=1e-6)
    np.testing.assert_allclose(shrunk[0], summed.numpy() + 0.5 * (full[0] - summed.numpy()), atol=1e-5)
    np.testing.assert_allclose(shrunk[1:], full[1:], atol=1e-6)
    assert np.abs(full[0] - summed.numpy()).max() > 1e-3  # the backbone is not the sum: the check can fail
    # training mode (batch statistics) sees the unshrunk backbone
    idx = torch.tensor([[m.pert_index[a], m.pert_index[b]] for a, b in (("G0", "G1"), ("G1", "G2"))])
    rows = torch.tensor([[m.single_row[a], m.single_row[b]] for a, b in (("G0", "G1"), ("G1", "G2"))])
    net = copy.deepcopy(m.net).train()  # a copy: training mode updates BatchNorm's running statistics
    with torch.no_grad():
        outs = []
        for s in (0.5, 1.0):
            net.pair_shrink.fill_(s)
            outs.append(net(idx, rows)["delta"].numpy())
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)
    m.net.pair_shrink.fill_(0.5)
    m.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert float(loaded.net.pair_shrink) == 0.5
    np.testing.assert_allclose(loaded.predict_delta(conds), shrunk, atol=1e-6)
    state = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)
    del state["pair_shrink"]
    torch.save(state, tmp_path / "m" / "weights.pt")
    old = load_model(tmp_path / "m")
    assert float(old.net.pair_shrink) == 1.0 and old.hparams["pair_shrink"] == 1.0
    np.testing.assert_allclose(old.predict_delta(conds), full, atol=1e-6)
