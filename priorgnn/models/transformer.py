"""The prior-free transformer: every measured gene is a token, no GO, no co-expression.

The "foundation model" recipe (scGPT, Cui et al., Nature Methods 2024; Geneformer, Theodoris et
al., Nature 2023) against which PriorGNN's explicit knowledge is benchmarked, under the same
:class:`~priorgnn.models.base.PerturbationModel` interface and the same Lightning training plan.

Tokens
    One token per measured gene: a learned **identity embedding** (the gene's only description; no
    prior graph or file is ever read, ``uses_priors = ()``), plus an **embedding of its control
    expression value**, plus a learned **perturbation flag** embedding (perturbed / not). The value
    goes through a small MLP on the continuous log expression rather than scGPT's per-cell value
    bins or Geneformer's rank encoding: the fine-tuning input is the *control mean* (a continuous
    average, whose absolute level is the information), and the same encoder must read a single
    cell's values during pretraining; per-cell binning or ranking would discard the level. The
    control mean, not a sampled control cell, is the fine-tuning input because the target is a mean
    change and the loss already integrates over every control partner exactly
    (:mod:`priorgnn.training.targets`): a sampled cell would add input noise without information.
Network
    Pre-norm transformer encoder blocks (``torch.nn.functional.scaled_dot_product_attention``; no
    positional encoding, genes are a set), a final LayerNorm and a per-token MLP head predicting
    each gene's delta (change of mean expression from control). The head's last layer starts at
    zero, so training starts from the ``no_change`` prediction. Genes never perturbed in training
    are still tokens, so any condition over measured genes can be predicted; a gene that is not
    measured has no token and raises :class:`~priorgnn.errors.GraphError`.
Training
    :func:`priorgnn.training.fit.train_delta_module`, exactly as PriorGNN: the GEARS autofocus or MSE
    loss on per-condition moments, best/last checkpoints, early stopping on validation top-20-DE MSE,
    the CSV curve, resume, the CLI (``python train.py --model transformer --model-set key=value``).
Pretraining (optional, ``pretrain=True``)
    Masked expression modelling on the control cells and the cells of the training conditions
    only, plus optional extra cells (``pretrain_extra`` = an ``.h5ad``, or ``train.extra
    ['pretrain_cells']`` = an AnnData / PerturbationData / path), then fine-tuning of the whole
    network (pretraining uses Adam without weight decay, ``pretrain_lr``); see
    :mod:`priorgnn.models._transformer_pretrain`.

Memory strategy (``norman`` scale: ~5,000 gene tokens, ~90,000 cells, 2 CPU cores, 24 GB)
    * **Memory-efficient attention.** Attention has no dropout, so PyTorch's fused (flash) CPU
      kernel of ``scaled_dot_product_attention`` applies: attention memory grows linearly with the
      number of tokens, never as a ``[tokens, tokens]`` matrix. (With attention dropout the CPU falls
      back to the math kernel, which materialises the matrix: ~1.7 GB for one 5,000-token sequence
      through one 4-head layer, forward and backward, against 0.24 GB with the fused kernel.)
    * **Token subsampling in training** (``train_tokens``, default 1,024): each step, every
      condition sees its perturbed genes plus a fresh random subset of the other genes (attention
      runs within that subset, as scGPT and Geneformer train on gene subsets), and only those tokens
      are predicted. The randomly drawn tokens' outputs are scaled in the backward pass by
      (genes − perturbed) / (tokens − perturbed) (their values are unchanged), so each gene's loss
      term weighs, in expectation over the draw, what it weighs in the all-gene loss (the perturbed
      genes, always drawn, weigh 1). The other genes' outputs are set, without gradient, to the
      observed deltas, so they add only the loss's irreducible floor: under subsampling the logged
      ``train_loss`` is a lower bound, while validation (all tokens) is exact. Pretraining draws
      ``pretrain_tokens`` (256) tokens per cell.
    * **All tokens at prediction and validation**, ``predict_batch`` conditions per forward pass,
      without gradients.
    * **Gradient checkpointing** (``checkpointing=True``) recomputes each block in the backward
      pass, for larger ``train_tokens`` or models.
    * **No dense copy of the cells**: pretraining densifies one batch of cells at a time from the
      data's CSR matrix (and extra cells' own matrix).
    Measured by ``benchmarks/transformer_memory.py`` (results in ``benchmarks/results/transformer.md``):
    on the simulated norman screen the model adds under 0.6 GiB to the loaded data (~2.2 GiB); the
    run's peak (~8 GiB) is the data layer's one-off DE ranking and loss moments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from priorgnn.data.conditions import parse_condition
from priorgnn.errors import CheckpointError, ConfigError, GraphError
from priorgnn.models.base import Embeddings, PerturbationModel, PriorGraphs, TrainConfig, register_model

log = logging.getLogger(__name__)

__all__ = ["TransformerModel", "GeneTransformer", "TransformerBlock"]

PAD = -1


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: self-attention (no attention dropout, see the module docstring) and a
    GELU feed-forward layer, each with a residual connection."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v)  # [B, heads, L, D/heads]
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.ff(self.norm2(x)))


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class GeneTransformer(nn.Module):
    """The torch module. ``forward(pert_idx, fill=None) -> {'delta': [U, G]}``.

    ``pert_idx`` ``[U, 2]`` holds each condition's perturbed gene indices (``-1`` pads singles and
    control). In training mode with ``train_tokens < n_genes``, each condition is run on a random
    subset of tokens and ``fill`` ``[U, G]`` gives the (gradient-free) outputs of the others (see
    the module docstring); otherwise all tokens are run, ``predict_batch`` conditions at a time.
    :meth:`reconstruct` is the pretraining head.
    """

    def __init__(self, n_genes: int, control_value: torch.Tensor, *, d_model: int = 64, n_layers: int = 2,
                 n_heads: int = 4, d_ff: int = 128, dropout: float = 0.1, value_hidden: int = 32,
                 train_tokens: int | None = 1024, predict_batch: int = 16, checkpointing: bool = False) -> None:
        super().__init__()
        self.n_genes, self.d_model = n_genes, d_model
        self.train_tokens, self.predict_batch, self.checkpointing = train_tokens, predict_batch, checkpointing
        self.gene_emb = nn.Embedding(n_genes, d_model)
        self.value_enc = _mlp(1, value_hidden, d_model)
        self.flag_emb = nn.Embedding(2, d_model)
        self.mask_emb = nn.Parameter(torch.empty(d_model))
        for p in (self.gene_emb.weight, self.flag_emb.weight, self.mask_emb):
            nn.init.normal_(p, std=0.5)
        self.blocks = nn.ModuleList([TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.delta_head = _mlp(d_model, d_model, 1)
        nn.init.zeros_(self.delta_head[-1].weight)  # start from "no change"
        nn.init.zeros_(self.delta_head[-1].bias)
        self.value_head = _mlp(d_model, d_model, 1)
        self.register_buffer("control_value", torch.as_tensor(control_value, dtype=torch.float32).clone())

    # -- shared encoder ------------------------------------------------------------------------------
    def tokens(self, gene_idx: torch.Tensor, values: torch.Tensor, flags: torch.Tensor,
               masked: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, K, d]`` token embeddings: identity + value (or the mask embedding) + flag."""
        value = self.value_enc(values.unsqueeze(-1))
        if masked is not None:
            value = torch.where(masked.unsqueeze(-1), self.mask_emb.expand_as(value), value)
        return self.gene_emb(gene_idx) + value + self.flag_emb(flags.long())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm(x)

    def reconstruct(self, gene_idx: torch.Tensor, values: torch.Tensor, flags: torch.Tensor,
                    masked: torch.Tensor) -> torch.Tensor:
        """Pretraining: predicted expression ``[B, K]`` of the tokens (the masked ones are scored)."""
        return self.value_head(self.encode(self.tokens(gene_idx, values, flags, masked))).squeeze(-1)

    # -- perturbation prediction ---------------------------------------------------------------------
    def _flags(self, pert_idx: torch.Tensor) -> torch.Tensor:
        flags = torch.zeros(pert_idx.shape[0], self.n_genes, dtype=torch.bool, device=pert_idx.device)
        rows, cols = (pert_idx >= 0).nonzero(as_tuple=True)
        flags[rows, pert_idx[rows, cols]] = True
        return flags

    def _delta_tokens(self, gene_idx: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
        h = self.encode(self.tokens(gene_idx, self.control_value[gene_idx], flags))
        return self.delta_head(h).squeeze(-1)

    def predict_all(self, pert_idx: torch.Tensor) -> torch.Tensor:
        """``[U, G]`` deltas from all tokens, ``predict_batch`` conditions per pass."""
        outs = []
        for start in range(0, pert_idx.shape[0], self.predict_batch):
            p = pert_idx[start:start + self.predict_batch]
            ids = torch.arange(self.n_genes, device=p.device).expand(p.shape[0], self.n_genes)
            outs.append(self._delta_tokens(ids, self._flags(p)))
        if not outs:
            return torch.zeros(0, self.n_genes, device=pert_idx.device)
        return torch.cat(outs)

    def _forward_sampled(self, pert_idx: torch.Tensor, fill: torch.Tensor | None, k: int) -> torch.Tensor:
        U, G, dev = pert_idx.shape[0], self.n_genes, pert_idx.device
        flags = self._flags(pert_idx)
        scores = torch.rand(U, G, device=dev)
        scores[flags] = 2.0  # perturbed genes are always drawn
        idx = scores.topk(k, dim=1).indices
        tok_flags = flags.gather(1, idx)
        pred = self._delta_tokens(idx, tok_flags)
        p = flags.sum(1, keepdim=True).to(pred.dtype)
        w = torch.where(tok_flags, torch.ones_like(pred), (G - p) / (k - p))
        pred = pred * w + (pred * (1 - w)).detach()  # value unchanged, gradient scaled by w
        base = torch.zeros(U, G, dtype=pred.dtype, device=dev) if fill is None else fill.detach().to(pred.dtype)
        return base.scatter(1, idx, pred)

    def forward(self, pert_idx: torch.Tensor, fill: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        k = self.train_tokens
        if self.training and k is not None and k < self.n_genes:
            return {"delta": self._forward_sampled(pert_idx, fill, k)}
        return {"delta": self.predict_all(pert_idx)}


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"transformer: {name} must be an integer >= {low}, not {value!r}.")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                 high_open: bool = True) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(f"transformer: {name} must be a number in {lo}{low}, {high}{hi}, not {value!r}.")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"transformer: {name} must be true or false, not {value!r}.")
    return bool(value)


@register_model("transformer")
class TransformerModel(PerturbationModel):
    """User-facing prior-free transformer (see the module docstring). Hyperparameters are
    keyword-only; a bad value raises :class:`~priorgnn.errors.ConfigError`.

    Parameters
    ----------
    d_model, n_layers, n_heads, d_ff, dropout
        Size of the encoder: width (divisible by ``n_heads``), blocks, attention heads,
        feed-forward width, dropout of the residual and feed-forward paths.
    value_hidden
        Hidden width of the expression-value MLP.
    loss, direction_lambda
        ``'autofocus'`` (GEARS, with the differentiable direction term weighted by
        ``direction_lambda``) or ``'mse'``, as for PriorGNN.
    train_tokens
        Gene tokens per condition per training step (``None``: all genes).
    predict_batch
        Conditions per forward pass at prediction and validation (all tokens).
    checkpointing
        Gradient checkpointing of the encoder blocks.
    pretrain
        Masked-expression pretraining before fine-tuning (``False`` for the ablation).
    pretrain_epochs, pretrain_steps
        Passes over the pretraining cells, and an optional cap on optimiser steps.
    pretrain_batch_size, pretrain_lr, pretrain_tokens, mask_frac
        Cells per step, learning rate, tokens drawn per cell, fraction of them masked.
    pretrain_val_frac, pretrain_max_val_cells
        Held-out share of the pretraining cells (for the pretraining curve), and its cap.
    pretrain_extra, pretrain_extra_labels
        An ``.h5ad`` of extra log-normalised cells over the same genes (e.g. from
        ``Simulator.sample_cells``) added to pretraining; whether their ``obs['condition']`` sets the
        perturbation flags (held-out conditions are then refused).
    backbone
        ``'none'`` (default): the network's output as it is. ``'additive'``: PriorGNN's additive
        backbone for combinations, applied at prediction: a double is the network's prediction with
        each of its singles that was measured in training put in place of the network's own single,
        ``T(A+B) + Σ_g (δ_g − T(g))``, i.e. the sum of the measured singles plus the network's
        interaction ``T(A+B) − T(A) − T(B)``. It lets the study compare explicit with implicit
        knowledge on doubles without comparing architectures (the training loss is unchanged).
    """

    trainable = True
    uses_priors: ClassVar[tuple[str, ...]] = ()
    needs_cells = True  # masked-expression pretraining reads single cells

    def __init__(self, *, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, d_ff: int = 128,
                 dropout: float = 0.1, value_hidden: int = 32, loss: str = "autofocus",
                 direction_lambda: float = 0.1, train_tokens: int | None = 1024, predict_batch: int = 16,
                 checkpointing: bool = False, pretrain: bool = True, pretrain_epochs: int = 5,
                 pretrain_steps: int | None = None, pretrain_batch_size: int = 64, pretrain_lr: float = 1e-3,
                 pretrain_tokens: int = 256, mask_frac: float = 0.25, pretrain_val_frac: float = 0.05,
                 pretrain_max_val_cells: int = 1000, pretrain_extra: str | None = None,
                 pretrain_extra_labels: bool = False, backbone: str = "none", **unknown: Any) -> None:
        if unknown:
            known = sorted(k for k in TransformerModel.__init__.__kwdefaults__)
            raise ConfigError(f"transformer: unknown hyperparameter(s) {sorted(unknown)}; known: {known}.")
        d_model = _check_int("d_model", d_model, 1)
        n_heads = _check_int("n_heads", n_heads, 1)
        if d_model % n_heads:
            raise ConfigError(f"transformer: d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        if loss not in ("autofocus", "mse"):
            raise ConfigError(f"transformer: loss must be 'autofocus' or 'mse', not {loss!r}.")
        if backbone not in ("none", "additive"):
            raise ConfigError(f"transformer: backbone must be 'none' or 'additive', not {backbone!r}.")
        if train_tokens is not None:
            train_tokens = _check_int("train_tokens (or null for all genes)", train_tokens, 3)
        if pretrain_steps is not None:
            pretrain_steps = _check_int("pretrain_steps (or null for no cap)", pretrain_steps, 1)
        if pretrain_extra is not None and not isinstance(pretrain_extra, str):
            raise ConfigError(f"transformer: pretrain_extra must be a path to an .h5ad, not {pretrain_extra!r}.")
        super().__init__(
            d_model=d_model, n_layers=_check_int("n_layers", n_layers, 1), n_heads=n_heads,
            d_ff=_check_int("d_ff", d_ff, 1), dropout=_check_float("dropout", dropout, 0.0, 1.0),
            value_hidden=_check_int("value_hidden", value_hidden, 1), loss=loss,
            direction_lambda=_check_float("direction_lambda", direction_lambda, 0.0, float("inf")),
            train_tokens=train_tokens, predict_batch=_check_int("predict_batch", predict_batch, 1),
            checkpointing=_check_bool("checkpointing", checkpointing), pretrain=_check_bool("pretrain", pretrain),
            pretrain_epochs=_check_int("pretrain_epochs", pretrain_epochs, 0), pretrain_steps=pretrain_steps,
            pretrain_batch_size=_check_int("pretrain_batch_size", pretrain_batch_size, 1),
            pretrain_lr=_check_float("pretrain_lr", pretrain_lr, 0.0, float("inf"), low_open=True),
            pretrain_tokens=_check_int("pretrain_tokens", pretrain_tokens, 3),
            mask_frac=_check_float("mask_frac", mask_frac, 0.0, 1.0, low_open=True),
            pretrain_val_frac=_check_float("pretrain_val_frac", pretrain_val_frac, 0.0, 0.5, high_open=False),
            pretrain_max_val_cells=_check_int("pretrain_max_val_cells", pretrain_max_val_cells, 0),
            pretrain_extra=pretrain_extra,
            pretrain_extra_labels=_check_bool("pretrain_extra_labels", pretrain_extra_labels),
            backbone=backbone,
        )
        self.net: GeneTransformer | None = None
        self.gene_index: dict[str, int] = {}
        self.trained_perts: set[str] = set()

    # -- building ------------------------------------------------------------------------------------
    def _build(self, genes: list[str], control_mean: np.ndarray, trained_perts: set[str]) -> None:
        hp = self.hparams
        self.genes = list(genes)
        self.gene_index = {g: i for i, g in enumerate(self.genes)}
        self.trained_perts = set(trained_perts)
        self.net = GeneTransformer(
            len(self.genes), torch.as_tensor(np.asarray(control_mean), dtype=torch.float32),
            d_model=hp["d_model"], n_layers=hp["n_layers"], n_heads=hp["n_heads"], d_ff=hp["d_ff"],
            dropout=hp["dropout"], value_hidden=hp["value_hidden"], train_tokens=hp["train_tokens"],
            predict_batch=hp["predict_batch"], checkpointing=hp["checkpointing"],
        )

    def _encode_conditions(self, conditions: Sequence[str]) -> torch.Tensor:
        """``[U, 2]`` perturbed gene (token) indices, ``-1`` padded."""
        pert_idx = torch.full((len(conditions), 2), PAD, dtype=torch.long)
        for i, c in enumerate(conditions):
            genes = parse_condition(c)
            if len(genes) > 2:
                raise GraphError(f"cannot encode {c!r}: the transformer takes conditions of at most two genes.")
            for j, g in enumerate(genes):
                if g not in self.gene_index:
                    raise GraphError(
                        f"cannot encode {c!r}: gene {g!r} is not a measured gene of the data the transformer was "
                        "trained on, so it has no token (the prior-free transformer knows a gene only through "
                        "its measured expression). Ask about measured genes, or train on data that measure "
                        f"{g!r}."
                    )
                pert_idx[i, j] = self.gene_index[g]
        return pert_idx

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, data, split, *, graphs: PriorGraphs | None = None, train: TrainConfig | None = None):
        """Pretrain (optionally) and fine-tune on ``split``. ``graphs`` is accepted for the common
        interface and never read: the model is prior-free."""
        from priorgnn.models._transformer_pretrain import (
            CellSet,
            extra_cells,
            pretrain_masked,
            pretraining_cells,
            read_pretrain_summary,
        )
        from priorgnn.training.fit import train_delta_module
        from priorgnn.training.targets import ConditionTargets

        hp = self.hparams
        train = train or TrainConfig()
        from priorgnn.training.fit import cpu_threads

        torch.set_num_threads(cpu_threads(train.threads))  # fixed reduction order
        torch.manual_seed(train.seed)  # the initial weights depend on the seed only
        self._remember_data(data, split)
        self._remember_singles(data, split)
        trained = {g for c in split.train for g in parse_condition(c)}
        self._build(self.genes, self.control_mean, trained)
        train_inputs = self._encode_conditions(split.train)  # refuses unmeasured genes early
        val_inputs = self._encode_conditions(split.val)
        self.fit_info["priors"] = "none (prior-free)"

        timings: dict[str, float] = {}
        if hp["pretrain"] and train.resume is None:
            t0 = time.perf_counter()
            rows, pert = pretraining_cells(data, split, self.gene_index)
            parts = [(data.X, rows, pert)]
            extra_sources = [s for s in (hp["pretrain_extra"], (train.extra or {}).get("pretrain_cells"))
                             if s is not None]
            n_extra = 0
            for source in extra_sources:
                X, p = extra_cells(source, self.genes, split, labels=hp["pretrain_extra_labels"])
                parts.append((X, np.arange(X.shape[0]), p))
                n_extra += X.shape[0]
            cells = CellSet(parts, len(self.genes))
            summary = pretrain_masked(
                self.net, cells, tokens=hp["pretrain_tokens"], mask_frac=hp["mask_frac"],
                epochs=hp["pretrain_epochs"], max_steps=hp["pretrain_steps"],
                batch_size=hp["pretrain_batch_size"], lr=hp["pretrain_lr"], weight_decay=0.0,
                val_frac=hp["pretrain_val_frac"], max_val_cells=hp["pretrain_max_val_cells"], seed=train.seed,
                run_dir=train.run_dir, accelerator=train.accelerator, devices=train.devices,
                progress_bar=train.progress_bar,
            )
            summary["data_cells"] = int(len(rows))
            summary["extra_cells"] = int(n_extra)
            self.fit_info["pretraining"] = summary
            timings["pretrain_s"] = time.perf_counter() - t0
        elif hp["pretrain"]:
            # a resumed fit: the checkpoint holds the pretrained-then-fine-tuned weights
            self.fit_info["pretraining"] = read_pretrain_summary(train.run_dir) or {"resumed": True}

        fill = None
        if hp["train_tokens"] is not None and hp["train_tokens"] < len(self.genes):
            fill = torch.from_numpy(ConditionTargets.from_data(data, split.train).delta).float()
        inputs = {"train": train_inputs, "val": val_inputs}

        def encode(split_name: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            out = {"pert_idx": inputs[split_name][rows]}
            if split_name == "train" and fill is not None:
                out["fill"] = fill[rows]
            return out

        plan_kwargs = {"loss": hp["loss"], "direction_lambda": hp["direction_lambda"]}
        t0 = time.perf_counter()
        self.fit_info["training"] = train_delta_module(self.net, encode, data, split, train, plan_kwargs)
        timings["finetune_s"] = time.perf_counter() - t0
        self.fit_info["timings"] = timings
        self.net.cpu().eval()
        return self

    # -- prediction ----------------------------------------------------------------------------------
    def predict_delta(self, conditions: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        conditions = list(conditions)
        pert_idx = self._encode_conditions(conditions)
        self.net.eval()
        with torch.no_grad():
            delta = self.net.predict_all(pert_idx).double().numpy()
        measured = getattr(self, "_measured", None)
        if self.hparams.get("backbone", "none") == "additive" and measured:
            swap = sorted({g for c in conditions if len(parse_condition(c)) > 1 for g in parse_condition(c)
                           if g in measured})
            if swap:
                singles = [f"{g}+ctrl" for g in swap]
                with torch.no_grad():
                    own = self.net.predict_all(self._encode_conditions(singles)).double().numpy()
                fix = {g: measured[g] - own[i] for i, g in enumerate(swap)}
                for i, c in enumerate(conditions):
                    genes = parse_condition(c)
                    if len(genes) > 1:
                        for g in genes:
                            if g in fix:
                                delta[i] += fix[g]
        return delta

    def prediction_notes(self, conditions: Sequence[str]) -> dict[str, list]:
        """``n_untrained_genes``: perturbed genes of the condition never perturbed in training."""
        return {"n_untrained_genes": [sum(g not in self.trained_perts for g in parse_condition(c))
                                      for c in conditions]}

    def gene_embeddings(self) -> np.ndarray:
        """The learned gene identity (token) embeddings ``[n_genes, d_model]``, rows in ``self.genes``
        order: the latent space compared with GO and true-effect similarity in the study."""
        self._check_fitted()
        return self.net.gene_emb.weight.detach().cpu().double().numpy()

    def embeddings(self) -> Embeddings:
        """The gene identity embedding (:meth:`gene_embeddings`), one row per measured gene."""
        return Embeddings(self.gene_embeddings(), list(self.genes), "gene identity embedding")

    # -- persistence ---------------------------------------------------------------------------------
    def _remember_singles(self, data, split) -> None:
        """The measured training singles, for ``backbone='additive'``."""
        s = data.summaries
        self._measured = {parse_condition(c)[0]: np.asarray(s.delta(c), dtype=np.float64)
                          for c in split.train if len(parse_condition(c)) == 1}

    def _state(self) -> dict[str, np.ndarray]:
        out = {"trained_perts": np.array(sorted(self.trained_perts), dtype=str)}
        measured = getattr(self, "_measured", None) or {}
        if self.hparams.get("backbone", "none") == "additive":
            names = sorted(measured)
            out["measured_genes"] = np.array(names, dtype=str)
            out["measured_deltas"] = (np.stack([measured[g] for g in names]) if names
                                      else np.zeros((0, len(self.genes or []))))
        return out

    def save(self, directory):
        directory = super().save(directory)
        from priorgnn._io import atomic_path

        with atomic_path(Path(directory) / "weights.pt", ".pt") as tmp:
            torch.save(self.net.state_dict(), tmp)
        return directory

    def _load_state(self, arrays: dict[str, np.ndarray], directory: Path) -> None:
        self._build(self.genes, self.control_mean, {str(g) for g in arrays["trained_perts"]})
        if "measured_genes" in arrays:
            self._measured = {str(g): arrays["measured_deltas"][i] for i, g in enumerate(arrays["measured_genes"])}
        path = Path(directory) / "weights.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        except FileNotFoundError:
            raise CheckpointError(f"{directory}: weights.pt is missing; the saved transformer is incomplete.") from None
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(
                f"{directory}: weights do not fit this transformer configuration ({exc}).") from None
        self.net.eval()
