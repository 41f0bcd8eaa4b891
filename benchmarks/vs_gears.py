#!/usr/bin/env python
"""PriorGNN against the reference GEARS (cell-gears 0.1.2), side by side: same data, split, prior
graphs, hidden size, batch size and seeds; speed per optimiser step and end to end, a time-to-accuracy
curve, memory in both of PriorGNN's data modes, and accuracy.

    python benchmarks/vs_gears.py                                  # norman preset, the committed table
    python benchmarks/vs_gears.py --data demo --epochs 20 --gears-steps 0 --results benchmarks/results/vs_gears_demo
    python benchmarks/vs_gears.py --accelerator gpu --seeds 0 --gears-steps 0   # both models on a GPU
    python benchmarks/vs_gears.py --quick                          # tiny smoke run on the demo preset

What runs, each measured step in its own child process (peak resident memory = the child's
``ru_maxrss`` from ``os.wait4``, as ``/usr/bin/time -v`` reports it: the peak of one process, since no
process here starts workers):

1. **graphs**: load the data, make the GEARS simulation split (seed 1), and build the GO graph (from
   the simulation's OBO + GAF; k = 20, Jaccard > 0.1) and the co-expression graph (training cells)
   without the cache; both are saved and passed to every training run.
2. **training**, for each seed: ``train.py`` with ``--split-file``, ``--go`` and ``--coexpression``
   pointing at step 1's files, hidden size 64, batch size 32, one torch thread, an empty cache:

   * ``gears``: cell-gears, ``--epochs`` epochs of ``--gears-steps`` batches of cells each (0 = full
     epochs), with its own learning-rate halving and best-validation selection;
   * ``priorgnn``: ``--epochs`` full epochs (no early stopping), ``--summaries-only``;
   * ``priorgnn_default``: ``train.py``'s default schedule (up to 200 epochs, early stopping after 20
     without improvement), ``--summaries-only``: PriorGNN trained to its stopping rule;
   * ``priorgnn_cells``: as ``priorgnn`` with the cell matrix loaded (the second memory mode);
   * ``priorgnn_untrained``: ``--untrained``, PriorGNN's built-in backbone only (a reference row);
   * ``priorgnn_steps``: the per-step timing run, on the training conditions cut to a multiple of the
     batch size so that every step trains on exactly ``--batch-size`` conditions (not scored).
3. **evaluation**: ``evaluate.py`` on the scored runs plus the ``no_change`` and ``additive``
   baselines; metrics per test subgroup and seed, averaged over seeds.

Outputs: ``OUT/`` (runs, logs, report, ``result.json``) and, unless ``--quick``, in ``--results``
(default ``benchmarks/results``): ``vs_gears.md``, ``vs_gears.csv`` (every number of the page),
``vs_gears_summary.json`` (the headline numbers), ``vs_gears_curve.csv`` and
``vs_gears_time_to_accuracy.png``. Runs already finished in ``OUT`` are reused (``--fresh`` to redo
them): cell-gears runs always, this project's runs only if made by the same code (their recorded code
fingerprint; see :func:`reusable`); ``--table`` only rebuilds the outputs from ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_model, fmt, memory_bytes  # a sibling script (benchmarks/ is on sys.path)
from priorgnn.data.splits import SUBGROUPS as SPLIT_SUBGROUPS

ROOT = Path(__file__).resolve().parent.parent

#: what runs per seed, in this order (see the module docstring)
GEARS = "gears"
PRIORGNN = "priorgnn"  # the same epochs as cell-gears
DEFAULT_LABEL = "priorgnn_default"  # trained to its stopping rule
CELLS_LABEL = "priorgnn_cells"  # cells loaded: the second memory mode
UNTRAINED_LABEL = "priorgnn_untrained"  # built-in backbone only
STEPS_LABEL = "priorgnn_steps"  # per-step timing at exactly --batch-size conditions per step
RUN_ORDER = (GEARS, PRIORGNN, DEFAULT_LABEL, CELLS_LABEL, UNTRAINED_LABEL, STEPS_LABEL)
SCORED = (PRIORGNN, DEFAULT_LABEL, UNTRAINED_LABEL, GEARS)  # evaluated (plus the baselines)
BASELINES = ("no_change", "additive")
#: the split's subgroups of doubles and unseen singles (seen singles are trained on, not scored here)
SUBGROUPS = tuple(s for s in SPLIT_SUBGROUPS if s != "seen_single")
#: the headline metric per subgroup: off the perturbed genes for unseen perturbations
HEADLINE = {"unseen_single": "pearson_delta_excl_target", "combo_seen0": "pearson_delta_excl_target",
            "combo_seen1": "pearson_delta", "combo_seen2": "pearson_delta", "all": "pearson_delta"}
METRICS = ("pearson_delta", "pearson_delta_excl_target", "pearson_delta_top20_de", "mse", "mse_top20_de",
           "direction_top20_de", "l2_top1000_expressed", "target_sign_match", "target_abs_error")
TARGET_MEMORY = 1 / 3
GIB = 1024 ** 3
#: the code whose results this benchmark reports (its fingerprint is recorded with the results); this
#: script's own rendering is left out, so that ``--table`` can re-render finished runs
# (git pathspecs: the study modules are imported only by `evaluate.py study`, never by this benchmark;
# evaluate.py is a command-line wrapper whose numbers come from priorgnn.metrics and priorgnn.report)
CODE_PATHS = ("priorgnn", ":(exclude)priorgnn/study.py", ":(exclude)priorgnn/report/study.py",
              ":(exclude)priorgnn/study", "knowledge", "train.py")


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------
def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_description(accelerator: str = "cpu") -> dict:
    """CPU, cores, memory and GPU (if used), with the package versions and git revision that
    :func:`priorgnn.runs.environment_info` records for every run."""
    from importlib import metadata

    from priorgnn.runs import environment_info

    info = environment_info()
    cpu = cpu_model(default=platform.processor() or "unknown")
    mem = memory_bytes()
    try:
        info["versions"]["cell-gears"] = metadata.version("cell-gears")
    except metadata.PackageNotFoundError:
        info["versions"]["cell-gears"] = None
    gpu = None
    if accelerator != "cpu":
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "gpu": gpu, **info}


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


def fmt_s(x) -> str:
    if x is None or x != x:
        return "–"
    if x >= 100:
        return f"{x:,.0f} s"
    if x >= 1:
        return f"{x:.1f} s"
    return f"{x:.3f} s"


def fmt_ratio(x) -> str:
    if x is None or x != x:
        return "–"
    return f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×" if x >= 1 else f"{x:.2f}×"


def fmt_duration(x: float) -> str:
    """Seconds as s, min or h, for prose."""
    if x >= 7200:
        return f"{x / 3600:.1f} h"
    if x >= 120:
        return f"{x / 60:.0f} min"
    return fmt_s(x)


def n_of(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


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


def steps_split(split_path: Path, batch_size: int, out_path: Path) -> int:
    """The split of the per-step timing run: the training conditions (``ctrl`` included, as PriorGNN
    trains on it) cut to the largest multiple of ``batch_size``, so every step has exactly that many
    (all of them if there are fewer); validation and test unchanged. Returns the number kept."""
    from priorgnn.data.conditions import CTRL
    from priorgnn.data.splits import Split

    split = Split.load(split_path)
    others = [c for c in split.train if c != CTRL]
    n = len(split.train)
    keep = n if n < batch_size else batch_size * (n // batch_size)
    # the training conditions left out go to the test set (every condition of the data must be in one
    # set; this run's predictions are not scored); the kind is renamed, as the split is no longer one
    # of the simulation kind
    cut = Split(kind=f"{split.kind}-cut", seed=split.seed, train=[CTRL] + others[:keep - 1], val=split.val,
                test=split.test + others[keep - 1:], params={**split.params, "cut_for_step_timing": keep})
    cut.save(out_path)
    return keep


# ---------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------
def run_labels(args) -> tuple[str, ...]:
    skip = set() if not args.no_priorgnn_default else {DEFAULT_LABEL}
    return tuple(m for m in RUN_ORDER if m not in skip)


def train_command(args, model: str, seed: int, run_dir: Path) -> list[str]:
    g = Path(args.out) / "graphs"
    split = g / ("split_steps.json" if model == STEPS_LABEL else "split.json")
    cmd = [sys.executable, str(ROOT / "train.py"), "--data", args.data_path, "--split-file", str(split),
           "--go", str(g / "go.npz"), "--coexpression", str(g / "coexpression.npz"),
           "--model", GEARS if model == GEARS else "priorgnn",
           "--model-set", f"hidden={args.hidden}", "--batch-size", str(args.batch_size), "--seed", str(seed),
           "--threads", str(args.threads), "--accelerator", args.accelerator,
           "--out", str(run_dir), "--overwrite", "--no-progress"]
    if model == GEARS:
        cmd += ["--model-set", f"epochs={args.epochs}"]
        if args.gears_steps:
            cmd += ["--model-set", f"steps_per_epoch={args.gears_steps}"]
        return cmd
    if model in (PRIORGNN, CELLS_LABEL):
        cmd += ["--epochs", str(args.epochs), "--patience", "0"]
    elif model == STEPS_LABEL:
        cmd += ["--epochs", str(args.step_epochs), "--patience", "0"]
    elif model == UNTRAINED_LABEL:
        cmd += ["--untrained"]
    if model != CELLS_LABEL:
        cmd += ["--summaries-only"]  # PriorGNN trains on per-condition statistics: stream them, hold no cells
    return cmd


def reusable(measure: dict, model: str, fingerprint: str | None) -> tuple[bool, str]:
    """Whether a run finished by an earlier invocation may stand in this one, and why not.

    A cell-gears run measures cell-gears' own training, which this project's code does not change, so it
    is reused whatever code made it (the results pages name reused runs and each run's commit). A run of
    this project's models is reused only if it was made by the code this invocation measures (the same
    code fingerprint): otherwise the page would report an older model under the current fingerprint."""
    if model == GEARS:
        return True, ""
    was = measure.get("code_fingerprint")
    if fingerprint is None or was == fingerprint:
        return True, ""
    return False, (f"made by other code (fingerprint {was}, now {fingerprint})" if was
                   else "made before runs recorded their code fingerprint")


def run_one(args, model: str, seed: int) -> dict:
    out = Path(args.out)
    run_dir = out / "runs" / f"{model}-s{seed}"
    meas = out / "runs" / f"{model}-s{seed}.measure.json"
    fingerprint = getattr(args, "code_fingerprint", None)
    if meas.exists() and (run_dir / "run.json").exists() and not args.fresh:
        m = json.loads(meas.read_text())
        ok, why = reusable(m, model, fingerprint)
        if ok:
            print(f"  {model} seed {seed}: reusing {run_dir}", flush=True)
            return m
        print(f"  {model} seed {seed}: not reusing {run_dir}: {why}", flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    cache = tempfile.mkdtemp(prefix="vs-gears-cache-")  # empty: every run prepares its data from scratch
    try:
        cmd = train_command(args, model, seed, run_dir)
        print(f"  {model} seed {seed}: training (load average {load_average()})", flush=True)
        m = run_measured(cmd, out / "logs" / f"train-{model}-s{seed}.log", child_env(args.threads, cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    info = json.loads((run_dir / "run.json").read_text())
    if model not in (GEARS, PRIORGNN):  # evaluate.py labels a run by run.json's "label", else by its model
        info["label"] = model
        (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    m["command"] = shlex.join(cmd)
    m["load_average_end"] = load_average()
    m["code_fingerprint"] = fingerprint
    meas.write_text(json.dumps(m, indent=1))
    print(f"    {m['wall_s']:.0f} s wall, peak RSS {m['maxrss_bytes'] / GIB:.2f} GiB", flush=True)
    return m


def _val_curve(run_dir: Path) -> list[float]:
    """PriorGNN's validation top-20-DE MSE per epoch, from its training log."""
    import pandas as pd

    path = run_dir / "logs" / "metrics.csv"
    if not path.exists():
        return []
    d = pd.read_csv(path)
    if "val_mse_top20_de" not in d:
        return []
    d = d.dropna(subset=["val_mse_top20_de"]).drop_duplicates("epoch", keep="last").sort_values("epoch")
    return [float(v) for v in d["val_mse_top20_de"]]


def summarise_run(model: str, seed: int, run_dir: Path, meas: dict) -> dict:
    """One run's record: its process (wall, peak RSS), preparation, optimiser steps (count and time,
    with what a step trained on), epochs and, per epoch, wall time and validation score."""
    info = json.loads((run_dir / "run.json").read_text())
    timings, fit = info["timings"], info["fit_info"]
    row = {"model": model, "seed": seed, "peak_rss_gib": meas["maxrss_bytes"] / GIB, "process_wall_s": meas["wall_s"],
           "load_and_summaries_s": timings["data_s"], "load_graphs_s": timings["priors_s"],
           "train_s": timings["train_s"], "predict_s": timings.get("predict_s"),
           "git_revision": info.get("git_revision"), "load_average_end": meas.get("load_average_end")}
    if model == GEARS:
        g = fit["gears"]
        eps = g["epochs"]
        full = int(g["steps_per_full_epoch"])
        steps = sum(int(e["steps"]) for e in eps)
        row.update(
            model_prep_s=g["prepare_s"] + g["initialize_s"], steps_per_full_epoch=full,
            steps_per_epoch_run=int(eps[0]["steps"]) if eps else 0, optimiser_steps=steps,
            step_batch=32, step_unit="cells", steps_time_s=sum(e["steps_s"] for e in eps),
            seconds_per_step=sum(e["steps_s"] for e in eps) / max(steps, 1),
            epochs=len(eps), finished=all(int(e["steps"]) >= full for e in eps),
            best_epoch=g["best_epoch"], to_best_s=g["seconds_to_best"],
            training_s=sum(e.get("epoch_s", 0.0) for e in eps),
            curve_s=[e.get("epoch_s") for e in eps], curve_val=[e.get("val_mse_de") for e in eps],
            curve_steps=[int(e["steps"]) for e in eps],
        )
    else:
        tr = fit["training"]
        secs = tr.get("epoch_seconds", [])
        sizes = tr.get("step_sizes", [])
        step_s = tr.get("step_seconds", [])
        full_steps = [s for s, n in zip(step_s, sizes) if n == max(sizes, default=0)]
        n_steps = int(tr.get("global_steps", 0))
        row.update(
            model_prep_s=timings["train_s"] - sum(secs), optimiser_steps=n_steps,
            steps_per_epoch_run=n_steps // max(len(secs), 1), steps_per_full_epoch=n_steps // max(len(secs), 1),
            step_batch=max(sizes, default=0), step_batch_min=min(sizes, default=0), step_unit="conditions",
            steps_time_s=sum(step_s), seconds_per_step=(sum(full_steps) / len(full_steps)) if full_steps else None,
            epochs=len(secs), finished=True, best_epoch=tr.get("best_epoch"), to_best_s=tr.get("seconds_to_best"),
            training_s=sum(secs), curve_s=list(secs), curve_val=_val_curve(run_dir),
            curve_steps=[n_steps // max(len(secs), 1)] * len(secs),
        )
    # everything of the training process before its first epoch: data, graphs, the model's preparation
    row["data_prep_s"] = row["load_and_summaries_s"] + row["load_graphs_s"] + row["model_prep_s"]
    return row


def evaluate_runs(args, run_dirs: list[Path]) -> Path:
    out = Path(args.out) / "report"
    cmd = [sys.executable, str(ROOT / "evaluate.py"), *map(str, run_dirs), "--baselines", ",".join(BASELINES),
           "--out", str(out), "--no-figures", "--quiet", "--overwrite"]
    print(f"evaluating {len(run_dirs)} runs", flush=True)
    run_measured(cmd, Path(args.out) / "logs" / "evaluate.log", child_env(args.threads, None))
    return out / "per_condition.csv"


def _report_covers(per_condition: Path, seeds: list[int]) -> bool:
    """Whether an earlier evaluation scored exactly these seeds (else ``--table`` evaluates again)."""
    import pandas as pd

    if not per_condition.exists():
        return False
    d = pd.read_csv(per_condition, usecols=["model", "seed"])
    return set(d.loc[d["model"] == GEARS, "seed"].astype(int)) == set(seeds)


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
    return mean, sd, n, metrics


def prediction_difference(a: Path, b: Path) -> float | None:
    """Largest absolute difference between two runs' test predictions (the same conditions)."""
    import pandas as pd

    pa, pb = a / "predictions" / "test_delta.csv", b / "predictions" / "test_delta.csv"
    if not (pa.exists() and pb.exists()):
        return None
    x, y = pd.read_csv(pa, index_col=0), pd.read_csv(pb, index_col=0)
    y = y.loc[x.index, x.columns]
    return float((x - y).abs().to_numpy().max())


# ---------------------------------------------------------------------------------------------------
# the numbers (pure: records in, numbers out) and their rendering
# ---------------------------------------------------------------------------------------------------
#: GEARS's published schedule (and cell-gears's default): a cell-gears run has finished training when
#: it ran this many epochs, each over every training batch
GEARS_EPOCHS = 20


def _mean(xs):
    xs = [float(x) for x in xs if x is not None and x == x]
    return sum(xs) / len(xs) if xs else None


def _sd(xs):
    xs = [float(x) for x in xs if x is not None and x == x]
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _by(rows, model):
    return sorted((r for r in rows if r["model"] == model), key=lambda r: r["seed"])


def gears_finished(gears_rows) -> bool:
    """cell-gears finished training: every epoch over all its batches, and GEARS's 20 epochs."""
    return bool(gears_rows) and all(r["finished"] and r["epochs"] >= GEARS_EPOCHS for r in gears_rows)


def gears_ran(gears_rows) -> str:
    """What cell-gears ran: epochs and steps."""
    r = gears_rows[0]
    full, run, ep = int(r["steps_per_full_epoch"]), int(r["steps_per_epoch_run"]), int(r["epochs"])
    if run >= full:
        return f"{n_of(ep, 'epoch')} of {full:,} steps"
    if ep == 1:
        return f"{run:,} of {full:,} steps, 1 epoch"
    return f"{n_of(ep, 'epoch')}, each {run:,} of {full:,} steps"


def gears_label(gears_rows) -> str:
    return f"cell-gears ({gears_ran(gears_rows)})"


def per_step(rows) -> dict:
    """Time per optimiser step of each model, and their ratio, per seed and on the mean over seeds.
    PriorGNN's from the per-step timing run (every step exactly one batch of conditions), else from its
    main run's full-size steps; cell-gears's over all the steps it ran."""
    pg = _by(rows, STEPS_LABEL) or _by(rows, PRIORGNN)
    ge = _by(rows, GEARS)
    pg_s = {r["seed"]: r["seconds_per_step"] for r in pg}
    ge_s = {r["seed"]: r["seconds_per_step"] for r in ge}
    seeds = sorted(set(pg_s) & set(ge_s))
    per_seed = {s: ge_s[s] / pg_s[s] for s in seeds if pg_s[s] and ge_s[s]}
    mpg, mge = _mean(pg_s.values()), _mean(ge_s.values())
    return {"priorgnn_run": pg[0]["model"] if pg else None,
            "priorgnn_s": mpg, "priorgnn_batch": pg[0]["step_batch"] if pg else None,
            "priorgnn_steps_timed": sum(r["optimiser_steps"] for r in pg),
            "gears_s": mge, "gears_batch": ge[0]["step_batch"] if ge else None,
            "gears_steps_timed": sum(r["optimiser_steps"] for r in ge),
            "ratio": (mge / mpg) if (mpg and mge) else None, "ratio_per_seed": per_seed}


def end_to_end(rows, graphs_wall_s: float) -> dict:
    """From the ``.h5ad`` to test predictions: the graphs (one shared process) plus each model's
    training process (data preparation, training to its stopping rule, prediction). PriorGNN: its
    default schedule. When cell-gears has not finished training, its time is a lower bound."""
    pg = _by(rows, DEFAULT_LABEL) or _by(rows, PRIORGNN)
    ge = _by(rows, GEARS)
    finished = gears_finished(ge)
    pg_e2e = {r["seed"]: graphs_wall_s + r["process_wall_s"] for r in pg}
    ge_e2e = {r["seed"]: graphs_wall_s + r["process_wall_s"] for r in ge}
    seeds = sorted(set(pg_e2e) & set(ge_e2e))
    mpg, mge = _mean(pg_e2e.values()), _mean(ge_e2e.values())
    return {"priorgnn_run": pg[0]["model"] if pg else None, "graphs_s": graphs_wall_s,
            "priorgnn_process_s": _mean(r["process_wall_s"] for r in pg),
            "gears_process_s": _mean(r["process_wall_s"] for r in ge),
            "priorgnn_s": mpg, "gears_s": mge, "gears_finished": finished,
            "ratio": (mge / mpg) if (mpg and mge) else None, "ratio_is_lower_bound": not finished,
            "ratio_per_seed": {s: ge_e2e[s] / pg_e2e[s] for s in seeds},
            "priorgnn_epochs": _mean(r["epochs"] for r in pg), "priorgnn_steps": _mean(r["optimiser_steps"] for r in pg),
            "gears_epochs": _mean(r["epochs"] for r in ge), "gears_steps": _mean(r["optimiser_steps"] for r in ge)}


def memory(rows, target: float = TARGET_MEMORY) -> dict:
    """Peak RSS of the training process (one process each) in PriorGNN's two data modes, each as a
    ratio to cell-gears's, against the target. Under a step cap cell-gears's peak is a lower bound of
    its full run's, so the ratios are upper bounds."""
    ge = _mean(r["peak_rss_gib"] for r in _by(rows, GEARS))
    out = {"gears_gib": ge, "target": target, "gears_capped": not all(r["finished"] for r in _by(rows, GEARS))}
    for mode, label in (("summaries_only", PRIORGNN), ("cells_loaded", CELLS_LABEL)):
        pg = _mean(r["peak_rss_gib"] for r in _by(rows, label))
        ratio = (pg / ge) if (pg and ge) else None
        out[mode] = {"run": label, "gib": pg, "ratio": ratio, "met": None if ratio is None else ratio <= target}
    return out


def accuracy_verdict(acc_mean, gears_rows, priorgnn_label: str = DEFAULT_LABEL) -> dict:
    """PriorGNN's headline metric at least equal to cell-gears's per subgroup, only when cell-gears
    has finished training; otherwise no verdict, with the reason."""
    if not gears_finished(gears_rows):
        r = gears_rows[0] if gears_rows else None
        why = ("cell-gears did not run" if r is None else
               f"cell-gears ran {int(r['optimiser_steps']):,} optimiser steps ({gears_ran(gears_rows)}), "
               f"not GEARS's {GEARS_EPOCHS} full epochs: it has not finished training")
        return {"verdict": None, "reason": why}
    from priorgnn.metrics.registry import get_metric

    res = {}
    for sub in SUBGROUPS:
        m = HEADLINE[sub]
        a, b = acc_mean.get((priorgnn_label, sub, m)), acc_mean.get((GEARS, sub, m))
        if a is None or b is None:
            continue
        res[sub] = {"metric": m, "priorgnn": a, "gears": b,
                    "at_least_equal": bool(a >= b if get_metric(m).higher_is_better else a <= b)}
    return {"verdict": res, "reason": None, "priorgnn_run": priorgnn_label}


def time_to_accuracy(rows) -> list[dict]:
    """Validation score against wall time: one point per epoch, at the time the training process spent
    preparing (data, graphs, the model's own preparation) plus the epochs so far."""
    pts = []
    for r in rows:
        if r["model"] not in (GEARS, PRIORGNN, DEFAULT_LABEL):
            continue
        t, steps = r["data_prep_s"], 0
        for i, (s, v) in enumerate(zip(r["curve_s"], r["curve_val"] or [None] * len(r["curve_s"]))):
            t += s or 0.0
            steps += r["curve_steps"][i]
            pts.append({"model": r["model"], "seed": r["seed"], "epoch": i + 1, "optimiser_steps": steps,
                        "wall_s": t, "val_mse_top20_de": v})
    return pts


def build_summary(rows, acc_mean: dict, acc_sd: dict, n_conditions: dict, graphs: dict, setup: dict) -> dict:
    """The headline numbers of one invocation (written to ``vs_gears_summary.json``)."""
    ge = _by(rows, GEARS)
    models = [m for m in (*SCORED, *BASELINES) if any(k[0] == m for k in acc_mean)]
    accuracy = {m: {s: {met: {"mean": acc_mean[(m, s, met)], "sd": acc_sd.get((m, s, met))}
                        for met in METRICS if (m, s, met) in acc_mean}
                    for s in (*SUBGROUPS, "all") if any(k[:2] == (m, s) for k in acc_mean)} for m in models}
    ran = {}
    for m in RUN_ORDER:
        rs = _by(rows, m)
        if rs:
            ran[m] = {"epochs_per_seed": [r["epochs"] for r in rs], "optimiser_steps_per_seed": [r["optimiser_steps"] for r in rs],
                      "steps_per_full_epoch": rs[0]["steps_per_full_epoch"], "step_batch": rs[0]["step_batch"],
                      "step_unit": rs[0]["step_unit"], "finished": gears_finished(rs) if m == GEARS else True}
    return {**setup, "graphs_wall_s": graphs["wall_s"], "n_cells": graphs["n_cells"], "n_genes": graphs["n_genes"],
            "n_conditions": graphs["n_conditions"], "ran": ran,
            "gears_label": gears_label(ge) if ge else None, "gears_finished": gears_finished(ge),
            "per_step": per_step(rows), "end_to_end": end_to_end(rows, graphs["wall_s"]), "memory": memory(rows),
            "accuracy": accuracy, "n_test_conditions": {s: n_conditions.get(s) for s in SUBGROUPS},
            "accuracy_verdict": accuracy_verdict(acc_mean, ge, DEFAULT_LABEL if _by(rows, DEFAULT_LABEL) else PRIORGNN)}


def _flat(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flat(v, key + ".")
        elif isinstance(v, (int, float, bool, str)) or v is None:
            yield key, v


def render_markdown(summary: dict, rows: list[dict], machine: dict, started: dict, ended: dict) -> str:
    """The results page; every number in it is in the summary or the per-run records (CSV)."""
    S = summary
    ps, e2e, mem, acc = S["per_step"], S["end_to_end"], S["memory"], S["accuracy"]
    ge_rows = _by(rows, GEARS)
    pg_rows, dflt_rows = _by(rows, PRIORGNN), _by(rows, DEFAULT_LABEL)
    glabel = S["gears_label"]
    finished = S["gears_finished"]
    epochs = S["epochs"]
    v = machine["versions"]
    L = ["# PriorGNN against the reference GEARS (cell-gears 0.1.2)\n"]
    L.append(f"Command (from the project root): `{S['command']}`\n")
    mb = machine.get("memory_bytes") or 0
    device = f"GPU {machine['gpu']}" if machine.get("gpu") else "CPU only"
    L.append(f"Machine: {machine['cpu']}, {machine['cores']} cores, {mb / GIB:.0f} GiB memory, {device}, "
             f"{machine['platform']}.  ")
    L.append(f"Software: Python {machine['python']}, torch {v.get('torch')}, torch_geometric {v.get('torch-geometric')}, "
             f"cell-gears {v.get('cell-gears')}, lightning {v.get('lightning')}, numpy {v.get('numpy')}, "
             f"scipy {v.get('scipy')}, scanpy {v.get('scanpy')}. Code: commit `{(S.get('git_commit') or '?')[:10]}`, "
             f"fingerprint `{S.get('code_fingerprint')}` of {', '.join(CODE_PATHS)}.  ")
    L.append(f"Started {started['time']} (load average {started['load']}), ended {ended['time']} (load average "
             f"{ended['load']}). The cores are shared with other jobs, so wall times are noisy; both models ran in "
             f"the same invocation, one after the other, each on {n_of(S['threads'], 'torch thread')}"
             f"{', on the GPU' if S['accelerator'] != 'cpu' else ''}. Runs finished by an earlier invocation of "
             "the same command are reused (load averages in the per-run table).\n")
    n = S["n_conditions"]
    L.append(f"Data: `{S['data']}` ({S['n_cells']:,} cells × {S['n_genes']:,} genes), GEARS simulation split "
             f"(seed 1): {n['train']} / {n['val']} / {n['test']} train / val / test conditions, one split file "
             f"for every run. Both models: hidden size {S['hidden']}, batch size {S['batch_size']}, seeds "
             f"{', '.join(map(str, S['seeds']))}, the same GO graph ({S['go_edges']:,} edges) and co-expression "
             f"graph ({S['coexpression_edges']:,} edges), passed in as files.\n")
    if len(S["seeds"]) < 3:
        L.append(f"**{n_of(len(S['seeds']), 'seed')} only** (the full protocol is 3): the shared machine's time "
                 "allowed no more, so " + ("there are no standard deviations over seeds and every number below "
                                           "is one training run per model.\n" if len(S["seeds"]) == 1 else
                                           f"means and standard deviations are over {len(S['seeds'])} seeds.\n"))

    L.append("## What ran\n")
    L.append("| run | one optimiser step trains on | epochs (per seed) | optimiser steps (per seed) | stopping rule | finished training |")
    L.append("|---|---|---|---|---|---|")
    G = S["n_genes"]

    def per_seed(rs, key):
        return "/".join(f"{r[key]:,}" for r in rs)
    if ge_rows:
        r = ge_rows[0]
        cap = ("" if r["steps_per_epoch_run"] >= r["steps_per_full_epoch"] else
               f", cut here to {n_of(int(r['steps_per_epoch_run']), 'step')} per epoch")
        L.append(f"| {glabel} | {r['step_batch']} cells, each a graph of {G:,} genes (GEARS's own loop) | "
                 f"{per_seed(ge_rows, 'epochs')} | {per_seed(ge_rows, 'optimiser_steps')} | "
                 f"{GEARS_EPOCHS} epochs (GEARS's protocol){cap} | {'yes' if finished else '**no**'} |")
    descr = {
        PRIORGNN: (f"PriorGNN ({n_of(epochs, 'epoch')})", f"{n_of(epochs, 'epoch')}, no early stopping", "yes (its schedule)"),
        DEFAULT_LABEL: ("PriorGNN, default schedule", "up to 200 epochs, early stopping after 20 without improvement", "yes"),
        CELLS_LABEL: (f"PriorGNN ({n_of(epochs, 'epoch')})", f"{n_of(epochs, 'epoch')}, no early stopping", "yes (its schedule)"),
        UNTRAINED_LABEL: ("PriorGNN untrained", "none: `--untrained`, the built-in backbone only", "not trained (reference)"),
        STEPS_LABEL: ("PriorGNN, per-step timing", f"{S['step_epochs']} epochs on a training set cut to whole batches", "not scored"),
    }
    for m, (name, rule, fin) in descr.items():
        rs = _by(rows, m)
        if not rs:
            continue
        r = rs[0]
        mode = "cells loaded" if m == CELLS_LABEL else "`--summaries-only`"
        if r["optimiser_steps"]:
            size = (f"{r['step_batch']}" if r["step_batch"] == r.get("step_batch_min") else
                    f"{r.get('step_batch_min')}–{r['step_batch']}")
            unit = (f"{size} conditions, each its mean change over {G:,} genes (the loss covers all of its "
                    "cells through their moments)")
        else:
            unit = "– (no optimiser step)"
        L.append(f"| {name} ({mode}) | {unit} | {per_seed(rs, 'epochs')} | {per_seed(rs, 'optimiser_steps')} | "
                 f"{rule} | {fin} |")
    L.append("")

    reused = [f"{r['model']} seed {r['seed']}" for r in rows if r.get("reused")]
    L.append("## Speed (mean over seeds" + ("; each ratio from one invocation)\n" if not reused else ")\n"))
    L.append("| | PriorGNN | cell-gears | ratio (cell-gears / PriorGNN) |")
    L.append("|---|---:|---:|---:|")
    rs = ps["ratio_per_seed"]
    rng = f" (per seed {fmt_ratio(min(rs.values()))}–{fmt_ratio(max(rs.values()))})" if len(rs) > 1 else ""
    L.append(f"| time per optimiser step: PriorGNN {ps['priorgnn_batch']} conditions, cell-gears {ps['gears_batch']} "
             f"cells, {G:,} genes both | {fmt_s(ps['priorgnn_s'])} | {fmt_s(ps['gears_s'])} | "
             f"**{fmt_ratio(ps['ratio'])}**{rng} |")
    bound = "≥ " if e2e["ratio_is_lower_bound"] else ""
    lb_note = " (lower bound: cell-gears did not finish training)" if e2e["ratio_is_lower_bound"] else ""
    L.append("| time to a trained model, end to end (`.h5ad` → test predictions; each model to its stopping "
             "rule, see *What ran*) | "
             f"{fmt_s(e2e['priorgnn_s'])} | {bound}{fmt_s(e2e['gears_s'])} | **{bound}{fmt_ratio(e2e['ratio'])}**{lb_note} |")
    L.append(f"| – graphs, one process shared by both (load data, split, GO and co-expression graphs) | "
             f"{fmt_s(e2e['graphs_s'])} | {fmt_s(e2e['graphs_s'])} | |")
    L.append(f"| – training process (data preparation, training to its stopping rule, test predictions) | "
             f"{fmt_s(e2e['priorgnn_process_s'])} | {bound}{fmt_s(e2e['gears_process_s'])} | |")
    L.append(f"| – optimiser steps run (mean) | {e2e['priorgnn_steps']:,.0f} | {e2e['gears_steps']:,.0f} | |")
    pg_key = e2e["priorgnn_run"]
    for met in ("pearson_delta", "mse_top20_de"):
        a = acc.get(pg_key, {}).get("all", {}).get(met, {}).get("mean")
        b = acc.get(GEARS, {}).get("all", {}).get(met, {}).get("mean")
        L.append(f"| – accuracy reached: test `{met}`, all subgroups | {fmt(a)} | {fmt(b)} | |")
    L.append("")
    if reused:
        L.append(f"Reused from an earlier invocation of this command, so timed under that invocation's load: "
                 f"{', '.join(reused)}. A ratio that pairs one of them with a run of this invocation compares "
                 "two invocations.\n")
    L.append("The ratio per optimiser step compares equal work units: one step of each model's optimiser at "
             "the batch shape stated. PriorGNN's step time comes from its per-step timing run (every step "
             "exactly one batch), cell-gears's from all the steps it ran; each is the time from the previous "
             "step's end to this step's end (fetching the batch, forward, loss, backward, optimiser update). "
             "End to end, each model's training process starts from the `.h5ad` with an empty cache and stops "
             "by its own rule; both add the same graph-building process"
             + ("; cell-gears did not finish training, so its time and the ratio are lower bounds (measured, "
                "not extrapolated)." if e2e["ratio_is_lower_bound"] else "."))
    L.append("")
    L.append("![validation score against wall time](vs_gears_time_to_accuracy.png)\n")
    L.append("Time to accuracy (`vs_gears_time_to_accuracy.png`, data in `vs_gears_curve.csv`): each model's "
             "validation top-20-DE MSE after every epoch, as its own training loop computes it (PriorGNN: "
             "`val_mse_top20_de` over our top-20 DE genes; cell-gears: its `mse_de` over its top-20 non-dropout "
             "DE genes, which can differ), against the wall time of its training process: its preparation "
             "(data, graphs read, the model's own preparation), then the epochs so far.\n")

    L.append("## Memory (peak resident memory of the training process; one process each, mean over seeds)\n")
    L.append(f"| PriorGNN data mode | PriorGNN | cell-gears | ratio | target ≤ {fmt(mem['target'], 2)}× |")
    L.append("|---|---:|---:|---:|---|")
    for mode, name in (("summaries_only", "`--summaries-only` (streams per-condition summaries; no cell matrix)"),
                       ("cells_loaded", "cells loaded (the in-memory data layer, as cell-gears)")):
        m = mem[mode]
        if m["gib"] is None:
            continue
        verdict = "–" if m["met"] is None else ("met" if m["met"] else "**not met**")
        L.append(f"| {name} | {m['gib']:.2f} GiB | {mem['gears_gib']:.2f} GiB | {fmt_ratio(m['ratio'])} | {verdict} |")
    L.append("")
    note = ("Peak RSS is `ru_maxrss` of the `train.py` child (data loading, preparation, training, test "
            "prediction), as `/usr/bin/time -v` reports it.")
    if mem["gears_capped"]:
        note += (" cell-gears ran under a step cap; its peak comes from its per-cell data preparation and would "
                 "not be lower in a full run, so the ratios are upper bounds.")
    if S.get("modes_max_abs_diff") is not None:
        note += (f" The two PriorGNN modes' test predictions differ by at most {S['modes_max_abs_diff']:.1e} "
                 "(seed 0).")
    L.append(note + "\n")

    L.append("Preparation inside the training process (mean over seeds; see the per-run table's note):\n")
    L.append("| | PriorGNN (`--summaries-only`) | PriorGNN (cells loaded) | cell-gears |")
    L.append("|---|---:|---:|---:|")
    means = {m: {k: _mean(r[k] for r in _by(rows, m)) for k in
                 ("load_and_summaries_s", "load_graphs_s", "model_prep_s", "data_prep_s", "process_wall_s")}
             for m in (PRIORGNN, CELLS_LABEL, GEARS)}
    for key, name in (("load_and_summaries_s", "load data + our summaries"), ("load_graphs_s", "read the two saved graphs"),
                      ("model_prep_s", "the model's own preparation (cell-gears: its DE genes, per-cell graphs, loaders, model)"),
                      ("data_prep_s", "preparation, total"), ("process_wall_s", "whole training process (wall)")):
        L.append(f"| {name} | {fmt_s(means[PRIORGNN][key])} | {fmt_s(means[CELLS_LABEL][key])} | {fmt_s(means[GEARS][key])} |")
    L.append("")
    L.append("Graphs, built once in a separate process and passed to both models:\n")
    L.append("| step | time | peak memory of that process |")
    L.append("|---|---:|---:|")
    gr = S["graphs"]
    L.append(f"| load data + split | {fmt_s(gr['load_s'])} | |")
    L.append(f"| GO graph: read OBO + GAF | {fmt_s(gr['go_read_s'])} | |")
    L.append(f"| GO graph: build (k = 20, Jaccard > 0.1) | {fmt_s(gr['go_build_s'])} | |")
    L.append(f"| co-expression graph (training cells) | {fmt_s(gr['coexpression_s'])} | |")
    L.append(f"| whole process | {fmt_s(gr['wall_s'])} | {gr['maxrss_gib']:.2f} GiB |")
    L.append("\ncell-gears's own GO construction (`make_GO`) is not run here: the graph is passed in. "
             "`go_graph.md` measures it against ours.\n")

    L.append("## Accuracy per test subgroup (mean ± SD over seeds)\n")
    L.append("Number of test conditions per subgroup: " + ", ".join(
        f"{s} {S['n_test_conditions'].get(s) or 0}" for s in SUBGROUPS) + ". Unseen perturbations "
        "(`unseen_single`, `combo_seen0`) are scored without the perturbed genes (`pearson_delta_excl_target`); "
        "the perturbed gene's own change has its own metrics (`target_sign_match`, `target_abs_error`).\n")
    cols = [(PRIORGNN, f"PriorGNN ({n_of(epochs, 'epoch')})"), (DEFAULT_LABEL, "PriorGNN, default schedule"),
            (UNTRAINED_LABEL, "PriorGNN untrained"), (GEARS, glabel), ("no_change", "no_change"), ("additive", "additive")]
    cols = [(m, name) for m, name in cols if m in acc]

    def cell(m, sub, met):
        d = acc.get(m, {}).get(sub, {}).get(met)
        if d is None:
            return "–"
        return fmt(d["mean"]) + (f" ± {fmt(d['sd'])}" if d["sd"] is not None and d["sd"] == d["sd"] else "")
    L.append("Headline metric per subgroup:\n")
    L.append("| subgroup | metric | " + " | ".join(name for _, name in cols) + " |")
    L.append("|---|---|" + "---:|" * len(cols))
    for sub in (*SUBGROUPS, "all"):
        met = HEADLINE[sub]
        L.append(f"| {sub} | {met} | " + " | ".join(cell(m, sub, met) for m, _ in cols) + " |")
    L.append("")
    ver = S["accuracy_verdict"]
    if ver["verdict"] is None:
        L.append(f"**No verdict against cell-gears**: {ver['reason']}. Its columns show what it reached at that "
                 "point, not its accuracy when trained.\n")
    else:
        name = "PriorGNN, default schedule" if ver["priorgnn_run"] == DEFAULT_LABEL else "PriorGNN"
        L.append(f"Target: {name}'s headline metric at least equal to cell-gears's (both trained to their "
                 "stopping rules) on every subgroup: " + ", ".join(
                     f"{s} {'PASS' if d['at_least_equal'] else 'MISSED'}" for s, d in ver["verdict"].items()) + ".\n")
    L.append("All metrics:\n")
    L.append("| subgroup | metric | " + " | ".join(name for _, name in cols) + " |")
    L.append("|---|---|" + "---:|" * len(cols))
    for sub in (*SUBGROUPS, "all"):
        for met in METRICS:
            if not any(met in acc.get(m, {}).get(sub, {}) for m, _ in cols):
                continue
            L.append(f"| {sub} | {met} | " + " | ".join(cell(m, sub, met) for m, _ in cols) + " |")
    L.append("")

    L.append("## Per run\n")
    L.append("| run | seed | epochs | optimiser steps | s/step | steps' time | training time | best epoch | "
             "peak RSS | preparation | process wall | load average at its end (1, 5, 15 min) | commit |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in sorted(rows, key=lambda r: (RUN_ORDER.index(r["model"]), r["seed"])):
        L.append(f"| {r['model']} | {r['seed']} | {r['epochs']} | {r['optimiser_steps']:,} | {fmt_s(r['seconds_per_step'])} | "
                 f"{fmt_s(r['steps_time_s'])} | {fmt_s(r['training_s'])} | {r['best_epoch'] if r['best_epoch'] else '–'} | "
                 f"{r['peak_rss_gib']:.2f} GiB | {fmt_s(r['data_prep_s'])} | {fmt_s(r['process_wall_s'])} | "
                 f"{r.get('load_average_end') or '–'} | `{(r.get('git_revision') or '?')[:7]}` |")
    L.append("")
    revs = sorted({(r.get("git_revision") or "?")[:7] for r in rows})
    if len(revs) > 1:
        L.append(f"The runs were made by {len(revs)} commits ({', '.join(revs)}; per run in the last column): "
                 "commits to the project landed while the runs were made.\n")
    L.append("s/step: the mean time of one optimiser step (PriorGNN: over its full-size steps). Steps' time: all "
             "optimiser steps; training time: all epochs including validation (cell-gears: also its evaluation "
             "of the training set after each epoch). Preparation: loading the data and our summaries, reading "
             "the graphs, and the model's own preparation (cell-gears: its DE genes, per-cell graph data set, "
             "loaders and model; PriorGNN: its fit's time outside the epochs, i.e. loss targets and encoding, "
             "and after training the best checkpoint's reload and the interaction gate).\n")
    note = S.get("protocol_note")
    if note:
        L.append("## Protocol note (an extrapolation, not a measurement)\n")
        L.append(note + "\n")
    return "\n".join(L)


def plot_curve(points: list[dict], path: Path, labels: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {GEARS: "tab:red", PRIORGNN: "tab:blue", DEFAULT_LABEL: "tab:green"}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for model in (DEFAULT_LABEL, PRIORGNN, GEARS):
        seeds = sorted({p["seed"] for p in points if p["model"] == model})
        for k, seed in enumerate(seeds):
            pts = [p for p in points if p["model"] == model and p["seed"] == seed and p["val_mse_top20_de"] is not None]
            if not pts:
                continue
            ax.plot([p["wall_s"] for p in pts], [p["val_mse_top20_de"] for p in pts], marker="o", ms=3, lw=1,
                    color=colours[model], alpha=0.8, label=labels[model] if k == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("wall time of the training process: preparation, then the epochs (s, log scale)")
    ax.set_ylabel("validation top-20-DE MSE (each model's own)")
    ax.set_title("Time to accuracy, one line per seed, one point per epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(args, graphs: dict, rows: list[dict], machine: dict, started: dict, ended: dict,
                  provenance: dict) -> dict:
    import pandas as pd

    per_cond = Path(args.out) / "report" / "per_condition.csv"
    mean, sd, n, metrics = accuracy_table(per_cond)
    acc_mean = {(m, s, met): float(mean.loc[(m, s), met]) for (m, s) in mean.index for met in metrics
                if mean.loc[(m, s), met] == mean.loc[(m, s), met]}
    acc_sd = {(m, s, met): float(sd.loc[(m, s), met]) for (m, s) in sd.index for met in metrics}
    n_cond = {s: int(n.get((PRIORGNN, s), n.get((GEARS, s), 0))) for s in SUBGROUPS}
    out = Path(args.out)
    diff = None
    if (out / "runs" / f"{CELLS_LABEL}-s{args.seed_list[0]}").exists():
        diff = prediction_difference(out / "runs" / f"{PRIORGNN}-s{args.seed_list[0]}",
                                     out / "runs" / f"{CELLS_LABEL}-s{args.seed_list[0]}")
    g = {k: graphs[k] for k in ("load_s", "go_read_s", "go_build_s", "coexpression_s", "wall_s")}
    g["maxrss_gib"] = graphs["maxrss_bytes"] / GIB
    setup = {"data": graphs["data"], "command": args.command_line, "seeds": args.seed_list, "epochs": args.epochs,
             "gears_steps": args.gears_steps, "step_epochs": args.step_epochs, "batch_size": args.batch_size,
             "hidden": args.hidden, "threads": args.threads, "accelerator": args.accelerator,
             "go_edges": graphs["go_edges"], "coexpression_edges": graphs["coexpression_edges"], "graphs": g,
             "modes_max_abs_diff": diff, "started": started, "ended": ended, "machine": machine, **provenance}
    summary = build_summary(rows, acc_mean, acc_sd, n_cond, graphs, setup)
    ge = _by(rows, GEARS)
    if ge and not all(r["finished"] for r in ge):
        full = int(ge[0]["steps_per_full_epoch"])
        steps_s = summary["per_step"]["gears_s"] * full
        summary["protocol_note_full_epoch_steps_s"] = steps_s
        summary["protocol_note"] = (
            f"cell-gears ran {gears_ran(ge)} per seed. At its measured {fmt_s(summary['per_step']['gears_s'])} per "
            f"optimiser step, the {full:,} steps of one full epoch would take about {fmt_duration(steps_s)} of "
            "optimiser steps alone on this machine (before its evaluation of the training set and its validation "
            f"pass), and GEARS's protocol is {GEARS_EPOCHS} such epochs. This estimate enters no ratio and no "
            "verdict above; a full run on an accelerator is scripted in `benchmarks/vs_gears_gpu.sh`.")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    # every number of the page: the runs, their means, the accuracy, the headline numbers
    prov = {k: provenance.get(k) for k in ("git_commit", "code_fingerprint", "code_paths")}
    lists = ("curve_s", "curve_val", "curve_steps")
    csv_rows = [{"kind": "run", **{k: v for k, v in r.items() if k not in lists}, **prov} for r in rows]
    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in lists} for r in rows])
    for model, part in frame.groupby("model", sort=False):
        num = part.drop(columns=["seed"]).select_dtypes("number")
        csv_rows.append({"kind": "run_mean", "model": model, **num.mean().to_dict(), **prov})
    for (m, s, met), val in acc_mean.items():
        csv_rows.append({"kind": "accuracy", "model": m, "subgroup": s, "metric": met, "mean": val,
                         "sd_over_seeds": acc_sd.get((m, s, met)), "n_conditions": n_cond.get(s),
                         "n_seeds": len(args.seed_list), **prov})
    for key, val in _flat({k: v for k, v in summary.items() if k not in ("accuracy", "ran")}):
        csv_rows.append({"kind": "headline", "key": key, "value": val, **prov})
    pd.DataFrame(csv_rows).to_csv(results / "vs_gears.csv", index=False, float_format="%.6g")
    points = time_to_accuracy(rows)
    pd.DataFrame(points).to_csv(results / "vs_gears_curve.csv", index=False, float_format="%.6g")
    labels = {PRIORGNN: f"PriorGNN ({n_of(args.epochs, 'epoch')})", DEFAULT_LABEL: "PriorGNN, default schedule",
              GEARS: summary["gears_label"] or "cell-gears"}
    plot_curve(points, results / "vs_gears_time_to_accuracy.png", labels)
    (results / "vs_gears_summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (results / "vs_gears.md").write_text(render_markdown(summary, rows, machine, started, ended) + "\n")
    print(f"wrote {results}/vs_gears.md, vs_gears.csv, vs_gears_summary.json, vs_gears_curve.csv, "
          "vs_gears_time_to_accuracy.png")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="norman", help="simulator preset or simulation folder (default norman)")
    p.add_argument("--sim-dir", default=None, help="where a preset is simulated (default runs/sim/PRESET-seed0)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=1,
                   help="cell-gears's epochs, and PriorGNN's in its same-epoch run (default 1)")
    p.add_argument("--gears-steps", type=int, default=40,
                   help="cell-gears steps per epoch (default 40; 0 = full epochs)")
    p.add_argument("--step-epochs", type=int, default=20,
                   help="epochs of PriorGNN's per-step timing run (default 20)")
    p.add_argument("--no-priorgnn-default", action="store_true",
                   help="skip the PriorGNN runs with train.py's default schedule")
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"],
                   help="where both models train (default cpu; gpu: CUDA for both)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per training process (default 1)")
    p.add_argument("--out", default="runs/bench-vs-gears", help="work folder (default runs/bench-vs-gears)")
    p.add_argument("--results", default=None, help="folder of the result files (default benchmarks/results; "
                                                    "with --quick, OUT)")
    p.add_argument("--quick", action="store_true", help="smoke run: demo preset, seed 0, 2 epochs, 5 GEARS steps")
    p.add_argument("--fresh", action="store_true", help="redo runs already finished in OUT")
    p.add_argument("--table", action="store_true", help="only rebuild the result files from OUT")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data-path", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.data, args.seeds, args.epochs, args.gears_steps, args.step_epochs = "demo", "0", 2, 5, 2
        if args.out == "runs/bench-vs-gears":
            args.out = "runs/bench-vs-gears-quick"
    args.results = args.results or (args.out if args.quick else str(ROOT / "benchmarks" / "results"))
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.seed_list or args.epochs < 1 or args.gears_steps < 0 or args.step_epochs < 1:
        p.error("need at least one seed, --epochs >= 1, --step-epochs >= 1 and --gears-steps >= 0")
    args.command_line = "python benchmarks/vs_gears.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                            " " + shlex.join(sys.argv[1:] if argv is None else argv))
    return args


def _stage(args, name: str, extra: list[str], out: Path) -> dict:
    cache = tempfile.mkdtemp(prefix="vs-gears-cache-")
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--data", args.data,
               "--out", str(out), *extra]
        return run_measured(cmd, out / "logs" / f"{name}.log", child_env(args.threads, cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stage == "graphs":
        return stage_graphs(args)
    from claims import code_fingerprint, head_commit

    from priorgnn.models import available_models

    t_start = time.perf_counter()
    available_models()  # import every model now, so the fingerprint below is the code that runs
    provenance = {"git_commit": head_commit(ROOT), "code_fingerprint": code_fingerprint(CODE_PATHS, ROOT),
                  "code_paths": ";".join(CODE_PATHS)}
    args.code_fingerprint = provenance["code_fingerprint"]  # a run of other code is not reused (run_one)
    started = {"time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": load_average(), "epoch": time.time()}
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    machine = machine_description(args.accelerator)

    gpath = out / "graphs" / "graphs.json"
    if not (gpath.exists() and (out / "graphs" / "measure.json").exists()) or (args.fresh and not args.table):
        print(f"graphs: data {args.data}, GO and co-expression graphs (load average {load_average()})", flush=True)
        m = _stage(args, "graphs", ["--sim-dir", args.sim_dir] if args.sim_dir else [], out)
        (out / "graphs" / "measure.json").write_text(json.dumps(m))
    graphs = {**json.loads(gpath.read_text()), **json.loads((out / "graphs" / "measure.json").read_text())}
    args.data_path = graphs["data_path"]
    kept = steps_split(out / "graphs" / "split.json", args.batch_size, out / "graphs" / "split_steps.json")
    print(f"per-step timing run: {kept} training conditions", flush=True)

    rows, scored = [], []
    for seed in args.seed_list:
        for model in run_labels(args):
            run_dir = out / "runs" / f"{model}-s{seed}"
            if args.table:
                meas = json.loads((out / "runs" / f"{model}-s{seed}.measure.json").read_text())
            else:
                meas = run_one(args, model, seed)
            rows.append(summarise_run(model, seed, run_dir, meas))
            if model in SCORED:
                scored.append(run_dir)
    if not args.table or not _report_covers(out / "report" / "per_condition.csv", args.seed_list):
        evaluate_runs(args, scored)
    ended = {"time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": load_average(),
             "elapsed_s": time.perf_counter() - t_start}
    if args.table and (out / "result.json").exists():
        prev = json.loads((out / "result.json").read_text())
        started, ended, machine = prev["started"], prev["ended"], prev["machine"]
        recorded = prev.get("provenance", provenance)
        if recorded.get("code_paths") != provenance["code_paths"]:
            # recorded over other paths: re-fingerprint only if nothing under ours changed since that commit
            same = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", recorded["git_commit"], "--",
                                   *CODE_PATHS], check=False).returncode == 0
            recorded = {**recorded, **({"code_fingerprint": provenance["code_fingerprint"],
                                        "code_paths": provenance["code_paths"]} if same else {})}
        provenance = recorded
        args.command_line = prev.get("command", args.command_line)
    # runs whose measurement predates this invocation's start were reused from an earlier one
    if "epoch" in started:
        t0 = started["epoch"]
    else:  # recorded to the minute by earlier versions
        import calendar

        t0 = calendar.timegm(time.strptime(started["time"], "%Y-%m-%d %H:%M UTC"))
    for r in rows:
        r["reused"] = (out / "runs" / f"{r['model']}-s{r['seed']}.measure.json").stat().st_mtime < t0
    summary = write_outputs(args, graphs, rows, machine, started, ended, provenance)
    (out / "result.json").write_text(json.dumps({"started": started, "ended": ended, "machine": machine,
                                                 "graphs": graphs, "runs": rows, "provenance": provenance,
                                                 "command": args.command_line}, indent=1, default=str))
    print(json.dumps({k: summary[k] for k in ("per_step", "end_to_end", "memory")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
