"""Simulations whose genes are real human genes, with the real GO files as their knowledge
(``gene_names="real_go"``, :mod:`priorgnn.simulate.realgo`).

The real GO files are read beside the project (``../shared/data/go``), as the other tests of real data
do; the tests skip when they are absent. Every check compares with the files parsed here directly
(gzip and plain text, not through goatools or the project's readers).
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from priorgnn.errors import ConfigError
from priorgnn.simulate import SimulatorConfig, simulate, write_knowledge

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "go"
REAL_OBO, REAL_GAF = REAL / "go-basic.obo.gz", REAL / "goa_human.gaf.gz"
pytestmark = pytest.mark.skipif(
    not (REAL_OBO.exists() and REAL_GAF.exists()),
    reason="the real GO files (../shared/data/go beside the project) are not on this machine",
)
#: A small system with sub-modules (so that nested terms are used): the tiny preset.
TINY = {"preset": "tiny", "gene_names": "real_go", "go_dir": REAL}


# -- the files, parsed directly -----------------------------------------------------------------------
class _Parsed:
    """The OBO's is_a parents, alternative ids and live terms, and the GAF's annotation lines, parsed with
    gzip and string splitting."""

    def __init__(self) -> None:
        self.parents: dict[str, list[str]] = {}
        self.alt: dict[str, str] = {}
        self.live: set[str] = set()
        stanza: dict[str, list[str]] = {}
        kind = None
        with gzip.open(REAL_OBO, "rt", encoding="utf-8") as fh:
            for line in [*fh, "[End]\n"]:
                line = line.strip()
                if line.startswith("["):
                    if kind == "[Term]" and stanza.get("is_obsolete", ["false"])[0] != "true":
                        term = stanza["id"][0]
                        self.live.add(term)
                        self.parents[term] = [v.split()[0] for v in stanza.get("is_a", [])]
                        for a in stanza.get("alt_id", []):
                            self.alt[a.split()[0]] = term
                    kind, stanza = line, {}
                elif ":" in line:
                    tag, _, value = line.partition(":")
                    stanza.setdefault(tag, []).append(value.strip())
        self.lines: dict[str, list[str]] = defaultdict(list)  # symbol -> raw annotation lines
        self.direct: dict[str, set[str]] = defaultdict(set)  # symbol -> GO ids (every namespace; no ND, no NOT)
        self.direct_bp: dict[str, set[str]] = defaultdict(set)
        with gzip.open(REAL_GAF, "rt", encoding="utf-8") as fh:
            for raw in fh:
                if raw.startswith("!"):
                    continue
                f = raw.rstrip("\n").split("\t")
                self.lines[f[2]].append(raw)
                if f[6] == "ND" or "NOT" in f[3].split("|"):
                    continue
                term = self.alt.get(f[4], f[4])
                if term not in self.live:
                    continue
                self.direct[f[2]].add(term)
                if f[8] == "P":
                    self.direct_bp[f[2]].add(term)
        self._anc: dict[str, frozenset[str]] = {}

    def ancestors(self, term: str) -> frozenset[str]:
        """``term`` and every term above it over is_a."""
        if term not in self._anc:
            out = {term}
            for p in self.parents.get(term, []):
                out |= self.ancestors(p)
            self._anc[term] = frozenset(out)
        return self._anc[term]

    def bp_closure(self, gene: str) -> set[str]:
        out: set[str] = set()
        for t in self.direct_bp.get(gene, ()):
            out |= self.ancestors(t)
        return out

    def term_size(self, term: str) -> int:
        """Genes annotated to ``term`` or an is_a descendant (biological process)."""
        return sum(term in self.bp_closure(g) for g in self.direct_bp)


@pytest.fixture(scope="module")
def parsed():
    return _Parsed()


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("realgo") / "tiny"
    return simulate(seed=0, out=out, **TINY)


# -- names --------------------------------------------------------------------------------------------
def test_genes_are_real_symbols_annotated_to_their_module_term(tiny_sim, parsed):
    genes = tiny_sim.genes
    assert len(set(genes["gene"])) == len(genes) == 40
    assert set(genes["gene"]) <= set(parsed.direct_bp)  # real symbols with biological-process annotations
    assert list(tiny_sim.data.genes) == list(genes["gene"])  # the cells are measured under these names
    for row in genes.itertuples():
        closure = parsed.bp_closure(row.gene)
        assert row.go_term in closure and row.go_subterm in closure, row.gene
        # the sub-module's term is the module's term or nested in it (is_a)
        assert row.go_term in parsed.ancestors(row.go_subterm)
    # one term per module, each module's members all share it, and no two modules share a term
    per_module = genes.groupby("module")["go_term"].nunique()
    assert (per_module == 1).all()
    terms = genes.groupby("module")["go_term"].first()
    assert terms.nunique() == len(terms) == 4
    # the tiny preset's sub-modules: at least one got a nested term of its own
    assert (genes["go_subterm"] != genes["go_term"]).any()
    # the recorded sizes are the terms' sizes in the files, and fit the mapping rule (n to max(3n, 10) genes)
    kn = json.loads((tiny_sim.path / "knowledge.json").read_text())
    for t in kn["terms"]:
        if t["level"] == "module":
            assert t["n_term_genes"] == parsed.term_size(t["term"])
            assert t["n_genes"] <= t["n_term_genes"] <= max(3 * t["n_genes"], 10)
            assert t["name"]


def test_the_same_seed_gives_the_same_names(tiny_sim):
    again = simulate(seed=0, out=None, **TINY)
    assert list(again.genes["gene"]) == list(tiny_sim.genes["gene"])
    assert list(again.genes["go_subterm"]) == list(tiny_sim.genes["go_subterm"])
    other = simulate(seed=1, out=None, **TINY)
    assert set(other.genes["gene"]) != set(tiny_sim.genes["gene"])
    # only the names change: the network drawn for seed 0 is the synthetic simulation's, renamed
    synthetic = simulate("tiny", seed=0)
    rename = dict(zip(synthetic.genes["gene"], tiny_sim.genes["gene"]))
    edges = synthetic.network[["regulator", "target", "sign"]].replace({"regulator": rename, "target": rename})
    got = tiny_sim.network[["regulator", "target", "sign"]]
    assert set(map(tuple, edges.to_numpy())) == set(map(tuple, got.to_numpy()))
    assert list(synthetic.genes["module"]) == list(tiny_sim.genes["module"])


# -- the knowledge files --------------------------------------------------------------------------------
def test_the_knowledge_files_are_the_real_files_of_these_genes(tiny_sim, parsed):
    genes = set(tiny_sim.genes["gene"])
    body = [ln for ln in tiny_sim.gaf_path.read_text(encoding="utf-8").splitlines(keepends=True)
            if not ln.startswith("!")]
    assert sorted(body) == sorted(ln for g in genes for ln in parsed.lines[g])  # every line, unchanged
    obo_ids = {ln[4:].strip() for ln in tiny_sim.obo_path.read_text(encoding="utf-8").splitlines()
               if ln.startswith("id: GO:")}
    needed = {parsed.alt.get(t, t) for g in genes for t in parsed.direct[g]}
    assert {a for t in needed for a in parsed.ancestors(t)} <= obo_ids
    assert obo_ids <= parsed.live


def test_go_graph_of_the_knowledge_files_links_module_members(tiny_sim, parsed):
    from knowledge.cache import go_graph

    graph = go_graph(obo=tiny_sim.obo_path, gaf=tiny_sim.gaf_path, k=20, threshold=0.1)
    assert set(graph.genes) == set(tiny_sim.genes["gene"])
    module = dict(zip(tiny_sim.genes["gene"], tiny_sim.genes["module"]))
    src, dst = graph.edge_index
    names = np.asarray(graph.genes)
    off = src != dst
    a, b, w = names[src[off]], names[dst[off]], graph.edge_weight[off]
    within = np.array([module[x] == module[y] for x, y in zip(a, b)])
    assert within.sum() >= 4
    # within-module pairs are linked more often than pairs of genes drawn at random
    sizes = tiny_sim.genes["module"].value_counts().to_numpy()
    n = len(module)
    assert within.mean() > (sizes * (sizes - 1)).sum() / (n * (n - 1))
    # each weight is the Jaccard index of the two genes' direct terms in the files (every namespace)
    for x, y, v in list(zip(a, b, w))[:30]:
        s, t = parsed.direct[x], parsed.direct[y]
        assert v == pytest.approx(len(s & t) / len(s | t), rel=1e-6)


# -- refusals and reuse -------------------------------------------------------------------------------------
def test_real_go_refuses_fidelity_knobs_and_names_missing_files(tiny_sim, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="go_degrade"):
        simulate(seed=0, go_recall=0.5, **TINY)
    with pytest.raises(ConfigError, match="gene_names='real_go'"):
        write_knowledge(tiny_sim, tmp_path / "k", recall=0.5)
    with pytest.raises(ConfigError, match="has no go-basic.obo"):
        simulate("tiny", gene_names="real_go", go_dir=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        simulate("tiny", gene_names="real_go", go_dir=tmp_path / "nowhere")
    monkeypatch.delenv("PRIORGNN_GO_DIR", raising=False)
    with pytest.raises(ConfigError, match="PRIORGNN_GO_DIR"):
        simulate("tiny", gene_names="real_go")
    with pytest.raises(ConfigError, match="synthetic names"):
        simulate("tiny", go_dir=REAL)
    with pytest.raises(ConfigError, match="gene_names='bogus'"):
        SimulatorConfig.from_preset("tiny", gene_names="bogus")


def test_a_real_go_folder_is_reused_only_with_the_same_files(tiny_sim, tmp_path, monkeypatch):
    monkeypatch.delenv("PRIORGNN_GO_DIR", raising=False)
    again = simulate(seed=0, out=tiny_sim.path, **TINY)  # reused, no simulation
    assert list(again.genes["gene"]) == list(tiny_sim.genes["gene"])
    assert simulate(seed=0, out=tiny_sim.path, preset="tiny", gene_names="real_go").path == tiny_sim.path
    other = tmp_path / "go"
    other.mkdir()
    shutil.copy(REAL_OBO, other / "go-basic.obo.gz")
    with gzip.open(REAL_GAF, "rb") as src, open(other / "goa_human.gaf", "wb") as dst:
        shutil.copyfileobj(src, dst)  # the same annotations, another file
    with pytest.raises(ConfigError, match="other GO files"):
        simulate(seed=0, out=tiny_sim.path, preset="tiny", gene_names="real_go", go_dir=other)


def test_synthetic_simulations_do_not_record_the_new_setting(tmp_path):
    cfg = SimulatorConfig.from_preset("tiny")
    assert cfg.gene_names == "synthetic" and "gene_names" not in cfg.stored_dict()
    assert SimulatorConfig.from_dict(cfg.stored_dict()) == cfg
    assert cfg.with_overrides(gene_names="real_go").hash() != cfg.hash()
    sim = simulate("tiny", out=tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "simulator.json").read_text())
    assert "gene_names" not in meta["config"] and "go_term" not in sim.genes


# -- the study's real-GO setting ------------------------------------------------------------------------------
def _small_grid(**changes):
    """The smoke grid with the real-GO setting (a few models, one seed) and the other axes off."""
    from dataclasses import replace

    from priorgnn.study import GRIDS

    kw = {"name": "smoke_real_go", "negative_models": (), "fidelities": (), "train_fracs": (), "interactions": (),
          "pretrain_mults": (), "real_go_models": ("network_knn", "mean", "additive"), **changes}
    return replace(GRIDS["smoke"], **kw)


def test_the_study_fits_and_reports_the_real_go_setting(tmp_path, monkeypatch):
    from priorgnn.study import run_study

    monkeypatch.delenv("PRIORGNN_GO_DIR", raising=False)
    grid = _small_grid()
    path = run_study(grid, tmp_path, progress=False, only=["real_go"], go_dir=REAL, figures=False)
    cells = tmp_path / "cells" / "real_go"
    assert {p.name for p in cells.glob("*_s0.csv")} == {"_reference_s0.csv", "network_knn_s0.csv", "mean_s0.csv",
                                                       "additive_s0.csv"}
    sim = json.loads((tmp_path / "sims" / "interaction_1_real_go" / "simulator.json").read_text())
    assert sim["config"]["gene_names"] == "real_go" and sim["knowledge"]["source"] == "real_go"
    # the setting is the grid's simulation (the positive control) with real names
    assert sim["config"]["prior_informativeness"] == grid.sim_overrides["prior_informativeness"]
    text = path.read_text()
    assert "`real_go` is the positive control with its genes named after real human genes" in text
    assert "| real_go | network_knn |" in text and "Real GO, the oracle's lead over mean" in text
    assert "Not fitted in this run:** `base`" in text  # only the real-GO setting was asked for


def test_the_study_leaves_real_go_out_without_the_go_files(tmp_path, monkeypatch):
    from priorgnn.study import run_study

    monkeypatch.delenv("PRIORGNN_GO_DIR", raising=False)
    grid = _small_grid(base_models=("mean",), real_go_models=("mean",))
    with pytest.raises(ConfigError, match="real_go setting.*PRIORGNN_GO_DIR"):
        run_study(grid, tmp_path, progress=False, only=["real_go"], render=False)
    path = run_study(grid, tmp_path, progress=False, figures=False)  # no --only: the other settings are fitted
    assert (tmp_path / "cells" / "base" / "mean_s0.csv").exists()
    assert not (tmp_path / "cells" / "real_go").exists()
    assert "`real_go`: mean (seeds 0). Reason: fitted only where the real Gene Ontology files are given" in path.read_text()
