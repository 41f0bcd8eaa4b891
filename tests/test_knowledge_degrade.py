"""Degradation operators: each invariant checked on directed and symmetric graphs."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.degrade import (
    OPERATIONS,
    degrade,
    dropout_edges,
    empty_graph,
    is_symmetric,
    permute_genes,
    random_graph,
    rewire_edges,
)
from knowledge.graph import GeneGraph
from priorgnn.errors import GraphError


def _directed(n=60, per_target=6, seed=0) -> GeneGraph:
    """A GEARS-like graph: each target has `per_target` random sources plus a self-loop."""
    rng = np.random.default_rng(seed)
    src, dst = [], []
    for t in range(n):
        s = rng.choice(np.delete(np.arange(n), t), size=per_target, replace=False)
        src += [*s, t]
        dst += [t] * (per_target + 1)
    w = rng.uniform(0.1, 1.0, len(src)).astype(np.float32)
    w[np.array(src) == np.array(dst)] = 1.0
    return GeneGraph([f"g{i}" for i in range(n)], np.array([src, dst]), w, {"kind": "test"})


def _symmetric(n=50, m=150, seed=1) -> GeneGraph:
    rng = np.random.default_rng(seed)
    pairs = set()
    while len(pairs) < m:
        a, b = sorted(rng.choice(n, 2, replace=False).tolist())
        pairs.add((a, b))
    a, b = np.array(sorted(pairs)).T
    w = rng.uniform(0.1, 1.0, m).astype(np.float32)
    loops = np.arange(n)
    src = np.concatenate([a, b, loops])
    dst = np.concatenate([b, a, loops])
    weight = np.concatenate([w, w, np.ones(n, np.float32)])
    return GeneGraph([f"p{i}" for i in range(n)], np.stack([src, dst]), weight, {"kind": "ppi"})


def _non_self(g: GeneGraph) -> dict[tuple[int, int], float]:
    s, d = g.edge_index
    return {(int(a), int(b)): float(w) for a, b, w in zip(s, d, g.edge_weight) if a != b}


def _loops(g: GeneGraph) -> dict[int, float]:
    s, d = g.edge_index
    return {int(a): float(w) for a, b, w in zip(s, d, g.edge_weight) if a == b}


def _out_degree(g: GeneGraph) -> np.ndarray:
    s, d = g.edge_index
    return np.bincount(s[s != d], minlength=g.n_nodes)


def _in_degree(g: GeneGraph) -> np.ndarray:
    s, d = g.edge_index
    return np.bincount(d[s != d], minlength=g.n_nodes)


def _no_duplicates(g: GeneGraph) -> bool:
    keys = g.edge_index[0] * g.n_nodes + g.edge_index[1]
    return np.unique(keys).size == keys.size


GRAPHS = {"directed": _directed, "symmetric": _symmetric}


@pytest.mark.parametrize("kind", GRAPHS)
@pytest.mark.parametrize("frac", [0.0, 0.3, 0.5, 1.0])
def test_dropout_removes_the_requested_fraction_of_edges(kind, frac):
    g = GRAPHS[kind]()
    out = dropout_edges(g, frac, seed=3)
    before, after = _non_self(g), _non_self(out)
    units = len(before) // (2 if kind == "symmetric" else 1)
    dropped_units = (len(before) - len(after)) // (2 if kind == "symmetric" else 1)
    assert dropped_units == round(frac * units)
    assert set(after) <= set(before) and all(after[e] == before[e] for e in after)
    assert _loops(out) == _loops(g)  # self-loops kept
    assert is_symmetric(out) == (kind == "symmetric" and frac < 1)
    assert out.provenance["operation"]["name"] == "dropout"
    assert out.provenance["parent"] == g.provenance


def test_dropout_is_uniform_and_seeded():
    g = _directed(n=80)
    a, b, c = (dropout_edges(g, 0.5, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.edge_index, b.edge_index)
    assert not np.array_equal(a.edge_index, c.edge_index)
    # every edge is dropped about half the time over many seeds
    before = list(_non_self(g))
    kept = np.zeros(len(before))
    for seed in range(200):
        after = _non_self(dropout_edges(g, 0.5, seed=seed))
        kept += [e in after for e in before]
    assert 0.35 < kept.min() / 200 and kept.max() / 200 < 0.65
    with pytest.raises(GraphError, match="in \\[0, 1\\]"):
        dropout_edges(g, 1.5, seed=0)


@pytest.mark.parametrize("kind", GRAPHS)
def test_rewire_preserves_degrees_and_weights_without_loops_or_duplicates(kind):
    g = GRAPHS[kind]()
    out = rewire_edges(g, seed=5)
    np.testing.assert_array_equal(_in_degree(out), _in_degree(g))
    np.testing.assert_array_equal(_out_degree(out), _out_degree(g))
    assert _loops(out) == _loops(g)  # no self-loop created or removed
    assert _no_duplicates(out)
    assert out.n_edges == g.n_edges
    np.testing.assert_array_equal(np.sort(out.edge_weight), np.sort(g.edge_weight))
    before, after = _non_self(g), _non_self(out)
    assert len(set(before) & set(after)) < 0.3 * len(before)  # thoroughly rewired
    op = out.provenance["operation"]
    assert op["n_swaps"] == op["n_swaps_requested"] == 10 * len(before) // (2 if kind == "symmetric" else 1)
    assert is_symmetric(out) == (kind == "symmetric")


def test_rewire_keeps_each_edge_weight_with_its_source():
    g = _directed()
    out = rewire_edges(g, seed=2, n_swaps=50)
    # a swap moves targets between edges, so every source keeps the multiset of its edge weights
    for node in range(g.n_nodes):
        w0 = sorted(w for (s, _), w in _non_self(g).items() if s == node)
        w1 = sorted(w for (s, _), w in _non_self(out).items() if s == node)
        assert w0 == w1
    assert out.provenance["operation"]["n_swaps"] == 50


def test_rewire_is_seeded_and_stops_on_graphs_that_cannot_change():
    g = _directed()
    a, b = rewire_edges(g, seed=9, n_swaps=100), rewire_edges(g, seed=9, n_swaps=100)
    np.testing.assert_array_equal(a.edge_index, b.edge_index)
    np.testing.assert_array_equal(a.edge_weight, b.edge_weight)
    # a complete directed graph on 4 genes has no valid swap
    n = 4
    s, d = np.nonzero(~np.eye(n, dtype=bool))
    full = GeneGraph(list("abcd"), np.stack([s, d]), np.ones(s.size), {})
    out = rewire_edges(full, seed=0, max_stalled_rounds=3)
    assert out.provenance["operation"]["n_swaps"] == 0
    assert set(_non_self(out)) == set(_non_self(full))


def test_permute_relabels_genes_consistently():
    g = _directed()
    # tag each node by a unique self-loop weight, so the permutation can be read back
    tags = {i: float(i + 2) for i in range(g.n_nodes)}
    w = g.edge_weight.copy()
    loops = g.edge_index[0] == g.edge_index[1]
    w[loops] = [tags[int(i)] for i in g.edge_index[0][loops]]
    g = GeneGraph(g.genes, g.edge_index, w, g.provenance)
    out = permute_genes(g, seed=4)
    assert out.genes == g.genes
    where = {int(tag) - 2: node for node, tag in _loops(out).items()}  # old node -> new node
    assert sorted(where) == sorted(where.values()) == list(range(g.n_nodes))
    assert sum(where[i] != i for i in where) > 0.9 * g.n_nodes
    moved = {(where[s], where[t]): x for (s, t), x in _non_self(g).items()}
    assert moved == _non_self(out)
    np.testing.assert_array_equal(np.sort(out.in_degree()), np.sort(g.in_degree()))
    again = permute_genes(g, seed=4)
    np.testing.assert_array_equal(again.edge_index, out.edge_index)


@pytest.mark.parametrize("kind", GRAPHS)
def test_random_graph_has_equal_density_and_the_original_weights(kind):
    g = GRAPHS[kind]()
    out = random_graph(g, seed=6)
    before, after = _non_self(g), _non_self(out)
    assert len(after) == len(before)
    assert _no_duplicates(out) and _loops(out) == _loops(g)
    np.testing.assert_array_equal(np.sort(list(after.values())), np.sort(list(before.values())))
    assert len(set(after) & set(before)) < 0.5 * len(before)
    assert is_symmetric(out) == (kind == "symmetric")
    same = random_graph(g, seed=6)
    np.testing.assert_array_equal(same.edge_index, out.edge_index)
    np.testing.assert_array_equal(same.edge_weight, out.edge_weight)


@pytest.mark.parametrize("symmetric", [False, True])
def test_random_graph_on_many_genes(symmetric):
    # 2,500 genes: pairs are drawn without listing all n^2 of them
    n, m = 2500, 20_000
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, n * n, m))
    s, d = keys // n, keys % n
    keep = s < d
    s, d = s[keep], d[keep]
    w = rng.random(s.size)
    if symmetric:
        s, d, w = np.concatenate([s, d]), np.concatenate([d, s]), np.concatenate([w, w])
    g = GeneGraph([f"x{i}" for i in range(n)], np.stack([s, d]), w, {})
    assert is_symmetric(g) == symmetric
    out = random_graph(g, seed=1)
    assert len(_non_self(out)) == len(_non_self(g)) and _no_duplicates(out)
    assert is_symmetric(out) == symmetric
    np.testing.assert_array_equal(np.sort(out.edge_weight), np.sort(g.edge_weight))
    # uniform: no gene collects many more edges than its expected ~8-16
    assert np.bincount(out.edge_index[1], minlength=n).max() < 45


def test_empty_prior_has_unit_self_loops_only():
    g = _directed()
    out = empty_graph(g)
    assert out.genes == g.genes
    np.testing.assert_array_equal(out.edge_index[0], out.edge_index[1])
    np.testing.assert_array_equal(np.sort(out.edge_index[0]), np.arange(g.n_nodes))
    assert np.all(out.edge_weight == 1.0)
    assert out.provenance["operation"] == {"name": "empty"}


def test_degrade_dispatch_and_provenance_chain(tmp_path):
    g = _symmetric()
    out = degrade(degrade(g, "dropout", seed=0, frac=0.2), "rewire", seed=1)
    assert out.provenance["operation"]["name"] == "rewire"
    assert out.provenance["parent"]["operation"]["name"] == "dropout"
    assert out.provenance["parent"]["parent"] == g.provenance
    loaded = GeneGraph.load(out.save(tmp_path / "d.npz"))
    assert loaded.provenance == out.provenance
    assert set(OPERATIONS) == {"dropout", "rewire", "permute", "random", "empty"}
    with pytest.raises(GraphError, match="needs the fraction"):
        degrade(g, "dropout", seed=0)
    with pytest.raises(GraphError, match="unknown degradation"):
        degrade(g, "shuffle", seed=0)
    with pytest.raises(GraphError, match="seeded"):
        permute_genes(g, seed=None)
    with pytest.raises(GraphError, match="symmetric=True"):
        dropout_edges(_directed(), 0.1, seed=0, symmetric=True)
