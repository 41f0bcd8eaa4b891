"""Any gene-gene edge list (a protein-interaction network, a regulatory network, ...) as a prior."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowledge.graph import GeneGraph
from priorgnn.io import sha256_file
from priorgnn.errors import GraphError

log = logging.getLogger(__name__)

__all__ = ["read_edge_list", "edge_list_graph"]


def edge_list_graph(
    sources: Sequence[str], targets: Sequence[str], weights: Sequence[float] | None = None, *,
    genes: Sequence[str] | None = None, directed: bool = False, default_weight: float = 1.0,
    self_loops: bool = True, self_loop_weight: float = 1.0, provenance: dict | None = None,
) -> GeneGraph:
    """A :class:`GeneGraph` from parallel lists of source genes, target genes and weights.

    Parameters
    ----------
    sources, targets, weights
        One edge ``source -> target`` per position; ``weights`` default to ``default_weight``.
    genes
        Nodes, in this order (edges touching other genes are dropped and counted). Default: every
        gene named, sorted.
    directed
        Keep edges as given. Otherwise (default) symmetrise: each edge also runs the other way.
    default_weight
        Weight of edges without one.
    self_loops
        Give every node a self-loop of ``self_loop_weight`` unless it has one (GEARS's graphs
        include each gene as its own neighbour). Self-loops present in the input are kept either
        way.
    provenance
        Entries to record (sources, parameters).

    Returns
    -------
    GeneGraph
        Duplicate edges (including the two directions of a symmetrised pair) are merged, keeping
        the largest weight.
    """
    src = np.asarray([str(s) for s in sources], dtype=object)
    dst = np.asarray([str(t) for t in targets], dtype=object)
    if src.shape != dst.shape:
        raise GraphError("edge list: sources and targets differ in length.")
    w = np.full(len(src), float(default_weight)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != src.shape:
        raise GraphError("edge list: weights differ in length from the edges.")
    if not np.all(np.isfinite(w)):
        raise GraphError("edge list: weights must be finite numbers.")
    nodes = sorted(set(src) | set(dst)) if genes is None else [str(g) for g in genes]
    if len(set(nodes)) != len(nodes):
        raise GraphError("edge list: the gene list has duplicates.")
    index = {g: i for i, g in enumerate(nodes)}
    si = np.array([index.get(s, -1) for s in src], dtype=np.int64)
    ti = np.array([index.get(t, -1) for t in dst], dtype=np.int64)
    inside = (si >= 0) & (ti >= 0)
    n_outside = int((~inside).sum())
    si, ti, w = si[inside], ti[inside], w[inside]
    n = len(nodes)
    n_dup = len(si) - len(np.unique(si * n + ti))
    if not directed:
        si, ti, w = np.concatenate([si, ti]), np.concatenate([ti, si]), np.concatenate([w, w])
    # merge duplicates, keeping the largest weight: sort by (key, -weight) and take each key's first
    key = si * n + ti
    order = np.lexsort((-w, key))
    key, si, ti, w = key[order], si[order], ti[order], w[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    si, ti, w = si[first], ti[first], w[first]
    if self_loops:
        has = np.zeros(n, dtype=bool)
        has[si[si == ti]] = True
        add = np.nonzero(~has)[0]
        si = np.concatenate([si, add])
        ti = np.concatenate([ti, add])
        w = np.concatenate([w, np.full(len(add), float(self_loop_weight))])
    order = np.lexsort((si, ti))
    params = {"directed": bool(directed), "default_weight": float(default_weight),
              "self_loops": bool(self_loops), "self_loop_weight": float(self_loop_weight),
              "duplicates": "max weight"}
    prov = {"kind": "edgelist", "params": params, "n_edges_outside_genes": n_outside, **(provenance or {})}
    if provenance and "params" in provenance:
        prov["params"] = {**params, **provenance["params"]}
    if n_outside:
        log.info("edge list: %d edge(s) touch genes outside the requested list; dropped", n_outside)
    if n_dup:
        log.info("edge list: %d duplicate edge(s) merged (largest weight kept)", n_dup)
    graph = GeneGraph(nodes, np.stack([si[order], ti[order]]), w[order].astype(np.float32), prov)
    log.info("edge-list graph: %s", graph)
    return graph


def read_edge_list(
    path: str | os.PathLike, *, genes: Sequence[str] | None = None, directed: bool = False,
    default_weight: float = 1.0, self_loops: bool = True, self_loop_weight: float = 1.0,
    sep: str = "\t", source_column: str = "source", target_column: str = "target",
    weight_column: str | None = "weight",
) -> GeneGraph:
    """Read a gene-gene edge list (TSV with a header) as a :class:`GeneGraph`.

    Parameters
    ----------
    path
        Text table (plain or gzip) with a header naming at least ``source_column`` and
        ``target_column``; ``weight_column`` is used when present.
    genes, directed, default_weight, self_loops, self_loop_weight
        As in :func:`edge_list_graph` (default: symmetrise, weight 1, add self-loops).
    sep
        Column separator (default tab).
    source_column, target_column, weight_column
        Column names. A weight column that is absent means every edge weighs ``default_weight``;
        with ``weight_column=None`` any weight column is ignored.

    Raises
    ------
    GraphError
        If the file or a named column is missing, or a row has an empty gene or a weight that is not
        a finite number (the line numbers are named).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise GraphError(f"{path}: edge list not found.")
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise GraphError(f"{path}: not a readable table ({exc}). Expected a header and "
                         f"{sep!r}-separated columns {source_column}, {target_column}[, {weight_column}].") from None
    missing = [c for c in (source_column, target_column) if c not in df.columns]
    if missing:
        raise GraphError(
            f"{path}: no column(s) {missing}; the header has {list(df.columns)[:10]}. Name them "
            f"{source_column!r} and {target_column!r} (or pass source_column=/target_column=, "
            "--source-column/--target-column)."
        )
    line = np.arange(len(df)) + 2  # 1-based, after the header
    s = df[source_column].str.strip()
    t = df[target_column].str.strip()
    empty = (s == "") | (t == "")
    if empty.any():
        bad = line[empty.to_numpy()][:5].tolist()
        raise GraphError(f"{path}: empty gene name(s) at line(s) {bad}. Fill them in or remove those rows.")
    weights = None
    if weight_column and weight_column in df.columns:
        w = pd.to_numeric(df[weight_column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad_w = ~np.isfinite(w)
        if bad_w.any():
            rows = line[bad_w][:5].tolist()
            raise GraphError(f"{path}: weight(s) that are not finite numbers at line(s) {rows}. Fix them, "
                             "or drop the weight column to use a default weight.")
        weights = w
    if len(df) == 0:
        raise GraphError(f"{path}: the edge list has no rows.")
    prov = {
        "sources": [{"role": "edgelist", "path": str(path), "sha256": sha256_file(path)}],
        "params": {"columns": [source_column, target_column, weight_column if weights is not None else None]},
    }
    return edge_list_graph(s.to_list(), t.to_list(), weights, genes=genes, directed=directed,
                           default_weight=default_weight, self_loops=self_loops,
                           self_loop_weight=self_loop_weight, provenance=prov)
