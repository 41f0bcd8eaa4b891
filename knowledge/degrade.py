"""Degradations of a prior graph, for the knowledge-bias study.

Each operator is seeded (``numpy.random.default_rng(seed)``), returns a new :class:`GeneGraph`
and leaves its input unchanged. The new graph's provenance records the operation, its
parameters and seed, and the parent's provenance.

Operators act on the edges between *different* genes; self-loops (each gene as its own neighbour,
as GEARS's graphs have) are kept as they are, except by :func:`empty_graph`. A graph whose edges
all come in both directions with equal weights (a symmetrised edge list) is treated as undirected:
its operators act on gene pairs and keep it symmetric. Others are treated as directed.

================  ============================================================================
``dropout``       remove a fraction of the edges, uniformly at random
``rewire``        degree-preserving rewiring: swap endpoints of random edge pairs, so every gene
                  keeps its in- and out-degree; no self-loop or duplicate edge is created and
                  each edge keeps its weight
``permute``       shuffle the gene labels (the graph's shape is kept, its meaning destroyed)
``random``        a uniformly random graph with as many edges, weights drawn from the original
                  ones (a random permutation of them)
``empty``         no edge between different genes; a unit self-loop on every gene
================  ============================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from knowledge.graph import GeneGraph
from priorgnn.errors import GraphError

log = logging.getLogger(__name__)

__all__ = [
    "OPERATIONS",
    "degrade",
    "dropout_edges",
    "rewire_edges",
    "permute_genes",
    "random_graph",
    "empty_graph",
    "is_symmetric",
]


# ---------------------------------------------------------------------------------------------------
# edges as "units": directed edges, or unordered gene pairs of a symmetric graph
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Units:
    u: np.ndarray  # int64
    v: np.ndarray  # int64 (u < v when symmetric)
    w: np.ndarray  # float32
    loops: tuple[np.ndarray, np.ndarray]  # self-loop nodes and weights
    symmetric: bool
    n: int

    def keys(self, u: np.ndarray | None = None, v: np.ndarray | None = None) -> np.ndarray:
        u = self.u if u is None else u
        v = self.v if v is None else v
        return u * self.n + v

    def to_graph(self, parent: GeneGraph, operation: dict[str, Any]) -> GeneGraph:
        u, v, w = self.u, self.v, self.w
        if self.symmetric:
            u, v, w = np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([w, w])
        nodes, lw = self.loops
        src = np.concatenate([u, nodes])
        dst = np.concatenate([v, nodes])
        weight = np.concatenate([w, lw]).astype(np.float32)
        order = np.lexsort((src, dst))
        prov = {"kind": parent.kind, "operation": operation, "parent": parent.provenance}
        out = GeneGraph(list(parent.genes), np.stack([src[order], dst[order]]), weight[order], prov)
        log.info("%s: %s -> %s", operation.get("name"), parent, out)
        return out


def is_symmetric(graph: GeneGraph) -> bool:
    """True if every edge between different genes also runs the other way with the same weight."""
    src, dst = graph.edge_index
    off = src != dst
    s, d, w = src[off], dst[off], graph.edge_weight[off]
    if s.size == 0:
        return False
    n = graph.n_nodes
    fwd = np.argsort(s * n + d, kind="stable")
    rev = np.argsort(d * n + s, kind="stable")
    return bool(np.array_equal((s * n + d)[fwd], (d * n + s)[rev]) and np.array_equal(w[fwd], w[rev]))


def _units(graph: GeneGraph, symmetric: bool | None) -> _Units:
    src, dst = graph.edge_index
    loop = src == dst
    sym = is_symmetric(graph) if symmetric is None else bool(symmetric)
    if sym and symmetric and not is_symmetric(graph):
        raise GraphError("symmetric=True, but the graph's edges do not all come in both directions "
                         "with equal weights; leave symmetric unset (auto) or False.")
    s, d, w = src[~loop], dst[~loop], graph.edge_weight[~loop]
    if sym:
        half = s < d
        s, d, w = s[half], d[half], w[half]
    return _Units(s.astype(np.int64), d.astype(np.int64), w.copy(), (src[loop].copy(), graph.edge_weight[loop].copy()),
                  sym, graph.n_nodes)


def _rng(seed: int | None) -> np.random.Generator:
    if seed is None:
        raise GraphError("degradations must be seeded: pass seed= (--seed) for a reproducible study.")
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------------
def dropout_edges(graph: GeneGraph, frac: float, *, seed: int, symmetric: bool | None = None) -> GeneGraph:
    """Remove ``round(frac * E)`` of the ``E`` edges between different genes, chosen uniformly.

    Parameters
    ----------
    graph
        The prior.
    frac
        Fraction to drop, in ``[0, 1]``.
    seed
        Random seed.
    symmetric
        Treat the graph as undirected (drop both directions of a pair together). Default: detect.
    """
    if not 0.0 <= frac <= 1.0:
        raise GraphError(f"dropout fraction must be in [0, 1], not {frac}.")
    rng = _rng(seed)
    units = _units(graph, symmetric)
    m = units.u.size
    n_drop = int(round(frac * m))
    keep = np.ones(m, dtype=bool)
    keep[rng.choice(m, size=n_drop, replace=False)] = False
    units.u, units.v, units.w = units.u[keep], units.v[keep], units.w[keep]
    op = {"name": "dropout", "frac": float(frac), "seed": int(seed), "symmetric": units.symmetric,
          "n_edges_before": int(m), "n_dropped": n_drop}
    return units.to_graph(graph, op)


def rewire_edges(
    graph: GeneGraph, *, seed: int, swaps_per_edge: float = 10.0, n_swaps: int | None = None,
    symmetric: bool | None = None, max_stalled_rounds: int = 20,
) -> GeneGraph:
    """Degree-preserving rewiring by repeated double-edge swaps.

    A swap takes two edges ``a -> b`` and ``c -> d`` and makes them ``a -> d`` and ``c -> b``
    (for an undirected graph, pairs ``a-b``, ``c-d`` become ``a-d``, ``c-b``), so every gene keeps
    its in- and out-degree (its degree). Swaps that would create a self-loop or an edge that
    already exists are rejected. Each edge keeps its weight.

    Swaps are proposed in rounds of disjoint random edge pairs (vectorised), until ``n_swaps``
    have been made.

    Parameters
    ----------
    graph
        The prior.
    seed
        Random seed.
    swaps_per_edge
        Swaps to make per edge between different genes, when ``n_swaps`` is not given (default
        10, enough to randomise the wiring).
    n_swaps
        Total swaps to make.
    symmetric
        Treat the graph as undirected. Default: detect.
    max_stalled_rounds
        Stop early (with a warning) after this many rounds without a single accepted swap, e.g.
        for a complete graph that cannot be rewired.
    """
    rng = _rng(seed)
    units = _units(graph, symmetric)
    m, n = units.u.size, units.n
    target = int(n_swaps) if n_swaps is not None else int(round(swaps_per_edge * m))
    if target < 0:
        raise GraphError(f"n_swaps must be >= 0, not {target}.")
    u, v = units.u.copy(), units.v.copy()
    done = rounds = stalled = 0
    while done < target and m >= 2 and stalled < max_stalled_rounds:
        rounds += 1
        perm = rng.permutation(m)
        half = min(m // 2, max(1, target - done) * 2)  # propose a few more than still needed
        i, j = perm[:half], perm[half:2 * half]
        a, b, c, d = u[i], v[i], u[j], v[j]
        if units.symmetric:
            flip = rng.random(half) < 0.5
            c, d = np.where(flip, d, c), np.where(flip, c, d)
        ok = (a != d) & (c != b) & (a != c) & (b != d)
        if units.symmetric:
            n1u, n1v = np.minimum(a, d), np.maximum(a, d)
            n2u, n2v = np.minimum(c, b), np.maximum(c, b)
        else:
            n1u, n1v, n2u, n2v = a, d, c, b
        k1, k2 = n1u * n + n1v, n2u * n + n2v
        current = np.sort(u * n + v)
        ok &= ~_contains(current, k1) & ~_contains(current, k2)
        # two accepted swaps must not create the same edge
        proposed = np.concatenate([k1[ok], k2[ok]])
        uniq, counts = np.unique(proposed, return_counts=True)
        clash = uniq[counts > 1]
        if clash.size:
            ok &= ~_contains(clash, k1) & ~_contains(clash, k2)
        idx = np.nonzero(ok)[0][: target - done]
        if idx.size == 0:
            stalled += 1
            continue
        stalled = 0
        u[i[idx]], v[i[idx]] = n1u[idx], n1v[idx]
        u[j[idx]], v[j[idx]] = n2u[idx], n2v[idx]
        done += idx.size
    if done < target:
        log.warning("rewire: made %d of %d swaps before no further swap was possible", done, target)
    units.u, units.v = u, v
    op = {"name": "rewire", "seed": int(seed), "symmetric": units.symmetric, "n_swaps_requested": target,
          "n_swaps": int(done), "rounds": rounds, "swaps_per_edge": done / max(1, m)}
    return units.to_graph(graph, op)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_keys, keys)
    pos = np.minimum(pos, max(0, sorted_keys.size - 1))
    return (sorted_keys[pos] == keys) if sorted_keys.size else np.zeros(keys.shape, dtype=bool)


def permute_genes(graph: GeneGraph, *, seed: int) -> GeneGraph:
    """Shuffle the gene labels: gene ``i``'s edges become those of a random other gene.

    The graph keeps its shape (degrees, weights, self-loops), but which genes are connected is
    random. Equivalent to relabelling the nodes by a random permutation.
    """
    rng = _rng(seed)
    perm = rng.permutation(graph.n_nodes)
    src, dst = perm[graph.edge_index[0]], perm[graph.edge_index[1]]
    order = np.lexsort((src, dst))
    prov = {"kind": graph.kind, "operation": {"name": "permute", "seed": int(seed)}, "parent": graph.provenance}
    out = GeneGraph(list(graph.genes), np.stack([src[order], dst[order]]), graph.edge_weight[order], prov)
    log.info("permute: %s -> %s", graph, out)
    return out


def random_graph(graph: GeneGraph, *, seed: int, symmetric: bool | None = None) -> GeneGraph:
    """A uniformly random graph with as many edges between different genes as ``graph``.

    Edges are drawn without replacement among all ordered pairs of different genes (unordered
    pairs for a symmetric graph); their weights are a random permutation of the original weights.
    Self-loops are kept as they are.
    """
    rng = _rng(seed)
    units = _units(graph, symmetric)
    m, n = units.u.size, units.n
    pairs = n * (n - 1) // (2 if units.symmetric else 1)
    if m > pairs:
        raise GraphError(f"cannot place {m} edges among {n} genes.")
    keys = _sample_pairs(rng, n, m, units.symmetric)
    units.u, units.v = keys // n, keys % n
    units.w = rng.permutation(units.w)
    op = {"name": "random", "seed": int(seed), "symmetric": units.symmetric, "n_edges": int(m),
          "density": m / pairs if pairs else 0.0, "weights": "permutation of the original weights"}
    return units.to_graph(graph, op)


def _sample_pairs(rng: np.random.Generator, n: int, m: int, symmetric: bool) -> np.ndarray:
    """``m`` distinct keys ``u * n + v`` of pairs ``u != v`` (``u < v`` if symmetric), uniformly."""
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if n * n <= 4_000_000:
        u, v = np.triu_indices(n, 1) if symmetric else np.nonzero(~np.eye(n, dtype=bool))
        candidates = u.astype(np.int64) * n + v
        return np.sort(candidates[rng.choice(candidates.size, size=m, replace=False)])
    # many genes: draw pairs with replacement and drop repeats until m are distinct (a uniform
    # m-subset, without listing the n^2 candidate pairs)
    chosen = np.zeros(0, dtype=np.int64)
    while chosen.size < m:
        draw = int((m - chosen.size) * 1.1) + 16
        u = rng.integers(0, n, size=draw, dtype=np.int64)
        v = rng.integers(0, n - 1, size=draw, dtype=np.int64)
        v += v >= u  # uniform over the other genes
        if symmetric:
            u, v = np.minimum(u, v), np.maximum(u, v)
        new = u * n + v
        _, first = np.unique(new, return_index=True)
        new = new[np.sort(first)]  # drop repeats, keep the order of drawing
        chosen = np.concatenate([chosen, new[~np.isin(new, chosen)]])
    return np.sort(chosen[:m])


def empty_graph(graph: GeneGraph, *, seed: int | None = None) -> GeneGraph:
    """The empty prior: no edge between different genes, a unit self-loop on every gene."""
    n = graph.n_nodes
    idx = np.arange(n, dtype=np.int64)
    prov = {"kind": graph.kind, "operation": {"name": "empty"}, "parent": graph.provenance}
    out = GeneGraph(list(graph.genes), np.stack([idx, idx]), np.ones(n, dtype=np.float32), prov)
    log.info("empty: %s -> %s", graph, out)
    return out


OPERATIONS: dict[str, Callable[..., GeneGraph]] = {
    "dropout": dropout_edges,
    "rewire": rewire_edges,
    "permute": permute_genes,
    "random": random_graph,
    "empty": empty_graph,
}


def degrade(graph: GeneGraph, op: str, *, seed: int, frac: float | None = None, **kwargs: Any) -> GeneGraph:
    """Apply the operation named ``op`` (see :data:`OPERATIONS`); ``frac`` is for ``dropout``."""
    if op not in OPERATIONS:
        raise GraphError(f"unknown degradation {op!r}; choose one of {', '.join(OPERATIONS)}.")
    if op == "dropout":
        if frac is None:
            raise GraphError("dropout needs the fraction of edges to drop (frac=, --frac).")
        return dropout_edges(graph, frac, seed=seed, **kwargs)
    if frac is not None:
        raise GraphError(f"--frac applies to dropout only, not {op}.")
    return OPERATIONS[op](graph, seed=seed, **kwargs)
