"""PriorGNN: the GEARS architecture (Roohani et al., Nature Biotechnology 2023), done efficiently,
with any prior pluggable and an option to use measured single effects for combinations.

Architecture (defaults as GEARS: hidden 64, one SGConv layer per graph; plus the knowledge pathway
below):

* **Gene branch.** Gene embeddings, plus 0.2 x a positional embedding refined by SGConv over the
  co-expression graph, through an MLP: ``[G, H]``, computed **once per batch** (GEARS computes it for
  every cell of a batch, on a batched graph in which only the first copy is connected).
* **Perturbation branch.** Perturbation embeddings refined by SGConv over the GO graph: ``[P, H]``,
  once per batch. A condition's gene embeddings are summed, passed through an MLP and added to every
  gene's embedding: ``[U, G, H]`` for the ``U`` distinct conditions of the batch.
* **Decoder.** A shared MLP, gene-specific output weights, and GEARS's cross-gene layer (an MLP over
  all genes' first outputs, concatenated back to each gene), giving the delta from control
  ``[U, G]``. ``decoder='shared'`` replaces the gene-specific weights and cross-gene layer with one
  linear map shared by all genes (for the decoder ablation).

Either graph may be ``None`` (the branch then uses its embeddings without message passing), so the
study can swap priors out.

**Combinations** (hyperparameter ``singles``). GEARS never uses the measured effects of a
combination's singles: its network maps the sum of the genes' embeddings to the double's effect,
and nothing makes that close to the sum of the singles. Here a double is, by default
(``singles='residual'``), the additive expectation plus a learned interaction:
``δ̂(A+B) = s_A + s_B + I(A, B)``, where ``s_i`` is the single measured in training when there is
one and the network's prediction for the single otherwise, and ``I`` is a symmetric bilinear
interaction head (``I_g = Σ_h base_{g,h} (W z_AB)_h`` with ``z_AB = f(e_A) ⊙ f(e_B)``), zero at
initialisation, trained on the training doubles. Singles are always predicted by the network.
``singles='predicted'`` uses the network's singles even when measured (an ablation), and
``singles='none'`` is GEARS (the network sees the combination).

**Unseen genes.** Two departures from GEARS help a gene never perturbed in training: its
perturbation embedding starts at zero (``pert_init='zero'``; GEARS draws it at random, and an
untrained random embedding is noise at prediction time), so it is described by its GO neighbours
alone; and in the additive modes the network predicts a single as the mean training single plus a
residual (``center='mean'``), so that with no information it falls back to the ``mean`` baseline
rather than to an arbitrary output. ``pert_dropout`` optionally hides a share of the trained genes'
own embeddings at each step, as if they were unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GATConv, SGConv

from priorgnn.data.conditions import parse_condition
from priorgnn.errors import CheckpointError, ConfigError, GraphError
from priorgnn.models.base import (
    DeltaPrediction,
    Embeddings,
    PerturbationModel,
    PriorGraphs,
    TrainConfig,
    register_model,
)
from priorgnn.models.baselines import training_singles
from priorgnn.models.pair_kernel import PAIR_SHRINK

log = logging.getLogger(__name__)

__all__ = ["PriorGNN", "PriorGNNModule", "MLP"]

PAD = -1
#: validation doubles of measured singles needed before the learned interaction may apply to such pairs
GATE_MIN_PAIRS = 5
#: the values of ``pair_backbone`` that are fitted on the training doubles (see :class:`PriorGNN`), and those
#: of them whose coefficients include the overlap terms and the relation slopes (a ``pair_auto``-family fit)
FITTED_BACKBONES = ("scaled", "overlap", "relation", "auto")
PAIR_AUTO_BACKBONES = FITTED_BACKBONES[1:]
#: every value of ``pair_backbone`` (``additive`` has nothing to fit)
PAIR_BACKBONE_OPTIONS = (*FITTED_BACKBONES, "additive")


class MLP(nn.Sequential):
    """GEARS's MLP: ``Linear -> BatchNorm -> ReLU`` per layer, without the final ReLU."""

    def __init__(self, sizes: Sequence[int], batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Linear(a, b))
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU())
        super().__init__(*layers[:-1])


def _bn_safe(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` (containing BatchNorm) to ``x``; a single row in training mode is duplicated
    (BatchNorm cannot estimate a variance from one row), as GEARS does."""
    if module.training and x.shape[0] == 1:
        return module(torch.cat([x, x]))[:1]
    return module(x)


class PriorGNNModule(nn.Module):
    """The torch module. ``forward(pert_idx, single_rows=None)`` -> ``{'delta': [U, G]}``.

    ``pert_idx`` is ``[U, 2]`` (``-1`` pads singles and control). ``single_rows`` ``[U, 2]`` gives, per
    perturbed gene of a double, the row of its measured single in the ``single_delta`` buffer (``-1``
    if none) for the residual correction.
    """

    def __init__(self, n_genes: int, n_perts: int, *, hidden: int = 64,
                 coexpression: tuple[torch.Tensor, torch.Tensor] | None = None,
                 go: tuple[torch.Tensor, torch.Tensor] | None = None, gene_layers: int = 1,
                 go_layers: int = 1, decoder: Literal["gene_specific", "shared"] = "gene_specific",
                 uncertainty: bool = False, singles: str = "residual", pert_init: str = "normal",
                 pert_dropout: float = 0.0, trained_pert_idx: torch.Tensor | None = None,
                 pert_gene_idx: torch.Tensor | None = None, self_init: float = 0.0,
                 single_pert_idx: torch.Tensor | None = None,
                 single_delta: torch.Tensor | None = None, mean_delta: torch.Tensor | None = None,
                 prop_weight: torch.Tensor | None = None, prop_dev: torch.Tensor | None = None,
                 pair_overlap: bool = False,
                 prop_lambda: float = 0.0, null_center: bool = False, go_conv: str = "sgconv") -> None:
        super().__init__()
        if go_conv not in ("sgconv", "gat"):
            raise ConfigError(f"go_conv must be 'sgconv' or 'gat', not {go_conv!r}.")
        self.go_conv = go_conv
        self.null_center = bool(null_center)
        H = hidden
        if singles not in ("residual", "predicted", "none"):
            raise ConfigError(f"singles must be 'residual', 'predicted' or 'none', not {singles!r}.")
        self.singles = singles
        self.n_genes, self.n_perts, self.hidden, self.decoder = n_genes, n_perts, H, decoder
        self.gene_emb = nn.Embedding(n_genes, H, max_norm=True)
        self.bn_emb = nn.BatchNorm1d(H)
        self.emb_trans_v2 = MLP([H, H, H])
        self.has_coexpression = coexpression is not None
        if coexpression is not None:
            self.register_buffer("coex_index", coexpression[0].long())
            self.register_buffer("coex_weight", coexpression[1].float())
            self.emb_pos = nn.Embedding(n_genes, H, max_norm=True)
            self.layers_emb_pos = nn.ModuleList([SGConv(H, H, 1) for _ in range(gene_layers)])
        self.pert_emb = nn.Embedding(n_perts, H, max_norm=True)
        if pert_init == "zero":
            # a gene never perturbed in training keeps a zero embedding: it is described by its GO
            # neighbours only, not by random noise
            nn.init.zeros_(self.pert_emb.weight)
        elif pert_init != "normal":
            raise ConfigError(f"pert_init must be 'normal' or 'zero', not {pert_init!r}.")
        self.pert_dropout = float(pert_dropout)
        # GEARS defines (but never uses) a perturbation embedding added only to the perturbed genes
        # (``pert_w``); here it is used: the perturbed gene itself learns to respond to being targeted
        if pert_gene_idx is not None:
            self.register_buffer("pert_gene_idx", pert_gene_idx.long())
            self.pert_flag = nn.Parameter(torch.zeros(1, H))
            # the targeted gene's own change read out by one head shared by all genes: the
            # gene-specific decoder weights of a gene never perturbed in training have never seen the
            # flag, so without a shared readout an unseen target could not learn to go up (CRISPRa) or
            # down (CRISPRi). Its weights start at zero and its bias at ``self_init``, the mean change
            # of the training singles' own targets (as the network's singles start from the mean
            # training single): with a few condition batches per epoch, a bias learnt from zero would
            # need hundreds of steps to reach a typical CRISPRa log fold change.
            self.self_head = nn.Linear(H, 1)
            nn.init.zeros_(self.self_head.weight)
            nn.init.constant_(self.self_head.bias, float(self_init))
        else:
            self.pert_flag = None
            self.self_head = None
        if trained_pert_idx is None:
            trained_pert_idx = torch.zeros(0, dtype=torch.long)
        self.register_buffer("trained_pert_idx", trained_pert_idx.long())
        # the scale of the network's residual for genes never perturbed in training (set after
        # training by PriorGNN's validation gate; 1: as trained)
        self.register_buffer("unseen_scale", torch.ones(()))
        self.has_go = go is not None
        if go is not None:
            self.register_buffer("go_index", go[0].long())
            self.register_buffer("go_weight", go[1].float())
            if go_conv == "gat":  # attention over GO neighbours, the Jaccard weight as an edge feature
                self.sim_layers = nn.ModuleList([GATConv(H, H, heads=1, edge_dim=1, add_self_loops=False)
                                                 for _ in range(go_layers)])
            else:
                self.sim_layers = nn.ModuleList([SGConv(H, H, 1) for _ in range(go_layers)])
        self.pert_fuse = MLP([H, H, H])
        self.bn_pert_base = nn.BatchNorm1d(H)
        self.recovery_w = MLP([H, 2 * H, H])
        if decoder == "gene_specific":
            self.indv_w1 = nn.Parameter(torch.empty(n_genes, H, 1))
            self.indv_b1 = nn.Parameter(torch.empty(n_genes, 1))
            self.cross_gene_state = MLP([n_genes, H, H])
            self.indv_w2 = nn.Parameter(torch.empty(1, n_genes, H + 1))
            self.indv_b2 = nn.Parameter(torch.empty(1, n_genes))
            for p in (self.indv_w1, self.indv_b1, self.indv_w2, self.indv_b2):
                nn.init.xavier_normal_(p)
        elif decoder == "shared":
            self.shared_out = nn.Linear(H, 1)
        else:
            raise ConfigError(f"decoder must be 'gene_specific' or 'shared', not {decoder!r}.")
        if singles != "none":
            self.pair_mlp = MLP([H, H, H], batch_norm=False)  # doubles per batch can be few: no BatchNorm
            self.interaction = nn.Linear(H, H, bias=False)
            nn.init.zeros_(self.interaction.weight)  # start from the additive expectation
            # 1: the interaction applies to pairs of measured singles too; 0: those pairs are
            # additive (set after training by the validation gate, see PriorGNN.fit)
            self.register_buffer("measured_pair_interaction", torch.ones(()))
            # the backbone of a double, c_L δ_L + c_S δ_S over its larger and smaller single (Norman et
            # al.'s scaled sum, fitted on the training doubles by PriorGNN.fit; (1, 1): additive); the
            # perturbed genes' own change stays the sum
            self.register_buffer("pair_coef", torch.ones(2))
            if pair_overlap:
                # and the shared targets' buffering or synergy, b₊ o₊ + b₋ o₋ (the overlap_additive
                # baseline's terms, fitted with c_L, c_S); registered only then, so that the saved
                # weights of the other backbones keep their keys
                self.register_buffer("pair_overlap", torch.zeros(2))
                # and the relation backbone's slopes of c_L and of c_S on (r_LS, r_SL, |r_LS|, |r_SL|)
                # (interaction_baselines.pair_relations): zeros unless that backbone is chosen
                self.register_buffer("pair_relation", torch.zeros(8))
            # the pair kernel correction of doubles of measured singles (priorgnn.models.pair_kernel),
            # fitted after training by PriorGNN.fit: the gene kernel over the measured singles, the
            # training doubles' rows of it and their dual coefficients (none: no correction)
            self.register_buffer("pair_kernel_genes", torch.zeros(0, 0))
            self.register_buffer("pair_kernel_rows", torch.zeros(0, 2, dtype=torch.long))
            self.register_buffer("pair_kernel_alpha", torch.zeros(0, n_genes))
            # how far a double of two measured singles moves from their sum toward the backbone (and the
            # interaction) at prediction time: additive + s·(backbone − additive), before the pair kernel
            # correction (set after training by PriorGNN.fit; 1: no shrinkage, as saved weights without it)
            self.register_buffer("pair_shrink", torch.ones(()))
        self.uncertainty = uncertainty
        if uncertainty:
            self.uncertainty_w = MLP([H, 2 * H, H, 1])
        if single_pert_idx is None:
            single_pert_idx = torch.zeros(0, dtype=torch.long)
            single_delta = torch.zeros(0, n_genes)
        self.register_buffer("single_pert_idx", single_pert_idx.long())
        self.register_buffer("single_delta", single_delta.float())
        # the network's singles are residuals from the mean training single (zeros: no centring)
        self.register_buffer("mean_delta", (mean_delta if mean_delta is not None else torch.zeros(n_genes)).float())
        # the propagation pathway (knowledge='propagate'): a single is also moved by λ times the
        # GO-weighted mean of its neighbours' measured deviations from the mean single
        # (priorgnn.models.neighbours); prop_weight [P, T] is row-normalised, prop_dev [T, G]
        self.has_propagation = prop_weight is not None
        if prop_weight is not None:
            self.register_buffer("prop_weight", prop_weight.float())
            self.register_buffer("prop_dev", prop_dev.float())
            self.register_buffer("prop_lambda", torch.tensor(float(prop_lambda)))

    # -- branches ------------------------------------------------------------------------------------
    def gene_branch(self) -> torch.Tensor:
        """``[G, H]`` gene embeddings, once per batch."""
        ids = torch.arange(self.n_genes, device=self.gene_emb.weight.device)
        base = torch.relu(self.bn_emb(self.gene_emb(ids)))
        if self.has_coexpression:
            pos = self.emb_pos(ids)
            for i, layer in enumerate(self.layers_emb_pos):
                pos = layer(pos, self.coex_index, self.coex_weight)
                if i < len(self.layers_emb_pos) - 1:
                    pos = pos.relu()
            base = base + 0.2 * pos
        return self.emb_trans_v2(base)

    def pert_branch(self) -> torch.Tensor:
        """``[P, H]`` perturbation embeddings, once per batch."""
        ids = torch.arange(self.n_perts, device=self.pert_emb.weight.device)
        emb = self.pert_emb(ids)
        if self.training and self.pert_dropout > 0 and len(self.trained_pert_idx):
            # hide a random share of the trained genes' own embeddings, as if they were unseen, so the
            # network learns to predict a gene from its GO neighbours
            hide = self.trained_pert_idx[torch.rand(len(self.trained_pert_idx), device=emb.device) < self.pert_dropout]
            keep = torch.ones(self.n_perts, 1, device=emb.device)
            keep[hide] = 0.0
            emb = emb * keep
        if self.has_go:
            for i, layer in enumerate(self.sim_layers):
                if self.go_conv == "gat":  # the aligned graph carries self-loops already
                    emb = layer(emb, self.go_index, self.go_weight[:, None])
                else:
                    emb = layer(emb, self.go_index, self.go_weight)
                if i < len(self.sim_layers) - 1:
                    emb = emb.relu()
        return emb

    def _fused(self, pert_global: torch.Tensor, pert_idx: torch.Tensor) -> torch.Tensor:
        """``[U, H]``: the pert-fuse MLP of the summed embeddings (zero for control rows)."""
        mask = pert_idx >= 0
        summed = (pert_global[pert_idx.clamp_min(0)] * mask[..., None]).sum(1)
        has_pert = mask.any(1)
        fused = torch.zeros_like(summed)
        if has_pert.any():
            fused[has_pert] = _bn_safe(self.pert_fuse, summed[has_pert])
        return fused

    def _hidden(self, base: torch.Tensor, fused: torch.Tensor, pert_idx: torch.Tensor) -> torch.Tensor:
        """``[U*G, H]``: every gene's embedding plus its condition's, plus the perturbation flag on the
        perturbed genes themselves; normalised."""
        U, (G, H) = fused.shape[0], base.shape
        x = (base[None, :, :] + fused[:, None, :]).reshape(U * G, H)
        if self.pert_flag is not None:
            rows, genes = self._targets(pert_idx)
            if len(rows):
                x = x.index_add(0, rows * G + genes, self.pert_flag.expand(len(rows), H))
        return torch.relu(self.bn_pert_base(x))

    def _targets(self, pert_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, gene) of every perturbed gene that is also a measured gene."""
        table = self.pert_gene_idx
        if pert_idx.numel() and int(pert_idx.max()) >= len(table):  # the null row of forward()
            table = torch.cat([table, table.new_full((1,), -1)])
        gene = table[pert_idx.clamp_min(0)]
        hit = (pert_idx >= 0) & (gene >= 0)
        rows = torch.arange(pert_idx.shape[0], device=pert_idx.device)[:, None].expand_as(pert_idx)[hit]
        return rows, gene[hit]

    def _pair_relations(self, pair_idx: torch.Tensor, a_big: torch.Tensor, big: torch.Tensor,
                        small: torch.Tensor) -> torch.Tensor:
        """``[D, 4]``: ``(r_LS, r_SL, |r_LS|, |r_SL|)`` of each double (``pair_idx`` ``[D, 2]``; ``a_big``: its
        first gene has the larger single), as :func:`priorgnn.models.interaction_baselines.pair_relations`
        computes them, in torch and without gradient: they are features of the pair, not outputs."""
        from priorgnn.models.interaction_baselines import RELATION_CLIP

        gene = self.pert_gene_idx[pair_idx]  # [D, 2]; -1: the perturbed gene is not measured
        g_big, g_small = torch.where(a_big, gene[:, 0], gene[:, 1]), torch.where(a_big, gene[:, 1], gene[:, 0])

        def ratio(other: torch.Tensor, own: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
            at = col.clamp_min(0)[:, None]
            x, o = other.gather(1, at)[:, 0], own.gather(1, at)[:, 0]
            ok = (col >= 0) & (o != 0) & torch.isfinite(o) & torch.isfinite(x)
            return torch.where(ok, x / torch.where(ok, o, torch.ones_like(o)), torch.zeros_like(o)).clamp(
                -RELATION_CLIP, RELATION_CLIP)

        with torch.no_grad():
            r_ls, r_sl = ratio(big, small, g_small), ratio(small, big, g_big)
        return torch.stack([r_ls, r_sl, r_ls.abs(), r_sl.abs()], dim=1)

    def decode(self, base: torch.Tensor, pert_global: torch.Tensor, pert_idx: torch.Tensor) -> dict:
        """GEARS's network for each condition row: ``{'delta': [U, G]}`` (+ ``'logvar'``)."""
        U, G, H = pert_idx.shape[0], self.n_genes, self.hidden
        x = self._hidden(base, self._fused(pert_global, pert_idx), pert_idx)
        h3 = self.recovery_w(x).reshape(U, G, H)
        if self.decoder == "gene_specific":
            out = (h3 * self.indv_w1[None, :, :, 0]).sum(-1) + self.indv_b1[:, 0]  # [U, G]
            cross = _bn_safe(self.cross_gene_state, out)  # [U, H]
            w2 = self.indv_w2[0]  # [G, H+1]: concatenating [out, cross] and weighting per gene
            delta = out * w2[:, 0] + cross @ w2[:, 1:].T + self.indv_b2
        else:
            delta = self.shared_out(h3).squeeze(-1)
        if self.self_head is not None:
            rows, genes = self._targets(pert_idx)
            if len(rows):
                delta = delta.index_put((rows, genes), self.self_head(h3[rows, genes]).squeeze(-1), accumulate=True)
        result = {"delta": delta}
        if self.uncertainty:
            result["logvar"] = self.uncertainty_w(x).reshape(U, G)
        return result

    def _pair_kernel(self, single_rows: torch.Tensor, pert_idx: torch.Tensor) -> torch.Tensor:
        """``[n, G]``: the pair kernel correction of ``n`` doubles of two measured singles (their rows of
        ``single_delta``), zero on the pairs' own perturbed genes (:mod:`priorgnn.models.pair_kernel`)."""
        t = self.pair_kernel_rows
        ka, kb = self.pair_kernel_genes[single_rows[:, 0]], self.pair_kernel_genes[single_rows[:, 1]]
        k = ka[:, t[:, 0]] * kb[:, t[:, 1]] + ka[:, t[:, 1]] * kb[:, t[:, 0]]
        out = k @ self.pair_kernel_alpha
        if hasattr(self, "pert_gene_idx"):
            rows, genes = self._targets(pert_idx)
            if len(rows):
                out = out.index_put((rows, genes), torch.zeros(len(rows), dtype=out.dtype, device=out.device))
        return out

    def forward(self, pert_idx: torch.Tensor, single_rows: torch.Tensor | None = None) -> dict:
        base = self.gene_branch()
        pert_global = self.pert_branch()
        if self.singles == "none":
            return self.decode(base, pert_global, pert_idx)
        U, dev = pert_idx.shape[0], pert_idx.device
        mask = pert_idx >= 0
        if single_rows is None or self.singles == "predicted":
            single_rows = torch.full_like(pert_idx, PAD)
        measured = mask & (single_rows >= 0)
        # network singles, once per distinct gene that needs one
        need = mask & ~measured
        genes, inverse = torch.unique(pert_idx[need], return_inverse=True)
        part = torch.zeros(U, 2, self.n_genes, device=dev)
        if len(genes):
            singles = torch.full((len(genes), 2), PAD, dtype=torch.long, device=dev)
            singles[:, 0] = genes
            if self.null_center:
                # decode a "null" perturbation (zero embedding, no target) in the same batch and
                # subtract it: the network then adds nothing for a gene it knows nothing about, and
                # such a gene is predicted as the mean single (plus the propagated neighbours)
                ext = torch.cat([pert_global, pert_global.new_zeros(1, pert_global.shape[1])])
                null = torch.tensor([[self.n_perts, PAD]], dtype=torch.long, device=dev)
                out = self.decode(base, ext, torch.cat([singles, null]))["delta"]
                resid = out[:-1] - out[-1:]
                if not self.training and float(self.unseen_scale) != 1.0:
                    unseen = ~torch.isin(genes, self.trained_pert_idx)
                    scaled = torch.where(unseen[:, None], self.unseen_scale * resid, resid)
                    if self.self_head is not None:  # the target's own change is not gated
                        rows, cols = self._targets(singles)
                        scaled[rows, cols] = resid[rows, cols]
                    resid = scaled
                single_pred = resid + self.mean_delta
            else:
                single_pred = self.decode(base, pert_global, singles)["delta"] + self.mean_delta
            if self.has_propagation:
                single_pred = single_pred + self.prop_lambda * (self.prop_weight[genes] @ self.prop_dev)
            part[need] = single_pred[inverse]
        if measured.any():
            part[measured] = self.single_delta[single_rows[measured]]
        delta = part.sum(1)
        double = mask.all(1)
        overlap = getattr(self, "pair_overlap", None)
        has_overlap = overlap is not None and bool(torch.any(overlap != 0))
        relation = getattr(self, "pair_relation", None)
        has_relation = relation is not None and bool(torch.any(relation != 0))
        if double.any() and (has_overlap or has_relation or not bool(torch.all(self.pair_coef == 1))):
            a, b = part[double, 0], part[double, 1]
            rows, genes = self._targets(pert_idx[double]) if hasattr(self, "pert_gene_idx") else ((), ())
            off = torch.ones_like(a)
            if len(rows):
                off[rows, genes] = 0.0  # the larger single is judged off the perturbed genes
            a_big = ((a * off).norm(dim=1) >= (b * off).norm(dim=1))[:, None]
            big, small = torch.where(a_big, a, b), torch.where(a_big, b, a)
            if has_relation:  # c_L and c_S depend on how the two perturbations act on each other's gene
                f = self._pair_relations(pert_idx[double], a_big[:, 0], big, small)
                scaled = ((self.pair_coef[0] + f @ relation[:4])[:, None] * big
                          + (self.pair_coef[1] + f @ relation[4:])[:, None] * small)
            else:
                scaled = self.pair_coef[0] * big + self.pair_coef[1] * small
            if has_overlap:  # interaction_baselines.overlap_terms, in torch: predicted singles carry gradients
                o = torch.sign(big) * torch.minimum(big.abs(), small.abs())
                same = torch.sign(big) * torch.sign(small)
                scaled = (scaled + overlap[0] * torch.where(same > 0, o, torch.zeros_like(o))
                          + overlap[1] * torch.where(same < 0, o, torch.zeros_like(o)))
            if len(rows):  # the perturbed genes' own change stays the sum
                scaled = scaled.index_put((rows, genes), delta[double][rows, genes])
            delta = delta.clone()
            delta[double] = scaled
        if double.any():
            pair = pert_idx[double]
            za = self.pair_mlp(pert_global[pair[:, 0]])
            zb = self.pair_mlp(pert_global[pair[:, 1]])
            both = measured[double].all(1)
            scale = torch.where(both, self.measured_pair_interaction, torch.ones_like(self.measured_pair_interaction))
            delta[double] = delta[double] + scale[:, None] * (self.interaction(za * zb) @ base.T)
            shrink = getattr(self, "pair_shrink", None)
            alpha = getattr(self, "pair_kernel_alpha", None)
            use_shrink = not self.training and shrink is not None and float(shrink) != 1.0
            use_kernel = alpha is not None and len(alpha) > 0
            if (use_shrink or use_kernel) and bool(both.any()):
                rows = torch.nonzero(double).flatten()[both]  # the doubles of two measured singles
                if use_shrink:
                    summed = part[rows].sum(1)  # the sum of the two measured singles
                    delta[rows] = summed + shrink * (delta[rows] - summed)
                if use_kernel:
                    delta[rows] = delta[rows] + self._pair_kernel(single_rows[rows], pert_idx[rows])
        result = {"delta": delta}
        if self.uncertainty:
            x = self._hidden(base, self._fused(pert_global, pert_idx), pert_idx)
            result["logvar"] = self.uncertainty_w(x).reshape(U, self.n_genes)
        return result


@register_model("priorgnn")
class PriorGNN(PerturbationModel):
    """User-facing PriorGNN (see the module docstring).

    Hyperparameters
    ---------------
    hidden : 64; gene_layers, go_layers : 1 (message-passing layers over the co-expression and GO graphs,
        as GEARS; the encodings compared on validation data in
        ``benchmarks/results/knowledge_encodings.md`` did not separate more hops from one)
    use_go, use_coexpression : whether to read each prior (False = that branch without a graph)
    singles : ``'residual'`` (additive over measured-or-predicted singles plus a learned interaction),
        ``'predicted'`` (the same over predicted singles only) or ``'none'`` (GEARS)
    decoder : ``'gene_specific'`` (GEARS) or ``'shared'``
    loss : ``'autofocus'`` (GEARS, γ = 2, plus a differentiable direction term) or ``'mse'``
    direction_lambda : weight of the direction term (0.1, GEARS's default λ)
    uncertainty : add a per-gene log-variance head (the variance ``exp(logvar)`` is reported by
        :meth:`predict_output` and in :meth:`predict`'s ``layers['variance']``)
    allow_prior_free : predict genes that have no GO-graph neighbour and were never perturbed in
        training, marking them ``prior_free`` (otherwise an error)
    pert_init : ``'zero'`` (default) or ``'normal'`` (GEARS) initial perturbation embeddings
    pert_dropout : share of trained genes' own embeddings hidden per step (0: off)
    center : ``'mean'`` (network singles are residuals from the mean training single) or ``'none'``
    interaction_gate : after training, keep the interaction for pairs of measured singles only if it
        lowers the validation top-20-DE MSE of such pairs (otherwise they are predicted additively)
    pert_flag : add a learned perturbation embedding to the perturbed genes' own embeddings, read out
        by a head shared by all genes (so the target itself responds to CRISPRa/CRISPRi, also a gene
        never perturbed in training); GEARS defines the embedding but never uses it
    knowledge : how the GO graph reaches a single's prediction. ``'embed'`` (GEARS): only through the
        SGConv-refined perturbation embeddings. ``'propagate'`` (default): also by propagating the
        measured training singles over the graph, ``δ̂_u = m + λ Σ_j w_uj (δ_j − m) / Σ_j w_uj + network``
        with ``λ`` chosen by leave-one-out over the training singles
        (:mod:`priorgnn.models.neighbours`); without GO, or with ``center='none'`` or
        ``singles='none'``, it is the same as ``'embed'``
    go_conv : the message passing over GO, ``'sgconv'`` (GEARS's one-hop SGConv; default) or ``'gat'``
        (graph attention over the GO neighbours, the Jaccard weight as an edge feature); ``go_layers``
        hops either way
    prop_hops : the longest random walk over the GO graph by which ``knowledge='propagate'`` reaches
        measured training singles (1, default: the GO neighbours only); see ``prop_walk``
    prop_walk : with ``prop_hops > 1``, ``'nearest'`` (default): a gene with a measured GO neighbour keeps
        the one-hop weights and only a gene without one looks further; ``'cumulative'``: every gene
        uses the walk weights summed over 1 to ``k`` steps, with ``k ≤ prop_hops`` chosen with ``λ`` by
        leave-one-out (a smoother kernel that also reaches the neighbours' neighbours)
    prop_shrink : how ``knowledge='propagate'`` shrinks the neighbours' mean deviation. ``'degree'``
        (default): ``λ_u = min(1, a s_u / (s_u + κ))``, growing with the gene's total neighbour weight
        ``s_u``, over the GO weights as they are or squared; ``a``, ``κ`` and the power chosen by
        leave-one-out over the training singles (:func:`priorgnn.models.neighbours.loo_fit_degree`).
        ``'global'``: one ``λ`` for every gene (the earlier default). Chosen on validation data of
        simulations the study never uses: ahead of ``'global'`` by less than twice its standard error
        on 8 seeds, then beyond it on 8 fresh seeds and on all 16
        (``benchmarks/results/knowledge_encodings_confirm.md``)
    pair_backbone : ``'scaled'``: a double's backbone is ``c_L δ_L + c_S δ_S`` over its larger
        and smaller single, with one pair ``(c_L, c_S)`` fitted by least squares on the training doubles
        whose singles were measured (the ``scaled_additive`` baseline's fit; Norman et al. 2019's
        regression). Where responses share a saturating common component, the plain sum counts it twice.
        ``'additive'``: ``c_L = c_S = 1``. Without training doubles both are the sum.
        ``'overlap'``: the same plus ``b₊ o₊ + b₋ o₋``, per gene the smaller of the two singles' changes
        where both move it the same way (``o₊``) or opposite ways (``o₋``), with ``(c_L, c_S, b₊, b₋)``
        fitted by the ``overlap_additive`` baseline's least squares: the buffering (or synergy) of
        shared targets, gene by gene. ``'relation'``: ``overlap`` with ``c_L`` and ``c_S`` depending on how
        far each perturbation moves the other's gene (the ``relation_additive`` baseline's fit: epistasis
        through regulation; needs ``pert_flag``, the perturbed genes' columns). ``'auto'`` (default):
        ``additive``, ``scaled``, ``overlap`` or ``relation``, whichever predicts the training doubles best
        when each is left out in turn (the ``pair_auto`` baseline; chosen as the default on validation
        doubles of simulations the study never uses, ``benchmarks/results/pair_backbones.md``)
    pair_fit_genes : the genes of each training double that the ``overlap``, ``relation`` and ``auto`` backbones are
        fitted and chosen on: ``'top_de'`` (default) its 20 most differentially expressed genes (those
        ``mse_top20_de`` scores, and where a double's interaction matters), ``'all'`` every gene (the
        earlier default, whose fit is dominated by the many nearly unchanged genes and so shrinks the
        large changes). Chosen on validation doubles of simulations the study never uses
        (``benchmarks/results/pair_backbones.md``)
    pair_kernel : correct a double of two measured singles by the non-additive part left in the
        training doubles of similar pairs (default True): kernel ridge over pairs of what the trained
        model leaves unexplained in each training double, with the symmetric pair kernel of Ben-Hur &
        Noble (2005) on the cosine similarity of the singles' measured profiles; its width and ridge
        chosen by leave-one-double-out, and kept only where that beats no correction (at least 10
        training doubles; :mod:`priorgnn.models.pair_kernel`). Chosen on validation doubles of
        simulations the study never uses (``benchmarks/results/pair_backbones.md``)
    pair_shrink : a double of two measured singles is predicted as ``additive + s·(backbone − additive)``
        before the pair kernel correction, which is then fitted on what that leaves in the training
        doubles (the backbone here includes the learned interaction, if its gate keeps it). ``s`` in
        [0, 1]; default 0.5, halfway to the sum of the two singles. Chosen on simulations the study never
        uses (``benchmarks/results/pair_shrinkage.md``, data seeds 11-16, all four settings): against 1 (no
        shrinkage) and a leave-one-double-out choice of ``s``, it had the most doubles below ``additive``'s
        error in every setting and the only worst seed within 0.01 of ``additive`` with systematic
        variation, at a slightly higher mean error on the plain ``norman`` preset. Applied at prediction
        only: training sees the unshrunk backbone
    null_center : the network's single is its output for the gene minus its output for a "null"
        perturbation (zero embedding, no target), so that a gene the network knows nothing about adds
        nothing to the mean single (additive modes only; False: the raw output, as before)
    """

    trainable = True
    uses_priors = ("go", "coexpression")

    def __init__(self, hidden: int = 64, gene_layers: int = 1, go_layers: int = 1, use_go: bool = True,
                 use_coexpression: bool = True, singles: str = "residual", decoder: str = "gene_specific",
                 loss: str = "autofocus", direction_lambda: float = 0.1, uncertainty: bool = False,
                 allow_prior_free: bool = False, pert_init: str = "zero", pert_dropout: float = 0.0,
                 center: str = "mean", pert_flag: bool = True, interaction_gate: bool = True,
                 knowledge: str = "propagate", null_center: bool = True, pair_backbone: str = "auto",
                 go_conv: str = "sgconv", prop_hops: int = 1, prop_walk: str = "nearest",
                 prop_shrink: str = "degree", pair_fit_genes: str = "top_de", pair_kernel: bool = True,
                 pair_shrink: float = PAIR_SHRINK, **kw) -> None:
        from priorgnn.models.interaction_baselines import FIT_GENES
        from priorgnn.models.neighbours import SHRINKS
        from priorgnn.models.pair_kernel import check_shrink

        pair_shrink = check_shrink("priorgnn", "pair_shrink", pair_shrink)
        if not isinstance(pair_kernel, (bool, np.bool_)):
            raise ConfigError(f"priorgnn: pair_kernel must be true or false, not {pair_kernel!r}.")
        if pair_fit_genes not in FIT_GENES:
            raise ConfigError(f"priorgnn: pair_fit_genes must be one of {', '.join(FIT_GENES)}, "
                              f"not {pair_fit_genes!r}.")
        if prop_shrink not in SHRINKS:
            raise ConfigError(f"priorgnn: prop_shrink must be 'degree' or 'global', not {prop_shrink!r}.")
        if prop_walk not in ("nearest", "cumulative"):
            raise ConfigError(f"priorgnn: prop_walk must be 'nearest' or 'cumulative', not {prop_walk!r}.")
        if not 1 <= int(prop_hops) <= 8:
            raise ConfigError(f"priorgnn: prop_hops must be between 1 and 8, not {prop_hops!r}.")
        if go_conv not in ("sgconv", "gat"):
            raise ConfigError(f"priorgnn: go_conv must be 'sgconv' or 'gat', not {go_conv!r}.")
        if pair_backbone not in PAIR_BACKBONE_OPTIONS:
            raise ConfigError(f"priorgnn: pair_backbone must be one of {', '.join(map(repr, PAIR_BACKBONE_OPTIONS))}, "
                              f"not {pair_backbone!r}.")
        if knowledge not in ("propagate", "embed"):
            raise ConfigError(f"priorgnn: knowledge must be 'propagate' or 'embed', not {knowledge!r}.")
        if center not in ("mean", "none"):
            raise ConfigError(f"priorgnn: center must be 'mean' or 'none', not {center!r}.")
        if singles not in ("residual", "predicted", "none"):
            raise ConfigError(f"priorgnn: singles must be 'residual', 'predicted' or 'none', not {singles!r}.")
        if loss not in ("autofocus", "mse"):
            raise ConfigError(f"priorgnn: loss must be 'autofocus' or 'mse', not {loss!r}.")
        if decoder not in ("gene_specific", "shared"):
            raise ConfigError(f"priorgnn: decoder must be 'gene_specific' or 'shared', not {decoder!r}.")
        super().__init__(hidden=hidden, gene_layers=gene_layers, go_layers=go_layers, use_go=use_go,
                         use_coexpression=use_coexpression, singles=singles, decoder=decoder, loss=loss,
                         direction_lambda=direction_lambda, uncertainty=uncertainty,
                         allow_prior_free=allow_prior_free, pert_init=pert_init, pert_dropout=pert_dropout,
                         center=center, pert_flag=pert_flag, interaction_gate=interaction_gate,
                         knowledge=knowledge, null_center=null_center, pair_backbone=pair_backbone,
                         go_conv=go_conv, prop_hops=int(prop_hops), prop_walk=prop_walk, prop_shrink=prop_shrink,
                         pair_fit_genes=pair_fit_genes, pair_kernel=bool(pair_kernel), pair_shrink=pair_shrink, **kw)
        self.net: PriorGNNModule | None = None

    # -- vocabulary and graphs ------------------------------------------------------------------------
    def _build(self, genes: list[str], pert_genes: list[str], coex, go, single_genes: list[str],
               single_delta: np.ndarray, annotated: np.ndarray, trained_perts: set[str],
               mean_delta: np.ndarray | None = None, self_init: float = 0.0,
               propagation: dict[str, np.ndarray] | None = None) -> None:
        self.genes = genes
        self.pert_genes = pert_genes
        self.pert_index = {g: i for i, g in enumerate(pert_genes)}
        self.annotated = annotated
        self.trained_perts = set(trained_perts)
        self.single_genes = single_genes
        self.single_row = {g: i for i, g in enumerate(single_genes)}
        gene_pos = {g: i for i, g in enumerate(genes)}
        hp = self.hparams
        self.net = PriorGNNModule(
            len(genes), len(pert_genes), hidden=hp["hidden"],
            coexpression=None if coex is None else (torch.as_tensor(coex[0]), torch.as_tensor(coex[1])),
            go=None if go is None else (torch.as_tensor(go[0]), torch.as_tensor(go[1])),
            gene_layers=hp["gene_layers"], go_layers=hp["go_layers"], decoder=hp["decoder"],
            uncertainty=hp["uncertainty"], singles=hp["singles"], pert_init=hp.get("pert_init", "normal"),
            pert_dropout=hp.get("pert_dropout", 0.0),
            trained_pert_idx=torch.as_tensor(sorted(self.pert_index[g] for g in trained_perts), dtype=torch.long),
            pert_gene_idx=torch.as_tensor([gene_pos.get(g, -1) for g in pert_genes], dtype=torch.long)
            if hp.get("pert_flag", True) else None,
            single_pert_idx=torch.as_tensor([self.pert_index[g] for g in single_genes], dtype=torch.long),
            single_delta=torch.as_tensor(single_delta, dtype=torch.float32),
            mean_delta=torch.as_tensor(mean_delta, dtype=torch.float32) if mean_delta is not None else None,
            self_init=self_init, null_center=bool(hp.get("null_center", False)), go_conv=hp.get("go_conv", "sgconv"),
            pair_overlap=hp.get("pair_backbone") in PAIR_AUTO_BACKBONES,
            **({} if propagation is None else {
                "prop_weight": torch.as_tensor(propagation["prop_weight"], dtype=torch.float32),
                "prop_dev": torch.as_tensor(propagation["prop_dev"], dtype=torch.float32),
                "prop_lambda": float(propagation["prop_lambda"])}),
        )
        self.propagation = propagation

    def fit(self, data, split, *, graphs: PriorGraphs | None = None, train: TrainConfig | None = None):
        from priorgnn.training.fit import train_delta_module

        hp = self.hparams
        graphs = graphs or PriorGraphs()
        train = train or TrainConfig()
        from priorgnn.training.fit import cpu_threads

        torch.set_num_threads(cpu_threads(train.threads))  # fixed reduction order
        torch.manual_seed(train.seed)  # the initial weights depend on the seed only
        self._remember_data(data, split)
        genes = list(self.genes)
        go_graph = graphs.go if hp["use_go"] else None
        coex_graph = graphs.coexpression if hp["use_coexpression"] else None
        if hp["use_go"] and graphs.go is None:
            raise GraphError("priorgnn: use_go=True but no GO graph was given. Build one "
                             "(python -m knowledge build-go) or set use_go=False.")
        if hp["use_coexpression"] and graphs.coexpression is None:
            raise GraphError("priorgnn: use_coexpression=True but no co-expression graph was given. "
                             "Build one (python -m knowledge build-coexpression) or set use_coexpression=False.")
        vocab = set(genes) | set(data.perturbed_genes)
        if go_graph is not None:
            vocab |= set(go_graph.genes)
        pert_genes = sorted(vocab)
        go_arrays, annotated = None, np.zeros(len(pert_genes), bool)
        if go_graph is not None:
            aligned, report = go_graph.align(pert_genes, self_loops=True)
            go_arrays = (aligned.edge_index, aligned.edge_weight)
            annotated = aligned.annotated()
            self.fit_info["go_alignment"] = str(report)
        coex_arrays = None
        if coex_graph is not None:
            aligned, report = coex_graph.align(genes, self_loops=True)
            coex_arrays = (aligned.edge_index, aligned.edge_weight)
            self.fit_info["coexpression_alignment"] = str(report)
        train_genes = {g for c in split.train for g in parse_condition(c)}
        measured, measured_delta, measured_mean = training_singles(data, split)
        residual = hp["singles"] == "residual"
        single_genes = list(measured) if residual else []
        single_delta = measured_delta if residual else np.zeros((0, len(genes)))
        mean_delta = None
        if hp.get("center", "mean") == "mean" and measured and hp["singles"] != "none":
            mean_delta = measured_mean
        # the training singles' mean change of their own target, beyond the centring (see self_head)
        gene_pos = {g: i for i, g in enumerate(genes)}
        own = [measured_delta[i, gene_pos[g]] - (mean_delta[gene_pos[g]] if mean_delta is not None else 0.0)
               for i, g in enumerate(measured) if g in gene_pos]
        self_init = float(np.mean(own)) if own else 0.0
        propagation = None
        if hp.get("knowledge", "propagate") == "propagate" and go_arrays is not None and mean_delta is not None:
            propagation = self._propagation(go_arrays, pert_genes, measured, measured_delta, gene_pos)
        self._build(genes, pert_genes, coex_arrays, go_arrays, single_genes, single_delta, annotated, train_genes,
                    mean_delta, self_init, propagation)
        unannotated = sorted(g for g in train_genes if not annotated[self.pert_index[g]])
        if go_graph is not None and unannotated:
            log.warning("%d trained perturbation gene(s) have no GO-graph neighbour (no annotation, or none shared "
                        "enough with another gene to make an edge): %s", len(unannotated), unannotated[:10])

        inputs = {name: self._encode_conditions(conds)
                  for name, conds in (("train", split.train), ("val", split.val))}

        def encode(split_name: str, rows: torch.Tensor):
            enc = inputs[split_name]
            return {k: v[rows] for k, v in enc.items()}

        plan_kwargs = {"loss": hp["loss"], "direction_lambda": hp["direction_lambda"]}
        if hp["singles"] != "none" and hp.get("pair_backbone", "additive") in FITTED_BACKBONES:
            self._fit_pair_backbone(data, split)
        self.fit_info["training"] = train_delta_module(self.net, encode, data, split, train, plan_kwargs)
        if train.untrained:
            self._backbone_only()
        else:
            if hp.get("null_center", False) and hp["singles"] != "none":
                self._gate_unseen(data, split)
            if hp["singles"] == "residual" and hp.get("interaction_gate", True):
                self._gate_interaction(data, split)
        if hp["singles"] == "residual":
            # after the gates (they judge the network as trained), before the correction (fitted on what
            # the shrunk backbone leaves)
            self.net.pair_shrink.fill_(float(hp.get("pair_shrink", 1.0)))
        if hp["singles"] == "residual" and hp.get("pair_kernel", False):
            self._fit_pair_kernel(data, split)
        return self

    def _fit_pair_kernel(self, data, split) -> None:
        """Fit the pair kernel correction (:mod:`priorgnn.models.pair_kernel`) on what the model, as
        trained and gated, leaves unexplained in the training doubles of measured singles: kernel ridge
        over pairs of the residuals, its width and ridge chosen by leave-one-double-out error over every
        gene other than the pair's own, and kept only if that error is below the model's own."""
        from priorgnn.models.pair_kernel import fit_on_training_doubles

        fit, pairs = fit_on_training_doubles(data, split, self.net.single_delta.double().numpy(), self.single_genes,
                                             self.genes, self.predict_delta)
        if fit["kept"]:
            self.net.pair_kernel_genes = torch.as_tensor(fit["gene_kernel"], dtype=torch.float32)
            self.net.pair_kernel_rows = torch.as_tensor(pairs)
            self.net.pair_kernel_alpha = torch.as_tensor(fit["alpha"], dtype=torch.float32)
        info = {k: v for k, v in fit.items() if k not in ("alpha", "gene_kernel")}
        self.fit_info["pair_kernel"] = info
        errors = info["loo_error"]
        log.info("pair kernel correction %s (%d training doubles; leave-one-double-out error %.4g, off %.4g)%s",
                 f"kept: gamma {fit['gamma']:g}, ridge {fit['ridge']:g}" if fit["kept"] else "off", len(pairs),
                 min(errors.values()), errors["off"], "" if fit["kept"] else f": {fit.get('reason', '')}")

    def _gate_unseen(self, data, split) -> None:
        """Scale the network's residual for genes never perturbed in training by the factor among
        0, 0.5 and 1 with the lowest validation MSE (off the perturbed gene) on the validation singles
        of genes not perturbed in training. A wrong or uninformative prior graph can make the
        network's guess for such a gene worse than the mean single; the choice uses validation data
        only, and with no such validation single the residual is kept."""
        s = data.summaries
        val = [c for c in split.val if len(parse_condition(c)) == 1 and parse_condition(c)[0] not in self.trained_perts]
        info: dict = {"validation_singles": len(val), "scale": 1.0}
        if val:
            from priorgnn.metrics.core import keep_mask, perturbed_gene_idx

            obs = np.stack([s.delta(c) for c in val])
            keep = keep_mask(obs.shape, perturbed_gene_idx(val, self.genes))
            errors = {}
            for scale in (0.0, 0.5, 1.0):
                self.net.unseen_scale.fill_(scale)
                errors[scale] = float(((self.predict_delta(val) - obs) ** 2)[keep].mean())
            best = min(errors, key=lambda k: (errors[k], -k))
            self.net.unseen_scale.fill_(best)
            info.update(scale=best, mse={str(k): v for k, v in errors.items()})
            log.info("network residual for unseen genes scaled by %g (validation MSE off target: %s; %d singles)",
                     best, ", ".join(f"{k:g}: {v:.4f}" for k, v in errors.items()), len(val))
        self.fit_info["unseen_gate"] = info

    def _fit_pair_backbone(self, data, split) -> None:
        """Fit the backbone of doubles as the ``scaled_additive`` (``pair_backbone='scaled'``),
        ``overlap_additive`` (``'overlap'``), ``relation_additive`` (``'relation'``) or ``pair_auto``
        (``'auto'``) baseline fits it over the training doubles of measured singles."""
        from priorgnn.models.interaction_baselines import OverlapAdditive, PairAuto, RelationAdditive, ScaledAdditive

        kind = self.hparams.get("pair_backbone")
        if kind in PAIR_AUTO_BACKBONES:  # (cL, cS, b₊, b₋, relation slopes) of the chosen backbone
            fit_genes = self.hparams["pair_fit_genes"]
            baseline = {"auto": PairAuto, "overlap": OverlapAdditive, "relation": RelationAdditive}[kind](
                fit_genes=fit_genes)
            if not hasattr(self.net, "pert_gene_idx"):  # without the perturbed genes' columns (pert_flag=False)
                baseline.candidates = tuple(k for k in baseline.candidates if k != "relation") or ("overlap",)
            baseline.fit(data, split)
            info = baseline.fit_info[baseline.name]
            coef = tuple(float(v) for v in baseline.coef)
        else:
            baseline = ScaledAdditive(mode="global").fit(data, split)
            info = baseline.fit_info["scaled_additive"]
            coef = (1.0, 1.0) if info.get("fallback") else (info["c_large"], info["c_small"])
        with torch.no_grad():
            self.net.pair_coef.copy_(torch.tensor(coef[:2], dtype=torch.float32))
            if len(coef) > 2:
                self.net.pair_overlap.copy_(torch.tensor(coef[2:4], dtype=torch.float32))
                self.net.pair_relation.copy_(torch.tensor(coef[4:], dtype=torch.float32))
        record = {"c_large": coef[0], "c_small": coef[1], "n_doubles": info["n_doubles"]}
        if len(coef) > 2:
            record.update(b_same=coef[2], b_opposite=coef[3], relation_slopes=list(coef[4:]))
            if "ridge" in info:
                record["relation_ridge"] = info["ridge"]
        if "backbone" in info:
            record.update(chosen=info["backbone"], loo_error=info["loo_error"])
        self.fit_info["pair_backbone"] = record
        shown = {k: v for k, v in record.items() if k not in ("n_doubles", "loo_error")
                 and not (k == "relation_slopes" and not any(v))}  # zero slopes: not the relation backbone
        log.info("pair backbone: %s (%d training doubles)",
                 ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()),
                 info["n_doubles"])

    def _propagation(self, go_arrays, pert_genes: list[str], names: list[str], deltas: np.ndarray,
                     gene_pos: dict[str, int]) -> dict[str, np.ndarray]:
        """The buffers of the propagation pathway: row-normalised GO weights from every perturbation
        gene to the training singles (self excluded), the singles' deviations from their mean (own
        target masked) and the leave-one-out shrinkage ``λ``. ``names`` and ``deltas`` are the measured
        training singles (:func:`~priorgnn.models.baselines.training_singles`)."""
        import scipy.sparse as sp

        from priorgnn.models.neighbours import (degree_factors, fit_shrinkage, nearest_walk_weights, powered,
                                                transfer_deviations, walk_weights)

        pidx = {g: i for i, g in enumerate(pert_genes)}
        cols = np.array([pidx[g] for g in names], dtype=np.int64)
        (src, tgt), w = np.asarray(go_arrays[0]), np.asarray(go_arrays[1], dtype=np.float64)
        off = src != tgt
        A = sp.csr_matrix((w[off], (tgt[off], src[off])), shape=(len(pert_genes),) * 2)  # A[query, neighbour]
        targets = [gene_pos.get(g) for g in names]
        hops = int(self.hparams.get("prop_hops", 1))
        shrink = self.hparams.get("prop_shrink", "degree")
        degree = shrink == "degree"
        # one hop reaches the GO neighbours themselves; a gene without a measured GO neighbour is given
        # the measured singles nearest to it by a random walk of up to ``hops`` steps
        if not len(cols):
            W, lam, kappa, power, err = np.zeros((len(pert_genes), 0)), 0.0, 0.0, 1.0, float("nan")
        else:
            if hops == 1:  # one step: the neighbours' GO weights (rows are normalised below, so 1/degree cancels)
                candidates = [np.asarray(A[:, cols].todense())]
            elif self.hparams.get("prop_walk", "nearest") == "nearest":
                candidates = [nearest_walk_weights(A, cols, hops)]
            else:  # 'cumulative': the walk length is chosen with λ by the leave-one-out error
                candidates = walk_weights(A, cols, hops, exclude_own=True)
            # prop_shrink='degree': the weights as they are or squared (a sharper kernel, the closest
            # neighbours counting more), with the per-gene shrinkage of loo_fit_degree; all chosen by
            # the same leave-one-out error (ties: the simpler choice, listed first)
            fits = [fit_shrinkage(Wk[cols], deltas, targets, shrink) for Wk in candidates]
            k = int(np.argmin([f[3] if np.isfinite(f[3]) else np.inf for f in fits]))  # ties: the shorter walk
            lam, kappa, power, err = fits[k]
            W = powered(candidates[k], power)
            if len(candidates) > 1:
                hops = k + 1
        total = np.abs(W).sum(axis=1, keepdims=True)
        Wn = np.divide(W, total, out=np.zeros_like(W), where=total > 0)
        # transfer_deviations row-normalises too; with Wn rows summing to 1 the two agree
        dev = transfer_deviations(np.eye(len(names)), deltas, targets) if len(names) else deltas
        info = {"lambda": lam, "hops": hops, "singles": len(names), "loo_error": err if np.isfinite(err) else None,
                "genes_with_a_measured_neighbour": int((total[:, 0] > 0).sum())}
        if degree:
            # each row carries its gene's own λ_u = min(1, a s_u / (s_u + κ)); the module's prop_lambda is 1
            # (models saved with one λ keep rows that sum to 1 and that λ in prop_lambda)
            factors = degree_factors(total[:, 0], lam, kappa)
            Wn = Wn * factors[:, None]
            has = total[:, 0] > 0
            info.update(shrink="degree", kappa=kappa, power=power,
                        lambda_min=float(factors[has].min()) if has.any() else 0.0,
                        lambda_max=float(factors[has].max()) if has.any() else 0.0)
            stored = 1.0
        else:
            info.update(shrink="global", kappa=0.0, power=1.0)
            stored = lam
        self.fit_info["propagation"] = info
        log.info("knowledge propagation: up to %d hop(s), leave-one-out %s over %d training singles", hops,
                 f"lambda_u = min(1, {lam:.3f} s/(s + {kappa:.3g})), weights^{power:g}" if degree else f"lambda {lam:.3f}",
                 len(names))
        return {"prop_weight": Wn.astype(np.float32), "prop_dev": dev.astype(np.float32),
                "prop_lambda": np.array(stored)}

    def _backbone_only(self) -> None:
        """Switch the network's learned output off, for an untrained reference model.

        At initialisation the decoder's output weights are random, so the network's residual is noise,
        not a reference. With them at zero the model predicts through its built-in backbone only: a gene
        without a measured training single gets the mean training single (``center='mean'``) plus, on
        the gene itself, the training singles' mean change of their own target (the self head's
        initial bias), and with ``knowledge='propagate'`` the shrunk GO-propagated deviations of its
        measured neighbours (which need no training); a double the sum of its two singles (the interaction head starts at zero);
        in GEARS mode (``singles='none'``) no change.
        """
        with torch.no_grad():
            if self.net.decoder == "gene_specific":
                self.net.indv_w2.zero_()
                self.net.indv_b2.zero_()
            else:
                self.net.shared_out.weight.zero_()
                self.net.shared_out.bias.zero_()
        self.fit_info["untrained"] = ("no optimiser step; the decoder's output weights set to zero, so the "
                                      "model predicts through its built-in backbone only")

    def _gate_interaction(self, data, split) -> None:
        """Keep the learned interaction for pairs of measured singles only if it beats their backbone
        (``pair_backbone``) on the validation doubles of that kind: at least :data:`GATE_MIN_PAIRS` such
        doubles, a lower mean top-20-DE MSE (the checkpoint metric) and a lower MSE on most of them.

        A few dozen training doubles can teach an interaction that does not generalise; the backbone,
        itself chosen by leave-one-double-out over the training doubles, is then the better prediction
        for a pair whose singles were both measured (Ahlmann-Eltze et al., Nature Methods 2025). With
        fewer validation doubles than that the evidence is too thin (two pairs decided it before), and
        the interaction stays off for such pairs. The choice uses validation data only.
        """
        s = data.summaries
        pairs = [c for c in split.val if len(parse_condition(c)) == 2
                 and all(g in self.single_row for g in parse_condition(c))]
        info = {"validation_pairs": len(pairs), "min_pairs": GATE_MIN_PAIRS}
        if len(pairs) < GATE_MIN_PAIRS:
            self.net.measured_pair_interaction.fill_(0.0)
            info.update(kept=False, reason=f"fewer than {GATE_MIN_PAIRS} validation doubles of measured singles")
            log.info("interaction for measured pairs switched off (%d validation pairs, fewer than %d)",
                     len(pairs), GATE_MIN_PAIRS)
        else:
            obs = np.stack([s.delta(c) for c in pairs])
            top = [s.top_de(c) for c in pairs]

            def mse(pred):
                return np.array([((pred[i] - obs[i])[top[i]] ** 2).mean() for i in range(len(pairs))])

            with_int = mse(self.predict_delta(pairs))
            self.net.measured_pair_interaction.fill_(0.0)
            without = mse(self.predict_delta(pairs))
            wins = int((with_int < without).sum())
            keep = bool(with_int.mean() < without.mean() and wins > len(pairs) / 2)
            self.net.measured_pair_interaction.fill_(1.0 if keep else 0.0)
            info.update(mse_with=float(with_int.mean()), mse_backbone=float(without.mean()), wins=wins, kept=keep)
            log.info("interaction for measured pairs %s (validation top-20-DE MSE %.4f with, %.4f backbone; better "
                     "on %d of %d pairs)", "kept" if keep else "switched off", with_int.mean(), without.mean(), wins,
                     len(pairs))
        self.fit_info["interaction_gate"] = info

    def _encode_conditions(self, conditions: Sequence[str]) -> dict[str, torch.Tensor]:
        pert_idx = torch.full((len(conditions), 2), PAD, dtype=torch.long)
        single_rows = torch.full((len(conditions), 2), PAD, dtype=torch.long)
        for i, c in enumerate(conditions):
            genes = parse_condition(c)
            for j, g in enumerate(genes):
                if g not in self.pert_index:
                    raise GraphError(
                        f"cannot predict {c!r}: gene {g!r} is not in the model's perturbation vocabulary "
                        "(neither measured, perturbed in training, nor in the GO graph). Add it to the GO "
                        "graph or choose another gene."
                    )
                pert_idx[i, j] = self.pert_index[g]
                if len(genes) == 2 and g in self.single_row:  # singles are the network's own
                    single_rows[i, j] = self.single_row[g]
        return {"pert_idx": pert_idx, "single_rows": single_rows}

    def _prior_free(self, conditions: Sequence[str]) -> list[bool]:
        out = []
        for c in conditions:
            genes = parse_condition(c)
            out.append(any(g not in self.trained_perts and not self.annotated[self.pert_index[g]]
                           for g in genes if g in self.pert_index))
        return out

    def predict_output(self, conditions: Sequence[str]) -> DeltaPrediction:
        """The predicted deltas and, with ``uncertainty=True``, the predicted variance
        ``exp(logvar)`` of the uncertainty head."""
        self._check_fitted()
        conditions = list(conditions)
        enc = self._encode_conditions(conditions)
        free = self._prior_free(conditions)
        if any(free) and not self.hparams["allow_prior_free"] and self.hparams["use_go"]:
            bad = [c for c, f in zip(conditions, free) if f]
            raise GraphError(
                f"{len(bad)} condition(s) involve genes with no GO-graph neighbour (no annotation, or none shared "
                f"enough with another gene to make an edge) that were never perturbed in training: {bad[:5]}. "
                "The model has no basis for them. Pass allow_prior_free=True "
                "(CLI: --allow-prior-free) to predict them anyway, marked prior_free."
            )
        self.net.eval()
        outs, logvars = [], []
        with torch.no_grad():
            for start in range(0, len(conditions), 64):
                sl = slice(start, start + 64)
                res = self.net(enc["pert_idx"][sl], enc["single_rows"][sl])
                outs.append(res["delta"].double().numpy())
                if "logvar" in res:
                    logvars.append(res["logvar"].double().numpy())
        delta = np.concatenate(outs) if outs else np.zeros((0, len(self.genes)))
        variance = np.exp(np.concatenate(logvars)) if logvars else None
        return DeltaPrediction(delta=delta, variance=variance)

    def predict_delta(self, conditions: Sequence[str]) -> np.ndarray:
        return self.predict_output(conditions).delta

    def prediction_notes(self, conditions: Sequence[str]) -> dict[str, list]:
        """``prior_free``: the condition involves a gene never perturbed in training and without a GO
        annotation (predicted with ``allow_prior_free=True``). ``n_fallback``: its genes that nothing
        informs (:meth:`fallback_genes`), each predicted as the mean training single."""
        fallback = self.fallback_genes()
        return {"prior_free": self._prior_free(conditions),
                "n_fallback": [sum(g in fallback for g in parse_condition(c)) for c in conditions]}

    def fallback_genes(self) -> set[str]:
        """The perturbation genes about which neither training nor the GO prior tells the model anything.

        Such a gene was not perturbed in training (no measured effect, no trained
        embedding), has no measured training single among its GO neighbours (the propagation pathway
        gives it nothing), and no gene within ``go_layers`` GO hops has a nonzero perturbation
        embedding, so message passing hands it the same all-zero input as every other such gene. The
        network then predicts the same change for all of them: the mean training single (``center=
        'mean'``), plus the generic response of the targeted gene itself (``pert_flag``). The report
        counts these predictions as fallbacks, as it does ``additive``'s mean single for an unseen
        gene, so that identical predictions for such genes read as what they are, a lack of knowledge
        rather than a failure of the model. Found from the fitted weights and buffers, not from the
        predictions; with ``pert_init='normal'`` every embedding is nonzero and no gene is a fallback.
        """
        self._check_fitted()
        net = self.net
        with torch.no_grad():
            reach = net.pert_emb.weight.detach().abs().sum(1) > 0
            if net.has_go:
                src, tgt = net.go_index[0], net.go_index[1]
                for _ in range(len(net.sim_layers)):
                    got = torch.zeros_like(reach)
                    got[tgt[reach[src]]] = True
                    reach = reach | got
            if net.has_propagation:
                reach = reach | (net.prop_weight.abs().sum(1) > 0)
        informed = set(self.trained_perts) | set(self.single_genes)
        return {g for g, r in zip(self.pert_genes, reach.tolist()) if not r and g not in informed}

    def embeddings(self) -> Embeddings:
        """The perturbation embeddings after GO message passing, one row per gene of the model's
        perturbation vocabulary (:attr:`pert_genes`)."""
        self._check_fitted()
        self.net.eval()
        with torch.no_grad():
            matrix = self.net.pert_branch().double().numpy()
        return Embeddings(matrix, list(self.pert_genes), "perturbation embedding after GO message passing")

    # -- persistence ---------------------------------------------------------------------------------
    def _state(self):
        net = self.net
        return {
            "pert_genes": np.array(self.pert_genes, dtype=str),
            "annotated": self.annotated,
            "trained_perts": np.array(sorted(self.trained_perts), dtype=str),
            "single_genes": np.array(self.single_genes, dtype=str),
            "single_delta": net.single_delta.numpy(),
            "go_index": net.go_index.numpy() if net.has_go else np.zeros((2, 0), np.int64),
            "go_weight": net.go_weight.numpy() if net.has_go else np.zeros(0, np.float32),
            "coex_index": net.coex_index.numpy() if net.has_coexpression else np.zeros((2, 0), np.int64),
            "coex_weight": net.coex_weight.numpy() if net.has_coexpression else np.zeros(0, np.float32),
            "has_go": np.array(net.has_go), "has_coexpression": np.array(net.has_coexpression),
            "mean_delta": net.mean_delta.numpy(),
            **({} if not net.has_propagation else {
                "prop_weight": net.prop_weight.numpy(), "prop_dev": net.prop_dev.numpy(),
                "prop_lambda": net.prop_lambda.numpy()}),
        }

    def save(self, directory):
        directory = super().save(directory)
        from priorgnn._io import atomic_path

        with atomic_path(Path(directory) / "weights.pt", ".pt") as tmp:
            torch.save(self.net.state_dict(), tmp)
        return directory

    def _load_state(self, arrays, directory):
        coex = (arrays["coex_index"], arrays["coex_weight"]) if bool(arrays["has_coexpression"]) else None
        go = (arrays["go_index"], arrays["go_weight"]) if bool(arrays["has_go"]) else None
        self._build(self.genes, [str(g) for g in arrays["pert_genes"]], coex, go,
                    [str(g) for g in arrays["single_genes"]], arrays["single_delta"], arrays["annotated"],
                    {str(g) for g in arrays["trained_perts"]}, arrays.get("mean_delta"),
                    propagation=({k: arrays[k] for k in ("prop_weight", "prop_dev", "prop_lambda")}
                                 if "prop_weight" in arrays else None))
        try:
            state = torch.load(Path(directory) / "weights.pt", map_location="cpu", weights_only=True)
            if hasattr(self.net, "pair_relation") and "pair_overlap" in state:
                # saved before the relation backbone existed: its slopes were 0
                state.setdefault("pair_relation", torch.zeros_like(self.net.pair_relation))
            if hasattr(self.net, "pair_shrink"):  # saved before it existed: no shrinkage
                state.setdefault("pair_shrink", torch.ones(()))
            for key in ("pair_kernel_genes", "pair_kernel_rows", "pair_kernel_alpha"):
                if hasattr(self.net, key):  # sized by the fit; saved before it existed: no correction
                    setattr(self.net, key, state.setdefault(key, getattr(self.net, key)).clone())
            self.net.load_state_dict(state)
            if hasattr(self.net, "pair_shrink"):  # what the weights do, also for those saved before it existed
                self.hparams["pair_shrink"] = float(self.net.pair_shrink)
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(f"{directory}: weights do not fit this PriorGNN configuration ({exc}).") from None
        self.net.eval()

