"""The simulator's configuration: one frozen dataclass holding every knob, and its content hash.

A simulation is a deterministic function of ``(SimulatorConfig, SIMULATOR_VERSION)``; the config's
:meth:`~SimulatorConfig.hash` names it. Presets (:mod:`priorgnn.simulate.presets`) are named sets of
overrides of the defaults below; :meth:`SimulatorConfig.from_preset` applies a preset and then the
caller's overrides, validating every value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from priorgnn._io import hash_arrays
from priorgnn.errors import ConfigError

__all__ = ["SimulatorConfig", "SIMULATOR_VERSION"]

#: Version of the generative model. Bump it whenever the same config would give different output,
#: so that a stored simulation is never reused by a different model.
SIMULATOR_VERSION = "1.0"


@dataclass(frozen=True)
class SimulatorConfig:
    """All knobs of the mechanistic simulator.

    Network (a layered DAG of modules; see :mod:`priorgnn.simulate.grn`)
    ----------------------------------------------------------------------
    n_genes
        Number of genes (all measured).
    n_modules, modules_per_group, submodules_per_module
        Genes are split into ``n_modules`` modules (pathways) of unequal size; consecutive modules
        form pathway groups of ``modules_per_group``; each module is split into
        ``submodules_per_module`` sub-modules. The GO-like ontology mirrors this hierarchy.
    module_size_sd
        Log-normal spread of module sizes (0 = equal sizes).
    regulator_frac
        Fraction of genes that are regulators (transcription-factor-like genes that may have
        targets).
    n_regulator_levels
        Depth of the regulator hierarchy: regulators sit on levels ``0 .. n_regulator_levels - 1``;
        level-0 regulators are the modules' master regulators.
    level_growth
        Ratio of the number of regulators on consecutive levels (a pyramid for values > 1).
    level_decay
        Preference of a gene for regulators of the level just above it: a regulator ``d`` levels
        further up is chosen ``level_decay ** d`` times as often (1 = no preference).
    constitutive_frac
        Fraction of non-regulator genes that have no regulator (constitutively expressed).
    mean_indegree, max_indegree
        Number of regulators of a regulated gene: ``1 + Poisson(mean_indegree - 1)``, capped.
    p_same_submodule, p_same_module, p_same_group
        Where each regulator slot of a gene is filled from: its own sub-module, another sub-module
        of its module, another module of its pathway group; the remainder (``1 - sum``) comes from
        any other module. ``1 - p_same_submodule - p_same_module`` is the cross-module edge rate.
    hub_sd
        Log-normal spread of regulator "hubness" (the probability to be chosen as a regulator),
        which makes out-degrees heavy-tailed.
    activator_frac
        Fraction of edges that activate (the others repress).
    n_programs, program_input_frac, program_frac, program_input_activator_frac
        Program hubs (see :mod:`priorgnn.simulate.grn`): their number, the fraction of the
        regulators above it that each integrates, the probability that a regulated non-regulator
        gene listens to a program (independently for each program), the fraction of activating
        inputs of a program.
    program_weight, program_occupancy
        Weight and occupancy ranges (as ``weight_range``, ``occupancy_range``) of the program ->
        gene edges.
    program_or_frac
        At ``interaction_strength=1``, fraction of program-listening genes that sum their inputs
        (OR logic; ``or_logic_frac`` applies to the other multi-input genes).
    prior_informativeness
        0..1: how much co-annotated regulators share downstream programs. Each sub-module (a GO-like
        term) has a template regulator (its regulator with most targets); every other regulator of the
        sub-module copies each of the template's direct targets, with the template's sign, with this
        probability (where the copy keeps the graph acyclic), and drops each of its own other targets
        with the same probability. At 0 (the default) regulators of one
        term share targets only by chance; at 1 their perturbations move a common downstream program,
        so a gene's GO neighbours' measured effects predict its own (see the ``network_knn`` oracle).

    Dynamics (see :mod:`priorgnn.simulate.ode`)
    ---------------------------------------------
    interaction_strength
        0..1: how non-additive combined perturbations are. It scales every edge's cooperativity
        (Hill coefficient ``1 + s (n1 - 1)``) and moves its control operating point from the
        power-law regime (0) to its drawn occupancy (1), and scales the fractions of OR-logic genes
        and off gates and the basal (leaky) shares. At 0 the molecular model is exactly log-linear,
        so doubles are additive in log space up to the measurement's own non-linearity. 1 is the
        calibrated default.
    weight_range
        Range (uniform) of the edge weights ``w`` in (0, 1]: the exponent of an edge's normalised
        Hill response (its elasticity at ``interaction_strength=0``).
    max_gain
        Cap on a gene's input gain at control, the L2 norm over its inputs of the elasticities
        ``|d log production / d log regulator|``, enforced by scaling its input weights: cell-to-cell
        variation then does not amplify along cascades.
    hill_range
        Range (uniform) of the Hill coefficients at ``interaction_strength=1``.
    occupancy_range
        Range (uniform) of an activator's occupancy at control at ``interaction_strength=1``
        (repressors: one minus it); ``1 / occupancy`` is the largest fold an activator edge can
        transmit.
    or_logic_frac
        At ``interaction_strength=1``, fraction of multi-input genes that sum their inputs (OR-like,
        as in SERGIO) rather than multiply them (cooperative, AND-like).
    basal_mean
        At ``interaction_strength=1``, mean basal (regulation-independent) share of production.
    off_gate_frac
        At ``interaction_strength=1``, fraction of multi-input AND genes whose regulated term is
        small at control (basal share 0.9-0.99), so that mostly a joint change of their inputs turns
        them on (neomorphic and synergistic responses).
    expression_sd
        Log-normal spread of the genes' control expression (sets the range of mean UMI counts).
    regulator_expression
        Multiplier of the control expression of regulators (transcription factors are typically
        lowly expressed).
    degradation_sd
        Log-normal spread of mRNA degradation rates around 1 (time scale only).

    Perturbations
    -------------
    modality
        ``"crispra"`` (activation: production multiplied by a gene-specific fold) or ``"crispri"``
        (interference: multiplied by a residual fraction).
    crispra_fold, crispra_fold_sd
        Median and log-spread of the CRISPRa fold of transcription.
    crispri_residual, crispri_residual_sd
        Median and log-spread of the fraction of transcription that remains under CRISPRi.
    n_singles, n_doubles
        Numbers of single and double perturbations simulated.
    perturb_regulator_frac
        Fraction of perturbed genes drawn among regulators with targets (others: any gene).
    perturb_impact_bias
        Exponent of the weight ``(1 + n_affected)`` with which perturbed regulators are drawn
        within a module, ``n_affected`` being the number of genes a single perturbation changes by
        more than 10% (0: uniform; screens such as Norman's chose genes with strong phenotypes).
    double_within_module_frac
        Fraction of doubles whose two genes share a module (when enough such pairs exist).
    double_overlap_bias
        Exponent of the weight ``0.01 + J`` (Jaccard overlap of the sets of genes the two singles
        change by more than 10%) with which pairs are drawn (0: uniform).
    double_interaction_bias
        Exponent of a further weight ``0.001 + (1 - r)``, with ``r`` the Pearson correlation, over
        all genes, of the pair's nominal log-change with the sum of its singles' (0: off). Norman et
        al. (2019) profiled pairs picked from a genetic-interaction growth screen (Horlbeck et al.,
        Cell 2018), so their doubles are enriched for genuine interactions; most random pairs of a
        sparse network act on disjoint genes and are exactly additive.

    shared_response, shared_response_frac
        Systematic variation: every perturbation also moves a common response program (as real
        screens do: Systema, Viñas Torné et al. 2025, found that perturbed cells
        share a large common change against controls). A fraction ``shared_response_frac`` of genes
        carry a loading ``v_g ~ N(0, 1)`` (the others 0); a perturbed gene ``p`` has an affinity
        ``q_p ~ U(0.4, 1)``, a condition ``k = 1 - prod_p (1 - q_p)`` (saturating: a double moves the
        program less than the sum of its singles); its cells' transcription is multiplied by
        ``exp(shared_response * k * v_g)`` before the network propagates it. 0 (the default) is off.

    Cells and measurement
    ---------------------
    n_states, state_sd, state_sd_spread
        Cell-to-cell variation: ``n_states`` shared cell states, each a draw of per-gene
        log-normal multipliers of transcription, propagated through the network. Gene ``g``'s
        multipliers have log-sd ``state_sd * exp(state_sd_spread * z_g)``, ``z_g ~ N(0, 1)``: genes
        differ in intrinsic variability (bursty genes), which makes pseudobulk noise heavy-tailed.
    state_module_sd
        A cell state's further log multiplier shared by all genes of a module (``state_module_sd *
        z_{state, module}``): cell-level co-variation of co-regulated genes, which the co-expression
        graph built by ``knowledge`` detects. 0 (the default) is off.
    n_cells_ctrl, n_cells_per_condition, cells_sd, min_cells
        Control cells; mean cells per perturbation, its log-normal spread, and its minimum.
    library_size, library_sd
        Median and log-normal spread of the total UMI count per cell (over the simulated genes).
    dispersion, dispersion_sd, n_dispersion_classes
        Negative-binomial inverse dispersion ``theta`` (median, log-spread), snapped to
        ``n_dispersion_classes`` log-spaced values; ``inf`` gives Poisson counts.
    target_sum
        ``normalize_total`` target (GEARS and scanpy use 1e4).

    Gene names
    ----------
    gene_names
        ``"synthetic"`` (the default): genes are named ``G0001``, ``G0002``, ... and the knowledge
        files are the GO-like ontology of :mod:`priorgnn.simulate.ontology`. ``"real_go"``: genes are
        named after real human genes so that each module's genes share a real GO biological-process
        term (a nested one per sub-module where one fits), and the knowledge files are the real
        ontology and human annotations of these genes (:mod:`priorgnn.simulate.realgo`). The GO files
        come from ``simulate(go_dir=...)`` or ``$PRIORGNN_GO_DIR``; the network and the cells are
        drawn as for synthetic names.

    seed
        Master seed; the network, cell states, perturbation design, cells and knowledge files use
        separate random streams derived from it.
    """

    # network
    n_genes: int = 300
    n_modules: int = 12
    modules_per_group: int = 3
    submodules_per_module: int = 2
    module_size_sd: float = 0.3
    regulator_frac: float = 0.06
    n_regulator_levels: int = 5
    level_growth: float = 1.3
    level_decay: float = 0.3
    constitutive_frac: float = 0.1
    mean_indegree: float = 3.0
    max_indegree: int = 4
    p_same_submodule: float = 0.35
    p_same_module: float = 0.3
    p_same_group: float = 0.25
    hub_sd: float = 1.5
    activator_frac: float = 0.6
    n_programs: int = 2
    program_input_frac: float = 0.25
    program_frac: float = 0.9
    program_input_activator_frac: float = 0.95
    program_weight: tuple[float, float] = (0.3, 0.7)
    program_occupancy: tuple[float, float] = (0.2, 0.6)
    program_or_frac: float = 0.35
    prior_informativeness: float = 0.0
    # dynamics
    interaction_strength: float = 1.0
    weight_range: tuple[float, float] = (0.9, 1.0)
    max_gain: float = 1.0
    hill_range: tuple[float, float] = (2.0, 3.5)
    occupancy_range: tuple[float, float] = (0.02, 0.15)
    or_logic_frac: float = 0.25
    basal_mean: float = 0.2
    off_gate_frac: float = 0.2
    expression_sd: float = 1.3
    regulator_expression: float = 0.5
    degradation_sd: float = 0.3
    # perturbations
    modality: str = "crispra"
    crispra_fold: float = 30.0
    crispra_fold_sd: float = 0.6
    crispri_residual: float = 0.15
    crispri_residual_sd: float = 0.5
    n_singles: int = 50
    n_doubles: int = 50
    perturb_regulator_frac: float = 0.95
    perturb_impact_bias: float = 2.0
    double_within_module_frac: float = 0.4
    double_overlap_bias: float = 2.0
    double_interaction_bias: float = 0.0
    shared_response: float = 0.0
    shared_response_frac: float = 0.3
    # cells and measurement
    n_states: int = 48
    state_sd: float = 0.25
    state_sd_spread: float = 0.0
    state_module_sd: float = 0.0
    n_cells_ctrl: int = 300
    n_cells_per_condition: int = 60
    cells_sd: float = 0.25
    min_cells: int = 10
    library_size: float = 2500.0
    library_sd: float = 0.3
    dispersion: float = 8.0
    dispersion_sd: float = 0.7
    n_dispersion_classes: int = 8
    target_sum: float = 1e4
    # gene names
    gene_names: str = "synthetic"
    seed: int = 0

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, preset: str = "demo", seed: int = 0, **overrides: Any) -> SimulatorConfig:
        """The config of a named preset (:data:`~priorgnn.simulate.presets.PRESETS`), with
        ``seed`` and any field overridden by keyword."""
        from priorgnn.simulate.presets import PRESETS

        if preset not in PRESETS:
            raise ConfigError(
                f"unknown simulator preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}."
            )
        values = dict(PRESETS[preset])
        values.update(overrides)
        values["seed"] = seed
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimulatorConfig:
        """Build and validate a config from a mapping; unknown keys are an error naming the valid
        ones; values are coerced to the field's type (so strings from a CLI work)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown simulator setting(s) {', '.join(map(repr, unknown))}. Valid settings: "
                f"{', '.join(sorted(known))}."
            )
        base = cls()
        coerced = {k: _coerce(k, v, getattr(base, k)) for k, v in values.items()}
        cfg = replace(base, **coerced)
        cfg.validate()
        return cfg

    def with_overrides(self, **overrides: Any) -> SimulatorConfig:
        """A copy with some fields changed (validated)."""
        values = self.to_dict()
        values.update(overrides)
        return type(self).from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def stored_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` as a simulation folder stores it: without the settings of
        :data:`_STORED_WHEN_SET` at their default, so that a simulation that does not use them writes the
        same ``simulator.json`` as before they existed (:meth:`from_dict` fills in the defaults)."""
        return {k: v for k, v in self.to_dict().items()
                if not (k in _STORED_WHEN_SET and v == _STORED_WHEN_SET[k])}

    def hash(self) -> str:
        """Content hash of the config and the simulator version (names a simulation). Settings added
        after version 1.0 enter it only when they differ from their default (which reproduces the
        earlier model exactly), so simulations made before they existed keep their names."""
        d = self.to_dict()
        for key, default in _ADDED_SINCE_1_0.items():
            if d[key] == default:
                del d[key]
        return hash_arrays({"config": d, "version": SIMULATOR_VERSION})[:16]

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`~priorgnn.errors.ConfigError` naming the setting and the fix."""
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.n_genes >= 6, f"n_genes={self.n_genes}: a simulation needs at least 6 genes.")
        need(1 <= self.n_modules <= self.n_genes // 3,
             f"n_modules={self.n_modules}: need 1 <= n_modules <= n_genes/3 (= {self.n_genes // 3}) so "
             "that every module has a few genes; lower n_modules or raise n_genes.")
        need(self.modules_per_group >= 1, "modules_per_group must be >= 1.")
        need(self.submodules_per_module >= 1, "submodules_per_module must be >= 1.")
        need(0 < self.regulator_frac < 1, f"regulator_frac={self.regulator_frac} must be in (0, 1).")
        n_reg = max(1, round(self.regulator_frac * self.n_genes))
        need(n_reg >= self.n_modules,
             f"regulator_frac * n_genes = {n_reg} regulators is fewer than n_modules={self.n_modules}; "
             "every module needs a master regulator. Raise regulator_frac or lower n_modules.")
        need(self.n_regulator_levels >= 1, "n_regulator_levels must be >= 1.")
        need(self.level_growth > 0, "level_growth must be > 0.")
        need(0 < self.level_decay <= 1, "level_decay must be in (0, 1].")
        need(0 <= self.constitutive_frac < 1, "constitutive_frac must be in [0, 1).")
        need(self.mean_indegree >= 1, f"mean_indegree={self.mean_indegree} must be >= 1.")
        need(self.max_indegree >= 1, "max_indegree must be >= 1.")
        for name in ("p_same_submodule", "p_same_module", "p_same_group"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1].")
        need(self.p_same_submodule + self.p_same_module + self.p_same_group <= 1 + 1e-9,
             "p_same_submodule + p_same_module + p_same_group must be <= 1 (the rest are edges "
             "from other pathway groups).")
        need(self.hub_sd >= 0, "hub_sd must be >= 0.")
        need(0 <= self.activator_frac <= 1, "activator_frac must be in [0, 1].")
        need(self.n_programs >= 0, "n_programs must be >= 0.")
        need(self.n_programs == 0 or self.n_regulator_levels >= 2,
             "program hubs sit below other regulators: n_programs > 0 needs n_regulator_levels >= 2.")
        need(0 < self.program_input_frac <= 1, "program_input_frac must be in (0, 1].")
        need(0 <= self.program_frac <= 1, "program_frac must be in [0, 1].")
        need(0 <= self.program_input_activator_frac <= 1, "program_input_activator_frac must be in [0, 1].")
        for name in ("weight_range", "program_weight"):
            lo, hi = getattr(self, name)
            need(0 < lo <= hi <= 1, f"{name}={getattr(self, name)} must satisfy 0 < low <= high <= 1.")
        need(self.max_gain > 0, "max_gain must be > 0.")
        lo, hi = self.hill_range
        need(1 <= lo <= hi, f"hill_range={self.hill_range} must satisfy 1 <= low <= high.")
        lo, hi = self.program_occupancy
        need(0 < lo <= hi < 1, f"program_occupancy={self.program_occupancy} must satisfy 0 < low <= high < 1.")
        need(0 <= self.interaction_strength <= 1,
             f"interaction_strength={self.interaction_strength} must be in [0, 1].")
        lo, hi = self.occupancy_range
        need(0 < lo <= hi < 1, f"occupancy_range={self.occupancy_range} must satisfy 0 < low <= high < 1.")
        need(0 <= self.or_logic_frac <= 1, "or_logic_frac must be in [0, 1].")
        need(0 <= self.program_or_frac <= 1, "program_or_frac must be in [0, 1].")
        need(0 <= self.basal_mean < 0.9, "basal_mean must be in [0, 0.9).")
        need(0 <= self.off_gate_frac <= 1, "off_gate_frac must be in [0, 1].")
        need(self.expression_sd >= 0 and self.degradation_sd >= 0 and self.state_sd >= 0
             and self.state_sd_spread >= 0,
             "expression_sd, degradation_sd, state_sd and state_sd_spread must be >= 0.")
        need(self.regulator_expression > 0, "regulator_expression must be > 0.")
        need(self.modality in ("crispra", "crispri"),
             f"modality={self.modality!r}: choose 'crispra' (activation) or 'crispri' (interference).")
        need(self.crispra_fold > 1, f"crispra_fold={self.crispra_fold} must be > 1 (a fold increase).")
        need(0 < self.crispri_residual < 1,
             f"crispri_residual={self.crispri_residual} must be in (0, 1) (the fraction that remains).")
        need(self.n_singles >= 1, f"n_singles={self.n_singles} must be >= 1.")
        need(self.n_singles <= self.n_genes,
             f"n_singles={self.n_singles} exceeds n_genes={self.n_genes}; lower n_singles.")
        max_pairs = self.n_singles * (self.n_singles - 1) // 2
        need(0 <= self.n_doubles <= max_pairs,
             f"n_doubles={self.n_doubles} exceeds the {max_pairs} possible pairs of n_singles="
             f"{self.n_singles} perturbed genes; lower n_doubles or raise n_singles.")
        need(0 <= self.perturb_regulator_frac <= 1, "perturb_regulator_frac must be in [0, 1].")
        need(self.perturb_impact_bias >= 0, "perturb_impact_bias must be >= 0.")
        need(0 <= self.double_within_module_frac <= 1, "double_within_module_frac must be in [0, 1].")
        need(self.double_overlap_bias >= 0, "double_overlap_bias must be >= 0.")
        need(self.double_interaction_bias >= 0, "double_interaction_bias must be >= 0.")
        need(0 <= self.prior_informativeness <= 1,
             f"prior_informativeness={self.prior_informativeness} must be in [0, 1].")
        need(self.shared_response >= 0, f"shared_response={self.shared_response} must be >= 0 (0 = off).")
        need(0 < self.shared_response_frac <= 1,
             f"shared_response_frac={self.shared_response_frac} must be in (0, 1].")
        need(self.state_module_sd >= 0, f"state_module_sd={self.state_module_sd} must be >= 0 (0 = off).")
        need(self.n_states >= 1, "n_states must be >= 1.")
        need(self.min_cells >= 2, "min_cells must be >= 2 (differential expression needs 2 cells).")
        need(self.n_cells_ctrl >= self.min_cells,
             f"n_cells_ctrl={self.n_cells_ctrl} must be >= min_cells={self.min_cells}.")
        need(self.n_cells_per_condition >= self.min_cells,
             f"n_cells_per_condition={self.n_cells_per_condition} must be >= min_cells={self.min_cells}.")
        need(self.cells_sd >= 0 and self.library_sd >= 0 and self.dispersion_sd >= 0,
             "cells_sd, library_sd and dispersion_sd must be >= 0.")
        need(self.library_size >= 10, f"library_size={self.library_size} must be >= 10 UMI per cell.")
        need(self.dispersion > 0, "dispersion (NB theta) must be > 0 (inf for Poisson).")
        need(self.n_dispersion_classes >= 1, "n_dispersion_classes must be >= 1.")
        need(self.target_sum > 0, "target_sum must be > 0.")
        need(self.gene_names in GENE_NAMES,
             f"gene_names={self.gene_names!r}: choose 'synthetic' (G0001, ... with GO-like knowledge files) or "
             "'real_go' (real human genes, with the real GO files as knowledge).")
        need(self.seed >= 0, "seed must be >= 0.")


#: Settings added after version 1.0, with the default that switches each off.
_ADDED_SINCE_1_0 = {"prior_informativeness": 0.0, "shared_response": 0.0, "shared_response_frac": 0.3,
                    "state_module_sd": 0.0, "gene_names": "synthetic"}
#: Settings that a simulation folder records only when they differ from this default.
_STORED_WHEN_SET = {"gene_names": "synthetic"}
#: The values of ``gene_names``.
GENE_NAMES = ("synthetic", "real_go")


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Coerce ``value`` to the type of the field's default; strings are parsed (CLI ``--set``)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, str):
                value = float(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            v = float(value)
            if math.isnan(v):
                raise ValueError(value)
            return v
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
            out = tuple(float(v) for v in value)
            if len(out) != len(default):
                raise ValueError(value)
            return out
        if isinstance(default, str):
            return str(value)
    except (TypeError, ValueError):
        kind = type(default).__name__
        example = ", ".join(str(x) for x in default) if isinstance(default, tuple) else default
        raise ConfigError(
            f"setting {name}={value!r} is not a valid {kind} (example: {name}={example})."
        ) from None
    return value
