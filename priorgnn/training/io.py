"""Crash-safe training outputs: checkpoints and the training curve are written atomically.

Lightning's own writers write files in place (its CSV logger appends to ``metrics.csv``); a job
killed mid-write can leave a truncated file that a resumed run or a report would then read. Here
both go through :func:`priorgnn.io.atomic_path` / :func:`~priorgnn.io.atomic_write`: a temporary
file beside the target, renamed over it once complete.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from priorgnn.io import atomic_path, atomic_write

log = logging.getLogger(__name__)

__all__ = ["AtomicCheckpointIO", "AtomicCSVLogger"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the checkpoint's folder, then rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(Path(path), ".ckpt") as tmp:
            tmp.write_bytes(buffer.getvalue())

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        # Checkpoints are read with weights_only=True: plain tensors and containers only.
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class AtomicCSVLogger(Logger):
    """The training curve as ``DIR/metrics.csv``, one row per logging call, rewritten atomically.

    ``resume_from_epoch``: keep the rows of an earlier run up to and including that epoch (the
    epoch its checkpoint completed) and drop later ones, which a resumed run recomputes.
    """

    def __init__(self, save_dir: str | Path, resume_from_epoch: int | None = None) -> None:
        super().__init__()
        self._dir = Path(save_dir)
        self.path = self._dir / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self._dirty = False  # nothing is written until this run logs something
        if resume_from_epoch is not None and self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    try:
                        epoch = int(float(row.get("epoch") or -1))
                    except ValueError:
                        continue
                    if epoch <= resume_from_epoch:
                        self.rows.append({k: v for k, v in row.items() if v not in ("", None)})

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._dir)

    @property
    def log_dir(self) -> str:
        return str(self._dir)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyperparameters are recorded in the run's config, not here."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
        row["step"] = step if step is not None else len(self.rows)
        self.rows.append(row)
        self._dirty = True

    @rank_zero_only
    def save(self) -> None:
        if not self.rows or not self._dirty:
            return
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        with atomic_write(self.path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
