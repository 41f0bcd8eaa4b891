"""Training from streamed per-condition summaries (``train.py --summaries-only``): the moments equal
a direct computation, the predictions equal those of a run on the loaded cells, and everything that
needs cells says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from priorgnn.data.stream import SummaryData, summarise_h5ad
from priorgnn.errors import CheckpointError, ConfigError, DataValidationError
from tests._synth import lognorm_h5ad


@pytest.fixture(scope="module")
def lognorm_file(tmp_path_factory):
    return lognorm_h5ad(tmp_path_factory, "summaries_only", n_genes=30, seed=5)


def test_streamed_moments_equal_direct_numpy_moments(lognorm_file):
    adata, path = lognorm_file
    summaries, mom = summarise_h5ad(path, chunk_rows=23, moments=True)  # chunks split conditions
    X = np.asarray(adata.X.todense() if hasattr(adata.X, "todense") else adata.X, dtype=np.float64)
    cond = adata.obs["condition"].astype(str).to_numpy()
    for i, c in enumerate(summaries.conditions):
        x = X[cond == c]
        mu = x.mean(axis=0)
        # population central moments, computed directly from the centred values
        expected = [mu, ((x - mu) ** 2).mean(0), ((x - mu) ** 3).mean(0), ((x - mu) ** 4).mean(0)]
        for k in range(4):
            np.testing.assert_allclose(mom[k, i], expected[k], rtol=1e-7, atol=1e-9, err_msg=f"{c} moment {k + 1}")
    # the summaries are the same with and without moments
    plain = summarise_h5ad(path, chunk_rows=23)
    np.testing.assert_array_equal(plain.means, summaries.means)
    np.testing.assert_array_equal(plain.de_rank, summaries.de_rank)


def test_targets_from_summary_data_equal_targets_from_cells(lognorm_file, tmp_path, monkeypatch):
    from priorgnn.data import from_anndata
    from priorgnn.training.targets import ConditionTargets

    monkeypatch.setenv("PRIORGNN_CACHE_DIR", str(tmp_path / "cache"))
    adata, path = lognorm_file
    full = from_anndata(adata)
    lite = SummaryData.from_h5ad(path)
    conds = full.conditions[:6]
    a = ConditionTargets.from_data(full, conds)
    b = ConditionTargets.from_data(lite, conds)
    for name in ("delta", "c2", "c3", "c4"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-7, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(a.retain, b.retain)
    for ra, rb in zip(a.top_de, b.top_de):
        assert set(ra) == set(rb)


def test_summary_data_refuses_cell_access_with_the_fix(lognorm_file):
    adata, path = lognorm_file
    lite = SummaryData.from_h5ad(path)
    assert lite.n_cells == adata.n_obs and lite.n_genes == adata.n_vars
    assert lite.conditions[0] == "ctrl" and set(lite.conditions) == set(adata.obs["condition"].astype(str))
    with pytest.raises(DataValidationError, match="--summaries-only"):
        lite.X  # noqa: B018
    with pytest.raises(DataValidationError, match="cell matrix"):
        lite.cell_conditions  # noqa: B018


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory):
    from priorgnn.simulate import simulate

    out = tmp_path_factory.mktemp("tiny_sim") / "sim"
    simulate("tiny", seed=0, out=out)
    return out


def _train(sim_dir, out, **kw):
    from priorgnn.pipeline import RunConfig, train_run

    cfg = RunConfig(data=str(sim_dir), out=str(out), train={"max_epochs": 2, "patience": 0, "progress_bar": False,
                                                             "threads": 1},
                    priors={"go": "auto", "coexpression": "none"}, **kw)
    return train_run(cfg, progress=False)


def test_summaries_only_run_predicts_what_the_cell_run_predicts(tiny_sim, tmp_path, monkeypatch):
    import anndata as ad

    from priorgnn.runs import Run

    monkeypatch.setenv("PRIORGNN_CACHE_DIR", str(tmp_path / "cache"))
    _train(tiny_sim, tmp_path / "cells")
    _train(tiny_sim, tmp_path / "lite", summaries_only=True)
    a = ad.read_h5ad(tmp_path / "cells" / "predictions" / "test.h5ad")
    b = ad.read_h5ad(tmp_path / "lite" / "predictions" / "test.h5ad")
    assert list(a.obs_names) == list(b.obs_names)
    np.testing.assert_allclose(np.asarray(b.X), np.asarray(a.X), rtol=0, atol=1e-5)
    info = Run(tmp_path / "lite").info["data"]
    assert info["content_hash"] is None and len(info["file_sha256"]) == 64
    # the run reloads its data (for evaluate.py) and checks the file against the recorded checksum
    assert Run(tmp_path / "lite").data_spec.load().n_cells > 0
    data_file = tiny_sim / "data.h5ad"
    backup = data_file.read_bytes()
    try:
        data_file.write_bytes(backup + b"\0")
        with pytest.raises(CheckpointError, match="checksum"):
            Run(tmp_path / "lite").data_spec.load()
    finally:
        data_file.write_bytes(backup)


@pytest.mark.parametrize("kw, match", [
    ({"model": "transformer"}, "trains on cells"),
    ({"priors": {"go": "none", "coexpression": "auto"}}, "co-expression graph is built from training cells"),
    ({"load": {"normalize": True}}, "cannot apply normalize"),
])
def test_summaries_only_refuses_what_needs_cells(tiny_sim, tmp_path, kw, match):
    from priorgnn.pipeline import RunConfig, train_run

    cfg = RunConfig(data=str(tiny_sim), out=str(tmp_path / "run"), summaries_only=True,
                    train={"max_epochs": 1, "progress_bar": False}, **kw)
    with pytest.raises(ConfigError, match=match):
        train_run(cfg, progress=False)


def test_summaries_only_needs_a_written_file(tmp_path):
    from priorgnn.pipeline import RunConfig, resolve_data

    with pytest.raises(ConfigError, match="Simulate it first"):
        resolve_data(RunConfig(data="demo", sim_dir=str(tmp_path / "nothing"), summaries_only=True))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="neither"):
        resolve_data(RunConfig(data=str(tmp_path / "folder"), summaries_only=True))
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv")
    with pytest.raises(DataValidationError, match="not an .h5ad"):
        resolve_data(RunConfig(data=str(tmp_path / "x.csv"), summaries_only=True))
