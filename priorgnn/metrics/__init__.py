"""Metrics: per-condition scores, aggregation and statistics, the noise ceiling, run evaluation.

* :mod:`~priorgnn.metrics.registry`: each metric's best value and direction (:func:`get_metric`).
* :mod:`~priorgnn.metrics.core`: the metric definitions and :func:`compute_condition_metrics`.
* :mod:`~priorgnn.metrics.stats`: bootstrap CIs over conditions and seeds (:func:`aggregate`),
  paired comparisons with baselines (:func:`paired_comparison`).
* :mod:`~priorgnn.metrics.ceiling`: the split-half noise ceiling.
* :mod:`~priorgnn.metrics.evaluation`: :func:`evaluate_seed` (several models' predicted changes on one
  split) and :class:`EvaluationResult`.

Loading runs, fitting and predicting belong to the experiment layer (:mod:`priorgnn.experiment`);
this package imports no model and no run.
"""

from priorgnn.metrics.ceiling import noise_ceiling, split_half_means
from priorgnn.metrics.core import (
    DEFAULT_METRICS,
    MetricContext,
    compute_condition_metrics,
    rowwise_pearson,
)
from priorgnn.metrics.evaluation import (
    DEFAULT_BASELINES,
    EvaluationResult,
    evaluate_seed,
    model_order,
)
from priorgnn.metrics.registry import BestValue, MetricSpec, get_metric, metric_names, register_metric
from priorgnn.metrics.stats import (
    REFERENCE_ROWS,
    SUBGROUP_ORDER,
    aggregate,
    bootstrap_ci,
    holm,
    paired_comparison,
    paired_differences,
    wilcoxon_signed_rank,
)

__all__ = [
    "DEFAULT_BASELINES",
    "DEFAULT_METRICS",
    "REFERENCE_ROWS",
    "SUBGROUP_ORDER",
    "BestValue",
    "EvaluationResult",
    "MetricContext",
    "MetricSpec",
    "aggregate",
    "bootstrap_ci",
    "compute_condition_metrics",
    "evaluate_model",
    "evaluate_runs",
    "evaluate_seed",
    "get_metric",
    "holm",
    "metric_names",
    "model_order",
    "noise_ceiling",
    "paired_comparison",
    "paired_differences",
    "predict_conditions",
    "register_metric",
    "rowwise_pearson",
    "split_half_means",
    "wilcoxon_signed_rank",
]

#: Names documented here before the experiment layer existed; they now live in
#: :mod:`priorgnn.experiment` and stay importable from ``priorgnn.metrics`` as lazy aliases (resolved on
#: first use, so importing ``priorgnn.metrics`` loads no model and no run).
_MOVED_TO_EXPERIMENT = ("evaluate_model", "evaluate_runs", "predict_conditions")


def __getattr__(name: str):
    if name in _MOVED_TO_EXPERIMENT:
        import importlib

        return getattr(importlib.import_module("priorgnn.experiment"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
