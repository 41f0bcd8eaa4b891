"""One progress bar over epochs.

An epoch here is one pass over the training conditions: a handful of optimiser steps. Lightning's
default bar redraws a bar per epoch (and one per validation pass), which floods a terminal over
hundreds of short epochs; this bar advances once per epoch and shows the loss and the validation
metric.
"""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm

__all__ = ["EpochProgressBar"]


class EpochProgressBar(ProgressBar):
    def __init__(self) -> None:
        super().__init__()
        self._bar = None
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        if self._enabled and trainer.is_global_zero:
            self._bar = tqdm(total=trainer.max_epochs, initial=trainer.current_epoch, desc="training",
                             unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._bar is None:
            return
        m = trainer.callback_metrics
        post = {}
        for key, label in (("train_loss", "loss"), ("val_mse_top20_de", "val_top20_mse")):
            if key in m:
                post[label] = f"{float(m[key]):.4g}"
        self._bar.set_postfix(post, refresh=False)
        self._bar.update(1)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
