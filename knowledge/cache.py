"""A cache of built graphs, keyed by their inputs and parameters.

Entries live under ``priorgnn.cache.cache_dir() / "graphs" / <kind>`` as GeneGraph files
(``<key>.npz`` + ``<key>.json``). The key is a hash of everything the graph depends on (input
file checksums, parameters, gene list) and is stored in the entry's provenance; an entry whose
key or content hash does not match, or that cannot be read, is rebuilt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from knowledge.graph import GeneGraph
from priorgnn.cache import cache_dir
from priorgnn.io import hash_arrays, sha256_file
from priorgnn.errors import GraphError, PriorGNNError

log = logging.getLogger(__name__)

__all__ = ["cached", "cache_key", "cache_path", "file_key", "go_graph", "coexpression", "CACHE_VERSION"]

#: Bump when a builder's output changes for the same inputs, to invalidate old entries.
CACHE_VERSION = 1


def cache_key(kind: str, key_parts: Any) -> str:
    """The hash of ``kind``, :data:`CACHE_VERSION` and ``key_parts`` (JSON-able values, arrays)."""
    return hash_arrays(str(kind), CACHE_VERSION, key_parts)


def cache_path(kind: str, key: str) -> Path:
    safe_kind = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in kind) or "graph"
    return cache_dir() / "graphs" / safe_kind / f"{key}.npz"


def file_key(path: str | os.PathLike | None) -> str | None:
    """The sha256 of a file's content (``None`` for ``None``): cache keys follow content, not names."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise GraphError(f"{path}: file not found. Check the path.")
    return sha256_file(path)


def cached(kind: str, key_parts: Any, builder: Callable[[], GeneGraph], *, refresh: bool = False) -> GeneGraph:
    """Return the cached graph for ``(kind, key_parts)``, building and storing it if needed.

    Parameters
    ----------
    kind
        A short name (``"go"``, ``"coexpression"``, ...) grouping entries on disk.
    key_parts
        Everything the graph depends on: input checksums (see :func:`file_key`), parameters, gene
        lists. JSON-able values and numpy arrays.
    builder
        Called without arguments to build the graph on a miss.
    refresh
        Rebuild even if an entry exists.

    Returns
    -------
    GeneGraph
        Its provenance has ``cache_key``.
    """
    key = cache_key(kind, key_parts)
    path = cache_path(kind, key)
    if not refresh and path.exists():
        try:
            graph = GeneGraph.load(path)
        except (PriorGNNError, OSError, ValueError, KeyError) as exc:
            log.warning("cache entry %s is unreadable (%s); rebuilding", path.name, exc)
        else:
            if graph.provenance.get("cache_key") == key:
                log.info("using cached %s graph %s", kind, path.name)
                return graph
            log.warning("cache entry %s does not match its key; rebuilding", path.name)
    graph = builder()
    if not isinstance(graph, GeneGraph):
        raise GraphError(f"the {kind} graph builder returned {type(graph).__name__}, not a GeneGraph.")
    graph.provenance = {**graph.provenance, "cache_key": key}
    graph.save(path)
    log.info("cached %s graph as %s", kind, path.name)
    return graph


def go_graph(
    *, obo: str | os.PathLike | None = None, gaf: str | os.PathLike | None = None,
    gene2go: str | os.PathLike | None = None, tsv: str | os.PathLike | None = None,
    genes: Sequence[str] | None = None, k: int = 20, threshold: float = 0.1,
    namespaces: Sequence[str] | str | None = None, evidence: Sequence[str] | str | None = None,
    exclude_evidence: Sequence[str] | str | None = ("ND",), propagate: bool = False,
    relationships: Sequence[str] = (), gene_id: str = "symbol", use_cache: bool = True,
    progress: bool = False,
) -> GeneGraph:
    """Build (or fetch from the cache) a GO graph from exactly one annotation source.

    Parameters
    ----------
    obo, gaf
        Ontology and GAF annotations (see :func:`knowledge.go.read_gaf`).
    gene2go
        GEARS's ``gene2go_all.pkl`` (see :func:`knowledge.go.read_gene2go_pickle`).
    tsv
        A gene<TAB>GO-id table (see :func:`knowledge.go.read_go_tsv`).
    genes
        Nodes of the graph (default: every annotated gene).
    k, threshold
        See :func:`knowledge.go.build_go_graph`.
    namespaces, evidence, exclude_evidence, propagate, relationships, gene_id
        GAF reading options (GAF only).
    use_cache
        Look up and store the graph in the cache.
    progress
        Show progress bars.
    """
    from knowledge.go import build_go_graph, read_gaf, read_gene2go_pickle, read_go_tsv

    given = [name for name, v in (("gaf", gaf), ("gene2go", gene2go), ("tsv", tsv)) if v is not None]
    if len(given) != 1:
        raise GraphError("give exactly one annotation source: obo+gaf, gene2go (pickle) or tsv "
                         f"(got {', '.join(given) or 'none'}).")
    if gaf is not None:
        def read():
            return read_gaf(gaf, obo, namespaces=namespaces, evidence=evidence,
                            exclude_evidence=exclude_evidence, propagate=propagate,
                            relationships=relationships, gene_id=gene_id, progress=progress)
        inputs = {"gaf": file_key(gaf), "obo": file_key(obo),
                  "read": {"namespaces": namespaces if isinstance(namespaces, (str, type(None))) else sorted(namespaces),
                           "evidence": evidence if isinstance(evidence, (str, type(None))) else sorted(evidence),
                           "exclude_evidence": exclude_evidence if isinstance(exclude_evidence, (str, type(None)))
                           else sorted(exclude_evidence),
                           "propagate": bool(propagate), "relationships": sorted(relationships),
                           "gene_id": gene_id}}
    elif gene2go is not None:
        def read():
            return read_gene2go_pickle(gene2go)
        inputs = {"gene2go": file_key(gene2go)}
    else:
        def read():
            return read_go_tsv(tsv)
        inputs = {"tsv": file_key(tsv)}

    def build() -> GeneGraph:
        return build_go_graph(read(), genes, k=k, threshold=threshold, progress=progress)

    if not use_cache:
        return build()
    parts = {**inputs, "genes": list(genes) if genes is not None else None, "k": int(k),
             "threshold": float(threshold)}
    return cached("go", parts, build)


def coexpression(
    data, split, *, k: int = 20, threshold: float = 0.4, include_combinations: bool = True,
    use_cache: bool = True, progress: bool = False,
) -> GeneGraph:
    """Build (or fetch from the cache) the co-expression graph of ``data`` over ``split``'s training
    cells (see :func:`knowledge.coexpression.build_coexpression_graph`).

    The key covers the data's content hash, the training conditions and the parameters.
    """
    from knowledge.coexpression import build_coexpression_graph

    def build() -> GeneGraph:
        return build_coexpression_graph(data, split, k=k, threshold=threshold,
                                        include_combinations=include_combinations, progress=progress)

    if not use_cache:
        return build()
    parts = {"data": data.content_hash, "train": sorted(split.train), "k": int(k),
             "threshold": float(threshold), "include_combinations": bool(include_combinations)}
    return cached("coexpression", parts, build)
