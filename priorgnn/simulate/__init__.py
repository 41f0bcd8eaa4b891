"""Mechanistic simulator of perturbation screens with known causal truth.

A gene-regulatory network with modules (pathways), Hill kinetics and cooperative (AND) or additive
(OR) input logic is an ODE whose steady states are computed exactly; CRISPRa/CRISPRi perturbations
scale transcription; cells differ by shared cell states (rate multipliers propagated through the
network) and are measured as negative-binomial UMI counts, normalised as real pipelines do.
Ground truth comes with it: the noise-free expected expression of any condition, the true network,
each gene's descendants, and GO-like knowledge files (OBO + GAF) at a chosen fidelity; or, with
``gene_names="real_go"``, real human gene names whose GO co-annotation is the module structure, with the
real GO files as the knowledge (:mod:`priorgnn.simulate.realgo`).

>>> from priorgnn.simulate import simulate
>>> sim = simulate("demo", seed=0, out="runs/sim-demo")          # doctest: +SKIP
>>> sim.data, sim.truth(["A+B"]), sim.network, sim.obo_path        # doctest: +SKIP

Command line: ``python -m priorgnn.simulate --help``.
"""

import sys
import types

from priorgnn.simulate.config import SIMULATOR_VERSION, SimulatorConfig
from priorgnn.simulate.ode import Simulator
from priorgnn.simulate.ontology import write_knowledge
from priorgnn.simulate.presets import PRESETS
from priorgnn.simulate.simulation import Simulation, design_conditions, load_simulation, simulate

__all__ = [
    "PRESETS",
    "SIMULATOR_VERSION",
    "Simulation",
    "Simulator",
    "SimulatorConfig",
    "design_conditions",
    "load_simulation",
    "simulate",
    "write_knowledge",
]


class _CallablePackage(types.ModuleType):
    """``priorgnn.simulate(...)`` is the API verb (:func:`priorgnn.api.simulate`) as well as this package:
    importing the package makes it the attribute ``priorgnn.simulate``, which would otherwise hide the verb."""

    def __call__(self, *args, **kwargs) -> Simulation:
        from priorgnn.api import simulate as _api_simulate

        return _api_simulate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

