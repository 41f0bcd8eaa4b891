"""Masked-expression pretraining of the prior-free transformer (the foundation-model recipe).

Self-supervised pretraining on single cells, as scGPT (Cui et al., Nature Methods 2024) and
Geneformer (Theodoris et al., Nature 2023) do before fine-tuning: a random subset of a cell's gene
tokens is drawn, a fraction of them has its expression value replaced by a learned mask embedding,
and the network reconstructs the hidden values (mean squared error on the masked tokens only).

Which cells
    The control cells and the cells of the *training* conditions of the split, never a cell of a
    validation or test condition (:func:`pretraining_cells` asserts it), plus optional extra cells
    (e.g. ``Simulator.sample_cells`` of the same system, for the study of 10x and 100x more cells).
    Extra cells are unlabelled by default (no perturbation flag); with labels, their conditions may
    not be held-out conditions of the split.
Held-out loss
    A seeded fraction of those cells (``val_frac``, at most ``max_val_cells``) is kept out of the
    gradient steps; its reconstruction loss, with a fixed draw of tokens and masks, is the pretraining
    curve (``pretrain/logs/metrics.csv`` in the run directory) and is recorded before and after.

Lightning runs the loop (:class:`MaskedExpressionPlan`), with the same per-epoch seeding as the
fine-tuning plan, so a fit is reproducible from its seed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import lightning.pytorch as pl
import numpy as np
import scipy.sparse as sp
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from priorgnn.io import atomic_path, read_json, write_json
from priorgnn.data.conditions import CTRL, parse_condition
from priorgnn.errors import ConfigError, DataValidationError
from priorgnn.training.plan import ConditionBatchSampler
from priorgnn.training.progress import EpochProgressBar

log = logging.getLogger(__name__)

__all__ = ["CellSet", "MaskedExpressionPlan", "pretraining_cells", "extra_cells", "pretrain_masked",
           "read_pretrain_summary"]

PAD = -1
#: Log-normalised expression stays far below this; larger values mean raw counts were given.
_MAX_LOG_VALUE = 30.0


@dataclass
class CellSet:
    """Cells for pretraining, drawn from one or more matrices without copying them.

    ``parts`` holds ``(X, rows, pert)``: a CSR matrix over the model's genes (columns in model
    order), the row indices used, and per used row the perturbed gene indices ``[n, 2]`` (``-1``
    pads; all ``-1`` for control or unlabelled cells).
    """

    parts: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]]
    n_genes: int

    def __post_init__(self) -> None:
        self.offsets = np.cumsum([0] + [len(rows) for _, rows, _ in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Dense expression ``x`` ``[B, G]`` (float32) and perturbed genes ``pert`` ``[B, 2]``."""
        index = np.asarray(index, dtype=np.int64)
        x = np.zeros((len(index), self.n_genes), dtype=np.float32)
        pert = np.full((len(index), 2), PAD, dtype=np.int64)
        for i, (X, rows, p) in enumerate(self.parts):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            sel = np.nonzero((index >= lo) & (index < hi))[0]
            if len(sel):
                local = index[sel] - lo
                x[sel] = X[rows[local]].toarray()
                pert[sel] = p[local]
        return {"x": torch.from_numpy(x), "pert": torch.from_numpy(pert)}


def _pert_rows(conditions: np.ndarray, gene_index: dict[str, int]) -> np.ndarray:
    """``[n, 2]`` perturbed gene indices for condition labels (computed once per distinct label)."""
    uniq, inverse = np.unique(np.asarray(conditions, dtype=str), return_inverse=True)
    table = np.full((len(uniq), 2), PAD, dtype=np.int64)
    for i, c in enumerate(uniq):
        for j, g in enumerate(parse_condition(c)):
            table[i, j] = gene_index.get(g, PAD)
    return table[inverse]


def pretraining_cells(data, split, gene_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the cells allowed in pretraining (control + training conditions) and their
    perturbed genes. Raises if a validation or test cell would enter."""
    allowed = set(split.train) | {CTRL}
    rows = data.cells_in(sorted(allowed))
    held_out = set(split.val) | set(split.test)
    leaked = held_out & set(np.unique(data.cell_conditions[rows]))
    if leaked:  # a split with a held-out condition in training would make this possible
        raise DataValidationError(f"pretraining would use cells of held-out conditions {sorted(leaked)[:5]}.")
    return rows, _pert_rows(data.cell_conditions[rows], gene_index)


def extra_cells(source: Any, genes: list[str], split, *, labels: bool) -> tuple[sp.csr_matrix, np.ndarray]:
    """Extra pretraining cells aligned to ``genes``: a CSR matrix and perturbed genes ``[n, 2]``.

    ``source`` is an AnnData, a :class:`~priorgnn.data.dataset.PerturbationData` or an ``.h5ad``
    path, with log-normalised expression and every model gene among its ``var_names``.
    ``labels=True`` flags each cell's perturbed genes from ``obs['condition']``; its conditions
    may then not be held-out conditions of ``split``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"transformer: pretrain_extra {str(path)!r} does not exist; give an .h5ad of "
                              "log-normalised cells over the same genes.")
        adata = ad.read_h5ad(path)
    elif isinstance(source, ad.AnnData):
        adata = source
    elif hasattr(source, "adata"):
        adata = source.adata
    else:
        raise ConfigError(f"transformer: extra pretraining cells must be an AnnData, PerturbationData or "
                          f".h5ad path, not {type(source).__name__}.")
    var = adata.var_names.astype(str)
    if not var.is_unique:
        raise DataValidationError("extra pretraining cells: gene names (var_names) are not unique.")
    pos = var.get_indexer(genes)
    missing = [g for g, p in zip(genes, pos) if p < 0]
    if missing:
        raise DataValidationError(
            f"extra pretraining cells lack {len(missing)} of the model's genes (e.g. {missing[:5]}); they must "
            "measure every gene of the training data (sample them from the same simulator or data set)."
        )
    X = adata.X
    X = sp.csr_matrix(X, dtype=np.float32) if not sp.isspmatrix_csr(X) else X.astype(np.float32, copy=False)
    if not np.array_equal(pos, np.arange(len(var))):
        X = X[:, pos].tocsr()
    if X.nnz and float(X.max()) > _MAX_LOG_VALUE:
        raise DataValidationError(
            f"extra pretraining cells have values up to {float(X.max()):.0f}: these look like raw counts. "
            "Give log-normalised expression (normalize_total + log1p), as in the training data."
        )
    n = X.shape[0]
    if labels:
        if "condition" not in adata.obs:
            raise ConfigError("transformer: pretrain_extra_labels=True needs obs['condition'] in the extra cells.")
        conds = adata.obs["condition"].astype(str).to_numpy()
        held = sorted((set(split.val) | set(split.test)) & set(np.unique(conds)))
        if held:
            raise ConfigError(
                f"transformer: the labelled extra pretraining cells include held-out conditions of the split "
                f"({held[:5]}). Drop those cells, or pass pretrain_extra_labels=False to use them unlabelled."
            )
        gene_index = {g: i for i, g in enumerate(genes)}
        pert = _pert_rows(conds, gene_index)
    else:
        pert = np.full((n, 2), PAD, dtype=np.int64)
    return X, pert


class _PretrainProgressBar(EpochProgressBar):
    """The fine-tuning plan's one-bar-per-run progress, labelled as pretraining."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if self._bar is not None:
            self._bar.set_description("pretraining")


class MaskedExpressionPlan(pl.LightningModule):
    """Masked expression modelling for a :class:`~priorgnn.models.transformer.GeneTransformer`.

    Per cell, ``tokens`` gene tokens are drawn at random (the perturbed genes always among them);
    a fraction ``mask_frac`` (at least one) has its value hidden and is reconstructed.
    """

    def __init__(self, net: torch.nn.Module, *, tokens: int, mask_frac: float, lr: float,
                 weight_decay: float, seed: int) -> None:
        super().__init__()
        self.net = net
        self.tokens, self.mask_frac = tokens, mask_frac
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        self._val_gen: torch.Generator | None = None

    def masked_loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
                    ) -> torch.Tensor:
        """Mean squared reconstruction error of the masked tokens of ``batch``."""
        x, pert = batch["x"], batch["pert"]
        B, G = x.shape
        K = min(self.tokens, G)

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(x.device)

        valid = pert >= 0
        rows, cols = valid.nonzero(as_tuple=True)
        genes = pert[rows, cols]
        flags = torch.zeros(B, G, dtype=torch.bool, device=x.device)
        flags[rows, genes] = True
        if K < G:
            scores = rand(B, G)
            scores[rows, genes] = 2.0
            idx = scores.topk(K, dim=1).indices
        else:
            idx = torch.arange(G, device=x.device).expand(B, G)
        values = x.gather(1, idx)
        u = rand(B, K)
        masked = (u < self.mask_frac) | (u == u.min(1, keepdim=True).values)
        pred = self.net.reconstruct(idx, values, flags.gather(1, idx), masked)
        err = (pred - values) ** 2
        return (err * masked).sum() / masked.sum()

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.seed * 100_003 + self.current_epoch)

    def training_step(self, batch, batch_idx):
        loss = self.masked_loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["x"]), prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_gen = torch.Generator().manual_seed(self.seed + 7919)

    def validation_step(self, batch, batch_idx):
        loss = self.masked_loss(batch, self._val_gen)
        self.log("val_loss", loss, batch_size=len(batch["x"]), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    @torch.no_grad()
    def heldout_loss(self, loader: DataLoader) -> float:
        """The held-out loss as :meth:`validation_step` computes it (same fixed draw), cell-weighted."""
        was = self.net.training
        self.net.eval()
        self.on_validation_epoch_start()
        total, n = 0.0, 0
        for batch in loader:
            total += float(self.masked_loss(batch, self._val_gen)) * len(batch["x"])
            n += len(batch["x"])
        self.net.train(was)
        return total / max(n, 1)


def pretrain_masked(net: torch.nn.Module, cells: CellSet, *, tokens: int, mask_frac: float, epochs: int,
                    max_steps: int | None, batch_size: int, lr: float, weight_decay: float, val_frac: float,
                    max_val_cells: int, seed: int, run_dir: str | None, accelerator: str = "cpu",
                    devices: int | str = 1, progress_bar: bool = False) -> dict[str, Any]:
    """Pretrain ``net`` in place on ``cells``; returns a summary (held-out loss before and after,
    the curve, sizes). The curve and summary go to ``run_dir/pretrain`` when ``run_dir`` is set."""
    pl.seed_everything(seed, workers=True, verbose=False)
    n = len(cells)
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(int(round(val_frac * n)), max_val_cells) if n >= 4 else 0
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    plan = MaskedExpressionPlan(net, tokens=tokens, mask_frac=mask_frac, lr=lr, weight_decay=weight_decay,
                                seed=seed)
    train_loader = DataLoader(range(len(train_idx)),
                              batch_sampler=ConditionBatchSampler(len(train_idx), batch_size, seed=seed),
                              collate_fn=lambda rows: cells.batch(train_idx[rows]))
    val_loader = (DataLoader(range(n_val), batch_size=batch_size, shuffle=False,
                             collate_fn=lambda rows: cells.batch(val_idx[rows])) if n_val else None)
    tmp = tempfile.mkdtemp(prefix="priorgnn-pretrain-") if run_dir is None else None
    out = Path(run_dir or tmp) / "pretrain"
    steps_per_epoch = len(train_loader)
    # validate within long epochs too (every 200 steps, and five times in a step-limited run)
    every = min(steps_per_epoch, 200, max(1, max_steps // 5) if max_steps else steps_per_epoch)
    initial = plan.heldout_loss(val_loader) if val_loader is not None else None
    trainer = pl.Trainer(
        max_epochs=epochs, max_steps=-1 if max_steps is None else max_steps, accelerator=accelerator,
        devices=devices, logger=CSVLogger(save_dir=str(out), name="", version="logs"),
        enable_checkpointing=False, deterministic=True if accelerator == "cpu" else "warn",
        enable_progress_bar=progress_bar,
        callbacks=[_PretrainProgressBar()] if progress_bar else [], enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=str(out),
        val_check_interval=every if val_loader is not None else None,
        limit_val_batches=1.0 if val_loader is not None else 0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(plan, train_dataloaders=train_loader, val_dataloaders=val_loader)
    net.cpu()
    final = plan.heldout_loss(val_loader) if val_loader is not None else None
    curve = []
    metrics = out / "logs" / "metrics.csv"
    if metrics.exists():
        import pandas as pd

        frame = pd.read_csv(metrics)
        if "val_loss" in frame:
            curve = [float(v) for v in frame["val_loss"].dropna()]
    summary = {
        "cells": int(len(train_idx)), "heldout_cells": int(n_val), "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step), "tokens": int(min(tokens, cells.n_genes)), "mask_frac": mask_frac,
        "initial_heldout_loss": initial, "final_heldout_loss": final, "heldout_curve": curve,
    }
    if tmp is None:
        summary["metrics_csv"] = "pretrain/logs/metrics.csv"
        write_json(out / "summary.json", summary)
        with atomic_path(out / "weights.pt", ".pt") as path:
            torch.save(net.state_dict(), path)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("pretraining: %d cells, %d steps; held-out reconstruction loss %s -> %s", len(train_idx),
             trainer.global_step, None if initial is None else f"{initial:.4f}",
             None if final is None else f"{final:.4f}")
    return summary


def read_pretrain_summary(run_dir: str | None) -> dict[str, Any] | None:
    """The summary an earlier pretraining wrote to ``run_dir`` (for a resumed fit), if any."""
    if run_dir is None:
        return None
    path = Path(run_dir) / "pretrain" / "summary.json"
    return read_json(path) if path.exists() else None
