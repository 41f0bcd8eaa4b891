"""Benchmark the GO graph (and the co-expression graph) against their targets and cell-gears.

Every measured step runs in its own child process, so its peak memory is its own:

1. **parse**: the human OBO + GAF through goatools (:func:`knowledge.go.read_gaf`), for each
   annotation filter; the annotations are handed on as a ``gene2go`` pickle.
2. **build**: :func:`knowledge.go.build_go_graph` for all annotated genes (k=20, threshold 0.1),
   timed inside the child (reading the pickle is not counted).
3. **cell-gears**: ``gears.utils.make_GO`` (its default pool of 25 workers) on 5,000 of those genes,
   then GEARS's ``groupby('target').apply(nlargest(k + 1))``, side by side with
   :func:`~knowledge.go.build_go_graph` on the same genes, in the same gene order, from the same
   ``gene2go_all.pkl``; the edge sets are compared.
4. **co-expression** (``--coexpression``): the chunked co-expression graph of a synthetic
   100,000-cell x 5,000-gene sparse matrix.

Peak memory is the largest sum of proportional set sizes (``Pss`` in ``/proc/PID/smaps_rollup``)
over the child's process tree, sampled every 0.1 s: forked pool workers share pages, which a sum of
resident sizes would count once per worker. The child's own peak resident size (``ru_maxrss``, as
``/usr/bin/time -v`` reports it) is listed beside it.

Usage (from the project root)::

    .venv/bin/python benchmarks/go_graph.py [--go-dir ../shared/data/go] [--coexpression]

Results go to ``benchmarks/results/go_graph.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import cpu_model, memory_bytes
from priorgnn.io import read_json, write_json, write_text

ROOT = Path(__file__).resolve().parent.parent

GIB = 1024 ** 3
TARGET_BUILD_S = 20.0
TARGET_BUILD_BYTES = 4e9
TARGET_SPEEDUP = 100.0
FILTERS = {
    # name: (description, read_gaf keyword arguments)
    "default": ("all namespaces, NOT and ND (no biological data) excluded", {}),
    "no_iea": ("all namespaces, NOT, ND and IEA (electronic) excluded", {"exclude_evidence": ["ND", "IEA"]}),
    "propagated": ("as default, propagated to is_a ancestors", {"propagate": True}),
}


# ---------------------------------------------------------------------------------------------------
# measuring a child process
# ---------------------------------------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree_pss(pid: int) -> int:
    """Sum of Pss (bytes) over ``pid`` and its descendants."""
    kids = _children_map()
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def run_child(stage: str, work: Path, *extra: str) -> dict:
    """Run this script's ``stage`` in a child; return its JSON result plus wall time and peaks."""
    log_path = work / f"{stage}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--work", str(work), *extra]
    peak = 0
    stop = threading.Event()
    t0 = time.perf_counter()
    with open(log_path, "w") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, cwd=work)

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_pss(proc.pid))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed ({proc.returncode}); see {log_path}:\n"
                         + log_path.read_text()[-3000:])
    result = read_json(work / f"{stage}.json")
    result.update(wall_s=wall, peak_pss=peak, maxrss=usage.ru_maxrss * 1024)
    print(f"  {stage}: {wall:.1f} s wall, peak PSS {peak / GIB:.2f} GiB", flush=True)
    return result


# ---------------------------------------------------------------------------------------------------
# stages (run in children)
# ---------------------------------------------------------------------------------------------------
def _warm_up() -> None:
    """Import and first-call costs (torch, BLAS threads) out of the timed region."""
    import numpy as np

    from knowledge.go import build_go_graph

    rng = np.random.default_rng(0)
    build_go_graph({f"g{i}": {f"GO:{t:07d}" for t in rng.integers(0, 30, 4)} for i in range(200)})


def stage_parse(work: Path, go_dir: Path, name: str) -> dict:
    from knowledge.go import read_gaf, read_obo

    t0 = time.perf_counter()
    dag = read_obo(go_dir / "go-basic.obo.gz")
    t1 = time.perf_counter()
    ann = read_gaf(go_dir / "goa_human.gaf.gz", dag, **FILTERS[name][1])
    t2 = time.perf_counter()
    ann.to_gene2go_pickle(work / f"gene2go_{name}.pkl")
    return {"obo_s": t1 - t0, "gaf_s": t2 - t1, "n_genes": len(ann), "n_terms": len(ann.terms),
            "n_annotations": ann.n_annotations, "n_terms_obo": len({r.item_id for r in dag.values()})}


def stage_build(work: Path, name: str) -> dict:
    import numpy as np

    from knowledge.go import build_go_graph, read_gene2go_pickle

    ann = read_gene2go_pickle(work / f"gene2go_{name}.pkl")
    _warm_up()
    t0 = time.perf_counter()
    graph = build_go_graph(ann, k=20, threshold=0.1)
    t1 = time.perf_counter()
    return {"build_s": t1 - t0, "n_genes": graph.n_nodes, "n_edges": graph.n_edges,
            "max_in_degree": int(graph.in_degree().max()), "min_weight": float(np.min(graph.edge_weight))}


def stage_gears(work: Path) -> dict:
    import pandas as pd
    from gears.utils import make_GO

    genes = (work / "genes5k.txt").read_text().split()
    os.chdir(work / "gears_cwd")  # make_GO first looks for ./data/go_essential_<name>.csv
    t0 = time.perf_counter()
    df = make_GO(str(work / "gears_data"), genes, "benchmark", save=False)  # default: 25 workers
    t1 = time.perf_counter()
    k = 20
    out = df.groupby("target").apply(lambda x: x.nlargest(k + 1, ["importance"])).reset_index(drop=True)
    t2 = time.perf_counter()
    out[["source", "target", "importance"]].to_csv(work / "gears_edges.csv", index=False)
    import inspect

    workers = inspect.signature(make_GO).parameters["num_workers"].default
    return {"make_go_s": t1 - t0, "topk_s": t2 - t1, "n_pairs": len(df), "n_edges": len(out), "workers": workers}


def stage_ours5k(work: Path) -> dict:
    from knowledge.go import build_go_graph, read_gene2go_pickle

    genes = (work / "genes5k.txt").read_text().split()
    ann = read_gene2go_pickle(work / "gears_data" / "gene2go_all.pkl")
    _warm_up()
    t0 = time.perf_counter()
    graph = build_go_graph(ann, genes, k=20, threshold=0.1)
    t1 = time.perf_counter()
    graph.edge_frame().to_csv(work / "ours_edges.csv", index=False)
    return {"build_s": t1 - t0, "n_edges": graph.n_edges}


def stage_coexpr(work: Path, n_cells: int, n_genes: int) -> dict:
    import numpy as np
    import scipy.sparse as sp

    from knowledge.coexpression import coexpression_graph

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    module = rng.integers(0, 100, n_genes)  # 100 co-regulated gene modules
    blocks = []
    for s in range(0, n_cells, 5000):
        c = min(5000, n_cells - s)
        z = rng.normal(size=(c, 100)).astype(np.float32)[:, module] * 1.5
        z += rng.normal(size=z.shape).astype(np.float32)
        z -= 1.2  # about 20% of entries stay positive: a sparse, correlated, log-scale matrix
        np.maximum(z, 0, out=z)
        blocks.append(sp.csr_matrix(z))
    X = sp.vstack(blocks, format="csr")
    del blocks, z
    t1 = time.perf_counter()
    genes = [f"g{i}" for i in range(n_genes)]
    graph = coexpression_graph(X, genes, k=20, threshold=0.4)
    t2 = time.perf_counter()
    return {"make_data_s": t1 - t0, "build_s": t2 - t1, "nnz": int(X.nnz), "density": X.nnz / (n_cells * n_genes),
            "x_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes), "n_edges": graph.n_edges,
            "n_cells": n_cells, "n_genes": n_genes}


# ---------------------------------------------------------------------------------------------------
# comparison and report
# ---------------------------------------------------------------------------------------------------
def compare_edges(work: Path) -> dict:
    import numpy as np
    import pandas as pd

    theirs = pd.read_csv(work / "gears_edges.csv", keep_default_na=False)
    mine = pd.read_csv(work / "ours_edges.csv", keep_default_na=False)
    t = {(s, g): w for s, g, w in theirs[["source", "target", "importance"]].itertuples(index=False)}
    m = {(s, g): w for s, g, w in mine[["source", "target", "weight"]].itertuples(index=False)}
    cut = theirs.groupby("target")["importance"].min().to_dict()

    def untied(edges: dict) -> set:
        return {e for e, w in edges.items() if not np.isclose(w, cut.get(e[1], -1.0), atol=1e-6)}

    common = set(t) & set(m)
    return {
        "identical": set(t) == set(m),
        "identical_ties_aside": untied(t) == untied(m),
        "only_gears": len(set(t) - set(m)),
        "only_ours": len(set(m) - set(t)),
        "max_weight_diff": max((abs(t[e] - m[e]) for e in common), default=0.0),
    }


def machine() -> str:
    mem = memory_bytes() or 0
    return f"{os.cpu_count()} cores ({cpu_model('unknown CPU')}), {mem / GIB:.0f} GiB memory, CPU only, {platform.platform()}"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"python {platform.python_version()}"]
    for pkg in ("numpy", "scipy", "torch", "goatools", "cell-gears", "pandas"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def _flag(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict, args: argparse.Namespace, command: str, load: tuple[str, str]) -> str:
    busy = float(load[0].split()[0]) > 1.5  # before any stage of this run started
    lines = [
        "# GO graph benchmark",
        "",
        f"Command (from the project root): `{command}`",
        "",
        f"Machine: {machine()}.  ",
        f"Software: {versions()}.  ",
        f"Load average (1, 5, 15 min) at start: {load[0]}; at end: {load[1]}. The 2 cores are shared with "
        "other engineers' jobs, so wall times can be noisy"
        + (": this run started with other jobs running (1-min load above 1.5), so read its times as upper "
           "bounds." if busy else "."),
        "",
        "Peak memory: the largest sum of proportional set sizes (Pss) over the step's process tree, "
        "sampled every 0.1 s; in brackets the child's own peak resident size (ru_maxrss). Each step is a "
        "fresh Python process, so these include the interpreter and imports (about 0.3-0.5 GB with "
        "numpy, scipy and torch).",
        "",
        "## GO graph for all annotated human genes",
        "",
        f"Data: `{os.path.relpath(args.go_dir.resolve(), ROOT)}` (GO release 2022-07-01, go-basic.obo; NCBI gene2go GAF of 2022-09-12). "
        "Graph: k = 20, Jaccard > 0.1. Construction is timed inside the process, after reading the "
        f"annotations; targets: under {TARGET_BUILD_S:.0f} s and under {TARGET_BUILD_BYTES / 1e9:.0f} GB.",
        "",
        "| annotations | genes | terms | gene-term pairs | parse OBO + GAF | parse peak | construction | "
        f"construction peak | edges | < {TARGET_BUILD_S:.0f} s | < {TARGET_BUILD_BYTES / 1e9:.0f} GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, (desc, _) in FILTERS.items():
        if name not in results["parse"]:
            continue
        p, b = results["parse"][name], results["build"][name]
        lines.append(
            f"| {desc} | {p['n_genes']:,} | {p['n_terms']:,} | {p['n_annotations']:,} | "
            f"{p['obo_s']:.1f} + {p['gaf_s']:.1f} s | {p['peak_pss'] / GIB:.2f} GiB "
            f"({p['maxrss'] / GIB:.2f}) | **{b['build_s']:.1f} s** | {b['peak_pss'] / GIB:.2f} GiB "
            f"({b['maxrss'] / GIB:.2f}) | {b['n_edges']:,} | {_flag(b['build_s'] < TARGET_BUILD_S)} | "
            f"{_flag(max(b['peak_pss'], b['maxrss']) < TARGET_BUILD_BYTES)} |"
        )
    lines += [
        "",
        "Genes are keyed by symbol (GAF column 3); a gene counts when at least one annotation passes the "
        "filter. The GAF has no NOT-qualified lines; the 20,728 genes of the file include those whose only "
        "annotations have evidence ND.",
    ]
    if "gears" in results:
        g, o, c = results["gears"], results["ours5k"], results["compare"]
        gears_total = g["make_go_s"] + g["topk_s"]
        ratio = gears_total / o["build_s"]
        ratio_make = g["make_go_s"] / o["build_s"]
        lines += [
            "",
            f"## Against cell-gears `make_GO` on {args.n_genes:,} genes",
            "",
            f"The same {args.n_genes:,} genes (drawn with seed {args.seed} from the default annotation set), "
            "the same `gene2go_all.pkl`, the same gene order; k = 20, threshold 0.1. cell-gears: "
            f"`make_GO(..., save=False)` with its default pool of {g['workers']} workers, then "
            "`groupby('target').apply(lambda x: x.nlargest(k + 1, ['importance']))`. priorgnn: "
            "`knowledge.go.build_go_graph`, which includes the top-k step.",
            "",
            "| | wall time | peak memory (Pss of the process tree) | edges |",
            "|---|---:|---:|---:|",
            f"| cell-gears make_GO | {g['make_go_s']:.1f} s | {g['peak_pss'] / GIB:.2f} GiB | {g['n_pairs']:,} pairs |",
            f"| cell-gears top-k step | {g['topk_s']:.1f} s | (same process) | {g['n_edges']:,} |",
            f"| priorgnn build_go_graph | {o['build_s']:.2f} s | {o['peak_pss'] / GIB:.2f} GiB | {o['n_edges']:,} |",
            "",
            f"Speed-up: **{ratio:,.0f}x** (make_GO + top-k against build_go_graph; {ratio_make:,.0f}x for make_GO "
            f"alone); target >= {TARGET_SPEEDUP:.0f}x: **{_flag(ratio >= TARGET_SPEEDUP)}**.  ",
            f"Child peak resident sizes (ru_maxrss of the largest process): cell-gears {g['maxrss'] / GIB:.2f} GiB, "
            f"priorgnn {o['maxrss'] / GIB:.2f} GiB.  ",
            f"Edge sets identical: **{c['identical']}** (ties aside: {c['identical_ties_aside']}; only in "
            f"cell-gears: {c['only_gears']}, only in priorgnn: {c['only_ours']}); largest weight difference "
            f"{c['max_weight_diff']:.1e} (float32 storage).",
        ]
    if "coexpr" in results:
        x = results["coexpr"]
        lines += [
            "",
            "## Co-expression graph, chunked",
            "",
            f"Synthetic log-scale sparse matrix: {x['n_cells']:,} cells x {x['n_genes']:,} genes, density "
            f"{x['density']:.1%} ({x['x_bytes'] / GIB:.2f} GiB as CSR), with correlated gene modules; "
            "k = 20, |r| > 0.4, all cells as training cells.",
            "",
            "| step | time | peak memory (Pss) |",
            "|---|---:|---:|",
            f"| make the matrix | {x['make_data_s']:.1f} s | |",
            f"| co-expression graph (two chunked passes, dsyrk) | {x['build_s']:.1f} s | "
            f"{x['peak_pss'] / GIB:.2f} GiB (whole process, matrix included) |",
            "",
            f"{x['n_edges']:,} edges.",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--go-dir", type=Path, default=ROOT.parent / "shared" / "data" / "go",
                        help="folder with go-basic.obo.gz and goa_human.gaf.gz (default ../shared/data/go)")
    parser.add_argument("--n-genes", type=int, default=5000, help="genes for the cell-gears comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-gears", action="store_true", help="leave out the cell-gears comparison")
    parser.add_argument("--coexpression", action="store_true", help="also time the co-expression graph")
    parser.add_argument("--coexpr-cells", type=int, default=100_000)
    parser.add_argument("--coexpr-genes", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "go_graph.md")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stage:  # child process
        work = args.work
        if args.stage.startswith("parse_"):
            res = stage_parse(work, args.go_dir, args.stage[len("parse_"):])
        elif args.stage.startswith("build_"):
            res = stage_build(work, args.stage[len("build_"):])
        elif args.stage == "gears":
            res = stage_gears(work)
        elif args.stage == "ours5k":
            res = stage_ours5k(work)
        elif args.stage == "coexpr":
            res = stage_coexpr(work, args.coexpr_cells, args.coexpr_genes)
        else:
            raise SystemExit(f"unknown stage {args.stage}")
        write_json(work / f"{args.stage}.json", res)
        return 0

    if not (args.go_dir / "go-basic.obo.gz").exists() or not (args.go_dir / "goa_human.gaf.gz").exists():
        raise SystemExit(f"{args.go_dir}: needs go-basic.obo.gz and goa_human.gaf.gz")
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/go_graph.py", *(argv or sys.argv[1:])])
    load0 = open("/proc/loadavg").read().split()[:3]
    results: dict = {"parse": {}, "build": {}}
    with tempfile.TemporaryDirectory(prefix="go-bench-") as tmp:
        work = Path(tmp)
        common = ["--go-dir", str(args.go_dir.resolve())]
        for name in FILTERS:
            print(f"{name}: {FILTERS[name][0]}", flush=True)
            results["parse"][name] = run_child(f"parse_{name}", work, *common)
            results["build"][name] = run_child(f"build_{name}", work)
        if not args.skip_gears:
            import numpy as np

            from knowledge.go import read_gene2go_pickle

            ann = read_gene2go_pickle(work / "gene2go_default.pkl")
            rng = np.random.default_rng(args.seed)
            genes = [str(g) for g in rng.choice(ann.genes, size=args.n_genes, replace=False)]
            (work / "genes5k.txt").write_text("\n".join(genes) + "\n")
            (work / "gears_cwd").mkdir()
            ann.restrict(genes).to_gene2go_pickle(work / "gears_data" / "gene2go_all.pkl", genes=genes)
            print(f"cell-gears comparison on {len(genes)} genes", flush=True)
            results["ours5k"] = run_child("ours5k", work)
            results["gears"] = run_child("gears", work)
            results["compare"] = compare_edges(work)
            print(f"  edges identical: {results['compare']}", flush=True)
        if args.coexpression:
            print("co-expression", flush=True)
            results["coexpr"] = run_child("coexpr", work, "--coexpr-cells", str(args.coexpr_cells),
                                          "--coexpr-genes", str(args.coexpr_genes))
    load1 = open("/proc/loadavg").read().split()[:3]
    text = report(results, args, command, (" ".join(load0), " ".join(load1)))
    write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
