#!/usr/bin/env python
"""What is a ranking of unmeasured pairs worth? Precision@k of the all-pairs ranking against the
simulator's truth, for the additive baseline, the interaction baselines and PriorGNN.

    python benchmarks/pair_ranking.py --out runs/bench-pair-ranking --results benchmarks/results

Three simulations (``--data-seeds``, default 0, 1, 2) of ``--preset``: ``demo`` (the default; 300
genes, 50 singles, 50 doubles) with the ``norman`` preset's ``double_interaction_bias`` (2.5), so
that, as in Norman et al.'s screen, the measured doubles are enriched for interacting pairs; or the
calibrated ``norman`` preset itself (5,045 genes, 105 singles, 131 doubles; the issue's targets are
stated on it), with ``--results benchmarks/results/pair_ranking_norman --max-genes 50 --jobs 2`` (the
pairs of 50 of its training-perturbed genes, drawn per data seed: the truth of each pair is an ODE
solve; ``--jobs 2`` runs two data seeds at once). A ``combo`` split (every single in training, half of the
doubles held out) is the setting of the question "which doubles should I test next": all singles
are measured, some doubles too. Each model is fitted with the library calls ``train.py`` uses;
PriorGNN trains for few epochs (``--epochs``, default 20) to keep the benchmark at about three
minutes per seed on one core.

Every pair of the training-perturbed genes (:func:`priorgnn.interactions.all_pairs`) is predicted,
and pairs are ranked two ways:

* ``magnitude_deviation``: Norman et al.'s ``|magnitude − √2|`` of the predicted double on the
  measured singles (:func:`priorgnn.interactions.rank_pair_interactions`,
  ``train.py predict --all-pairs --rank-by magnitude_deviation``); pairs whose fit is ill-conditioned come last;
* ``relative_nonadditive``: ``‖p_AB − m_A − m_B‖ / ‖m_A + m_B‖`` over the genes other than A and B,
  ``m`` the measured singles (the default ranking of ``train.py predict --all-pairs``; the same
  computation as :func:`priorgnn.metrics.interactions.relative_nonadditive_size`, which scores the truth).

**Truth.** The noise-free truth of every pair and single (``Simulation.truth``). A pair *interacts*
when its true relative non-additive size ``‖t_AB − t_A − t_B‖ / ‖t_A + t_B‖`` (genes other than A
and B) exceeds ``--threshold`` (0.2). ``precision@k`` (:func:`priorgnn.metrics.interactions.precision_at_k`,
ties broken at random in expectation, so a ranking that scores every pair alike, as ``additive``'s,
gets the rate of interacting pairs) is reported against that set (``p@k``, next to ``rate``, the
share of interacting pairs among all pairs) and against the true top-k pairs by the same size
(``p@k_top``, whose chance level is ``k / n_pairs``). The measured doubles of the training set are
in the ranking too (they are pairs like the others).

On the held-out doubles (``combo_seen2``), :func:`priorgnn.metrics.interactions.interaction_metrics`
scores each model's prediction against the truth: correlation of the predicted non-additive part
(prediction − measured singles) with the true one (per double, mean; and pooled), GI label accuracy,
and the absolute error and Spearman correlation of Norman's magnitude.

Outputs: ``OUT/pair_ranking.csv`` (one row per model, means over the seeds),
``OUT/pair_ranking_seeds.csv`` (one row per model and seed) and ``OUT/pair_ranking.md``; ``--results DIR``
also writes them to ``DIR``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from claims import code_fingerprint, head_commit  # a sibling script (benchmarks/ is on sys.path)

log = logging.getLogger("pair_ranking")

#: label -> (registered model, hyperparameters)
MODELS = {
    "additive": ("additive", {}),
    "scaled_additive": ("scaled_additive", {}),
    "scaled_additive_mag": ("scaled_additive_mag", {}),
    "overlap_additive": ("overlap_additive", {}),
    "relation_additive": ("relation_additive", {}),
    "pair_auto": ("pair_auto", {}),
    "pair_kernel": ("pair_kernel", {}),
    "dominance": ("dominance", {}),
    "priorgnn": ("priorgnn", {}),
}
SCORES = ("magnitude_deviation", "relative_nonadditive")
#: --preset -> the simulator overrides (demo: the norman preset's enrichment of interacting doubles)
PRESETS = {"demo": {"double_interaction_bias": 2.5}, "norman": {}}
#: the code whose results this benchmark reports (recorded as a fingerprint in every results row)
CODE_PATHS = (
    "benchmarks/pair_ranking.py", "priorgnn/models/base.py", "priorgnn/models/baselines.py",
    "priorgnn/models/interaction_baselines.py", "priorgnn/models/priorgnn.py", "priorgnn/training",
    "priorgnn/simulate", ":(exclude)priorgnn/simulate/__main__.py", "priorgnn/data/dataset.py",
    "priorgnn/data/splits.py", "priorgnn/data/conditions.py", "priorgnn/interactions.py",
    "priorgnn/metrics/interactions.py", "knowledge", ":(exclude)knowledge/cli.py",
    ":(exclude)knowledge/__main__.py",
)


def _training_singles(data, split) -> dict[str, np.ndarray]:
    """Gene → measured training delta of its single."""
    from priorgnn.data.conditions import parse_condition

    s = data.summaries
    return {parse_condition(c)[0]: np.asarray(s.delta(c), dtype=np.float64)
            for c in split.train if len(parse_condition(c)) == 1}


def _pair_exclusions(pairs: list[str], gene_index: dict[str, int]) -> list[list[int]]:
    from priorgnn.data.conditions import parse_condition

    return [[gene_index[g] for g in parse_condition(p) if g in gene_index] for p in pairs]


def run(args: argparse.Namespace, data_seed: int) -> pd.DataFrame:
    from priorgnn import experiment
    from priorgnn.data.conditions import make_condition, parse_condition
    from priorgnn.interactions import all_pairs, rank_pair_interactions
    from priorgnn.metrics.interactions import (
        interaction_metrics,
        precision_at_k,
        relative_nonadditive_size,
        top_k_pairs,
    )
    from priorgnn.models import TrainConfig, get_model_class
    from priorgnn.pipeline import RunConfig, build_priors, make_or_load_split, model_options, resolve_data

    out = Path(args.out)
    cfg = RunConfig(data=args.preset, data_seed=data_seed, sim_dir=str(out / f"sim-s{data_seed}"),
                    simulate=dict(PRESETS[args.preset]), split={"kind": "combo", "seed": args.split_seed})
    data, _, sim = resolve_data(cfg, progress=False)
    split = make_or_load_split(cfg, data)
    measured = _training_singles(data, split)
    singles = sorted(measured)
    genes = singles
    if args.max_genes and len(genes) > args.max_genes:
        # a random subset (seeded by the data seed): the noise-free truth of every pair costs one ODE
        # solve each, too many for all pairs of the norman preset's 105 genes on a CPU
        genes = sorted(np.random.default_rng(data_seed).choice(singles, args.max_genes, replace=False).tolist())
    pairs = all_pairs(genes)
    gidx = {g: i for i, g in enumerate(map(str, data.genes))}
    excl = _pair_exclusions(pairs, gidx)

    # every measured single's truth: the held-out doubles below may pair genes outside a --max-genes subset
    truth = sim.truth_delta(pairs + [make_condition([g]) for g in singles])
    t_pairs, t_single = truth[: len(pairs)], dict(zip(singles, truth[len(pairs):], strict=True))
    ta = np.stack([t_single[parse_condition(p)[0]] for p in pairs])
    tb = np.stack([t_single[parse_condition(p)[1]] for p in pairs])
    true_size = pd.Series(relative_nonadditive_size(t_pairs, ta, tb, exclude=excl), index=pairs)
    interacting = set(true_size.index[true_size > args.threshold])
    true_top = top_k_pairs(true_size, args.k)
    rate = len(interacting) / len(pairs)
    log.info("%d genes, %d pairs, %d interacting (rate %.3f)", len(genes), len(pairs), len(interacting), rate)

    test_doubles = [c for c in split.test if len(g := parse_condition(c)) == 2 and all(x in measured for x in g)]
    t_test = sim.truth_delta(test_doubles)

    rows = []
    for label, (name, hp) in MODELS.items():
        cls = get_model_class(name)
        mcfg = RunConfig(data=args.preset, data_seed=data_seed, sim_dir=cfg.sim_dir, model=name,
                         model_options=dict(hp))
        graphs = build_priors(mcfg, data, split, sim, cls, progress=False)
        model = cls(**model_options(mcfg, cls, graphs))
        train = TrainConfig(seed=args.seed, max_epochs=args.epochs, progress_bar=False,
                            run_dir=str(out / "runs" / f"s{data_seed}" / label))
        t0 = time.perf_counter()
        experiment.fit(model, data, split, graphs, train=train)
        fit_s = time.perf_counter() - t0
        # the prediction AnnData, as train.py predict --all-pairs ranks it
        pred = model.predict(pairs + [make_condition([g]) for g in genes])
        # one table holds both scores; ranked by magnitude it leaves ill-conditioned fits unranked
        ranked = rank_pair_interactions(pred[: len(pairs)], singles=measured, score="magnitude_deviation",
                                        top=None, progress=False)
        mag_score = pd.Series(-np.inf, index=pairs)
        ok = ranked["rank"].notna().to_numpy()
        mag_score[ranked["condition"][ok].to_numpy()] = ranked["magnitude_deviation"][ok].to_numpy()
        # train.py predict --all-pairs's default ranking (every pair), on the measured singles
        rel_score = ranked.set_index("condition")["relative_nonadditive"].reindex(pairs)
        row = {"model": label, "data_seed": data_seed, "n_genes": len(genes), "n_pairs": len(pairs), "n_interacting": len(interacting),
               "rate": rate, "k": args.k, "chance_top": args.k / len(pairs)}
        for score, values in (("magnitude_deviation", mag_score), ("relative_nonadditive", rel_score)):
            row[f"p@k_{score}"] = precision_at_k(values, interacting, args.k)
            row[f"p@k_top_{score}"] = precision_at_k(values, true_top, args.k)
        row["n_ill_conditioned"] = int((~ok).sum())
        p_test, _ = experiment.predict(model, test_doubles, genes=data.genes)
        _, summ = interaction_metrics(test_doubles, p_test, measured, t_test, t_single, gene_index=gidx)
        row.update({"n_test_doubles": len(test_doubles), **{k: v for k, v in summ.items() if k != "n_doubles"}})
        row["fit_s"] = round(fit_s, 2)
        sa = model.fit_info.get("scaled_additive")
        row["c_large"], row["c_small"] = (sa["c_large"], sa["c_small"]) if sa else (np.nan, np.nan)
        if name == "priorgnn":
            row["epochs"] = (model.fit_info.get("training") or {}).get("epochs")
        kernel = model.fit_info.get("pair_kernel")
        row["kernel_kept"] = float(kernel["kept"]) if kernel else np.nan
        rows.append(row)
        log.info("%s: p@%d %.3f / %.3f (rate %.3f), non-additive corr %.3f", label, args.k,
                 row["p@k_magnitude_deviation"], row["p@k_relative_nonadditive"], rate,
                 row["nonadditive_corr_mean"])
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, command: str, threshold: float, preset: str = "demo") -> str:
    seeds = sorted(df["data_seed"].unique())
    num = df.select_dtypes("number").columns.drop("data_seed")
    mean = df.groupby("model", sort=False)[list(num)].mean().reset_index()
    r = mean.iloc[0]
    k = int(r["k"])
    per_seed = df.groupby("data_seed").first()
    L = ["# Ranking unmeasured pairs by predicted interaction", "",
         f"Command: `{command}`", "",
         (f"`demo` simulations with `double_interaction_bias=2.5`" if preset == "demo" else f"`{preset}` simulations")
         + f" (data seeds {', '.join(map(str, seeds))}), `combo` "
         f"split; per seed {int(r['n_genes'])} training-perturbed genes and {int(r['n_pairs'])} pairs, of which "
         + ", ".join(f"{int(x['n_interacting'])}" for _, x in per_seed.iterrows())
         + f" interact (true relative non-additive size > {threshold}): **rate "
         + ", ".join(f"{x['rate']:.3f}" for _, x in per_seed.iterrows()) + f"** (mean {r['rate']:.3f}). "
         f"`p@{k}`: precision@{k} against the interacting pairs; `p@{k} top`: against the true top {k} "
         f"(chance {r['chance_top']:.3f}). `rel. non-additive` is the ranking `train.py predict --all-pairs` "
         "writes by default (`--rank-by relative_nonadditive`), `magnitude dev.` Norman et al.'s |magnitude − 1| "
         "(`--rank-by magnitude_deviation`). Non-additive correlation, GI label accuracy and magnitude error on "
         f"the held-out doubles (`combo_seen2`, {int(r['n_test_doubles'])} per seed on average), against the "
         "noise-free truth. Means over the seeds:", "",
         f"| model | p@{k} (magnitude dev.) | p@{k} (rel. non-additive) | p@{k} top (magnitude dev.) | "
         f"p@{k} top (rel. non-additive) | rate | non-additive corr (mean) | non-additive corr (pooled) | "
         "GI label acc. | magnitude abs. error | magnitude Spearman | fit s |",
         "|---|" + "---:|" * 11]
    for _, x in mean.iterrows():
        cells = [x["p@k_magnitude_deviation"], x["p@k_relative_nonadditive"], x["p@k_top_magnitude_deviation"],
                 x["p@k_top_relative_nonadditive"], x["rate"], x["nonadditive_corr_mean"],
                 x["nonadditive_corr_pooled"], x["gi_label_accuracy"], x["magnitude_abs_error"],
                 x["magnitude_spearman"], x["fit_s"]]
        L.append(f"| {x['model']} | " + " | ".join("–" if pd.isna(c) else f"{c:.3f}" for c in cells[:-1])
                 + f" | {cells[-1]:.1f} |")
    L += ["", f"p@{k} (rel. non-additive) per data seed, against the rate of interacting pairs:", "",
          "| model | " + " | ".join(f"seed {sd}" for sd in seeds) + " | seeds at ≥ 2 × rate |",
          "|---|" + "---:|" * (len(seeds) + 1)]
    for m, sub_ in df.groupby("model", sort=False):
        vals = sub_.set_index("data_seed")
        hits = sum(vals.loc[sd, "p@k_relative_nonadditive"] >= 2 * vals.loc[sd, "rate"] for sd in seeds)
        L.append(f"| {m} | " + " | ".join(f"{vals.loc[sd, 'p@k_relative_nonadditive']:.3f}" for sd in seeds)
                 + f" | {hits} of {len(seeds)} |")
    L.append("| *rate* | " + " | ".join(f"{per_seed.loc[sd, 'rate']:.3f}" for sd in seeds) + " | |")
    fitted = df.dropna(subset=["c_large"])
    if len(fitted):
        fm = fitted.groupby("model", sort=False)[["c_large", "c_small"]].mean()
        L += ["", "Fitted global coefficients (larger, smaller single; mean over seeds): " + "; ".join(
            f"{m} ({x['c_large']:.3f}, {x['c_small']:.3f})" for m, x in fm.iterrows())
            + " (for `scaled_additive_mag`, the values at average single sizes)."]
    kept = df.dropna(subset=["kernel_kept"])
    if len(kept):
        L += ["", "The pair kernel correction (leave-one-double-out over the training doubles) kept in: " + "; ".join(
            f"{m} {int(x.sum())} of {len(x)} seeds" for m, x in kept.groupby("model", sort=False)["kernel_kept"])
            + "."]
    L += ["", "A model that scores every pair alike (additive: no predicted interaction) gets the rate; NaN "
          "(–) Spearman: the model's magnitudes do not vary across doubles.", ""]
    return "\n".join(L)


def _log_to_stderr() -> None:
    """The benchmark's log lines (also each worker process's, which starts without the parent's set-up)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


def run_seeds(args: argparse.Namespace, data_seeds: list[int]) -> pd.DataFrame:
    """Every data seed's rows, in seed order. ``args.jobs > 1`` runs the seeds in that many processes
    (the seeds are independent: each simulates, fits and scores on its own)."""
    jobs = min(args.jobs, len(data_seeds))
    if jobs <= 1:
        return pd.concat([run(args, sd) for sd in data_seeds], ignore_index=True)
    # spawned, not forked: torch's thread pools do not survive a fork
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_log_to_stderr) as pool:
        return pd.concat(list(pool.map(run, [args] * len(data_seeds), data_seeds)), ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench-pair-ranking", help="working folder")
    p.add_argument("--results", help="also write pair_ranking.csv/.md here (e.g. benchmarks/results)")
    p.add_argument("--data-seeds", default="0,1,2", help="simulation seeds, comma-separated (default 0,1,2)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="simulator preset (default demo)")
    p.add_argument("--split-seed", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--epochs", type=int, default=20, help="PriorGNN's epoch cap")
    p.add_argument("-k", type=int, default=10, help="precision@k")
    p.add_argument("--max-genes", type=int, default=0,
                   help="rank the pairs of this many training-perturbed genes, drawn at random per data seed "
                        "(default 0: all of them)")
    p.add_argument("--threshold", type=float, default=0.2,
                   help="true relative non-additive size above which a pair counts as interacting")
    p.add_argument("--jobs", type=int, default=1,
                   help="run this many data seeds at once, each in its own process (default 1)")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        data_seeds = [int(sd) for sd in args.data_seeds.split(",")]
    except ValueError:
        p.error(f"--data-seeds takes integers separated by commas (e.g. 0,1,2), got {args.data_seeds!r}")
    _log_to_stderr()
    command = "python benchmarks/pair_ranking.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                      else sys.argv[1:]))
    commit, fingerprint = head_commit(), code_fingerprint(CODE_PATHS)
    t0 = time.perf_counter()
    seeds = run_seeds(args, data_seeds)
    md = markdown(seeds, command, args.threshold, args.preset)
    # pair_ranking.csv: one row per model, the means over the seeds; pair_ranking_seeds.csv: per seed
    num = seeds.select_dtypes("number").columns.drop("data_seed")
    df = seeds.groupby("model", sort=False)[list(num)].mean().reset_index()
    df.insert(1, "data_seeds", args.data_seeds)
    for frame in (df, seeds):
        frame["total_s"] = round(time.perf_counter() - t0, 1)
        frame["commit"], frame["code_fingerprint"], frame["command"] = commit, fingerprint, command
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [out] + ([Path(args.results)] if args.results else [])
    for d in targets:
        d.mkdir(parents=True, exist_ok=True)
        df.to_csv(d / "pair_ranking.csv", index=False)
        seeds.to_csv(d / "pair_ranking_seeds.csv", index=False)
        (d / "pair_ranking.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
