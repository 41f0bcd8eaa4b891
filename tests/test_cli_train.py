"""train.py end to end on a small h5ad: run directory, prediction subcommand, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import train
from knowledge.graph import GeneGraph
from priorgnn.runs import Run
from tests._synth import synth_lognorm

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    singles = tuple(f"G{i}" for i in range(8))
    doubles = (("G0", "G1"), ("G2", "G3"), ("G4", "G5"), ("G0", "G6"), ("G1", "G7"), ("G2", "G5"))
    synth_lognorm(n_genes=30, singles=singles, doubles=doubles, cells=20).write_h5ad(d / "d.h5ad")
    genes = [f"G{i}" for i in range(30)]
    src = np.arange(30)
    go = GeneGraph(genes, np.stack([np.r_[src, (src + 1) % 30], np.r_[(src + 1) % 30, src]]),
                   np.ones(60), {"kind": "go"})
    go.save(d / "go.npz")
    return d


def test_additive_run_directory(h5ad, tmp_path):
    out = tmp_path / "run"
    assert train.main(["--data", str(h5ad / "d.h5ad"), "--model", "additive", "--split", "combo",
                       "--out", str(out), "--no-progress", "-q"]) == 0
    for f in ("run.json", "config.yaml", "split.json", "split.csv", "model/model.json",
              "predictions/test.h5ad", "predictions/test_delta.csv"):
        assert (out / f).exists(), f
    info = json.loads((out / "run.json").read_text())
    assert info["model"] == "additive" and info["versions"]["torch"] and "git_revision" in info
    run = Run.load(out)
    pred = ad.read_h5ad(out / "predictions" / "test.h5ad")
    assert list(pred.obs_names) == run.split().test
    # the saved model reproduces the saved predictions
    np.testing.assert_allclose(run.model().predict_delta(run.split().test), pred.layers["delta"], atol=1e-6)
    # a second run into the same folder is refused without --overwrite
    assert train.main(["--data", str(h5ad / "d.h5ad"), "--model", "additive", "--out", str(out), "-q"]) == 2


@pytest.mark.parametrize("where", ["out", "parent"])
def test_out_through_a_dangling_link_is_named_in_one_line(h5ad, tmp_path, capsys, where):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    out = link if where == "out" else link / "run"
    assert train.main(["--data", str(h5ad / "d.h5ad"), "--model", "additive", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "symbolic link" in err and str(tmp_path / "gone") in err and "already exists" not in err
    assert not (tmp_path / "gone").exists()


def test_priorgnn_run_and_predict(h5ad, tmp_path, capsys):
    out = tmp_path / "gnn"
    args = ["--data", str(h5ad / "d.h5ad"), "--model", "priorgnn", "--split", "combo", "--go", str(h5ad / "go.npz"),
            "--epochs", "3", "--model-set", "hidden=8", "--out", str(out), "--no-progress", "-q"]
    assert train.main(args) == 0
    assert (out / "checkpoints" / "last.ckpt").exists() and (out / "logs" / "metrics.csv").exists()
    assert (out / "graphs" / "go.npz").exists() and (out / "graphs" / "coexpression.npz").exists()
    assert train.main(["predict", str(out), "--conditions", "G3+G7,ctrl+G2", "--name", "mine", "-q"]) == 0
    pred = ad.read_h5ad(out / "predictions" / "mine.h5ad")
    assert list(pred.obs_names) == ["G3+G7", "G2+ctrl"]
    assert train.main(["predict", str(out), "--all-pairs", "G0,G1,G2", "--name", "pairs", "-q"]) == 0
    pairs = ad.read_h5ad(out / "predictions" / "pairs.h5ad")
    assert sorted(pairs.obs_names) == sorted(["G0+ctrl", "G1+ctrl", "G2+ctrl", "G0+G1", "G0+G2", "G1+G2"])
    table = (out / "predictions" / "pairs_interactions.csv").read_text().splitlines()
    assert len(table) == 4 and "label" in table[0]


def test_resume_refuses_missing_run(tmp_path):
    assert train.main(["--out", str(tmp_path / "none"), "--resume", "-q"]) == 2


def test_cli_errors_are_one_message(h5ad, tmp_path):
    cmd = [sys.executable, str(ROOT / "train.py"), "--data", str(h5ad / "d.h5ad"), "--model", "nope",
           "--out", str(tmp_path / "x")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2
    assert "unknown model 'nope'" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode != 0 and "Traceback" in res.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "train.py"), "predict", str(tmp_path), "--conditions", "A+B+C"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_help_lists_subcommand():
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "predict" in res.stdout and "--model" in res.stdout
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "predict", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--all-pairs" in res.stdout


@pytest.mark.slow
def test_default_main_job_on_the_demo_data(tmp_path, monkeypatch):
    """`python train.py` without data or model options (what `make demo` runs): simulates the demo
    preset, builds its GO and co-expression priors, splits, trains PriorGNN and writes a run that
    `evaluate.py RUN --baselines` reports on, figures included."""
    import evaluate

    monkeypatch.chdir(tmp_path)  # the default folders (runs/...) are relative
    assert train.main(["--epochs", "2", "--no-progress", "-q"]) == 0  # epochs only, to keep it short
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name != "sim"]
    assert len(runs) == 1
    run = runs[0]
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "priorgnn" and info["data"]["kind"] == "simulation"
    assert (tmp_path / "runs" / "sim").is_dir()
    for f in ("graphs/go.npz", "graphs/coexpression.npz", "split.json", "predictions/test.h5ad",
              "checkpoints/last.ckpt"):
        assert (run / f).exists(), f
    assert evaluate.main([str(run), "--baselines", "--out", str(tmp_path / "report"), "--quiet"]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "`priorgnn`" in md and "`additive`" in md and "## Fallbacks" in md
    assert list((tmp_path / "report" / "figures").glob("*.png"))


def test_split_gears_simulation_from_the_command_line(tmp_path):
    """--split gears_simulation trains end to end; the run's split equals make_split's cell-gears port."""
    import json

    import train as train_cli
    from priorgnn.data.splits import Split, make_split
    from priorgnn.simulate import simulate

    out = tmp_path / "run"
    assert train_cli.main(["--data", "tiny", "--model", "additive", "--split", "gears_simulation",
                           "--split-seed", "2", "--out", str(out), "--no-progress", "-q"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["split"]["kind"] == "gears_simulation"
    sim = simulate("tiny", seed=0)
    expected = make_split(sim.data.conditions, "gears_simulation", seed=2)
    saved = Split.load(out / "split.json")
    assert sorted(saved.test) == sorted(expected.test) and sorted(saved.train) == sorted(expected.train)
