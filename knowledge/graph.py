"""``GeneGraph``: a weighted gene-gene graph with provenance.

Edges follow PyTorch Geometric's convention: ``edge_index[0]`` is the source ``j`` and
``edge_index[1]`` the target ``i`` of a message ``j -> i``. GEARS's graphs list, for each target
gene, its top-k most similar genes as sources, the gene itself included (its self-similarity is 1);
the graphs here keep that convention.

Graphs are saved as ``.npz`` (arrays, no pickle) plus a ``.json`` of genes and provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from priorgnn.io import atomic_path, hash_arrays, read_json, write_json
from priorgnn.errors import GraphError

log = logging.getLogger(__name__)

__all__ = ["GeneGraph", "AlignReport"]

_GRAPH_FORMAT = 1


@dataclass
class AlignReport:
    """What :meth:`GeneGraph.align` found."""

    n_genes: int  # genes asked for
    n_in_graph: int  # of those, nodes of the graph
    n_annotated: int  # of those, with at least one edge to another gene
    missing: list[str]  # genes asked for that are not nodes of the graph
    n_edges_kept: int
    n_edges_dropped: int  # edges touching nodes outside the requested genes

    @property
    def n_unannotated(self) -> int:
        return self.n_genes - self.n_annotated

    def __str__(self) -> str:
        return (
            f"{self.n_in_graph}/{self.n_genes} genes in the graph, {self.n_unannotated} without any "
            f"edge to another gene; {self.n_edges_kept} edges kept, {self.n_edges_dropped} dropped"
        )


@dataclass
class GeneGraph:
    """Ordered genes, ``edge_index`` ``[2, E]`` (int64), ``edge_weight`` ``[E]`` (float32) and
    provenance (``kind``, ``sources`` with sha256 checksums, ``params``, and for derived graphs the
    parent's provenance and the operation)."""

    genes: list[str]
    edge_index: np.ndarray
    edge_weight: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.genes = [str(g) for g in self.genes]
        self.edge_index = np.asarray(self.edge_index, dtype=np.int64).reshape(2, -1)
        self.edge_weight = np.asarray(self.edge_weight, dtype=np.float32).ravel()
        if self.edge_weight.shape[0] != self.edge_index.shape[1]:
            raise GraphError(
                f"edge_weight has {self.edge_weight.shape[0]} entries for {self.edge_index.shape[1]} edges."
            )
        if len(set(self.genes)) != len(self.genes):
            raise GraphError("a GeneGraph's genes must be unique.")
        if self.edge_index.size and (self.edge_index.min() < 0 or self.edge_index.max() >= len(self.genes)):
            raise GraphError("edge_index refers to nodes outside the gene list.")
        if not np.all(np.isfinite(self.edge_weight)):
            raise GraphError("edge weights must be finite.")

    # -- views -----------------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.genes)

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def kind(self) -> str:
        return str(self.provenance.get("kind", "graph"))

    @property
    def gene_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}

    def annotated(self) -> np.ndarray:
        """Boolean mask of nodes with at least one edge to a different node."""
        src, dst = self.edge_index
        mask = np.zeros(self.n_nodes, dtype=bool)
        off = src != dst
        mask[src[off]] = True
        mask[dst[off]] = True
        return mask

    def in_degree(self) -> np.ndarray:
        return np.bincount(self.edge_index[1], minlength=self.n_nodes)

    def to_scipy(self):
        """Weighted adjacency as CSR, ``A[target, source]``."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.edge_weight, (self.edge_index[1], self.edge_index[0])),
                             shape=(self.n_nodes, self.n_nodes))

    def to_torch(self):
        """``(edge_index, edge_weight)`` as torch tensors (long, float32)."""
        import torch

        return torch.from_numpy(self.edge_index.copy()), torch.from_numpy(self.edge_weight.copy())

    def edge_frame(self):
        """Edges as a DataFrame with ``source``, ``target`` (gene names) and ``weight``."""
        import pandas as pd

        g = np.asarray(self.genes, dtype=object)
        return pd.DataFrame({"source": g[self.edge_index[0]], "target": g[self.edge_index[1]],
                             "weight": self.edge_weight})

    @property
    def content_hash(self) -> str:
        return hash_arrays(np.asarray(self.genes, dtype=object), self.edge_index, self.edge_weight)

    # -- alignment ---------------------------------------------------------------------------------------
    def align(self, genes: Sequence[str], *, self_loops: bool = False) -> tuple[GeneGraph, AlignReport]:
        """Re-index onto ``genes`` (in that order).

        Edges between two requested genes are kept; others dropped. Requested genes that are not
        nodes become isolated nodes (with a unit self-loop if ``self_loops``). The report counts how
        many requested genes have no annotation (no edge to another requested gene).
        """
        genes = [str(g) for g in genes]
        if len(set(genes)) != len(genes):
            raise GraphError("align(genes): the gene list has duplicates.")
        target_index = {g: i for i, g in enumerate(genes)}
        remap = np.array([target_index.get(g, -1) for g in self.genes], dtype=np.int64)
        if self.n_edges:
            new = remap[self.edge_index]
            keep = (new >= 0).all(axis=0)
            ei, ew = new[:, keep], self.edge_weight[keep]
        else:
            keep = np.zeros(0, dtype=bool)
            ei, ew = np.zeros((2, 0), dtype=np.int64), np.zeros(0, dtype=np.float32)
        known = set(self.genes)  # built once: a set per requested gene made align quadratic
        missing = [g for g in genes if g not in known]
        if self_loops:
            has_loop = np.zeros(len(genes), dtype=bool)
            has_loop[ei[0][ei[0] == ei[1]]] = True
            add = np.nonzero(~has_loop)[0]
            ei = np.concatenate([ei, np.stack([add, add])], axis=1)
            ew = np.concatenate([ew, np.ones(len(add), dtype=np.float32)])
        prov = {"kind": self.kind, "operation": "align", "n_genes": len(genes), "parent": self.provenance}
        out = GeneGraph(genes, ei, ew, prov)
        ann = out.annotated()
        report = AlignReport(
            n_genes=len(genes), n_in_graph=len(genes) - len(missing), n_annotated=int(ann.sum()),
            missing=missing, n_edges_kept=int(keep.sum()), n_edges_dropped=int((~keep).sum()),
        )
        log.info("aligned %s graph: %s", self.kind, report)
        return out, report

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.npz`` arrays) and ``path`` with ``.json`` (genes, provenance)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        with atomic_path(path, ".npz") as tmp:
            np.savez_compressed(tmp, edge_index=self.edge_index, edge_weight=self.edge_weight)
        write_json(path.with_suffix(".json"), {
            "format": _GRAPH_FORMAT, "genes": self.genes, "provenance": self.provenance,
            "n_edges": self.n_edges, "content_hash": self.content_hash,
        })
        return path

    @classmethod
    def load(cls, path: str | Path) -> GeneGraph:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            raise GraphError(f"{path}: graph not found (need both {path.name} and {meta_path.name}).")
        meta = read_json(meta_path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                ei, ew = npz["edge_index"], npz["edge_weight"]
        except Exception as exc:  # noqa: BLE001
            raise GraphError(f"{path}: unreadable graph file ({exc}); rebuild it.") from None
        graph = cls(meta["genes"], ei, ew, meta.get("provenance", {}))
        if meta.get("content_hash") and meta["content_hash"] != graph.content_hash:
            raise GraphError(f"{path}: content does not match its recorded hash; the file is corrupt. Rebuild it.")
        return graph

    def __repr__(self) -> str:
        return f"GeneGraph({self.kind}: {self.n_nodes} genes, {self.n_edges} edges)"
