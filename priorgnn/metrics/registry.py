"""The metric registry: every metric declares its best value and direction.

Modelled on cell-eval's ``MetricBestValue`` / ``MetricRegistry`` (``cell_eval/metrics``): reports,
tables, bold-facing of the best model and paired comparisons read the direction from here and need no
per-metric special cases. The metric functions themselves live in :mod:`priorgnn.metrics.core` and
register on import.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from priorgnn.errors import ConfigError

__all__ = ["BestValue", "MetricSpec", "register_metric", "get_metric", "metric_names", "METRICS", "SCOPES",
           "UNSEEN_SUBGROUPS", "unseen_claim_metrics"]


class BestValue(enum.Enum):
    """The best attainable value of a metric (as cell-eval's ``MetricBestValue``)."""

    ZERO = 0.0
    ONE = 1.0


@dataclass(frozen=True)
class MetricSpec:
    """A registered per-condition metric.

    Attributes
    ----------
    name
        The field's name for it (``mse``, ``pearson_delta`` ...).
    best
        Its best value; ``ZERO`` means lower is better, ``ONE`` higher is better.
    func
        ``func(batch) -> [C]`` on a :class:`priorgnn.metrics.core.MetricBatch`.
    label
        A short label for figures and tables.
    description
        One line: the definition.
    source
        Whose definition it is.
    needs
        Inputs beyond prediction and reference: ``'de'`` (top DE genes), ``'perturbed_mean'``
        (training perturbations' mean), ``'gi'`` (measured singles), ``'set'`` (depends on the whole
        set of evaluated conditions).
    scope
        Which genes it scores: ``'all'`` (every gene, the perturbed genes included), ``'excl_target'``
        (the condition's perturbed genes left out) or ``'target'`` (only the perturbed genes' own
        change). Claims about unseen perturbations use only ``'excl_target'`` and ``'target'``
        metrics, each for what it measures (see :func:`unseen_claim_metrics`).
    """

    name: str
    best: BestValue
    func: Callable = field(repr=False, compare=False)
    label: str = ""
    description: str = ""
    source: str = ""
    needs: tuple[str, ...] = ()
    scope: str = "all"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"metric {self.name!r}: scope must be one of {SCOPES}, not {self.scope!r}")

    @property
    def best_value(self) -> float:
        return self.best.value

    @property
    def higher_is_better(self) -> bool:
        return self.best is BestValue.ONE

    def orient(self, difference):
        """Turn ``a - b`` into "how much better ``a`` is than ``b``" (positive = ``a`` better)."""
        return difference if self.higher_is_better else -np.asarray(difference)

    def best_index(self, values: Iterable[float]) -> int | None:
        """Position of the (first) best finite value, or ``None`` if there is none."""
        best = self.best_indices(values)
        return best[0] if best else None

    def best_indices(self, values: Iterable[float], rtol: float = 1e-9) -> list[int]:
        """Positions of all finite values tied with the best (within ``rtol``), in order."""
        v = np.asarray(list(values), dtype=np.float64)
        ok = np.isfinite(v)
        if not ok.any():
            return []
        b = v[ok].max() if self.higher_is_better else v[ok].min()
        tied = ok & np.isclose(v, b, rtol=rtol, atol=1e-12)
        return [int(i) for i in np.nonzero(tied)[0]]


METRICS: dict[str, MetricSpec] = {}

#: The gene scopes a metric can have (:attr:`MetricSpec.scope`).
SCOPES = ("all", "excl_target", "target")
#: Subgroups whose perturbed genes were never perturbed in training: claims about them must not rest
#: on a metric that scores the perturbed genes' own change together with the rest.
UNSEEN_SUBGROUPS = ("unseen_single", "combo_seen0")


def register_metric(name: str, best: BestValue, *, label: str = "", description: str = "",
                    source: str = "", needs: tuple[str, ...] = (), scope: str = "all"):
    """Decorator: register ``func(batch) -> [C]`` as metric ``name``."""

    def deco(func: Callable) -> Callable:
        if name in METRICS and METRICS[name].func is not func:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = MetricSpec(name=name, best=best, func=func, label=label or name,
                                   description=description, source=source, needs=needs,
                                   scope=scope)
        return func

    return deco


def _ensure_loaded() -> None:
    from priorgnn.metrics import core  # noqa: F401 - registers the built-in metrics
    from priorgnn.metrics import interactions  # noqa: F401 - registers the interaction metrics


def metric_names() -> list[str]:
    """All registered metric names, in registration order."""
    _ensure_loaded()
    return list(METRICS)


def unseen_claim_metrics(metrics: Iterable[str]) -> list[str]:
    """The metrics among ``metrics`` that may carry a claim about unseen perturbations: those that
    leave the perturbed genes out (``scope='excl_target'``) or score only their own change
    (``scope='target'``), in the given order."""
    return [m for m in metrics if get_metric(m).scope != "all"]


def get_metric(name: str) -> MetricSpec:
    _ensure_loaded()
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}; available: {', '.join(METRICS)}.") from None
