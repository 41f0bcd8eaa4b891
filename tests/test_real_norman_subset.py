"""benchmarks/real_norman_subset.py end to end on the real subset (tiny epochs), from ../shared."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "norman2019_subset" / "devel.h5ad"
GO = ROOT.parent / "shared" / "data" / "go"

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="the shared real subset is not beside the project")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import real_norman_subset

    yield real_norman_subset
    sys.path.remove(str(ROOT / "benchmarks"))


def test_lodo_splits_hold_out_each_double_of_two_measured_singles(bench):
    data = bench.load_data(DATA)
    assert data.n_cells == 3375 and data.n_genes == 500
    splits = bench.lodo_splits(list(data.conditions))
    # the data README names the five doubles whose two singles are measured
    assert [s.test for s in splits] == [["KLF1+MAP2K6"], ["KLF1+TGFBR2"], ["MAP2K3+MAP2K6"],
                                        ["MAP2K3+SLC38A2"], ["MAPK1+TGFBR2"]]
    for s in splits:
        assert s.subgroups == {"combo_seen2": s.test}
        assert len(s.val) == 2 and all("+" in c and not c.endswith("+ctrl") for c in s.val)
        assert len(s.train) == 1 + 18 + 15 - 1 - 2  # ctrl, every single, the other doubles but val


def test_runs_end_to_end_and_reports_every_model(bench, tmp_path):
    models = ["no_change", "mean", "additive", "linear", "transformer"]
    assert bench.main(["--out", str(tmp_path), "--max-epochs", "1", "--seeds", "1", "--n-boot", "50",
                       "--models", *models]) == 0
    table = pd.read_csv(tmp_path / "real_norman_subset.csv")
    md = (tmp_path / "real_norman_subset.md").read_text()
    scored = set(table["model"])
    assert {"no_change", "mean", "additive", "linear", "ceiling"} <= scored
    # the transformer has no token for an unmeasured perturbed gene: named with the reason, not hidden
    assert "transformer" not in scored and "- `transformer`: GraphError" in md
    lodo = table[(table["family"] == "double_lodo") & (table["metric"] == "pearson_delta_excl_target")]
    assert set(lodo["subgroup"]) == {"combo_seen2", "all"}
    assert (lodo[lodo["subgroup"] == "combo_seen2"]["n_conditions"] == 5).all()
    # no_change predicts zero everywhere: flagged by the diagnostic in every subgroup of >= 2 conditions
    spread = table[(table["metric"] == "relative_spread") & (table["model"] == "no_change")]
    assert (spread.dropna(subset=["mean"])["constant_seeds"] > 0).all()
    # the who-wins paragraph names the best model on each question, computed from the table
    best = lodo[lodo["subgroup"] == "combo_seen2"].query("model != 'ceiling'").sort_values("mean").iloc[-1]
    assert f"is `{best['model']}` ({best['mean']:.3f}" in md
    assert "python benchmarks/real_norman_subset.py --out" in md


@pytest.mark.slow
def test_every_default_model_with_the_real_go(bench, tmp_path):
    assert bench.main(["--out", str(tmp_path), "--max-epochs", "2", "--seeds", "1", "--n-boot", "50",
                       "--go-dir", str(GO)]) == 0
    table = pd.read_csv(tmp_path / "real_norman_subset.csv")
    assert {"go_knn", "priorgnn"} <= set(table["model"])
