"""priorgnn: perturbation-outcome prediction with explicit knowledge priors.

The library is organised as in ``DESIGN.md``: :mod:`priorgnn.data` (loading, validation,
summaries, splits), :mod:`priorgnn.simulate` (mechanistic simulator with causal ground truth),
:mod:`priorgnn.models` (PriorGNN, the prior-free transformer, baselines), :mod:`priorgnn.training`,
:mod:`priorgnn.metrics`, :mod:`priorgnn.report` and :mod:`priorgnn.interactions`. Knowledge graphs
live in the sibling package :mod:`knowledge`.

Importing the package never touches the network.
"""

__version__ = "0.1.0"
