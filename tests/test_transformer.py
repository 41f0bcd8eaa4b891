"""The prior-free transformer: overfitting, never reading priors, pretraining on training cells only,
token subsampling, persistence, errors and determinism."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from priorgnn.data import from_anndata, make_split
from priorgnn.data.conditions import CTRL, parse_condition
from priorgnn.data.splits import Split
from priorgnn.errors import ConfigError, GraphError
from priorgnn.models import PriorGraphs, TrainConfig, get_model_class, load_model
from priorgnn.models import _transformer_pretrain as pre
from priorgnn.models.transformer import GeneTransformer
from priorgnn.training.losses import expected_power_error
from priorgnn.training.targets import ConditionTargets
from tests._synth import synth_lognorm

#: A small network: the tests check behaviour, not accuracy.
SMALL = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, value_hidden=8, dropout=0.0)
QUIET = dict(progress_bar=False, patience=0)


@pytest.fixture(scope="module")
def _data_stack_warm():
    """The data stack's first use resets the OpenMP thread count: do it before limiting threads."""
    synth_lognorm(n_genes=4, singles=("G0",), doubles=(), cells=3, ctrl_cells=3)


@pytest.fixture(autouse=True)
def _one_thread(_data_stack_warm):
    """These networks are tiny: one thread is much faster than two contending for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    a = synth_lognorm(n_genes=24, cells=30, ctrl_cells=90)
    data = from_anndata(a, name="synth")
    split = make_split(data.conditions, "combo", seed=0, test_frac=0.5, val_frac=0.34)
    return data, split


def _fit(data, split, seed=0, graphs=None, epochs=2, run_dir=None, **hp):
    m = get_model_class("transformer")(**{**SMALL, "pretrain": False, **hp})
    return m.fit(data, split, graphs=graphs,
                 train=TrainConfig(max_epochs=epochs, batch_size=4, seed=seed, run_dir=run_dir, **QUIET))


def test_overfits_a_tiny_data_set_to_the_loss_floor():
    a = synth_lognorm(n_genes=16, singles=("G0", "G1", "G2", "G3"), doubles=(("G0", "G1"), ("G2", "G3")),
                      cells=40, ctrl_cells=80, effect=4.0)
    data = from_anndata(a, name="tiny")
    conds = list(data.conditions)
    split = Split(kind="custom", seed=0, train=conds, val=[], test=[])
    m = get_model_class("transformer")(d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, loss="mse",
                                       direction_lambda=0.0, pretrain=False)
    m.fit(data, split, train=TrainConfig(max_epochs=70, batch_size=2, lr=5e-3, weight_decay=0.0, **QUIET))
    t = ConditionTargets.from_data(data, conds)
    pred = m.predict_delta(conds)
    retain = t.retain.astype(float)
    err = expected_power_error(torch.from_numpy(pred), torch.from_numpy(t.delta), torch.from_numpy(t.c2),
                               torch.from_numpy(t.c3), torch.from_numpy(t.c4), 2).numpy()
    loss = ((err * retain).sum(1) / retain.sum(1)).mean()
    floor = ((t.c2 * retain).sum(1) / retain.sum(1)).mean()  # the irreducible cell-level variance
    reducible = ((t.delta**2 * retain).sum(1) / retain.sum(1)).mean()  # what "no change" adds to it
    assert loss - floor < 0.01 * reducible
    assert loss - floor < 0.005 * floor
    np.testing.assert_allclose(pred, t.delta, atol=0.25)
    assert np.corrcoef(pred[t.delta != 0], t.delta[t.delta != 0])[0, 1] > 0.995


class _ExplodingGraphs(PriorGraphs):
    """Any read of a prior graph fails: a model that reads priors cannot fit with it."""

    def __getattribute__(self, name):
        if name in ("go", "coexpression"):
            raise AssertionError(f"the prior-free transformer read graphs.{name}")
        return super().__getattribute__(name)


def test_fit_never_reads_prior_graphs_and_is_deterministic(demo):
    data, split = demo
    conds = split.test + ["G7+ctrl", CTRL]  # G7 was never perturbed: still a token
    assert get_model_class("transformer").uses_priors == ()
    a = _fit(data, split, seed=3, graphs=_ExplodingGraphs(), pretrain=True, pretrain_epochs=1)
    b = _fit(data, split, seed=3, graphs=None, pretrain=True, pretrain_epochs=1)
    np.testing.assert_array_equal(a.predict_delta(conds), b.predict_delta(conds))
    c = _fit(data, split, seed=4, pretrain=True, pretrain_epochs=1)
    assert not np.allclose(a.predict_delta(conds), c.predict_delta(conds))
    emb = a.gene_embeddings()
    assert emb.shape == (data.n_genes, SMALL["d_model"])
    np.testing.assert_array_equal(emb, b.gene_embeddings())
    named = a.embeddings()
    assert named.names == list(data.genes) and named.space == "gene identity embedding"
    np.testing.assert_array_equal(named.matrix, emb)
    assert named.matrix.dtype == np.float64


def test_predictions_unchanged_when_prior_files_are_corrupted(tmp_path):
    from priorgnn.pipeline import RunConfig, train_run
    from priorgnn.simulate import load_simulation

    sim_dir = tmp_path / "sim"

    def run(name):
        cfg = RunConfig.from_dict({
            "data": "tiny", "sim_dir": str(sim_dir), "split": {"kind": "simulation", "seed": 1},
            "model": "transformer", "model_options": {**SMALL, "pretrain": True, "pretrain_epochs": 1},
            "train": {"max_epochs": 2, "batch_size": 4, "progress_bar": False, "seed": 0},
            "out": str(tmp_path / name),
        })
        run = train_run(cfg, progress=False)
        return run.model()

    first = run("a")
    sim = load_simulation(sim_dir)
    for path in (sim.obo_path, sim.gaf_path):
        assert path is not None and path.exists()
        path.write_text("not an ontology\n")
    second = run("b")
    for path in (sim.obo_path, sim.gaf_path):  # the second run saw (and left) the corrupted files
        assert path.read_text() == "not an ontology\n"
    assert not (tmp_path / "b" / "graphs").exists()
    conds = sorted(set(sim.data.conditions) - {CTRL})
    np.testing.assert_array_equal(first.predict_delta(conds), second.predict_delta(conds))


def test_pretraining_reads_training_cells_only_and_learns(demo, monkeypatch):
    data, split = demo
    allowed = set(split.train) | {CTRL}
    read_rows: list[np.ndarray] = []
    batch = pre.CellSet.batch

    def spy(self, index):
        index = np.asarray(index)
        data_part = index[index < self.offsets[1]]
        read_rows.append(self.parts[0][1][data_part])
        return batch(self, index)

    monkeypatch.setattr(pre.CellSet, "batch", spy)
    extra = synth_lognorm(n_genes=24, cells=10, ctrl_cells=30, seed=5)
    m = get_model_class("transformer")(**SMALL, pretrain_epochs=6, pretrain_batch_size=32, pretrain_val_frac=0.2)
    m.fit(data, split, train=TrainConfig(max_epochs=1, batch_size=4, extra={"pretrain_cells": extra}, **QUIET))
    rows = np.concatenate(read_rows)
    assert set(data.cell_conditions[rows]) == allowed  # every allowed condition, nothing held out
    assert len(np.unique(rows)) == len(data.cells_in(sorted(allowed)))
    info = m.fit_info["pretraining"]
    assert info["extra_cells"] == extra.n_obs
    assert info["cells"] + info["heldout_cells"] == len(data.cells_in(sorted(allowed))) + extra.n_obs
    assert info["final_heldout_loss"] < 0.7 * info["initial_heldout_loss"]
    assert info["heldout_curve"][-1] < info["heldout_curve"][0]


def test_extra_cells_are_checked(demo):
    data, split = demo
    held = split.test[0]
    extra = synth_lognorm(n_genes=24, cells=5, ctrl_cells=10, seed=6)
    assert held in set(extra.obs["condition"])
    with pytest.raises(ConfigError, match="held-out conditions"):
        pre.extra_cells(extra, list(data.genes), split, labels=True)
    X, pert = pre.extra_cells(extra, list(data.genes), split, labels=False)
    assert X.shape == (extra.n_obs, data.n_genes) and np.all(pert == -1)
    # genes in another order are aligned; a missing gene or raw counts are refused
    shuffled = extra[:, extra.var_names[::-1]].copy()
    X2, _ = pre.extra_cells(shuffled, list(data.genes), split, labels=False)
    np.testing.assert_array_equal(X2.toarray(), X.toarray())
    with pytest.raises(Exception, match="lack 1 of the model's genes"):
        pre.extra_cells(extra[:, 1:].copy(), list(data.genes), split, labels=False)
    raw = ad.AnnData(X=extra.X * 100, obs=extra.obs, var=extra.var)
    with pytest.raises(Exception, match="raw counts"):
        pre.extra_cells(raw, list(data.genes), split, labels=False)


def test_token_subsampling_forward():
    torch.manual_seed(0)
    G, K = 30, 8
    net = GeneTransformer(G, torch.rand(G), d_model=16, n_layers=1, n_heads=2, d_ff=16, dropout=0.0,
                          train_tokens=K)
    pert = torch.tensor([[3, 7], [5, -1], [-1, -1]])
    fill = torch.randn(3, G)
    with torch.no_grad():
        net.delta_head[-1].weight.normal_()  # a non-zero head (it starts at zero)
    net.train()
    out = net(pert, fill=fill)["delta"]
    own = out != fill
    assert own.sum(1).tolist() == [K, K, K]  # K tokens predicted per condition, the rest filled
    assert own[0, 3] and own[0, 7] and own[1, 5]  # the perturbed genes are always among them
    out.sum().backward()  # gradient flows through the drawn tokens only
    assert net.gene_emb.weight.grad.abs().sum(1).gt(0).sum() <= 3 * K
    # with all tokens the network predicts every gene, and eval mode always uses all tokens
    net.eval()
    with torch.no_grad():
        full = net(pert)["delta"]
    assert full.shape == (3, G) and torch.all(full != fill)


def test_gradient_checkpointing_changes_memory_not_results():
    torch.manual_seed(0)
    kw = dict(d_model=16, n_layers=2, n_heads=2, d_ff=16, dropout=0.1, train_tokens=None)
    plain = GeneTransformer(12, torch.rand(12), **kw)
    ckpt = GeneTransformer(12, torch.rand(12), checkpointing=True, **kw)
    ckpt.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for net in (plain, ckpt):
            net.delta_head[-1].weight.fill_(0.1)
    pert = torch.tensor([[1, 4], [2, -1]])
    grads = []
    for net in (plain, ckpt):
        torch.manual_seed(1)  # the same dropout masks, replayed by the recomputation
        net.train()
        net(pert)["delta"].pow(2).sum().backward()
        grads.append(net.gene_emb.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_fit_with_token_subsampling(demo):
    data, split = demo
    m = _fit(data, split, epochs=3, train_tokens=8, predict_batch=2)
    assert m.predict_delta(split.test).shape == (len(split.test), data.n_genes)
    assert m.fit_info["training"]["global_steps"] > 0


def test_save_load_round_trip_and_unmeasured_gene(demo, tmp_path):
    data, split = demo
    m = _fit(data, split)
    m.save(tmp_path / "model")
    again = load_model(tmp_path / "model")
    conds = split.test + ["G3+ctrl", "G20+G21"]
    np.testing.assert_array_equal(m.predict_delta(conds), again.predict_delta(conds))
    np.testing.assert_array_equal(m.gene_embeddings(), again.gene_embeddings())
    pred = again.predict(["G20+ctrl", "G0+ctrl"])
    assert pred.obs["n_untrained_genes"].tolist() == [1, 0]
    with pytest.raises(GraphError, match="'NOTAGENE'.*not a measured gene"):
        again.predict_delta(["G1+NOTAGENE"])


def test_unmeasured_gene_in_training_split_is_refused(demo):
    data, split = demo
    bad = Split(kind="custom", seed=0, train=split.train + ["G0+XYZ"], val=split.val, test=split.test)
    with pytest.raises(GraphError, match="'XYZ'"):
        _fit(data, bad)


@pytest.mark.parametrize("hp, match", [
    ({"d_model": 30, "n_heads": 4}, "divisible"),
    ({"loss": "l1"}, "loss"),
    ({"dropout": 1.5}, "dropout"),
    ({"train_tokens": 2}, "train_tokens"),
    ({"n_layers": 0}, "n_layers"),
    ({"pretrain": "yes"}, "pretrain"),
    ({"mask_frac": 0.0}, "mask_frac"),
    ({"hidden": 64}, "unknown hyperparameter"),
])
def test_bad_hyperparameters(hp, match):
    with pytest.raises(ConfigError, match=match):
        get_model_class("transformer")(**hp)


def test_resume_skips_pretraining_and_matches_an_uninterrupted_fit(demo, tmp_path):
    data, split = demo
    kw = dict(pretrain=True, pretrain_epochs=1)
    cfg = dict(batch_size=4, seed=1, **QUIET)
    full = get_model_class("transformer")(**SMALL, **kw)
    full.fit(data, split, train=TrainConfig(max_epochs=4, run_dir=str(tmp_path / "a"), **cfg))
    part = get_model_class("transformer")(**SMALL, **kw)
    part.fit(data, split, train=TrainConfig(max_epochs=2, run_dir=str(tmp_path / "b"), **cfg))
    curve = pd.read_csv(tmp_path / "b" / "pretrain" / "logs" / "metrics.csv")
    assert curve["val_loss"].notna().any()
    resumed = get_model_class("transformer")(**SMALL, **kw)
    resumed.fit(data, split, train=TrainConfig(max_epochs=4, run_dir=str(tmp_path / "b"),
                                               resume=str(tmp_path / "b/checkpoints/last.ckpt"), **cfg))
    assert resumed.fit_info["pretraining"]["steps"] == part.fit_info["pretraining"]["steps"]
    assert resumed.fit_info["training"]["global_steps"] == full.fit_info["training"]["global_steps"]
    np.testing.assert_allclose(resumed.predict_delta(split.test), full.predict_delta(split.test), atol=1e-6)


def test_conditions_of_pretraining_cells_map_to_perturbed_tokens(demo):
    data, split = demo
    index = {g: i for i, g in enumerate(data.genes)}
    rows, pert = pre.pretraining_cells(data, split, index)
    for r, p in zip(rows[:: max(1, len(rows) // 50)], pert[:: max(1, len(rows) // 50)]):
        genes = parse_condition(data.cell_conditions[r])
        assert [data.genes[i] for i in p if i >= 0] == list(genes)


def test_additive_backbone_puts_measured_singles_in_place_of_the_networks(demo, tmp_path):
    """backbone='additive': a double is the network's prediction plus, for each of its genes with a
    measured training single, that single minus the network's own single; singles are unchanged."""
    data, split = demo[0], demo[1]
    m = _fit(data, split, epochs=1, pretrain=False, backbone="additive")
    s = data.summaries
    measured = {parse_condition(c)[0]: c for c in split.train if len(parse_condition(c)) == 1}
    pair = next(c for c in split.test if len(parse_condition(c)) == 2
                and all(g in measured for g in parse_condition(c)))
    a, b = parse_condition(pair)
    with_backbone = m.predict_delta([pair, f"{a}+ctrl"])
    m.hparams["backbone"] = "none"
    raw = m.predict_delta([pair, f"{a}+ctrl", f"{b}+ctrl"])
    expected = raw[0] + (s.delta(measured[a]) - raw[1]) + (s.delta(measured[b]) - raw[2])
    np.testing.assert_allclose(with_backbone[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(with_backbone[1], raw[1])
    m.hparams["backbone"] = "additive"
    again = load_model(m.save(tmp_path / "model"))
    np.testing.assert_allclose(again.predict_delta([pair]), with_backbone[:1], rtol=1e-6, atol=1e-7)
