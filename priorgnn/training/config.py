"""Training options shared by every gradient-trained model (:class:`TrainConfig`).

It lives with the training code that reads it; :mod:`priorgnn.models` re-exports it, so
``from priorgnn.models import TrainConfig`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Options of gradient-trained models; baselines ignore them."""

    max_epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    patience: int = 20
    accelerator: str = "cpu"
    devices: int | str = 1
    num_workers: int = 0
    progress_bar: bool = True
    run_dir: str | None = None
    resume: str | None = None
    max_steps: int = -1
    threads: int | None = None  # torch CPU threads; None: $OMP_NUM_THREADS or all cores
    #: no optimiser step: the model is saved without training, as a reference row for benchmarks
    #: (PriorGNN then predicts through its built-in backbone only, see ``PriorGNN.fit``)
    untrained: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
