"""Named simulator presets: overrides of :class:`~priorgnn.simulate.config.SimulatorConfig`'s
defaults.

``demo``
    A few hundred genes, ~50 singles and ~50 doubles, a few dozen cells per condition: the whole
    simulation takes a few seconds, for ``make demo`` and the many re-simulations of the study.
    A fifth of its genes are regulators, so that the perturbed genes are mostly regulators (as
    ``perturb_regulator_frac`` asks; Norman et al. chose transcription factors and pathway genes),
    and regulation is more often activating and more concentrated within sub-modules than the
    defaults: members of one pathway then move their targets in the same direction, as members of
    one complex or pathway have correlated knock-down profiles in Replogle et al. (Cell 2022). With
    the defaults on 300 genes, only 18 genes regulate anything and the perturbation effects of one
    module are no more alike than those of two modules, so GO would carry no information.
``norman``
    The shape of Norman et al. (Science 2019) as processed by GEARS (Roohani et al., Nature
    Biotechnology 2024): 5,045 genes, 105 single and 131 double CRISPRa perturbations, ~90,000
    cells of which ~8,000 controls. Calibrated against Norman's genetic-interaction statistics by
    ``benchmarks/calibrate_simulator.py`` (results in ``benchmarks/results/simulator_calibration.md``;
    seeds 0-2 all inside Norman's interquartile ranges). Two changes from the defaults carry the
    calibration. (1) Doubles are drawn with ``double_interaction_bias``: Norman et al. profiled pairs
    picked from a genetic-interaction growth screen, and with uniform pairs only ~2.5% of pairs of a
    sparse network interact at all, which left the observed corr_sum above Norman's range. (2) The
    expression programs are broader and stronger (fewer, stronger program inputs; less saturated
    program edges; input gain up to 1.2), as K562 CRISPRa effects converge on a few broad programs:
    with narrow effects most of the ~3,000 scored genes carry only noise, which shrinks the
    regression magnitude below Norman's range.
``tiny``
    Tens of genes and a handful of conditions, for unit tests (well under a second).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

_DEMO: dict[str, Any] = {
    "n_genes": 300,
    "n_modules": 12,
    "regulator_frac": 0.2,
    "activator_frac": 0.75,
    "p_same_submodule": 0.5,
    "p_same_module": 0.3,
    "p_same_group": 0.15,
    "n_singles": 50,
    "n_doubles": 50,
    "n_states": 48,
    "n_cells_ctrl": 300,
    "n_cells_per_condition": 60,
    "library_size": 2500.0,
}

_NORMAN: dict[str, Any] = {
    "n_genes": 5045,
    "n_modules": 24,
    "modules_per_group": 4,
    "submodules_per_module": 3,
    "n_singles": 105,
    "n_doubles": 131,
    "n_states": 96,
    "n_cells_ctrl": 8000,
    "n_cells_per_condition": 350,
    "library_size": 8000.0,
    # calibration (see the module docstring and benchmarks/results/simulator_calibration.md)
    "double_interaction_bias": 2.5,
    "program_input_frac": 0.1,
    "program_weight": (0.9, 1.0),
    "program_occupancy": (0.05, 0.3),
    "max_gain": 1.2,
}

_TINY: dict[str, Any] = {
    "n_genes": 40,
    "n_modules": 4,
    "modules_per_group": 2,
    "submodules_per_module": 2,
    "regulator_frac": 0.3,
    "n_singles": 6,
    "n_doubles": 5,
    "n_states": 8,
    "n_cells_ctrl": 40,
    "n_cells_per_condition": 20,
    "min_cells": 5,
    "library_size": 800.0,
}

#: Named presets: ``{name: {setting: value}}`` overriding the dataclass defaults.
PRESETS: dict[str, dict[str, Any]] = {"demo": _DEMO, "norman": _NORMAN, "tiny": _TINY}
