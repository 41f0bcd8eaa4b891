"""benchmarks/interaction_targets.py: the room the truth leaves above additive, by hand."""

from __future__ import annotations

import interaction_targets as bench  # benchmarks/ is on the path (conftest)
import numpy as np
import pytest


def test_room_terms_by_hand():
    """Two scored genes (the third is left out):
    additive: (1 + 0 − 0.5)² = 0.25 and (0 + 1 − 1.2)² = 0.04, mean 0.145;
    true non-additive part: (0.5 − 0.9 − 0)² = 0.16 and (1.2 − 0 − 1.2)² = 0, mean 0.08;
    floor, the singles' error: (0.1 + 0)² = 0.01 and (0 − 0.2)² = 0.04, mean 0.025."""
    obs_a, obs_b = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.0])
    true_a, true_b, true_ab = np.array([0.9, 0.0, 2.0]), np.array([0.0, 1.2, 0.0]), np.array([0.5, 1.2, 9.0])
    out = bench.room_terms(obs_a, obs_b, true_a, true_b, true_ab, np.array([0, 1]))
    assert out == pytest.approx({"additive": 0.145, "nonadditive": 0.08, "floor": 0.025})
    # with exactly measured singles the floor is 0 and additive's error is the non-additive part
    exact = bench.room_terms(true_a, true_b, true_a, true_b, true_ab, np.array([0, 1]))
    assert exact["floor"] == 0.0 and exact["additive"] == pytest.approx(exact["nonadditive"])
