"""The knowledge-bias study: explicit priors against prior-free models, with known causal truth.

``python evaluate.py study [--grid smoke|quick|full] [--out DIR]`` runs :func:`run_study`. On the
built-in simulator (whose noise-free truth and regulatory network are known) it fits a grid of models
and settings, scores every fit with the project's metrics (:func:`priorgnn.metrics.evaluate_seed`,
against the observed pseudobulk and against the noise-free truth, with the split-half noise ceiling),
and writes ``study.md`` (every conclusion generated from the measured numbers), CSV tables and PNG
figures.

The grid
    *Models* (:data:`MODELS`): PriorGNN with GO + co-expression, without GO, without co-expression,
    with the GO graph degraded (edge dropout 25/50/75 %, degree-preserving rewiring, permuted gene
    labels, a random graph), with a shared linear decoder instead of the gene-specific one; the
    prior-free transformer with and without masked-expression pretraining; ``linear``, ``linear_go``,
    ``go_knn``, ``additive``, ``mean``, ``no_change``.
    *Settings* (:class:`Setting`), each a point on one simulator axis: ``base`` (the ``demo``
    system, exact GO, all training conditions, interaction strength 1), GO annotation fidelity
    (recall ``f`` of the true annotations plus ``1 - f`` times as many false ones), the share of the
    training perturbations kept (data scaling), the strength of non-additive interactions (a new
    simulation per value), and the transformer's pretraining pool (``m`` times its own pretraining
    cells, the extra ones freshly drawn from the same system, unperturbed or under training
    perturbations only). Every model runs in ``base``; the axes run the models they concern.
Analyses
    Accuracy per subgroup with bootstrap CIs (:func:`priorgnn.metrics.aggregate`) and paired
    comparisons (:func:`priorgnn.metrics.paired_comparison`); curves along each axis; causal
    recovery (AUPRC of ``|predicted change of B when A is perturbed|`` for the true downstream
    targets of ``A`` in the simulator's network, held-out singles); genetic-interaction labels of the
    test doubles from predicted against true changes (:func:`priorgnn.interactions.score_interactions`);
    the latent space (Spearman correlation of pairwise cosine similarities of the learned
    perturbation / gene embeddings with GO Jaccard similarity and with true-effect similarity).

Every fit (a *cell*: setting × model × seed) writes its tables under ``OUT/cells/<setting>/`` as
soon as it finishes; a rerun skips cells whose tables exist, so an interrupted study loses at most
the cell it was fitting, and ``--report-only`` re-renders the report from the tables.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from priorgnn._io import read_json, safe_name, write_csv, write_json, write_text
from priorgnn.data.conditions import CTRL, make_condition, parse_condition
from priorgnn.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "MODELS",
    "GRIDS",
    "ModelSpec",
    "Setting",
    "Grid",
    "average_precision",
    "run_study",
    "render_study",
]

#: Metrics scored for every cell (all from :mod:`priorgnn.metrics`).
STUDY_METRICS = ("pearson_delta", "pearson_delta_excl_target", "mse", "mse_top20_de",
                 "pearson_delta_top20_de", "direction_top20_de", "target_sign_match", "target_abs_error",
                 "nonadditive_corr")
#: The metric of the curves and of the headline conclusions, and its reference.
PRIMARY = ("pearson_delta", "truth")
#: Claims about perturbations of unseen genes use the downstream genes only; the perturbed genes' own
#: change is reported apart (``target_sign_match``, ``target_abs_error``).
UNSEEN_METRIC = "pearson_delta_excl_target"
UNSEEN_SUBGROUPS = ("unseen_single", "combo_seen0")
TARGET_METRICS = ("target_sign_match", "target_abs_error")


def headline_metric(subgroup: str) -> str:
    """The metric a claim about ``subgroup`` is made with: :data:`UNSEEN_METRIC` for perturbations of
    genes never perturbed in training, :data:`PRIMARY`'s otherwise."""
    return UNSEEN_METRIC if subgroup in UNSEEN_SUBGROUPS else PRIMARY[0]
SUBGROUPS = ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2")


# -- models -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """One model of the grid: a registered model, its options and the priors it is given."""

    label: str
    family: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    priors: dict[str, Any] = field(default_factory=lambda: {"go": "auto", "coexpression": "auto"})
    description: str = ""


def _pg(label: str, description: str, options: dict | None = None, **priors: Any) -> ModelSpec:
    # allow_prior_free: at low GO fidelity some unseen genes lose every annotation; they are still
    # predicted (from the mean single), as every other model predicts them
    return ModelSpec(label, "priorgnn", "priorgnn", {"allow_prior_free": True, **(options or {})},
                     {"go": "auto", "coexpression": "auto", **priors}, description)


#: label → spec. PriorGNN's ablations differ only in the priors (or the decoder) they are given.
MODELS: dict[str, ModelSpec] = {m.label: m for m in [
    _pg("priorgnn", "PriorGNN, GO + co-expression"),
    _pg("priorgnn_no_go", "PriorGNN without GO", go="none"),
    _pg("priorgnn_no_coex", "PriorGNN without co-expression", coexpression="none"),
    _pg("priorgnn_go_drop25", "GO edges dropped 25%", go_degrade="dropout:0.25"),
    _pg("priorgnn_go_drop50", "GO edges dropped 50%", go_degrade="dropout:0.5"),
    _pg("priorgnn_go_drop75", "GO edges dropped 75%", go_degrade="dropout:0.75"),
    _pg("priorgnn_go_rewired", "GO degree-preserving rewired", go_degrade="rewire"),
    _pg("priorgnn_go_permuted", "GO gene labels permuted", go_degrade="permute"),
    _pg("priorgnn_go_random", "GO replaced by a random graph", go_degrade="random"),
    _pg("priorgnn_shared_decoder", "PriorGNN, shared linear decoder", {"decoder": "shared"}),
    ModelSpec("transformer_pretrained", "transformer", "transformer", {"pretrain": True, "pretrain_epochs": 1},
              {}, "prior-free transformer, masked-expression pretraining"),
    ModelSpec("transformer_no_pretrain", "transformer", "transformer", {"pretrain": False}, {},
              "prior-free transformer, no pretraining"),
    ModelSpec("transformer_additive", "transformer", "transformer", {"pretrain": False, "backbone": "additive"},
              {}, "prior-free transformer, no pretraining, with PriorGNN's additive backbone for doubles"),
    ModelSpec("linear", "linear", "linear", {}, {}, "linear (Ahlmann-Eltze et al. 2025)"),
    ModelSpec("linear_go", "linear", "linear_go", {}, {"go": "auto"}, "linear with GO gene embedding"),
    ModelSpec("go_knn", "linear", "go_knn", {}, {"go": "auto"}, "GO nearest-neighbour average"),
    ModelSpec("network_knn", "oracle", "network_knn", {"network": "auto"}, {},
              "oracle: true-network neighbours' measured singles, shrunk by leave-one-out"),
    ModelSpec("additive", "baseline", "additive", {}, {}, "sum of measured singles"),
    ModelSpec("scaled_additive", "baseline", "scaled_additive", {}, {},
              "c_L δ_L + c_S δ_S fitted on training doubles (Norman et al. 2019)"),
    ModelSpec("dominance", "baseline", "dominance", {}, {}, "the stronger single's profile"),
    ModelSpec("mean", "baseline", "mean", {}, {}, "mean training perturbation"),
    ModelSpec("no_change", "baseline", "no_change", {}, {}, "control mean"),
]}
GO_DEGRADED = ("priorgnn", "priorgnn_go_drop25", "priorgnn_go_drop50", "priorgnn_go_drop75")


# -- settings and grids ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """A point on one simulator axis, and the models fitted there."""

    name: str
    axis: str  # base, negative_control, go_fidelity, train_frac, interaction, pretrain_mult
    value: float
    models: tuple[str, ...]
    go_fidelity: float = 1.0
    train_frac: float = 1.0
    interaction: float = 1.0
    pretrain_mult: float = 1.0
    #: the simulator's prior informativeness when it differs from the grid's (the negative control)
    informativeness: float | None = None


@dataclass(frozen=True)
class Grid:
    """A study grid: simulator, seeds, training budget, axis values and the models on each axis."""

    name: str
    preset: str
    sim_overrides: dict[str, Any]
    seeds: tuple[int, ...]
    max_epochs: int
    patience: int
    pretrain_batch_size: int
    fidelities: tuple[float, ...]
    train_fracs: tuple[float, ...]
    interactions: tuple[float, ...]
    pretrain_mults: tuple[float, ...]
    base_models: tuple[str, ...]
    fidelity_models: tuple[str, ...]
    data_models: tuple[str, ...]
    interaction_models: tuple[str, ...]
    transformer_options: dict[str, Any] = field(default_factory=dict)
    #: transformer options of the pretraining-pool axis only, over ``transformer_options`` (the full grid
    #: pretrains one uncapped pass over each pool there, so that a larger pool means more updates)
    pretrain_arm_options: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 1000
    data_seed: int = 0
    #: settings fitted only when asked for by name or axis (``--only``) or on a GPU (``--accelerator
    #: gpu``): a plain CPU run leaves them out and the report lists them as not fitted, with this reason
    gpu_settings: dict[str, str] = field(default_factory=dict)
    #: models of the negative control: the grid's simulation with prior informativeness 0 (none: no
    #: negative control)
    negative_models: tuple[str, ...] = ()

    def settings(self) -> list[Setting]:
        out = [Setting("base", "base", 1.0, self.base_models)]
        if self.negative_models:
            out.append(Setting("negative_control", "negative_control", 0.0, self.negative_models,
                               informativeness=0.0))
        out += [Setting(f"go_fidelity_{f:g}", "go_fidelity", f, self.fidelity_models, go_fidelity=f)
                for f in self.fidelities]
        out += [Setting(f"train_frac_{f:g}", "train_frac", f, self.data_models, train_frac=f)
                for f in self.train_fracs]
        out += [Setting(f"interaction_{s:g}", "interaction", s, self.interaction_models, interaction=s)
                for s in self.interactions]
        out += [Setting(f"pretrain_x{m:g}", "pretrain_mult", m, ("transformer_pretrained",), pretrain_mult=m)
                for m in self.pretrain_mults]
        return out

    def cells(self) -> list[tuple[Setting, str, int]]:
        return [(s, m, seed) for s in self.settings() for m in s.models for seed in self.seeds]


_ALL_BASE = tuple(MODELS)
#: The positive control, the simulation of the quick and full grids: ``demo`` with co-annotated
#: regulators sharing their downstream programs (prior informativeness 1, one GO term per module, so
#: that a term holds several perturbed regulators) and realistic systematic variation (a shared
#: response calibrated so that the mean of the other perturbations predicts a single's change about as
#: well as on the real Norman et al. cells, Pearson Δ ≈ 0.6 off the target) and a little module-level
#: cell co-variation (co-expression graphs of a density near the real cells'); measured in
#: ``benchmarks/results/knowledge_calibration.md``. Its negative control is the same with prior
#: informativeness 0.
POSITIVE_CONTROL = {"prior_informativeness": 1.0, "submodules_per_module": 1, "shared_response": 0.35,
                    "state_module_sd": 0.03}
_NEGATIVE_MODELS = ("priorgnn", "priorgnn_no_go", "priorgnn_go_permuted", "network_knn", "go_knn", "mean",
                    "additive")
_SMOKE_SIM = {"n_genes": 60, "n_modules": 4, "modules_per_group": 2, "regulator_frac": 0.2,
              "n_singles": 14, "n_doubles": 14, "n_states": 8, "n_cells_ctrl": 80,
              "n_cells_per_condition": 16, "min_cells": 8, "library_size": 1500.0}
#: The grids. ``smoke`` runs in the default test run; ``quick`` in minutes; ``full`` is the paper's.
GRIDS: dict[str, Grid] = {
    "smoke": Grid(
        name="smoke", preset="demo", sim_overrides={**_SMOKE_SIM, **POSITIVE_CONTROL}, seeds=(0,), max_epochs=2, patience=0,
        pretrain_batch_size=32, fidelities=(0.0,), train_fracs=(0.5,), interactions=(0.0,),
        pretrain_mults=(2.0,),
        base_models=("priorgnn", "priorgnn_no_go", "priorgnn_go_drop50", "priorgnn_shared_decoder",
                     "transformer_pretrained", "transformer_no_pretrain", "linear_go", "go_knn", "network_knn",
                     "additive", "mean", "no_change"),
        negative_models=("priorgnn", "network_knn", "mean"),
        fidelity_models=("priorgnn", "linear_go"), data_models=("priorgnn", "additive"),
        interaction_models=("priorgnn", "additive"),
        transformer_options={"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "pretrain_steps": 3},
        n_boot=1000,
    ),
    "quick": Grid(
        name="quick", preset="demo", sim_overrides=POSITIVE_CONTROL, seeds=(0,), max_epochs=500, patience=20,
        pretrain_batch_size=64, fidelities=(0.0, 0.5), train_fracs=(0.25, 0.5), interactions=(0.0,),
        pretrain_mults=(3.0,), base_models=_ALL_BASE,
        fidelity_models=("priorgnn", "linear_go", "go_knn"),
        data_models=("priorgnn", "transformer_no_pretrain", "additive", "linear", "network_knn", "mean"),
        interaction_models=("priorgnn", "transformer_no_pretrain", "additive", "linear", "network_knn",
                            "scaled_additive"),
        transformer_options={"pretrain_steps": 40}, negative_models=_NEGATIVE_MODELS,
    ),
    "full": Grid(
        name="full", preset="demo", sim_overrides=POSITIVE_CONTROL, seeds=(0, 1, 2), max_epochs=500, patience=20,
        pretrain_batch_size=64, fidelities=(0.0, 0.25, 0.5, 0.75), train_fracs=(0.25, 0.5, 0.75),
        interactions=(0.0, 0.5), pretrain_mults=(1.0, 10.0, 100.0), base_models=_ALL_BASE,
        fidelity_models=("priorgnn", "linear_go", "go_knn"),
        data_models=("priorgnn", "priorgnn_no_go", "transformer_no_pretrain", "additive", "linear", "network_knn",
                     "mean"),
        interaction_models=("priorgnn", "priorgnn_no_go", "transformer_no_pretrain", "additive", "linear",
                            "network_knn", "scaled_additive"),
        transformer_options={"pretrain_steps": 120}, negative_models=_NEGATIVE_MODELS,
        # one full pass over each pool (x100: ~5,000 steps of 64 cells per seed; ~25 min per seed on a
        # CPU core, about a minute on one GPU: run that axis with --only pretrain_mult --accelerator gpu)
        pretrain_arm_options={"pretrain_steps": None, "pretrain_epochs": 1},
        gpu_settings={"pretrain_x10": "one pass over ~32k pretraining cells takes about 3 CPU-minutes per "
                                       "seed before fine-tuning; fit it on a GPU with `--only pretrain_mult "
                                       "--accelerator gpu` (or name it with --only on a CPU)",
                      "pretrain_x100": "one pass over 322k pretraining cells takes about 24 CPU-minutes per "
                                        "seed before fine-tuning; fit it on a GPU with `--only "
                                        "pretrain_x100 --accelerator gpu`"},
    ),
}


# -- small pure helpers ------------------------------------------------------------------------------
def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise): the mean over positives
    of the precision at the score threshold that admits them. Tied scores form one threshold, so a
    constant score gives exactly the positive rate. NaN without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    if n_pos == 0 or scores.size == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    # the last index of each group of tied scores is a threshold
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp_t = tp[last].astype(np.float64)
    precision = tp_t / (last + 1)
    recall_gain = np.diff(np.r_[0.0, tp_t]) / n_pos
    return float(np.sum(precision * recall_gain))


def _upper(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], k=1)]


def _cosine(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    y = x / n
    return y @ y.T


def _jaccard(sets: list[frozenset]) -> np.ndarray:
    k = len(sets)
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            u = len(sets[i] | sets[j])
            out[i, j] = out[j, i] = len(sets[i] & sets[j]) / u if u else 0.0
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


# -- the per-setting context -------------------------------------------------------------------------
class _Context:
    """Simulations, knowledge files, splits and reference tables, built once and cached on disk."""

    def __init__(self, grid: Grid, out: Path, accelerator: str = "cpu") -> None:
        self.grid, self.out, self.accelerator = grid, out, accelerator
        self._sims: dict[float, Any] = {}
        self._go: dict[tuple[float, float], str] = {}
        self._gene2go: dict[tuple[float, float], dict] = {}

    def simulation(self, interaction: float, informativeness: float | None = None):
        """The setting's simulation: the grid's, at another interaction strength or (for the negative
        control) another prior informativeness."""
        key = (interaction, informativeness)
        if key not in self._sims:
            from priorgnn.simulate import simulate

            g = self.grid
            over = dict(g.sim_overrides)
            name = f"interaction_{interaction:g}"
            if interaction != 1.0:
                over["interaction_strength"] = interaction
            if informativeness is not None:
                over["prior_informativeness"] = informativeness
                name += f"_informativeness_{informativeness:g}"
            self._sims[key] = simulate(g.preset, seed=g.data_seed, out=self.out / "sims" / name, **over)
        return self._sims[key]

    def knowledge_files(self, setting: Setting) -> tuple[Path, Path]:
        """OBO and GAF at the setting's GO fidelity (recall f, false annotations 1 - f)."""
        from priorgnn.simulate.ontology import write_knowledge

        sim = self.simulation(setting.interaction, setting.informativeness)
        f = setting.go_fidelity
        if f == 1.0:
            return sim.obo_path, sim.gaf_path
        folder = self.out / "knowledge" / (f"interaction_{setting.interaction:g}_fidelity_{f:g}"
                                           + ("" if setting.informativeness is None
                                              else f"_informativeness_{setting.informativeness:g}"))
        obo, gaf = folder / "go.obo", folder / "annotations.gaf"
        if not (folder / "knowledge.json").exists():
            write_knowledge(sim, folder, recall=f, false_rate=1.0 - f, seed=self.grid.data_seed)
        return obo, gaf

    def go_graph_path(self, setting: Setting) -> str:
        """``'auto'`` at full fidelity; otherwise a saved GO graph of the degraded annotations."""
        key = (setting.interaction, setting.go_fidelity, setting.informativeness)
        if key not in self._go:
            if setting.go_fidelity == 1.0:
                self._go[key] = "auto"
            else:
                from knowledge.cache import go_graph

                obo, gaf = self.knowledge_files(setting)
                path = obo.parent / "go_graph.npz"
                if not path.exists():
                    go_graph(obo=obo, gaf=gaf, k=20, threshold=0.1).save(path)
                self._go[key] = str(path)
        return self._go[key]

    def gene2go(self, setting: Setting) -> dict[str, frozenset]:
        key = (setting.interaction, setting.go_fidelity, setting.informativeness)
        if key not in self._gene2go:
            from knowledge.go import read_gaf

            obo, gaf = self.knowledge_files(setting)
            self._gene2go[key] = read_gaf(gaf, obo).gene2go
        return self._gene2go[key]

    def split(self, setting: Setting, seed: int):
        """The GEARS simulation split of seed ``1 + seed``; for data scaling, a seeded subsample of
        its training perturbations (validation and test unchanged)."""
        from priorgnn.data.splits import Split, make_split

        sim = self.simulation(setting.interaction, setting.informativeness)
        split = make_split(sim.data.conditions, "simulation", seed=1 + seed)
        if setting.train_frac >= 1.0:
            return split
        perts = [c for c in split.train if c != CTRL]
        # one seeded order per seed, so the smaller training sets are nested in the larger ones
        order = np.random.default_rng([seed, 7]).permutation(len(perts))
        k = max(2, int(round(setting.train_frac * len(perts))))
        keep = sorted(perts[i] for i in order[:k])
        return Split(kind="custom", seed=split.seed, train=[CTRL, *keep], val=split.val, test=split.test,
                     params={**split.params, "subsampled_from": "simulation", "train_frac": setting.train_frac})

    def extra_pretraining_cells(self, setting: Setting, split, seed: int):
        """``(pretrain_mult - 1)`` times the data's own pretraining cells (control + training
        conditions), newly drawn from the same system; ``None`` at 1."""
        if setting.pretrain_mult <= 1.0:
            return None
        sim = self.simulation(setting.interaction, setting.informativeness)
        data = sim.data
        conds = sorted(set(split.train) | {CTRL})
        counts = pd.Series(data.cell_conditions).value_counts()
        own = np.array([int(counts.get(c, 0)) for c in conds])
        n = np.round(own * (setting.pretrain_mult - 1.0)).astype(np.int64)
        return sim.simulator.sample_cells(conds, n, seed=1000 + seed)


# -- one cell -----------------------------------------------------------------------------------------
def _cell_dir(out: Path, setting: Setting) -> Path:
    return out / "cells" / safe_name(setting.name)


def _cell_stem(label: str, seed: int) -> str:
    return f"{safe_name(label)}_s{seed}"


def _reference_tables(ctx: _Context, setting: Setting, seed: int) -> None:
    """Ceiling and observed-vs-truth rows of a setting's split, and the reference causal rows."""
    from priorgnn.metrics import evaluate_seed

    d = _cell_dir(ctx.out, setting)
    path = d / f"_reference_s{seed}.csv"
    if path.exists():
        return
    sim = ctx.simulation(setting.interaction, setting.informativeness)
    split = ctx.split(setting, seed)
    table, _ = evaluate_seed(sim.data, split, {}, seed=seed, metrics=list(STUDY_METRICS), simulation=sim,
                             ceiling=True, ceiling_seed=seed)
    conds = split.subgroups.get("unseen_single", [])
    s = sim.data.summaries
    causal = []
    if conds:
        obs = np.stack([s.delta(c) for c in conds])
        causal.append(_causal_rows(sim, conds, obs, "observed_data"))
        causal.append(_causal_rows(sim, conds, sim.truth_delta(conds), "truth"))
    latent = _go_vs_effect(ctx, setting)
    _write_cell(d, f"_reference_s{seed}", setting, seed, table,
                pd.concat(causal, ignore_index=True) if causal else pd.DataFrame(), pd.DataFrame(),
                latent, {"model": "_reference"})


def _causal_rows(sim, conditions: list[str], delta: np.ndarray, label: str) -> pd.DataFrame:
    """Per held-out single ``A``: AUPRC of ``|delta_A[B]|`` (B ≠ A) for B downstream of A.

    ``ranking_identical`` marks a model whose ranking of the genes is the same for every held-out
    target (e.g. ``mean``, which predicts one vector for every unseen single): its AUPRC is then not a
    target-specific recovery of causal effects, whatever its value. ``ranking_agreement`` is the mean
    Spearman correlation between the rankings of two held-out targets (own genes left out).
    ``auprc_agnostic`` scores, for the same positives, the model's target-agnostic ranking: the mean
    ``|delta|`` of its predictions for the *other* held-out targets, each without its own gene's
    change; ``auprc − auprc_agnostic`` is what the model's ranking for ``A`` adds beyond what it
    predicts for every target."""
    from priorgnn.metrics.stats import ranking_agreement, rankings_identical

    genes = list(sim.simulator.genes)
    pos = {g: i for i, g in enumerate(genes)}
    own = [pos.get(parse_condition(c)[0]) for c in conditions]
    own_idx = [i for i in own if i is not None]
    mag = np.abs(np.asarray(delta, dtype=np.float64))
    same = rankings_identical(mag, exclude=own_idx)
    agreement = ranking_agreement(mag, exclude=own_idx)
    masked = mag.copy()
    for k, i in enumerate(own):
        if i is not None:
            masked[k, i] = np.nan  # a target's own change says nothing about the other targets' effects
    rows = []
    for k, c in enumerate(conditions):
        a = parse_condition(c)[0]
        down = set(sim.simulator.descendants(a)) - {a}
        keep = np.array([g != a for g in genes])
        lab = np.array([g in down for g in genes])[keep]
        score = mag[k][keep]
        agnostic = None
        if len(conditions) > 1:
            others = np.delete(masked, k, axis=0)
            with np.errstate(invalid="ignore"):
                cnt = np.isfinite(others).sum(axis=0)
                agnostic = np.where(cnt > 0, np.nansum(others, axis=0) / np.maximum(cnt, 1), 0.0)[keep]
        rows.append({"model": label, "condition": c, "gene": a, "n_targets": int(lab.sum()),
                     "positive_rate": float(lab.mean()) if lab.size else np.nan,
                     "auprc": average_precision(score, lab) if lab.any() else np.nan,
                     "auprc_agnostic": average_precision(agnostic, lab) if lab.any() and agnostic is not None
                     else np.nan,
                     "ranking_identical": same, "ranking_agreement": agreement})
    return pd.DataFrame(rows)


def _go_vs_effect(ctx: _Context, setting: Setting) -> pd.DataFrame:
    """Spearman of GO similarity with true-effect similarity over the perturbed genes (the
    information the GO prior carries about effects)."""
    genes, effect_sim = _effect_similarity(ctx, setting)
    go = ctx.gene2go(setting)
    go_sim = _jaccard([go.get(g, frozenset()) for g in genes])
    return pd.DataFrame([{"model": "_go_vs_effect", "space": "GO Jaccard", "n_genes": len(genes),
                          "spearman_go": np.nan,
                          "spearman_effect": _spearman(_upper(go_sim), _upper(effect_sim))}])


def _effect_similarity(ctx: _Context, setting: Setting) -> tuple[list[str], np.ndarray]:
    sim = ctx.simulation(setting.interaction, setting.informativeness)
    genes = sorted(sim.data.perturbed_genes)
    eff = sim.truth_delta([make_condition([g]) for g in genes]).astype(np.float64)
    pos = {g: i for i, g in enumerate(sim.simulator.genes)}
    for i, g in enumerate(genes):  # the target's own change says nothing about its downstream effects
        eff[i, pos[g]] = 0.0
    return genes, _cosine(eff)


def _latent_rows(ctx: _Context, setting: Setting, label: str, model) -> pd.DataFrame:
    emb, space = _embeddings(model)
    if emb is None:
        return pd.DataFrame()
    genes, effect_sim = _effect_similarity(ctx, setting)
    idx = [emb[1].get(g) for g in genes]
    keep = [i for i, x in enumerate(idx) if x is not None]
    genes = [genes[i] for i in keep]
    E = emb[0][[idx[i] for i in keep]]
    go = ctx.gene2go(setting)
    go_sim = _jaccard([go.get(g, frozenset()) for g in genes])
    lat = _upper(_cosine(E))
    eff = _upper(effect_sim[np.ix_(keep, keep)])
    return pd.DataFrame([{"model": label, "space": space, "n_genes": len(genes),
                          "spearman_go": _spearman(lat, _upper(go_sim)), "spearman_effect": _spearman(lat, eff)}])


def _embeddings(model):
    """``((matrix, {gene: row}), space name)`` of a model's perturbation embeddings, or ``(None, '')``."""
    import torch

    if model.name == "priorgnn":
        net = model.net
        net.eval()
        with torch.no_grad():
            E = net.pert_branch().double().numpy()
        return (E, dict(model.pert_index)), "perturbation embedding after GO message passing"
    if hasattr(model, "gene_embeddings"):
        return (model.gene_embeddings(), {g: i for i, g in enumerate(model.genes)}), "gene identity embedding"
    return None, ""


def _gi_rows(sim, split, model, label: str) -> pd.DataFrame:
    """Interaction labels of the test doubles: the model's predicted double against the true one, both
    scored on the true singles (the convention of the ``gi_label_match`` metric: only the double
    differs between the two labels)."""
    from priorgnn.interactions import highly_expressed_genes, score_interactions

    doubles = [c for c in split.test if len(parse_condition(c)) == 2]
    if not doubles:
        return pd.DataFrame()
    genes = sorted({g for c in doubles for g in parse_condition(c)})
    singles = [make_condition([g]) for g in genes]
    pred = np.asarray(model.predict_delta(model.canonical(doubles)), dtype=np.float64)
    truth = sim.truth_delta(doubles + singles)
    hv = highly_expressed_genes(sim.truth([CTRL])[0])
    nd = len(doubles)
    true_singles = dict(zip(genes, truth[nd:]))
    p = score_interactions(doubles, pred, true_singles, genes=hv)
    t = score_interactions(doubles, truth[:nd], true_singles, genes=hv)
    sub = {c: sg for sg, cs in split.subgroups.items() for c in cs}
    return pd.DataFrame({"model": label, "condition": doubles, "subgroup": [sub.get(c, "other") for c in doubles],
                         "label_pred": p["label"].to_numpy(), "label_true": t["label"].to_numpy(),
                         "magnitude_pred": p["magnitude"].to_numpy(), "magnitude_true": t["magnitude"].to_numpy()})


def _write_cell(d: Path, stem: str, setting: Setting, seed: int, metrics: pd.DataFrame, causal: pd.DataFrame,
                gi: pd.DataFrame, latent: pd.DataFrame, info: dict) -> None:
    for name, df in (("causal", causal), ("gi", gi), ("latent", latent)):
        if len(df):
            df = df.copy()
            df.insert(0, "setting", setting.name)
            df.insert(1, "seed", seed)
            write_csv(d / f"{stem}.{name}.csv", df, index=False)
    write_json(d / f"{stem}.json", {"setting": asdict(setting), "seed": seed, **info})
    metrics = metrics.copy()
    metrics.insert(0, "setting", setting.name)
    write_csv(d / f"{stem}.csv", metrics, index=False)  # written last: marks the cell complete


def run_cell(ctx: _Context, setting: Setting, label: str, seed: int) -> bool:
    """Fit one model in one setting with one seed and write its tables; ``False`` if they existed."""
    from priorgnn import experiment
    from priorgnn.models.base import TrainConfig, get_model_class
    from priorgnn.pipeline import RunConfig, build_priors, model_options

    d = _cell_dir(ctx.out, setting)
    stem = _cell_stem(label, seed)
    if (d / f"{stem}.csv").exists():
        return False
    _reference_tables(ctx, setting, seed)
    spec = MODELS[label]
    g = ctx.grid
    sim = ctx.simulation(setting.interaction, setting.informativeness)
    data = sim.data
    split = ctx.split(setting, seed)
    cls = get_model_class(spec.model)
    options = dict(spec.options)
    if spec.model == "transformer":
        options.update(g.transformer_options)
        if setting.axis == "pretrain_mult":
            options.update(g.pretrain_arm_options)
        if options.get("pretrain"):
            options["pretrain_batch_size"] = g.pretrain_batch_size
            options["pretrain_extra_labels"] = True
    if options.get("network") == "auto":  # the oracle reads the simulation's true network
        options["network"] = str(sim.path / "network.csv")
    priors = dict(spec.priors)
    if priors.get("go", "none") == "auto":
        priors["go"] = ctx.go_graph_path(setting)
    if "go_degrade" in priors:
        priors["go_degrade_seed"] = seed
    cfg = RunConfig(data=g.preset, model=spec.model, model_options=options, priors=priors)
    graphs = build_priors(cfg, data, split, sim, cls, progress=False)
    options = model_options(cfg, cls, graphs)
    model = cls(**options)
    extra = {}
    if spec.model == "transformer" and options.get("pretrain"):
        cells = ctx.extra_pretraining_cells(setting, split, seed)
        if cells is not None:
            extra["pretrain_cells"] = cells
    train = TrainConfig(seed=seed, max_epochs=g.max_epochs, patience=g.patience, progress_bar=False, threads=1,
                        run_dir=str(ctx.out / "_train" / safe_name(setting.name) / stem), extra=extra,
                        accelerator=ctx.accelerator)
    t0 = time.perf_counter()
    experiment.fit(model, data, split, graphs, train=train if cls.trainable else None)
    fit_s = time.perf_counter() - t0
    delta, control = experiment.predict(model, split.test, genes=data.genes)
    table = experiment.score({label: (delta, control)}, data, split, simulation=sim, metrics=list(STUDY_METRICS),
                             seed=seed)
    table = table[table["model"] == label]  # the limits (observed_data) live in the setting's reference table
    unseen = split.subgroups.get("unseen_single", [])
    if unseen:
        pos = {c: i for i, c in enumerate(split.test)}
        causal = _causal_rows(sim, unseen, delta[[pos[c] for c in unseen]], label)
    else:
        causal = pd.DataFrame()
    gi = _gi_rows(sim, split, model, label)
    latent = _latent_rows(ctx, setting, label, model)
    training = model.fit_info.get("training", {}) or {}
    pre = model.fit_info.get("pretraining", {}) or {}
    info = {"model": label, "registered": spec.model, "options": options, "priors": priors, "fit_s": fit_s,
            "accelerator": ctx.accelerator if cls.trainable else "cpu",
            "epochs": training.get("epochs"), "best_epoch": training.get("best_epoch"),
            "max_epochs": g.max_epochs if cls.trainable else None, "patience": g.patience if cls.trainable else None,
            # a fit that ran its full epoch budget did not reach its early-stopping rule
            "hit_cap": bool(training.get("epochs") is not None and training["epochs"] >= g.max_epochs)
            if cls.trainable else None,
            "pretrain_cells": (pre.get("data_cells", 0) + pre.get("extra_cells", 0))
            if pre else 0, "pretrain_steps": pre.get("steps"),
            # PriorGNN's choices after training (validation data only): the learned interaction kept for
            # pairs of measured singles, the scale of the network's residual for unseen genes, the
            # propagation's leave-one-out lambda and the fitted pair backbone
            "interaction_kept": (model.fit_info.get("interaction_gate") or {}).get("kept"),
            "gate_validation_pairs": (model.fit_info.get("interaction_gate") or {}).get("validation_pairs"),
            "unseen_scale": (model.fit_info.get("unseen_gate") or {}).get("scale"),
            "propagation_lambda": (model.fit_info.get("propagation") or {}).get("lambda"),
            "pair_c_large": (model.fit_info.get("pair_backbone") or {}).get("c_large"),
            "pair_c_small": (model.fit_info.get("pair_backbone") or {}).get("c_small")}
    _write_cell(d, stem, setting, seed, table, causal, gi, latent, info)
    import shutil

    shutil.rmtree(ctx.out / "_train" / safe_name(setting.name) / stem, ignore_errors=True)
    return True


# -- the whole study -----------------------------------------------------------------------------------
def run_study(grid: str | Grid = "quick", out: str | Path = "study", *, progress: bool = True,
              report_only: bool = False, render: bool = True, figures: bool = True,
              command: str | None = None, only: Sequence[str] | None = None,
              accelerator: str = "cpu") -> Path:
    """Run (or resume) the grid into ``out`` and write ``study.md`` (unless ``render=False``; without
    figures if ``figures=False``); returns its path.

    ``only`` restricts the fits run now to settings whose name or axis is listed (e.g. ``["pretrain_mult"]``
    or ``["base", "go_fidelity_0.5"]``); the report still covers every finished fit in ``out`` and counts the
    missing ones. ``accelerator`` is Lightning's (``cpu``, ``gpu``, ``auto``) for the gradient-trained
    models; each fit records the one it used. A CPU run without ``only`` leaves out the grid's
    :attr:`Grid.gpu_settings` (the report lists them as not fitted, with the grid's reason)."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ConfigError(f"unknown study grid {grid!r}; choose one of {', '.join(GRIDS)}.")
        grid = GRIDS[grid]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = grid.cells()
    if not only and accelerator == "cpu" and grid.gpu_settings:
        cells = [c for c in cells if c[0].name not in grid.gpu_settings]
        log.info("left out (GPU settings; fit them with --only ... --accelerator gpu): %s",
                 ", ".join(grid.gpu_settings))
    if only:
        known = {st.name for st in grid.settings()} | {st.axis for st in grid.settings()}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ConfigError(f"--only {', '.join(unknown)}: not a setting or axis of grid {grid.name!r}; choose "
                              f"among {', '.join(sorted(known))}.")
        cells = [c for c in cells if c[0].name in only or c[0].axis in only]
    t0 = time.perf_counter()
    n_run = 0
    from priorgnn.runs import environment_info

    env = environment_info()  # at the start: the code that fits the cells
    if not report_only:
        from tqdm.auto import tqdm

        ctx = _Context(grid, out, accelerator)
        bar = tqdm(cells, desc=f"study ({grid.name})", unit="cell", disable=not progress)
        for setting, label, seed in bar:
            bar.set_postfix_str(f"{setting.name} {label} s{seed}")
            n_run += run_cell(ctx, setting, label, seed)
        bar.close()
    wall = time.perf_counter() - t0
    if n_run:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # GiB (Linux: KiB)
        prev = read_json(out / "timing.json") if (out / "timing.json").exists() else {}
        write_json(out / "timing.json", {"grid": grid.name, "cells_run": n_run + prev.get("cells_run", 0),
                                         "wall_s": wall + prev.get("wall_s", 0.0),
                                         "peak_rss_gib": max(rss, prev.get("peak_rss_gib", 0.0)),
                                         "command": command or prev.get("command"),
                                         "accelerator": accelerator, "device": _device_name(accelerator),
                                         "git_revision": env.get("git_revision"),
                                         "environment": env})
    if not render:
        return out / "study.md"
    return render_study(grid, out, command=command, figures=figures)


def _device_name(accelerator: str) -> str | None:
    if accelerator == "cpu":
        return None
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _read_tables(out: Path, grid: Grid) -> dict[str, pd.DataFrame]:
    frames: dict[str, list[pd.DataFrame]] = {"metrics": [], "causal": [], "gi": [], "latent": []}
    infos = []
    missing = []
    for setting in grid.settings():
        d = _cell_dir(out, setting)
        for seed in grid.seeds:
            stems = [(None, f"_reference_s{seed}")] + [(m, _cell_stem(m, seed)) for m in setting.models]
            for label, stem in stems:
                if not (d / f"{stem}.csv").exists():
                    if label is not None:
                        missing.append({"setting": setting.name, "model": label, "seed": seed})
                    continue
                frames["metrics"].append(pd.read_csv(d / f"{stem}.csv"))
                for name in ("causal", "gi", "latent"):
                    p = d / f"{stem}.{name}.csv"
                    if p.exists():
                        frames[name].append(pd.read_csv(p))
                if not stem.startswith("_"):
                    infos.append({**read_json(d / f"{stem}.json"), "setting": setting.name, "seed": seed})
    if not frames["metrics"]:
        raise ConfigError(f"{out} holds no study results yet; run the study first.")
    tables = {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame()) for k, v in frames.items()}
    tables["fits"] = pd.DataFrame(infos)
    tables["missing"] = pd.DataFrame({"n": [len(missing)]})
    tables["missing_fits"] = pd.DataFrame(missing, columns=["setting", "model", "seed"])
    return tables


def render_study(grid: Grid, out: Path, *, command: str | None = None, figures: bool = True) -> Path:
    """Aggregate the cell tables in ``out`` and write the CSVs, figures and ``study.md``."""
    from priorgnn.report.study import write_study_report

    tables = _read_tables(out, grid)
    return write_study_report(grid, out, tables, command=command, figures=figures)


def grid_summary(grid: Grid) -> dict[str, Any]:
    return {"name": grid.name, "seeds": list(grid.seeds), "max_epochs": grid.max_epochs,
            "patience": grid.patience, "n_cells": len(grid.cells()),
            "settings": [s.name for s in grid.settings()]}


def with_seeds(grid: Grid, seeds: Sequence[int]) -> Grid:
    return replace(grid, seeds=tuple(int(s) for s in seeds))
