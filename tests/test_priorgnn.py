"""PriorGNN: efficient path against a naive per-cell reference, zeroed output, training, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from priorgnn.data import from_anndata, make_split
from priorgnn.errors import ConfigError
from priorgnn.models import PriorGraphs, TrainConfig, get_model_class, load_model
from priorgnn.models.priorgnn import PriorGNNModule
from tests._synth import ring_graph as _ring
from tests._synth import small_prior_data, synth_lognorm


def _naive_per_cell(net: PriorGNNModule, cell_perts: list[list[int]]) -> torch.Tensor:
    """GEARS's computation done per cell: the gene branch on a batched graph with one (connected)
    copy of the co-expression graph per cell, the perturbation added to that cell's genes."""
    G, H, B = net.n_genes, net.hidden, len(cell_perts)
    ids = torch.arange(G).repeat(B)
    base = torch.relu(net.bn_emb(net.gene_emb(ids)))
    graphs = [Data(edge_index=net.coex_index, edge_attr=net.coex_weight, num_nodes=G) for _ in range(B)]
    batch = Batch.from_data_list(graphs)
    pos = net.emb_pos(ids)
    for layer in net.layers_emb_pos:
        pos = layer(pos, batch.edge_index, batch.edge_attr)
    base = net.emb_trans_v2(base + 0.2 * pos).reshape(B, G, H)
    pert_global = net.pert_emb(torch.arange(net.n_perts))
    for layer in net.sim_layers:
        pert_global = layer(pert_global, net.go_index, net.go_weight)
    rows = []
    for b, perts in enumerate(cell_perts):
        x = base[b]
        if perts:
            total = sum(pert_global[p] for p in perts)
            x = x + net.pert_fuse(total[None])[0]
        targets = [int(net.pert_gene_idx[p]) for p in perts] if net.pert_flag is not None else []
        for g in targets:  # the perturbation flag on the targeted genes themselves
            x = x + net.pert_flag[0] * (torch.arange(G) == g)[:, None]
        x = torch.relu(net.bn_pert_base(x))
        h = net.recovery_w(x)  # [G, H]
        out = torch.stack([h[g] @ net.indv_w1[g, :, 0] + net.indv_b1[g, 0] for g in range(G)])
        cross = net.cross_gene_state(out[None])[0]
        row = torch.stack([
            torch.cat([out[g:g + 1], cross]) @ net.indv_w2[0, g] + net.indv_b2[0, g] for g in range(G)
        ])
        for g in targets:  # the shared readout of each target's own change
            row = row + (h[g] @ net.self_head.weight[0] + net.self_head.bias[0]) * (torch.arange(G) == g)
        rows.append(row)
    return torch.stack(rows)


def test_efficient_path_matches_naive_per_cell_reference():
    torch.manual_seed(0)
    genes = [f"g{i}" for i in range(9)]
    coex, go = _ring(genes, 1), _ring(genes, 2)
    # perturbation i targets gene (i + 4) mod 9; the flag and its readout get non-trivial values
    net = PriorGNNModule(9, 9, hidden=8, coexpression=coex.to_torch(), go=go.to_torch(), singles="none",
                         pert_gene_idx=(torch.arange(9) + 4) % 9, self_init=0.7)
    with torch.no_grad():
        net.pert_flag.normal_()
        net.self_head.weight.normal_()
    # give BatchNorm non-trivial running statistics, then evaluate deterministically
    net.train()
    with torch.no_grad():
        net(torch.tensor([[0, -1], [1, 2], [3, -1], [4, 5]]))
    net.eval()
    conditions = [[0], [1, 2], [], [3]]
    cell_of = [0, 1, 1, 2, 3, 0, 1]  # cells, several per condition
    pert_idx = torch.tensor([[0, -1], [1, 2], [-1, -1], [3, -1]])
    with torch.no_grad():
        fast = net(pert_idx)["delta"]
        slow = _naive_per_cell(net, [conditions[c] for c in cell_of])
    np.testing.assert_allclose(fast[cell_of].numpy(), slow.numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def demo():
    return small_prior_data()


def test_zeroed_output_layer(demo):
    data, split, graphs = demo
    s = data.summaries
    conds = ["G0+ctrl", "G2+G3", "G0+G1", "ctrl", "G0+G7"]  # G7 was never perturbed
    train_singles = [c for c in split.train if c.endswith("+ctrl")]
    mean_single = np.mean([s.delta(c) for c in train_singles], axis=0)
    for singles, center in (("none", "mean"), ("residual", "none"), ("residual", "mean")):
        # knowledge='embed': the GEARS pathway only (the propagation pathway is checked below)
        m = get_model_class("priorgnn")(hidden=8, singles=singles, center=center, allow_prior_free=True,
                                        knowledge="embed", pair_backbone="additive")
        m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
        with torch.no_grad():
            m.net.indv_w2.zero_()
            m.net.indv_b2.zero_()
            if m.net.self_head is not None:
                m.net.self_head.weight.zero_()
                m.net.self_head.bias.zero_()
            if singles == "residual":
                m.net.interaction.weight.zero_()
        delta = m.predict_delta(conds)
        base = mean_single if (singles == "residual" and center == "mean") else 0.0
        np.testing.assert_allclose(delta[0], np.broadcast_to(base, delta[0].shape), atol=1e-6)
        assert np.all(delta[3] == 0)  # control is no change by construction
        if singles == "none":
            assert np.all(delta == 0)
        else:
            # a zero network leaves the measured singles (plus the centring for unmeasured genes):
            # exactly the additive expectation
            np.testing.assert_allclose(delta[2], s.delta("G0+ctrl") + s.delta("G1+ctrl"), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(delta[4], s.delta("G0+ctrl") + base, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shrink", ["global", "degree", "degree_forced"])
def test_zeroed_network_with_propagation_is_mean_plus_shrunk_neighbours(demo, shrink, monkeypatch):
    """With the network's output switched off, the default (knowledge='propagate') predicts a single as
    the mean training single plus λ times the GO-weighted mean of the other training singles'
    deviations from it (the perturbed gene's own entry of each deviation left out)."""
    data, split, graphs = demo
    s = data.summaries
    if shrink == "degree_forced":
        # the wiring of κ and of the squared weights, which the fixture's leave-one-out does not pick by
        # itself: the squared weights (second call) get the lower error, with a = 0.8 and κ = 0.5
        import priorgnn.models.neighbours as nb

        calls = []

        def forced(weights, deltas, targets):
            calls.append(1)
            return 0.8, 0.5, 2.0 if len(calls) == 1 else 1.0

        monkeypatch.setattr(nb, "loo_fit_degree", forced)
        shrink = "degree"
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, prop_shrink=shrink)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    with torch.no_grad():
        m.net.indv_w2.zero_()
        m.net.indv_b2.zero_()
        m.net.self_head.weight.zero_()
        m.net.self_head.bias.zero_()
    singles = sorted(c for c in split.train if c.endswith("+ctrl"))
    names = [c.split("+")[0] for c in singles]
    D = np.stack([s.delta(c) for c in singles])
    mean = D.mean(0)
    dev = D - mean
    col = {g: i for i, g in enumerate(data.genes)}
    for i, g in enumerate(names):
        if g in col:
            dev[i, col[g]] = 0.0
    # the GO graph's weights from G0 to the other training singles, by hand from the graph
    A = graphs.go.to_scipy()  # A[target, source]
    gi = {g: i for i, g in enumerate(graphs.go.genes)}
    w = np.array([0.0 if g == "G0" else A[gi["G0"], gi[g]] for g in names])
    # prop_shrink='degree': weights to the chosen power, λ_u = min(1, a s/(s + κ)); 'global': power 1, κ 0
    info = m.fit_info["propagation"]
    assert info["shrink"] == shrink
    w = w ** info["power"]
    lam = min(1.0, info["lambda"] * w.sum() / (w.sum() + info["kappa"])) if w.sum() > 0 else 0.0
    expected = mean + (lam * (w @ dev) / w.sum() if w.sum() > 0 else 0.0)
    np.testing.assert_allclose(m.predict_delta(["G0+ctrl"])[0], expected, rtol=1e-5, atol=1e-5)


def test_training_reduces_validation_loss_and_predicts(demo, tmp_path):
    import pandas as pd

    # GEARS mode must learn held-out doubles of trained genes from the training doubles
    singles = tuple(f"G{i}" for i in range(16))
    doubles = tuple((f"G{i}", f"G{j}") for i in range(16) for j in range(i + 1, 16) if (i * 7 + j) % 5 == 0)
    a = synth_lognorm(n_genes=40, singles=singles, doubles=doubles, cells=30, shared_gene=39)
    data = from_anndata(a)
    split = make_split(data.conditions, "combo", seed=0, val_frac=0.3)
    graphs = PriorGraphs(go=_ring(data.genes, 3), coexpression=_ring(data.genes, 1))
    m = get_model_class("priorgnn")(hidden=16, singles="none", pert_init="normal", pert_flag=False,
                                    go_layers=1)  # GEARS
    m.fit(data, split, graphs=graphs,
          train=TrainConfig(max_epochs=60, batch_size=4, progress_bar=False, run_dir=str(tmp_path), patience=0))
    curve = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    val = curve["val_loss"].dropna().to_numpy()
    top = curve["val_mse_top20_de"].dropna().to_numpy()
    assert val[-5:].mean() < val[:3].mean()
    assert top[-5:].mean() < 0.8 * top[:3].mean()
    assert m.fit_info["training"]["best_score"] == pytest.approx(top.min(), rel=1e-5)
    data, split, graphs = demo
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=2, progress_bar=False))
    out = m.predict(["ctrl+G1", "G5+G1", "G0+ctrl"])
    assert list(out.obs_names) == ["G1+ctrl", "G1+G5", "G0+ctrl"]
    assert out.shape == (3, data.n_genes)
    np.testing.assert_allclose(out.X - out.layers["delta"], np.tile(data.summaries.control_mean, (3, 1)),
                               atol=1e-5)


def test_save_load_round_trip(demo, tmp_path):
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, uncertainty=True)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=2, progress_bar=False))
    m.save(tmp_path / "model")
    again = load_model(tmp_path / "model")
    conds = split.test + ["G3+ctrl"]
    np.testing.assert_array_equal(m.predict_delta(conds), again.predict_delta(conds))
    assert "variance" in again.predict(conds).layers


def test_predicted_variance_belongs_to_its_own_call(demo):
    """With the uncertainty head the variance comes with the prediction (``predict_output``) and
    ``predict`` puts that call's variance in its layer: no state is left over between calls."""
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, uncertainty=True)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=2, progress_bar=False))
    first, second = list(split.test), ["G3+ctrl", "G0+G1"]
    out = m.predict_output(first)
    assert out.variance is not None and out.variance.shape == out.delta.shape
    assert np.all(out.variance > 0)
    np.testing.assert_array_equal(out.delta, m.predict_delta(first))
    a = m.predict(first)
    b = m.predict(second)
    np.testing.assert_array_equal(a.layers["variance"], out.variance.astype(np.float32))
    np.testing.assert_array_equal(b.layers["variance"], m.predict_output(second).variance.astype(np.float32))
    assert b.layers["variance"].shape == (len(second), data.n_genes)
    m.predict_delta(first)  # a delta-only call changes nothing for the next prediction
    np.testing.assert_array_equal(m.predict(second).layers["variance"], b.layers["variance"])
    assert not hasattr(m, "_last_logvar")
    plain = get_model_class("priorgnn")(hidden=8).fit(data, split, graphs=graphs,
                                                     train=TrainConfig(max_epochs=1, progress_bar=False))
    assert plain.predict_output(second).variance is None
    assert "variance" not in plain.predict(second).layers


def test_embeddings_are_the_perturbation_embeddings_after_message_passing(demo):
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    emb = m.embeddings()
    assert emb.names == m.pert_genes and emb.rows() == m.pert_index
    assert emb.matrix.shape == (len(m.pert_genes), 8) and emb.matrix.dtype == np.float64
    assert emb.space == "perturbation embedding after GO message passing"
    with torch.no_grad():
        np.testing.assert_array_equal(emb.matrix, m.net.pert_branch().double().numpy())


def test_resume_continues_where_it_stopped(demo, tmp_path):
    data, split, graphs = demo
    cfg = dict(batch_size=4, progress_bar=False, patience=0, seed=1)
    full = get_model_class("priorgnn")(hidden=8)
    full.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=6, run_dir=str(tmp_path / "a"), **cfg))
    part = get_model_class("priorgnn")(hidden=8)
    part.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=3, run_dir=str(tmp_path / "b"), **cfg))
    resumed = get_model_class("priorgnn")(hidden=8)
    resumed.fit(data, split, graphs=graphs, train=TrainConfig(
        max_epochs=6, run_dir=str(tmp_path / "b"), resume=str(tmp_path / "b/checkpoints/last.ckpt"), **cfg))
    assert resumed.fit_info["training"]["global_steps"] == full.fit_info["training"]["global_steps"]
    np.testing.assert_allclose(resumed.predict_delta(split.test), full.predict_delta(split.test), atol=1e-6)
    import pandas as pd

    a = pd.read_csv(tmp_path / "a/logs/metrics.csv")
    b = pd.read_csv(tmp_path / "b/logs/metrics.csv")
    # the resumed curve holds each epoch once and equals the uninterrupted one
    cols = ["epoch", "val_mse_top20_de"]
    pd.testing.assert_frame_equal(a[cols].dropna().reset_index(drop=True), b[cols].dropna().reset_index(drop=True),
                                  rtol=1e-6)


def test_self_head_starts_at_the_mean_own_change_of_training_singles(demo):
    """The shared readout of a target's own change starts at the training singles' mean own change
    beyond the centring (worked out here from the summaries), and applies to an unseen target."""
    data, split, graphs = demo
    s = data.summaries
    genes = list(data.genes)
    singles = {c.split("+")[0]: c for c in split.train if c.endswith("+ctrl")}
    mean_single = np.mean([s.delta(c) for c in singles.values()], axis=0)
    expected = np.mean([s.delta(c)[genes.index(g)] - mean_single[genes.index(g)] for g, c in singles.items()])
    # knowledge='embed': without the propagated neighbours, only the readout is left at an unseen target
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, knowledge="embed")
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, lr=0.0, weight_decay=0.0, progress_bar=False))
    assert m.net.self_head.bias.item() == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():  # switch every other output off: what is left is the readout at the target
        m.net.indv_w2.zero_()
        m.net.indv_b2.zero_()
    delta = m.predict_delta(["G7+ctrl"])[0]  # G7 was never perturbed
    i = genes.index("G7")
    assert delta[i] - mean_single[i] == pytest.approx(expected, rel=1e-4)
    others = np.delete(delta - mean_single, i)
    np.testing.assert_allclose(others, 0.0, atol=1e-6)


@pytest.mark.parametrize("min_pairs", [1, 10_000])
def test_interaction_gate_compares_with_the_backbone_on_validation(demo, monkeypatch, min_pairs):
    """The gate's backbone score is the additive baseline's validation top-20-DE MSE (computed here from
    the summaries, with pair_backbone='additive'); the interaction is kept only with a lower mean and
    a win on most pairs, and never with fewer validation pairs than GATE_MIN_PAIRS. When it is switched
    off, measured pairs are additive."""
    import priorgnn.models.priorgnn as pg

    monkeypatch.setattr(pg, "GATE_MIN_PAIRS", min_pairs)
    data, split, graphs = demo
    s = data.summaries
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, pair_backbone="additive")
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=3, progress_bar=False))
    single = {c.split("+")[0] for c in split.train if c.endswith("+ctrl")}
    pairs = [c for c in split.val if "ctrl" not in c and set(c.split("+")) <= single]
    gate = m.fit_info["interaction_gate"]
    assert gate["validation_pairs"] == len(pairs) > 0
    additive = [s.delta(f"{a}+ctrl") + s.delta(f"{b}+ctrl") for a, b in (c.split("+") for c in pairs)]
    if min_pairs > len(pairs):
        assert gate["kept"] is False and "mse_backbone" not in gate
    else:
        per_pair = [((additive[i] - s.delta(c))[s.top_de(c)] ** 2).mean() for i, c in enumerate(pairs)]
        assert gate["mse_backbone"] == pytest.approx(np.mean(per_pair), rel=1e-5)
        assert gate["kept"] == (gate["mse_with"] < gate["mse_backbone"] and gate["wins"] > len(pairs) / 2)
    m.net.measured_pair_interaction.fill_(0.0)
    np.testing.assert_allclose(m.predict_delta(pairs), np.stack(additive), rtol=1e-5, atol=1e-5)


def test_scaled_pair_backbone_is_the_scaled_additive_fit(demo):
    """pair_backbone='scaled': with the network and the interaction switched off, a double of
    two measured singles is c_L δ_L + c_S δ_S over its larger and smaller single (the perturbed genes'
    own change the plain sum), with (c_L, c_S) the scaled_additive baseline's fit."""
    data, split, graphs = demo
    s = data.summaries
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, knowledge="embed", pair_backbone="scaled",
                                    pair_shrink=1.0)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    sa = get_model_class("scaled_additive")().fit(data, split)
    cl, cs = sa.fit_info["scaled_additive"]["c_large"], sa.fit_info["scaled_additive"]["c_small"]
    assert m.fit_info["pair_backbone"]["c_large"] == pytest.approx(cl, rel=1e-5)
    with torch.no_grad():
        m.net.indv_w2.zero_()
        m.net.indv_b2.zero_()
        m.net.interaction.weight.zero_()
    da, db = s.delta("G0+ctrl"), s.delta("G1+ctrl")
    genes = list(data.genes)
    own = [genes.index(g) for g in ("G0", "G1") if g in genes]
    keep = np.ones(len(genes), bool)
    keep[own] = False
    big, small = (da, db) if np.linalg.norm(da[keep]) >= np.linalg.norm(db[keep]) else (db, da)
    expected = cl * big + cs * small
    expected[own] = da[own] + db[own]
    np.testing.assert_allclose(m.predict_delta(["G0+G1"])[0], expected, rtol=1e-4, atol=1e-5)


def test_gat_option_passes_messages_over_go(demo):
    """go_conv='gat': attention layers over the GO graph; an unseen gene's embedding then depends on its
    GO neighbours (changing a neighbour's embedding changes it) and a bad value is one clear error."""
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, go_conv="gat")
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    from torch_geometric.nn import GATConv

    assert all(isinstance(layer, GATConv) for layer in m.net.sim_layers)
    m.net.eval()
    g7 = m.pert_index["G7"]
    src = m.net.go_index[0][(m.net.go_index[1] == g7) & (m.net.go_index[0] != g7)]
    assert len(src)
    with torch.no_grad():
        before = m.net.pert_branch()[g7].clone()
        m.net.pert_emb.weight[src[0]] += 1.0
        after = m.net.pert_branch()[g7]
    assert not torch.allclose(before, after)
    with pytest.raises(ConfigError, match="go_conv"):
        get_model_class("priorgnn").check_hparams({"go_conv": "attention"})


def test_fallback_genes_are_those_nothing_informs_and_are_predicted_alike(demo):
    """A gene never perturbed in training, without a measured GO neighbour and without a trained
    embedding within its GO hops is a fallback: counted in ``n_fallback`` and predicted exactly like every
    other such gene. A GO neighbour of a trained gene is not, and predicts differently."""
    from knowledge.graph import GeneGraph

    data, split, graphs = demo
    trained = sorted({g for c in split.train for g in c.split("+") if g != "ctrl"})
    genes = list(data.genes) + ["X1", "X2", "X3"]
    pos = {g: i for i, g in enumerate(genes)}
    ring = graphs.go
    # the fixture's ring over the measured genes, plus X1 - X2 (linked only to each other) and X3 - a
    # trained gene, each edge both ways with weight 0.5, and self-loops
    extra = [(pos["X1"], pos["X2"]), (pos["X3"], pos[trained[0]])]
    src = np.r_[ring.edge_index[0], [a for a, b in extra], [b for a, b in extra], [pos[g] for g in ("X1", "X2", "X3")]]
    dst = np.r_[ring.edge_index[1], [b for a, b in extra], [a for a, b in extra], [pos[g] for g in ("X1", "X2", "X3")]]
    w = np.r_[ring.edge_weight, np.full(2 * len(extra), 0.5), np.ones(3)]
    go = GeneGraph(genes, np.stack([src, dst]), w, {"kind": "test-ring-plus"})
    m = get_model_class("priorgnn")(hidden=8, allow_prior_free=True)
    m.fit(data, split, graphs=PriorGraphs(go=go, coexpression=graphs.coexpression),
          train=TrainConfig(max_epochs=2, progress_bar=False, seed=0))
    fallback = m.fallback_genes()
    assert {"X1", "X2"} <= fallback
    assert "X3" not in fallback and not fallback & set(trained)
    conds = ["X1+X2", "X1+ctrl", "X2+ctrl", "X3+ctrl", f"{trained[0]}+ctrl"]
    assert m.prediction_notes(conds)["n_fallback"] == [2, 1, 1, 0, 0]
    pred = m.predict_delta(conds)
    np.testing.assert_array_equal(pred[1], pred[2])  # nothing tells X1 from X2
    assert np.abs(pred[3] - pred[1]).max() > 1e-6  # X3 is informed by its trained GO neighbour
    # random initial embeddings: every gene's embedding is its own, so none is a fallback
    r = get_model_class("priorgnn")(hidden=8, allow_prior_free=True, pert_init="normal")
    r.fit(data, split, graphs=PriorGraphs(go=go, coexpression=graphs.coexpression),
          train=TrainConfig(max_epochs=1, progress_bar=False, seed=0))
    assert r.fallback_genes() == set()
