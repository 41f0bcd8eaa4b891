"""The Lightning training plan and data module shared by every gradient-trained model.

A trainable model provides a torch module whose ``forward(**inputs)`` returns a dict with ``delta``
(``[U, G]`` predicted mean change per condition) and optionally ``logvar``, and an ``encode(rows)``
function that turns condition rows into those inputs. The plan owns the loss, the optimiser, the
validation metrics (top-20-DE MSE, GEARS's checkpoint criterion, and ``pearson_delta``) and
deterministic per-epoch seeding (so a run resumed from a checkpoint replays the same batches).

Batches are sets of *distinct conditions*: each perturbation is encoded once per batch, and the loss
covers all of its cells through the moments in :mod:`priorgnn.training.targets`. ``batch_size``
therefore counts conditions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from priorgnn.training.losses import perturbation_loss
from priorgnn.training.targets import ConditionTargets

log = logging.getLogger(__name__)

__all__ = ["ConditionBatchSampler", "ConditionDataModule", "PerturbationTrainingPlan"]


class _Rows(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class ConditionBatchSampler:
    """Shuffled batches of condition rows, re-drawn per epoch from ``seed + epoch``.

    Batches are near-equal in size (never a lone condition, which BatchNorm cannot train on). Under
    distributed training each rank takes every ``world_size``-th batch.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, max(1, batch_size), shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[np.ndarray]:
        order = (np.random.default_rng(self.seed + self.epoch).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        n_batches = max(1, int(np.ceil(self.n / self.batch_size)))
        if self.n >= 2:
            n_batches = min(n_batches, self.n // 2)
        batches = np.array_split(order, n_batches)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
            per_rank = int(np.ceil(len(batches) / world))
            batches = (batches * world)[: per_rank * world][rank::world]
        return batches

    def __iter__(self):
        for b in self._batches():
            yield b.tolist()

    def __len__(self) -> int:
        return len(self._batches())


def _target_tensors(t: ConditionTargets) -> dict[str, torch.Tensor]:
    return {
        "delta": torch.from_numpy(t.delta), "c2": torch.from_numpy(t.c2), "c3": torch.from_numpy(t.c3),
        "c4": torch.from_numpy(t.c4), "retain": torch.from_numpy(t.retain),
        "top_de": torch.from_numpy(t.top_de),
    }


class ConditionDataModule(pl.LightningDataModule):
    """Batches of training conditions (shuffled) and one batch of all validation conditions."""

    def __init__(self, train: ConditionTargets, val: ConditionTargets | None, *, batch_size: int = 32,
                 seed: int = 0) -> None:
        super().__init__()
        self.train_targets, self.val_targets = train, val
        self.batch_size, self.seed = batch_size, seed
        self._train = _target_tensors(train)
        self._val = _target_tensors(val) if val is not None and len(val.conditions) else None

    def _collate(self, tensors: dict[str, torch.Tensor], split: str) -> Callable[[list[int]], dict]:
        def collate(rows: list[int]) -> dict[str, Any]:
            idx = torch.as_tensor(rows, dtype=torch.long)
            out = {k: v[idx] for k, v in tensors.items()}
            out["rows"] = idx
            out["split"] = split
            return out

        return collate

    def train_dataloader(self) -> DataLoader:
        n = len(self.train_targets.conditions)
        return DataLoader(_Rows(n), batch_sampler=ConditionBatchSampler(n, self.batch_size, seed=self.seed),
                          collate_fn=self._collate(self._train, "train"))

    def val_dataloader(self) -> DataLoader | list:
        n = len(self.val_targets.conditions) if self._val is not None else 0
        if n == 0:
            return DataLoader(_Rows(0))
        return DataLoader(_Rows(n), batch_size=n, shuffle=False, collate_fn=self._collate(self._val, "val"))


class PerturbationTrainingPlan(pl.LightningModule):
    """Loss, optimiser and validation for a delta-predicting module.

    Parameters
    ----------
    net
        Module with ``forward(**inputs) -> {'delta': [U, G], 'logvar': [U, G] (optional)}``.
    encode
        ``encode(split, rows) -> inputs`` for ``net`` (``split`` is ``'train'`` or ``'val'``).
    """

    def __init__(self, net: torch.nn.Module, encode: Callable[[str, torch.Tensor], dict[str, Any]], *,
                 loss: str = "autofocus", gamma: int = 2, direction_lambda: float = 0.1,
                 direction_tau: float = 0.1, uncertainty_lambda: float = 1.0, lr: float = 1e-3,
                 weight_decay: float = 5e-4, lr_schedule: str = "none", lr_patience: int = 20,
                 seed: int = 0) -> None:
        super().__init__()
        self.net = net
        self.encode = encode
        self.loss_kwargs = dict(gamma=0 if loss == "mse" else gamma, direction_lambda=direction_lambda,
                                direction_tau=direction_tau, uncertainty_lambda=uncertainty_lambda)
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        self.lr_schedule, self.lr_patience = lr_schedule, lr_patience

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # ``encode`` indexes tables held on the CPU; on an accelerator its outputs follow the batch
        rows = batch["rows"]
        inputs = self.encode(batch["split"], rows.cpu())
        if rows.device.type != "cpu":
            inputs = {k: v.to(rows.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        return self.net(**inputs)

    def on_train_epoch_start(self) -> None:
        # Dropout and other torch randomness replay identically after a resume.
        torch.manual_seed(self.seed * 100_003 + self.current_epoch)

    def training_step(self, batch, batch_idx):
        out = self(batch)
        res = perturbation_loss(out["delta"], batch, logvar=out.get("logvar"), **self.loss_kwargs)
        bs = len(batch["rows"])
        for k, v in res.parts.items():
            self.log(f"train_{k}", v, on_step=False, on_epoch=True, batch_size=bs, prog_bar=k == "loss")
        return res.loss

    @staticmethod
    def _top_de_mse(pred: torch.Tensor, batch) -> torch.Tensor:
        top = batch["top_de"]
        valid = top >= 0
        idx = top.clamp_min(0)
        diff = torch.gather(pred.double(), 1, idx) - torch.gather(batch["delta"], 1, idx)
        per = ((diff**2) * valid).sum(1) / valid.sum(1).clamp_min(1)
        has = valid.any(1)
        return per[has].mean() if has.any() else per.sum() * 0

    @staticmethod
    def _pearson_delta(pred: torch.Tensor, batch) -> torch.Tensor:
        a = pred.double() - pred.double().mean(1, keepdim=True)
        b = batch["delta"] - batch["delta"].mean(1, keepdim=True)
        r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
        return r.mean()

    def validation_step(self, batch, batch_idx):
        out = self(batch)
        res = perturbation_loss(out["delta"], batch, logvar=out.get("logvar"), **self.loss_kwargs)
        bs = len(batch["rows"])
        self.log("val_loss", res.loss, batch_size=bs, prog_bar=False)
        self.log("val_mse_top20_de", self._top_de_mse(out["delta"], batch).float(), batch_size=bs, prog_bar=True)
        self.log("val_pearson_delta", self._pearson_delta(out["delta"], batch).float(), batch_size=bs)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        # An epoch here is one pass over the training *conditions* (a few optimiser steps), so a
        # schedule in epochs decays far faster than GEARS's per-epoch halving over thousands of cells.
        if self.lr_schedule == "none" or not self.trainer.val_dataloaders:
            return opt
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=self.lr_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_mse_top20_de"}}
