#!/usr/bin/env python
"""PriorGNN against the reference GEARS (cell-gears 0.1.2), side by side: same data, split, prior
graphs, hidden size, batch size, epochs and seeds; speed, memory, data preparation and accuracy.

    python benchmarks/vs_gears.py                                  # norman preset, the committed table
    python benchmarks/vs_gears.py --seeds 0,1,2 --epochs 3 --gears-steps 150
    python benchmarks/vs_gears.py --quick                          # tiny smoke run on the demo preset

What runs, each measured step in its own child process (peak resident memory = the child's
``ru_maxrss`` from ``os.wait4``, as ``/usr/bin/time -v`` reports it):

1. **graphs**: load the data, make the GEARS simulation split (seed 1), and build the GO graph (from
   the simulation's OBO + GAF; k = 20, Jaccard > 0.1) and the co-expression graph (training cells)
   without the cache; both are saved and passed to every training run, so neither model builds a
   graph in its training process, and the graphs' time and memory are reported separately.
2. **training**, for each seed and each model: ``train.py`` with ``--split-file``, ``--go`` and
   ``--coexpression`` pointing at step 1's files, hidden size 64, batch size 32, ``--epochs`` epochs,
   one torch thread, and an empty cache (so each run prepares its data from scratch). PriorGNN trains
   ``--epochs`` full epochs (no early stopping). cell-gears trains ``--epochs`` epochs of
   ``--gears-steps`` batches each (its ``steps_per_epoch``; 0 = full epochs), with its own learning
   rate halving per epoch and best-validation selection; its full-epoch time is extrapolated from the
   measured steps (training steps and GEARS's per-epoch training-set evaluation scale with the number
   of steps; its validation pass is measured complete).
3. **evaluation**: ``evaluate.py`` on all runs (plus the ``no_change`` and ``additive`` baselines), the
   same code path as every other model; metrics per test subgroup and seed from its
   ``per_condition.csv`` (observed reference), averaged over seeds.

Outputs: ``OUT/`` (runs, logs, report, ``result.json``) and, unless ``--quick``, the table
``benchmarks/results/vs_gears.md`` and ``vs_gears.csv`` (``--results`` to change). Runs already
finished in ``OUT`` are reused (``--fresh`` to redo them); ``--table`` only rebuilds the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("priorgnn", "gears")
#: PriorGNN again with train.py's default schedule (up to 200 epochs, early stopping after 20 without
#: improvement): how accurate it is when trained to convergence, and what that costs
DEFAULT_LABEL = "priorgnn_default"
SUBGROUPS = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")
METRICS = ("pearson_delta", "pearson_delta_top20_de", "pearson_delta_excl_target", "mse", "mse_top20_de",
           "direction_top20_de", "l2_top1000_expressed")
HIGHER_IS_BETTER = {"pearson_delta", "pearson_delta_top20_de", "pearson_delta_excl_target", "direction_top20_de"}
TARGET_SPEEDUP, TARGET_MEMORY = 50.0, 1 / 3
GIB = 1024 ** 3


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------
def full_epoch_seconds(epoch: dict, steps_per_full_epoch: int) -> float:
    """A GEARS epoch's time extrapolated to all ``steps_per_full_epoch`` training batches: the training
    steps and GEARS's training-set evaluation (both over the same ``steps`` batches) scale with the
    number of batches; the validation pass, run complete, does not."""
    steps = max(int(epoch["steps"]), 1)
    return (epoch["steps_s"] + epoch["train_eval_s"]) * steps_per_full_epoch / steps + epoch["val_s"]


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_description() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for p in ("torch", "torch_geometric", "cell-gears", "lightning", "numpy", "scipy", "scanpy", "anndata"):
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def run_measured(cmd: list[str], log_path: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` as a child; its wall time and peak resident memory (``ru_maxrss``)."""
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"failed ({code}): {shlex.join(cmd)}\nsee {log_path}:\n" + log_path.read_text()[-3000:])
    return {"wall_s": wall, "maxrss_bytes": usage.ru_maxrss * 1024}


def child_env(threads: int, cache: str | None) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = str(threads)
    if cache:
        env["PRIORGNN_CACHE_DIR"] = cache
    return env


# ---------------------------------------------------------------------------------------------------
# the shared data layer alone (child): what every training process does before any model code
# ---------------------------------------------------------------------------------------------------
def stage_data(args) -> int:
    from priorgnn.pipeline import RunConfig, resolve_data

    t = time.perf_counter()
    data, _, _ = resolve_data(RunConfig(data=args.data_path), progress=False)
    data.summaries  # noqa: B018 - as train.py's data step
    out = Path(args.out) / "graphs" / "data_layer.json"
    out.write_text(json.dumps({"load_and_summaries_s": time.perf_counter() - t}))
    return 0


# ---------------------------------------------------------------------------------------------------
# step 1 (child): data, split and the prior graphs, built without the cache
# ---------------------------------------------------------------------------------------------------
def stage_graphs(args) -> int:
    from knowledge.cache import coexpression
    from knowledge.go import build_go_graph, read_gaf
    from priorgnn.data.splits import make_split
    from priorgnn.pipeline import RunConfig, resolve_data

    out = Path(args.out) / "graphs"
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    data, spec, sim = resolve_data(RunConfig(data=args.data, sim_dir=args.sim_dir), progress=False)
    load_s = time.perf_counter() - t
    split = make_split(data.conditions, "simulation", seed=1)
    split.save(out / "split.json")
    t = time.perf_counter()
    ann = read_gaf(sim.gaf_path, sim.obo_path)
    go_read_s = time.perf_counter() - t
    t = time.perf_counter()
    go = build_go_graph(ann, k=20, threshold=0.1)
    go_build_s = time.perf_counter() - t
    go.save(out / "go.npz")
    t = time.perf_counter()
    coex = coexpression(data, split, use_cache=False)
    coex_s = time.perf_counter() - t
    coex.save(out / "coexpression.npz")
    result = {"data": data.name, "data_path": spec.path, "n_cells": int(data.n_cells), "n_genes": int(data.n_genes),
              "n_conditions": {k: len(v) for k, v in (("train", split.train), ("val", split.val), ("test", split.test))},
              "load_s": load_s, "go_read_s": go_read_s, "go_build_s": go_build_s, "go_edges": int(go.edge_index.shape[1]),
              "coexpression_s": coex_s, "coexpression_edges": int(coex.edge_index.shape[1])}
    (out / "graphs.json").write_text(json.dumps(result, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------
def train_command(args, model: str, seed: int, run_dir: Path) -> list[str]:
    g = Path(args.out) / "graphs"
    cmd = [sys.executable, str(ROOT / "train.py"), "--data", args.data_path, "--split-file", str(g / "split.json"),
           "--go", str(g / "go.npz"), "--coexpression", str(g / "coexpression.npz"),
           "--model", "priorgnn" if model == DEFAULT_LABEL else model,
           "--model-set", f"hidden={args.hidden}", "--batch-size", str(args.batch_size), "--seed", str(seed),
           "--threads", str(args.threads), "--out", str(run_dir), "--overwrite", "--no-progress"]
    if model == "gears":
        cmd += ["--model-set", f"epochs={args.epochs}"]
        if args.gears_steps:
            cmd += ["--model-set", f"steps_per_epoch={args.gears_steps}"]
    elif model == "priorgnn":
        cmd += ["--epochs", str(args.epochs), "--patience", "0"]
    if model != "gears" and not args.priorgnn_cells:
        cmd += ["--summaries-only"]  # PriorGNN trains on per-condition statistics: stream them, hold no cells
    return cmd


def run_one(args, model: str, seed: int) -> dict:
    out = Path(args.out)
    run_dir = out / "runs" / f"{model}-s{seed}"
    meas = out / "runs" / f"{model}-s{seed}.measure.json"
    if meas.exists() and (run_dir / "run.json").exists() and not args.fresh:
        print(f"  {model} seed {seed}: reusing {run_dir}", flush=True)
        return json.loads(meas.read_text())
    cache = tempfile.mkdtemp(prefix="vs-gears-cache-")  # empty: every run prepares its data from scratch
    try:
        cmd = train_command(args, model, seed, run_dir)
        print(f"  {model} seed {seed}: training (load average {load_average()})", flush=True)
        m = run_measured(cmd, out / "logs" / f"train-{model}-s{seed}.log", child_env(args.threads, cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if model == DEFAULT_LABEL:  # evaluate.py labels a run by run.json's "label", else by its model
        info = json.loads((run_dir / "run.json").read_text())
        info["label"] = DEFAULT_LABEL
        (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    m["command"] = shlex.join(cmd)
    m["load_average_end"] = load_average()
    meas.write_text(json.dumps(m, indent=1))
    print(f"    {m['wall_s']:.0f} s wall, peak RSS {m['maxrss_bytes'] / GIB:.2f} GiB", flush=True)
    return m


def summarise_run(model: str, seed: int, run_dir: Path, meas: dict) -> dict:
    info = json.loads((run_dir / "run.json").read_text())
    timings, fit = info["timings"], info["fit_info"]
    row = {"model": model, "seed": seed, "peak_rss_gib": meas["maxrss_bytes"] / GIB, "process_wall_s": meas["wall_s"],
           "load_and_summaries_s": timings["data_s"], "load_graphs_s": timings["priors_s"],
           "train_s": timings["train_s"], "git_revision": info.get("git_revision"),
           "load_average_end": meas.get("load_average_end")}
    if model == "gears":
        g = fit["gears"]
        eps = g["epochs"]
        # An earlier version of the adapter's epoch clock (before commit "GEARS adapter epoch clock:
        # attribute ...") left GEARS's training-set evaluation at 0 and its end time in the epoch's end;
        # for such records it is the epoch's time less its steps and validation.
        corrected = any(e["steps"] and not e["train_eval_s"] for e in eps)
        eps = [{**e, "train_eval_s": e["epoch_s"] - e["steps_s"] - e["val_s"]}
               if e["steps"] and not e["train_eval_s"] else e for e in eps]
        full = g["steps_per_full_epoch"]
        row.update(
            model_prep_s=g["prepare_s"] + g["initialize_s"],
            steps_per_epoch_run=eps[0]["steps"], steps_per_full_epoch=full,
            seconds_per_step=sum(e["steps_s"] for e in eps) / max(sum(e["steps"] for e in eps), 1),
            epoch_s_measured=sum(e["epoch_s"] for e in eps) / len(eps),
            epoch_s=sum(full_epoch_seconds(e, full) for e in eps) / len(eps),
            val_s=sum(e["val_s"] for e in eps) / len(eps),
            epochs=len(eps), best_epoch=g["best_epoch"], to_best_s_measured=g["seconds_to_best"],
            to_best_s=sum(full_epoch_seconds(e, full) for e in eps[:g["best_epoch"]]),
            extrapolated=eps[0]["steps"] < full, clock_corrected=corrected,
        )
    else:
        tr = fit["training"]
        secs = tr["epoch_seconds"]
        row.update(
            model_prep_s=timings["train_s"] - sum(secs), steps_per_epoch_run=tr["global_steps"] // max(tr["epochs"], 1),
            steps_per_full_epoch=tr["global_steps"] // max(tr["epochs"], 1),
            seconds_per_step=sum(secs) / max(tr["global_steps"], 1),
            epoch_s_measured=sum(secs) / len(secs), epoch_s=sum(secs) / len(secs), val_s=None,
            epochs=len(secs), best_epoch=tr["best_epoch"], to_best_s_measured=tr["seconds_to_best"],
            to_best_s=tr["seconds_to_best"], extrapolated=False,
        )
    row["data_prep_s"] = row["load_and_summaries_s"] + row["load_graphs_s"] + row["model_prep_s"]
    return row


def evaluate_runs(args, run_dirs: list[Path]) -> Path:
    out = Path(args.out) / "report"
    cmd = [sys.executable, str(ROOT / "evaluate.py"), *map(str, run_dirs), "--baselines", "no_change,additive",
           "--out", str(out), "--no-figures", "--quiet"]
    print(f"evaluating {len(run_dirs)} runs", flush=True)
    run_measured(cmd, Path(args.out) / "logs" / "evaluate.log", child_env(args.threads, args.cache))
    return out / "per_condition.csv"


def accuracy_table(per_condition: Path):
    """Mean over seeds of the per-seed subgroup means (observed reference), and their SD over seeds."""
    import pandas as pd

    d = pd.read_csv(per_condition)
    d = d[d["reference"] == "observed"]
    metrics = [m for m in METRICS if m in d.columns]
    per_seed = d.groupby(["model", "subgroup", "seed"])[metrics].mean().reset_index()
    allrows = d.groupby(["model", "seed"])[metrics].mean().reset_index().assign(subgroup="all")
    per_seed = pd.concat([per_seed, allrows], ignore_index=True)
    n = d.groupby(["model", "subgroup", "seed"]).size().groupby(["model", "subgroup"]).max()
    mean = per_seed.groupby(["model", "subgroup"])[metrics].mean()
    sd = per_seed.groupby(["model", "subgroup"])[metrics].std(ddof=1)
    return per_seed, mean, sd, n, metrics


def n_epochs(n: int, adjective: str = "") -> str:
    return f"{n} {adjective}epoch" + ("" if n == 1 else "s")


def fmt(x, digits=3):
    if x is None or x != x:
        return "–"
    return f"{x:.{digits}f}"


def fmt_s(x):
    if x is None or x != x:
        return "–"
    if x >= 100:
        return f"{x:,.0f} s"
    if x >= 1:
        return f"{x:.1f} s"
    return f"{x:.3f} s"


def write_tables(args, graphs: dict, rows: list[dict], machine: dict, started: dict, ended: dict) -> dict:
    import pandas as pd

    per_seed, mean, sd, n, metrics = accuracy_table(Path(args.out) / "report" / "per_condition.csv")
    runs = pd.DataFrame(rows)
    by = runs.groupby("model")
    avg = by.mean(numeric_only=True)
    sds = by.std(numeric_only=True, ddof=1)
    seeds = sorted(runs["seed"].unique())
    pg, ge = avg.loc["priorgnn"], avg.loc["gears"]
    dflt = avg.loc[DEFAULT_LABEL] if DEFAULT_LABEL in avg.index else None

    def d(key, f=None):  # the default-schedule PriorGNN's cell, if it ran
        return "" if dflt is None else (f or fmt_s)(dflt[key])
    speed = ge["epoch_s"] / pg["epoch_s"]
    per_seed_speed = [runs[(runs.model == "gears") & (runs.seed == s)]["epoch_s"].iloc[0]
                      / runs[(runs.model == "priorgnn") & (runs.seed == s)]["epoch_s"].iloc[0] for s in seeds]
    mem = pg["peak_rss_gib"] / ge["peak_rss_gib"]
    extrapolated = bool(runs[runs.model == "gears"]["extrapolated"].any())
    full_steps = int(ge["steps_per_full_epoch"])
    gsteps = int(ge["steps_per_epoch_run"])

    # CSV: one row per model x seed (speed, memory, preparation) and one per model x subgroup x metric
    csv_rows = []
    for r in rows:
        csv_rows.append({"kind": "run", **r})
    for (model, sub), vals in mean.iterrows():
        for m in metrics:
            csv_rows.append({"kind": "accuracy", "model": model, "subgroup": sub, "metric": m, "mean": vals[m],
                             "sd_over_seeds": sd.loc[(model, sub), m], "n_conditions": int(n.get((model, sub), 0))
                             if sub != "all" else None, "n_seeds": len(seeds)})
    csv_path = Path(args.results) / "vs_gears.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(csv_rows).to_csv(csv_path, index=False, float_format="%.6g")

    mb = machine["memory_bytes"]
    v = machine["versions"]
    L = []
    L.append("# PriorGNN against the reference GEARS (cell-gears 0.1.2)\n")
    L.append(f"Command (from the project root): `{args.command_line}`\n")
    L.append(f"Machine: {machine['cpu']}, {machine['cores']} cores, {mb / GIB:.0f} GiB memory, CPU only, "
             f"{machine['platform']}.  ")
    L.append(f"Software: Python {machine['python']}, torch {v['torch']}, torch_geometric {v['torch_geometric']}, "
             f"cell-gears {v['cell-gears']}, lightning {v['lightning']}, numpy {v['numpy']}, scipy {v['scipy']}, "
             f"scanpy {v['scanpy']}.  ")
    L.append(f"Started {started['time']} (load average {started['load']}), ended {ended['time']} "
             f"(load average {ended['load']}); total {ended['elapsed_s'] / 60:.0f} min. The cores are shared with "
             "other jobs, so wall times are noisy (both models ran in the same session, one after the other, "
             f"each on {args.threads} torch thread{'s' if args.threads > 1 else ''}); memory is not affected. "
             "Times and load averages of the last invocation; runs finished by an earlier invocation of the "
             "same command are reused (see the per-run table).\n")
    n_train, n_val, n_test = (graphs["n_conditions"][k] for k in ("train", "val", "test"))
    L.append(f"Data: `{graphs['data']}` ({graphs['n_cells']:,} cells × {graphs['n_genes']:,} genes), GEARS "
             f"simulation split (seed 1): {n_train} / {n_val} / {n_test} train / val / test conditions, the same "
             f"split file for every run. Both models: hidden size {args.hidden}, batch size {args.batch_size}, "
             f"{n_epochs(args.epochs)}, seeds {', '.join(map(str, seeds))}, the same GO graph "
             f"({graphs['go_edges']:,} edges) and co-expression graph ({graphs['coexpression_edges']:,} edges), "
             "passed in as files.\n")
    L.append("## Protocol\n")
    L.append(f"* **PriorGNN** (`--model priorgnn`, defaults otherwise): {n_epochs(args.epochs, 'full ')}, no early "
             "stopping; one training example is one condition (its pseudobulk change), so an epoch is "
             f"{int(pg['steps_per_full_epoch'])} steps of 32 conditions; the best validation epoch "
             "(`val_mse_top20_de`) is kept. "
             + ("Its training process loads the cell matrix like cell-gears's (`--priorgnn-cells`)."
                if args.priorgnn_cells else
                "Its training process runs with `--summaries-only`: it streams the per-condition summaries "
                "and the moments its loss uses from the `.h5ad` in chunks of 4,096 cells and never holds the "
                "cell matrix, which it does not need (the predictions equal those of a run on the loaded "
                "cells; `tests/test_summaries_only.py`). cell-gears trains on single cells and loads them."))
    if extrapolated:
        frac = gsteps / full_steps
        L.append(f"* **cell-gears** (`--model gears`): GEARS's own training loop (Adam, learning rate halved "
                 f"every epoch, best epoch by validation top-20-DE MSE) for {n_epochs(args.epochs)}, **{'each ' if args.epochs > 1 else ''}cut to "
                 f"{gsteps} of its {full_steps:,} steps** (batches of 32 cells), i.e. {frac:.1%} of an epoch, "
                 f"{gsteps * int(args.epochs) * args.batch_size:,} training cells seen in all. Its validation "
                 "pass is complete every epoch. **Its time per full epoch is extrapolated** from the measured "
                 "steps: (training steps + GEARS's per-epoch training-set evaluation, both measured over the "
                 f"same {gsteps} batches) × {full_steps:,} / {gsteps} + the measured validation pass.")
        L.append("* **What limits the accuracy comparison.** A full cell-gears epoch at this scale takes "
                 f"~{ge['epoch_s'] / 60:.0f} min on one core here, so {n_epochs(args.epochs, 'full ')} × "
                 f"{len(seeds)} seeds would take ~{ge['epoch_s'] * args.epochs * len(seeds) / 3600:.1f} h. "
                 "cell-gears is therefore compared after the same number of epochs but far fewer optimiser "
                 f"updates on far less data ({frac:.1%} of each epoch's cells) than GEARS's published protocol "
                 "(20 full epochs). Its accuracy here is that of an under-trained GEARS on a CPU budget, not "
                 "its converged accuracy; the accuracy rows below answer \"which is more accurate at this "
                 "compute\", not \"which is more accurate when both are trained to convergence\".")
    else:
        L.append(f"* **cell-gears** (`--model gears`): GEARS's own training loop, {n_epochs(args.epochs, 'full ')} "
                 f"of {full_steps:,} steps; nothing extrapolated.")
    if dflt is not None:
        L.append("* **PriorGNN, default schedule** (extra column, same seeds): `train.py`'s defaults, up to 200 "
                 "epochs with early stopping after 20 without improvement of `val_mse_top20_de`: PriorGNN "
                 f"trained to convergence, {dflt['epochs']:.0f} epochs on average. It shows what PriorGNN's "
                 "accuracy costs when it is not held to the epoch count that cell-gears can afford here.")
    L.append("* **Time per epoch**: the training steps and the validation pass of one epoch, averaged over "
             "epochs and seeds (PriorGNN: Lightning epoch start to epoch end; cell-gears: first batch to the "
             "end of its validation metrics, which includes its evaluation of the training set).")
    L.append("* **Time to the best checkpoint**: wall time from the first epoch's start to the end of the "
             "best validation epoch" + (" (cell-gears: extrapolated full epochs; measured under the step budget "
                                        "in brackets)." if extrapolated else "."))
    L.append("* **Peak memory**: `ru_maxrss` of the `train.py` child process (data loading, preparation, "
             "training and prediction of the test conditions), as `/usr/bin/time -v` reports it.")
    L.append("* **Data preparation**: loading the data and our pseudobulk/DE summaries (`train.py`'s data "
             "step: for cell-gears the in-memory data layer; for PriorGNN "
             + ("the same" if args.priorgnn_cells else "the streamed summaries and moments, plus the file's "
                "SHA-256 that the run records") + "), reading the two saved graphs, and the model's own preparation "
             "(PriorGNN: loss targets and encoding, the fit's time outside its epochs; cell-gears: GEARS's "
             "DE genes, its per-cell graph data set and data loaders, and the model's construction). Every "
             "run starts from an empty cache.")
    L.append("* **Accuracy**: `evaluate.py` on the runs' test predictions against the observed pseudobulk "
             "means; per seed the mean over a subgroup's conditions, then the mean (± SD) over seeds.\n")

    L.append("## Speed and memory (mean over seeds; ratios in the same run)\n")
    L.append(f"| | PriorGNN ({args.epochs} epoch{'s' if args.epochs > 1 else ''}) | cell-gears | ratio | target | "
             "| PriorGNN, default schedule |")
    L.append("|---|---:|---:|---:|---:|---|---:|")
    ext = " (extrapolated)" if extrapolated else ""
    L.append(f"| wall time per training epoch | {fmt_s(pg['epoch_s'])} | {fmt_s(ge['epoch_s'])}{ext} | "
             f"**{speed:,.0f}× faster** (per seed {min(per_seed_speed):,.0f}–{max(per_seed_speed):,.0f}×) | ≥ 50× | "
             f"{'PASS' if speed >= TARGET_SPEEDUP else 'MISSED'} | {d('epoch_s')} |")
    if extrapolated:
        L.append(f"| cell-gears epoch as measured ({gsteps} steps + validation) | | {fmt_s(ge['epoch_s_measured'])} | | | | |")
    L.append(f"| time per optimiser step | {fmt_s(pg['seconds_per_step'])} | {fmt_s(ge['seconds_per_step'])} | "
             f"{ge['seconds_per_step'] / pg['seconds_per_step']:,.0f}× | | | {d('seconds_per_step')} |")
    L.append(f"| steps per epoch (batch {args.batch_size}) | {int(pg['steps_per_full_epoch'])} conditions-batches | "
             f"{full_steps:,} cell-batches | | | | |")
    tb_ge = f"{fmt_s(ge['to_best_s'])}{ext}" + (f" [{fmt_s(ge['to_best_s_measured'])}]" if extrapolated else "")
    L.append(f"| time to the best validation checkpoint | {fmt_s(pg['to_best_s'])} | {tb_ge} | "
             f"{ge['to_best_s'] / pg['to_best_s']:,.0f}× | | | {d('to_best_s')} |")
    bests = {m: "/".join(str(int(b)) for b in runs[runs.model == m].sort_values("seed")["best_epoch"]) for m in MODELS}
    bests[DEFAULT_LABEL] = "/".join(str(int(b)) for b in runs[runs.model == DEFAULT_LABEL].sort_values("seed")["best_epoch"])
    L.append(f"| best epoch (per seed) | {bests['priorgnn']} | {bests['gears']} | | | | {bests[DEFAULT_LABEL]} |")
    if dflt is not None:
        L.append(f"| epochs run (mean) | {pg['epochs']:.0f} | {ge['epochs']:.0f} | | | | {dflt['epochs']:.0f} |")
        L.append(f"| training time, all epochs (mean) | {fmt_s(pg['epoch_s'] * pg['epochs'])} | "
                 f"{fmt_s(ge['epoch_s'] * ge['epochs'])}{ext} | | | | {fmt_s(dflt['epoch_s'] * dflt['epochs'])} |")
    L.append(f"| peak resident memory, training process | {pg['peak_rss_gib']:.2f} GiB | {ge['peak_rss_gib']:.2f} GiB | "
             f"**{mem:.2f}×** (1/{1 / mem:.1f}) | ≤ 0.33× | {'PASS' if mem <= TARGET_MEMORY else 'MISSED'} | {d('peak_rss_gib', lambda x: f'{x:.2f} GiB')} |")
    L.append(f"| data preparation, total | {fmt_s(pg['data_prep_s'])} | {fmt_s(ge['data_prep_s'])} | "
             f"{ge['data_prep_s'] / pg['data_prep_s']:.1f}× | | | {d('data_prep_s')} |")
    L.append(f"| – load data + our summaries ({'shared data layer' if args.priorgnn_cells else 'PriorGNN: streamed'}) | {fmt_s(pg['load_and_summaries_s'])} | "
             f"{fmt_s(ge['load_and_summaries_s'])} | | | | {d('load_and_summaries_s')} |")
    L.append(f"| – read the two saved graphs | {fmt_s(pg['load_graphs_s'])} | {fmt_s(ge['load_graphs_s'])} | | | | {d('load_graphs_s')} |")
    L.append(f"| – the model's own preparation | {fmt_s(pg['model_prep_s'])} | {fmt_s(ge['model_prep_s'])} | "
             f"{ge['model_prep_s'] / pg['model_prep_s']:,.0f}× | | | {d('model_prep_s')} |")
    dl = graphs["data_layer"]
    pg_dl = dl['maxrss_bytes'] / GIB if args.priorgnn_cells else None
    L.append(f"| the in-memory data layer alone (load + summaries, separate process; peak memory) | "
             f"{'not used' if pg_dl is None else format(pg_dl, '.2f') + ' GiB'} | {dl['maxrss_bytes'] / GIB:.2f} GiB | | | | |")
    pg_above = "–" if pg_dl is None else f"{pg['peak_rss_gib'] - pg_dl:.2f} GiB"
    L.append(f"| peak memory above the in-memory data layer | {pg_above} | "
             f"{ge['peak_rss_gib'] - dl['maxrss_bytes'] / GIB:.2f} GiB | | | | |")
    L.append(f"| whole training process (wall) | {fmt_s(pg['process_wall_s'])} | {fmt_s(ge['process_wall_s'])} | | | | {d('process_wall_s')} |")
    L.append("")
    L.append(f"Standard deviations over seeds: epoch time {fmt_s(sds.loc['priorgnn', 'epoch_s'])} / "
             f"{fmt_s(sds.loc['gears', 'epoch_s'])}; peak memory {sds.loc['priorgnn', 'peak_rss_gib']:.3f} / "
             f"{sds.loc['gears', 'peak_rss_gib']:.3f} GiB (PriorGNN / cell-gears).\n")
    L.append("Graphs, built once in a separate process and passed to both models (not counted above):\n")
    L.append("| step | time | peak memory of that process |")
    L.append("|---|---:|---:|")
    L.append(f"| load data + split | {fmt_s(graphs['load_s'])} | |")
    L.append(f"| GO graph: read OBO + GAF | {fmt_s(graphs['go_read_s'])} | |")
    L.append(f"| GO graph: build (k = 20, Jaccard > 0.1) | {fmt_s(graphs['go_build_s'])} | |")
    L.append(f"| co-expression graph (training cells) | {fmt_s(graphs['coexpression_s'])} | |")
    L.append(f"| whole process | {fmt_s(graphs['wall_s'])} | {graphs['maxrss_bytes'] / GIB:.2f} GiB |")
    L.append("\ncell-gears's own GO construction (`make_GO`, a pool of 25 workers) is not run: the graph is "
             "passed in. Its time and memory on 5,000 genes are in `go_graph.md` (257.8 s and 5.11 GiB "
             "against 0.65 s and 0.38 GiB for ours).\n")

    L.append("## Accuracy per test subgroup (mean ± SD over seeds)\n")
    L.append(f"Number of test conditions per subgroup: " + ", ".join(
        f"{s} {int(n.get(('priorgnn', s), 0))}" for s in SUBGROUPS) + ".\n")
    L.append(f"| subgroup | metric | PriorGNN ({args.epochs} ep.) | cell-gears ({args.epochs} ep.) | better | "
             "PriorGNN, default schedule | no_change | additive |")
    L.append("|---|---|---:|---:|---|---:|---:|---:|")
    verdicts = {}
    for sub in (*SUBGROUPS, "all"):
        for m in metrics:
            def cell(model):
                if (model, sub) not in mean.index:
                    return "–", float("nan")
                mu, s_ = mean.loc[(model, sub), m], sd.loc[(model, sub), m]
                return (fmt(mu) + (f" ± {fmt(s_)}" if s_ == s_ else "")), mu
            a, am = cell("priorgnn")
            b, bm = cell("gears")
            e, _ = cell(DEFAULT_LABEL)
            c, _ = cell("no_change")
            d_, _ = cell("additive")
            better = "–"
            if am == am and bm == bm:
                hi = m in HIGHER_IS_BETTER
                better = "PriorGNN" if (am > bm if hi else am < bm) else ("tie" if am == bm else "cell-gears")
            if m == "pearson_delta" and sub in SUBGROUPS:
                verdicts[sub] = am >= bm
            L.append(f"| {sub} | {m} | {a} | {b} | {better} | {e} | {c} | {d_} |")
    L.append("")
    L.append("Target: `pearson_delta` of PriorGNN at least equal to cell-gears's on every subgroup, averaged "
             "over seeds: " + ", ".join(f"{s} {'PASS' if ok else 'MISSED'}" for s, ok in verdicts.items())
             + (" (under the compute-limited protocol above)." if extrapolated else "."))
    L.append("")
    L.append("## Per run\n")
    L.append("| model | seed | epoch | epoch as measured | s/step | best epoch | to best | peak RSS | data prep | "
             "process wall | load average at its end (1, 5, 15 min) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: (r["model"], r["seed"])):
        L.append(f"| {r['model']} | {r['seed']} | {fmt_s(r['epoch_s'])} | {fmt_s(r['epoch_s_measured'])} | "
                 f"{fmt_s(r['seconds_per_step'])} | {r['best_epoch']} | {fmt_s(r['to_best_s'])} | "
                 f"{r['peak_rss_gib']:.2f} GiB | {fmt_s(r['data_prep_s'])} | {fmt_s(r['process_wall_s'])} | "
                 f"{r.get('load_average_end') or '–'} |")
    fixed = [str(r["seed"]) for r in rows if r.get("clock_corrected")]
    if fixed:
        L.append(f"\ncell-gears seed(s) {', '.join(fixed)} ran with an earlier version of the adapter's epoch "
                 "clock, which missed the time of GEARS's training-set evaluation (it ran between two "
                 "recorded points); it is derived there as the epoch's time less its steps and its validation "
                 "pass (exact up to GEARS's metric computation, about a second). The same clock recorded the "
                 "training metrics as the validation score, which does not matter for one epoch.")
    L.append("")
    md_path = Path(args.results) / "vs_gears.md"
    md_path.write_text("\n".join(L) + "\n")
    summary = {"speedup_per_epoch": speed, "speedup_per_seed": per_seed_speed, "memory_ratio": mem,
               "pearson_delta_at_least_equal": verdicts, "extrapolated": extrapolated,
               "pearson_delta": {f"{m}/{s}": float(mean.loc[(m, s), "pearson_delta"]) for m in (*MODELS, DEFAULT_LABEL)
                                 for s in (*SUBGROUPS, "all") if (m, s) in mean.index}}
    print(f"wrote {md_path} and {csv_path}")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="norman", help="simulator preset or simulation folder (default norman)")
    p.add_argument("--sim-dir", default=None, help="where a preset is simulated (default runs/sim/PRESET-seed0)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=1, help="epochs for both models (default 1)")
    p.add_argument("--gears-steps", type=int, default=40,
                   help="cell-gears steps per epoch, its epoch time extrapolated (default 40; 0 = full epochs)")
    p.add_argument("--no-priorgnn-default", action="store_true",
                   help="skip the extra PriorGNN runs with train.py's default schedule")
    p.add_argument("--priorgnn-cells", action="store_true",
                   help="load the cell matrix in PriorGNN's training process too (default: --summaries-only)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per training process (default 1)")
    p.add_argument("--out", default="runs/bench-vs-gears", help="work folder (default runs/bench-vs-gears)")
    p.add_argument("--results", default=None, help="folder of vs_gears.md/.csv (default benchmarks/results; "
                                                    "with --quick, OUT)")
    p.add_argument("--quick", action="store_true", help="smoke run: demo preset, seed 0, 2 epochs, 5 GEARS steps")
    p.add_argument("--fresh", action="store_true", help="redo runs already finished in OUT")
    p.add_argument("--table", action="store_true", help="only rebuild the tables from OUT")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data-path", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.data, args.seeds, args.epochs, args.gears_steps = "demo", "0", 2, 5
        if args.out == "runs/bench-vs-gears":
            args.out = "runs/bench-vs-gears-quick"
    args.results = args.results or (args.out if args.quick else str(ROOT / "benchmarks" / "results"))
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.seed_list or args.epochs < 1 or args.gears_steps < 0:
        p.error("need at least one seed, --epochs >= 1 and --gears-steps >= 0")
    args.command_line = "python benchmarks/vs_gears.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                            " " + shlex.join(sys.argv[1:] if argv is None else argv))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stage == "graphs":
        return stage_graphs(args)
    if args.stage == "data":
        return stage_data(args)
    t_start = time.perf_counter()
    started = {"time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": load_average()}
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    args.cache = None
    machine = machine_description()

    gpath = out / "graphs" / "graphs.json"
    if not (gpath.exists() and (out / "graphs" / "measure.json").exists()) or (args.fresh and not args.table):
        print(f"graphs: data {args.data}, GO and co-expression graphs (load average {load_average()})", flush=True)
        cache = tempfile.mkdtemp(prefix="vs-gears-cache-")
        try:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", "graphs", "--data", args.data,
                   "--out", str(out)] + (["--sim-dir", args.sim_dir] if args.sim_dir else [])
            m = run_measured(cmd, out / "logs" / "graphs.log", child_env(args.threads, cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        (out / "graphs" / "measure.json").write_text(json.dumps(m))
    graphs = {**json.loads(gpath.read_text()), **json.loads((out / "graphs" / "measure.json").read_text())}
    args.data_path = graphs["data_path"]
    dpath = out / "graphs" / "data_layer_measure.json"
    if not dpath.exists():  # peak memory of loading the data and computing our summaries, nothing else
        print("data layer alone: load + summaries", flush=True)
        cache = tempfile.mkdtemp(prefix="vs-gears-cache-")
        try:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", "data", "--data", args.data,
                   "--out", str(out), "--data-path", args.data_path]
            m = run_measured(cmd, out / "logs" / "data_layer.log", child_env(args.threads, cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        dpath.write_text(json.dumps(m))
    graphs["data_layer"] = {**json.loads((out / "graphs" / "data_layer.json").read_text()),
                            **json.loads(dpath.read_text())}

    rows, run_dirs = [], []
    for seed in args.seed_list:
        for model in MODELS + (() if args.no_priorgnn_default else (DEFAULT_LABEL,)):
            run_dir = out / "runs" / f"{model}-s{seed}"
            if args.table:
                meas = json.loads((out / "runs" / f"{model}-s{seed}.measure.json").read_text())
            else:
                meas = run_one(args, model, seed)
            rows.append(summarise_run(model, seed, run_dir, meas))
            run_dirs.append(run_dir)
    if not args.table or not (out / "report" / "per_condition.csv").exists():
        evaluate_runs(args, run_dirs)
    ended = {"time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": load_average(),
             "elapsed_s": time.perf_counter() - t_start}
    if args.table and (out / "result.json").exists():
        prev = json.loads((out / "result.json").read_text())
        started, ended, machine = prev["started"], prev["ended"], prev["machine"]
        args.command_line = prev.get("command", args.command_line)
    summary = write_tables(args, graphs, rows, machine, started, ended)
    (out / "result.json").write_text(json.dumps({"started": started, "ended": ended, "machine": machine,
                                                 "graphs": graphs, "runs": rows, "summary": summary,
                                                 "command": args.command_line}, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
