"""The untrained reference model (``TrainConfig.untrained``, ``train.py --untrained``): no optimiser step,
PriorGNN predicting through its built-in backbone, worked out here from the measured summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from priorgnn.data import from_anndata, make_split
from priorgnn.models import TrainConfig, get_model_class
from tests._synth import lognorm_h5ad, small_prior_data, synth_lognorm
from tests._synth import ring_graph as _ring


@pytest.fixture(scope="module")
def demo():
    return small_prior_data()


def _backbone(data, split, conditions):
    """What the backbone predicts, from the summaries alone: a measured training single as measured,
    any other gene as the mean training single plus, on that gene itself, the training singles' mean
    change of their own target beyond that mean; a double as the sum of its two singles."""
    s = data.summaries
    genes = list(data.genes)
    singles = {c.split("+")[0]: c for c in split.train if c.endswith("+ctrl")}
    mean_single = np.mean([s.delta(c) for c in singles.values()], axis=0)
    own = np.mean([s.delta(c)[genes.index(g)] - mean_single[genes.index(g)] for g, c in singles.items()])

    def single(g, in_double):
        if in_double and g in singles:
            return s.delta(singles[g])
        out = mean_single.copy()
        out[genes.index(g)] += own
        return out

    rows = []
    for c in conditions:
        parts = [g for g in c.split("+") if g != "ctrl"]
        rows.append(sum(single(g, len(parts) == 2) for g in parts))
    return np.stack(rows)


def test_untrained_priorgnn_predicts_its_backbone(demo):
    data, split, graphs = demo
    trained = {g for c in split.train for g in c.split("+")}
    assert "G7" not in trained  # never perturbed: an unseen single
    pair = next(c for c in split.test if "ctrl" not in c and set(c.split("+")) <= trained)
    conds = ["G7+ctrl", pair, "G0+G7", "G0+ctrl"]
    # knowledge='embed': the backbone without the propagated GO neighbours (which the default adds, and
    # tests/test_priorgnn.py checks by hand)
    m = get_model_class("priorgnn")(hidden=16, knowledge="embed", pair_backbone="additive")
    m.fit(data, split, graphs=graphs, train=TrainConfig(untrained=True, progress_bar=False))
    tr = m.fit_info["training"]
    assert (tr["untrained"], tr["epochs"], tr["global_steps"], tr["epoch_seconds"]) == (True, 0, 0, [])
    expected = _backbone(data, split, conds)
    np.testing.assert_allclose(m.predict_delta(conds), expected, rtol=1e-5, atol=1e-6)
    # the seen-singles double is exactly the sum of the two measured singles
    a, b = pair.split("+")
    np.testing.assert_allclose(m.predict_delta([pair])[0],
                               data.summaries.delta(f"{a}+ctrl") + data.summaries.delta(f"{b}+ctrl"),
                               rtol=1e-5, atol=1e-6)
    # no randomness left: another seed gives the same predictions
    other = get_model_class("priorgnn")(hidden=16, knowledge="embed", pair_backbone="additive")
    other.fit(data, split, graphs=graphs, train=TrainConfig(untrained=True, seed=3, progress_bar=False))
    np.testing.assert_allclose(other.predict_delta(conds), m.predict_delta(conds), atol=1e-6)


def test_untrained_differs_from_one_epoch_of_training(demo):
    """The flag really skips training: a model trained for an epoch predicts something else."""
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=16)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=1, progress_bar=False))
    assert m.fit_info["training"]["global_steps"] > 0
    # (test doubles of measured singles may stay additive after training, through the interaction gate;
    # an unseen single goes through the network)
    conds = ["G7+ctrl", "G8+ctrl"]
    assert not np.allclose(m.predict_delta(conds), _backbone(data, split, conds), atol=1e-3)


def test_untrained_cannot_resume(demo, tmp_path):
    from priorgnn.errors import CheckpointError

    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8)
    with pytest.raises(CheckpointError, match="untrained"):
        m.fit(data, split, graphs=graphs,
              train=TrainConfig(untrained=True, resume=str(tmp_path / "last.ckpt"), progress_bar=False))


def test_train_cli_untrained_writes_backbone_predictions(tmp_path_factory, tmp_path):
    import train as train_cli

    a, path = lognorm_h5ad(tmp_path_factory, "untrained", n_genes=40, cells=40, ctrl_cells=120)
    data = from_anndata(a)
    split = make_split(data.conditions, "combo", seed=0, test_frac=0.5, val_frac=0.34)
    split.save(tmp_path / "split.json")
    _ring(data.genes, 3).save(tmp_path / "go.npz")
    out = tmp_path / "run"
    assert train_cli.main(["--data", str(path), "--split-file", str(tmp_path / "split.json"), "--go",
                           str(tmp_path / "go.npz"), "--coexpression", "none", "--untrained", "--out", str(out),
                           # the backbone without the propagated GO neighbours and with the plain sum for
                           # doubles, which _backbone computes by hand
                           "--model-set", "knowledge=embed", "--model-set", "pair_backbone=additive",
                           "--no-progress", "-q"]) == 0
    import json

    info = json.loads((out / "run.json").read_text())
    assert info["config"]["train"]["untrained"] is True
    assert info["fit_info"]["training"]["global_steps"] == 0
    pred = pd.read_csv(out / "predictions" / "test_delta.csv", index_col=0)
    np.testing.assert_allclose(pred.to_numpy(), _backbone(data, split, list(pred.index)), atol=2e-6)


def test_help_documents_untrained():
    import train as train_cli

    text = train_cli._train_parser().format_help()
    assert "--untrained" in text and "reference rows in benchmarks" in " ".join(text.split())


def test_epoch_clock_records_each_optimiser_step(demo):
    """The clock's per-step record: one entry per optimiser step, with the conditions it trained on
    (the split's training conditions in near-equal batches), and step times that add up to at most the
    epoch's training time."""
    data, split, graphs = demo
    m = get_model_class("priorgnn")(hidden=8)
    m.fit(data, split, graphs=graphs, train=TrainConfig(max_epochs=2, batch_size=3, patience=0, progress_bar=False))
    tr = m.fit_info["training"]
    n_train = len(split.train)
    assert len(tr["step_seconds"]) == len(tr["step_sizes"]) == tr["global_steps"]
    per_epoch = tr["global_steps"] // 2
    assert per_epoch == -(-n_train // 3)  # ceil(n / batch size) batches
    assert sum(tr["step_sizes"]) == 2 * n_train and max(tr["step_sizes"]) <= 3
    assert len(tr["steps_seconds"]) == 2
    for e in range(2):
        steps = tr["step_seconds"][e * per_epoch:(e + 1) * per_epoch]
        assert sum(steps) == pytest.approx(tr["steps_seconds"][e], abs=1e-3)
        assert tr["steps_seconds"][e] <= tr["epoch_seconds"][e] + 1e-4
