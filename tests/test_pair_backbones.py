"""benchmarks/pair_backbones.py: its page's summary lines from a hand-made results frame."""

from __future__ import annotations

import pair_backbones as bench  # benchmarks/ is on the path (conftest)
import pandas as pd


def _frame() -> pd.DataFrame:
    """One setting, two seeds; every model's metric is a made-up number, so the page's sentences can be
    worked out by hand. pair_auto chose 'relation' (index 3) in seed 0 and 'overlap' (2) in seed 1."""
    rows = []
    values = {"additive": (0.10, 0.0), "overlap_additive": (0.08, 0.20), "pair_auto": (0.07, 0.25),
              "pair_auto_all": (0.09, 0.30)}
    for seed, shift in ((0, 0.0), (1, 0.01)):
        for part in ("validation", "test"):
            for model in bench.MODELS:
                mse, nac = values.get(model, (0.5, 0.1))
                for metric, v in (("mse_top20_de", mse + shift), ("pearson_delta", 0.8),
                                  ("nonadditive_corr", nac - (0.08 if seed and model == "pair_auto" else 0.0))):
                    rows.append({"setting": "norman", "data_seed": seed, "model": model, "part": part,
                                 "reference": "truth", "n": 4, "metric": metric, "value": v})
        rows.append({"setting": "norman", "data_seed": seed, "model": "pair_auto", "part": "fit", "reference": "",
                     "n": 1, "metric": "chosen", "value": 3 - seed})
    return pd.DataFrame(rows)


def test_render_counts_the_choices_and_compares_pair_auto_with_overlap_by_hand():
    text = bench.render(_frame(), "python benchmarks/pair_backbones.py", 1.0)
    assert "fits per backbone: norman: overlap 1, relation 1." in text
    # nonadditive_corr, pair_auto − overlap_additive: seed 0 +0.05, seed 1 −0.03 → mean +0.01, SE 0.08/2 = 0.04
    assert "`overlap_additive`: +0.010 on average (SE 0.040; higher in 1 of 2 setting-seed pairs" in text
    # mse_top20_de: overlap − pair_auto = 0.01 in both seeds; additive − pair_auto = 0.03
    assert "below `overlap_additive` (the backbone without `relation`) in 2 of 2 (mean 0.0100, SE 0.0000" in text
    assert "below `additive` in 2 of 2 (mean 0.0300, SE 0.0000)" in text
    # the choice rows are not a metric of the tables
    assert "| chosen" not in text and "chosen |" not in text
