#!/usr/bin/env python
"""The prior-free transformer (with and without pretraining) against PriorGNN and the simple
baselines on the ``demo`` simulation: GEARS simulation splits, seeds 0, 1, 2.

    python benchmarks/demo_models.py --out runs/bench-demo-models --vary-data
    python benchmarks/demo_models.py --out runs/bench-demo-models --vary-data \\
        --results benchmarks/results                                     # also write the results CSVs
    python benchmarks/demo_models.py --out runs/bench-demo-models --table   # only rebuild the tables

With ``--vary-data`` seed ``s`` simulates its own demo data set (simulation seed ``s``) and trains
with seed ``s``, so the spread covers data, split and training; without it one data set
(``--data-seed``) is fitted with each training seed.

Every model is fitted with the library calls ``train.py`` uses (same data, split, priors and
``TrainConfig`` defaults, early stopping with patience 20 on the validation top-20-DE MSE for every
trained model) and scored with :mod:`priorgnn.metrics` against the observed pseudobulk means per test
subgroup. The trained models stop by their early-stopping rule, not by an epoch cap: the cap is
``TrainConfig.max_epochs`` (200) for PriorGNN and :data:`TRANSFORMER_MAX_EPOCHS` for the
transformer, and each fit records the epoch it stopped at and whether it hit the cap (``hit_cap``,
flagged in the table). ``priorgnn_untrained`` is PriorGNN at initialisation
(``TrainConfig(untrained=True)``: no optimiser step, predictions through its built-in
additive/mean backbone only).

Unseen perturbations (``unseen_single``, ``combo_seen0``) are scored without the perturbed genes
(``pearson_delta_excl_target``); the perturbed gene's own change is its own pair of metrics
(``target_sign_match``, ``target_abs_error``). Doubles of seen genes keep ``pearson_delta``.

Each fit's per-condition table is written as soon as it finishes (``per_condition_<model>_s<seed>.csv``,
with the fit's record in ``fit_<model>_s<seed>.json``), so an interrupted benchmark continues where it
stopped. The summary goes to ``OUT/summary.csv`` (one row per model, subgroup and metric: mean and
standard deviation over seeds of the subgroup means), ``OUT/fits.csv`` (one row per fit) and
``OUT/summary.md`` (the two Markdown tables); ``--results DIR`` also writes them as
``DIR/demo_models.csv`` and ``DIR/demo_models_fits.csv``, the sources that ``benchmarks/claims.py``
checks the published tables against. Every row records the code it measured: the git commit and
:func:`claims.code_fingerprint` of :data:`CODE_PATHS` at the start of the fitting process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from priorgnn.data.splits import SUBGROUPS as SPLIT_SUBGROUPS

from claims import ROOT, code_fingerprint, head_commit  # a sibling script (benchmarks/ is on sys.path)

log = logging.getLogger("demo_models")

#: label -> (registered model, hyperparameters, TrainConfig overrides)
TRANSFORMER_MAX_EPOCHS = 1000
MODELS = {
    "no_change": ("no_change", {}, {}),
    "mean": ("mean", {}, {}),
    "additive": ("additive", {}, {}),
    "scaled_additive": ("scaled_additive", {}, {}),
    "overlap_additive": ("overlap_additive", {}, {}),
    "pair_auto": ("pair_auto", {}, {}),
    "dominance": ("dominance", {}, {}),
    "linear": ("linear", {}, {}),
    "linear_go": ("linear_go", {}, {}),
    "go_knn": ("go_knn", {}, {}),
    # the oracle of transferable signal: the simulation's true network (see priorgnn.models.neighbours)
    "network_knn": ("network_knn", {"network": "auto"}, {}),
    "priorgnn_untrained": ("priorgnn", {}, {"untrained": True}),
    "priorgnn": ("priorgnn", {}, {}),
    "priorgnn_gears_mode": ("priorgnn", {"singles": "none", "pert_init": "normal", "pert_flag": False}, {}),
    "transformer_pretrained": ("transformer", {"pretrain": True}, {"max_epochs": TRANSFORMER_MAX_EPOCHS}),
    "transformer_no_pretrain": ("transformer", {"pretrain": False}, {"max_epochs": TRANSFORMER_MAX_EPOCHS}),
}
METRICS = ("pearson_delta", "pearson_delta_excl_target", "mse_top20_de", "target_sign_match", "target_abs_error")
#: the split's subgroups of doubles and unseen singles (seen singles are trained on, not scored here)
SUBGROUPS = tuple(s for s in SPLIT_SUBGROUPS if s != "seen_single")
#: the table columns: subgroups of unseen genes are scored off the perturbed genes, with the
#: perturbed gene's own change apart; doubles of seen genes with pearson_delta
UNSEEN_COLUMNS = [(s, m) for s in ("unseen_single", "combo_seen0")
                  for m in ("pearson_delta_excl_target", "mse_top20_de", "target_sign_match", "target_abs_error")]
SEEN_COLUMNS = [(s, m) for s in ("combo_seen1", "combo_seen2") for m in ("pearson_delta", "mse_top20_de")]
#: the code whose results this benchmark reports (recorded as a fingerprint in every results row):
#: the models, training, simulator, data, metrics and knowledge graphs, without their command-line
#: wrappers, and of priorgnn/pipeline.py only the functions called here
CODE_PATHS = (
    "benchmarks/demo_models.py", "priorgnn/models/base.py", "priorgnn/models/baselines.py",
    "priorgnn/models/linear.py", "priorgnn/models/priorgnn.py", "priorgnn/models/transformer.py",
    "priorgnn/models/_transformer_pretrain.py", "priorgnn/models/neighbours.py",
    "priorgnn/models/interaction_baselines.py", "priorgnn/metrics/interactions.py",
    "priorgnn/training/fit.py", "priorgnn/training/plan.py",
    "priorgnn/training/losses.py", "priorgnn/training/targets.py", "priorgnn/simulate",
    ":(exclude)priorgnn/simulate/__main__.py", "priorgnn/data/dataset.py", "priorgnn/data/splits.py",
    "priorgnn/data/conditions.py", "priorgnn/metrics/core.py", "priorgnn/metrics/evaluation.py", "priorgnn/experiment.py",
    "knowledge",
    ":(exclude)knowledge/cli.py", ":(exclude)knowledge/__main__.py",
    "priorgnn/pipeline.py::RunConfig,resolve_data,make_or_load_split,build_priors,_go_from_annotations,"
    "_is_simulation_dir,_sim_dir,_summaries_only",
)


def fit_and_score(label: str, seed: int, out: Path, data, split, sim) -> tuple[pd.DataFrame, dict]:
    from priorgnn import experiment
    from priorgnn.models import TrainConfig, get_model_class
    from priorgnn.pipeline import RunConfig, build_priors, model_options

    name, hp, train_kw = MODELS[label]
    if hp.get("network") == "auto":
        hp = {**hp, "network": str(Path(sim.path) / "network.csv")}
    cls = get_model_class(name)
    cfg = RunConfig(data="demo", data_seed=sim.config.seed, model=name, model_options=dict(hp))
    graphs = build_priors(cfg, data, split, sim, cls, progress=False)
    model = cls(**model_options(cfg, cls, graphs))
    run_dir = out / "runs" / f"{label}_s{seed}"
    train = TrainConfig(seed=seed, run_dir=str(run_dir), progress_bar=False, **train_kw)
    t0 = time.perf_counter()
    experiment.fit(model, data, split, graphs, train=train)
    fit_s = time.perf_counter() - t0
    predictions = {label: experiment.predict(model, split.test, genes=data.genes)}
    table = experiment.score(predictions, data, split, metrics=list(METRICS), seed=seed)
    training = model.fit_info.get("training") or {}
    trained = name in ("priorgnn", "transformer") and not train.untrained
    epochs = training.get("epochs") if trained else None
    record = {"model": label, "seed": seed, "fit_s": round(fit_s, 3), "epochs": epochs,
              "best_epoch": training.get("best_epoch") if trained else None,
              "max_epochs": train.max_epochs if trained else None,
              # stopped by the cap, not by early stopping (an early stop exactly at the cap counts as capped)
              "hit_cap": bool(epochs is not None and epochs >= train.max_epochs) if trained else None}
    return table, record


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {0 if pd.isna(sd) else sd:.3f}"


def summarise(frames: list[pd.DataFrame], fits: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Mean and sd over seeds of the per-seed subgroup means, and the two Markdown tables."""
    t = pd.concat(frames, ignore_index=True)
    t = t[t["reference"] == "observed"]
    metrics = [m for m in METRICS if m in t.columns]
    per_seed = t.groupby(["model", "seed", "subgroup"])[metrics].mean().reset_index()
    long = per_seed.melt(id_vars=["model", "seed", "subgroup"], var_name="metric").dropna(subset=["value"])
    agg = (long.groupby(["model", "subgroup", "metric"])["value"]
           .agg(mean="mean", sd="std", n_seeds="count").reset_index())
    agg["sd"] = agg["sd"].fillna(0.0)
    order = {m: i for i, m in enumerate(MODELS)}
    agg = agg.sort_values(["model", "subgroup", "metric"], key=lambda c: c.map(order) if c.name == "model" else c)

    def cell(model: str, subgroup: str, metric: str) -> str:
        row = agg[(agg["model"] == model) & (agg["subgroup"] == subgroup) & (agg["metric"] == metric)]
        return "–" if row.empty else _pm(row.iloc[0]["mean"], row.iloc[0]["sd"])

    models = [m for m in MODELS if m in set(agg["model"])]
    n_seeds = per_seed.groupby("model")["seed"].nunique()
    unseen = ["| model | seeds | " + " | ".join(f"{s} {m}" for s, m in UNSEEN_COLUMNS) + " |",
              "|---|---|" + "---|" * len(UNSEEN_COLUMNS)]
    seen = ["| model | " + " | ".join(f"{s} {m}" for s, m in SEEN_COLUMNS) + " | fit s | epochs | capped fits |",
            "|---|" + "---|" * len(SEEN_COLUMNS) + "---|---|---|"]
    for model in models:
        unseen.append(f"| {model} | {n_seeds[model]} | " + " | ".join(cell(model, s, m) for s, m in UNSEEN_COLUMNS)
                      + " |")
        f = fits[fits["model"] == model]
        ep = f["epochs"].dropna()
        capped = f["hit_cap"].dropna()
        seen.append(f"| {model} | " + " | ".join(cell(model, s, m) for s, m in SEEN_COLUMNS)
                    + f" | {f['fit_s'].mean():.0f} | {'–' if ep.empty else f'{ep.mean():.0f}'}"
                    + f" | {'–' if capped.empty else f'{int(capped.sum())}/{len(capped)}'} |")
    md = ("Unseen genes, scored off the perturbed genes (`pearson_delta_excl_target`), with the perturbed "
          "gene's own change apart:\n\n" + "\n".join(unseen) + "\n\n"
          "Doubles of seen genes, and the fits (`fit s`: mean wall seconds per fit; `epochs`: mean number of "
          "epochs run, the best one plus the patience of 20 when early stopping ends the fit; `capped fits`: "
          "fits stopped by the epoch cap rather than by early stopping):"
          "\n\n" + "\n".join(seen) + "\n")
    return agg, md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--models", default=",".join(MODELS), help=f"labels among {', '.join(MODELS)}")
    p.add_argument("--data-seed", type=int, default=0, help="simulation seed of the demo data (default 0)")
    p.add_argument("--vary-data", action="store_true", help="seed s also simulates its own data set (seed s)")
    p.add_argument("--sim-dir", help="simulation folder (default OUT/sim)")
    p.add_argument("--table", action="store_true", help="only summarise the per-condition tables in OUT")
    p.add_argument("--results", help="also write demo_models.csv and demo_models_fits.csv into this folder")
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
        from priorgnn.models import available_models
        from priorgnn.pipeline import RunConfig, make_or_load_split, resolve_data

        available_models()  # import every model now, so the fingerprint below is the code that runs
        provenance = {"git_commit": head_commit(ROOT), "code_fingerprint": code_fingerprint(CODE_PATHS, ROOT),
                      "code_paths": ";".join(CODE_PATHS)}
        data_sets = {}
        # the cheap models first for every seed, the transformers last
        for label in labels:
            for seed in seeds:
                path = out / f"per_condition_{label}_s{seed}.csv"
                if path.exists():
                    continue
                data_seed = seed if args.vary_data else args.data_seed
                if data_seed not in data_sets:
                    sim_dir = args.sim_dir or str(out / (f"sim-s{data_seed}" if args.vary_data else "sim"))
                    cfg = RunConfig(data="demo", data_seed=data_seed, sim_dir=sim_dir)
                    data, _, sim = resolve_data(cfg, progress=False)
                    split = make_or_load_split(cfg, data)
                    split.save(out / f"split-s{data_seed}.json")
                    data_sets[data_seed] = (data, split, sim)
                log.info("fitting %s, seed %d", label, seed)
                table, record = fit_and_score(label, seed, out, *data_sets[data_seed])
                (out / f"fit_{label}_s{seed}.json").write_text(json.dumps({**record, **provenance}, indent=1),
                                                               encoding="utf-8")
                table.to_csv(path, index=False)
    frames = [pd.read_csv(f) for f in sorted(out.glob("per_condition_*.csv"))]
    records = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(out.glob("fit_*.json"))]
    if not frames or not records:
        log.error("no per-condition tables or fit records in %s", out)
        return 1
    fits = pd.DataFrame(records)
    fits = fits.sort_values(["model", "seed"], key=lambda c: c.map(list(MODELS).index) if c.name == "model" else c)
    agg, md = summarise(frames, fits)
    # the code each model's numbers measured: one commit and fingerprint if all its fits agree
    prov = fits.groupby("model")[["git_commit", "code_fingerprint", "code_paths"]].agg(
        lambda v: v.iloc[0] if v.nunique() == 1 else "mixed")
    agg = agg.join(prov, on="model")
    agg.to_csv(out / "summary.csv", index=False)
    fits.to_csv(out / "fits.csv", index=False)
    (out / "summary.md").write_text(md, encoding="utf-8")
    if args.results:
        res = Path(args.results)
        res.mkdir(parents=True, exist_ok=True)
        agg.to_csv(res / "demo_models.csv", index=False, float_format="%.6g")
        fits.to_csv(res / "demo_models_fits.csv", index=False)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
