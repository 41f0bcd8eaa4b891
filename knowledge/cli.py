"""``python -m knowledge``: build, degrade and inspect prior graphs.

Each ``build-*`` command writes a graph as ``OUT.npz`` (arrays) plus ``OUT.json`` (genes and
provenance). Errors caused by the input are printed as one line on stderr with exit code 2; add
``--debug`` for the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from priorgnn.cli import ArgumentParser, run_main
from priorgnn.errors import ConfigError, PriorGNNError

log = logging.getLogger(__name__)

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  python -m knowledge build-go --obo go-basic.obo.gz --gaf goa_human.gaf.gz --data perturb.h5ad --out go.npz
  python -m knowledge build-go --gene2go gene2go_all.pkl --genes genes.txt --out go.npz
  python -m knowledge build-coexpression --data perturb.h5ad --split split.json --out coexpr.npz
  python -m knowledge build-edgelist --tsv string_ppi.tsv --out ppi.npz
  python -m knowledge degrade --graph go.npz --op dropout --frac 0.5 --seed 0 --out go_drop50.npz
  python -m knowledge info go.npz
  python -m knowledge download-go --help
"""


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _read_gene_list(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: gene list not found (one gene symbol per line).")
    genes: list[str] = []
    seen: set[str] = set()
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        g = line.split()[0]
        if g not in seen:
            seen.add(g)
            genes.append(g)
    if not genes:
        raise ConfigError(f"{p}: the gene list is empty.")
    return genes


def _genes_of_h5ad(path: str) -> list[str]:
    """The gene symbols of an ``.h5ad`` (``var['gene_name']`` if present, else the var index),
    read without loading the expression matrix."""
    import anndata as ad

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: data file not found.")
    try:
        adata = ad.read_h5ad(p, backed="r")
    except Exception as exc:  # noqa: BLE001 - h5py/anndata raise many kinds
        raise ConfigError(f"{p}: not a readable .h5ad file ({exc}).") from None
    try:
        var = adata.var
        genes = var["gene_name"].astype(str).tolist() if "gene_name" in var else list(map(str, adata.var_names))
    finally:
        if adata.isbacked:
            adata.file.close()
    return genes


def _genes_option(args: argparse.Namespace) -> list[str] | None:
    if getattr(args, "genes", None):
        return _read_gene_list(args.genes)
    if getattr(args, "data", None):
        return _genes_of_h5ad(args.data)
    return None


def _summary(graph) -> str:
    import numpy as np

    src, dst = graph.edge_index
    loops = int((src == dst).sum())
    deg = graph.in_degree()
    w = graph.edge_weight
    lines = [
        f"{graph.kind} graph: {graph.n_nodes} genes, {graph.n_edges} edges ({loops} self-loops)",
        f"  genes with an edge to another gene: {int(graph.annotated().sum())}",
        f"  in-degree: mean {deg.mean():.2f}, max {int(deg.max()) if deg.size else 0}",
    ]
    if w.size:
        lines.append(f"  weights: min {w.min():.4g}, median {float(np.median(w)):.4g}, max {w.max():.4g}")
    prov = graph.provenance
    chain = []
    p = prov
    while isinstance(p, dict) and "operation" in p:
        op = p["operation"]
        chain.append(op.get("name", "?") if isinstance(op, dict) else str(op))
        p = p.get("parent", {})
    if chain:
        lines.append(f"  derived by: {' <- '.join(chain)}")
    base = p if isinstance(p, dict) else {}
    if base.get("params"):
        lines.append(f"  parameters: {json.dumps(base['params'], sort_keys=True)}")
    for src_info in base.get("sources", []):
        digest = src_info.get("sha256") or src_info.get("content_hash") or ""
        lines.append(f"  source: {src_info.get('role', '?')} {src_info.get('path', '?')} {digest[:12]}")
    return "\n".join(lines)


def _write(graph, out: str) -> None:
    path = graph.save(out)
    print(f"wrote {path} and {path.with_suffix('.json').name}")
    print(_summary(graph))


# ---------------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------------
def _exclusions(values: list[str] | None) -> tuple[str, ...]:
    if values is None:
        return ("ND",)
    if [v.lower() for v in values] == ["none"]:
        return ()
    return tuple(values)


def _cmd_build_go(args: argparse.Namespace) -> int:
    from knowledge.cache import go_graph

    if args.gaf and not args.obo:
        raise ConfigError("--gaf needs the ontology too: add --obo go-basic.obo[.gz].")
    if args.obo and not args.gaf:
        raise ConfigError("--obo is used with --gaf; with --gene2go or --tsv leave it out.")
    if not args.gaf and (args.propagate or args.part_of or args.evidence or args.namespace):
        raise ConfigError("--namespace, --evidence, --propagate and --part-of apply to --gaf input only.")
    if args.part_of and not args.propagate:
        raise ConfigError("--part-of extends --propagate; add --propagate.")
    graph = go_graph(
        obo=args.obo, gaf=args.gaf, gene2go=args.gene2go, tsv=args.tsv, genes=_genes_option(args),
        k=args.k, threshold=args.threshold,
        namespaces=args.namespace or None, evidence=args.evidence or None,
        exclude_evidence=_exclusions(args.exclude_evidence),
        propagate=args.propagate, relationships=("part_of",) if args.part_of else (),
        gene_id=args.gene_id, use_cache=not args.no_cache, progress=not args.quiet,
    )
    _write(graph, args.out)
    return 0


def _cmd_build_coexpression(args: argparse.Namespace) -> int:
    from knowledge.cache import coexpression
    from priorgnn.data.io import read_h5ad
    from priorgnn.data.splits import Split

    data = read_h5ad(args.data)
    split = Split.load(args.split)
    split.check(data.conditions)
    graph = coexpression(data, split, k=args.k, threshold=args.threshold,
                         include_combinations=not args.singles_only, use_cache=not args.no_cache,
                         progress=not args.quiet)
    _write(graph, args.out)
    return 0


def _cmd_build_edgelist(args: argparse.Namespace) -> int:
    from knowledge.edgelist import read_edge_list

    graph = read_edge_list(
        args.tsv, genes=_genes_option(args), directed=args.directed, default_weight=args.default_weight,
        self_loops=not args.no_self_loops, sep=args.sep, source_column=args.source_column,
        target_column=args.target_column, weight_column=args.weight_column or None,
    )
    _write(graph, args.out)
    return 0


def _cmd_degrade(args: argparse.Namespace) -> int:
    from knowledge.degrade import degrade
    from knowledge.graph import GeneGraph

    graph = GeneGraph.load(args.graph)
    kwargs = {}
    if args.swaps_per_edge is not None:
        if args.op != "rewire":
            raise ConfigError("--swaps-per-edge applies to --op rewire only.")
        kwargs["swaps_per_edge"] = args.swaps_per_edge
    out = degrade(graph, args.op, seed=args.seed, frac=args.frac, **kwargs)
    _write(out, args.out)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from knowledge.graph import GeneGraph

    graph = GeneGraph.load(args.graph)
    print(_summary(graph))
    if args.json:
        print(json.dumps(graph.provenance, indent=2, sort_keys=True, default=str))
    return 0


def _cmd_download_go(argv: Sequence[str]) -> int:
    import importlib

    try:
        download = importlib.import_module("knowledge.download")
    except ModuleNotFoundError as exc:
        if exc.name not in ("knowledge.download",):
            raise
        raise PriorGNNError(
            "download-go is not available in this installation (the module knowledge.download is "
            "missing). Fetch go-basic.obo and a GAF file from the Gene Ontology Consortium "
            "(https://current.geneontology.org) by hand and pass them with --obo/--gaf."
        ) from None
    entry = getattr(download, "main", None)
    if entry is None:
        raise PriorGNNError("knowledge.download has no main(argv); this installation is incomplete. "
                            "Reinstall the project.")
    result = entry(list(argv), prog="python -m knowledge download-go")
    return int(result or 0)


# ---------------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output control")
    g.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors; no progress bars")
    g.add_argument("--debug", action="store_true", help="debug logging, and a traceback on errors")


def _gene_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--genes", metavar="FILE", help="nodes of the graph: a file of gene symbols, one per line")
    g.add_argument("--data", metavar="H5AD",
                   help="nodes of the graph: the genes of this data set (var['gene_name'] or var names)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m knowledge",
        description="Build, degrade and inspect knowledge graphs (Gene Ontology, co-expression, edge "
                    "lists) used as priors. Graphs are written as OUT.npz + OUT.json (no pickle).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "build-go", help="GO graph: Jaccard similarity of genes' GO-term sets (GEARS's GO prior)",
        description="Build GEARS's GO graph: edge weight = Jaccard index of two genes' GO-term sets; "
                    "each gene keeps its --k most similar genes (plus itself) with Jaccard > "
                    "--threshold. Annotations come from --obo + --gaf, --gene2go or --tsv.",
    )
    src = p.add_argument_group("annotations (one of)")
    ex = src.add_mutually_exclusive_group(required=True)
    ex.add_argument("--gaf", metavar="F", help="GAF annotation file (plain or .gz); needs --obo")
    ex.add_argument("--gene2go", metavar="PKL", help="GEARS's gene2go_all.pkl (read safely: plain data only)")
    ex.add_argument("--tsv", metavar="F", help="two-column table: gene<TAB>GO id")
    src.add_argument("--obo", metavar="F", help="GO ontology, e.g. go-basic.obo (plain or .gz)")
    _gene_options(p)
    p.add_argument("--out", required=True, metavar="G.npz", help="output graph (G.npz + G.json)")
    f = p.add_argument_group("GAF filters")
    f.add_argument("--namespace", action="append", choices=["BP", "MF", "CC"],
                   help="keep annotations of this namespace (repeatable; default all three)")
    f.add_argument("--evidence", action="append", metavar="CODE",
                   help="keep only these evidence codes or goatools groups, e.g. EXP, IDA, Experimental "
                        "(repeatable; default all)")
    f.add_argument("--exclude-evidence", action="append", metavar="CODE",
                   help="drop these evidence codes or groups (repeatable; default ND; 'none' keeps all)")
    f.add_argument("--propagate", action="store_true",
                   help="add every ancestor term (over is_a) to each gene's annotations")
    f.add_argument("--part-of", action="store_true", help="with --propagate, also follow part_of relations")
    f.add_argument("--gene-id", choices=["symbol", "id"], default="symbol",
                   help="gene key: GAF column 3 (symbol, default) or column 2 (id)")
    g = p.add_argument_group("graph")
    g.add_argument("--k", type=int, default=20, help="neighbours kept per gene besides itself (default 20)")
    g.add_argument("--threshold", type=float, default=0.1, help="keep pairs with Jaccard > this (default 0.1)")
    g.add_argument("--no-cache", action="store_true", help="rebuild without reading or writing the cache")
    _common(p)
    p.set_defaults(func=_cmd_build_go)

    p = sub.add_parser(
        "build-coexpression", help="co-expression graph from the training cells of a split",
        description="Build GEARS's co-expression graph: |Pearson r| over the cells of the split's "
                    "training conditions (control included); each gene keeps its --k most correlated "
                    "genes (plus itself) with |r| > --threshold. Validation and test cells are never read.",
    )
    p.add_argument("--data", required=True, metavar="H5AD", help="perturbation data (.h5ad, log-normalised)")
    p.add_argument("--split", required=True, metavar="SPLIT.json", help="split file (priorgnn.data.splits)")
    p.add_argument("--out", required=True, metavar="G.npz", help="output graph (G.npz + G.json)")
    p.add_argument("--k", type=int, default=20, help="neighbours kept per gene besides itself (default 20)")
    p.add_argument("--threshold", type=float, default=0.4, help="keep pairs with |r| > this (default 0.4)")
    p.add_argument("--singles-only", action="store_true",
                   help="use control and single-perturbation training cells only, as GEARS does")
    p.add_argument("--no-cache", action="store_true", help="rebuild without reading or writing the cache")
    _common(p)
    p.set_defaults(func=_cmd_build_coexpression)

    p = sub.add_parser(
        "build-edgelist", help="any gene-gene edge list (e.g. protein interactions) as a graph",
        description="Read a table with a header naming source and target columns (and optionally a "
                    "weight column) as a graph. By default edges are symmetrised, missing weights are "
                    "1 and every gene gets a unit self-loop.",
    )
    p.add_argument("--tsv", required=True, metavar="F", help="edge table (plain or .gz)")
    p.add_argument("--out", required=True, metavar="G.npz", help="output graph (G.npz + G.json)")
    _gene_options(p)
    p.add_argument("--directed", action="store_true", help="keep edges as given (default: symmetrise)")
    p.add_argument("--default-weight", type=float, default=1.0, help="weight of edges without one (default 1)")
    p.add_argument("--no-self-loops", action="store_true", help="do not add a self-loop to every gene")
    p.add_argument("--sep", default="\t", help="column separator (default tab)")
    p.add_argument("--source-column", default="source", help="source column name (default source)")
    p.add_argument("--target-column", default="target", help="target column name (default target)")
    p.add_argument("--weight-column", default="weight",
                   help="weight column name, used if present (default weight; '' to ignore weights)")
    _common(p)
    p.set_defaults(func=_cmd_build_edgelist)

    p = sub.add_parser(
        "degrade", help="a degraded copy of a graph (dropout, rewire, permute, random, empty)",
        description="Write a seeded, degraded copy of a graph. dropout: remove --frac of the edges; "
                    "rewire: degree-preserving edge swaps; permute: shuffle gene labels; random: random "
                    "graph of equal density with the original weights; empty: self-loops only.",
    )
    p.add_argument("--graph", required=True, metavar="G.npz", help="input graph")
    p.add_argument("--op", required=True, choices=["dropout", "rewire", "permute", "random", "empty"])
    p.add_argument("--frac", type=float, help="fraction of edges to drop (dropout only)")
    p.add_argument("--seed", type=int, required=True, help="random seed")
    p.add_argument("--swaps-per-edge", type=float, help="rewire: swaps per edge (default 10)")
    p.add_argument("--out", required=True, metavar="G.npz", help="output graph (G.npz + G.json)")
    _common(p)
    p.set_defaults(func=_cmd_degrade)

    p = sub.add_parser("info", help="summary and provenance of a graph file",
                       description="Print a graph's size, degrees, weights and provenance.")
    p.add_argument("graph", metavar="G.npz")
    p.add_argument("--json", action="store_true", help="also print the full provenance as JSON")
    _common(p)
    p.set_defaults(func=_cmd_info)

    sub.add_parser("download-go", add_help=False,
                   help="download the current GO ontology and annotations (see download-go --help)")
    return parser


def _setup_logging(quiet: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if argv and argv[0] == "download-go":
        _setup_logging(False, debug)
        return run_main(lambda: int(_cmd_download_go(argv[1:]) or 0), debug)
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.quiet, args.debug)
    return run_main(lambda: int(args.func(args) or 0), args.debug)

