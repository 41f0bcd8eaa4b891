"""Models: PriorGNN, the prior-free transformer, baselines, and the reference GEARS adapter.

All answer :class:`~priorgnn.models.base.PerturbationModel`; look them up by name with
:func:`get_model_class` / :func:`available_models`.
"""

from priorgnn.models.base import (
    DeltaPrediction,
    Embeddings,
    PerturbationModel,
    PriorGraphs,
    TrainConfig,
    available_models,
    get_model_class,
    load_model,
    register_model,
)
from priorgnn.models import interaction_baselines  # noqa: F401, E402 - registers scaled_additive, dominance

__all__ = [
    "DeltaPrediction",
    "Embeddings",
    "PerturbationModel",
    "PriorGraphs",
    "TrainConfig",
    "available_models",
    "get_model_class",
    "load_model",
    "register_model",
]
