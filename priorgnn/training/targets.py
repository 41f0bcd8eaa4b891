"""Per-condition training targets: pseudobulk deltas and the moments that make the cell-level loss exact.

GEARS trains on cells: each perturbed cell ``y`` is paired with a random control cell ``x`` and the
model predicts ``x + δ̂`` where ``δ̂`` depends only on the perturbation. Its loss averages
``(x + δ̂ − y)^p`` (``p = 2 + γ``) over the cells of each perturbation. Because ``δ̂`` is the same for
every cell of a perturbation, that average depends on the cells only through the moments of the
residual ``r = y − x``:

``E[(δ̂ − r)^4] = d^4 + 6 d^2 c2 − 4 d c3 + c4``, with ``d = δ̂ − E[r]`` and ``c_k`` the central
moments of ``r``.

Taking ``x`` and ``y`` independent (the control partner drawn at random, as GEARS does), the moments
of ``r`` follow from per-condition moments of ``y`` and of the control cells:
``E[r] = E[y] − E[x]``, ``c2 = c2y + c2x``, ``c3 = c3y − c3x``, ``c4 = c4y + 6 c2y c2x + c4x``.
So the loss over *every* cell and *every* control pairing is computed from ``[C, G]`` arrays, with
no per-cell work in the training loop. Moments are computed in float64 (central moments, not raw
powers, enter the loss, so there is no cancellation at small residuals).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from priorgnn.cache import cache_load, cache_save
from priorgnn.io import hash_arrays
from priorgnn.data.conditions import CTRL
from priorgnn.data.dataset import PerturbationData, condition_moments

log = logging.getLogger(__name__)

__all__ = ["ConditionTargets", "condition_moments"]  # condition_moments: re-exported from priorgnn.data.dataset


@dataclass
class ConditionTargets:
    """Targets of a set of conditions, rows in ``conditions`` order.

    ``delta`` is the observed pseudobulk delta ``E[y] − E[x]``; ``c2, c3, c4`` the central moments of
    ``r = y − x``; ``retain`` GEARS's loss genes (non-zero mean in the condition; all genes for
    control); ``top_de`` the top-20 DE gene indices (``-1`` for control).
    """

    conditions: list[str]
    delta: np.ndarray  # [C, G] float64
    c2: np.ndarray
    c3: np.ndarray
    c4: np.ndarray
    retain: np.ndarray  # [C, G] bool
    top_de: np.ndarray  # [C, 20] int64

    @classmethod
    def from_data(cls, data: PerturbationData, conditions: list[str]) -> ConditionTargets:
        conditions = list(conditions)
        key = hash_arrays(data.content_hash, {"targets": 1, "conditions": conditions})
        arrays = cache_load("targets", key, required=("delta", "c2", "c3", "c4"))
        if arrays is None:
            groups = [CTRL] + [c for c in conditions if c != CTRL]
            mom = data.condition_moments(groups)
            ctrl = mom[:, 0]
            rows = {c: i for i, c in enumerate(groups)}
            idx = np.array([rows[c] for c in conditions])
            m1, c2y, c3y, c4y = (mom[k, idx] for k in range(4))
            x1, c2x, c3x, c4x = (ctrl[k][None, :] for k in range(4))
            is_ctrl = np.array([c == CTRL for c in conditions])
            delta = m1 - x1
            c2 = c2y + c2x
            c3 = c3y - c3x
            c4 = c4y + 6 * c2y * c2x + c4x
            # GEARS trains control cells as their own input: y = x exactly, so r = 0.
            for arr in (delta, c2, c3, c4):
                arr[is_ctrl] = 0.0
            arrays = {"delta": delta, "c2": c2, "c3": c3, "c4": c4}
            cache_save("targets", key, arrays)
        s = data.summaries
        retain = np.stack([np.ones(data.n_genes, bool) if c == CTRL else s.nonzero[s.row[c]] for c in conditions])
        top_de = np.stack([
            np.full(20, -1) if c == CTRL else np.pad(s.top_de(c, 20), (0, max(0, 20 - len(s.top_de(c, 20)))),
                                                      constant_values=-1)
            for c in conditions
        ]).astype(np.int64)
        return cls(conditions, arrays["delta"], arrays["c2"], arrays["c3"], arrays["c4"], retain, top_de)
