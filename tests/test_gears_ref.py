"""The reference GEARS adapter: runs offline on our data, split and graphs; round-trips."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("gears")
pytestmark = pytest.mark.reference

from knowledge.graph import GeneGraph  # noqa: E402
from priorgnn.data import from_anndata, make_split  # noqa: E402
from priorgnn.models import PriorGraphs, TrainConfig, get_model_class, load_model  # noqa: E402
from priorgnn.models.gears_ref import scipy_series_index_workaround  # noqa: E402
from tests._synth import synth_lognorm  # noqa: E402


def test_series_index_workaround_is_scoped():
    import anndata as ad

    a = ad.AnnData(X=sp.csr_matrix(np.arange(12, dtype=np.float32).reshape(4, 3)),
                   obs=pd.DataFrame({"condition": ["ctrl", "a", "ctrl", "b"]}, index=list("wxyz")))
    mask = a.obs.condition == "ctrl"
    with scipy_series_index_workaround(a):
        got = np.asarray(np.mean(a.X[mask], axis=0)).ravel()
    np.testing.assert_allclose(got, [3.0, 4.0, 5.0])  # rows 0 and 2
    assert type(a.X) is sp.csr_matrix  # restored


def _ring(genes):
    n = len(genes)
    s = np.arange(n)
    return GeneGraph(list(genes), np.stack([np.r_[s, (s + 1) % n], np.r_[(s + 1) % n, s]]), np.ones(2 * n),
                     {"kind": "ring"})


def test_gears_adapter_offline_round_trip(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("the GEARS adapter must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    singles = tuple(f"G{i}" for i in range(6))
    data = from_anndata(synth_lognorm(n_genes=20, singles=singles, cells=12, ctrl_cells=40))
    split = make_split(data.conditions, "combo", seed=0, val_frac=0.5)
    graphs = PriorGraphs(go=_ring(data.genes), coexpression=_ring(data.genes))
    m = get_model_class("gears")(hidden=8, epochs=1)
    m.fit(data, split, graphs=graphs, train=TrainConfig(batch_size=8))
    pred = m.predict(split.test + ["G0+ctrl", "ctrl"])
    assert pred.shape == (len(split.test) + 2, 20)
    assert np.all(pred.layers["delta"][-1] == 0)
    m.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.predict_delta(split.test), m.predict_delta(split.test), atol=1e-6)
