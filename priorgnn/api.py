"""The Python API: a few verbs for a notebook, as in scanpy, scvi-tools or GEARS.

>>> import priorgnn
>>> sim = priorgnn.simulate("tiny", seed=0, out="runs/sim-tiny")           # doctest: +SKIP
>>> split = priorgnn.make_split(sim.data, "simulation", seed=1)            # doctest: +SKIP
>>> graphs = priorgnn.build_priors(sim, split)                             # doctest: +SKIP
>>> model = priorgnn.fit("priorgnn", sim.data, split, graphs, train={"max_epochs": 2})  # doctest: +SKIP
>>> model.predict(["G0+G1"])                                               # doctest: +SKIP
>>> priorgnn.score(model, sim.data, split, simulation=sim)                 # doctest: +SKIP

Each verb is a thin wrapper over the functions that ``train.py`` and ``evaluate.py`` call
(:mod:`priorgnn.pipeline`, the experiment layer :mod:`priorgnn.experiment`), so a notebook and the command line give the same
numbers for the same settings. Heavy modules (torch, the models) are imported on first use, so
``import priorgnn`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from priorgnn.errors import ConfigError

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

    from knowledge.graph import GeneGraph
    from priorgnn.data.dataset import PerturbationData
    from priorgnn.data.splits import Split
    from priorgnn.models.base import PerturbationModel, PriorGraphs
    from priorgnn.simulate import Simulation
    from priorgnn.training.config import TrainConfig

    Predictions = Union[PerturbationModel, ad.AnnData, tuple]

__all__ = ["read", "simulate", "make_split", "build_priors", "fit", "score"]


def _data_and_simulation(data: PerturbationData | Simulation) -> tuple[PerturbationData, Simulation | None]:
    """``(data, simulation)`` from either a data set or a simulation (whose ``data`` it holds)."""
    from priorgnn.simulate import Simulation

    if isinstance(data, Simulation):
        return data.data, data
    return data, None


def read(path_or_name: str | os.PathLike, **kwargs: Any) -> PerturbationData:
    """Read and validate a perturbation data set.

    Parameters
    ----------
    path_or_name
        An ``.h5ad`` file (GEARS or scPerturb style) or the name of a data set downloaded with
        ``python -m priorgnn.data download NAME``; nothing is downloaded here.
    **kwargs
        Loading options of :func:`priorgnn.data.io.from_anndata` (``style``, ``condition_column``,
        ``control_label``, ``select``, ...).

    Returns
    -------
    The validated :class:`~priorgnn.data.dataset.PerturbationData`.
    """
    from priorgnn.data.io import load_dataset

    return load_dataset(str(path_or_name), **kwargs)


def simulate(preset: str = "demo", seed: int = 0, out: str | os.PathLike | None = None,
             **options: Any) -> Simulation:
    """Simulate a perturbation screen with known causal truth (:func:`priorgnn.simulate.simulate`).

    Parameters
    ----------
    preset
        ``tiny``, ``demo`` or ``norman`` (see ``python -m priorgnn.simulate --help``).
    seed
        Master seed.
    out
        Folder to write the simulation to (a folder already holding the same simulation is read
        back instead); ``None`` keeps it in memory.
    **options
        Simulator settings and GO fidelity (``go_recall``, ``go_false_rate``, ...); ``gene_names="real_go"``
        with ``go_dir`` names the genes after real human genes, with the real GO files as knowledge.

    Returns
    -------
    The :class:`~priorgnn.simulate.Simulation`: ``.data`` the cells, ``.truth(conditions)`` the
    noise-free expected expression, ``.obo_path`` / ``.gaf_path`` its GO-like annotations.
    """
    from priorgnn.simulate import simulate as _simulate

    return _simulate(preset, seed=seed, out=out, **options)


def make_split(data: PerturbationData | Simulation | Sequence[str], kind: str = "simulation", *,
               seed: int = 1, **options: Any) -> Split:
    """Split the conditions into train, validation and test (:func:`priorgnn.data.splits.make_split`).

    Parameters
    ----------
    data
        A data set, a simulation, or the list of its conditions.
    kind
        ``simulation`` (GEARS's subgroups of unseen genes and combinations), ``gears_simulation``
        (GEARS's own split, draw for draw), ``random`` or ``combo``.
    seed
        Seed of the split.
    **options
        Fractions of :func:`~priorgnn.data.splits.make_split`.
    """
    from priorgnn.data.splits import make_split as _make_split

    if not isinstance(data, Sequence) or isinstance(data, str):
        data = _data_and_simulation(data)[0].conditions
    return _make_split(list(data), kind, seed=seed, **options)


def build_priors(data: PerturbationData | Simulation, split: Split, *, model: str = "priorgnn",
                 go: str | os.PathLike | GeneGraph | None = "auto",
                 coexpression: str | os.PathLike | GeneGraph | None = "auto",
                 progress: bool = False, **prior_options: Any) -> PriorGraphs:
    """The knowledge graphs ``model`` reads, as ``train.py`` builds them (:func:`priorgnn.pipeline.build_priors`).

    Parameters
    ----------
    data
        The data set, or the simulation (whose GO-like annotations then give the GO graph).
    split
        The split; the co-expression graph is computed from its training cells only.
    model
        The registered model the graphs are for; a model that reads no prior gets none.
    go, coexpression
        ``"auto"`` (GO from the annotations, co-expression from the training cells), ``None`` or
        ``"none"`` (no such prior), a saved graph (``.npz``) or a :class:`~knowledge.graph.GeneGraph`.
    progress
        Show progress bars.
    **prior_options
        The other prior settings of a run config (``go_obo``, ``go_gaf``, ``go_k``, ``go_threshold``,
        ``go_degrade``, ``coexpression_k``, ...); real data need ``go_obo`` and ``go_gaf`` (or
        ``go_gene2go``) for ``go="auto"``.

    Returns
    -------
    The :class:`~priorgnn.models.base.PriorGraphs`; an absent prior is ``None``.
    """
    from knowledge.graph import GeneGraph
    from priorgnn.models.base import get_model_class
    from priorgnn.pipeline import RunConfig
    from priorgnn.pipeline import build_priors as _build_priors

    data, sim = _data_and_simulation(data)
    given = {}
    priors: dict[str, Any] = dict(prior_options)
    for name, value in (("go", go), ("coexpression", coexpression)):
        if isinstance(value, GeneGraph):
            given[name] = value
            priors[name] = "none"
        else:
            priors[name] = "none" if value is None else str(value)
    cls = get_model_class(model)
    own = any(k in priors for k in ("go_gaf", "go_gene2go", "go_tsv"))
    if ("go" in cls.uses_priors and priors["go"] == "auto" and not own and sim is not None
            and getattr(sim, "obo_path", None) is None):
        raise ConfigError("the simulation holds no GO-like annotation files (it was not written to a folder): "
                          "simulate with out=FOLDER, or pass go=None to fit without the GO prior.")
    cfg = RunConfig(model=model, priors=priors)
    graphs = _build_priors(cfg, data, split, sim, cls, progress=progress)
    for name, graph in given.items():
        if name in cls.uses_priors:
            setattr(graphs, name, graph)
    return graphs


def fit(model: str, data: PerturbationData | Simulation, split: Split, graphs: PriorGraphs | None = None, *,
        train: TrainConfig | Mapping[str, Any] | None = None, **options: Any) -> PerturbationModel:
    """Construct the registered model ``model`` with ``options`` and fit it on ``split``'s training conditions.

    Parameters
    ----------
    model
        A registered model name (``priorgnn``, ``transformer``, ``additive``, ``linear``, ...; see
        :func:`priorgnn.models.available_models`).
    data, split
        The data (or simulation) and the split.
    graphs
        From :func:`build_priors`; a prior branch whose graph is absent is turned off (as ``train.py``
        does), unless ``options`` set it.
    train
        Training options (:class:`~priorgnn.training.config.TrainConfig` or a dict of its fields:
        ``max_epochs``, ``batch_size``, ``lr``, ``seed``, ``run_dir``, ...); a dict turns the progress
        bar off unless it says otherwise. Models that are not trained by gradient ignore it.
    **options
        The model's hyperparameters (``python train.py --model NAME --help-model`` lists them).

    Returns
    -------
    The fitted model: ``model.predict(conditions)`` gives an AnnData of predicted mean expression
    (the change from control in ``layers['delta']``); ``model.save(folder)`` keeps it.
    """
    from priorgnn import experiment

    # an alias of the experiment layer; a notebook fit shows no progress bar unless train= asks for one
    return experiment.fit(model, data, split, graphs, train=train if train is not None else {}, **options)


def score(predictions: Predictions | Mapping[str, Predictions], data: PerturbationData | Simulation,
          split: Split, *, simulation: Simulation | None = None, conditions: Sequence[str] | None = None,
          metrics: Sequence[str] | None = None, seed: int = 0, ceiling: bool = False) -> pd.DataFrame:
    """Score predictions against the measured data (and, for a simulation, the noise-free truth).

    The notebook form of :func:`priorgnn.experiment.score` (over :func:`priorgnn.metrics.evaluate_seed`,
    the scorer of ``evaluate.py``), whose docstring describes the parameters; it returns the tidy
    table only: one row per model, reference, condition and subgroup, one column per metric.
    :func:`priorgnn.metrics.aggregate` summarises it with bootstrap intervals.
    """
    from priorgnn import experiment

    return experiment.score(predictions, data, split, simulation=simulation, conditions=conditions,
                            metrics=metrics, seed=seed, ceiling=ceiling)
