"""Real cells end to end (the shared copy of PerturBench's devel.h5ad, imported as ``norman2019_subset``),
cell selection with ``--select``, the check that every test condition can be placed before training,
and the files a run records as its inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import train
from knowledge.graph import GeneGraph
from tests._synth import synth_lognorm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "norman2019_subset"
needs_subset = pytest.mark.skipif(not (SHARED / "devel.h5ad").is_file(),
                                  reason="the shared copy of PerturBench's devel.h5ad is not beside the project")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _train(argv, capsys) -> tuple[int, str]:
    status = train.main([*argv, "--no-progress", "-q"])
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def subset_root(tmp_path_factory):
    """A data root holding norman2019_subset, imported from the shared copy by the download command."""
    from priorgnn.data.__main__ import main

    root = tmp_path_factory.mktemp("datasets")
    assert main(["download", "norman2019_subset", "--dest", str(root), "--from-file", str(SHARED / "devel.h5ad")]) == 0
    return root


@needs_subset
def test_train_on_the_imported_subset_by_name(subset_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRIORGNN_DATA_DIR", str(subset_root))
    out = tmp_path / "run"
    status, err = _train(["--data", "norman2019_subset", "--model", "additive", "--split", "combo", "--go", "none",
                          "--out", str(out)], capsys)
    assert status == 0, err
    info = json.loads((out / "run.json").read_text())
    # by name: the K562 cells only (dataset=norman19), as recorded in the run's provenance
    assert info["data"]["load_kwargs"]["select"] == {"dataset": "norman19"}
    src = ad.read_h5ad(SHARED / "devel.h5ad")
    k562 = src.obs[src.obs["dataset"] == "norman19"]
    # by hand: 'control' -> 'ctrl', 'A' -> 'A+ctrl', 'B+A' -> 'A+B' (genes of a double in sorted order)
    expected = {"ctrl" if c == "control" else ("+".join(sorted(c.split("+"))) if "+" in c else f"{c}+ctrl")
                for c in k562["condition"].astype(str)}
    split = json.loads((out / "split.json").read_text())
    assert (set(split["train"]) | set(split["val"]) | set(split["test"])) - {"ctrl"} == expected - {"ctrl"}
    assert len(expected - {"ctrl"}) == 18 + 15  # the shared README: 18 singles and 15 doubles
    # the file the run read is recorded by its path and checksum
    data_rec = next(r for r in info["inputs"] if r["role"] == "data")
    assert data_rec["sha256"] == _sha(SHARED / "devel.h5ad")
    assert data_rec["path"] == str((subset_root / "norman2019_subset" / "devel.h5ad").resolve())


@needs_subset
def test_select_by_path_and_its_errors(tmp_path, capsys):
    path = str(SHARED / "devel.h5ad")
    base = ["--data", path, "--model", "additive", "--split", "combo", "--go", "none", "--allow-unmeasured-perturbations"]
    status, err = _train([*base, "--select", "dataset=norman19", "--out", str(tmp_path / "r")], capsys)
    assert status == 0, err
    cfg = (tmp_path / "r" / "config.yaml").read_text()
    assert "select:" in cfg and "dataset: norman19" in cfg
    status, err = _train([*base, "--select", "datset=norman19", "--out", str(tmp_path / "r2")], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "no obs column 'datset'" in err and "dataset" in err
    status, err = _train([*base, "--select", "dataset=norman", "--out", str(tmp_path / "r3")], capsys)
    assert status == 2 and "valid values: 'mcfaline23', 'norman19'" in err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3" / "run.json").exists()


@needs_subset
def test_readme_separator_mistake_is_named(tmp_path, capsys):
    status, err = _train(["--data", str(SHARED / "devel.h5ad"), "--style", "scperturb", "--separator", "_",
                          "--model", "additive", "--go", "none", "--out", str(tmp_path / "r")], capsys)
    assert status == 2 and "separator '_' never occurs" in err and "'+'" in err


# -- conditions the priors cannot place ----------------------------------------------------------------
@pytest.fixture(scope="module")
def placed(tmp_path_factory):
    """Small data, a simulation split, and a GO ring graph leaving out one gene that is tested unseen."""
    from priorgnn.data import from_anndata
    from priorgnn.data.splits import make_split

    d = tmp_path_factory.mktemp("placed")
    singles = tuple(f"G{i}" for i in range(8))
    doubles = (("G0", "G1"), ("G2", "G3"), ("G4", "G5"), ("G0", "G6"), ("G1", "G7"), ("G2", "G5"))
    a = synth_lognorm(n_genes=30, singles=singles, doubles=doubles, cells=20)
    a.write_h5ad(d / "d.h5ad")
    split = make_split(from_anndata(a).conditions, "simulation", seed=1)
    trained = {g for c in split.train for g in c.split("+")} - {"ctrl"}
    unseen = sorted({g for c in split.test for g in c.split("+")} - trained - {"ctrl"})
    assert unseen, "the split must test an unseen gene"
    lost = unseen[0]
    genes = [f"G{i}" for i in range(30) if f"G{i}" != lost]  # the lost gene has no GO edge at all
    n = len(genes)
    src = np.arange(n)
    GeneGraph(genes, np.stack([np.r_[src, (src + 1) % n], np.r_[(src + 1) % n, src]]), np.ones(2 * n),
              {"kind": "go"}).save(d / "go.npz")
    expected = sorted(c for c in split.test if lost in c.split("+"))
    return d, lost, expected


def test_unplaceable_test_condition_fails_before_training(placed, tmp_path, capsys):
    d, lost, expected = placed
    args = ["--data", str(d / "d.h5ad"), "--model", "priorgnn", "--split", "simulation", "--go", str(d / "go.npz"),
            "--coexpression", "none", "--epochs", "50", "--model-set", "hidden=8", "--out", str(tmp_path / "r")]
    status, err = _train(args, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"'{lost}'" in err and "--allow-prior-free" in err and f"{len(expected)} test condition(s)" in err
    assert not (tmp_path / "r" / "run.json").exists() and not (tmp_path / "r" / "checkpoints").exists()


def test_allow_prior_free_trains_and_marks_them(placed, tmp_path, capsys):
    d, lost, expected = placed
    out = tmp_path / "r"
    args = ["--data", str(d / "d.h5ad"), "--model", "go_knn", "--split", "simulation", "--go", str(d / "go.npz"),
            "--out", str(out), "--allow-prior-free"]
    status, err = _train(args, capsys)
    assert status == 0, err
    pred = ad.read_h5ad(out / "predictions" / "test.h5ad")
    marked = sorted(pred.obs_names[pred.obs["prior_free"].to_numpy(bool)])
    assert marked == expected
    info = json.loads((out / "run.json").read_text())
    assert sorted(info["prior_free_conditions"]) == expected
    assert all(v == [lost] for v in info["prior_free_conditions"].values())
    inputs = {r["role"]: r for r in info["inputs"]}
    assert inputs["data"]["sha256"] == _sha(d / "d.h5ad") and inputs["data"]["given"] == str(d / "d.h5ad")
    assert inputs["priors.go"]["sha256"] == _sha(d / "go.npz")


def test_run_json_names_the_files_given_not_the_cache_entrys(placed, tmp_path, monkeypatch, capsys):
    """Two runs from the same GO table at two paths: the second takes the graph from the cache, and its
    run.json names the second path (the cache entry's first path is kept as ``cached_from``)."""
    d, _, _ = placed
    monkeypatch.setenv("PRIORGNN_CACHE_DIR", str(tmp_path / "cache"))
    table = "gene\tgo_id\n" + "".join(f"G{i}\tGO:{i // 3:07d}\n" for i in range(30))
    first, second = tmp_path / "a" / "go.tsv", tmp_path / "b" / "go.tsv"
    for p in (first, second):
        p.parent.mkdir()
        p.write_text(table)
    infos = []
    for tsv, out in ((first, tmp_path / "r1"), (second, tmp_path / "r2")):
        status, err = _train(["--data", str(d / "d.h5ad"), "--model", "go_knn", "--split", "combo", "--go-tsv", str(tsv),
                              "--out", str(out)], capsys)
        assert status == 0, err
        infos.append(json.loads((out / "run.json").read_text()))
    assert len(list((tmp_path / "cache" / "graphs").rglob("*.npz"))) == 1  # the second run used the cached graph
    src = [s for s in infos[1]["graphs"]["go"]["sources"] if s.get("sha256") == _sha(second)]
    assert src and src[0]["path"] == str(second.resolve()) and src[0]["cached_from"] == str(first)
    given = next(r for r in infos[1]["inputs"] if r["role"] == "priors.go_tsv")
    assert given["path"] == str(second.resolve()) and given["sha256"] == _sha(second)
