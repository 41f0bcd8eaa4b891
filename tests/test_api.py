"""The Python API (``import priorgnn``): the README's "Python API" example runs as written, and the
verbs give the numbers of the functions they wrap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_api_block() -> str:
    """The code block of the README's "Python API" section (the first one after its heading; its
    comment lines start with ``#``, so the heading-based section reader of test_readme does not apply)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Python API\n(.*?)^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert m is not None and "\n## " not in m.group(1), "README has a Python API section with a python block"
    return m.group(2)


def test_readme_python_api_example_runs(tmp_path):
    code = _python_api_block()
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the example writes under runs/
    try:
        exec(compile(code, "README.md (Python API)", "exec"), ns)
    finally:
        os.chdir(cwd)
    table, split, pred = ns["table"], ns["split"], ns["pred"]
    # every test condition is scored for both models, against the measured data and the simulator's truth
    n = len(split.test)
    counts = table.groupby(["model", "reference"]).size().to_dict()
    assert counts[("priorgnn", "observed")] == counts[("additive", "observed")] == n
    assert counts[("priorgnn", "truth")] == n
    assert list(pred.obs_names) == ["G0012+G0027", "G0015+G0027"]
    # the predicted mean is the control mean plus the predicted change
    np.testing.assert_allclose(pred.X, ns["model"].control_mean[None, :] + pred.layers["delta"], rtol=1e-5, atol=1e-6)


def test_score_matches_the_scorer_of_evaluate(tmp_path):
    """``priorgnn.score`` gives evaluate_seed's table for a model, and the same numbers (to float32 rounding)
    for that model's prediction AnnData."""
    import priorgnn
    from priorgnn.metrics import evaluate_seed, predict_conditions

    sim = priorgnn.simulate("tiny", seed=0, out=tmp_path / "sim")
    split = priorgnn.make_split(sim.data, "simulation", seed=1)
    model = priorgnn.fit("additive", sim, split)
    table = priorgnn.score(model, sim, split)
    ref, _ = evaluate_seed(sim.data, split, {"additive": predict_conditions(model, split.test, sim.data.genes,
                                                                            progress=False)},
                           seed=0, simulation=sim, ceiling=False)
    assert table.equals(ref)
    stored = priorgnn.score(model.predict(split.test), sim, split)
    num = table.select_dtypes("number").columns
    np.testing.assert_allclose(stored[num].to_numpy(float), table[num].to_numpy(float), rtol=1e-4, atol=1e-5)
    # a prediction AnnData that lacks a condition asked for is one clear error
    from priorgnn.errors import DataValidationError

    with pytest.raises(DataValidationError, match="no prediction for"):
        priorgnn.score(model.predict(split.test[:1]), sim, split, conditions=split.test[:2])


def test_build_priors_needs_written_annotations():
    import priorgnn
    from priorgnn.errors import ConfigError

    sim = priorgnn.simulate("tiny", seed=0)  # in memory: no annotation files
    split = priorgnn.make_split(sim, "simulation", seed=1)
    with pytest.raises(ConfigError, match="out=FOLDER"):
        priorgnn.build_priors(sim, split)
    graphs = priorgnn.build_priors(sim, split, go=None, coexpression=None)
    assert graphs.go is None and graphs.coexpression is None


def test_unknown_training_option_is_one_clear_error(tmp_path):
    import priorgnn
    from priorgnn.errors import ConfigError

    sim = priorgnn.simulate("tiny", seed=0)
    split = priorgnn.make_split(sim, "simulation", seed=1)
    with pytest.raises(ConfigError, match="max_epochs"):
        priorgnn.fit("priorgnn", sim, split, train={"max_epoch": 2})


def test_import_priorgnn_is_light():
    """``import priorgnn`` loads neither torch nor the models; the verbs and ``priorgnn.simulate`` the
    package both work after the simulate package is imported."""
    code = ("import sys, priorgnn; assert 'torch' not in sys.modules and 'priorgnn.models' not in sys.modules; "
            "import priorgnn.simulate; assert callable(priorgnn.simulate) and priorgnn.simulate.PRESETS; "
            "assert priorgnn.fit and priorgnn.read")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
