"""``python -m knowledge``: the command line."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from knowledge.cli import main
from knowledge.graph import GeneGraph

FIX = Path(__file__).parent / "fixtures" / "knowledge"
ROOT = Path(__file__).resolve().parents[1]


def test_build_go_from_each_source_gives_the_same_graph(tmp_path, capsys):
    outs = {}
    for name, args in {
        "gaf": ["--obo", str(FIX / "tiny.obo"), "--gaf", str(FIX / "tiny.gaf")],
        "pkl": ["--gene2go", str(FIX / "gene2go_protocol2.pkl")],
        "tsv": ["--tsv", str(FIX / "tiny_gene2go.tsv")],
    }.items():
        genes = tmp_path / "genes.txt"
        genes.write_text("# the nodes\nA\nB\nC\nD\n")
        out = tmp_path / f"{name}.npz"
        assert main(["build-go", *args, "--genes", str(genes), "--out", str(out), "--k", "2", "-q"]) == 0
        outs[name] = GeneGraph.load(out)
    assert "wrote" in capsys.readouterr().out
    for g in outs.values():
        assert g.genes == ["A", "B", "C", "D"]
        np.testing.assert_array_equal(g.edge_index, outs["tsv"].edge_index)
        np.testing.assert_array_equal(g.edge_weight, outs["tsv"].edge_weight)
    assert outs["gaf"].provenance["params"] == {"k": 2, "threshold": 0.1}


def test_build_go_gaf_filters_and_info(tmp_path, capsys):
    out = tmp_path / "go.npz"
    code = main(["build-go", "--obo", str(FIX / "tiny.obo"), "--gaf", str(FIX / "tiny.gaf"), "--out", str(out),
                 "--namespace", "BP", "--evidence", "Experimental", "--propagate", "--part-of", "--no-cache", "-q"])
    assert code == 0
    params = GeneGraph.load(out).provenance["annotation_params"]
    assert params["namespaces"] == ["BP"] and params["propagate_relations"] == ["is_a", "part_of"]
    keep_all = tmp_path / "all.npz"
    assert main(["build-go", "--obo", str(FIX / "tiny.obo"), "--gaf", str(FIX / "tiny.gaf"), "--out", str(keep_all),
                 "--exclude-evidence", "none", "-q"]) == 0
    assert "E" in GeneGraph.load(keep_all).genes  # annotated with evidence ND only
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert "go graph:" in text and '"propagate": true' in text and "source: gaf" in text


def test_build_edgelist_degrade_and_info(tmp_path, capsys):
    g = tmp_path / "ppi.npz"
    assert main(["build-edgelist", "--tsv", str(FIX / "edges.tsv"), "--out", str(g), "-q"]) == 0
    for op, extra in [("dropout", ["--frac", "0.5"]), ("rewire", []), ("permute", []), ("random", []), ("empty", [])]:
        out = tmp_path / f"{op}.npz"
        assert main(["degrade", "--graph", str(g), "--op", op, *extra, "--seed", "1", "--out", str(out), "-q"]) == 0
        d = GeneGraph.load(out)
        assert d.provenance["operation"]["name"] == op and d.genes == GeneGraph.load(g).genes
    capsys.readouterr()
    assert main(["info", str(tmp_path / "dropout.npz")]) == 0
    assert "derived by: dropout" in capsys.readouterr().out


def test_build_coexpression_from_files(tmp_path):
    from priorgnn.io import write_h5ad
    from priorgnn.data.splits import Split
    from tests._synth import synth_lognorm

    h5ad = tmp_path / "data.h5ad"
    write_h5ad(h5ad, synth_lognorm(n_genes=20, seed=2))
    split = Split(kind="custom", seed=0, train=["ctrl", "G0+ctrl", "G1+ctrl", "G2+ctrl", "G0+G1"],
                  val=["G3+ctrl"], test=["G4+ctrl", "G5+ctrl", "G2+G3", "G0+G4", "G1+G5"])
    split.save(tmp_path / "split.json")
    out = tmp_path / "co.npz"
    assert main(["build-coexpression", "--data", str(h5ad), "--split", str(tmp_path / "split.json"),
                 "--out", str(out), "--k", "3", "--singles-only", "-q"]) == 0
    g = GeneGraph.load(out)
    assert g.kind == "coexpression" and g.n_nodes == 20
    assert g.provenance["params"]["include_combinations"] is False
    # --data also gives build-go its node list (read without loading the matrix)
    tsv = tmp_path / "g2go.tsv"
    tsv.write_text("G0\tGO:0000001\nG1\tGO:0000001\nG5\tGO:0000002\nNOT_MEASURED\tGO:0000001\n")
    out2 = tmp_path / "go.npz"
    assert main(["build-go", "--tsv", str(tsv), "--data", str(h5ad), "--out", str(out2), "-q"]) == 0
    go = GeneGraph.load(out2)
    assert go.genes == [f"G{i}" for i in range(20)]
    assert set(map(tuple, go.edge_frame()[["source", "target"]].to_numpy())) == {
        ("G0", "G0"), ("G1", "G1"), ("G0", "G1"), ("G1", "G0"), ("G5", "G5")}


@pytest.mark.parametrize("argv, message", [
    (["build-go", "--gaf", "x.gaf", "--out", "o.npz"], "needs the ontology too"),
    (["build-go", "--tsv", "missing.tsv", "--out", "o.npz"], "not found"),
    (["info", "missing.npz"], "graph not found"),
    (["degrade", "--graph", "g.npz", "--op", "rewire", "--seed", "0", "--frac", "0.1", "--out", "o.npz"], ""),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "degrade":
        GeneGraph(["a", "b"], np.array([[0], [1]]), np.ones(1), {}).save(tmp_path / "g.npz")
        message = "--frac applies to dropout only"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    from priorgnn.errors import PriorGNNError

    with pytest.raises(PriorGNNError):
        main(["info", str(tmp_path / "missing.npz"), "--debug"])


def test_download_go_is_dispatched_lazily(monkeypatch):
    seen = {}

    def fake_main(argv, prog=None):
        seen.update(argv=argv, prog=prog)
        return 0

    monkeypatch.setitem(sys.modules, "knowledge.download", types.SimpleNamespace(main=fake_main))
    assert main(["download-go", "--dest", "somewhere", "--force"]) == 0
    assert seen == {"argv": ["--dest", "somewhere", "--force"], "prog": "python -m knowledge download-go"}


def test_download_go_missing_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "knowledge.download", None)  # import fails as if absent
    assert main(["download-go"]) == 2
    err = capsys.readouterr().err
    assert "download-go is not available" in err and "--obo/--gaf" in err


def test_module_entry_point(tmp_path):
    help_run = subprocess.run([sys.executable, "-m", "knowledge", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert help_run.returncode == 0
    for command in ("build-go", "build-coexpression", "build-edgelist", "degrade", "info", "download-go"):
        assert command in help_run.stdout
    bad = subprocess.run([sys.executable, "-m", "knowledge", "info", str(tmp_path / "none.npz")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
