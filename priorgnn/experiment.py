"""The experiment layer: fit a model, predict conditions, score predictions, evaluate runs.

Everything that fits, predicts and scores goes through here: ``train.py`` (:func:`priorgnn.pipeline.train_run`),
``evaluate.py`` (:func:`evaluate_runs`), the study (:func:`priorgnn.study.run_cell`), the benchmarks and
the Python API (:func:`priorgnn.fit`, :func:`priorgnn.score` are aliases of :func:`fit` and :func:`score`).
:mod:`priorgnn.metrics` only scores arrays; it imports no model and no run.

:func:`fit`
    A registered model (by name, with its options) or an unfitted model instance, fitted on a split.
:func:`predict`
    A fitted model's predicted changes ``[C, G]`` and its control mean, in batches.
:func:`score`
    Predictions (fitted models, prediction AnnDatas or ``(delta, control)`` arrays) → per-condition table
    (:func:`priorgnn.metrics.evaluate_seed`).
:func:`evaluate_runs`
    Run directories and baselines fitted on the same data and splits →
    :class:`~priorgnn.metrics.EvaluationResult` (what ``evaluate.py`` reports).

Saved predictions
-----------------
Training writes the test set's predictions to ``predictions/test.h5ad`` and records in ``run.json``
(``"predictions"``) the file's SHA-256 together with the SHA-256 of the model folder and of
``split.json`` it was predicted from. :func:`evaluate_runs` scores that file when all three checksums
still match and it holds exactly the split's test conditions and the data's genes; otherwise (a run
written before this record, a model or split replaced, a file edited) it predicts the test set again from
the saved model. Either way the model is loaded, for its per-condition notes (:func:`prediction_notes`)
and its control mean.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd

from priorgnn.data.conditions import CTRL
from priorgnn.errors import CheckpointError, ConfigError, DataValidationError
from priorgnn.interactions import GIThresholds
from priorgnn.io import sha256_file
from priorgnn.metrics.core import DEFAULT_METRICS
from priorgnn.metrics.evaluation import (
    EvaluationResult,
    SeedExamples,
    _spec_info,
    _subgroup_map,
    evaluate_seed,
    model_order,
    prediction_diagnostics,
)
from priorgnn.metrics.registry import get_metric
from priorgnn.metrics.stats import aggregate, paired_comparison

if TYPE_CHECKING:
    import anndata as ad

    from priorgnn.data.dataset import PerturbationData
    from priorgnn.data.splits import Split
    from priorgnn.models.base import PerturbationModel, PriorGraphs
    from priorgnn.runs import Run
    from priorgnn.simulate import Simulation
    from priorgnn.training.config import TrainConfig

    Predictions = Union[PerturbationModel, ad.AnnData, tuple[np.ndarray, np.ndarray]]

log = logging.getLogger(__name__)

__all__ = [
    "fit",
    "predict",
    "score",
    "evaluate_runs",
    "evaluate_model",
    "predict_conditions",
    "prediction_notes",
    "merge_notes",
    "prediction_record",
    "NOTE_KEYS",
]


def _data_and_simulation(data: PerturbationData | Simulation) -> tuple[PerturbationData, Simulation | None]:
    """``(data, simulation)`` from either a data set or a simulation (whose ``data`` it holds)."""
    from priorgnn.simulate import Simulation

    if isinstance(data, Simulation):
        return data.data, data
    return data, None


def _train_config(train: TrainConfig | Mapping[str, Any]) -> TrainConfig:
    from priorgnn.training.config import TrainConfig

    if isinstance(train, TrainConfig):
        return train
    options = {"progress_bar": False, **dict(train)}
    try:
        return TrainConfig(**options)
    except TypeError:
        from dataclasses import fields

        known = sorted(f.name for f in fields(TrainConfig))
        unknown = sorted(set(options) - set(known))
        raise ConfigError(f"unknown training option(s) {unknown}; known: {known}.") from None


# -- fit / predict / score ----------------------------------------------------------------------------
def fit(model: str | PerturbationModel, data: PerturbationData | Simulation, split: Split,
        graphs: PriorGraphs | None = None, train: TrainConfig | Mapping[str, Any] | None = None,
        **options: Any) -> PerturbationModel:
    """Fit a model on ``split``'s training conditions (and its validation conditions for model selection).

    Parameters
    ----------
    model
        A registered model name (``priorgnn``, ``transformer``, ``additive``, ``linear``, ...; see
        :func:`priorgnn.models.available_models`), constructed here with ``options``; or an unfitted
        model instance (then ``options`` must be empty).
    data, split
        The data (or simulation) and the split.
    graphs
        Prior graphs (:func:`priorgnn.build_priors`); a prior branch whose graph is absent is turned off
        (``use_go=False``, ``use_coexpression=False``) unless ``options`` set it.
    train
        Training options (:class:`~priorgnn.training.config.TrainConfig` or a dict of its fields; a dict
        turns the progress bar off unless it says otherwise). ``None``: the model's defaults. Passed to
        the model's ``fit`` only when given.
    **options
        The model's hyperparameters.

    Returns
    -------
    The fitted model (the instance given, or the one constructed).
    """
    from priorgnn.models.base import PerturbationModel, PriorGraphs, get_model_class

    data, _ = _data_and_simulation(data)
    graphs = graphs if graphs is not None else PriorGraphs()
    if isinstance(model, PerturbationModel):
        if options:
            raise ConfigError(f"fit() got options {sorted(options)} and an already constructed {model.name!r} "
                              "model; give the model's name with its options, or construct it with them.")
        instance = model
    else:
        from priorgnn.pipeline import RunConfig, model_options

        cls = get_model_class(model)
        instance = cls(**model_options(RunConfig(model=model, model_options=dict(options)), cls, graphs))
    if train is None:
        instance.fit(data, split, graphs=graphs)
    else:
        instance.fit(data, split, graphs=graphs, train=_train_config(train))
    return instance


def predict(model: PerturbationModel, conditions: Sequence[str], *, genes: Sequence[str] | None = None,
            batch_size: int = 256, progress: bool = False, desc: str | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """A fitted model's predicted changes ``[C, G]`` (float64) for ``conditions`` and its control mean ``[G]``.

    ``genes`` (default: the model's) are the genes the caller scores against; a model fitted on other
    genes is an error. Predicts in batches of ``batch_size`` (progress bar if ``progress``).
    """
    if genes is None:
        if model.genes is None:
            raise CheckpointError(f"model {model.name!r} is not fitted; fit it before predicting.")
        genes = model.genes
    return predict_conditions(model, conditions, genes, batch_size=batch_size, progress=progress, desc=desc)


def _as_arrays(label: str, pred: Predictions, conditions: list[str] | None, genes: list[str]):
    """``(conditions, delta [C, G], control [G])`` from a fitted model, a prediction AnnData or arrays."""
    from priorgnn.data.conditions import canonical_condition
    from priorgnn.models.base import PerturbationModel

    if isinstance(pred, PerturbationModel):
        if conditions is None:
            raise ConfigError(f"{label}: give the conditions to score (default: the split's test set).")
        delta, control = predict_conditions(pred, conditions, genes, progress=False)
        return conditions, delta, control
    if isinstance(pred, tuple) and len(pred) == 2:
        if conditions is None:
            raise ConfigError(f"{label}: give the conditions of the (delta, control) arrays.")
        return conditions, np.asarray(pred[0], dtype=np.float64), np.asarray(pred[1], dtype=np.float64)
    if not hasattr(pred, "layers") or "delta" not in pred.layers or "control_mean" not in pred.uns:
        raise DataValidationError(
            f"{label}: predictions are a fitted model, an AnnData from model.predict (with layers['delta'] "
            f"and uns['control_mean']) or a (delta, control) pair of arrays; got {type(pred).__name__}.")
    if list(map(str, pred.var_names)) != list(genes):
        raise DataValidationError(f"{label}: the predictions' genes are not the data's ({pred.n_vars} vs "
                                  f"{len(genes)}); predict with a model fitted on these data.")
    have = [canonical_condition(c) for c in pred.obs["condition"].astype(str)]
    if conditions is None:
        conditions = have
    row = {c: i for i, c in enumerate(have)}
    missing = [c for c in conditions if c not in row]
    if missing:
        raise DataValidationError(f"{label}: no prediction for {len(missing)} condition(s), e.g. {missing[0]!r}; "
                                  "predict them first, or pass conditions= to score fewer.")
    idx = [row[c] for c in conditions]
    delta = np.asarray(pred.layers["delta"], dtype=np.float64)[idx]
    return conditions, delta, np.asarray(pred.uns["control_mean"], dtype=np.float64)


def score(predictions: Predictions | Mapping[str, Predictions], data: PerturbationData | Simulation,
          split: Split, *, simulation: Simulation | None = None, conditions: Sequence[str] | None = None,
          metrics: Sequence[str] | None = None, seed: int = 0, ceiling: bool = False, ceiling_seed: int = 0,
          examples: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, SeedExamples]:
    """Score predictions against the measured data (and, for a simulation, the noise-free truth).

    Parameters
    ----------
    predictions
        A fitted model, an AnnData from ``model.predict`` (scored as stored, in float32), a
        ``(delta [C, G], control [G])`` pair (from :func:`predict`), or a dict of label → any of these.
    data, split
        The data (or simulation) and the split the models were fitted on.
    simulation
        The simulation the data came from, for the ``truth`` reference (taken from ``data`` when
        that is a simulation).
    conditions
        The conditions to score (default ``split.test``; for a single AnnData, the conditions it holds).
    metrics
        Metric names (default :data:`priorgnn.metrics.DEFAULT_METRICS`).
    seed
        The value of the ``seed`` column.
    ceiling
        Add the split-half noise ceiling (model ``ceiling``).
    ceiling_seed
        The seed of the ceiling's random halves of the cells.
    examples
        Also return the :class:`~priorgnn.metrics.evaluation.SeedExamples` of the scored conditions
        (observed and predicted changes, subgroups), which figures and
        :func:`priorgnn.metrics.evaluation.prediction_diagnostics` read.

    Returns
    -------
    The per-condition table of :func:`priorgnn.metrics.evaluate_seed`: one row per model, reference and
    condition, one column per metric; :func:`priorgnn.metrics.aggregate` summarises it. With
    ``examples``, the pair ``(table, examples)``.
    """
    from priorgnn.data.conditions import canonical_condition

    data, sim = _data_and_simulation(data)
    simulation = simulation if simulation is not None else sim
    if not isinstance(predictions, Mapping):
        label = getattr(predictions, "name", None) or str(getattr(predictions, "uns", {}).get("model", "model"))
        predictions = {label: predictions}
    conds = None if conditions is None else [canonical_condition(c) for c in conditions]
    only = next(iter(predictions.values())) if len(predictions) == 1 else None
    if conds is None and not hasattr(only, "layers"):  # a lone AnnData: the conditions it holds
        conds = list(split.test)
    arrays = {}
    for label, pred in predictions.items():
        conds, delta, control = _as_arrays(label, pred, conds, list(map(str, data.genes)))
        arrays[label] = (delta, control)
    table, ex = evaluate_seed(data, split, arrays, seed=seed, conditions=conds, metrics=metrics,
                              simulation=simulation, ceiling=ceiling, ceiling_seed=ceiling_seed)
    return (table, ex) if examples else table


# -- prediction in batches, and the models' notes --------------------------------------------------------------------------------------
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


#: Per-condition counts that models attach to their predictions (``model.prediction_notes``) and the
#: report summarises: how often a model had to fall back for a gene it has no measured effect for.
NOTE_KEYS = ("n_fallback", "n_untrained_genes")


def prediction_notes(model: PerturbationModel, conditions: Sequence[str],
                     subgroups: dict[str, str]) -> dict[str, dict[str, list[int]]]:
    """For each of :data:`NOTE_KEYS` the model reports: per subgroup, ``[conditions with a count
    above 0, conditions]``. The additive baseline's ``n_fallback``, for example, counts conditions
    where a single was not measured in training and its documented fallback was used."""
    conditions = list(conditions)
    obs = model.prediction_notes(model.canonical(conditions))
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


def merge_notes(into: dict, label: str, notes: dict) -> None:
    """Add :func:`prediction_notes` counts to ``into[label]``, per key and subgroup (over seeds or folds)."""
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


# -- saved predictions --------------------------------------------------------------------------------
#: Where training writes the test set's predictions, relative to the run directory.
TEST_PREDICTIONS = "predictions/test.h5ad"


def _folder_sha256(folder: Path) -> str:
    """One SHA-256 over every file of ``folder`` (relative path and content hash, in sorted order)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder).as_posix()}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


def prediction_record(run_dir: str | Path) -> dict[str, str]:
    """The ``run.json`` record of a run's saved test predictions: the file and the SHA-256 of it, of the
    model folder and of ``split.json`` (see the module docstring)."""
    run_dir = Path(run_dir)
    return {"file": TEST_PREDICTIONS, "sha256": sha256_file(run_dir / TEST_PREDICTIONS),
            "model_sha256": _folder_sha256(run_dir / "model"), "split_sha256": sha256_file(run_dir / "split.json")}


def saved_predictions(run: Run, conditions: Sequence[str], genes: Sequence[str]) -> np.ndarray | None:
    """The run's saved test predictions ``[C, G]`` (float64) when they match its model, split,
    ``conditions`` and ``genes``; ``None`` (predict again) otherwise."""
    import anndata as ad

    rec = (run.info.get("predictions") or {}).get("test")
    if not isinstance(rec, dict) or rec.get("file") != TEST_PREDICTIONS:
        return None
    path = run.path / TEST_PREDICTIONS
    try:
        ok = (path.is_file() and sha256_file(path) == rec.get("sha256")
              and _folder_sha256(run.path / "model") == rec.get("model_sha256")
              and sha256_file(run.path / "split.json") == rec.get("split_sha256"))
    except OSError:
        ok = False
    if not ok:
        log.info("%s: saved predictions do not match the run's model and split; predicting again", run.path)
        return None
    pred = ad.read_h5ad(path)
    if (list(pred.obs["condition"].astype(str)) != list(conditions)
            or list(map(str, pred.var_names)) != list(map(str, genes)) or "delta" not in pred.layers):
        log.info("%s: saved predictions are of other conditions or genes; predicting again", run.path)
        return None
    return np.asarray(pred.layers["delta"], dtype=np.float64)


# -- one model, and runs ---------------------------------------------------------------------------
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
            saved = saved_predictions(r, conditions, data.genes)
            if saved is not None:
                preds[lab] = (saved, np.asarray(model.control_mean, dtype=np.float64))
            else:
                preds[lab] = predict_conditions(model, conditions, data.genes, progress=progress,
                                                desc=f"predicting {lab} (seed {seed})")
            merge_notes(notes, lab, prediction_notes(model, conditions, subgroups))
        graphs = _seed_graphs([r for _, r in members])
        for b in baselines:
            if b in preds:
                log.info("baseline %r is among the runs of seed %d; using the run", b, seed)
                continue
            if b == "network_knn" and "network_knn" not in baseline_options:
                raise ConfigError("network_knn is an oracle for simulated data: it needs the simulation's "
                                  "true network, and these runs are not of a simulation.")
            # constructed as named (no prior branch switched off), then fitted here
            model = fit(get_model_class(b)(**baseline_options.get(b, {})), data, split, graphs)
            preds[b] = predict_conditions(model, conditions, data.genes, progress=progress,
                                          desc=f"predicting {b} (seed {seed})")
            merge_notes(notes, b, prediction_notes(model, conditions, subgroups))
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
