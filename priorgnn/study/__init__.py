"""The knowledge-bias study: explicit priors against prior-free models, with known causal truth.

``python evaluate.py study [--grid smoke|quick|full] [--out DIR]`` runs :func:`run_study`. On the
built-in simulator (whose noise-free truth and regulatory network are known) it fits a grid of models
and settings, scores every fit with the project's metrics (:func:`priorgnn.metrics.evaluate_seed`,
against the observed pseudobulk and against the noise-free truth, with the split-half noise ceiling),
and writes ``study.md`` (every conclusion generated from the measured numbers), CSV tables and PNG
figures.

The grid
    *Models* (:data:`MODELS`): PriorGNN with GO + co-expression, without GO, without co-expression,
    with the GO graph degraded (edge dropout 25/50/75 %, degree-preserving rewiring, permuted gene
    labels, a random graph), with a shared linear decoder instead of the gene-specific one; the
    prior-free transformer with and without masked-expression pretraining; ``linear``, ``linear_go``,
    ``go_knn``, ``additive``, ``mean``, ``no_change``.
    *Settings* (:class:`Setting`), each a point on one simulator axis: ``base`` (the ``demo``
    system, exact GO, all training conditions, interaction strength 1), GO annotation fidelity
    (recall ``f`` of the true annotations plus ``1 - f`` times as many false ones), the share of the
    training perturbations kept (data scaling), the strength of non-additive interactions (a new
    simulation per value), and the transformer's pretraining pool (``m`` times its own pretraining
    cells, the extra ones freshly drawn from the same system, unperturbed or under training
    perturbations only). Every model runs in ``base``; the axes run the models they concern. Beside
    them, the ``negative_control`` (no shared programs) and, in the full grid, ``real_go``: the base
    system with its genes named after real human genes and the real GO files as the prior
    (:mod:`priorgnn.simulate.realgo`; the files come from ``go_dir`` or ``$PRIORGNN_GO_DIR``).
Analyses
    Accuracy per subgroup with bootstrap CIs (:func:`priorgnn.metrics.aggregate`) and paired
    comparisons (:func:`priorgnn.metrics.paired_comparison`); curves along each axis; causal
    recovery (AUPRC of ``|predicted change of B when A is perturbed|`` for the true downstream
    targets of ``A`` in the simulator's network, held-out singles); genetic-interaction labels of the
    test doubles from predicted against true changes (:func:`priorgnn.interactions.score_interactions`);
    the latent space (Spearman correlation of pairwise cosine similarities of the learned
    perturbation / gene embeddings with GO Jaccard similarity and with true-effect similarity).

Every fit (a *cell*: setting × model × seed) writes its tables under ``OUT/cells/<setting>/`` as
soon as it finishes; a rerun skips cells whose tables exist, so an interrupted study loses at most
the cell it was fitting, and ``--report-only`` re-renders the report from the tables.

The package: :mod:`~priorgnn.study.grid` (what is fitted: models, settings, grids, metrics),
:mod:`~priorgnn.study.runner` (fitting and scoring the cells through :mod:`priorgnn.experiment`,
writing the report) and :mod:`~priorgnn.study.analysis` (numeric helpers, the cell tables on disk);
:mod:`priorgnn.report.study` only renders. The import graph has no cycle: the report imports ``grid``
and ``analysis`` (which import no report), the runner imports the report. The runner's names are
resolved here on first use (PEP 562), so importing the grid or the report does not load the runner and
its model stack; ``from priorgnn.study import run_study`` works as before.
"""

from __future__ import annotations

import importlib
from typing import Any

from priorgnn.study.analysis import average_precision, read_tables
from priorgnn.study.grid import (
    GO_DEGRADED,
    GRIDS,
    MODELS,
    NEGATIVE_CONTROL,
    POSITIVE_CONTROL,
    PRIMARY,
    REAL_GO_NOTE,
    STUDY_METRICS,
    SUBGROUPS,
    TARGET_METRICS,
    UNSEEN_METRIC,
    UNSEEN_SUBGROUPS,
    Grid,
    ModelSpec,
    Setting,
    grid_summary,
    headline_metric,
)

__all__ = [
    "MODELS",
    "GRIDS",
    "ModelSpec",
    "Setting",
    "Grid",
    "average_precision",
    "run_study",
    "render_study",
]

#: Names of :mod:`priorgnn.study.runner`, loaded on first use.
_RUNNER = ("run_study", "run_cell", "render_study", "_Context", "_causal_rows", "_gi_rows", "_latent_rows")


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        return getattr(importlib.import_module("priorgnn.study.runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
