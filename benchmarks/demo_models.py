#!/usr/bin/env python
"""The prior-free transformer (with and without pretraining) against PriorGNN and the simple
baselines on the ``demo`` simulation: GEARS simulation splits, seeds 0, 1, 2.

    python benchmarks/demo_models.py --out runs/bench-demo-models --vary-data
    python benchmarks/demo_models.py --out runs/bench-demo-models --table   # only rebuild the table

With ``--vary-data`` seed ``s`` simulates its own demo data set (simulation seed ``s``) and trains
with seed ``s``, so the spread covers data, split and training; without it one data set
(``--data-seed``) is fitted with each training seed.

Every model is fitted with the library calls ``train.py`` uses (same data, split, priors and
``TrainConfig`` defaults) and scored with :mod:`priorgnn.metrics` (``pearson_delta`` and
``mse_top20_de`` against the observed pseudobulk means) per test subgroup. Each fit's per-condition
table is written as soon as it finishes (``per_condition_<model>_s<seed>.csv``), so an interrupted
benchmark continues where it stopped; the summary (mean and standard deviation over seeds of the
subgroup means) goes to ``summary.csv`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

log = logging.getLogger("demo_models")

#: label -> (registered model, hyperparameters)
MODELS = {
    "no_change": ("no_change", {}),
    "mean": ("mean", {}),
    "additive": ("additive", {}),
    "linear": ("linear", {}),
    "linear_go": ("linear_go", {}),
    "go_knn": ("go_knn", {}),
    "priorgnn": ("priorgnn", {}),
    "priorgnn_gears_mode": ("priorgnn", {"singles": "none", "pert_init": "normal", "pert_flag": False}),
    "transformer_pretrained": ("transformer", {"pretrain": True}),
    "transformer_no_pretrain": ("transformer", {"pretrain": False}),
}
METRICS = ("pearson_delta", "mse_top20_de")
SUBGROUPS = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")


def fit_and_score(label: str, seed: int, out: Path, data, split, sim, train_kw: dict) -> pd.DataFrame:
    from priorgnn.metrics import evaluate_seed, predict_conditions
    from priorgnn.models import TrainConfig, get_model_class
    from priorgnn.pipeline import RunConfig, build_priors

    name, hp = MODELS[label]
    cls = get_model_class(name)
    cfg = RunConfig(data="demo", data_seed=sim.config.seed, model=name, model_options=dict(hp))
    graphs = build_priors(cfg, data, split, sim, cls, progress=False)
    model = cls(**cfg.model_options)
    run_dir = out / "runs" / f"{label}_s{seed}"
    t0 = time.perf_counter()
    model.fit(data, split, graphs=graphs, train=TrainConfig(seed=seed, run_dir=str(run_dir), progress_bar=False,
                                                            **train_kw))
    fit_s = time.perf_counter() - t0
    delta, control = predict_conditions(model, split.test, data.genes, progress=False)
    table, _ = evaluate_seed(data, split, {label: (delta, control)}, seed=seed, metrics=list(METRICS),
                             ceiling=False)
    table["fit_s"] = fit_s
    table["epochs"] = model.fit_info.get("training", {}).get("epochs")
    return table


def summarise(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, str]:
    t = pd.concat(frames, ignore_index=True)
    t = t[t["reference"] == "observed"]
    per_seed = t.groupby(["model", "seed", "subgroup"])[list(METRICS)].mean().reset_index()
    agg = per_seed.groupby(["model", "subgroup"])[list(METRICS)].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg = agg.reset_index()
    fit = t.groupby(["model", "seed"])[["fit_s", "epochs"]].first().groupby("model").mean()
    n_seeds = per_seed.groupby("model")["seed"].nunique()
    lines = ["| model | seeds | " + " | ".join(f"{s} pearson_delta | {s} mse_top20_de" for s in SUBGROUPS)
             + " | fit s | epochs |",
             "|---|---|" + "---|---|" * len(SUBGROUPS) + "---|---|"]
    for model in MODELS:
        if model not in set(agg["model"]):
            continue
        cells = []
        for s in SUBGROUPS:
            row = agg[(agg["model"] == model) & (agg["subgroup"] == s)]
            if row.empty:
                cells += ["–", "–"]
                continue
            r = row.iloc[0]
            cells.append(f"{r['pearson_delta_mean']:.3f} ± {0 if pd.isna(r['pearson_delta_std']) else r['pearson_delta_std']:.3f}")
            cells.append(f"{r['mse_top20_de_mean']:.3f} ± {0 if pd.isna(r['mse_top20_de_std']) else r['mse_top20_de_std']:.3f}")
        ep = fit.loc[model, "epochs"]
        lines.append(f"| {model} | {n_seeds[model]} | " + " | ".join(cells)
                     + f" | {fit.loc[model, 'fit_s']:.0f} | {'–' if pd.isna(ep) else f'{ep:.0f}'} |")
    return agg, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--models", default=",".join(MODELS), help=f"labels among {', '.join(MODELS)}")
    p.add_argument("--data-seed", type=int, default=0, help="simulation seed of the demo data (default 0)")
    p.add_argument("--vary-data", action="store_true", help="seed s also simulates its own data set (seed s)")
    p.add_argument("--sim-dir", help="simulation folder (default OUT/sim)")
    p.add_argument("--max-epochs", type=int, help="override TrainConfig.max_epochs")
    p.add_argument("--table", action="store_true", help="only summarise the per-condition tables in OUT")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(labels) - set(MODELS)
    if unknown:
        p.error(f"unknown model label(s) {sorted(unknown)}")
    if not args.table:
        from priorgnn.pipeline import RunConfig, make_or_load_split, resolve_data

        train_kw = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
        for seed in seeds:
            data_seed = seed if args.vary_data else args.data_seed
            sim_dir = args.sim_dir or str(out / (f"sim-s{data_seed}" if args.vary_data else "sim"))
            cfg = RunConfig(data="demo", data_seed=data_seed, sim_dir=sim_dir)
            data, _, sim = resolve_data(cfg, progress=False)
            split = make_or_load_split(cfg, data)
            split.save(out / f"split-s{data_seed}.json")
            for label in labels:
                path = out / f"per_condition_{label}_s{seed}.csv"
                if path.exists():
                    continue
                log.info("fitting %s, seed %d", label, seed)
                table = fit_and_score(label, seed, out, data, split, sim, train_kw)
                table.to_csv(path, index=False)
    frames = [pd.read_csv(f) for f in sorted(out.glob("per_condition_*.csv"))]
    if not frames:
        log.error("no per-condition tables in %s", out)
        return 1
    agg, md = summarise(frames)
    agg.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(md, encoding="utf-8")
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
