"""Per-condition metrics on pseudobulk means.

Every metric compares, for each evaluated condition, a *prediction* with a *reference* (the
observed pseudobulk mean, half of the cells for the noise ceiling, or the simulator's noise-free
truth), both as mean log-normalised expression over the data's genes. Notation per condition:

* ``p``, ``r``: predicted and reference mean expression ``[G]``;
* ``c_p``, ``c_r``: the control means they are relative to (both the observed control mean of the
  data unless stated; for the truth reference ``c_r`` is the true control); ``δp = p − c_p``,
  ``δr = r − c_r`` the predicted and reference changes from control;
* ``DE``: the condition's top-20 differentially expressed genes, GEARS's definition (scanpy
  ``rank_genes_groups`` t-test of the condition's cells against control cells, ranked by ``|t|``,
  on the full data; :meth:`~priorgnn.data.dataset.ConditionSummaries.top_de`). The same genes are
  used whatever the reference, so the scores against observation, ceiling and truth are comparable;
* ``HE``: the 1,000 genes with the highest observed control mean (all genes if fewer);
* ``μ``: the mean of the training perturbations' pseudobulk means (each training condition other
  than control weighted equally), in the reference's space.

Each metric's docstring gives the exact definition and its source. All metrics are vectorised over
conditions and genes; only the genetic-interaction label loops (over doubles, not genes).

Where a Pearson correlation is undefined (a constant vector, e.g. the ``no_change`` baseline's
zero delta), it is 0, as in GEARS (``gears.inference``: ``if np.isnan(val): val = 0``); cell-eval
would return NaN. 0 ("no linear agreement") keeps every model in every mean.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from priorgnn.data.conditions import CTRL, make_condition, parse_condition
from priorgnn.errors import DataValidationError
from priorgnn.interactions import GIThresholds, highly_expressed_genes, interaction_label, interaction_scores
from priorgnn.metrics.registry import METRICS, BestValue, get_metric, register_metric

if TYPE_CHECKING:
    from priorgnn.data.dataset import PerturbationData
    from priorgnn.data.splits import Split

log = logging.getLogger(__name__)

__all__ = [
    "MetricContext",
    "MetricBatch",
    "compute_condition_metrics",
    "DEFAULT_METRICS",
    "N_DE",
    "N_EXPRESSED",
    "rowwise_pearson",
    "perturbed_gene_idx",
    "keep_mask",
]

#: The number of top DE genes in the ``*_top20_de`` metrics (fixed: the names say 20).
N_DE = 20
#: The number of highly expressed genes of ``l2_top1000_expressed``.
N_EXPRESSED = 1000


# -- helpers ---------------------------------------------------------------------------------------
def rowwise_pearson(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (0 where undefined).

    ``mask`` (bool, same shape) restricts each row to its ``True`` entries.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(x) if mask is None else mask.astype(np.float64)
    n = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = (x - (w * x).sum(axis=1, keepdims=True) / n) * w
        yc = (y - (w * y).sum(axis=1, keepdims=True) / n) * w
        num = (xc * yc).sum(axis=1)
        den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
        r = num / den
    return np.where(den > 0, np.clip(r, -1.0, 1.0), 0.0)


def perturbed_gene_idx(conditions: Sequence[str], genes: Sequence[str] | Mapping[str, int]) -> list[np.ndarray]:
    """Per condition, the indices in ``genes`` (a list, or a gene → index mapping) of its perturbed genes
    that are measured: the entries that metrics "off the perturbed genes" leave out."""
    gidx = genes if isinstance(genes, Mapping) else {g: i for i, g in enumerate(genes)}
    return [np.array([gidx[g] for g in parse_condition(c) if g in gidx], dtype=np.int64) for c in conditions]


def keep_mask(shape: tuple[int, int], exclude: Sequence[Sequence[int]] | None = None, *,
              row: str = "condition") -> np.ndarray:
    """``[C, G]`` boolean mask, True except at ``[c, exclude[c]]`` (one index list per row; ``row``
    names a row in the error)."""
    keep = np.ones(shape, dtype=bool)
    if exclude is not None:
        if len(exclude) != shape[0]:
            raise DataValidationError(f"{len(exclude)} exclusion lists for {shape[0]} {row}s; give one per {row} "
                                      f"(one list of gene indices per {row}).")
        for i, ex in enumerate(exclude):
            keep[i, np.asarray(ex, dtype=np.int64)] = False
    return keep


def _masked_mean(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    w = mask.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(mask, v, 0.0)).sum(axis=1) / w.sum(axis=1)


def _row_key(v: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(v, dtype=np.float64).tobytes()).hexdigest()


# -- context ---------------------------------------------------------------------------------------
@dataclass
class MetricContext:
    """What the metrics need besides prediction and reference, for one set of conditions.

    Build it with :meth:`from_data`; :meth:`for_reference` gives the same context in another
    reference space (the simulator's truth).

    Attributes
    ----------
    conditions
        The evaluated conditions, in row order.
    control
        ``[G]`` the reference's control mean ``c_r``.
    de_idx
        ``[C, 20]`` gene indices of each condition's top-20 DE genes (``-1`` pads a shorter list).
    expressed_idx
        Indices of the 1,000 most highly expressed genes (observed control mean).
    perturbed_mean
        ``[G]`` ``μ``, the mean of the training perturbations' means in the reference space.
    exclude_idx
        Per condition, the indices of its perturbed genes (left out of the discrimination score).
    gi_singles
        Row → ``(δA, δB)``: the reference-space single deltas of each double whose two singles are
        in the training set (the doubles that get ``gi_label_match``).
    measured_singles
        Row → ``(δA, δB)``: the same doubles' singles as *measured* (observed space), whatever the
        reference: what a model could add up, so a prediction's non-additive part is taken against them
        (``nonadditive_corr``). Equal to ``gi_singles`` in the observed reference.
    gi_genes
        Genes the interaction fit uses (default ``expressed_idx``, Norman et al.'s highly expressed
        genes).
    gi_thresholds
        Label thresholds (:class:`~priorgnn.interactions.GIThresholds`).
    reference
        A name for the reference space (``'observed'``, ``'truth'``).
    """

    conditions: list[str]
    control: np.ndarray
    de_idx: np.ndarray
    expressed_idx: np.ndarray
    perturbed_mean: np.ndarray | None = None
    exclude_idx: list[np.ndarray] = field(default_factory=list)
    gi_singles: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    gi_genes: np.ndarray | None = None
    measured_singles: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
    gi_thresholds: GIThresholds = field(default_factory=GIThresholds)
    reference: str = "observed"
    _gi_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.control = np.asarray(self.control, dtype=np.float64)
        self.de_idx = np.atleast_2d(np.asarray(self.de_idx, dtype=np.int64))
        if self.de_idx.shape[0] != len(self.conditions):
            raise DataValidationError(
                f"de_idx has {self.de_idx.shape[0]} rows for {len(self.conditions)} conditions."
            )
        if not self.exclude_idx:
            self.exclude_idx = [np.zeros(0, dtype=np.int64) for _ in self.conditions]
        if self.gi_genes is None:
            self.gi_genes = self.expressed_idx

    @property
    def n_genes(self) -> int:
        return self.control.size

    @classmethod
    def from_data(
        cls,
        data: PerturbationData,
        split: Split | None,
        conditions: Sequence[str],
        *,
        reference_means: Callable[[list[str]], np.ndarray] | None = None,
        reference: str = "observed",
        gi_thresholds: GIThresholds | None = None,
    ) -> MetricContext:
        """The context of ``conditions`` of ``data`` under ``split``.

        Parameters
        ----------
        data
            The data set; DE genes, highly expressed genes and the perturbed genes come from it.
        split
            Its split; ``μ`` uses ``split.train`` and the interaction label the training singles.
            ``None`` leaves out ``μ`` and the interaction label.
        conditions
            The evaluated conditions (each must be in the data: DE genes are measured).
        reference_means
            ``f(conditions) -> [n, G]`` the reference mean expression; the observed pseudobulk
            means by default. Pass the simulator's ``truth`` for the truth reference.
        """
        s = data.summaries
        conditions = list(conditions)
        means_of = reference_means or (lambda conds: np.stack([s.mean(c) for c in conds]).astype(np.float64))
        control = np.asarray(means_of([CTRL]), dtype=np.float64)[0]
        if control.shape != (data.n_genes,):
            raise DataValidationError(
                f"the reference has {control.size} genes, the data {data.n_genes}; they must share genes."
            )
        de = np.full((len(conditions), N_DE), -1, dtype=np.int64)
        for i, c in enumerate(conditions):
            if c == CTRL:
                raise DataValidationError("'ctrl' cannot be evaluated; pass perturbed conditions only.")
            top = s.top_de(c, N_DE)
            de[i, : top.size] = top
        expressed = highly_expressed_genes(s.control_mean, N_EXPRESSED)
        exclude = perturbed_gene_idx(conditions, data.gene_index)
        perturbed_mean = None
        gi_singles: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if split is not None:
            train_perts = [c for c in split.train if c != CTRL]
            if train_perts:
                perturbed_mean = np.asarray(means_of(train_perts), dtype=np.float64).mean(axis=0)
            train = set(split.train)
            rows, needed = [], set()
            for i, c in enumerate(conditions):
                g = parse_condition(c)
                singles = [make_condition([x]) for x in g]
                if len(g) == 2 and all(x in train for x in singles):
                    rows.append(i)
                    needed.update(singles)
            if rows:
                needed_list = sorted(needed)
                sd = np.asarray(means_of(needed_list), dtype=np.float64) - control[None, :]
                by = dict(zip(needed_list, sd, strict=True))
                for i in rows:
                    a, b = (make_condition([x]) for x in parse_condition(conditions[i]))
                    gi_singles[i] = (by[a], by[b])
        return cls(conditions=conditions, control=control, de_idx=de, expressed_idx=expressed,
                   perturbed_mean=perturbed_mean, exclude_idx=exclude, gi_singles=gi_singles,
                   gi_thresholds=gi_thresholds or GIThresholds(), reference=reference,
                   measured_singles=dict(gi_singles))

    def for_reference(self, reference_means: Callable[[list[str]], np.ndarray], split: Split | None,
                      reference: str) -> MetricContext:
        """The same conditions, DE genes and gene sets, with control, ``μ`` and singles taken from
        another reference (e.g. ``simulation.truth``)."""
        control = np.asarray(reference_means([CTRL]), dtype=np.float64)[0]
        perturbed_mean = None
        if split is not None:
            train_perts = [c for c in split.train if c != CTRL]
            if train_perts:
                perturbed_mean = np.asarray(reference_means(train_perts), dtype=np.float64).mean(axis=0)
        gi_singles = {}
        if self.gi_singles:
            needed = sorted({make_condition([g]) for i in self.gi_singles
                             for g in parse_condition(self.conditions[i])})
            sd = np.asarray(reference_means(needed), dtype=np.float64) - control[None, :]
            by = dict(zip(needed, sd, strict=True))
            for i in self.gi_singles:
                a, b = (make_condition([x]) for x in parse_condition(self.conditions[i]))
                gi_singles[i] = (by[a], by[b])
        return MetricContext(conditions=list(self.conditions), control=control, de_idx=self.de_idx,
                             expressed_idx=self.expressed_idx, perturbed_mean=perturbed_mean,
                             exclude_idx=self.exclude_idx, gi_singles=gi_singles, gi_genes=self.gi_genes,
                             gi_thresholds=self.gi_thresholds, reference=reference,
                             measured_singles=self.measured_singles)

    def subset(self, rows: Sequence[int]) -> MetricContext:
        """The context of a subset of its conditions (rows in the given order)."""
        rows = [int(r) for r in rows]
        new_of = {old: new for new, old in enumerate(rows)}
        return MetricContext(
            conditions=[self.conditions[r] for r in rows], control=self.control,
            de_idx=self.de_idx[rows], expressed_idx=self.expressed_idx,
            perturbed_mean=self.perturbed_mean, exclude_idx=[self.exclude_idx[r] for r in rows],
            gi_singles={new_of[r]: v for r, v in self.gi_singles.items() if r in new_of},
            gi_genes=self.gi_genes, gi_thresholds=self.gi_thresholds, reference=self.reference,
            measured_singles=None if self.measured_singles is None else
            {new_of[r]: v for r, v in self.measured_singles.items() if r in new_of},
        )

    def gi_reference_label(self, row: int, ref_delta: np.ndarray) -> str:
        """The interaction label of the reference double of ``row`` (cached)."""
        key = (row, _row_key(ref_delta))
        if key not in self._gi_cache:
            a, b = self.gi_singles[row]
            self._gi_cache[key] = interaction_label(
                interaction_scores(a, b, ref_delta, genes=self.gi_genes), self.gi_thresholds)
        return self._gi_cache[key]


# -- batch -----------------------------------------------------------------------------------------
@dataclass
class MetricBatch:
    """Predictions and references of all conditions of a context, as metric functions see them."""

    pred: np.ndarray  # [C, G] predicted mean expression
    ref: np.ndarray  # [C, G] reference mean expression
    pred_delta: np.ndarray  # [C, G]
    ref_delta: np.ndarray  # [C, G]
    ctx: MetricContext
    extras: dict[str, list] = field(default_factory=dict)

    @cached_property
    def de_mask(self) -> np.ndarray:
        return self.ctx.de_idx >= 0

    def gather_de(self, x: np.ndarray) -> np.ndarray:
        return np.take_along_axis(x, np.maximum(self.ctx.de_idx, 0), axis=1)


# -- the metrics -----------------------------------------------------------------------------------
@register_metric(
    "mse", BestValue.ZERO, label="MSE",
    description="mean over all genes of (p - r)^2",
    source="GEARS (gears.inference.compute_metrics 'mse'); cell-eval 'mse'",
)
def mse(b: MetricBatch) -> np.ndarray:
    """Mean squared error of mean expression over all genes: ``mean_g (p_g − r_g)²``.

    GEARS (Roohani et al. 2024; ``gears.inference.compute_metrics``, ``mse`` =
    ``sklearn.metrics.mean_squared_error`` of the predicted and true mean expression) and cell-eval
    (``cell_eval.metrics.mse`` on pseudobulks) define it identically.
    """
    return np.mean((b.pred - b.ref) ** 2, axis=1)


@register_metric(
    "mse_top20_de", BestValue.ZERO, label="MSE (top-20 DE)", needs=("de",),
    description="mean over the top-20 DE genes of (p - r)^2",
    source="GEARS (gears.inference.compute_metrics 'mse_de')",
)
def mse_top20_de(b: MetricBatch) -> np.ndarray:
    """Mean squared error of mean expression over the condition's top-20 DE genes:
    ``mean_{g∈DE} (p_g − r_g)²``.

    GEARS's ``mse_de`` (``gears.inference.compute_metrics``), with GEARS's DE genes (the first 20
    of ``rank_genes_groups_cov_all``: t-test against control, ranked by ``|t|``).
    """
    d = (b.gather_de(b.pred) - b.gather_de(b.ref)) ** 2
    return _masked_mean(d, b.de_mask)


@register_metric(
    "pearson_delta", BestValue.ONE, label="Pearson Δ",
    description="Pearson correlation over all genes of p - c_p and r - c_r",
    source="GEARS (gears.inference.deeper_analysis 'pearson_delta'); cell-eval 'pearson_delta'",
)
def pearson_delta(b: MetricBatch) -> np.ndarray:
    """Pearson correlation over all genes of the predicted and reference changes from control,
    ``corr(δp, δr)``.

    GEARS's ``pearson_delta`` (``gears.inference.deeper_analysis``; both changes relative to the
    observed control mean) and cell-eval's ``pearson_delta`` (each side relative to its own control
    mean; here ``c_p`` is the model's control mean, which is the observed one for every model of the
    project). Undefined correlations are 0, as in GEARS.
    """
    return rowwise_pearson(b.pred_delta, b.ref_delta)


@register_metric(
    "pearson_delta_excl_target", BestValue.ONE, label="Pearson Δ (targets excluded)",
    description="Pearson correlation over all genes except the condition's perturbed genes of p - c_p and r - c_r",
    source="this project: pearson_delta without the targets' own change", scope="excl_target",
)
def pearson_delta_excl_target(b: MetricBatch) -> np.ndarray:
    """``pearson_delta`` with each condition's perturbed genes left out. Under CRISPRa/CRISPRi the
    target's own change is large and known in advance from the perturbation type alone; leaving it
    out measures how well the downstream response is predicted."""
    mask = np.ones(b.pred_delta.shape, dtype=bool)
    for i, ex in enumerate(b.ctx.exclude_idx):
        mask[i, ex] = False
    return rowwise_pearson(b.pred_delta, b.ref_delta, mask)


def _target_pairs(b: MetricBatch) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, genes)``: one pair per perturbed gene of each condition that is among the data's
    genes, indexing the targets' own changes."""
    rows = [np.full(len(ex), i, dtype=np.int64) for i, ex in enumerate(b.ctx.exclude_idx)]
    genes = [np.asarray(ex, dtype=np.int64) for ex in b.ctx.exclude_idx]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(genes)


def _per_condition_mean(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``values`` grouped by ``rows`` into ``n`` conditions; NaN for a condition with none."""
    total = np.bincount(rows, weights=values, minlength=n).astype(np.float64)
    count = np.bincount(rows, minlength=n)
    out = np.full(n, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


@register_metric(
    "target_sign_match", BestValue.ONE, label="Target's own change: sign right",
    description="fraction of the condition's perturbed genes with sign(p_t - c_p) == sign(r_t - c_r); "
                "NaN when no perturbed gene is among the data's genes",
    source="this project: the target's own change, reported apart from pearson_delta_excl_target",
    scope="target",
)
def target_sign_match(b: MetricBatch) -> np.ndarray:
    """Whether the perturbed gene's own change has the right direction:
    ``mean_{t∈targets} [sign(δp_t) = sign(δr_t)]``.

    Under CRISPRa or CRISPRi the target's own change is large and its direction is known from the
    perturbation type alone, so it is scored on its own rather than inside a correlation over all
    genes (see ``pearson_delta_excl_target``). NaN where the data do not measure the target (e.g. the
    real Norman subset's 500 genes do not include the perturbed genes).
    """
    rows, genes = _target_pairs(b)
    n = b.pred_delta.shape[0]
    eq = (np.sign(b.pred_delta[rows, genes]) == np.sign(b.ref_delta[rows, genes])).astype(np.float64)
    return _per_condition_mean(eq, rows, n)


@register_metric(
    "target_abs_error", BestValue.ZERO, label="Target's own change: |error|",
    description="mean over the condition's perturbed genes of |(p_t - c_p) - (r_t - c_r)|; "
                "NaN when no perturbed gene is among the data's genes",
    source="this project: the target's own change, reported apart from pearson_delta_excl_target",
    scope="target",
)
def target_abs_error(b: MetricBatch) -> np.ndarray:
    """The size error of the perturbed gene's own change: ``mean_{t∈targets} |δp_t − δr_t|``
    (log-normalised expression units). NaN where the data do not measure the target."""
    rows, genes = _target_pairs(b)
    n = b.pred_delta.shape[0]
    err = np.abs(b.pred_delta[rows, genes] - b.ref_delta[rows, genes])
    return _per_condition_mean(err, rows, n)


@register_metric(
    "pearson_delta_top20_de", BestValue.ONE, label="Pearson Δ (top-20 DE)", needs=("de",),
    description="Pearson correlation over the top-20 DE genes of p - c_p and r - c_r",
    source="GEARS (gears.inference.deeper_analysis 'pearson_delta_top20_de')",
)
def pearson_delta_top20_de(b: MetricBatch) -> np.ndarray:
    """Pearson correlation over the top-20 DE genes of the predicted and reference changes from
    control, ``corr(δp[DE], δr[DE])``: GEARS's ``pearson_delta_top20_de`` (``deeper_analysis``;
    also ``pearson_delta_de``). Undefined correlations are 0, as in GEARS."""
    return rowwise_pearson(b.gather_de(b.pred_delta), b.gather_de(b.ref_delta), b.de_mask)


@register_metric(
    "direction_top20_de", BestValue.ONE, label="Direction (top-20 DE)", needs=("de",),
    description="fraction of the top-20 DE genes with sign(p - c_p) == sign(r - c_r)",
    source="GEARS (gears.inference.deeper_analysis 'frac_correct_direction_20')",
)
def direction_top20_de(b: MetricBatch) -> np.ndarray:
    """Fraction of the top-20 DE genes whose direction of change is right:
    ``mean_{g∈DE} [sign(δp_g) = sign(δr_g)]``.

    GEARS's ``frac_correct_direction_20`` (``deeper_analysis``): ``np.sign`` of both changes
    compared exactly, so a predicted zero change counts as right only where the reference change is
    exactly zero too.
    """
    eq = np.sign(b.gather_de(b.pred_delta)) == np.sign(b.gather_de(b.ref_delta))
    return _masked_mean(eq.astype(np.float64), b.de_mask)


@register_metric(
    "l2_top1000_expressed", BestValue.ZERO, label="L2 (top-1000 expressed)",
    description="Euclidean distance of p and r over the 1,000 most highly expressed genes",
    source="Ahlmann-Eltze, Huber & Anders (Nature Methods 2025)",
)
def l2_top1000_expressed(b: MetricBatch) -> np.ndarray:
    """Euclidean (L2) distance between predicted and reference expression over the 1,000 most
    highly expressed genes, ``sqrt(Σ_{g∈HE} (p_g − r_g)²)`` (not squared, not averaged).

    Ahlmann-Eltze, Huber & Anders (Nature Methods 2025) evaluate "the L2 distance between the
    predicted and observed expression of the 1,000 most highly expressed genes". "Most highly
    expressed" is taken here as the highest mean log-normalised expression in the observed control
    cells (ties by gene order); with fewer than 1,000 genes all genes are used. Since
    ``p − r = δp − δr`` when ``c_p = c_r``, it is equally the distance of the predicted and
    observed changes.
    """
    idx = b.ctx.expressed_idx
    return np.sqrt(np.sum((b.pred[:, idx] - b.ref[:, idx]) ** 2, axis=1))


@register_metric(
    "pearson_delta_vs_perturbed_mean", BestValue.ONE, label="Pearson Δ vs perturbed mean",
    needs=("perturbed_mean",),
    description="Pearson correlation over all genes of p - mu and r - mu, mu = mean of training perturbations",
    source="Systema (Viñas Torné et al., 2025)",
)
def pearson_delta_vs_perturbed_mean(b: MetricBatch) -> np.ndarray:
    """Pearson correlation over all genes of prediction and reference both centred on the mean of
    the training perturbations, ``corr(p − μ, r − μ)``.

    Systema (Viñas Torné et al., Nature Biotechnology 2025) centres on the perturbed centroid rather
    than on control, which removes the systematic variation shared by all perturbations (a model
    that predicts only the average perturbation scores ~0). ``μ`` is the mean of the pseudobulk
    means of the training conditions other than control, each condition weighted equally (so large
    conditions do not dominate), in the reference's space. NaN when there is no split.
    """
    mu = b.ctx.perturbed_mean
    if mu is None:
        return np.full(b.pred.shape[0], np.nan)
    return rowwise_pearson(b.pred - mu[None, :], b.ref - mu[None, :])


@register_metric(
    "discrimination_score_l1", BestValue.ONE, label="Discrimination (L1)", needs=("set",),
    description="1 - rank/N of the own condition among all evaluated conditions' reference changes, by L1 distance",
    source="cell-eval (discrimination_score, metric='l1')", scope="excl_target",
)
def discrimination_score_l1(b: MetricBatch) -> np.ndarray:
    """Is the prediction closest to its own condition? cell-eval's ``discrimination_score_l1``.

    For condition ``i``, the L1 distances ``d_ij = Σ_g |δp_ig − δr_jg|`` from its predicted change
    to the reference changes of all ``N`` evaluated conditions ``j`` are sorted; with ``rank`` the
    number of conditions closer than its own (0 = own is closest), the score is ``1 − rank / N``:
    1 is best, ``1/N`` worst (cell-eval, ``cell_eval.metrics.discrimination_score``).

    As in cell-eval the perturbed gene is excluded from the distance (cell-eval drops the gene named
    like the perturbation); here both genes of a double are excluded, since GEARS-style condition
    names never equal a gene name. Exact ties (distances equal to the own one) count half, so that a
    model whose predictions are identical for many conditions gains nothing from tie order (cell-eval
    resolves ties by ``np.argsort`` order). The score depends on the set of conditions evaluated
    together: all test conditions of a seed.
    """
    P, R = b.pred_delta, b.ref_delta
    n = P.shape[0]
    D = cdist(P, R, metric="cityblock")
    for i, ex in enumerate(b.ctx.exclude_idx):
        if ex.size:
            D[i] -= np.abs(P[i, ex][None, :] - R[:, ex]).sum(axis=1)
    own = np.diag(D)[:, None]
    closer = (D < own).sum(axis=1)
    ties = (D == own).sum(axis=1) - 1
    rank = closer + 0.5 * ties
    return 1.0 - rank / n


@register_metric(
    "overlap_top20_delta", BestValue.ONE, label="Overlap (top-20 |Δ|)",
    description="fraction of the 20 genes with largest |r - c_r| among the 20 with largest |p - c_p|",
    source="cell-eval (overlap_at_k, k=20) on pseudobulk changes",
)
def overlap_top20_delta(b: MetricBatch) -> np.ndarray:
    """Overlap of the top-20 genes by absolute change: ``|top20(|δp|) ∩ top20(|δr|)| / 20``.

    cell-eval's ``overlap_at_20`` (``DEComparison.compute_overlap``, ``metric='overlap'``, k=20)
    compares the top-k genes of predicted and real DE results, each sorted by absolute log2 fold
    change after an FDR < 0.05 filter. A model here predicts a pseudobulk, not cells, so no DE test
    of the prediction exists; both sides are ranked by their absolute change from control on the
    log-normalised scale instead, with no FDR filter. That is why the name differs from
    cell-eval's: the cross-check test passes cell-eval DE tables whose fold changes are these
    changes and whose FDRs are all significant, and the two agree exactly.

    Ties at the 20th place (e.g. ``no_change`` predicts the same zero change for every gene) are
    broken at random in expectation: a tied gene counts with its probability of being among the top
    20, so the score is the expected overlap, ``Σ_g P(g ∈ top20(|δp|)) · P(g ∈ top20(|δr|)) / 20``,
    and gene order earns nothing. Without ties this is the plain overlap.
    """
    k = min(N_DE, b.pred.shape[1])
    return np.sum(_top_k_inclusion(b.pred_delta, k) * _top_k_inclusion(b.ref_delta, k), axis=1) / k


def _top_k_inclusion(x: np.ndarray, k: int) -> np.ndarray:
    """Per row, each entry's probability of being among the ``k`` largest ``|x|`` when ties at the
    ``k``-th value are broken uniformly at random."""
    a = np.abs(x)
    kth = -np.partition(-a, k - 1, axis=1)[:, k - 1 : k]
    above = a > kth
    tie = a == kth
    slots = k - above.sum(axis=1, keepdims=True)
    return above + tie * (slots / np.maximum(tie.sum(axis=1, keepdims=True), 1))


@register_metric(
    "gi_label_match", BestValue.ONE, label="GI label match", needs=("gi",),
    description="1 if the interaction label of the predicted double equals the reference's "
                "(doubles with both singles in training)",
    source="Norman et al. (2019) scores, GEARS thresholds; priorgnn.interactions",
)
def gi_label_match(b: MetricBatch) -> np.ndarray:
    """Whether the predicted genetic-interaction label of a double is the reference's.

    Defined for doubles ``A+B`` whose singles ``A+ctrl`` and ``B+ctrl`` are both in the training
    set (NaN otherwise). Both labels use the *same* single changes, those of the reference (the
    measured singles for the observed reference; the true singles for the truth reference), so the
    only difference is the double: the predicted ``δp_AB`` against the reference ``δr_AB``. Scores
    (Norman et al. 2019, Theil–Sen fit ``δAB ≈ c1·δA + c2·δB``) are computed over the 1,000 most
    highly expressed genes and labelled with :func:`priorgnn.interactions.interaction_label`
    (GEARS's thresholds; see :class:`~priorgnn.interactions.GIThresholds`). 1 for a match, 0
    otherwise; NaN also where the reference label is ``undetermined``. The labels themselves are
    returned in the per-condition table as ``gi_label_pred`` / ``gi_label_ref``.

    On noisy data the observed label is itself uncertain: measurement noise lowers ``corr_fit``, so
    many observed doubles look "neomorphic", and a model with an unrelated prediction can match them.
    Read this metric next to its split-half ceiling and, on simulated data, against the truth.
    """
    n = b.pred.shape[0]
    out = np.full(n, np.nan)
    pred_lab: list = [None] * n
    ref_lab: list = [None] * n
    for i, (sa, sb) in b.ctx.gi_singles.items():
        r = b.ctx.gi_reference_label(i, b.ref_delta[i])
        p = interaction_label(interaction_scores(sa, sb, b.pred_delta[i], genes=b.ctx.gi_genes),
                              b.ctx.gi_thresholds)
        pred_lab[i], ref_lab[i] = p, r
        if r != "undetermined":
            out[i] = float(p == r)
    b.extras["gi_label_pred"] = pred_lab
    b.extras["gi_label_ref"] = ref_lab
    return out


#: The metrics computed by default, in report order.
DEFAULT_METRICS = (
    "mse",
    "mse_top20_de",
    "pearson_delta",
    "pearson_delta_excl_target",
    "target_sign_match",
    "target_abs_error",
    "pearson_delta_top20_de",
    "direction_top20_de",
    "l2_top1000_expressed",
    "pearson_delta_vs_perturbed_mean",
    "discrimination_score_l1",
    "overlap_top20_delta",
    "gi_label_match",
    "nonadditive_corr",
)


def compute_condition_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    ctx: MetricContext,
    *,
    pred_control: np.ndarray | None = None,
    pred_delta: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All requested metrics for every condition of ``ctx``.

    Parameters
    ----------
    pred
        ``[C, G]`` predicted mean expression, rows in ``ctx.conditions`` order.
    ref
        ``[C, G]`` reference mean expression (observed pseudobulk, half of the cells, or truth).
    ctx
        The :class:`MetricContext` (reference control, DE genes, ...).
    pred_control
        ``[G]`` the control mean the prediction is relative to; ``ctx.control`` by default.
    pred_delta
        ``[C, G]`` the predicted change; ``pred - pred_control`` by default. Pass the model's own
        delta (``layers['delta']``) to keep an exact zero change exact.
    metrics
        Metric names (default :data:`DEFAULT_METRICS`).

    Returns
    -------
    DataFrame indexed by condition with one column per metric (and ``gi_label_pred``,
    ``gi_label_ref`` when ``gi_label_match`` is computed).
    """
    names = list(metrics) if metrics is not None else list(DEFAULT_METRICS)
    specs = [get_metric(m) for m in names]
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    C = len(ctx.conditions)
    if pred.shape != ref.shape or pred.shape != (C, ctx.n_genes):
        raise DataValidationError(
            f"predictions {pred.shape} and references {ref.shape} must both be "
            f"[{C} conditions, {ctx.n_genes} genes] in the context's order."
        )
    pc = ctx.control if pred_control is None else np.asarray(pred_control, dtype=np.float64)
    pd_ = pred - pc[None, :] if pred_delta is None else np.asarray(pred_delta, dtype=np.float64)
    batch = MetricBatch(pred=pred, ref=ref, pred_delta=pd_, ref_delta=ref - ctx.control[None, :], ctx=ctx)
    out = pd.DataFrame(index=pd.Index(ctx.conditions, name="condition"))
    for spec in specs:
        if "gi" in spec.needs and not ctx.gi_singles:
            out[spec.name] = np.nan
            continue
        with np.errstate(invalid="ignore"):
            out[spec.name] = np.asarray(spec.func(batch), dtype=np.float64)
    for key, values in batch.extras.items():
        out[key] = values
    return out


def _check_registry() -> None:
    # the interaction metrics (a default one among them) register in their own module, which imports
    # this one: import it here, at the end, once everything it needs is defined
    from priorgnn.metrics import interactions  # noqa: F401

    missing = [m for m in DEFAULT_METRICS if m not in METRICS]
    if missing:  # pragma: no cover - a programming error
        raise RuntimeError(f"default metrics not registered: {missing}")


_check_registry()
