"""benchmarks/interaction_learning_curve.py: nested training sets, a fixed held-out set, and the summary."""

from __future__ import annotations

import interaction_learning_curve as bench  # benchmarks/ is on the path (conftest)
import pandas as pd
import pytest


def test_learning_splits_hold_out_the_same_doubles_and_only_add_training_doubles():
    singles = [f"G{i}+ctrl" for i in range(6)]
    doubles = [f"G{i}+G{j}" for i in range(6) for j in range(i + 1, 6)]  # 15 doubles
    splits = bench.learning_splits(["ctrl", *singles, *doubles], seed=3, n_test=5, sizes=(2, 6, 10, 11), repeats=2)
    assert [(r, n) for r, n, _ in splits] == [(0, 2), (0, 6), (0, 10), (1, 2), (1, 6), (1, 10)]  # 11 > 10 left
    for rep in (0, 1):
        mine = [s for r, _, s in splits if r == rep]
        test = set(mine[0].test)
        assert len(test) == 5 and all(set(s.test) == test for s in mine)
        trained = [[c for c in s.train if "+ctrl" not in c and c != "ctrl"] for s in mine]
        assert [len(t) for t in trained] == [2, 6, 10]
        assert set(trained[0]) < set(trained[1]) < set(trained[2])  # a larger size adds doubles, swaps none
        assert not test & set(trained[-1])
        assert all(set(singles) | {"ctrl"} <= set(s.train) for s in mine)
    assert set(splits[0][2].test) != set(splits[3][2].test)  # each repeat draws its own held-out doubles


def test_summary_averages_seeds_and_repeats_by_hand():
    rows = [{"setting": "norman", "data_seed": s, "repeat": r, "n_train": 15, "n_test": 25, "model": "additive",
             "mse_top20_de": 0.1 * (s + r + 1), "nonadditive_corr": 0.0} for s in (0, 1) for r in (0, 1)]
    out = bench.summarise(pd.DataFrame(rows)).set_index("metric")["value"]
    assert out["mse_top20_de"] == pytest.approx(0.1 * (1 + 2 + 2 + 3) / 4)
    assert out["nonadditive_corr"] == 0.0
