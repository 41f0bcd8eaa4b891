#!/usr/bin/env python
"""Every model and baseline on real K562 CRISPRa cells (Norman et al. 2019, the PerturBench subset).

    python benchmarks/real_norman_subset.py                       # writes benchmarks/results/real_norman_subset.*
    python benchmarks/real_norman_subset.py --out DIR --max-epochs 3 --seeds 1   # a quick smoke run

Data: ``../shared/data/norman2019_subset/devel.h5ad`` (``--data``), the cells with
``obs['dataset'] == 'norman19'`` (100 control cells, 18 singles, 15 doubles, 500 genes), read with the
project's loader in scPerturb style (control label ``control``, separator ``+``). The perturbed genes
are not among the 500 measured genes, so every metric here leaves them out; ``pearson_delta`` and
``pearson_delta_excl_target`` coincide and the target's own change cannot be scored.

Two split families:

``double_lodo``
    Leave one double out over the 5 doubles whose two singles are both measured (KLF1+MAP2K6,
    KLF1+TGFBR2, MAP2K3+MAP2K6, MAP2K3+SLC38A2, MAPK1+TGFBR2): fold k trains on every single and the
    other 14 doubles (two of the 10 doubles without both singles are the validation set) and tests on
    the held-out double (subgroup ``combo_seen2``). The 5 folds' test conditions are pooled into one
    evaluation of 5 conditions: the question is whether a model beats ``additive`` on doubles of seen
    singles.
``simulation``
    The project's GEARS-style simulation split (:func:`priorgnn.data.splits.make_split`), seeds 1, 2, 3:
    unseen singles and doubles with 0, 1 or 2 seen genes. The question is whether a model beats
    ``mean`` on unseen singles.

Models: ``no_change``, ``mean``, ``additive``, ``scaled_additive``, ``overlap_additive``, ``pair_auto``,
``dominance``, ``linear``, ``go_knn`` and
``priorgnn`` with the GO graph
built from the real ontology and human annotations (``--go-dir``, OBO + GAF), and the prior-free
``transformer``. Every model is fitted, predicted and scored through the experiment layer that ``train.py``
uses (:func:`priorgnn.pipeline.build_priors`, :func:`priorgnn.experiment.fit`, :func:`~priorgnn.experiment.predict`,
:func:`~priorgnn.experiment.score` with the split-half noise ceiling): means with 95% bootstrap
CIs over conditions (and seeds), paired comparisons with ``additive``, ``mean`` and ``no_change``
(bootstrap CI of the mean difference, Wilcoxon, Holm), and the near-constant-prediction diagnostic
(:mod:`priorgnn.metrics.diagnostics`).

Writes ``OUT/real_norman_subset.csv`` (one row per split family, model, subgroup and metric; the
diagnostic's relative spread in rows of metric ``relative_spread``, with the seeds it flags and
``fallback_conditions``, the conditions a model predicted with a gene it has nothing for), ``OUT/real_norman_subset.md``
(the command, the machine, the tables and a "who wins" paragraph generated from the numbers) and
``OUT/real_norman_subset_comparisons.csv`` and ``OUT/real_norman_subset_fits.csv`` (one row per fit: seconds,
epochs, whether the epoch cap stopped it, and PriorGNN's choices: the propagation's leave-one-out λ, the
scale of its network's residual for unseen genes and the backbone of doubles it chose), and
``OUT/real_norman_subset_vs_additive.csv``: PriorGNN against ``additive`` on doubles of measured singles
per fit (each split seed, each ``double_lodo`` fold), the "never worse than additive" check.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("real_norman_subset")

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "norman2019_subset" / "devel.h5ad"
DEFAULT_GO = ROOT.parent / "shared" / "data" / "go"
MODELS = ("no_change", "mean", "additive", "scaled_additive", "overlap_additive", "pair_auto", "pair_kernel",
          "dominance", "linear",
          "go_knn", "priorgnn",
          "transformer")
BASELINES = ("additive", "mean", "no_change")
METRICS = ("pearson_delta", "pearson_delta_excl_target", "mse_top20_de", "pearson_delta_top20_de",
           "direction_top20_de", "discrimination_score_l1", "pearson_delta_vs_perturbed_mean", "mse")
#: the headline metric of every subgroup: the perturbed genes are not measured, so this is the same
#: number as pearson_delta, named for what it scores
HEADLINE = "pearson_delta_excl_target"
LODO_SEED = 0
#: the trained models' epoch cap: about 1 s an epoch on one core here, 8 PriorGNN fits in ~10 minutes
MAX_EPOCHS = 40


def load_data(path: Path):
    """The norman19 cells of the PerturBench subset, read scPerturb style."""
    from priorgnn.data.download import NORMAN2019_SUBSET
    from priorgnn.data.io import read_h5ad

    # the data set's own loading conventions (python -m priorgnn.data describes them)
    return read_h5ad(path, name="norman2019_subset[norman19]", **NORMAN2019_SUBSET.load_defaults)


def lodo_splits(conditions: list[str]):
    """One :class:`~priorgnn.data.splits.Split` per double whose two singles are measured."""
    from priorgnn.data.conditions import CTRL, parse_condition
    from priorgnn.data.splits import Split

    perts = sorted(set(conditions) - {CTRL})
    singles = {parse_condition(c)[0] for c in perts if len(parse_condition(c)) == 1}
    doubles = [c for c in perts if len(parse_condition(c)) == 2]
    seen2 = [c for c in doubles if all(g in singles for g in parse_condition(c))]
    others = [c for c in doubles if c not in seen2]
    out = []
    for k, held in enumerate(seen2):
        rng = np.random.default_rng(k)
        val = sorted(rng.choice(others, size=min(2, len(others)), replace=False).tolist()) if others else []
        train = [CTRL] + [c for c in perts if c != held and c not in val]
        split = Split(kind="custom", seed=k, train=train, val=val, test=[held],
                      params={"family": "double_lodo", "held_out": held})
        split.check(conditions, require_subgroups=("combo_seen2",))
        out.append(split)
    return out


#: extra PriorGNN options (``--priorgnn-set``; none for the committed table)
PRIORGNN_OPTIONS: dict = {}


def fit_predict(name: str, data, split, go_dir: Path, max_epochs: int | None, seed: int):
    """Fit model ``name`` as train.py does; its (delta, control) for ``split.test``, a fit record and its
    fallbacks per subgroup, ``{subgroup: [conditions with a fallback, conditions]}`` (``None`` if the model
    does not count them; :func:`priorgnn.experiment.prediction_notes`)."""
    from priorgnn import experiment
    from priorgnn.models import TrainConfig, get_model_class
    from priorgnn.pipeline import RunConfig, build_priors

    cls = get_model_class(name)
    cfg = RunConfig(data=str(data.source), model=name,
                    priors={"go": "auto", "coexpression": "auto", "go_obo": str(go_dir / "go-basic.obo.gz"),
                            "go_gaf": str(go_dir / "goa_human.gaf.gz")})
    graphs = build_priors(cfg, data, split, None, cls, progress=False)
    model = cls(**cfg.model_options, **(PRIORGNN_OPTIONS if name == "priorgnn" else {}))
    train_kw = {"max_epochs": max_epochs} if max_epochs else {}
    train = TrainConfig(seed=seed, progress_bar=False, threads=1, **train_kw)
    t0 = time.perf_counter()
    experiment.fit(model, data, split, graphs, train=train)
    fit_s = time.perf_counter() - t0
    training = (getattr(model, "fit_info", None) or {}).get("training") or {}
    info = getattr(model, "fit_info", None) or {}
    record = {"fit_s": round(fit_s, 2), "epochs": training.get("epochs") if cls.trainable else None,
              "hit_cap": (bool(training.get("epochs", 0) >= train.max_epochs) if cls.trainable else None),
              # PriorGNN's choices on the training and validation data: the propagation's leave-one-out
              # lambda, the scale of the network's residual for unseen genes, the backbone of doubles
              "propagation_lambda": (info.get("propagation") or {}).get("lambda"),
              # with the default per-gene shrinkage: λ_u = min(1, λ s_u/(s_u + κ)) over the GO weights to
              # that power, and its range over the genes that have a measured GO neighbour
              "propagation_kappa": (info.get("propagation") or {}).get("kappa"),
              "propagation_power": (info.get("propagation") or {}).get("power"),
              "propagation_lambda_min": (info.get("propagation") or {}).get("lambda_min"),
              "propagation_lambda_max": (info.get("propagation") or {}).get("lambda_max"),
              "genes_with_a_measured_go_neighbour": (info.get("propagation") or {}).get("genes_with_a_measured_neighbour"),
              "unseen_scale": (info.get("unseen_gate") or {}).get("scale"),
              "pair_backbone": (info.get("pair_backbone") or info.get("pair_auto") or {}).get("chosen",
                                                                                       (info.get("pair_auto") or {}).get("backbone")),
              "pair_kernel_kept": (info.get("pair_kernel") or {}).get("kept")}
    subgroup_of = {c: sg for sg, conds in split.subgroups.items() for c in conds}
    fallback = experiment.prediction_notes(model, split.test, subgroup_of).get("n_fallback")
    return experiment.predict(model, split.test, genes=data.genes), record, fallback


def run_family(family: str, splits, data, models, go_dir: Path, max_epochs: int | None, pool: bool):
    """Per-condition table, diagnostics table and fit records of one split family.

    ``pool``: the splits' single test conditions form one evaluation (seed label :data:`LODO_SEED`)."""
    from priorgnn import experiment
    from priorgnn.metrics.evaluation import SeedExamples, prediction_diagnostics

    from priorgnn.errors import GraphError

    frames, fits, diags, skipped = [], [], [], {}
    pooled: dict[str, list[np.ndarray]] = {}
    pooled_notes: dict = {}  # model -> {"n_fallback": subgroup -> [k, n]}, summed over the pooled folds
    observed, conds, subgroups = [], [], {}
    for split in splits:
        preds, split_fallbacks = {}, {}
        for name in models:
            if name in skipped:
                continue
            try:
                (delta, control), rec, fb = fit_predict(name, data, split, go_dir, max_epochs, split.seed)
            except GraphError as exc:  # a model that cannot represent these data is reported, not hidden
                skipped[name] = f"{type(exc).__name__}: {exc}"
                log.warning("%s cannot run on these data: %s", name, exc)
                continue
            preds[name] = (delta, control)
            split_fallbacks[name] = fb
            if pool and fb is not None:
                experiment.merge_notes(pooled_notes, name, {"n_fallback": fb})
            fits.append({"family": family, "split_seed": split.seed, "model": name, **rec})
            log.info("%s split %d: %s fitted in %.1f s", family, split.seed, name, rec["fit_s"])
        # pooled folds hold one test condition each: the discrimination score (a rank among the seed's
        # test conditions) is undefined there and is left out
        metrics = [m for m in METRICS if not (pool and m == "discrimination_score_l1")]
        table, ex = experiment.score(preds, data, split, seed=LODO_SEED if pool else split.seed,
                                     metrics=metrics, ceiling=True, ceiling_seed=split.seed, examples=True)
        frames.append(table)
        if pool:
            for name, (delta, _) in preds.items():
                pooled.setdefault(name, []).append(delta)
            observed.append(ex.observed_delta)
            conds += ex.conditions
            subgroups.update(ex.subgroups)
        else:
            diags.append(with_fallbacks(prediction_diagnostics(preds, ex), split_fallbacks))
    if pool:
        ex = SeedExamples(seed=LODO_SEED, conditions=conds, subgroups=subgroups, genes=list(map(str, data.genes)),
                          observed_delta=np.concatenate(observed), de_idx=np.zeros((len(conds), 0), dtype=int))
        diag = with_fallbacks(prediction_diagnostics({k: (np.concatenate(v), None) for k, v in pooled.items()}, ex),
                              {m: pooled_notes.get(m, {}).get("n_fallback") for m in pooled})
    else:
        diag = pd.concat(diags, ignore_index=True)
    return pd.concat(frames, ignore_index=True), diag, fits, skipped


def with_fallbacks(diag: pd.DataFrame, fallbacks: dict) -> pd.DataFrame:
    """``diag`` with ``fallback_conditions``: per model and subgroup, the test conditions with at least
    one gene the model predicted by its fallback, from ``fallbacks`` (model -> subgroup -> ``[k, n]``, as
    :func:`priorgnn.experiment.prediction_notes` counts them; NaN for a model that does not count them). A
    model that knows nothing about several genes predicts them alike; the count tells that apart from a
    model that fails to use what it knows."""
    def count(row) -> float:
        fb = fallbacks.get(row["model"])
        return float("nan") if fb is None else float(fb.get(row["subgroup"], [0, 0])[0])

    return diag.assign(fallback_conditions=diag.apply(count, axis=1) if len(diag) else [])


def summarise(per_condition: pd.DataFrame, diag: pd.DataFrame, family: str, n_boot: int):
    from priorgnn.metrics import aggregate, paired_comparison

    metrics = [m for m in METRICS if m in per_condition.columns]
    summ = aggregate(per_condition, metrics, n_boot=n_boot, seed=0)
    summ.insert(0, "family", family)
    comp = paired_comparison(per_condition, metrics, baselines=BASELINES, n_boot=n_boot, seed=0)
    comp.insert(0, "family", family)
    return summ, comp, summarise_diagnostics(diag, family)


def summarise_diagnostics(diag: pd.DataFrame, family: str) -> pd.DataFrame:
    """Per model and subgroup over the seeds: the median relative spread (``mean``), the seeds it flags,
    the conditions, and the conditions by fallback (summed; NaN for a model that does not count them)."""
    d = (diag.groupby(["model", "subgroup"])
         .agg(mean=("relative_spread", "median"), constant_seeds=("constant", "sum"),
              n_seeds=("seed", "nunique"), n_conditions=("n_conditions", "sum"),
              fallback_conditions=("fallback_conditions", lambda v: v.sum(min_count=1))).reset_index())
    d.insert(0, "family", family)
    d["reference"] = "observed"
    d["metric"] = "relative_spread"
    return d


def _fmt(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"


def who_wins(summ: pd.DataFrame, comp: pd.DataFrame, diag: pd.DataFrame) -> list[str]:
    """The "who wins" sentences, generated from the numbers."""
    from priorgnn.metrics.registry import get_metric
    from priorgnn.report.summary import verdict

    spec = get_metric(HEADLINE)
    out = []
    questions = [("double_lodo", "combo_seen2", "additive", "doubles whose two singles were both seen"),
                 ("simulation", "unseen_single", "mean", "unseen singles")]
    for family, sg, base, words in questions:
        s = summ[(summ["family"] == family) & (summ["subgroup"] == sg) & (summ["metric"] == HEADLINE)
                 & (summ["reference"] == "observed")]
        models = s[~s["model"].isin(["ceiling"])]
        if models.empty:
            continue
        i = spec.best_index(models["mean"].to_numpy(dtype=float))
        best = models.iloc[i]
        ceil = s[s["model"] == "ceiling"]["mean"]
        txt = (f"On {words} ({family}, {int(best['n_conditions'])} condition-seed pairs), the best model by "
               f"{spec.label} is `{best['model']}` ({_fmt(best['mean'])}, 95% CI [{_fmt(best['ci_lo'])}, "
               f"{_fmt(best['ci_hi'])}]; split-half ceiling {_fmt(ceil.iloc[0]) if len(ceil) else '–'}).")
        for learned in ("priorgnn", "transformer"):
            row = comp[(comp["family"] == family) & (comp["subgroup"] == sg) & (comp["metric"] == HEADLINE)
                       & (comp["model"] == learned) & (comp["baseline"] == base)]
            if row.empty:
                continue
            r = row.iloc[0]
            v = verdict(r)
            word = {"better": f"beats `{base}`", "worse": f"is worse than `{base}`",
                    "inconclusive": f"is not clearly different from `{base}` (the CI and the test disagree)",
                    "indistinguishable": f"does not beat `{base}`"}[v]
            mine = models[models["model"] == learned]["mean"]
            txt += (f" `{learned}` ({_fmt(mine.iloc[0]) if len(mine) else '–'}) {word}: Δ = "
                    f"{_fmt(r['mean_diff'])} [{_fmt(r['diff_ci_lo'])}, {_fmt(r['diff_ci_hi'])}], "
                    f"{int(r['wins'])}/{int(r['losses'])}/{int(r['ties'])} wins/losses/ties.")
        flagged = diag[(diag["family"] == family) & (diag["subgroup"] == sg) & (diag["constant_seeds"] > 0)]
        learned_flagged = [m for m in flagged["model"] if m not in ("no_change", "mean")]
        if learned_flagged:
            rows = flagged.set_index("model")
            txt += (" Near-constant predictions (spread across the conditions under 5% of the data's) from "
                    + ", ".join(f"`{m}` (in {int(rows.loc[m, 'constant_seeds'])} of {int(rows.loc[m, 'n_seeds'])} "
                                f"seeds; median spread {_fmt(float(rows.loc[m, 'mean']))}× the data's"
                                f"{_fallback_words(rows.loc[m])})"
                                for m in learned_flagged) + ".")
        out.append(txt)
    return out


def _fallback_words(row) -> str:
    """``; k of n conditions by fallback`` where the model counted fallbacks and had some, else ``''``."""
    k = row.get("fallback_conditions")
    if k is None or pd.isna(k) or k == 0:
        return ""
    return f"; {int(k)} of {int(row['n_conditions'])} conditions by fallback"


def _flag_words(row) -> str:
    """`` (near-constant in k of n seeds)`` for a diagnostic row flagged in any seed, else ``''``."""
    k, n = int(row["constant_seeds"]), int(row["n_seeds"])
    if k == 0:
        return ""
    return " (near-constant)" if n == 1 else f" (near-constant in {k} of {n} seeds)"


def _table(summ: pd.DataFrame, diag: pd.DataFrame, family: str, subgroup: str, metrics) -> list[str]:
    s = summ[(summ["family"] == family) & (summ["subgroup"] == subgroup) & (summ["reference"] == "observed")]
    d = diag[(diag["family"] == family) & (diag["subgroup"] == subgroup)].set_index("model")
    models = [m for m in [*MODELS, "ceiling"] if m in set(s["model"])]
    L = ["| model | " + " | ".join(metrics) + " | spread vs data |", "|---|" + "---|" * (len(metrics) + 1)]
    for m in models:
        cells = []
        for me in metrics:
            r = s[(s["model"] == m) & (s["metric"] == me)]
            cells.append("–" if r.empty else f"{_fmt(r['mean'].iloc[0])} [{_fmt(r['ci_lo'].iloc[0])}, "
                                              f"{_fmt(r['ci_hi'].iloc[0])}]")
        spread = "" if m not in d.index else (_fmt(float(d.loc[m, "mean"])) + _flag_words(d.loc[m])
                                              + _fallback_words(d.loc[m]))
        L.append(f"| {'*ceiling*' if m == 'ceiling' else '`' + m + '`'} | " + " | ".join(cells) + f" | {spread} |")
    return L


#: the issue's tolerance for "never worse than additive" (Pearson Δ at most this much lower, top-20-DE MSE
#: at most this much higher)
ADDITIVE_TOLERANCE = 0.01


def never_worse_than_additive(per_condition: pd.DataFrame, model: str = "priorgnn") -> pd.DataFrame:
    """``model`` against ``additive`` on doubles of measured singles (``combo_seen1``, ``combo_seen2``)
    per fit: each simulation split seed, and each ``double_lodo`` fold (its one held-out double), the
    means of Pearson Δ and top-20-DE MSE against the observed data, and whether ``model`` is within
    :data:`ADDITIVE_TOLERANCE` of ``additive`` or better on both."""
    pc = per_condition[(per_condition["reference"] == "observed")
                       & per_condition["subgroup"].isin(["combo_seen1", "combo_seen2"])
                       & per_condition["model"].isin([model, "additive"])]
    # a double_lodo fold is one fit with one test double: the condition names the fit
    unit = np.where(pc["family"] == "double_lodo", pc["condition"], pc["seed"].astype(str))
    means = (pc.assign(fit=unit).groupby(["family", "subgroup", "fit", "model"])
             [["pearson_delta_excl_target", "mse_top20_de"]].mean().unstack("model"))
    out = pd.DataFrame({
        "pearson_model": means[("pearson_delta_excl_target", model)],
        "pearson_additive": means[("pearson_delta_excl_target", "additive")],
        "mse_model": means[("mse_top20_de", model)], "mse_additive": means[("mse_top20_de", "additive")]})
    out["met"] = ((out["pearson_model"] >= out["pearson_additive"] - ADDITIVE_TOLERANCE)
                  & (out["mse_model"] <= out["mse_additive"] + ADDITIVE_TOLERANCE))
    return out.reset_index()


def _additive_check_lines(check: pd.DataFrame) -> list[str]:
    if check.empty:
        return []
    L = ["## Never worse than additive (doubles of measured singles, per fit)", "",
         f"PriorGNN against `additive` per fit (a simulation split seed, or a `double_lodo` fold and its held-out "
         f"double), against the observed data: met where PriorGNN's Pearson Δ is at most {ADDITIVE_TOLERANCE} "
         f"below `additive`'s and its top-20-DE MSE at most {ADDITIVE_TOLERANCE} above. "
         f"**Met in {int(check['met'].sum())} of {len(check)} fits.**", "",
         "| family | subgroup | fit | Pearson Δ PriorGNN | Pearson Δ additive | MSE PriorGNN | MSE additive | met |",
         "|---|---|---|---:|---:|---:|---:|---|"]
    L += [f"| {r.family} | {r.subgroup} | {r.fit} | {r.pearson_model:.3f} | {r.pearson_additive:.3f} | "
          f"{r.mse_model:.4f} | {r.mse_additive:.4f} | {'yes' if r.met else 'no'} |" for r in check.itertuples()]
    return L + [""]


def render(summ, comp, diag, fits, skipped: dict[str, str], command: str, n_cells: int, wall_s: float,
           check: pd.DataFrame | None = None) -> str:
    cpu = platform.processor() or platform.machine()
    try:  # the CPU model, where Linux reports it
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    L = ["# Real cells: Norman et al. 2019 K562 CRISPRa subset", "",
         f"Made by `{command}` on {platform.system()}, {cpu} ({os.cpu_count()} cores), Python "
         f"{platform.python_version()}, "
         f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, in {wall_s:.0f} s "
         f"({n_cells} cells, 500 genes). The perturbed genes are not among the measured genes, so every "
         "metric scores only other genes. Means with 95% bootstrap CIs over conditions (and seeds); "
         "`spread vs data` is the near-constant-prediction diagnostic (predicted changes' spread across "
         "the subgroup's conditions over the observed changes'; median over seeds; for `double_lodo` it pools the "
         "5 folds' predictions, each from its own fit). `by fallback` counts the conditions (over seeds) with a "
         "gene the model has no measured effect or prior for, predicted by its documented fallback (`additive`, "
         "`go_knn`, PriorGNN: the mean training single; PriorGNN's `n_fallback`: never perturbed in training, no "
         "measured GO neighbour, no trained embedding within its GO hops): such genes are predicted alike.", "",
         "## Who wins", "", *who_wins(summ, comp, diag), ""]
    if skipped:
        L += ["Models that could not be run on these data (and so are in no table):", ""]
        L += [f"- `{m}`: {why}" for m, why in skipped.items()] + [""]
    metrics = ["pearson_delta_excl_target", "mse_top20_de", "pearson_delta_top20_de", "discrimination_score_l1"]
    for family in ("double_lodo", "simulation"):
        s = summ[summ["family"] == family]
        present = set(s["subgroup"])
        for sg in [g for g in ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2") if g in present]:
            n = int(s[(s["subgroup"] == sg)]["n_conditions"].max())
            L += [f"## {family}: {sg} ({n} condition-seed pairs)", "", *_table(summ, diag, family, sg, metrics), ""]
    if check is not None:
        L += _additive_check_lines(check)
    fr = pd.DataFrame(fits)
    f = fr.groupby("model", sort=False).agg(mean=("fit_s", "mean"), max=("fit_s", "max"), count=("fit_s", "count"),
                                            epochs=("epochs", "median"), capped=("hit_cap", "sum"))
    L += ["## Fits", "", "Trained models stop by early stopping (patience 20 on the validation top-20-DE MSE) "
          "or at the epoch cap; `capped` counts fits that reached the cap.", "",
          "| model | mean fit s | max fit s | fits | median epochs | capped |", "|---|---|---|---|---|---|"]
    L += [f"| `{m}` | {r['mean']:.1f} | {r['max']:.1f} | {int(r['count'])} | "
          f"{'' if pd.isna(r['epochs']) else int(r['epochs'])} | "
          f"{int(r['capped']) if fr[fr['model'] == m]['hit_cap'].notna().any() else ''} |" for m, r in f.iterrows()]
    pg = fr[fr["model"] == "priorgnn"]
    if len(pg) and "propagation_lambda" in pg:
        def shrink(r) -> str:
            lo, hi = r.get("propagation_lambda_min"), r.get("propagation_lambda_max")
            if lo is None or pd.isna(lo):
                return f"λ {r['propagation_lambda']:.2f}"
            return f"λ_u {lo:.2f} to {hi:.2f} over {int(r['genes_with_a_measured_go_neighbour'])} genes"

        L += ["", "PriorGNN's choices per fit (`real_norman_subset_fits.csv`; the propagation's leave-one-out "
              "shrinkage λ_u = min(1, λ s_u/(s_u + κ)) of a gene with GO-neighbour weight s_u to measured training "
              "singles, its range over the genes that have such a neighbour): "
              + "; ".join(f"{r['family']} split {r['split_seed']}: {shrink(r)}, unseen scale "
                          f"{r['unseen_scale']:g}, backbone `{r['pair_backbone']}`" for _, r in pg.iterrows()) + "."]
    L += ["", "All metrics, paired comparisons and fits: `real_norman_subset.csv`, "
          "`real_norman_subset_comparisons.csv`, `real_norman_subset_fits.csv`.", ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--go-dir", type=Path, default=DEFAULT_GO)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="simulation split seeds")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--max-epochs", type=int, default=MAX_EPOCHS,
                   help=f"epoch cap of the trained models (default {MAX_EPOCHS}, to run in ~10 minutes on one core)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--priorgnn-set", action="append", metavar="KEY=VALUE",
                   help="a PriorGNN option for an ablation (as train.py --model-set; the committed table uses none)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from priorgnn.cli import parse_key_values
    from priorgnn.data.splits import make_split

    PRIORGNN_OPTIONS.update(parse_key_values(args.priorgnn_set, "--priorgnn-set"))

    t0 = time.perf_counter()
    data = load_data(args.data)
    families = {"double_lodo": (lodo_splits(list(data.conditions)), True),
                "simulation": ([make_split(data.conditions, "simulation", seed=s) for s in args.seeds], False)}
    summs, comps, diags, fits, skipped, pcs = [], [], [], [], {}, []
    for family, (splits, pool) in families.items():
        pc, diag, f, skip = run_family(family, splits, data, args.models, args.go_dir, args.max_epochs, pool)
        pcs.append(pc.assign(family=family))
        skipped.update(skip)
        s, c, d = summarise(pc, diag, family, args.n_boot)
        summs.append(s)
        comps.append(c)
        diags.append(d)
        fits += f
    summ, comp, diag = (pd.concat(x, ignore_index=True) for x in (summs, comps, diags))
    wall = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([summ, diag[["family", "model", "reference", "subgroup", "metric", "mean", "n_conditions",
                                   "n_seeds", "constant_seeds", "fallback_conditions"]]], ignore_index=True)
    table.to_csv(args.out / "real_norman_subset.csv", index=False)
    comp.to_csv(args.out / "real_norman_subset_comparisons.csv", index=False)
    pd.DataFrame(fits).to_csv(args.out / "real_norman_subset_fits.csv", index=False)
    check = None
    if {"priorgnn", "additive"} <= set(args.models):
        check = never_worse_than_additive(pd.concat(pcs, ignore_index=True))
        check.to_csv(args.out / "real_norman_subset_vs_additive.csv", index=False)
    command = "python benchmarks/real_norman_subset.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    (args.out / "real_norman_subset.md").write_text(
        render(summ, comp, diag, fits, skipped, command.strip(), data.n_cells, wall, check), encoding="utf-8")
    log.info("wrote %s in %.0f s", args.out / "real_norman_subset.md", wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
