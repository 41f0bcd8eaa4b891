"""The one interface every model answers, and the model registry.

Every model (PriorGNN, the transformer, the baselines, the reference GEARS adapter) is a
:class:`PerturbationModel`:

* ``fit(data, split, graphs=..., train=...)`` learns from the training (and validation) conditions
  of ``split`` only;
* ``predict_delta(conditions)`` returns the predicted change of mean expression from the control
  mean, ``[len(conditions), n_genes]``; ``predict_output(conditions)`` returns it as a
  :class:`DeltaPrediction`, with a predicted variance from models that have one;
  ``predict(conditions)`` wraps that as an AnnData with the mean expression in ``X``, the delta in
  ``layers['delta']`` (and the variance in ``layers['variance']``) and the model's
  :meth:`~PerturbationModel.prediction_notes` in ``obs``;
* ``embeddings()`` returns the model's latent gene or perturbation embeddings as
  :class:`Embeddings`, or ``None`` for a model without one;
* ``save(dir)`` / ``load(dir)`` persist everything needed to predict, without pickle.

Models register by name with :func:`register_model`, so ``train.py --model NAME`` and
``evaluate.py`` find them without special cases.
"""

from __future__ import annotations

import inspect
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anndata as ad
import numpy as np
import pandas as pd

from priorgnn.io import read_json, write_json
from priorgnn.data.conditions import canonical_condition, parse_condition
from priorgnn.errors import CheckpointError, ConfigError
from priorgnn.training.config import TrainConfig  # re-exported: models take it in fit()

if TYPE_CHECKING:
    from knowledge.graph import GeneGraph
    from priorgnn.data.dataset import PerturbationData
    from priorgnn.data.splits import Split

log = logging.getLogger(__name__)

__all__ = [
    "PerturbationModel",
    "PriorGraphs",
    "DeltaPrediction",
    "Embeddings",
    "TrainConfig",
    "register_model",
    "get_model_class",
    "available_models",
    "load_model",
    "MODEL_FILE",
]

MODEL_FILE = "model.json"
_REGISTRY: dict[str, type[PerturbationModel]] = {}


@dataclass
class PriorGraphs:
    """The knowledge graphs a model may use; ``None`` means that prior is absent."""

    go: GeneGraph | None = None
    coexpression: GeneGraph | None = None


@dataclass(frozen=True)
class DeltaPrediction:
    """A model's prediction for a list of conditions (:meth:`PerturbationModel.predict_output`).

    Attributes
    ----------
    delta
        Predicted change of mean expression from the control mean, ``[n_conditions, n_genes]``.
    variance
        Predicted variance of each entry of ``delta`` (same shape), from a model with an uncertainty
        head; ``None`` from a model without one.
    """

    delta: np.ndarray
    variance: np.ndarray | None = None


@dataclass(frozen=True)
class Embeddings:
    """A model's latent embeddings of genes (:meth:`PerturbationModel.embeddings`).

    Attributes
    ----------
    matrix
        One row per gene, ``[len(names), d]``.
    names
        The genes the rows stand for, in row order.
    space
        What the embedding is, in words (e.g. ``'gene identity embedding'``).
    """

    matrix: np.ndarray
    names: list[str]
    space: str

    def rows(self) -> dict[str, int]:
        """Gene -> row of :attr:`matrix`."""
        return {g: i for i, g in enumerate(self.names)}


def register_model(name: str):
    """Class decorator: register a :class:`PerturbationModel` subclass under ``name``."""

    def deco(cls: type[PerturbationModel]) -> type[PerturbationModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _import_builtin_models() -> None:
    # Importing the modules registers their models. The reference GEARS adapter registers itself
    # but imports cell-gears only when used.
    from priorgnn.models import baselines  # noqa: F401
    for mod in ("priorgnn.models.priorgnn", "priorgnn.models.transformer", "priorgnn.models.gears_ref",
                "priorgnn.models.linear", "priorgnn.models.neighbours"):
        try:
            __import__(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def available_models() -> list[str]:
    _import_builtin_models()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[PerturbationModel]:
    _import_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}.") from None


class PerturbationModel(ABC):
    """Base class; see the module docstring."""

    name: ClassVar[str] = "base"
    #: Whether ``fit`` runs gradient training (and so uses :class:`TrainConfig`).
    trainable: ClassVar[bool] = False
    #: Which priors the model reads (``'go'``, ``'coexpression'``); the prior-free models read none.
    uses_priors: ClassVar[tuple[str, ...]] = ()
    #: Whether ``fit`` reads single cells (else per-condition summaries and moments suffice, and
    #: ``train.py --summaries-only`` can train it without loading the cell matrix).
    needs_cells: ClassVar[bool] = False

    def __init__(self, **hparams: Any) -> None:
        self.hparams: dict[str, Any] = dict(hparams)
        self.genes: list[str] | None = None
        self.control_mean: np.ndarray | None = None
        self.fit_info: dict[str, Any] = {}

    @classmethod
    def check_hparams(cls, options: dict[str, Any]) -> None:
        """Validate hyperparameters before a model is built: every key is a parameter of the model's
        constructor, and each value has the parameter's type and range (sizes >= 1, counts of layers,
        epochs and steps >= 0, rates and weights finite and >= 0, dropouts and fractions below 1).
        Raises :class:`~priorgnn.errors.ConfigError` naming the option and what it accepts."""
        sig = inspect.signature(cls.__init__)
        params = {n: p for n, p in sig.parameters.items()
                  if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        unknown = sorted(set(options) - set(params))
        if unknown:
            import difflib

            hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, params, 1)) else repr(u)
                     for u in unknown]
            raise ConfigError(f"{cls.name}: unknown hyperparameter(s) {', '.join(hints)}; known: "
                              f"{', '.join(sorted(params))} (CLI: --model-set KEY=VALUE).")
        for key, value in options.items():
            _check_hparam(cls.name, key, value, params[key])
        try:
            cls(**options)
        except ConfigError:
            raise
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{cls.name}: invalid hyperparameters {options} ({exc}).") from None

    # -- to implement ------------------------------------------------------------------------------
    @abstractmethod
    def fit(self, data: PerturbationData, split: Split, *, graphs: PriorGraphs | None = None,
            train: TrainConfig | None = None) -> PerturbationModel:
        """Learn from ``split.train`` (and ``split.val`` for model selection) only."""

    @abstractmethod
    def predict_delta(self, conditions: Sequence[str]) -> np.ndarray:
        """Predicted mean-expression change from control, ``[len(conditions), n_genes]``."""

    # -- may override ---------------------------------------------------------------------------------
    def predict_output(self, conditions: Sequence[str]) -> DeltaPrediction:
        """The prediction for ``conditions`` as a :class:`DeltaPrediction`. The default wraps
        :meth:`predict_delta` (no variance); a model with more to say (an uncertainty head) overrides
        this and answers :meth:`predict_delta` from it."""
        return DeltaPrediction(delta=self.predict_delta(conditions))

    def prediction_notes(self, conditions: Sequence[str]) -> dict[str, list]:
        """Per-condition notes on how each prediction was made, one list per note with one entry per
        condition (e.g. ``n_fallback``: how many of the condition's genes had no measured effect and
        used the model's documented fallback). :meth:`predict` adds them to ``obs``; none by default.
        ``conditions`` are canonical (:meth:`canonical`)."""
        return {}

    def embeddings(self) -> Embeddings | None:
        """The model's latent embeddings of genes (:class:`Embeddings`), or ``None`` for a model
        without one."""
        return None

    def _state(self) -> dict[str, np.ndarray]:
        """Arrays needed to predict (saved as ``.npz``); override to add more."""
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray], directory: Path) -> None:
        """Restore from :meth:`_state`'s arrays; override with :meth:`_state`."""

    # -- shared ----------------------------------------------------------------------------------------
    def _remember_data(self, data: PerturbationData, split: Split) -> None:
        """Record gene order and the control mean (from training control cells)."""
        self.genes = list(map(str, data.genes))
        self.control_mean = np.asarray(data.summaries.control_mean, dtype=np.float64)
        self.fit_info.setdefault("data", data.name)
        self.fit_info.setdefault("data_hash", data.content_hash)

    def _check_fitted(self) -> None:
        if self.genes is None or self.control_mean is None:
            raise CheckpointError(f"model {self.name!r} is not fitted; call fit() or load a run.")

    def _vocabulary(self) -> set[str]:
        """Genes this model can place: the measured genes and the genes it was trained on perturbed."""
        vocab = set(self.genes or [])
        for attr in ("single_genes", "pert_genes"):
            vocab.update(map(str, getattr(self, attr, None) or []))
        return vocab

    def unknown_genes(self, conditions: Sequence[str]) -> list[str]:
        """Genes of ``conditions`` the model has never seen (neither measured nor perturbed in
        training): predicting them uses a fallback (e.g. the additive model's mean single), if any."""
        self._check_fitted()
        vocab = self._vocabulary()
        out: list[str] = []
        for c in conditions:
            for g in parse_condition(c):
                if g not in vocab and g not in out:
                    out.append(g)
        return out

    def canonical(self, conditions: Sequence[str]) -> list[str]:
        return [canonical_condition(c) for c in conditions]

    def predict(self, conditions: Sequence[str]) -> ad.AnnData:
        """Predicted mean expression per condition as an AnnData: delta in ``layers['delta']``, the
        predicted variance (if the model has one) in ``layers['variance']``, and the model's
        :meth:`prediction_notes` as ``obs`` columns."""
        self._check_fitted()
        conds = self.canonical(conditions)
        pred = self.predict_output(conds)
        delta = np.asarray(pred.delta, dtype=np.float64)
        if delta.shape != (len(conds), len(self.genes)):
            raise RuntimeError(f"{self.name}: predict_output returned a delta of shape {delta.shape}")
        mean = self.control_mean[None, :] + delta
        obs = pd.DataFrame(
            {"condition": conds, "n_genes_perturbed": [len(parse_condition(c)) for c in conds]},
            index=pd.Index(conds, name="condition_id"),
        )
        out = ad.AnnData(X=mean.astype(np.float32), obs=obs, var=pd.DataFrame(index=self.genes))
        out.layers["delta"] = delta.astype(np.float32)
        if pred.variance is not None:
            variance = np.asarray(pred.variance)
            if variance.shape != delta.shape:
                raise RuntimeError(f"{self.name}: predict_output returned a variance of shape {variance.shape}")
            out.layers["variance"] = variance.astype(np.float32)
        for key, values in self.prediction_notes(conds).items():
            out.obs[key] = values
        out.uns["model"] = self.name
        out.uns["control_mean"] = self.control_mean.astype(np.float32)
        return out

    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        from priorgnn.io import atomic_path

        arrays = {"control_mean": self.control_mean, "genes": np.array(self.genes, dtype=str), **self._state()}
        with atomic_path(directory / "model_state.npz", ".npz") as tmp:
            np.savez(tmp, **arrays)
        write_json(directory / MODEL_FILE, {"model": self.name, "hparams": self.hparams,
                                            "fit_info": self.fit_info})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PerturbationModel:
        directory = Path(directory)
        meta = read_json(directory / MODEL_FILE)
        if meta.get("model") != cls.name:
            raise CheckpointError(
                f"{directory} holds a {meta.get('model')!r} model, not {cls.name!r}. Load it with "
                f"load_model({str(directory)!r}), or point to a run of {cls.name!r}."
            )
        model = cls(**meta.get("hparams", {}))
        model.fit_info = meta.get("fit_info", {})
        import pickle
        import zipfile

        unreadable = (OSError, EOFError, KeyError, ValueError, RuntimeError, zipfile.BadZipFile,
                      pickle.UnpicklingError)
        stage = "model_state.npz"
        try:
            with np.load(directory / "model_state.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            model.genes = [str(g) for g in arrays.pop("genes")]
            model.control_mean = arrays.pop("control_mean")
            stage = "weights.pt" if (directory / "weights.pt").exists() else "a saved file"
            model._load_state(arrays, directory)
        except CheckpointError:
            raise
        except unreadable as exc:
            what = Path(getattr(exc, "filename", None) or "").name or stage
            kind = "missing" if isinstance(exc, FileNotFoundError) else "unreadable (truncated or damaged)"
            raise CheckpointError(
                f"{directory}: the saved {cls.name} model is incomplete: {what} is {kind} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'}). "
                "Restore the run folder from a copy, or re-train it (train.py ... --out RUN --overwrite)."
            ) from None
        return model


_SIZES_MAY_BE_ZERO = ("layers", "epochs", "steps")


def _check_hparam(model: str, key: str, value: Any, param: inspect.Parameter) -> None:
    """Type and range of one hyperparameter, from the constructor's default and annotation."""
    default = param.default
    ann = str(param.annotation) if param.annotation is not inspect.Parameter.empty else ""
    if value is None:
        if default is None or "None" in ann:
            return
        raise ConfigError(f"{model}: {key} cannot be empty (null); give a value like {default!r}.")
    where = f"{model}: {key}={value!r}"
    if isinstance(default, bool) or ann.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is not true or false.")
        return
    if isinstance(default, int) or ann.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} is not an integer.")
        low = 0 if any(s in key for s in _SIZES_MAY_BE_ZERO) or (isinstance(default, int) and default < 1) else 1
        if value < low:
            raise ConfigError(f"{where} must be {low} or more.")
        return
    if isinstance(default, float) or ann.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} is not a number.")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where} must be a finite number >= 0.")
        if ("dropout" in key or "frac" in key) and value >= 1:
            raise ConfigError(f"{where} must be below 1.")
        return
    if isinstance(default, str) or ann.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"{where} is not a name (text); e.g. {default!r}.")


def load_model(directory: str | Path) -> PerturbationModel:
    """Load whatever registered model ``directory`` holds."""
    directory = Path(directory)
    if not (directory / MODEL_FILE).exists():
        alt = directory / "model"
        if (alt / MODEL_FILE).exists():
            directory = alt
        else:
            raise CheckpointError(f"{directory} holds no saved model ({MODEL_FILE} missing).")
    name = read_json(directory / MODEL_FILE).get("model")
    return get_model_class(name).load(directory)
