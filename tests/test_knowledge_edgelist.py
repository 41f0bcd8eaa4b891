"""Edge-list priors, the graph cache and GeneGraph persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge.cache import cache_path, cached, coexpression, go_graph
from knowledge.edgelist import edge_list_graph, read_edge_list
from knowledge.graph import GeneGraph
from priorgnn.errors import GraphError

FIX = Path(__file__).parent / "fixtures" / "knowledge"
EDGES = FIX / "edges.tsv"


def _edges(graph) -> dict[tuple[str, str], float]:
    return {(s, t): round(float(w), 6) for s, t, w in graph.edge_frame().itertuples(index=False)}


# ---------------------------------------------------------------------------------------------------
# edge lists
# ---------------------------------------------------------------------------------------------------
def test_edge_list_symmetrised_with_self_loops_by_default():
    g = read_edge_list(EDGES)
    assert g.genes == ["A", "B", "C", "D"]
    # A->B appears twice (0.5, 0.7): merged to the largest; every edge also runs backwards
    assert _edges(g) == {
        ("A", "B"): 0.7, ("B", "A"): 0.7, ("B", "C"): 2.0, ("C", "B"): 2.0, ("C", "A"): 1.0,
        ("A", "C"): 1.0, ("D", "D"): 3.0, ("A", "A"): 1.0, ("B", "B"): 1.0, ("C", "C"): 1.0,
    }
    assert g.provenance["kind"] == "edgelist" and len(g.provenance["sources"][0]["sha256"]) == 64


def test_edge_list_directed_without_added_loops():
    g = read_edge_list(EDGES, directed=True, self_loops=False)
    assert _edges(g) == {("A", "B"): 0.7, ("B", "C"): 2.0, ("C", "A"): 1.0, ("D", "D"): 3.0}
    assert g.provenance["params"]["directed"] is True


def test_edge_list_default_weight_gene_list_and_columns(tmp_path):
    ppi = tmp_path / "ppi.txt"
    ppi.write_text("protein1 protein2 combined_score\nA B 900\nB C 400\nC Z 100\n")
    g = read_edge_list(ppi, sep=" ", source_column="protein1", target_column="protein2",
                       weight_column="combined_score", genes=["C", "B", "A"], self_loops=False)
    assert g.genes == ["C", "B", "A"]
    assert _edges(g) == {("A", "B"): 900, ("B", "A"): 900, ("B", "C"): 400, ("C", "B"): 400}
    assert g.provenance["n_edges_outside_genes"] == 1
    unweighted = read_edge_list(ppi, sep=" ", source_column="protein1", target_column="protein2",
                                weight_column=None, default_weight=0.5, directed=True, self_loops=False)
    assert set(_edges(unweighted).values()) == {0.5}


@pytest.mark.parametrize("text, message", [
    ("from\tto\nA\tB\n", "no column"),
    ("source\ttarget\tweight\nA\tB\t0.5\nB\t\t1\n", r"empty gene name\(s\) at line\(s\) \[3\]"),
    ("source\ttarget\tweight\nA\tB\t0.5\nB\tC\tstrong\nC\tA\tinf\n", r"not finite numbers at line\(s\) \[3, 4\]"),
    ("source\ttarget\n", "no rows"),
])
def test_edge_list_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(GraphError, match=message):
        read_edge_list(path)


def test_edge_list_from_python_lists():
    g = edge_list_graph(["x", "y"], ["y", "z"], [0.2, 0.4], directed=True)
    assert _edges(g) == {("x", "y"): 0.2, ("y", "z"): 0.4, ("x", "x"): 1.0, ("y", "y"): 1.0, ("z", "z"): 1.0}
    with pytest.raises(GraphError, match="finite"):
        edge_list_graph(["x"], ["y"], [float("nan")])


# ---------------------------------------------------------------------------------------------------
# GeneGraph persistence and alignment
# ---------------------------------------------------------------------------------------------------
def test_graph_round_trip_without_pickle_and_align(tmp_path):
    g = read_edge_list(EDGES)
    path = g.save(tmp_path / "g.npz")
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert set(npz.files) == {"edge_index", "edge_weight"}
    back = GeneGraph.load(path)
    assert back.genes == g.genes and back.provenance == g.provenance
    np.testing.assert_array_equal(back.edge_index, g.edge_index)
    aligned, report = back.align(["C", "A", "E"], self_loops=True)
    assert aligned.genes == ["C", "A", "E"]
    assert report.missing == ["E"] and report.n_annotated == 2
    assert _edges(aligned)[("E", "E")] == 1.0 and _edges(aligned)[("A", "C")] == 1.0
    ei, ew = aligned.to_torch()
    assert tuple(ei.shape) == (2, aligned.n_edges) and str(ew.dtype) == "torch.float32"


# ---------------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------------
def test_cache_builds_once_and_rebuilds_corrupt_entries():
    calls = []

    def build():
        calls.append(1)
        return read_edge_list(EDGES)

    parts = {"test": "cache-once", "k": 1}
    a = cached("unit", parts, build)
    b = cached("unit", parts, build)
    assert len(calls) == 1
    np.testing.assert_array_equal(a.edge_index, b.edge_index)
    assert b.provenance["cache_key"] == a.provenance["cache_key"]
    cached("unit", {**parts, "k": 2}, build)  # other parameters: another entry
    assert len(calls) == 2
    path = cache_path("unit", a.provenance["cache_key"])
    path.write_bytes(path.read_bytes()[:40])  # truncate the arrays
    c = cached("unit", parts, build)
    assert len(calls) == 3 and c.n_edges == a.n_edges
    meta = path.with_suffix(".json")
    meta.write_text(meta.read_text().replace(a.provenance["cache_key"], "0" * 64))  # wrong key
    cached("unit", parts, build)
    assert len(calls) == 4
    cached("unit", parts, build, refresh=True)
    assert len(calls) == 5


def test_go_graph_cache_follows_file_content_and_parameters(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text((FIX / "tiny_gene2go.tsv").read_text())
    first = go_graph(tsv=tsv)
    assert go_graph(tsv=tsv).provenance["cache_key"] == first.provenance["cache_key"]
    assert go_graph(tsv=tsv, k=1).provenance["cache_key"] != first.provenance["cache_key"]
    tsv.write_text(tsv.read_text() + "B\tGO:0000021\n")  # same name, new content
    changed = go_graph(tsv=tsv)
    assert changed.provenance["cache_key"] != first.provenance["cache_key"]
    assert changed.n_edges != first.n_edges
    gaf = go_graph(obo=FIX / "tiny.obo", gaf=FIX / "tiny.gaf", namespaces=["BP"])
    assert gaf.provenance["annotation_params"]["namespaces"] == ["BP"]
    with pytest.raises(GraphError, match="exactly one annotation source"):
        go_graph(tsv=tsv, gene2go=FIX / "gene2go_protocol2.pkl")


def test_coexpression_cache_key_covers_the_split():
    from priorgnn.data import from_anndata
    from priorgnn.data.splits import Split
    from tests._synth import synth_lognorm

    data = from_anndata(synth_lognorm(n_genes=20, seed=1))
    s1 = Split(kind="custom", seed=0, train=["ctrl", "G0+ctrl", "G1+ctrl"], val=[], test=["G2+ctrl"])
    s2 = Split(kind="custom", seed=0, train=["ctrl", "G0+ctrl", "G2+ctrl"], val=[], test=["G1+ctrl"])
    a, b = coexpression(data, s1, k=3), coexpression(data, s2, k=3)
    assert a.provenance["cache_key"] != b.provenance["cache_key"]
    again = coexpression(data, s1, k=3)
    np.testing.assert_array_equal(again.edge_weight, a.edge_weight)
