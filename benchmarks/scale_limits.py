"""Scale limits of the data layer on CPU: the largest data set that runs in a memory budget.

Builds synthetic log-normalised Perturb-seq data as ``.h5ad`` files, written chunk by chunk (the
generator never holds the matrix), of increasing size up to Replogle et al. 2022's K562
genome-wide screen (about 10,000 genes x 2,000,000 cells, about 10,000 single perturbations of
about 200 cells each, 5% control cells). Each step runs in a fresh child process whose peak
resident memory (``VmHWM``) is recorded; the parent stops a child whose RSS exceeds
``--max-rss-gb``.

Steps measured:

* **in memory** (the path ``train.py`` takes), per size: ``read_h5ad`` (load + validation), the
  content hash, pseudobulk means, scanpy's DE t-test (up to ``--scanpy-de-max-cells``: its time
  grows with conditions x cells), a split;
* **co-expression** graph from the training cells, at one size: its memory is ``genes^2`` and does
  not grow with cells; its time grows linearly with cells and is extrapolated;
* **streamed** (``priorgnn.data.stream.summarise_h5ad``): validation, pseudobulk and DE in one
  backed pass, at the genome-wide size;
* **summaries_only** (``priorgnn.data.stream.SummaryData.from_h5ad``, what ``train.py
  --summaries-only`` runs): the same pass plus the per-condition central moments the loss uses and
  the file's SHA-256, at the genome-wide size.

Usage (the committed table)::

    OMP_NUM_THREADS=1 python benchmarks/scale_limits.py --workdir SCRATCH_DIR \\
        --out benchmarks/results/scale_limits.md

``--append`` adds a run's measurements to those already in ``--out`` (same job and size: replaced);
``--render-only`` rewrites the table from the ``.json``, keeping the hand-written reading at its end.
``--quick`` runs a small ladder (a minute) to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

GB = 1024**3  # sizes are reported in GiB


# -- synthetic data, written chunk by chunk ------------------------------------------------------
def make_h5ad(path: Path, n_cells: int, n_genes: int, density: float, *, cells_per_condition: int = 200,
              ctrl_frac: float = 0.05, chunk: int = 10_000, pool_size: int = 6, seed: int = 0) -> dict:
    """Write a GEARS-style log-normalised ``.h5ad`` without ever holding its matrix.

    Each gene has its own detection rate (mean ``density``); stored values are log1p of gamma draws
    (0 to about 4, as log1p of normalised counts); each perturbed gene's own expression is raised
    in its cells. Row blocks are drawn from a pool of ``pool_size`` random blocks. Returns the
    number of stored values and of conditions.
    """
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    rng = np.random.default_rng(seed)
    genes = np.array([f"G{i:05d}" for i in range(n_genes)])
    n_ctrl = int(round(n_cells * ctrl_frac))
    n_pert = max(1, (n_cells - n_ctrl) // cells_per_condition)
    n_pert = min(n_pert, n_genes)
    targets = rng.permutation(n_genes)[:n_pert]
    labels = np.concatenate([np.full(n_ctrl, -1), np.repeat(np.arange(n_pert), cells_per_condition)])
    labels = np.concatenate([labels, rng.integers(0, n_pert, n_cells - labels.size)])[:n_cells]
    rng.shuffle(labels)
    names = np.array([f"{genes[t]}+ctrl" for t in targets] + ["ctrl"])
    cond = pd.Categorical.from_codes(np.where(labels < 0, n_pert, labels), categories=names)
    obs = pd.DataFrame({"condition": cond}, index=pd.RangeIndex(n_cells).astype(str))
    var = pd.DataFrame({"gene_name": genes}, index=genes)
    ad.AnnData(obs=obs, var=var).write_h5ad(path)

    # detection rate per gene: a spread around `density`, as real genes differ
    rate = np.clip(rng.lognormal(np.log(density), 0.8, n_genes), 0.002, 0.95)
    rate *= density / rate.mean()
    rate = np.clip(rate, 0.0, 0.98).astype(np.float32)
    # a pool of random blocks, reused with their own perturbation boosts: generating every value
    # would make the generator, not the measured steps, dominate the run time
    pool = []
    for _ in range(pool_size):
        mask = rng.random((chunk, n_genes), dtype=np.float32) < rate
        block = sp.csr_matrix(mask, dtype=np.float32)
        del mask
        block.data = np.log1p(rng.gamma(1.5, 2.0, block.nnz)).astype(np.float32)
        pool.append(block)
    nnz = 0
    with h5py.File(path, "a") as f:
        for i, s in enumerate(range(0, n_cells, chunk)):
            e = min(n_cells, s + chunk)
            lab = labels[s:e]
            pert_rows = np.nonzero(lab >= 0)[0]
            # each perturbed gene goes up in its own cells (an explicit entry, so stored)
            boost = sp.csr_matrix((np.full(pert_rows.size, 1.5, dtype=np.float32),
                                   (pert_rows, targets[lab[pert_rows]])), shape=(e - s, n_genes))
            block = (pool[i % pool_size][: e - s] + boost).tocsr()
            block.sort_indices()
            nnz += block.nnz
            if s == 0:
                write_elem(f, "X", block)  # resizable datasets: anndata sets maxshape
            else:
                sparse_dataset(f["X"]).append(block)
    return {"nnz": int(nnz), "n_conditions": int(n_pert) + 1}


# -- the child process: one measured job ----------------------------------------------------------
def _rss_now() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / GB
    return float("nan")


def _peak() -> float:
    """Peak RSS of this process. ``VmHWM`` starts afresh at exec; ``ru_maxrss`` would carry the
    parent's peak over from the fork."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # Linux: kB


def _emit(record: dict) -> None:
    print("@@" + json.dumps(record), flush=True)


def child(job: str, path: str, extra: dict) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PRIORGNN_CACHE_DIR", extra["cache"])  # the parent's scratch cache

    try:  # on a shared machine, let the kernel pick this job, not a neighbour's, when memory runs out
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    base = _peak()
    _emit({"step": "start", "peak_gb": base, "rss_gb": _rss_now()})

    def step(name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _emit({"step": name, "seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
               "peak_gb": _peak(), "rss_gb": _rss_now()})
        return out

    if job == "in_memory":
        from priorgnn.data import make_split, read_h5ad
        from priorgnn.data.dataset import pseudobulk, rank_de_genes

        data = step("read_h5ad (load + validate)", lambda: read_h5ad(path))
        X = data.X
        _emit({"step": "matrix", "matrix_gb": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / GB})
        step("content hash", lambda: data.content_hash)
        step("pseudobulk means", lambda: pseudobulk(data.X, data.cell_conditions, data.conditions))
        if data.n_cells <= int(extra["scanpy_de_max_cells"]):
            step("DE (scanpy rank_genes_groups t-test)", lambda: rank_de_genes(data.adata, data.conditions))
        step("split (simulation)", lambda: make_split(data.conditions, "simulation", seed=1))
    elif job == "coexpression":
        from knowledge.coexpression import pearson_correlation
        from priorgnn.data import make_split, read_h5ad

        data = step("read_h5ad (load + validate)", lambda: read_h5ad(path))
        split = make_split(data.conditions, "simulation", seed=1)
        from knowledge.coexpression import training_cells

        rows, _ = training_cells(data, split)
        n = int(extra["coexpr_cells"])
        rows = rows[:n]
        _emit({"step": "coexpression cells", "n_cells": int(rows.size)})
        step(f"co-expression ({rows.size} training cells)", lambda: pearson_correlation(data.X, rows))
    elif job == "stream":
        from priorgnn.data.stream import summarise_h5ad

        s = step("streamed validate + pseudobulk + DE", lambda: summarise_h5ad(path, chunk_rows=20_000))
        _emit({"step": "summaries", "n_conditions": len(s.conditions)})
    elif job == "summaries_only":
        # what `train.py --summaries-only` holds: the summaries plus the per-condition central moments
        # [4, conditions, genes] its loss uses, and the file's SHA-256 (SummaryData.from_h5ad)
        from priorgnn.data.stream import SummaryData

        d = step("streamed summaries + moments + SHA-256 (train.py --summaries-only)",
                 lambda: SummaryData.from_h5ad(path, chunk_rows=20_000))
        _emit({"step": "summaries", "n_conditions": len(d.conditions), "moments_gb": d.moments.nbytes / GB})
    else:
        raise SystemExit(f"unknown job {job}")


def run_child(job: str, path: Path, extra: dict, max_rss_gb: float, timeout: float,
              min_free_gb: float = 1.0) -> dict:
    """Run one job in a fresh interpreter; stop it if its RSS passes ``max_rss_gb``."""
    import psutil

    cmd = [sys.executable, __file__, "--child", job, str(path), json.dumps(extra)]
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    t0 = time.perf_counter()
    stopped = None
    max_seen = 0.0
    free_start = min_free = psutil.virtual_memory().available / GB
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss / GB
        except psutil.NoSuchProcess:
            break
        max_seen = max(max_seen, rss)
        if rss > max_rss_gb:
            stopped = f"stopped: RSS {rss:.1f} GiB passed the {max_rss_gb:g} GiB budget"
            proc.kill()
            break
        free = psutil.virtual_memory().available / GB
        min_free = min(min_free, free)
        if free < min_free_gb:
            stopped = (f"stopped at {rss:.1f} GiB RSS: the machine had {free:.1f} GiB left "
                       f"(other jobs held {psutil.virtual_memory().used / GB - rss:.1f} GiB)")
            proc.kill()
            break
        if time.perf_counter() - t0 > timeout:
            stopped = f"stopped: ran past {timeout:.0f} s"
            proc.kill()
            break
        time.sleep(0.1)
    out, err = proc.communicate()
    steps = [json.loads(line[2:]) for line in out.splitlines() if line.startswith("@@")]
    ok = proc.returncode == 0 and stopped is None
    if not ok and stopped is None:
        if proc.returncode < 0:
            stopped = (f"killed by signal {-proc.returncode} at {max_seen:.1f} GiB RSS (signal 9 without a "
                       "message: the kernel's out-of-memory killer, other processes sharing the memory)")
        else:
            stopped = f"failed (exit {proc.returncode}): " + (err.strip().splitlines() or ["(no message)"])[-1][:300]
    return {"job": job, "ok": ok, "steps": steps, "stopped": stopped, "wall_s": time.perf_counter() - t0,
            "max_rss_polled_gb": max_seen, "available_gb_start": free_start, "available_gb_min": min_free}


# -- the parent ---------------------------------------------------------------------------------
def _fmt_size(n_cells: int, n_genes: int, nnz: int) -> str:
    return f"{n_cells:,} cells x {n_genes:,} genes ({nnz / 1e9:.2f} G stored values)"  # G = 10^9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="scale_work", help="folder for the generated .h5ad files (deleted after use)")
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--genes", type=int, default=10_000)
    ap.add_argument("--density", type=float, default=0.10, help="fraction of stored (non-zero) values")
    ap.add_argument("--in-memory-cells", default="100000,500000,1000000,2000000")
    ap.add_argument("--coexpr-cells", type=int, default=10_000, help="training cells for the co-expression timing")
    ap.add_argument("--stream-cells", type=int, default=2_000_000)
    ap.add_argument("--stream-jobs", default="stream,summaries_only",
                    help="streamed jobs at --stream-cells (default stream,summaries_only)")
    ap.add_argument("--scanpy-de-max-cells", type=int, default=100_000,
                    help="run scanpy's DE (time grows with conditions x cells) up to this many cells")
    ap.add_argument("--max-rss-gb", type=float, default=16.0, help="stop a job whose RSS passes this (GiB)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per measured job")
    ap.add_argument("--quick", action="store_true", help="a small ladder, to check the script")
    ap.add_argument("--append", action="store_true",
                    help="add to the results already in --out's .json (a measurement of the same job and size "
                         "replaces the old one) and render them all")
    ap.add_argument("--render-only", action="store_true", help="only re-render --out from its .json")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        job, path, extra = args.child
        child(job, path, json.loads(extra))
        return
    if args.render_only:
        results = json.loads(Path(args.out).with_suffix(".json").read_text())
        _write_md(Path(args.out), render(results, args))
        return
    if args.quick:
        args.genes, args.in_memory_cells, args.coexpr_cells, args.stream_cells = 500, "4000,20000", 2000, 20_000

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    os.environ["PRIORGNN_CACHE_DIR"] = str(cache)
    extra = {"cache": str(cache), "coexpr_cells": args.coexpr_cells,
             "scanpy_de_max_cells": args.scanpy_de_max_cells}
    sizes = [int(s) for s in args.in_memory_cells.split(",") if s]
    results = []
    t_start = time.perf_counter()

    def measure(kind: str, n_cells: int):
        path = work / f"synthetic_{n_cells}.h5ad"
        t0 = time.perf_counter()
        info = make_h5ad(path, n_cells, args.genes, args.density)
        gen_s = time.perf_counter() - t0
        print(f"[{time.perf_counter() - t_start:6.0f}s] wrote {path.name}: "
              f"{_fmt_size(n_cells, args.genes, info['nnz'])}, {path.stat().st_size / GB:.1f} GiB on disk, "
              f"{gen_s:.0f} s", flush=True)
        out = []
        for job in kind.split("+"):
            shutil.rmtree(cache, ignore_errors=True)
            res = run_child(job, path, extra, args.max_rss_gb, args.timeout)
            res.update(n_cells=n_cells, n_genes=args.genes, nnz=info["nnz"], n_conditions=info["n_conditions"],
                       file_gb=path.stat().st_size / GB, generate_s=gen_s, command=_command(args),
                       date=time.strftime("%Y-%m-%d %H:%M"))
            print(json.dumps(res), flush=True)
            out.append(res)
        path.unlink()
        return out

    stop_in_memory = streamed = False
    for i, n in enumerate(sizes):
        if stop_in_memory:
            break
        jobs = (["in_memory"] + (["coexpression"] if i == 0 and args.coexpr_cells else [])
                + (args.stream_jobs.split(",") if n == args.stream_cells else []))
        streamed |= n == args.stream_cells
        for res in measure("+".join(jobs), n):
            results.append(res)
            if res["job"] == "in_memory" and not res["ok"]:
                stop_in_memory = True  # larger sizes only fail later
    if args.stream_cells and not streamed:
        results.extend(measure("+".join(args.stream_jobs.split(",")), args.stream_cells))
    shutil.rmtree(cache, ignore_errors=True)

    print(f"total run time {(time.perf_counter() - t_start) / 60:.1f} min", flush=True)
    if args.out:
        store = Path(args.out).with_suffix(".json")
        if args.append and store.exists():
            # a new measurement replaces an old one of the same job and size, unless it failed where
            # the old one succeeded (e.g. stopped because other jobs had taken the memory)
            previous = {(r["job"], r["n_cells"]): r for r in json.loads(store.read_text())}
            for r in results:
                old = previous.get((r["job"], r["n_cells"]))
                if old is None or r["ok"] or not old["ok"]:
                    previous[(r["job"], r["n_cells"])] = r
                else:
                    print(f"kept the earlier successful {r['job']} at {r['n_cells']} cells: {r['stopped']}")
            results = list(previous.values())
            results.sort(key=lambda r: (r["n_cells"], ["in_memory", "coexpression", "stream", "summaries_only"].index(r["job"])))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(results, indent=1))
        _write_md(Path(args.out), render(results, args))
    print(render(results, args))


def _command(args) -> str:
    return ("OMP_NUM_THREADS=1 python benchmarks/scale_limits.py --workdir SCRATCH "
            f"--genes {args.genes} --density {args.density:g} --in-memory-cells {args.in_memory_cells} "
            f"--coexpr-cells {args.coexpr_cells} --stream-cells {args.stream_cells} "
            f"--stream-jobs {args.stream_jobs} --max-rss-gb {args.max_rss_gb:g} "
            f"--timeout {args.timeout:g}" + (f" --out {args.out}" if args.out else "") + (" --append" if args.append else ""))


#: Everything from this line on in the results file is written by hand and kept when it is re-rendered.
READING = "## Reading (written by hand from the numbers above)"


def _write_md(path: Path, text: str) -> None:
    if path.exists():
        old = path.read_text()
        if READING in old:
            text = text.rstrip("\n") + "\n\n" + old[old.index(READING):]
    path.write_text(text)


def render(results: list[dict], args) -> str:
    import psutil

    mem = psutil.virtual_memory().total / GB
    commands = list(dict.fromkeys(r.get("command", "(not recorded)") for r in results))
    lines = [
        "# Scale limits of the data layer (CPU)",
        "",
        "Commands (each row below names the run it comes from):",
        "",
        "```bash",
        *[f"# run {i + 1}\n{c}" for i, c in enumerate(commands)],
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {mem:.1f} GiB RAM, Python "
        f"{platform.python_version()}, {platform.system()}, OMP_NUM_THREADS=1. The cores and memory are shared "
        "with other engineers' jobs: CPU seconds are the job's own, wall seconds include waiting for a core, "
        "and the last column gives the memory the machine had free when the job started and at its lowest. "
        "Each measured job runs in a fresh process; peak RSS is its `VmHWM` (high-water mark, imports "
        f"included); a job is stopped when its RSS passes {args.max_rss_gb:g} GiB or the machine runs out of "
        "free memory. Synthetic log-normalised data (`make_h5ad` in the script), about 200 cells per single "
        "perturbation and 5% control cells, the shape of Replogle K562 genome-wide.",
        "",
        "| run | path | data | step | wall (s) | CPU (s) | peak RSS so far (GiB) | free memory: start / lowest (GiB) |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        run = commands.index(r.get("command", "(not recorded)")) + 1
        size = _fmt_size(r["n_cells"], r["n_genes"], r["nnz"]) + f", {r['n_conditions']:,} conditions"
        free = (f"{r['available_gb_start']:.1f} / {r['available_gb_min']:.1f}"
                if "available_gb_start" in r else "not recorded")
        first = True
        for s in r["steps"]:
            if "seconds" in s:
                cpu = f"{s['cpu_s']:.1f}" if "cpu_s" in s else ""
                lines.append(f"| {run} | {r['job']} | {size} | {s['step']} | {s['seconds']:.1f} | {cpu} "
                             f"| {s['peak_gb']:.2f} | {free if first else ''} |")
                first = False
        if not r["ok"]:
            lines.append(f"| {run} | {r['job']} | {size} | **{r['stopped']}** | {r['wall_s']:.0f} | | "
                         f"{r['max_rss_polled_gb']:.2f} (polled) | {free if first else ''} |")
        for s in r["steps"]:
            if "matrix_gb" in s:
                lines.append(f"| {run} | {r['job']} | {size} | (the CSR matrix itself) | | | {s['matrix_gb']:.2f} | |")
            if "moments_gb" in s:
                lines.append(f"| {run} | {r['job']} | {size} | (the moment arrays themselves) | | | {s['moments_gb']:.2f} | |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
