"""Choose PriorGNN's knowledge encoding on validation data, on simulations the study never sees.

Each variant of the GO pathway (``priorgnn`` hyperparameters) is fitted on positive-control
simulations (the study's ``POSITIVE_CONTROL`` settings of the ``demo`` preset) with data seeds other
than the study's (default 11 and 12), and scored on

* **validation** (the choice): the unseen singles among the split's validation conditions (genes held
  out of training for validation), ``pearson_delta_excl_target`` against the observed data;
* **test** (reported, not used to choose): the test split's unseen singles against the noise-free truth.

The default changes only for a variant whose validation score beats the current default's by more than
twice the standard error of their paired difference over seeds (otherwise the simpler, current default
stays: a difference within noise is no reason to change the model); the others stay as options. Output:
``benchmarks/results/knowledge_encodings.{md,csv}``.

Usage::

    python benchmarks/knowledge_encodings.py [--seeds 11,12] [--epochs 500]
"""

from __future__ import annotations

import argparse
import logging
import platform
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from priorgnn.io import write_csv, write_text
from priorgnn.data.conditions import parse_condition
from priorgnn.metrics.core import keep_mask, perturbed_gene_idx, rowwise_pearson

ROOT = Path(__file__).resolve().parent.parent

#: label -> PriorGNN options (on top of allow_prior_free and use_coexpression=False; see the docstring)
VARIANTS: dict[str, dict] = {
    "propagate + SGConv, centred, gated, per-gene shrinkage (default)": {},
    "propagate with one λ for every gene (the earlier default)": {"prop_shrink": "global"},
    "propagate + GAT": {"go_conv": "gat"},
    "propagate + SGConv, 2 hops": {"go_layers": 2},
    "propagate over walks of up to 3 steps": {"prop_hops": 3},
    "propagate over walks of 1 to 3 steps, summed, length by leave-one-out": {"prop_hops": 3,
                                                                               "prop_walk": "cumulative"},
    "propagate, network not centred": {"null_center": False},
    "SGConv only (GEARS pathway), centred": {"knowledge": "embed"},
    "SGConv only, not centred (GEARS's pathway as first built)": {"knowledge": "embed", "null_center": False},
}


def _unseen_singles(conditions, train) -> list[str]:
    seen = {g for c in train for g in parse_condition(c)}
    return [c for c in conditions if len(parse_condition(c)) == 1 and parse_condition(c)[0] not in seen]


def _score(pred: np.ndarray, ref: np.ndarray, conds: list[str], genes: list[str]) -> float:
    return float(np.mean(rowwise_pearson(pred, ref, keep_mask(ref.shape, perturbed_gene_idx(conds, genes)))))


def run(seeds: list[int], epochs: int, out: Path, variants: dict[str, dict] | None = None) -> pd.DataFrame:
    from knowledge.cache import go_graph
    from priorgnn import experiment
    from priorgnn.data.splits import make_split
    from priorgnn.models import get_model_class
    from priorgnn.models.base import PriorGraphs, TrainConfig
    from priorgnn.simulate import simulate
    from priorgnn.study import POSITIVE_CONTROL

    rows = []
    for seed in seeds:
        sim = simulate("demo", seed=seed, out=out / f"positive-s{seed}", **POSITIVE_CONTROL)
        split = make_split(sim.conditions, "simulation", seed=1)
        val = _unseen_singles(split.val, split.train)
        test = _unseen_singles(split.test, split.train)
        s = sim.data.summaries
        val_obs = np.stack([s.delta(c) for c in val]) if val else None
        truth = sim.truth_delta(test)
        go = go_graph(obo=sim.obo_path, gaf=sim.gaf_path, k=20, threshold=0.1)
        genes = list(sim.data.genes)
        for label, opts in (variants or VARIANTS).items():
            model = get_model_class("priorgnn")(use_coexpression=False, allow_prior_free=True, **opts)
            t0 = time.perf_counter()
            experiment.fit(model, sim.data, split, PriorGraphs(go=go),
                           train=TrainConfig(max_epochs=epochs, patience=20, progress_bar=False, threads=1, seed=0))
            rows.append({"variant": label, "options": repr(opts), "data_seed": seed, "n_val": len(val),
                         "n_test": len(test),
                         "validation": _score(experiment.predict(model, val, genes=genes)[0], val_obs, val, genes)
                         if val else np.nan,
                         "test_vs_truth": _score(experiment.predict(model, test, genes=genes)[0], truth, test, genes),
                         "fit_s": time.perf_counter() - t0,
                         "epochs": (model.fit_info.get("training") or {}).get("epochs")})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="11,12", help="simulation seeds (default 11,12; the study uses 0)")
    p.add_argument("--epochs", type=int, default=500, help="epoch cap (patience 20, as in the study)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "knowledge-encodings")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="knowledge_encodings", help="output file stem under --results")
    p.add_argument("--variants", default="", help="only these variants (numbers in VARIANTS' order, from 0, "
                   "comma-separated; the default, 0, is always included): a confirmation on fresh seeds")
    args = p.parse_args(argv)
    labels = list(VARIANTS)
    chosen = sorted({0} | {int(i) for i in args.variants.split(",") if i.strip()}) if args.variants else None
    if chosen and max(chosen) >= len(labels):
        p.error(f"--variants: there are {len(labels)} variants (0 to {len(labels) - 1})")
    variants = {labels[i]: VARIANTS[labels[i]] for i in chosen} if chosen else None
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    t0 = time.time()
    table = run([int(s) for s in args.seeds.split(",")], args.epochs, args.out, variants)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    table["git_commit"] = commit
    args.results.mkdir(parents=True, exist_ok=True)
    write_csv(args.results / f"{args.name}.csv", table)
    means = table.groupby("variant", sort=False)[["validation", "test_vs_truth", "fit_s"]].mean()
    best = means["validation"].idxmax()
    default = next(iter(VARIANTS))
    piv = table.pivot_table(index="data_seed", columns="variant", values="validation")
    gain = piv[best] - piv[default]
    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("nan")
    change = best != default and float(gain.mean()) > 2 * se
    given = sys.argv[1:] if argv is None else argv
    cmd = "python benchmarks/knowledge_encodings.py" + (f" {shlex.join(given)}" if given else "")
    L = ["# PriorGNN's knowledge encoding, chosen on validation data", "",
         f"Produced by `{cmd}` in {time.time() - t0:.0f} s ({platform.machine()}, Python "
         f"{platform.python_version()}, commit {commit[:10]}). Positive-control simulations with data seeds "
         f"{args.seeds} (the study uses seed 0); GEARS simulation split, seed 1. `validation`: the validation "
         "split's unseen singles, `pearson_delta_excl_target` vs the observed data (the choice); `vs default`: "
         "its paired difference from the default over seeds (standard error; seeds where it is higher). `test vs "
         "truth`: the test split's unseen singles vs the noise-free truth (reported only).", "",
         "| variant | validation | vs default | test vs truth | fit s |", "|---|---|---|---|---|"]
    for v, r in means.iterrows():
        diff = piv[v] - piv[default]
        vs = ("" if v == default else f"{diff.mean():+.3f} (SE {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}; "
              f"{int((diff > 0).sum())} of {len(diff)})")
        L.append(f"| {v}{' **(best on validation)**' if v == best else ''} | {r['validation']:.3f} | {vs} | "
                 f"{r['test_vs_truth']:.3f} | {r['fit_s']:.1f} |")
    L += ["", f"Best mean on validation: **{best}**"
          + (f", ahead of the default by {gain.mean():+.3f} (paired SE {se:.3f} over {len(gain)} seeds): "
             + ("beyond twice the SE, so it becomes the default." if change else
                "within twice the SE, so the default stays.") if best != default else " (the default)")
          + f" Per-seed rows: `{args.name}.csv`.", ""]
    write_text(args.results / f"{args.name}.md", "\n".join(L))
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
