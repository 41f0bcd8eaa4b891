#!/usr/bin/env python
"""How the backbones of doubles learn the non-additive part as training doubles grow: a learning curve.

    python benchmarks/interaction_learning_curve.py [--seeds 11,12,13] [--results benchmarks/results]

The interaction targets' T3 (``nonadditive_corr`` ≥ 0.3 on doubles of measured singles) is not met on
the plain ``norman`` preset, whose simulation split trains on about 35 doubles. Is that for want of
doubles, or a limit of the rules themselves? This script holds out a fixed random set of doubles per
repeat (``--test-doubles``, 25) and trains on growing prefixes of a fixed random order of the others
(``--sizes``, 15, 35, 60 and 100 doubles), every single measured in training, so that each size differs
from the next only by the doubles added. The models are the baselines of doubles (fitted in seconds;
PriorGNN's backbone is ``pair_auto``'s choice): ``additive``, ``overlap_additive``,
``relation_additive``, ``pair_auto``, and the two fitted rules over every gene of a training double
(``*_all``). Scored against the noise-free truth: ``mse_top20_de`` and ``nonadditive_corr``.

Settings as ``interaction_targets.py`` (``norman`` and ``norman_systematic``), on data seeds the study and
the targets never use (default 11, 12, 13; the simulations are shared with ``pair_backbones.py``).
Writes ``RESULTS/interaction_learning_curve.csv`` (per setting, seed, repeat, size and model: the means over
the test doubles), ``RESULTS/interaction_learning_curve_summary.csv`` (means over seeds and repeats, long
format) and ``RESULTS/interaction_learning_curve.md``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import made_by, script_setup  # a sibling script (benchmarks/ is on sys.path)
from claims import head_commit

ROOT = Path(__file__).resolve().parents[1]
#: label -> (registered model, options)
VARIANTS = {"additive": ("additive", {}), "overlap_additive": ("overlap_additive", {}),
            "relation_additive": ("relation_additive", {}), "pair_auto": ("pair_auto", {}),
            "overlap_additive_all": ("overlap_additive", {"fit_genes": "all"}),
            "relation_additive_all": ("relation_additive", {"fit_genes": "all"})}
METRICS = ("mse_top20_de", "nonadditive_corr")


def learning_splits(conditions, seed: int, n_test: int, sizes, repeats: int):
    """``[(repeat, size, Split)]``: per repeat, ``n_test`` doubles held out at random and the training
    doubles the first ``size`` of a random order of the rest (so a larger size adds doubles, it swaps
    none); every single and the control are in training. Sizes larger than the rest are skipped."""
    from priorgnn.data.conditions import CTRL, parse_condition
    from priorgnn.data.splits import Split

    singles = [c for c in conditions if c != CTRL and len(parse_condition(c)) == 1]
    doubles = sorted(c for c in conditions if len(parse_condition(c)) == 2)
    rng = np.random.default_rng(seed)
    out = []
    for rep in range(repeats):
        order = [doubles[i] for i in rng.permutation(len(doubles))]
        test, rest = order[:n_test], order[n_test:]
        for size in sizes:
            if size <= len(rest):
                out.append((rep, size, Split("custom", rep, train=[CTRL, *singles, *rest[:size]], val=[], test=test)))
    return out


def run(seeds, out: Path, n_test: int, sizes, repeats: int) -> pd.DataFrame:
    from priorgnn import experiment
    from priorgnn.simulate import simulate

    from interaction_targets import settings

    rows = []
    for name, overrides in settings().items():
        for seed in seeds:
            sim = simulate("norman", seed=seed, out=out / f"{name}-s{seed}", **overrides)
            for rep, size, split in learning_splits(sim.conditions, seed, n_test, sizes, repeats):
                fitted = {label: experiment.fit(model, sim, split, **options)
                          for label, (model, options) in VARIANTS.items()}
                table = experiment.score(fitted, sim, split, conditions=split.test, metrics=list(METRICS))
                table = table[table["reference"] == "truth"]
                for label in VARIANTS:
                    sub = table[table["model"] == label]
                    rows.append({"setting": name, "data_seed": seed, "repeat": rep, "n_train": size,
                                 "n_test": len(split.test), "model": label,
                                 **{m: float(sub[m].mean()) for m in METRICS}})
            logging.info("%s seed %d done", name, seed)
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds and repeats, long format: ``setting, model, n_train, metric, value``."""
    mean = frame.groupby(["setting", "model", "n_train"], sort=False)[list(METRICS)].mean().reset_index()
    return mean.melt(id_vars=["setting", "model", "n_train"], var_name="metric", value_name="value")


def render(summary: pd.DataFrame, command: str, wall: float, commit: str) -> str:
    L = ["# Learning the non-additive part as training doubles grow", "",
         f"{made_by(command, wall, commit)}. Means over the held-out doubles, then over data seeds and repeats; against the "
         "noise-free truth. Lower `mse_top20_de` is better, higher `nonadditive_corr`. Design in the script's "
         "docstring.", ""]
    for name, sub in summary.groupby("setting", sort=False):
        sizes = sorted(sub["n_train"].unique())
        L += [f"## `{name}`", "",
              "| model | " + " | ".join(f"{m}, {n} doubles" for m in METRICS for n in sizes) + " |",
              "|---|" + "---:|" * (len(METRICS) * len(sizes))]
        for model in VARIANTS:
            v = sub[sub["model"] == model].set_index(["metric", "n_train"])["value"]
            L.append(f"| {model} | " + " | ".join(f"{v[(m, n)]:.3f}" for m in METRICS for n in sizes) + " |")
        L.append("")
    return "\n".join(L)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="11,12,13", help="data seeds (the study and the targets use 0-2)")
    p.add_argument("--sizes", default="15,35,60,100", help="numbers of training doubles")
    p.add_argument("--test-doubles", type=int, default=25, help="doubles held out per repeat")
    p.add_argument("--repeats", type=int, default=2, help="random orders of the doubles per seed")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "pair-backbones", help="simulations")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    script_setup()
    from priorgnn.io import write_csv, write_text

    t0 = time.perf_counter()
    frame = run([int(s) for s in args.seeds.split(",")], args.out, args.test_doubles,
                [int(s) for s in args.sizes.split(",")], args.repeats)
    commit = head_commit(ROOT)
    frame["git_commit"] = commit
    summary = summarise(frame)
    command = "python benchmarks/interaction_learning_curve.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    args.results.mkdir(parents=True, exist_ok=True)
    write_csv(args.results / "interaction_learning_curve.csv", frame, index=False)
    write_csv(args.results / "interaction_learning_curve_summary.csv", summary.assign(git_commit=commit), index=False)
    text = render(summary, command.strip(), time.perf_counter() - t0, commit)
    write_text(args.results / "interaction_learning_curve.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
