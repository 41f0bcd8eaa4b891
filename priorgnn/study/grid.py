"""The study's grid: the models (:data:`MODELS`), the settings along each simulator axis
(:class:`Setting`), the grids (:data:`GRIDS`) and the metrics every cell is scored with.

Pure definitions: this module imports neither the runner nor the report (both import it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["STUDY_METRICS", "PRIMARY", "UNSEEN_METRIC", "UNSEEN_SUBGROUPS", "TARGET_METRICS", "SUBGROUPS",
           "headline_metric", "ModelSpec", "MODELS", "GO_DEGRADED", "Setting", "Grid", "POSITIVE_CONTROL", "NEGATIVE_CONTROL", "REAL_GO_NOTE", "GRIDS",
           "grid_summary", "simulation_name"]

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
    ModelSpec("network_knn_degree", "oracle", "network_knn", {"network": "auto", "shrink": "degree"}, {},
              "the oracle with PriorGNN's per-gene shrinkage (prop_shrink='degree')"),
    ModelSpec("additive", "baseline", "additive", {}, {}, "sum of measured singles"),
    ModelSpec("scaled_additive", "baseline", "scaled_additive", {}, {},
              "c_L δ_L + c_S δ_S fitted on training doubles (Norman et al. 2019)"),
    ModelSpec("overlap_additive", "baseline", "overlap_additive", {}, {},
              "scaled_additive plus the shared targets' buffering or synergy, gene by gene"),
    ModelSpec("pair_auto", "baseline", "pair_auto", {}, {},
              "additive, scaled_additive, overlap_additive or relation_additive, chosen by leave-one-double-out"),
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
    axis: str  # base, negative_control, real_go, go_fidelity, train_frac, interaction, pretrain_mult
    value: float
    models: tuple[str, ...]
    go_fidelity: float = 1.0
    train_frac: float = 1.0
    interaction: float = 1.0
    pretrain_mult: float = 1.0
    #: the simulator's prior informativeness when it differs from the grid's (the negative control)
    informativeness: float | None = None
    #: the simulator's gene names (``real_go``: real human genes, with the real GO files as the prior)
    gene_names: str = "synthetic"


def simulation_name(setting: Setting) -> str:
    """The folder (under the study's ``sims/``) of ``setting``'s simulation: one per interaction
    strength, prior informativeness (the negative control) and gene names (the real-GO setting)."""
    name = f"interaction_{setting.interaction:g}"
    if setting.informativeness is not None:
        name += f"_informativeness_{setting.informativeness:g}"
    if setting.gene_names != "synthetic":
        name += f"_{setting.gene_names}"
    return name


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
    #: models of the negative control (none: no negative control), and the settings that turn the
    #: grid's simulation into it (at least prior informativeness 0)
    negative_models: tuple[str, ...] = ()
    negative_overrides: dict[str, Any] = field(default_factory=lambda: {"prior_informativeness": 0.0})
    #: models of the real-GO setting (none: no such setting): the grid's simulation with its genes named
    #: after real human genes and the real GO files as the prior (:mod:`priorgnn.simulate.realgo`)
    real_go_models: tuple[str, ...] = ()

    def settings(self) -> list[Setting]:
        out = [Setting("base", "base", 1.0, self.base_models)]
        if self.negative_models:
            out.append(Setting("negative_control", "negative_control", 0.0, self.negative_models,
                               informativeness=0.0))
        if self.real_go_models:
            out.append(Setting("real_go", "real_go", 1.0, self.real_go_models, gene_names="real_go"))
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
#: ``benchmarks/results/knowledge_calibration.md``. Its negative control is :data:`NEGATIVE_CONTROL`.
POSITIVE_CONTROL = {"prior_informativeness": 1.0, "submodules_per_module": 1, "shared_response": 0.35,
                    "state_module_sd": 0.03}
#: The negative control: the positive control with no shared programs (prior informativeness 0) and
#: regulators drawn from anywhere rather than mostly from their own module and pathway group, so that
#: co-annotated genes share targets only by chance and GO says nothing about a gene's effects. With
#: informativeness 0 alone, regulators of one module still share targets through the modular wiring,
#: and the network_knn oracle led mean by about 0.04 in an earlier run of the full grid.
NEGATIVE_CONTROL = {**POSITIVE_CONTROL, "prior_informativeness": 0.0, "p_same_submodule": 0.0, "p_same_module": 0.0,
                    "p_same_group": 0.0}
_NEGATIVE_OVERRIDES = {k: v for k, v in NEGATIVE_CONTROL.items() if POSITIVE_CONTROL.get(k) != v}
_NEGATIVE_MODELS = ("priorgnn", "priorgnn_no_go", "priorgnn_go_permuted", "network_knn", "network_knn_degree",
                    "go_knn", "mean", "additive")
#: The real-GO setting: the positive control with its genes named after real human genes, so that each
#: module's genes share a real GO biological-process term, and the real GO files (every real annotation of
#: these genes) as the prior; the chosen terms are the signal, every other real annotation and every
#: missing one is realistic noise (:mod:`priorgnn.simulate.realgo`). It needs the GO files (the study's
#: ``--go-dir`` or ``$PRIORGNN_GO_DIR``); a run without them leaves it out with this reason.
REAL_GO_NOTE = ("fitted only where the real Gene Ontology files are given (go-basic.obo or .obo.gz and "
                "goa_human.gaf.gz, in the folder of --go-dir DIR or $PRIORGNN_GO_DIR; `python -m knowledge "
                "download-go --dest DIR` fetches them); rerun with them (`--only real_go` fits this setting alone)")
_REAL_GO_MODELS = _NEGATIVE_MODELS
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
                     "network_knn_degree", "additive", "mean", "no_change"),
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
        negative_overrides=_NEGATIVE_OVERRIDES,
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
        negative_overrides=_NEGATIVE_OVERRIDES, real_go_models=_REAL_GO_MODELS,
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


def grid_summary(grid: Grid) -> dict[str, Any]:
    """The grid in a few numbers and names, for the report's header and ``timing.json``."""
    return {"name": grid.name, "seeds": list(grid.seeds), "max_epochs": grid.max_epochs,
            "patience": grid.patience, "n_cells": len(grid.cells()),
            "settings": [s.name for s in grid.settings()]}
