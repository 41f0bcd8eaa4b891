#!/usr/bin/env python
"""The backbone of doubles of measured singles, chosen on validation data: ``additive``,
``scaled_additive``, ``overlap_additive``, ``relation_additive`` and ``dominance`` on simulations the
study never uses.

    python benchmarks/pair_backbones.py [--seeds 11,12,13] [--results benchmarks/results]

PriorGNN predicts a double of two measured singles as a backbone fitted on the training doubles plus
a learned interaction that its validation gate may switch off; ``pair_backbone`` picks the backbone
(``scaled``: the ``scaled_additive`` baseline's fit, ``overlap``: ``overlap_additive``'s, ``auto``:
``pair_auto``'s choice) and ``pair_fit_genes`` the genes it is fitted on (``*_all`` below: every gene
of a training double; otherwise its top-20 DE genes). ``pair_kernel`` is ``pair_auto`` plus the pair
kernel correction (:mod:`priorgnn.models.pair_kernel`; PriorGNN's ``pair_kernel=True``), here without
shrinkage (``shrink=1``, as when this script chose the correction; ``pair_shrinkage.py`` compares the
shrinkage that is now the default). This script
compares the baselines themselves, so the choice does not depend on PriorGNN's training, on four simulator settings: the calibrated
``norman`` preset, the same with realistic systematic variation (``norman_systematic``, as in
``interaction_targets.py``), the study's positive control (``demo`` with a shared response program),
and ``demo`` with strong non-additive interactions (``double_interaction_bias=2.5``), each with data
seeds other than the study's and the interaction targets' (default 11, 12, 13) and the project's
simulation split (seed 1).

``validation``: the validation doubles whose two singles were measured in training, scored against
the *observed* data (what a user can choose with). ``test``: the test split's ``combo_seen2`` doubles
against the noise-free truth (reported, not used for the choice). Metrics: ``mse_top20_de``,
``pearson_delta`` and ``nonadditive_corr`` (:mod:`priorgnn.metrics`), fitted and scored through
:mod:`priorgnn.experiment`.

Writes ``RESULTS/pair_backbones.csv`` (one row per setting, seed, model, part and metric: the mean
over the doubles; and ``pair_auto``'s chosen backbone per setting and seed, as ``metric='chosen'`` rows
whose ``value`` is the backbone's index in ``PAIR_BACKBONES``) and ``RESULTS/pair_backbones.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import made_by  # a sibling script (benchmarks/ is on sys.path)
from claims import head_commit

ROOT = Path(__file__).resolve().parents[1]
#: label -> (registered model, options); ``*_all`` are the fitted backbones over every gene of a training
#: double (``fit_genes='all'``, the default before this comparison), the others over its top-20 DE genes
VARIANTS = {"additive": ("additive", {}), "scaled_additive": ("scaled_additive", {}),
            "overlap_additive": ("overlap_additive", {}), "overlap_additive_all": ("overlap_additive", {"fit_genes": "all"}),
            "relation_additive": ("relation_additive", {}),
            "relation_additive_all": ("relation_additive", {"fit_genes": "all"}),
            "pair_auto": ("pair_auto", {}), "pair_auto_all": ("pair_auto", {"fit_genes": "all"}),
            "pair_kernel": ("pair_kernel", {"shrink": 1.0}),
            "dominance": ("dominance", {})}
MODELS = tuple(VARIANTS)
METRICS = ("mse_top20_de", "pearson_delta", "nonadditive_corr")


def settings() -> dict[str, tuple[str, dict]]:
    from priorgnn.study import POSITIVE_CONTROL

    from interaction_targets import NORMAN_SHARED_RESPONSE

    return {"norman": ("norman", {}), "norman_systematic": ("norman", {"shared_response": NORMAN_SHARED_RESPONSE}),
            "positive_control": ("demo", dict(POSITIVE_CONTROL)),
            "demo_interaction_2.5": ("demo", {"double_interaction_bias": 2.5})}


def run(seeds: list[int], out: Path) -> pd.DataFrame:
    from priorgnn import experiment
    from priorgnn.data.conditions import parse_condition
    from priorgnn.data.splits import make_split
    from priorgnn.models.interaction_baselines import PAIR_BACKBONES
    from priorgnn.simulate import simulate

    rows = []
    for name, (preset, overrides) in settings().items():
        for seed in seeds:
            sim = simulate(preset, seed=seed, out=out / f"{name}-s{seed}", **overrides)
            split = make_split(sim.conditions, "simulation", seed=1)
            singles = {parse_condition(c)[0] for c in split.train if len(parse_condition(c)) == 1}
            val = [c for c in split.val if len(g := parse_condition(c)) == 2 and all(x in singles for x in g)]
            test = list(split.subgroups.get("combo_seen2", []))
            fitted = {label: experiment.fit(model, sim, split, **options)  # scored under the label
                      for label, (model, options) in VARIANTS.items()}
            rows.append({"setting": name, "data_seed": seed, "model": "pair_auto", "part": "fit", "reference": "",
                         "n": 1, "metric": "chosen", "value": PAIR_BACKBONES.index(fitted["pair_auto"].backbone)})
            for part, conds, ref in (("validation", val, "observed"), ("test", test, "truth")):
                if not conds:
                    continue
                table = experiment.score(fitted, sim, split, conditions=conds, metrics=list(METRICS))
                table = table[table["reference"] == ref]
                for m in MODELS:
                    sub = table[table["model"] == m]
                    for metric in METRICS:
                        rows.append({"setting": name, "data_seed": seed, "model": m, "part": part,
                                     "reference": ref, "n": len(conds), "metric": metric,
                                     "value": float(sub[metric].mean())})
            logging.info("%s seed %d: %d validation, %d test doubles", name, seed, len(val), len(test))
    return pd.DataFrame(rows)


def render(frame: pd.DataFrame, command: str, wall: float) -> str:
    L = ["# The backbone of doubles of measured singles, chosen on validation data", "",
         f"{made_by(command, wall, head_commit(ROOT))}. Means over the doubles and the data seeds; `validation` against the "
         "observed data (the choice), `test` (`combo_seen2`) against the noise-free truth (reported only). "
         "Lower `mse_top20_de` is better; higher `pearson_delta` and `nonadditive_corr`.", ""]
    for setting, sub in frame.groupby("setting", sort=False):
        n_val = sub[sub.part == "validation"].groupby("data_seed")["n"].first().sum()
        n_test = sub[sub.part == "test"].groupby("data_seed")["n"].first().sum()
        L += [f"## {setting} ({n_val} validation and {n_test} test doubles over the seeds)", ""]
        piv = sub.pivot_table(index="model", columns=["part", "metric"], values="value", aggfunc="mean")
        piv = piv.reindex(list(MODELS))
        cols = [(p, m) for p in ("validation", "test") for m in METRICS if (p, m) in piv.columns]
        L.append("| model | " + " | ".join(f"{p} {m}" for p, m in cols) + " |")
        L.append("|---|" + "---:|" * len(cols))
        for m in piv.index:
            L.append(f"| `{m}` | " + " | ".join(f"{piv.loc[m, c]:.3f}" for c in cols) + " |")
        L.append("")
    from priorgnn.models.interaction_baselines import PAIR_BACKBONES

    chosen = frame[frame.metric == "chosen"]
    frame = frame[frame.metric != "chosen"]
    counts = chosen.groupby("setting", sort=False)["value"].agg(lambda v: ", ".join(
        f"{PAIR_BACKBONES[int(k)]} {n}" for k, n in v.astype(int).value_counts().sort_index().items()))
    L += ["`pair_auto`'s choice (leave-one-double-out over the training doubles), fits per backbone: "
          + "; ".join(f"{k}: {v}" for k, v in counts.items()) + ".", ""]
    for part in ("validation", "test"):
        sub = frame[(frame.part == part) & (frame.metric == "nonadditive_corr")]
        per = sub.pivot_table(index=["setting", "data_seed"], columns="model", values="value")
        up = per["pair_auto"] - per["overlap_additive"]
        L += [f"**{part}** `nonadditive_corr`: `pair_auto` (with the `relation` candidate) minus "
              f"`overlap_additive`: {up.mean():+.3f} on average (SE {up.sem():.3f}; higher in {int((up > 0).sum())} "
              f"of {len(per)} setting-seed pairs; per setting "
              + ", ".join(f"{k} {v:+.3f}" for k, v in up.groupby(level='setting', sort=False).mean().items()) + ").", ""]
    for part in ("validation", "test"):
        sub = frame[(frame.part == part) & (frame.metric == "mse_top20_de")]
        per = sub.pivot_table(index=["setting", "data_seed"], columns="model", values="value")
        gain = per["pair_auto_all"] - per["pair_auto"]  # positive: fitting on the DE genes is better
        vs_add = per["additive"] - per["pair_auto"]
        vs_ovl = per["overlap_additive"] - per["pair_auto"]
        means = per.groupby(level="setting").mean()
        best = means.idxmin(axis=1)
        L += [f"**{part}** `mse_top20_de`: `pair_auto` fitted on the top-20 DE genes is below the same rule "
              f"fitted on every gene (`pair_auto_all`) in {int((gain > 0).sum())} of {len(per)} setting-seed "
              f"pairs, by {gain.mean():.4f} on average (SE {gain.sem():.4f}; per setting "
              + ", ".join(f"{k} {v:.4f}" for k, v in gain.groupby(level='setting', sort=False).mean().items())
              + f"); below `additive` in {int((vs_add > 0).sum())} of {len(per)} (mean {vs_add.mean():.4f}, SE "
              f"{vs_add.sem():.4f}); below `overlap_additive` (the backbone without `relation`) in "
              f"{int((vs_ovl > 0).sum())} of {len(per)} (mean {vs_ovl.mean():.4f}, SE {vs_ovl.sem():.4f}; per setting "
              + ", ".join(f"{k} {v:.4f}" for k, v in vs_ovl.groupby(level='setting', sort=False).mean().items())
              + "). Lowest mean per setting: " + ", ".join(f"{k} `{v}`" for k, v in best.items())
              + ".", ""]
    for part in ("validation", "test"):
        sub = frame[frame.part == part]
        parts = []
        for metric, better in (("mse_top20_de", "below"), ("nonadditive_corr", "above")):
            per = sub[sub.metric == metric].pivot_table(index=["setting", "data_seed"], columns="model", values="value")
            d = per["pair_kernel"] - per["pair_auto"]
            wins = int((d < 0).sum()) if better == "below" else int((d > 0).sum())
            parts.append(f"`{metric}` {d.mean():+.4f} (SE {d.sem():.4f}; {better} in {wins} of {len(d)} setting-seed "
                         "pairs; per setting " + ", ".join(
                             f"{k} {v:+.4f}" for k, v in d.groupby(level='setting', sort=False).mean().items()) + ")")
        L += [f"**{part}**: `pair_kernel` (`pair_auto` plus the pair kernel correction, PriorGNN's default "
              "`pair_kernel=True`) minus `pair_auto`: " + "; ".join(parts) + ".", ""]
    return "\n".join(L)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="11,12,13", help="simulation seeds (the study uses 0)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "pair-backbones", help="simulations")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    frame = run([int(s) for s in args.seeds.split(",")], args.out)
    command = "python benchmarks/pair_backbones.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    args.results.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.results / "pair_backbones.csv", index=False)
    text = render(frame, command.strip(), time.perf_counter() - t0)
    (args.results / "pair_backbones.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
