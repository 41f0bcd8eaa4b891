"""The experiment layer (priorgnn.experiment): fit, predict, score, and saved test predictions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from priorgnn import experiment
from priorgnn.data.io import from_anndata
from priorgnn.data.splits import make_split
from priorgnn.errors import ConfigError
from priorgnn.io import write_h5ad, write_json
from priorgnn.metrics import evaluate_seed
from priorgnn.models.base import get_model_class
from tests._synth import synth_lognorm

ROOT = Path(__file__).resolve().parent.parent
SINGLES = tuple(f"G{i}" for i in range(8))
DOUBLES = (("G0", "G1"), ("G0", "G2"), ("G1", "G3"), ("G2", "G5"), ("G4", "G6"), ("G3", "G7"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    a = synth_lognorm(n_genes=30, singles=SINGLES, doubles=DOUBLES, cells=16, ctrl_cells=60, seed=0)
    h5 = root / "data.h5ad"
    write_h5ad(h5, a)
    data = from_anndata(a)
    split = make_split(data.conditions, "simulation", seed=1, require_subgroups=())
    return root, h5, data, split


def _run(root: Path, name: str, h5: Path, data, split) -> Path:
    """A run directory as train.py writes it, with its test predictions and their record."""
    run = root / name
    model = experiment.fit("additive", data, split)
    model.save(run / "model")
    split.save(run / "split.json")
    write_h5ad(run / experiment.TEST_PREDICTIONS, model.predict(split.test))
    info = {"model": "additive", "seed": 1, "data": {"kind": "h5ad", "path": str(h5), "load_kwargs": {}},
            "predictions": {"test": experiment.prediction_record(run)}}
    write_json(run / "run.json", info)
    return run


def _edit_delta(run: Path, seed: int) -> np.ndarray:
    """Replace the saved changes with random ones (not what the model predicts, so reading them shows)."""
    path = run / experiment.TEST_PREDICTIONS
    pred = ad.read_h5ad(path)
    rng = np.random.default_rng(seed)
    pred.layers["delta"] = rng.normal(size=pred.shape).astype(pred.layers["delta"].dtype)
    write_h5ad(path, pred)
    return np.asarray(pred.layers["delta"], dtype=np.float64)


def _rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    t = table[(table["model"] == model) & (table["reference"] == "observed")]
    return t.drop(columns=["model"]).reset_index(drop=True)


def test_saved_predictions_that_match_are_scored(setup, tmp_path):
    root, h5, data, split = setup
    run = _run(tmp_path, "r", h5, data, split)
    delta = _edit_delta(run, 0)
    from priorgnn.runs import Run

    info = Run(run).info
    info["predictions"]["test"] = experiment.prediction_record(run)  # the file is the recorded one
    write_json(run / "run.json", info)
    model = Run(run).model()
    res = experiment.evaluate_runs([run], ceiling=False, n_boot=50, progress=False)
    want, _ = evaluate_seed(data, split, {"additive": (delta, np.asarray(model.control_mean, np.float64))},
                            seed=1, ceiling=False)
    pd.testing.assert_frame_equal(_rows(res.per_condition, "additive"), _rows(want, "additive"))
    repredicted, _ = evaluate_seed(data, split, {"additive": experiment.predict(model, split.test)}, seed=1,
                                   ceiling=False)
    got, other = _rows(want, "additive")["pearson_delta"], _rows(repredicted, "additive")["pearson_delta"]
    assert got.notna().all() and not np.allclose(got, other)


def test_saved_predictions_that_do_not_match_are_predicted_again(setup, tmp_path):
    root, h5, data, split = setup
    run = _run(tmp_path, "r", h5, data, split)
    _edit_delta(run, 0)  # the record still holds the original file's checksum
    from priorgnn.runs import Run

    model = Run(run).model()
    res = experiment.evaluate_runs([run], ceiling=False, n_boot=50, progress=False)
    want, _ = evaluate_seed(data, split, {"additive": experiment.predict(model, split.test)}, seed=1,
                            ceiling=False)
    pd.testing.assert_frame_equal(_rows(res.per_condition, "additive"), _rows(want, "additive"))
    assert experiment.saved_predictions(Run(run), list(split.test), data.genes) is None


def test_fit_predict_score_match_the_model_and_the_metrics(setup):
    _, _, data, split = setup
    model = experiment.fit("additive", data, split)
    ref = get_model_class("additive")().fit(data, split)
    delta, control = experiment.predict(model, split.test)
    np.testing.assert_array_equal(delta, np.asarray(ref.predict(split.test).layers["delta"], dtype=np.float64))
    np.testing.assert_array_equal(control, np.asarray(ref.control_mean, dtype=np.float64))
    by_arrays = experiment.score({"additive": (delta, control)}, data, split)
    by_model = experiment.score(model, data, split)
    pd.testing.assert_frame_equal(by_arrays, by_model)
    want, _ = evaluate_seed(data, split, {"additive": (delta, control)}, seed=0, ceiling=False)
    pd.testing.assert_frame_equal(by_arrays, want)


def test_score_gives_the_examples_and_the_ceiling_seed_of_evaluate_seed(setup):
    """``examples=True`` returns the table with the per-condition examples (for figures and diagnostics),
    and ``ceiling_seed`` picks the ceiling's random halves, as in :func:`evaluate_seed`."""
    _, _, data, split = setup
    model = experiment.fit("additive", data, split)
    preds = {"additive": experiment.predict(model, split.test)}
    table, ex = experiment.score(preds, data, split, seed=3, ceiling=True, ceiling_seed=7, examples=True)
    want, want_ex = evaluate_seed(data, split, preds, seed=3, ceiling=True, ceiling_seed=7)
    pd.testing.assert_frame_equal(table, want)
    assert ex.seed == want_ex.seed == 3 and ex.conditions == want_ex.conditions == list(split.test)
    np.testing.assert_array_equal(ex.observed_delta, want_ex.observed_delta)
    np.testing.assert_array_equal(ex.predicted_delta["additive"], want_ex.predicted_delta["additive"])
    pd.testing.assert_frame_equal(experiment.score(preds, data, split, seed=3, ceiling=True, ceiling_seed=7), want)
    other, _ = evaluate_seed(data, split, preds, seed=3, ceiling=True, ceiling_seed=8)
    assert not table.equals(other)  # the seed of the halves shows in the ceiling's rows


def test_fit_of_an_instance_takes_no_options(setup):
    _, _, data, split = setup
    with pytest.raises(ConfigError, match="already constructed"):
        experiment.fit(get_model_class("additive")(), data, split, hidden=8)


def test_metrics_alias_the_moved_names_without_loading_models():
    """``priorgnn.metrics.evaluate_runs`` (documented before the experiment layer) still resolves, and
    importing ``priorgnn.metrics`` loads no model, no run and no experiment layer."""
    code = ("import sys, priorgnn.metrics as m\n"
            "print(sorted(k for k in sys.modules if k.startswith(('priorgnn.models', 'priorgnn.runs', "
            "'priorgnn.experiment'))))\n"
            "import priorgnn.experiment as e\n"
            "print(m.evaluate_runs is e.evaluate_runs, m.predict_conditions is e.predict_conditions)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True True"]
