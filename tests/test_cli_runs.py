"""Run directories are replaced only by a finished run and locked while written; options are validated
where they are parsed; ill-conditioned interaction fits are flagged (issue 14, beside the catalogue)."""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pandas as pd
import pytest

from priorgnn.errors import CheckpointError, ConfigError
from tests._synth import synth_lognorm


def _quiet(fn, *args):
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        status = fn(*args)
    return status, err.getvalue()


def _train_argv(data, out, model="additive", *extra):
    return ["--data", str(data), "--model", model, "--split", "combo", "--out", str(out), "--no-progress", "-q",
            *extra]


@pytest.fixture
def first_run(tmp_path, monkeypatch):
    """``(data, out)``: a small .h5ad and an additive run trained from it, the working folder ``tmp_path``."""
    import train

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "d.h5ad"
    synth_lognorm().write_h5ad(data)
    out = tmp_path / "run"
    assert _quiet(train.main, _train_argv(data, out, "additive"))[0] == 0
    return data, out


def test_overwrite_swaps_in_the_new_run_and_leaves_nothing_behind(tmp_path, first_run):
    import train

    data, out = first_run
    assert _quiet(train.main, _train_argv(data, out, "mean", "--overwrite"))[0] == 0
    assert '"model": "mean"' in (out / "model" / "model.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5ad", "run"]  # no partial, old or lock left


def test_interrupted_overwrite_keeps_the_earlier_run(tmp_path, monkeypatch, first_run):
    import train
    from priorgnn.training import fit

    data, out = first_run
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    original = fit.EpochClock.on_train_epoch_end

    def interrupt(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit.EpochClock, "on_train_epoch_end", interrupt)
    status, err = _quiet(train.main, _train_argv(data, out, "priorgnn", "--go", "none", "--model-set", "hidden=8",
                                                 "--epochs", "5", "--overwrite"))
    assert status == 130
    kept = tmp_path / "run-interrupted"
    assert f"1 completed epoch(s) kept in {kept}" in err and f"--out {kept} --resume" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert (kept / "checkpoints" / "last.ckpt").exists() and not (kept / "run.json").exists()


def test_run_lock_is_exclusive_and_released(tmp_path):
    from priorgnn.runs import RunLock

    with RunLock(tmp_path / "run"):
        with pytest.raises(CheckpointError, match="being written by another training"), RunLock(tmp_path / "run"):
            pass
    assert not list(tmp_path.glob(".*.lock"))
    with RunLock(tmp_path / "run"):  # free again
        pass


def test_fresh_run_that_fails_leaves_no_folder(tmp_path, monkeypatch):
    import train

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.h5ad").write_bytes(b"")
    assert _quiet(train.main, _train_argv(tmp_path / "empty.h5ad", tmp_path / "run"))[0] == 2
    assert not (tmp_path / "run").exists()  # a rerun is not told that an unfinished run is there


def test_resume_refuses_contradicting_options_and_names_those_that_may_change(first_run):
    import train

    data, out = first_run
    for flags, said in ((["--lr", "0.1"], "--lr 0.1"), (["--model-set", "fallback=zero"], "fallback"),
                        (["--split", "random"], "--split 'random' (the run has 'combo')")):
        status, err = _quiet(train.main, ["--out", str(out), "--resume", "-q", *flags])
        assert status == 2 and "cannot resume" in err and said in err and "--epochs" in err, err
    # the same value as saved is no contradiction
    assert _quiet(train.main, ["--out", str(out), "--resume", "-q", "--split", "combo", "--model", "additive"])[0] == 0


def test_hyperparameters_are_checked_against_each_models_constructor():
    from priorgnn.models import available_models, get_model_class

    for name in available_models():
        get_model_class(name).check_hparams({})  # the defaults are valid
    cls = get_model_class("priorgnn")
    cls.check_hparams({"hidden": 16, "pert_dropout": 0.5, "use_go": False, "gene_layers": 0})
    for options, message in (({"hiden": 8}, "did you mean 'hidden'"), ({"hidden": "abc"}, "not an integer"),
                             ({"hidden": -4}, "1 or more"), ({"hidden": True}, "not an integer"),
                             ({"pert_dropout": 1.0}, "below 1"), ({"direction_lambda": float("nan")}, "finite"),
                             ({"use_go": "yes"}, "true or false"), ({"singles": "bogus"}, "singles must be")):
        with pytest.raises(ConfigError, match=message):
            cls.check_hparams(options)


def test_run_config_validates_split_and_training_options():
    from priorgnn.pipeline import RunConfig

    RunConfig(model="mean", split={"kind": "combo", "test_frac": 0.5}, train={"max_epochs": 1}).validate()
    for kw, message in (({"split": {"kind": "combo", "test_frac": 2}}, "at most 1"),
                        ({"split": {"tset_frac": 0.3}}, "did you mean 'test_frac'"),
                        ({"split": {"kind": "bogus"}}, "split kind"),
                        ({"train": {"max_epochs": 0}}, "--untrained"),
                        ({"train": {"batch_size": 0}}, "1 or more"),
                        ({"train": {"lr": -0.01}}, "above 0"),
                        ({"train": {"max_steps": 0}}, "-1: no limit"),
                        ({"data_seed": -1}, "0 or more")):
        with pytest.raises(ConfigError, match=message):
            RunConfig(model="mean", **kw).validate()


def test_fit_condition_number_by_hand():
    from priorgnn.interactions import fit_condition_number

    # X = [[1, 0], [0, 2]]: singular values 2 and 1, so cond(XᵀX) = (2/1)² = 4
    assert fit_condition_number(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(4.0)
    assert fit_condition_number(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == np.inf  # collinear
    assert np.isnan(fit_condition_number(np.zeros(3), np.zeros(3)))  # nothing to fit
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    X = np.stack([a, b], 1)
    assert fit_condition_number(a, b) == pytest.approx(np.linalg.cond(X.T @ X), rel=1e-9)
    assert fit_condition_number(a, b, np.arange(10)) == pytest.approx(np.linalg.cond(X[:10].T @ X[:10]), rel=1e-9)


def test_ill_conditioned_fits_are_flagged_not_ranked_and_the_rest_unchanged(caplog):
    import anndata as ad

    from priorgnn.interactions import ILL_CONDITIONED, rank_pair_interactions, score_interactions

    rng = np.random.default_rng(1)
    n = 40
    single = {"A": rng.normal(size=n), "C": rng.normal(size=n)}
    single["B"] = 2.0 * single["A"] + 1e-4 * rng.normal(size=n)  # nearly collinear with A
    doubles = {"A+B": single["A"] + single["B"] + rng.normal(scale=0.3, size=n),
               "A+C": single["A"] + single["C"], "B+C": 2.5 * (single["B"] + single["C"])}
    conds = [f"{g}+ctrl" for g in single] + list(doubles)
    delta = np.vstack([single[g] for g in single] + list(doubles.values()))
    pred = ad.AnnData(X=delta.astype(np.float32), obs=pd.DataFrame({"condition": conds}, index=conds))
    pred.layers["delta"] = delta.astype(np.float32)
    with caplog.at_level(logging.WARNING):
        table = rank_pair_interactions(pred, score="magnitude_deviation", top=None, progress=False)
    assert "ill-conditioned" in caplog.text
    flagged = table[table["ill_conditioned"]]
    assert list(flagged["condition"]) == ["A+B"] and flagged["condition_number"].iloc[0] > ILL_CONDITIONED
    assert flagged["label"].iloc[0] == "ill-conditioned" and pd.isna(flagged["rank"].iloc[0])
    assert table["condition"].iloc[-1] == "A+B"  # listed after every ranked double
    ranked = table[~table["ill_conditioned"]]
    assert list(ranked["rank"]) == [1, 2]
    # the well-conditioned rows carry exactly the scores and labels score_interactions gives
    singles32 = {g: pred.layers["delta"][conds.index(f"{g}+ctrl")].astype(np.float64) for g in single}
    ref = score_interactions(list(ranked["condition"]),
                             np.vstack([pred.layers["delta"][conds.index(c)] for c in ranked["condition"]]),
                             singles32).set_index("condition")
    for _, row in ranked.iterrows():
        assert row["label"] == row["fit_label"] == ref.loc[row["condition"], "label"]
        assert row["magnitude"] == ref.loc[row["condition"], "magnitude"]
    assert flagged["fit_label"].iloc[0] != "ill-conditioned"  # what the scores would have said is kept
    # the fit-free default score ranks every pair, the ill-conditioned one labelled as such
    by_size = rank_pair_interactions(pred, top=None, progress=False)
    assert list(by_size["rank"]) == [1, 2, 3]
    assert by_size.set_index("condition").loc["A+B", "label"] == "ill-conditioned"
    sizes = by_size["relative_nonadditive"].to_numpy()
    assert np.all(np.diff(sizes) <= 0)


def test_third_party_logging_is_routed_once_and_filtered():
    from priorgnn.cli import setup_logging

    lightning_logger = logging.getLogger("lightning.pytorch")
    lightning_logger.addHandler(logging.StreamHandler(io.StringIO()))  # as Lightning does on import
    lightning_logger.propagate = False
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        setup_logging(0)
        logging.getLogger("lightning.pytorch.utilities.rank_zero").warning("💡 Tip: try installing litmodels")
        logging.getLogger("lightning.pytorch.utilities.rank_zero").warning("a real warning")
        setup_logging(-1)
        logging.getLogger("lightning.pytorch.utilities.rank_zero").warning("silenced by -q")
    text = stream.getvalue()
    assert not lightning_logger.handlers and lightning_logger.propagate
    assert text.count("a real warning") == 1 and "litmodels" not in text and "silenced" not in text
