"""Evaluate runs (and baselines) on their test conditions: per-condition metrics, ceiling, truth.

The entry points:

:func:`evaluate_runs`
    Run directories (several models, several seeds) → :class:`EvaluationResult`: per-condition
    metrics against the observed data (and against the simulator's truth on simulated data), the
    split-half noise ceiling, aggregates per subgroup with bootstrap CIs, and paired comparisons with
    the ``additive`` and ``no_change`` baselines. Baselines that need no run are fitted on the same
    data and split. What ``evaluate.py`` reports.
:func:`evaluate_model`
    One fitted model on one data set and split → per-condition table (for ``train.py``).
:func:`evaluate_seed`
    The shared core: several fitted models on one data set and split.

The per-condition table has one row per (model, reference, seed, condition) with columns ``model,
reference, seed, condition, subgroup, n_cells`` and one column per metric. ``reference`` is
``observed`` (the measured pseudobulk) or ``truth`` (the simulator's noise-free expectation). Two rows
are limits rather than models: ``ceiling`` (observed reference: split-half noise ceiling, see
:mod:`priorgnn.metrics.ceiling`) and ``observed_data`` (truth reference: the measured data scored
against the truth, i.e. the best a model can do by reproducing the data exactly).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from priorgnn.data.conditions import CTRL
from priorgnn.errors import CheckpointError, ConfigError, DataValidationError
from priorgnn.interactions import GIThresholds
from priorgnn.metrics.ceiling import noise_ceiling
from priorgnn.metrics.core import DEFAULT_METRICS, MetricContext, compute_condition_metrics
from priorgnn.metrics.diagnostics import constant_prediction_table
from priorgnn.metrics.registry import get_metric
from priorgnn.metrics.stats import REFERENCE_ROWS, aggregate, paired_comparison

if TYPE_CHECKING:
    from priorgnn.data.dataset import PerturbationData
    from priorgnn.data.splits import Split
    from priorgnn.models.base import PerturbationModel
    from priorgnn.runs import Run

log = logging.getLogger(__name__)

__all__ = [
    "EvaluationResult",
    "SeedExamples",
    "evaluate_runs",
    "evaluate_seed",
    "evaluate_model",
    "predict_conditions",
    "prediction_notes",
    "prediction_diagnostics",
    "model_order",
    "DEFAULT_BASELINES",
    "BASELINE_ORDER",
    "ORACLES",
]

DEFAULT_BASELINES = ("no_change", "mean", "additive")
#: Baselines first, in this order, in every table and figure.
BASELINE_ORDER = ("no_change", "mean", "additive", "scaled_additive", "scaled_additive_mag", "dominance", "linear",
                  "network_knn")
#: Models that read what no real model can know (the simulator's true network): reported, never "learned"
ORACLES = ("network_knn",)
_ID_COLS = ["model", "reference", "seed", "condition", "subgroup", "n_cells"]


@dataclass
class SeedExamples:
    """What the figures need from one seed: observed and predicted changes of its test conditions."""

    seed: int
    conditions: list[str]
    subgroups: dict[str, str]
    genes: list[str]
    observed_delta: np.ndarray  # [C, G]
    de_idx: np.ndarray  # [C, 20]
    predicted_delta: dict[str, np.ndarray] = field(default_factory=dict)  # model -> [C, G]
    truth_delta: np.ndarray | None = None


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate_runs` computed; :func:`priorgnn.report.write_report` renders it.

    Attributes
    ----------
    per_condition
        One row per (model, reference, seed, condition); see the module docstring.
    summary
        :func:`~priorgnn.metrics.stats.aggregate` of it: mean and bootstrap CI per model, reference,
        subgroup and metric.
    comparisons
        :func:`~priorgnn.metrics.stats.paired_comparison` of every model with ``additive`` and
        ``no_change``, for each reference.
    metrics
        The metric names, in report order.
    models
        The model labels, baselines first (limits such as ``ceiling`` excluded).
    references
        ``['observed']`` or ``['observed', 'truth']``.
    info
        Provenance: data, seeds, splits, runs, settings.
    examples
        Per seed, the arrays the figures draw.
    diagnostics
        Per model, seed and subgroup, the relative spread of the predicted changes and whether the
        model predicts (nearly) one change for all conditions (``constant``).
    """

    per_condition: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    metrics: list[str]
    models: list[str]
    references: list[str]
    info: dict[str, Any]
    examples: dict[int, SeedExamples] = field(default_factory=dict)
    #: :func:`~priorgnn.metrics.diagnostics.constant_prediction_table` per seed: does each model tell
    #: the test conditions of a subgroup apart (its predicted changes' spread relative to the data's)?
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)


def model_order(labels: Sequence[str]) -> list[str]:
    """Baselines first (``no_change, mean, additive, linear``), then the rest in given order."""
    uniq = list(dict.fromkeys(labels))
    first = [b for b in BASELINE_ORDER if b in uniq]
    return first + [m for m in uniq if m not in first and m not in REFERENCE_ROWS]


# -- prediction --------------------------------------------------------------------------------------
def predict_conditions(model: PerturbationModel, conditions: Sequence[str], genes: Sequence[str], *,
                       batch_size: int = 256, progress: bool = True, desc: str | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted changes ``[C, G]`` (float64, from ``layers['delta']``) and the model's control mean.

    Predicts in batches with a progress bar. Raises if the model's genes are not ``genes``.
    """
    from tqdm.auto import tqdm

    if model.genes is None or list(model.genes) != list(map(str, genes)):
        raise CheckpointError(
            f"model {model.name!r} was fitted on other genes than the data's "
            f"({0 if model.genes is None else len(model.genes)} vs {len(genes)}); evaluate it on the "
            "data it was trained on."
        )
    conditions = list(conditions)
    out = np.empty((len(conditions), len(genes)), dtype=np.float64)
    starts = range(0, len(conditions), max(1, int(batch_size)))
    for s in tqdm(starts, desc=desc or f"predicting ({model.name})", unit="batch", disable=not progress,
                  leave=False):
        chunk = conditions[s:s + batch_size]
        pred = model.predict(chunk)
        if list(pred.obs["condition"].astype(str)) != [c for c in model.canonical(chunk)]:
            raise CheckpointError(f"model {model.name!r} returned predictions in another order.")
        out[s:s + len(chunk)] = np.asarray(pred.layers["delta"], dtype=np.float64)
    return out, np.asarray(model.control_mean, dtype=np.float64)


#: Per-condition counts that models attach to their predictions (``_prediction_obs``) and the report
#: summarises: how often a model had to fall back for a gene it has no measured effect for.
NOTE_KEYS = ("n_fallback", "n_untrained_genes")


def prediction_notes(model: PerturbationModel, conditions: Sequence[str],
                     subgroups: dict[str, str]) -> dict[str, dict[str, list[int]]]:
    """For each of :data:`NOTE_KEYS` the model reports: per subgroup, ``[conditions with a count
    above 0, conditions]``. The additive baseline's ``n_fallback``, for example, counts conditions
    where a single was not measured in training and its documented fallback was used."""
    conditions = list(conditions)
    obs = model._prediction_obs(model.canonical(conditions))
    out: dict[str, dict[str, list[int]]] = {}
    for key in NOTE_KEYS:
        if key not in obs:
            continue
        per: dict[str, list[int]] = {}
        for c, v in zip(conditions, np.asarray(obs[key], dtype=float), strict=True):
            n = per.setdefault(subgroups.get(c, "other"), [0, 0])
            n[0] += int(v > 0)
            n[1] += 1
        out[key] = per
    return out


def _merge_notes(into: dict, label: str, notes: dict) -> None:
    for key, per in notes.items():
        target = into.setdefault(label, {}).setdefault(key, {})
        for sg, (k, n) in per.items():
            t = target.setdefault(sg, [0, 0])
            t[0] += k
            t[1] += n


def _seed_graphs(runs):
    """The prior graphs of a seed's runs (the first run holding each graph), for baselines that read
    priors (``go_knn``, ``linear_go``): they then see exactly the prior the runs saw."""
    from priorgnn.models.base import PriorGraphs

    out = PriorGraphs()
    for r in runs:
        g = r.graphs()
        out.go = out.go or g.go
        out.coexpression = out.coexpression or g.coexpression
    return out


# -- one seed -----------------------------------------------------------------------------------------
def _truth_fn(simulation):
    def f(conds: list[str]) -> np.ndarray:
        return np.asarray(simulation.truth(list(conds)), dtype=np.float64)

    return f


def _subgroup_map(split: Split, conditions: Sequence[str]) -> dict[str, str]:
    sub = {c: name for name, conds in split.subgroups.items() for c in conds}
    return {c: sub.get(c, "other") for c in conditions}


def prediction_diagnostics(predictions: dict[str, tuple[np.ndarray, np.ndarray]], examples: SeedExamples
                           ) -> pd.DataFrame:
    """:func:`~priorgnn.metrics.diagnostics.constant_prediction_table` of one seed's predictions
    (changes ``[C, G]`` in the order of ``examples.conditions``), perturbed genes left out."""
    from priorgnn.data.conditions import parse_condition

    gidx = {g: i for i, g in enumerate(examples.genes)}
    exclude = [[gidx[g] for g in parse_condition(c) if g in gidx] for c in examples.conditions]
    return constant_prediction_table({k: v[0] for k, v in predictions.items()}, examples.observed_delta,
                                     [examples.subgroups[c] for c in examples.conditions],
                                     seed=examples.seed, exclude=exclude)


def _frame(table: pd.DataFrame, model: str, reference: str, seed: int, subgroups: dict[str, str],
           n_cells: dict[str, int]) -> pd.DataFrame:
    t = table.reset_index()
    t.insert(0, "model", model)
    t.insert(1, "reference", reference)
    t.insert(2, "seed", seed)
    t.insert(4, "subgroup", t["condition"].map(subgroups))
    t.insert(5, "n_cells", t["condition"].map(n_cells).astype("Int64"))
    return t


def evaluate_seed(
    data: PerturbationData,
    split: Split,
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    seed: int,
    conditions: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    simulation=None,
    ceiling: bool = True,
    ceiling_seed: int = 0,
    ceiling_repeats: int = 1,
    gi_thresholds: GIThresholds | None = None,
) -> tuple[pd.DataFrame, SeedExamples]:
    """Per-condition metrics of several models' predictions on one data set and split.

    Parameters
    ----------
    data, split
        The data and the split the models were fitted on.
    predictions
        Model label → ``(delta [C, G], control_mean [G])`` for ``conditions`` (see
        :func:`predict_conditions`).
    seed
        The seed label of the rows.
    conditions
        The evaluated conditions (default ``split.test``).
    simulation
        The simulation the data came from (``Run.simulation()``), for the truth reference; ``None``
        for real data.
    ceiling
        Add the split-half noise ceiling (model ``'ceiling'``).

    Returns
    -------
    The per-condition table (module docstring) and the :class:`SeedExamples` for figures.
    """
    metrics = list(metrics or DEFAULT_METRICS)
    conditions = list(conditions if conditions is not None else split.test)
    if not conditions:
        raise ConfigError("there are no test conditions to evaluate in this split.")
    s = data.summaries
    ctx = MetricContext.from_data(data, split, conditions, gi_thresholds=gi_thresholds)
    obs = np.stack([s.mean(c) for c in conditions]).astype(np.float64)
    subgroups = _subgroup_map(split, conditions)
    n_cells = {c: int(s.n_cells[s.row[c]]) for c in conditions}
    frames = []
    for label, (delta, control) in predictions.items():
        if delta.shape != obs.shape:
            raise DataValidationError(f"predictions of {label!r} have shape {delta.shape}, expected {obs.shape}.")
        t = compute_condition_metrics(control[None, :] + delta, obs, ctx, pred_control=control,
                                      pred_delta=delta, metrics=metrics)
        frames.append(_frame(t, label, "observed", seed, subgroups, n_cells))
    if ceiling:
        t = noise_ceiling(data, ctx, seed=ceiling_seed, n_repeats=ceiling_repeats, metrics=metrics)
        frames.append(_frame(t, "ceiling", "observed", seed, subgroups, n_cells))
    examples = SeedExamples(seed=seed, conditions=conditions, subgroups=subgroups,
                            genes=list(map(str, data.genes)), observed_delta=obs - ctx.control[None, :],
                            de_idx=ctx.de_idx,
                            predicted_delta={k: v[0].astype(np.float32) for k, v in predictions.items()})
    if simulation is not None:
        sim_data = getattr(simulation, "data", None)
        if sim_data is not None and list(map(str, sim_data.genes)) != list(map(str, data.genes)):
            raise DataValidationError(
                "the simulation's genes are not the data's (other genes or another order); the run's data "
                "must be the simulation's own data.h5ad."
            )
        truth = _truth_fn(simulation)
        try:
            ref = truth(conditions)
        except Exception as exc:  # noqa: BLE001 - any simulator failure becomes one message
            raise DataValidationError(
                f"the simulation could not return the truth of the test conditions ({type(exc).__name__}: "
                f"{exc}). Re-create the simulation, or evaluate without --truth."
            ) from None
        if ref.shape != obs.shape:
            raise DataValidationError(
                f"the simulation's truth has shape {ref.shape}, the data {obs.shape}; the run's data "
                "must be the simulation's."
            )
        tctx = ctx.for_reference(truth, split, "truth")
        for label, (delta, control) in predictions.items():
            t = compute_condition_metrics(control[None, :] + delta, ref, tctx, pred_control=control,
                                          pred_delta=delta, metrics=metrics)
            frames.append(_frame(t, label, "truth", seed, subgroups, n_cells))
        t = compute_condition_metrics(obs, ref, tctx, pred_control=ctx.control,
                                      pred_delta=obs - ctx.control[None, :], metrics=metrics)
        frames.append(_frame(t, "observed_data", "truth", seed, subgroups, n_cells))
        examples.truth_delta = (ref - tctx.control[None, :]).astype(np.float32)
    per_condition = pd.concat(frames, ignore_index=True)
    return per_condition, examples


def evaluate_model(
    model: PerturbationModel,
    data: PerturbationData,
    split: Split,
    *,
    label: str | None = None,
    seed: int = 0,
    conditions: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    simulation=None,
    ceiling: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-condition metrics of one fitted model (default: the test set), for ``train.py``.

    Returns the per-condition table of :func:`evaluate_seed` (observed reference, and truth when
    ``simulation`` is given). Summarise it with :func:`priorgnn.metrics.aggregate`.
    """
    conditions = list(conditions if conditions is not None else split.test)
    delta, control = predict_conditions(model, conditions, data.genes, progress=progress)
    table, _ = evaluate_seed(data, split, {label or model.name: (delta, control)}, seed=seed,
                             conditions=conditions, metrics=metrics, simulation=simulation,
                             ceiling=ceiling)
    return table


# -- runs ---------------------------------------------------------------------------------------------
def _data_key(run: Run) -> str:
    d = run.data_spec
    return json.dumps({"kind": d.kind, "path": str(d.path), "kw": d.load_kwargs}, sort_keys=True, default=str)


def _split_key(split: Split) -> tuple:
    return (tuple(split.train), tuple(split.val), tuple(split.test))


def _load_runs(paths: Sequence) -> list[Run]:
    from priorgnn.runs import Run

    runs = []
    for p in paths:
        runs.append(p if isinstance(p, Run) else Run.load(p))
    if not runs:
        raise ConfigError("no runs to evaluate; pass at least one run directory.")
    return runs


def evaluate_runs(
    runs: Sequence,
    *,
    baselines: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    ceiling: bool = True,
    ceiling_repeats: int = 1,
    truth: bool = True,
    n_boot: int = 2000,
    level: float = 0.95,
    bootstrap_seed: int = 0,
    ceiling_seed: int = 0,
    compare_with: Sequence[str] = ("additive", "no_change"),
    gi_thresholds: GIThresholds | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate run directories, and baselines fitted on the same data and splits.

    Parameters
    ----------
    runs
        Run directories (paths or :class:`~priorgnn.runs.Run`). All must use the same data; runs
        with the same seed must share the split. Runs of one model with several seeds aggregate by
        seed.
    baselines
        Names of registered models fitted here on each seed's data and split (e.g.
        ``('no_change', 'mean', 'additive')``). A baseline that is also among the runs is taken from
        the run.
    metrics
        Metric names (default :data:`~priorgnn.metrics.core.DEFAULT_METRICS`).
    labels
        A label per run (default: ``run.json``'s ``label``, else the model name). Two runs with the
        same label and seed are an error.
    ceiling
        Compute the split-half noise ceiling.
    truth
        On simulated data, also score against the simulator's noise-free truth.
    n_boot, level, bootstrap_seed
        Bootstrap of the CIs (:mod:`priorgnn.metrics.stats`).
    ceiling_seed, ceiling_repeats
        Random halves of the ceiling; the halves of the split with seed ``s`` use
        ``ceiling_seed + s``, so every seed's ceiling is reproducible and independent.
    compare_with
        Baselines every model is compared with (when present).
    """
    from priorgnn.models.base import get_model_class

    run_objs = _load_runs(runs)
    metrics = list(metrics or DEFAULT_METRICS)
    for m in metrics:
        get_metric(m)
    baselines = list(dict.fromkeys(baselines))
    for b in baselines:
        get_model_class(b)
    if labels is not None and len(labels) != len(run_objs):
        raise ConfigError(f"{len(labels)} labels for {len(run_objs)} runs; give one label per run.")
    run_labels = list(labels) if labels is not None else [r.info.get("label") or r.model_name for r in run_objs]

    # data: one data set for all runs
    data_cache: dict[str, PerturbationData] = {}
    for r in run_objs:
        key = _data_key(r)
        if key not in data_cache:
            log.info("loading data of run %s", r.path)
            data_cache[key] = r.data()
    hashes = {k: d.content_hash for k, d in data_cache.items()}
    if len(set(hashes.values())) > 1:
        raise ConfigError(
            f"the runs use {len(set(hashes.values()))} different data sets; evaluate runs of one data set "
            "together (group the others into another evaluate.py call)."
        )
    data = next(iter(data_cache.values()))

    # group by seed; one split per seed; unique labels per seed
    by_seed: dict[int, list[tuple[str, Run]]] = {}
    for lab, r in zip(run_labels, run_objs, strict=True):
        by_seed.setdefault(r.seed, []).append((lab, r))
    splits: dict[int, Split] = {}
    for seed, members in sorted(by_seed.items()):
        seen: dict[str, Path] = {}
        for lab, r in members:
            if lab in seen:
                raise ConfigError(
                    f"runs {seen[lab]} and {r.path} are both {lab!r} with seed {seed}. Evaluate them "
                    "separately, or give them distinct labels (\"label\" in run.json)."
                )
            seen[lab] = r.path
        split0 = None
        for lab, r in members:
            sp = r.split()
            if split0 is None:
                split0, first = sp, r
            elif _split_key(sp) != _split_key(split0):
                raise ConfigError(
                    f"runs {first.path} and {r.path} have seed {seed} but different splits; runs "
                    "evaluated together must share the split of each seed (train them with the same "
                    "split, or evaluate them separately)."
                )
        split0.check(data.conditions)
        splits[seed] = split0

    simulation = None
    if truth:
        try:
            simulation = run_objs[0].simulation()
        except (ImportError, AttributeError) as exc:
            log.warning("the simulator is not available (%s); skipping the truth reference", exc)

    if simulation is not None and getattr(simulation, "path", None) is not None \
            and (Path(simulation.path) / "network.csv").exists() and "network_knn" not in baselines:
        # on simulated data the oracle of transferable signal joins the baselines (issue "knowledge that
        # counts"): what a neighbour-based prior could transfer at all, from the true network
        baselines.append("network_knn")
    baseline_options = {"network_knn": {"network": str(Path(simulation.path) / "network.csv")}} \
        if simulation is not None and getattr(simulation, "path", None) is not None else {}
    frames, examples, notes, diags = [], {}, {}, []
    for seed, members in sorted(by_seed.items()):
        split = splits[seed]
        conditions = list(split.test)
        subgroups = _subgroup_map(split, conditions)
        preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for lab, r in members:
            model = r.model()
            preds[lab] = predict_conditions(model, conditions, data.genes, progress=progress,
                                            desc=f"predicting {lab} (seed {seed})")
            _merge_notes(notes, lab, prediction_notes(model, conditions, subgroups))
        graphs = _seed_graphs([r for _, r in members])
        for b in baselines:
            if b in preds:
                log.info("baseline %r is among the runs of seed %d; using the run", b, seed)
                continue
            if b == "network_knn" and "network_knn" not in baseline_options:
                raise ConfigError("network_knn is an oracle for simulated data: it needs the simulation's "
                                  "true network, and these runs are not of a simulation.")
            model = get_model_class(b)(**baseline_options.get(b, {})).fit(data, split, graphs=graphs)
            preds[b] = predict_conditions(model, conditions, data.genes, progress=progress,
                                          desc=f"predicting {b} (seed {seed})")
            _merge_notes(notes, b, prediction_notes(model, conditions, subgroups))
        table, ex = evaluate_seed(data, split, preds, seed=seed, conditions=conditions, metrics=metrics,
                                  simulation=simulation, ceiling=ceiling, ceiling_seed=ceiling_seed + seed,
                                  ceiling_repeats=ceiling_repeats, gi_thresholds=gi_thresholds)
        frames.append(table)
        examples[seed] = ex
        diags.append(prediction_diagnostics(preds, ex))
    per_condition = pd.concat(frames, ignore_index=True)
    references = ["observed"] + (["truth"] if simulation is not None else [])
    models = model_order(list(per_condition["model"]))
    summary = aggregate(per_condition, metrics, n_boot=n_boot, level=level, seed=bootstrap_seed)
    comparisons = pd.concat(
        [paired_comparison(per_condition, metrics, baselines=compare_with, reference=ref, n_boot=n_boot,
                           level=level, seed=bootstrap_seed) for ref in references],
        ignore_index=True,
    )
    info = {
        "data": {"name": data.name, "source": data.source, "content_hash": data.content_hash,
                 "n_cells": data.n_cells, "n_genes": data.n_genes,
                 "n_conditions": len(data.conditions) - 1, "simulated": simulation is not None},
        "seeds": sorted(by_seed),
        "splits": {int(s): {"kind": sp.kind, "n_train": len(sp.train) - (CTRL in sp.train),
                            "n_val": len(sp.val), "n_test": len(sp.test),
                            "subgroups": {k: len(v) for k, v in sp.subgroups.items()}}
                   for s, sp in splits.items()},
        "runs": [{"path": str(r.path), "label": lab, "model": r.model_name, "seed": r.seed}
                 for lab, r in zip(run_labels, run_objs, strict=True)],
        "baselines": baselines,
        "metrics": {m: _spec_info(m) for m in metrics},
        "bootstrap": {"n_boot": n_boot, "level": level, "seed": bootstrap_seed},
        "ceiling": {"enabled": ceiling, "seed": ceiling_seed, "repeats": ceiling_repeats},
        "gi_thresholds": (gi_thresholds or GIThresholds()).to_dict(),
        "compare_with": [c for c in compare_with if c in models],
        # per model: NOTE_KEYS count -> subgroup -> [conditions with a fallback, conditions], over seeds
        "prediction_notes": notes,
    }
    return EvaluationResult(per_condition=per_condition, summary=summary, comparisons=comparisons,
                            metrics=metrics, models=models, references=references, info=info,
                            examples=examples, diagnostics=pd.concat(diags, ignore_index=True))


def _spec_info(name: str) -> dict[str, Any]:
    s = get_metric(name)
    return {"best_value": s.best_value, "higher_is_better": s.higher_is_better, "label": s.label,
            "description": s.description, "source": s.source}
