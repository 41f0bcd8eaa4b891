#!/usr/bin/env python
"""Shrinking the backbone of doubles toward ``additive`` before the pair kernel correction: three rules
compared on validation simulations; the comparison that chose PriorGNN's ``pair_shrink`` default (0.5).

    python benchmarks/pair_shrinkage.py [--seeds 11,12,13,14,15,16] [--settings norman,norman_systematic]

``interaction_power.md`` found that with realistic systematic variation PriorGNN's doubles of measured
singles can be worse than ``additive`` by more than T1's 0.01 (``norman_systematic``, data seed 11),
and that its backbone (``pair_auto``) is already worse there. The issue suggests shrinkage toward
``additive``. Here a double of two measured singles is predicted as

    additive + s · (backbone − additive) + correction,

with ``backbone`` the ``pair_auto`` baseline's prediction and ``correction`` the pair kernel
(:func:`priorgnn.models.pair_kernel.fit_pair_kernel`) fitted on what the shrunk backbone leaves in the
training doubles. The rules:

* ``s=1``: no shrinkage (the ``pair_kernel`` baseline with ``shrink=1``; PriorGNN's doubles of measured
  singles with ``pair_shrink=1``, as they were before this comparison);
* ``s=0.5``: halfway to ``additive`` (the defaults since: ``pair_kernel``'s ``shrink`` and PriorGNN's
  ``pair_shrink``);
* ``s=loo``: ``s`` in :data:`SHRINKS` chosen together with the correction's width and ridge by the
  leave-one-double-out error over the training doubles, where each held-out double's backbone is
  ``pair_auto`` refitted without it (an in-sample backbone fits its own training doubles, so it would
  always choose ``s = 1``). The correction is trained on the in-sample residuals, as the ``s=1`` rule's,
  and scored on the held-out double's residual from its left-out backbone (the closed form of
  :mod:`priorgnn.models.pair_kernel`; "no correction" is a candidate for every ``s``).

Settings and simulations are ``pair_backbones.py``'s (data seeds 11-16, never used by the interaction
targets; its simulation folders are shared), with the project's simulation split (seed 1). Scored
through :mod:`priorgnn.experiment`: the test split's ``combo_seen2`` doubles against the noise-free
truth, and the validation doubles of measured singles against the observed data (the only data a
user could choose with). Per rule: ``mse_top20_de`` and ``nonadditive_corr`` (means over the doubles of
each seed, then over seeds), the doubles below and above ``additive``'s MSE, and per seed the mean MSE
minus ``additive``'s (T1's tolerance is 0.01).

Writes ``RESULTS/pair_shrinkage.csv`` (per double), ``RESULTS/pair_shrinkage_summary.csv`` (per setting,
part and rule) and ``RESULTS/pair_shrinkage.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import made_by, script_setup  # a sibling script (benchmarks/ is on sys.path)
from claims import head_commit

ROOT = Path(__file__).resolve().parents[1]
#: the shrinkage factors the ``s=loo`` rule chooses among
SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)
RULES = ("s=1", "s=0.5", "s=loo")
MODELS = ("additive", "pair_auto", *RULES)
METRICS = ("mse_top20_de", "nonadditive_corr")
TOLERANCE = 0.01

log = logging.getLogger("pair_shrinkage")


def loo_shrink_kernel(singles: np.ndarray, pairs: np.ndarray, own: list, observed: np.ndarray, additive: np.ndarray,
                      backbone: np.ndarray, backbone_loo: np.ndarray, focus: np.ndarray,
                      shrinks=SHRINKS) -> dict:
    """The ``s=loo`` rule's choice: for every ``s`` and every width and ridge of
    :mod:`priorgnn.models.pair_kernel` (and "no correction"), the leave-one-double-out error over the
    ``focus`` genes of the training doubles, with the correction fitted on the in-sample residuals
    ``R = observed − (additive + s · (backbone − additive))`` and each held-out double scored on its
    residual from its left-out backbone ``backbone_loo``. Returns ``{"shrink", "gamma", "ridge", "alpha"
    (None for no correction), "gene_kernel", "error"}``."""
    from priorgnn.models import pair_kernel as pk

    n = len(pairs)
    # the held-out residuals of every s, and the left-out correction of every width and ridge: the hat
    # matrix depends on neither s's residuals nor the order, so it is built once per (width, ridge)
    r_in, r_out = {}, {}
    for s in shrinks:
        r_in[s] = np.where(focus, observed - (additive + s * (backbone - additive)), 0.0)
        r_out[s] = np.where(focus, observed - (additive + s * (backbone_loo - additive)), 0.0)
    errors = {(s, None, None): float(np.sum(r_out[s][focus] ** 2)) for s in shrinks}
    kernels = {}
    for gamma in pk.GAMMAS:
        kg = pk.gene_kernel(singles, gamma, own)
        k = pk.pair_kernel(kg, pairs, pairs)
        scale = float(np.trace(k)) / n
        kernels[gamma] = (kg, k, scale)
        for ridge in pk.RIDGES:
            h = k @ np.linalg.inv(k + ridge * scale * np.eye(n))
            d = np.diag(h)[:, None]
            for s in shrinks:
                held_out = (h @ r_in[s] - d * r_in[s]) / (1.0 - d)  # the correction fitted without the double
                errors[(s, gamma, ridge)] = float(np.sum((r_out[s] - held_out)[focus] ** 2))
    # the first lowest in the order s, then "no correction", then width and ridge
    order = [(s, g, r) for s in shrinks for g, r in [(None, None)] + [(g, r) for g in pk.GAMMAS for r in pk.RIDGES]]
    s, gamma, ridge = min(order, key=lambda c: errors[c])
    best = {"shrink": s, "gamma": gamma, "ridge": ridge, "alpha": None, "gene_kernel": None,
            "error": errors[(s, gamma, ridge)]}
    if gamma is not None:
        kg, k, scale = kernels[gamma]
        best.update(alpha=np.linalg.solve(k + ridge * scale * np.eye(n), r_in[s]), gene_kernel=kg)
    return best


def run(settings: dict, seeds: list[int], out: Path) -> pd.DataFrame:
    from priorgnn import experiment
    from priorgnn.data.conditions import parse_condition
    from priorgnn.data.splits import make_split
    from priorgnn.metrics.core import perturbed_gene_idx
    from priorgnn.models import pair_kernel as pk
    from priorgnn.simulate import simulate

    tables = []
    for name, (preset, overrides) in settings.items():
        for seed in seeds:
            sim = simulate(preset, seed=seed, out=out / f"{name}-s{seed}", **overrides)
            split = make_split(sim.conditions, "simulation", seed=1)
            additive = experiment.fit("additive", sim, split)
            auto = experiment.fit("pair_auto", sim, split)
            genes = list(auto.genes)
            row = {g: i for i, g in enumerate(auto.single_genes)}
            singles = np.asarray(auto.single_deltas, dtype=np.float64)
            own = perturbed_gene_idx([f"{g}+ctrl" for g in auto.single_genes], genes)

            def doubles(conds):
                return [c for c in conds if len(g := parse_condition(c)) == 2 and all(x in row for x in g)]

            def rows_of(conds):
                return np.array([[row[g] for g in parse_condition(c)] for c in conds], dtype=np.int64).reshape(-1, 2)

            def summed(conds):
                p = rows_of(conds)
                return singles[p[:, 0]] + singles[p[:, 1]]

            train = doubles(split.train)
            pairs = rows_of(train)
            obs = np.stack([sim.data.summaries.delta(c) for c in train]).astype(np.float64)
            add_tr = summed(train)
            bb_tr = auto.predict_delta(train)
            bb_loo = np.stack([experiment.fit("pair_auto", sim, dataclasses.replace(
                split, train=[x for x in split.train if x != c])).predict_delta([c])[0] for c in train])
            focus = np.ones_like(obs, dtype=bool)
            for j, t in enumerate(perturbed_gene_idx(train, genes)):
                focus[j, t] = False
            fits = {}
            for label, s in (("s=1", 1.0), ("s=0.5", 0.5)):  # as the pair_kernel baseline fits its correction
                def shrunk(conds, s=s):
                    a = summed(conds)
                    return a + s * (auto.predict_delta(conds) - a)

                fit, _ = pk.fit_on_training_doubles(sim.data, split, singles, auto.single_genes, genes, shrunk)
                fits[label] = (s, fit["gene_kernel"], fit["alpha"])
            loo = loo_shrink_kernel(singles, pairs, own, obs, add_tr, bb_tr, bb_loo, focus)
            fits["s=loo"] = (loo["shrink"], loo["gene_kernel"], loo["alpha"])
            val = doubles(split.val)
            test = list(split.subgroups.get("combo_seen2", []))
            for part, conds, ref in (("validation", val, "observed"), ("test", test, "truth")):
                if not conds:
                    continue
                p = rows_of(conds)
                add_p = summed(conds)
                bb_p = auto.predict_delta(conds)
                preds = {"additive": additive, "pair_auto": auto}
                for label, (s, kg, alpha) in fits.items():
                    delta = add_p + s * (bb_p - add_p)
                    if alpha is not None:
                        corr = pk.pair_kernel(kg, p, pairs) @ alpha
                        for k, t in enumerate(perturbed_gene_idx(conds, genes)):
                            corr[k, t] = 0.0
                        delta = delta + corr
                    preds[label] = (delta, auto.control_mean)
                table = experiment.score(preds, sim, split, conditions=conds, metrics=list(METRICS), seed=seed)
                table = table[table["reference"] == ref].copy()
                tables.append(table.assign(setting=name, data_seed=seed, part=part, loo_shrink=loo["shrink"],
                                           loo_kept=loo["alpha"] is not None))
            log.info("%s seed %d: %d training doubles; s=loo chose s=%g (correction %s)", name, seed, len(train),
                     loo["shrink"], "kept" if loo["alpha"] is not None else "off")
    return pd.concat(tables, ignore_index=True)


def summarise(per_double: pd.DataFrame) -> pd.DataFrame:
    """Per setting, part and model: the means over the doubles of each seed, then over seeds; the doubles
    below and above ``additive``'s MSE; per seed the mean MSE minus ``additive``'s, its worst (largest)
    value and the seeds where it exceeds :data:`TOLERANCE`."""
    rows = []
    for (setting, part), df in per_double.groupby(["setting", "part"], sort=False):
        add = df[df["model"] == "additive"].set_index(["data_seed", "condition"])["mse_top20_de"]
        for model, sub in df.groupby("model", sort=False):
            if model not in MODELS:
                continue
            per_seed = sub.groupby("data_seed")[list(METRICS)].mean()
            gap = per_seed["mse_top20_de"] - add.groupby(level="data_seed").mean().reindex(per_seed.index)
            d = add.loc[list(zip(sub["data_seed"], sub["condition"]))].to_numpy() - sub["mse_top20_de"].to_numpy()
            rows.append({"setting": setting, "part": part, "model": model, "doubles": int(len(sub)),
                         **{m: float(per_seed[m].mean()) for m in METRICS},
                         "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
                         "worst_seed_gap": float(gap.max()), "seeds_over_tolerance": int((gap > TOLERANCE).sum()),
                         "seeds": int(len(per_seed))})
    return pd.DataFrame(rows)


def render(summary: pd.DataFrame, per_double: pd.DataFrame, command: str, wall: float) -> str:
    L = ["# Shrinking the backbone of doubles toward `additive` (validation simulations)", "",
         f"{made_by(command, wall, head_commit(ROOT))}. Rules and method in the script's docstring; `test`: "
         "`combo_seen2` against the noise-free truth, `validation`: the validation doubles of measured singles "
         "against the observed data. Means over the doubles of each seed, then over seeds; \"worst seed\": the "
         f"largest per-seed mean MSE minus `additive`'s (T1 allows {TOLERANCE}).", ""]
    for setting, sub in summary.groupby("setting", sort=False):
        L += [f"## `{setting}`", "",
              "| model | part | mse_top20_de | nonadditive_corr | doubles below / above additive | worst seed | "
              "seeds over 0.01 |", "|---|---|---:|---:|---:|---:|---:|"]
        for part in ("test", "validation"):
            for model in MODELS:
                r = sub[(sub["part"] == part) & (sub["model"] == model)]
                if r.empty:
                    continue
                r = r.iloc[0]
                vs = "–" if model == "additive" else f"{r.wins} / {r.losses}"
                L.append(f"| `{model}` | {part} | {r.mse_top20_de:.4f} | {r.nonadditive_corr:.3f} | {vs} | "
                         f"{r.worst_seed_gap:+.4f} | {r.seeds_over_tolerance} of {r.seeds} |")
        chosen = per_double[(per_double["setting"] == setting) & (per_double["part"] == "test")].groupby(
            "data_seed")["loo_shrink"].first()
        L += ["", "`s=loo` chose s = " + ", ".join(f"{v:g} (seed {k})" for k, v in chosen.items()) + ".", ""]
    return "\n".join(L)


def main(argv=None) -> int:
    from pair_backbones import settings as backbone_settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="11,12,13,14,15,16", help="data seeds (default 11-16)")
    p.add_argument("--settings", default=",".join(backbone_settings()),
                   help="pair_backbones.py's settings (default all four)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "pair-backbones", help="simulations (shared)")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    known = backbone_settings()
    chosen = [s for s in args.settings.split(",") if s]
    if not chosen or any(s not in known for s in chosen):
        p.error(f"--settings: choose among {', '.join(known)}, not {args.settings!r}")
    script_setup()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    per_double = run({s: known[s] for s in chosen}, [int(s) for s in args.seeds.split(",")], args.out)
    summary = summarise(per_double)
    from priorgnn.io import write_csv, write_text

    command = "python benchmarks/pair_shrinkage.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    args.results.mkdir(parents=True, exist_ok=True)
    write_csv(args.results / "pair_shrinkage.csv", per_double, index=False)
    write_csv(args.results / "pair_shrinkage_summary.csv", summary, index=False)
    text = render(summary, per_double, command.strip(), time.perf_counter() - t0)
    write_text(args.results / "pair_shrinkage.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
