"""Faults: a training run killed with SIGKILL and resumed ends where an uninterrupted run ends;
the same inputs and seed give identical results; outputs are never left half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tests._synth import synth_lognorm

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    singles = tuple(f"G{i}" for i in range(10))
    doubles = (("G0", "G1"), ("G2", "G3"), ("G4", "G5"), ("G6", "G7"), ("G8", "G9"), ("G1", "G2"),
               ("G3", "G4"), ("G5", "G6"))
    synth_lognorm(n_genes=30, singles=singles, doubles=doubles, cells=20).write_h5ad(d / "d.h5ad")
    return d / "d.h5ad"


def _cmd(data_file, out, *extra):
    return [sys.executable, str(ROOT / "train.py"), "--data", str(data_file), "--model", "priorgnn",
            "--split", "combo", "--split-set", "val_frac=0.5", "--go", "none", "--model-set", "hidden=8", "--batch-size", "2",
            "--epochs", "25", "--patience", "0", "--seed", "3", "--out", str(out), "--no-progress", "-q",
            *extra]


def _env(tmp):
    env = dict(os.environ)
    env["PRIORGNN_CACHE_DIR"] = str(tmp / "cache")
    return env


def _result(out: Path):
    pred = ad.read_h5ad(out / "predictions" / "test.h5ad")
    curve = pd.read_csv(out / "logs" / "metrics.csv")
    info = json.loads((out / "run.json").read_text())
    return pred, curve, info


def test_sigkill_then_resume_matches_uninterrupted(data_file, tmp_path):
    env = _env(tmp_path)
    full = tmp_path / "full"
    subprocess.run(_cmd(data_file, full), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(data_file, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and (killed / "logs" / "metrics.csv").exists():
            curve = pd.read_csv(killed / "logs" / "metrics.csv")
            if curve["epoch"].max() >= 5:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "run.json").exists()  # the run was interrupted mid-training
    leftovers = [p for p in killed.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]
    # a temporary file may survive a kill, but never under a final name
    assert all(p.name.startswith(".") for p in leftovers)

    res = subprocess.run(_cmd(data_file, killed, "--resume"), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr

    p_full, c_full, i_full = _result(full)
    p_res, c_res, i_res = _result(killed)
    np.testing.assert_allclose(p_res.layers["delta"], p_full.layers["delta"], rtol=1e-5, atol=1e-6)
    assert i_res["fit_info"]["training"]["best_score"] == pytest.approx(i_full["fit_info"]["training"]["best_score"],
                                                                        rel=1e-6)
    cols = ["epoch", "val_mse_top20_de"]
    a, b = c_full[cols].dropna().reset_index(drop=True), c_res[cols].dropna().reset_index(drop=True)
    assert list(b["epoch"]) == list(a["epoch"])  # every epoch once, none lost, none doubled
    np.testing.assert_allclose(b["val_mse_top20_de"], a["val_mse_top20_de"], rtol=1e-5)


def test_same_inputs_and_seed_give_identical_results(data_file, tmp_path):
    env = _env(tmp_path)
    outs = [tmp_path / "r1", tmp_path / "r2"]
    for out in outs:
        subprocess.run(_cmd(data_file, out, "--epochs", "4"), check=True, env=env, capture_output=True)
    (p1, c1, i1), (p2, c2, i2) = (_result(o) for o in outs)
    np.testing.assert_array_equal(p1.layers["delta"], p2.layers["delta"])
    assert i1["fit_info"]["training"]["best_score"] == i2["fit_info"]["training"]["best_score"]
    # each run records its package versions and git revision (None outside a git checkout)
    assert i1["versions"]["torch"] and i1["versions"] == i2["versions"]
    assert i1["git_revision"] is None or (isinstance(i1["git_revision"], str) and len(i1["git_revision"]) >= 7)
