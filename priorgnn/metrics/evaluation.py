"""Score predictions on their test conditions: per-condition metrics, ceiling, truth, aggregates.

Everything here scores arrays, whoever made them; nothing loads runs or fits models (that is the
experiment layer, :mod:`priorgnn.experiment`).

:func:`evaluate_seed`
    The shared core: several models' predicted changes on one data set and split → per-condition table.
:class:`EvaluationResult`
    What :func:`priorgnn.experiment.evaluate_runs` computes and :func:`priorgnn.report.write_report`
    renders.

The per-condition table has one row per (model, reference, seed, condition) with columns ``model,
reference, seed, condition, subgroup, n_cells`` and one column per metric. ``reference`` is
``observed`` (the measured pseudobulk) or ``truth`` (the simulator's noise-free expectation). Two rows
are limits rather than models: ``ceiling`` (observed reference: split-half noise ceiling, see
:mod:`priorgnn.metrics.ceiling`) and ``observed_data`` (truth reference: the measured data scored
against the truth, i.e. the best a model can do by reproducing the data exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from priorgnn.errors import ConfigError, DataValidationError
from priorgnn.interactions import GIThresholds
from priorgnn.metrics.ceiling import noise_ceiling
from priorgnn.metrics.core import DEFAULT_METRICS, MetricContext, compute_condition_metrics
from priorgnn.metrics.diagnostics import constant_prediction_table
from priorgnn.metrics.registry import get_metric
from priorgnn.metrics.stats import REFERENCE_ROWS

if TYPE_CHECKING:
    from priorgnn.data.dataset import PerturbationData
    from priorgnn.data.splits import Split


__all__ = [
    "EvaluationResult",
    "SeedExamples",
    "evaluate_seed",
    "prediction_diagnostics",
    "model_order",
    "DEFAULT_BASELINES",
    "BASELINE_ORDER",
    "ORACLES",
]

DEFAULT_BASELINES = ("no_change", "mean", "additive")
#: Baselines first, in this order, in every table and figure.
BASELINE_ORDER = ("no_change", "mean", "additive", "scaled_additive", "scaled_additive_mag", "overlap_additive",
                  "relation_additive", "pair_auto", "pair_kernel", "dominance", "linear", "network_knn")
#: Models that read what no real model can know (the simulator's true network): reported, never "learned"
ORACLES = ("network_knn",)


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
    """Everything :func:`priorgnn.experiment.evaluate_runs` computed; :func:`priorgnn.report.write_report` renders it.

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
        :func:`priorgnn.experiment.predict`).
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


def _spec_info(name: str) -> dict[str, Any]:
    s = get_metric(name)
    return {"best_value": s.best_value, "higher_is_better": s.higher_is_better, "label": s.label,
            "description": s.description, "source": s.source}
