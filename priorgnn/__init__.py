"""priorgnn: perturbation-outcome prediction with explicit knowledge priors.

The library is organised as in ``DESIGN.md``: :mod:`priorgnn.data` (loading, validation,
summaries, splits), :mod:`priorgnn.simulate` (mechanistic simulator with causal ground truth),
:mod:`priorgnn.models` (PriorGNN, the prior-free transformer, baselines), :mod:`priorgnn.training`,
:mod:`priorgnn.metrics`, :mod:`priorgnn.report` and :mod:`priorgnn.interactions`. Knowledge graphs
live in the sibling package :mod:`knowledge`; shared file helpers in :mod:`priorgnn.io`.

The Python API (:mod:`priorgnn.api`) is reachable from the package itself::

    import priorgnn
    sim = priorgnn.simulate("tiny", seed=0)
    split = priorgnn.make_split(sim.data, "simulation", seed=1)
    graphs = priorgnn.build_priors(sim, split)
    model = priorgnn.fit("priorgnn", sim.data, split, graphs, train={"max_epochs": 2})
    table = priorgnn.score(model, sim.data, split, simulation=sim)

Importing the package never touches the network, and imports neither torch nor the models: the API
loads them on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The API's verbs, loaded from :mod:`priorgnn.api` on first access (keeps ``import priorgnn`` light).
_API = ("read", "simulate", "make_split", "build_priors", "fit", "score")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from priorgnn import api

        return getattr(api, name)
    raise AttributeError(f"module 'priorgnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
