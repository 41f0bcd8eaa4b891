"""GO annotations (OBO + GAF, gene2go pickle, TSV) and the GEARS GO graph."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from knowledge.go import (
    GoAnnotations,
    build_go_graph,
    pairwise_jaccard,
    read_data_pickle,
    read_gaf,
    read_gene2go_pickle,
    read_go_tsv,
    read_obo,
    subset_go_files,
)
from priorgnn.errors import GraphError

FIX = Path(__file__).parent / "fixtures" / "knowledge"
OBO, GAF = FIX / "tiny.obo", FIX / "tiny.gaf"
TSV, PKL2 = FIX / "tiny_gene2go.tsv", FIX / "gene2go_protocol2.pkl"
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "go"
REAL_OBO, REAL_GAF = REAL / "go-basic.obo.gz", REAL / "goa_human.gaf.gz"
needs_real = pytest.mark.skipif(
    not (REAL_OBO.exists() and REAL_GAF.exists()),
    reason="the real GO files (../shared/data/go beside the project) are not on this machine",
)

#: The four genes of the fixtures and their GO terms (written out independently of the files).
TERMS = {
    "A": {"GO:0000003", "GO:0000005", "GO:0000011"},
    "B": {"GO:0000003", "GO:0000005"},
    "C": {"GO:0000003", "GO:0000021"},
    "D": {"GO:0000004", "GO:0000021", "GO:0000011"},
}
#: Jaccard indices computed by hand from TERMS: |a & b| / |a | b|.
HAND = {
    ("A", "B"): Fraction(2, 3), ("A", "C"): Fraction(1, 4), ("A", "D"): Fraction(1, 5),
    ("B", "C"): Fraction(1, 3), ("B", "D"): Fraction(0), ("C", "D"): Fraction(1, 4),
}


def _jac(a: str, b: str) -> float:
    return 1.0 if a == b else float(HAND.get((a, b), HAND.get((b, a))))


def _edges(graph) -> dict[tuple[str, str], float]:
    return {(s, t): float(w) for s, t, w in graph.edge_frame().itertuples(index=False)}


# ---------------------------------------------------------------------------------------------------
# reading annotations
# ---------------------------------------------------------------------------------------------------
def test_gaf_default_filters_drop_nd_not_and_map_alt_ids():
    ann = read_gaf(GAF, OBO)
    assert {g: set(t) for g, t in ann.gene2go.items() if g in TERMS} == TERMS
    assert "E" not in ann.gene2go  # its only annotation has evidence ND
    assert "F" not in ann.gene2go  # NOT-qualified
    assert ann.gene2go["G"] == {"GO:0000005"}  # IEA is kept by default
    # H: an alternative id maps to its primary term, an obsolete term is dropped
    assert ann.gene2go["H"] == {"GO:0000002"}
    roles = [s["role"] for s in ann.sources]
    assert roles == ["gaf", "obo"] and all(len(s["sha256"]) == 64 for s in ann.sources)


def test_gaf_namespace_and_evidence_filters():
    bp = read_gaf(GAF, OBO, namespaces=["BP"])
    assert bp.gene2go["A"] == {"GO:0000003", "GO:0000005"}
    assert "GO:0000021" not in set().union(*bp.gene2go.values())
    cc = read_gaf(GAF, OBO, namespaces="CC")
    assert set(cc.gene2go) == {"C", "D"}
    exp = read_gaf(GAF, OBO, evidence=["Experimental"])  # goatools group: EXP IDA IPI IMP IGI IEP
    assert exp.gene2go["A"] == {"GO:0000003", "GO:0000011"}  # TAS dropped
    assert exp.gene2go["B"] == {"GO:0000003", "GO:0000005"}  # GO:5 also has IDA
    assert "G" not in exp.gene2go  # IEA only
    no_iea = read_gaf(GAF, OBO, exclude_evidence=["ND", "IEA"])
    assert "G" not in no_iea.gene2go and no_iea.gene2go["B"] == TERMS["B"]
    keep_nd = read_gaf(GAF, OBO, exclude_evidence=[])
    assert keep_nd.gene2go["E"] == {"GO:0000010"}
    with pytest.raises(GraphError, match="unknown evidence code"):
        read_gaf(GAF, OBO, evidence=["XYZ"])
    with pytest.raises(GraphError, match="namespace"):
        read_gaf(GAF, OBO, namespaces=["XX"])


def test_gaf_propagation_over_is_a_and_optionally_part_of():
    isa = read_gaf(GAF, OBO, propagate=True)
    # A: 3 (is_a 2 is_a 1), 5 (is_a 1), 11 (is_a 10)
    assert isa.gene2go["A"] == TERMS["A"] | {"GO:0000002", "GO:0000001", "GO:0000010"}
    # D: 4 is_a 1 (its part_of edge to 3 is not followed), 21 is_a 20, 11 is_a 10
    assert isa.gene2go["D"] == TERMS["D"] | {"GO:0000001", "GO:0000020", "GO:0000010"}
    partof = read_gaf(GAF, OBO, propagate=True, relationships=["part_of"])
    assert partof.gene2go["D"] == isa.gene2go["D"] | {"GO:0000003", "GO:0000002"}
    # regulates is never followed: G is annotated to 5, which regulates 4
    assert partof.gene2go["G"] == {"GO:0000005", "GO:0000001"}
    assert partof.params["propagate_relations"] == ["is_a", "part_of"]
    with pytest.raises(GraphError, match="needs the ontology"):
        read_gaf(GAF, None, propagate=True)
    with pytest.raises(GraphError, match="is_a and part_of only"):
        read_gaf(GAF, OBO, propagate=True, relationships=["regulates"])


def test_gaf_and_obo_read_gzip_and_gene_ids(tmp_path):
    gz_gaf, gz_obo = tmp_path / "a.gaf.gz", tmp_path / "o.obo.gz"
    gz_gaf.write_bytes(gzip.compress(GAF.read_bytes()))
    gz_obo.write_bytes(gzip.compress(OBO.read_bytes()))
    assert read_gaf(gz_gaf, gz_obo).gene2go == read_gaf(GAF, OBO).gene2go
    by_id = read_gaf(GAF, OBO, gene_id="id")
    assert by_id.gene2go["100"] == TERMS["A"]


def test_gaf_version_1_has_15_columns(tmp_path):
    lines = GAF.read_text().splitlines()
    old = [line if line.startswith("!") else "\t".join(line.split("\t")[:15]) for line in lines]
    old[0] = "!gaf-version: 1.0"
    gaf = tmp_path / "old.gaf"
    gaf.write_text("\n".join(old) + "\n")
    ann = read_gaf(gaf, OBO)
    assert ann.params["format"] == "gaf-1.0" and ann.gene2go == read_gaf(GAF, OBO).gene2go
    future = tmp_path / "future.gaf"
    future.write_text(GAF.read_text().replace("!gaf-version: 2.2", "!gaf-version: 3.0"))
    with pytest.raises(GraphError, match="unsupported GAF version '3.0'"):
        read_gaf(future, OBO)


def test_gaf_input_file_is_left_untouched(tmp_path):
    gaf = tmp_path / "copy.gaf"
    shutil.copy(GAF, gaf)
    read_gaf(gaf, OBO)
    assert gaf.read_bytes() == GAF.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.gaf"]


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f[:-1], "16 tab-separated columns, expected 17"),
    (lambda f: f + ["extra"], "18 tab-separated columns"),
    (lambda f: f[:4] + ["GO:12"] + f[5:], "not of the form GO:0000000"),
    (lambda f: f[:8] + ["X"] + f[9:], "aspect 'X'"),
    (lambda f: f[:13] + ["2000-01-01"] + f[14:], "not a valid YYYYMMDD date"),
    (lambda f: f[:12] + ["9606"] + f[13:], "taxon '9606'"),
])
def test_gaf_malformed_line_is_reported_with_its_number(tmp_path, mutate, message):
    lines = GAF.read_text().splitlines()
    bad_at = 6  # a data line (1-based)
    lines[bad_at - 1] = "\t".join(mutate(lines[bad_at - 1].split("\t")))
    gaf = tmp_path / "bad.gaf"
    gaf.write_text("\n".join(lines) + "\n")
    with pytest.raises(GraphError, match=rf"line {bad_at}: .*{message}") as err:
        read_gaf(gaf, OBO)
    assert "bad.gaf" in str(err.value)


def test_gaf_errors_for_missing_or_empty_files(tmp_path):
    with pytest.raises(GraphError, match="not found"):
        read_gaf(tmp_path / "nope.gaf", OBO)
    empty = tmp_path / "empty.gaf"
    empty.write_text("!gaf-version: 2.2\n")
    with pytest.raises(GraphError, match="no annotation lines"):
        read_gaf(empty, OBO)
    truncated = tmp_path / "t.gaf.gz"
    truncated.write_bytes(gzip.compress(GAF.read_bytes())[:-30])
    with pytest.raises(GraphError, match="truncated"):
        read_gaf(truncated, OBO)


def test_obo_cycle_is_detected_and_named(tmp_path):
    text = OBO.read_text().replace(
        "id: GO:0000001\nname: root process\nnamespace: biological_process\n",
        "id: GO:0000001\nname: root process\nnamespace: biological_process\nis_a: GO:0000003\n",
    )
    bad = tmp_path / "cycle.obo"
    bad.write_text(text)
    with pytest.raises(GraphError, match="cycle") as err:
        read_obo(bad)
    for term in ("GO:0000001", "GO:0000002", "GO:0000003"):
        assert term in str(err.value)


@pytest.mark.parametrize("line, culprit", [
    ("is_a: GO:0009999 ! nowhere", "GO:0009999"),
    ("relationship: part_of GO:0009998 ! nowhere", "GO:0009998"),
    ("is_a: GO:0000099 ! the obsolete term", "GO:0000099"),
])
def test_obo_unknown_parent_is_named(tmp_path, line, culprit):
    text = OBO.read_text().replace("id: GO:0000005\n", f"id: GO:0000005\n{line}\n")
    bad = tmp_path / "unknown.obo"
    bad.write_text(text)
    with pytest.raises(GraphError, match=rf"GO:0000005 \w+ {culprit}"):
        read_obo(bad)


def test_obo_without_terms_is_refused(tmp_path):
    bad = tmp_path / "x.obo"
    bad.write_text("format-version: 1.2\n")
    with pytest.raises(GraphError, match="no \\[Term\\]"):
        read_obo(bad)


def test_subset_keeps_the_genes_lines_and_the_terms_they_reach(tmp_path):
    """Genes D and H of the fixture: D's terms reach 0000004 -> (is_a) 0000001 and (part_of) 0000003 ->
    0000002 -> 0000001, 0000021 -> 0000020, 0000011 -> 0000010; H's alternative id 0000098 stands for
    0000002, its obsolete 0000099 is left out. Nothing of A, B, C, E, F, G."""
    obo, gaf = tmp_path / "s.obo", tmp_path / "s.gaf"
    counts = subset_go_files(OBO, GAF, ["D", "H", "nobody"], obo, gaf, note=["a subset"])
    want_terms = {"GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004", "GO:0000010", "GO:0000011",
                  "GO:0000020", "GO:0000021"}
    assert counts == {"n_lines": 5, "n_genes": 2, "n_terms": len(want_terms)}
    text = obo.read_text(encoding="utf-8")
    assert {ln[4:] for ln in text.splitlines() if ln.startswith("id: GO:")} == want_terms
    assert text.startswith("format-version: 1.2\n") and "[Typedef]\nid: part_of" in text
    src = GAF.read_text(encoding="utf-8").splitlines(keepends=True)
    out = gaf.read_text(encoding="utf-8").splitlines(keepends=True)
    assert out == [ln for ln in src if ln.startswith("!")] + ["! a subset\n"] + [
        ln for ln in src if not ln.startswith("!") and ln.split("\t")[2] in ("D", "H")]
    # read back, the subset gives D and H exactly their annotations in the whole files, propagated or not
    for kw in ({}, {"propagate": True, "relationships": ["part_of"]}):
        assert read_gaf(gaf, obo, **kw).gene2go == read_gaf(GAF, OBO, **kw).restrict(["D", "H"]).gene2go
    with pytest.raises(GraphError, match="none of the 1 genes"):
        subset_go_files(OBO, GAF, ["nobody"], obo, gaf)


def test_tsv_and_gene2go_pickle_give_the_same_annotations(tmp_path):
    tsv = read_go_tsv(TSV)
    assert {g: set(t) for g, t in tsv.gene2go.items()} == TERMS
    assert read_gene2go_pickle(PKL2).gene2go == tsv.gene2go  # protocol-2 pickle: sets via set()
    out = tsv.to_gene2go_pickle(tmp_path / "gene2go_all.pkl")
    # a plain dict of sets (what GEARS unpickles), read back through the restricted reader
    assert {g: set(t) for g, t in read_gene2go_pickle(out).gene2go.items()} == TERMS
    assert read_gene2go_pickle(out).gene2go == tsv.gene2go
    assert read_go_tsv(tsv.to_tsv(tmp_path / "round.tsv")).gene2go == tsv.gene2go


def test_tsv_malformed_lines_are_named(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("gene\tgo_id\nA\tGO:0000001\nB\tGO:1\nC\tGO:0000002\textra\n")
    with pytest.raises(GraphError, match=r"line 3: .*not a GO id.*line 4: 3 tab-separated columns"):
        read_go_tsv(bad)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_gene2go_reader_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "gene2go_all.pkl"
    evil.write_bytes(pickle.dumps({"A": {"GO:0000001"}, "B": _Exploit(marker)}))
    with pytest.raises(GraphError, match="refused to unpickle .*(posix|os)\\.system"):
        read_gene2go_pickle(evil)
    assert not marker.exists()


def test_read_data_pickle_reads_plain_data_of_every_protocol_and_runs_no_code(tmp_path):
    data = {"a": [1, 2.5, "x"], "b": ("y", None), "c": {"GO:1"}, "d": frozenset({"z"})}
    path = tmp_path / "d.pkl"
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        assert read_data_pickle(path) == data
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps([_Exploit(marker)]))
    with pytest.raises(pickle.UnpicklingError, match="(posix|os)\\.system"):
        read_data_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload, message", [
    (["A", "GO:0000001"], "not a dict"),
    ({"A": "GO:0000001"}, "not gene symbol -> set"),
    ({"A": {"not-a-go-id"}}, "are not GO ids"),
    ({"A": {1, 2}}, "not gene symbol -> set"),
])
def test_gene2go_reader_refuses_other_structures(tmp_path, payload, message):
    path = tmp_path / "g.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(GraphError, match=message):
        read_gene2go_pickle(path)


def test_gene2go_reader_refuses_numpy_objects(tmp_path):
    path = tmp_path / "g.pkl"
    path.write_bytes(pickle.dumps({"A": np.array(["GO:0000001"])}))
    with pytest.raises(GraphError, match="refused to unpickle .*numpy"):
        read_gene2go_pickle(path)
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(GraphError):
        read_gene2go_pickle(path)


# ---------------------------------------------------------------------------------------------------
# the GO graph
# ---------------------------------------------------------------------------------------------------
def test_go_graph_weights_are_the_hand_computed_jaccard_indices():
    graph = build_go_graph(read_go_tsv(TSV), k=20, threshold=0.1)
    assert graph.genes == ["A", "B", "C", "D"]
    edges = _edges(graph)
    expected = {(s, t): _jac(s, t) for s in TERMS for t in TERMS if _jac(s, t) > 0.1}
    assert set(edges) == set(expected)  # B-D (0) is absent, everything else present, self included
    for e, w in expected.items():
        assert edges[e] == pytest.approx(w, abs=1e-7)
    assert graph.edge_weight.dtype == np.float32 and graph.edge_index.dtype == np.int64


def test_pairwise_jaccard_is_the_hand_computed_matrix():
    sets = [{"GO:1", "GO:2", "GO:3"}, {"GO:2", "GO:3", "GO:4", "GO:5"}, {"GO:6"}, set()]
    # |{1,2,3} & {2,3,4,5}| = 2, |union| = 5; the third shares nothing; an empty set has index 0
    expected = np.array([[1.0, 2 / 5, 0.0, 0.0],
                         [2 / 5, 1.0, 0.0, 0.0],
                         [0.0, 0.0, 1.0, 0.0],
                         [0.0, 0.0, 0.0, 0.0]])
    got = pairwise_jaccard(sets)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    assert pairwise_jaccard([["GO:1", "GO:1"], ["GO:1", "GO:2"]])[0, 1] == 0.5  # an element counts once
    assert pairwise_jaccard([]).shape == (0, 0)
    # exactly Python's len(a & b) / len(a | b), pair by pair
    rng = np.random.default_rng(0)
    many = [{f"GO:{t}" for t in rng.choice(12, size=rng.integers(1, 8), replace=False)} for _ in range(20)]
    m = pairwise_jaccard(many)
    for i, a in enumerate(many):
        for j, b in enumerate(many):
            assert m[i, j] == len(a & b) / len(a | b)


def test_go_graph_threshold_is_strict_and_k_counts_neighbours_besides_self():
    ann = read_go_tsv(TSV)
    edges = _edges(build_go_graph(ann, threshold=0.25))
    assert ("A", "C") not in edges and ("C", "D") not in edges  # exactly 1/4: not > 0.25
    assert ("B", "C") in edges and ("A", "D") not in edges
    k1 = _edges(build_go_graph(ann, k=1))
    # each target keeps itself and its single most similar gene (source -> target)
    assert set(k1) == {("A", "A"), ("B", "A"), ("B", "B"), ("A", "B"), ("C", "C"), ("B", "C"),
                       ("D", "D"), ("C", "D")}
    k0 = _edges(build_go_graph(ann, k=0))
    assert set(k0) == {(g, g) for g in TERMS}


def test_go_graph_ties_at_the_cut_off_follow_gene_order():
    ann = read_go_tsv(TSV)
    # target C: itself (1), B (1/3), then A and D tie at 1/4; with k=2 the first listed wins
    forward = _edges(build_go_graph(ann, ["A", "B", "C", "D"], k=2))
    assert ("A", "C") in forward and ("D", "C") not in forward
    backward = _edges(build_go_graph(ann, ["D", "C", "B", "A"], k=2))
    assert ("D", "C") in backward and ("A", "C") not in backward


def test_go_graph_gene_list_sets_nodes_and_scope():
    ann = read_go_tsv(TSV)
    graph = build_go_graph(ann, ["D", "X", "A", "C"])  # X has no annotation
    assert graph.genes == ["D", "X", "A", "C"]
    edges = _edges(graph)
    assert not any("X" in e for e in edges)
    assert not any("B" in e for e in edges)  # only listed genes take part
    assert edges[("A", "D")] == pytest.approx(0.2)
    _, report = graph.align(["A", "B", "C", "D", "X"])
    assert report.missing == ["B"] and report.n_unannotated == 2  # B (not a node) and X
    with pytest.raises(GraphError, match="none of the 2 genes"):
        build_go_graph(ann, ["X", "Y"])


def test_go_graph_chunking_does_not_change_the_result(rng):
    terms = [f"GO:{i:07d}" for i in range(40)]
    gene2go = {f"g{i}": set(rng.choice(terms, size=rng.integers(1, 8), replace=False)) for i in range(150)}
    for i in range(150):
        if i % 5:  # a frequent term (on 120 genes): counted by the dense product, the rest sparse
            gene2go[f"g{i}"].add("GO:9999999")
    full = build_go_graph(gene2go, k=5, chunk_size=10_000)
    for chunk in (1, 7, 64):
        part = build_go_graph(gene2go, k=5, chunk_size=chunk)
        np.testing.assert_array_equal(part.edge_index, full.edge_index)
        np.testing.assert_array_equal(part.edge_weight, full.edge_weight)
    # against a direct pairwise computation of GEARS's rule
    genes = sorted(gene2go)
    expected = set()
    for t in genes:
        scores = [(len(gene2go[s] & gene2go[t]) / len(gene2go[s] | gene2go[t]), -j, s) for j, s in enumerate(genes)]
        kept = sorted([x for x in scores if x[0] > 0.1], reverse=True)[:6]
        expected |= {(s, t) for _, _, s in kept}
    assert set(_edges(full)) == expected


def test_go_graph_provenance_records_sources_and_parameters():
    ann = read_gaf(GAF, OBO)
    graph = build_go_graph(ann, k=3, threshold=0.2)
    prov = graph.provenance
    assert prov["kind"] == "go" and prov["params"] == {"k": 3, "threshold": 0.2}
    assert [s["role"] for s in prov["sources"]] == ["gaf", "obo"]
    assert prov["annotation_params"]["exclude_evidence"] == ["ND"]


# ---------------------------------------------------------------------------------------------------
# the real GO files (beside the project)
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def human_go():
    """The human annotations with the default filters, read once per session (about 10 s)."""
    if not (REAL_OBO.exists() and REAL_GAF.exists()):
        pytest.skip("the real GO files (../shared/data/go beside the project) are not on this machine")
    dag = read_obo(REAL_OBO)
    return dag, read_gaf(REAL_GAF, dag)


def _direct_parse(path: Path) -> dict[str, set[str]]:
    """The GAF's symbol -> GO ids without ND or NOT, parsed directly (not through goatools)."""
    out: dict[str, set[str]] = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith("!"):
                continue
            f = line.rstrip("\n").split("\t")
            if f[6] != "ND" and "NOT" not in f[3].upper().split("|"):
                out.setdefault(f[2], set()).add(f[4])
    return out


@needs_real
def test_real_annotations_match_a_direct_parse(human_go):
    dag, ann = human_go
    assert len(dag) >= 43_000
    direct = _direct_parse(REAL_GAF)
    assert len(ann) == len(direct) == 20_692
    assert {g: set(t) for g, t in ann.gene2go.items()} == direct


@needs_real
@pytest.mark.reference
@pytest.mark.filterwarnings("ignore:DataFrameGroupBy.apply operated on the grouping columns:FutureWarning")
def test_go_graph_reproduces_cell_gears_make_go(human_go, tmp_path, monkeypatch):
    gears_utils = pytest.importorskip("gears.utils")
    _, ann = human_go
    rng = np.random.default_rng(7)
    genes = [str(g) for g in rng.choice(ann.genes, size=300, replace=False)]
    data_dir = tmp_path / "gears_data"
    ann.restrict(genes).to_gene2go_pickle(data_dir / "gene2go_all.pkl", genes=genes)
    monkeypatch.chdir(tmp_path)  # make_GO looks for ./data/go_essential_<name>.csv first
    k = 20
    df = gears_utils.make_GO(str(data_dir), genes, "knowledge_test", num_workers=2, save=False)
    ref = df.groupby("target").apply(lambda x: x.nlargest(k + 1, ["importance"])).reset_index(drop=True)
    ours = build_go_graph(read_gene2go_pickle(data_dir / "gene2go_all.pkl"), genes, k=k, threshold=0.1)
    theirs = {(s, t): w for s, t, w in ref[["source", "target", "importance"]].itertuples(index=False)}
    mine = _edges(ours)
    # ties aside: drop edges whose weight equals the cut-off weight of their target
    cut = {t: min(w for (s2, t2), w in theirs.items() if t2 == t) for t in {t for _, t in theirs}}

    def untied(edges):
        return {e for e, w in edges.items() if not np.isclose(w, cut.get(e[1], -1.0), atol=1e-6)}

    assert untied(mine) == untied(theirs)
    assert len(theirs) > 5 * len(genes)
    for e in set(mine) & set(theirs):
        assert mine[e] == pytest.approx(theirs[e], abs=1e-6)
    # with the same gene order, ties are broken the same way too
    assert set(mine) == set(theirs)


@needs_real
@pytest.mark.slow
def test_real_go_graph_for_all_annotated_genes(human_go):
    _, ann = human_go
    graph = build_go_graph(ann)
    assert graph.n_nodes == len(ann)
    assert graph.in_degree().max() == 21
    assert graph.edge_weight.min() > 0.1 and graph.edge_weight.max() <= 1.0
    assert graph.annotated().mean() > 0.9


def test_annotations_restrict_and_hash():
    ann = GoAnnotations({"A": {"GO:0000001"}, "B": {"GO:0000002"}, "C": set()})
    assert ann.genes == ["A", "B"]  # empty sets are not stored
    assert ann.restrict(["B", "Z"]).genes == ["B"]
    assert ann.content_hash == GoAnnotations({"B": {"GO:0000002"}, "A": {"GO:0000001"}}).content_hash


def test_select_top_k_matches_gears_rule_on_random_ties(rng):
    from knowledge._select import select_top_k

    def brute(scores, k1, threshold):
        out = []
        for i, row in enumerate(scores):
            ok = [j for j in range(len(row)) if row[j] > threshold]
            out += [(i, j) for j in sorted(ok, key=lambda j: (-row[j], j))[:k1]]
        return sorted(out)

    for trial in range(200):
        n_rows, n_cols = int(rng.integers(1, 8)), int(rng.integers(1, 30))
        scores = np.floor(rng.random((n_rows, n_cols)) * rng.integers(1, 6)) / 5  # many ties
        if trial % 3 == 0:
            scores[rng.random(scores.shape) < 0.2] = np.nan
        k1, threshold = int(rng.integers(1, 8)), float(rng.choice([-1.0, 0.0, 0.1, 0.2]))
        rows, cols = select_top_k(scores, k1, threshold)
        expected = brute(np.where(np.isnan(scores), -np.inf, scores), k1, threshold)
        assert sorted(zip(rows.tolist(), cols.tolist())) == expected
