"""The near-constant-prediction diagnostic on arrays worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from priorgnn.errors import DataValidationError
from priorgnn.metrics.diagnostics import constant_prediction_table, relative_spread, spread

# Three genes a, b, c; two singles and one double measured. Observed changes (rows: conditions).
SINGLE_A = np.array([1.0, 0.0, 2.0])
SINGLE_B = np.array([0.0, 2.0, -2.0])
# Test conditions: the doubles A+B and A+C, B+C with singles known in training, C = [2, -2, 0].
SINGLE_C = np.array([2.0, -2.0, 0.0])
OBSERVED = np.array([[1.0, 2.0, 0.0],    # A+B
                     [3.0, -2.0, 2.0],   # A+C
                     [2.0, 0.0, -2.0]])  # B+C


def test_spread_by_hand():
    # per-gene means over the 3 conditions: [2, 0, 0]; deviations [[-1, 2, 0], [1, -2, 2], [0, 0, -2]];
    # squares sum 1+4+0+1+4+4+0+0+4 = 18 over 9 entries -> sqrt(2)
    assert spread(OBSERVED) == pytest.approx(np.sqrt(2.0))
    # fewer than two conditions: undefined
    assert np.isnan(spread(OBSERVED[:1]))
    # one column masked in each row: row 0 drops gene 0, row 1 drops gene 1, row 2 drops gene 2.
    # gene 0 over rows 1,2: [3, 2] mean 2.5 -> dev ±0.5; gene 1 over rows 0,2: [2, 0] mean 1 -> ±1;
    # gene 2 over rows 0,1: [0, 2] mean 1 -> ±1; squares 0.25*2 + 1*2 + 1*2 = 4.5 over 6 -> sqrt(0.75)
    assert spread(OBSERVED, exclude=[[0], [1], [2]]) == pytest.approx(np.sqrt(0.75))


def test_fires_on_one_vector_and_not_on_additive():
    one_vector = np.tile([2.0, 0.0, 0.0], (3, 1))  # e.g. the mean change, whatever the condition
    nearly = one_vector + np.array([[1e-5], [0.0], [-1e-5]])
    additive = np.stack([SINGLE_A + SINGLE_B, SINGLE_A + SINGLE_C, SINGLE_B + SINGLE_C])
    # additive: [[1, 2, 0], [3, -2, 2], [2, 0, -2]] equals the observed doubles here: ratio exactly 1
    assert relative_spread(additive, OBSERVED) == pytest.approx(1.0)
    assert relative_spread(one_vector, OBSERVED) == 0.0
    # 1e-5 on every gene of two rows: mean 0, squares 3e-10 * 2 over 9 -> sqrt(6.67e-11) / sqrt(2)
    assert relative_spread(nearly, OBSERVED) == pytest.approx(np.sqrt(6e-10 / 9) / np.sqrt(2.0))
    half = 0.5 * additive  # a model that shrinks every change by half: spread halves, not flagged
    t = constant_prediction_table({"one_vector": one_vector, "nearly": nearly, "additive": additive,
                                   "half": half}, OBSERVED, ["combo_seen2"] * 3, seed=4)
    t = t.set_index("model")
    assert t.loc["half", "relative_spread"] == pytest.approx(0.5)
    assert t["constant"].to_dict() == {"one_vector": True, "nearly": True, "additive": False, "half": False}
    assert (t["seed"] == 4).all() and (t["n_conditions"] == 3).all()
    assert t.loc["additive", "observed_spread"] == pytest.approx(np.sqrt(2.0))


def test_per_subgroup_and_undefined_cases():
    # two subgroups: rows 0, 1 and row 2 alone (no spread defined: not flagged)
    one_vector = np.zeros((3, 3))
    t = constant_prediction_table({"zero": one_vector}, OBSERVED, ["combo_seen2", "combo_seen2", "combo_seen1"])
    by = t.set_index("subgroup")
    # rows 0, 1: gene means [2, 0, 1]; deviations ±1, ±2, ±1 -> squares 2+8+2 = 12 over 6 -> sqrt(2)
    assert by.loc["combo_seen2", "observed_spread"] == pytest.approx(np.sqrt(2.0))
    assert bool(by.loc["combo_seen2", "constant"])
    assert np.isnan(by.loc["combo_seen1", "relative_spread"]) and not bool(by.loc["combo_seen1", "constant"])
    # observed changes that do not vary: the ratio is undefined, not infinite
    assert np.isnan(relative_spread(OBSERVED, np.tile(OBSERVED[0], (3, 1))))


def test_bad_shapes_name_the_problem():
    with pytest.raises(DataValidationError, match="shape"):
        relative_spread(np.zeros((3, 2)), OBSERVED)
    with pytest.raises(DataValidationError, match="one list of gene indices per condition"):
        spread(OBSERVED, exclude=[[0]])
