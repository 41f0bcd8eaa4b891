"""evaluate.py and priorgnn.metrics.evaluation on small run directories built here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from priorgnn.io import write_h5ad, write_json
from priorgnn.data.io import from_anndata
from priorgnn.data.splits import make_split
from priorgnn.errors import ConfigError
from priorgnn.metrics import DEFAULT_METRICS, evaluate_model, evaluate_runs, evaluate_seed, get_metric
from priorgnn.models.base import get_model_class
from priorgnn.runs import Run
from tests._synth import synth_lognorm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
import evaluate as evaluate_cli  # noqa: E402

SINGLES = tuple(f"G{i}" for i in range(8))
DOUBLES = (("G0", "G1"), ("G0", "G2"), ("G1", "G3"), ("G2", "G5"), ("G4", "G6"), ("G3", "G7"), ("G5", "G7"),
           ("G1", "G6"))


def make_adata(seed: int = 0, rename: dict[str, str] | None = None):
    a = synth_lognorm(n_genes=30, singles=SINGLES, doubles=DOUBLES, cells=16, ctrl_cells=60, seed=seed)
    if rename:
        names = [rename.get(g, g) for g in a.var_names]
        a.var_names = names
        a.var["gene_name"] = names
        cond = a.obs["condition"].astype(str)
        for old, new in rename.items():
            cond = cond.str.replace(old, new, regex=False)
        a.obs["condition"] = cond.to_numpy()
    return a


def make_run(root: Path, name: str, model: str, seed: int, h5ad: Path, split, data, label: str | None = None):
    """A run directory as train.py writes it (run.json, split.json, model/)."""
    run = root / name
    m = get_model_class(model)().fit(data, split)
    m.save(run / "model")
    split.save(run / "split.json")
    info = {"model": model, "seed": seed, "data": {"kind": "h5ad", "path": str(h5ad), "load_kwargs": {}}}
    if label:
        info["label"] = label
    write_json(run / "run.json", info)
    return run


def build_runs(root: Path, models=("additive", "mean"), seeds=(1, 2), rename=None, data_seed=0):
    root.mkdir(parents=True, exist_ok=True)
    a = make_adata(data_seed, rename)
    h5 = root / "data.h5ad"
    write_h5ad(h5, a)
    data = from_anndata(a)
    runs = []
    for seed in seeds:
        split = make_split(data.conditions, "simulation", seed=seed, require_subgroups=())
        for model in models:
            runs.append(make_run(root, f"{model}_s{seed}", model, seed, h5, split, data))
    return runs, data


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return build_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def result(runs):
    paths, _ = runs
    return evaluate_runs(paths, baselines=["no_change", "additive"], n_boot=1000, progress=False)


def test_evaluate_runs_tables(runs, result):
    paths, data = runs
    pc = result.per_condition
    assert result.models == ["no_change", "mean", "additive"]  # baselines first; additive not duplicated
    assert set(pc["model"]) == {"no_change", "mean", "additive", "ceiling"}
    assert result.references == ["observed"] and set(pc["reference"]) == {"observed"}
    for seed in (1, 2):
        split = Run.load(paths[0].parent / f"additive_s{seed}").split()
        part = pc[(pc["seed"] == seed) & (pc["model"] == "mean")]
        assert sorted(part["condition"]) == split.test
        sub = {c: g for g, cs in split.subgroups.items() for c in cs}
        assert (part["subgroup"] == part["condition"].map(sub)).all()
        assert (part["n_cells"] == 16).all()
    s = result.summary
    assert set(s["subgroup"]) >= {"all", "unseen_single"}
    assert (s[(s["subgroup"] == "all") & (s["metric"] == "mse")]["n_seeds"] == 2).all()
    assert set(s["metric"]) == set(DEFAULT_METRICS)
    c = result.comparisons
    assert set(c["baseline"]) == {"additive", "no_change"}
    assert set(c[c["baseline"] == "additive"]["model"]) == {"no_change", "mean"}


def test_additive_fallbacks_are_counted_and_reported(runs, result, tmp_path):
    """How often the additive baseline used its fallback for an unseen single, per subgroup: equal to a
    count from the split itself, and shown in report.md."""
    from priorgnn.data.conditions import parse_condition
    from priorgnn.report import write_report

    paths, _ = runs
    notes = result.info["prediction_notes"]
    assert set(notes) == {"additive"}  # mean and no_change never fall back: they report nothing
    expected: dict[str, list[int]] = {}
    for p in paths[::2]:  # one run per seed
        split = Run(p).split()
        trained = {parse_condition(c)[0] for c in split.train if len(parse_condition(c)) == 1}
        sub = {c: g for g, conds in split.subgroups.items() for c in conds}
        for c in split.test:
            n = expected.setdefault(sub.get(c, "other"), [0, 0])
            n[0] += int(any(g not in trained for g in parse_condition(c)))
            n[1] += 1
    assert notes["additive"]["n_fallback"] == expected
    # unseen singles and combo_seen0/1 need the fallback; combo_seen2 never does
    assert expected["unseen_single"][0] == expected["unseen_single"][1] > 0
    assert expected.get("combo_seen2", [0, 0])[0] == 0
    md = write_report(result, tmp_path / "rep", figures=False).read_text()
    assert "## Fallbacks" in md
    k, n = expected["unseen_single"]
    row = next(line for line in md.splitlines() if line.startswith("| `additive` | `n_fallback`"))
    assert f"{k} / {n}" in row


def test_metrics_equal_direct_computation(runs, result):
    paths, data = runs
    run = Run.load(paths[0])  # additive, seed 1
    split = run.split()
    pred = run.model().predict(split.test)
    obs = np.stack([data.summaries.mean(c) for c in split.test]).astype(np.float64)
    mse = np.mean((np.asarray(pred.X, dtype=np.float64) - obs) ** 2, axis=1)
    pc = result.per_condition
    got = pc[(pc["model"] == "additive") & (pc["seed"] == 1)].set_index("condition").loc[split.test, "mse"]
    np.testing.assert_allclose(got, mse, rtol=1e-5)


def test_evaluate_model_for_train_py(runs):
    paths, data = runs
    run = Run.load(paths[1])  # mean, seed 1
    t = evaluate_model(run.model(), data, run.split(), seed=1)
    assert set(t["model"]) == {"mean"} and len(t) == len(run.split().test)
    assert set(DEFAULT_METRICS) <= set(t.columns)


def test_truth_reference_with_a_fake_simulation(runs):
    """A stand-in for the simulator: the 'truth' of every condition is its observed mean plus a fixed
    offset per gene. The observed data and an oracle that predicts the truth must score best."""
    paths, data = runs
    run = Run.load(paths[0])
    split = run.split()
    offset = np.linspace(-0.05, 0.05, data.n_genes)

    class FakeSimulation:
        def truth(self, conditions):
            return np.stack([data.summaries.mean(c) for c in conditions]).astype(np.float64) + offset

    sim = FakeSimulation()
    truth = sim.truth(split.test)
    ctrl = sim.truth(["ctrl"])[0]
    preds = {"oracle": (truth - ctrl, ctrl)}
    table, ex = evaluate_seed(data, split, preds, seed=1, simulation=sim, ceiling=False)
    assert set(zip(table["model"], table["reference"])) == {("oracle", "observed"), ("oracle", "truth"),
                                                            ("observed_data", "truth")}
    oracle = table[(table["reference"] == "truth") & (table["model"] == "oracle")]
    for m in DEFAULT_METRICS:
        vals = oracle[m].dropna()
        assert len(vals), m
        np.testing.assert_allclose(vals, get_metric(m).best_value, atol=1e-9, err_msg=m)
    # the observed data differ from this truth by the offset: mse = mean(offset²) for every condition
    observed = table[table["model"] == "observed_data"]
    np.testing.assert_allclose(observed["mse"], np.mean(offset**2), rtol=1e-6)
    assert ex.truth_delta is not None and ex.truth_delta.shape == (len(split.test), data.n_genes)


def test_truth_through_evaluate_runs(runs, tmp_path, monkeypatch):
    paths, data = runs

    class FakeSimulation:
        def truth(self, conditions):
            return np.stack([data.summaries.mean(c) for c in conditions]).astype(np.float64)

    monkeypatch.setattr(Run, "simulation", lambda self: FakeSimulation())
    res = evaluate_runs(paths[:2], n_boot=1000, progress=False, ceiling=False,
                        metrics=["mse", "pearson_delta", "gi_label_match"])
    assert res.references == ["observed", "truth"]
    assert "observed_data" in set(res.per_condition["model"])
    from priorgnn.report import write_report

    write_report(res, tmp_path / "rep", figures=True)
    assert (tmp_path / "rep" / "table_truth.tex").exists()
    assert (tmp_path / "rep" / "figures" / "bars_truth_pearson_delta.png").stat().st_size > 5000
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "noise-free truth" in text and "observed data vs truth" not in text.split("## Metric")[1][:0]


# -- errors ------------------------------------------------------------------------------------------
def test_runs_of_one_seed_must_share_the_split(runs, tmp_path):
    paths, data = runs
    other = make_split(data.conditions, "simulation", seed=99, require_subgroups=())
    h5 = Path(Run.load(paths[0]).data_spec.path)
    odd = make_run(tmp_path, "odd", "no_change", 1, h5, other, data)  # seed 1, another split
    with pytest.raises(ConfigError, match="different splits"):
        evaluate_runs([paths[0], odd], progress=False)


def test_duplicate_label_and_different_data(runs, tmp_path):
    paths, data = runs
    with pytest.raises(ConfigError, match="distinct labels"):
        evaluate_runs([paths[0], paths[0]], progress=False)
    a = make_adata(seed=5)
    h5 = tmp_path / "other.h5ad"
    write_h5ad(h5, a)
    d2 = from_anndata(a)
    r = make_run(tmp_path, "other", "mean", 1, h5, make_split(d2.conditions, "simulation", seed=1,
                                                               require_subgroups=()), d2)
    with pytest.raises(ConfigError, match="different data sets"):
        evaluate_runs([paths[0], r], progress=False)


# -- the command line --------------------------------------------------------------------------------
def _strict_json(path: Path):
    def no_nan(tok):
        raise ValueError(f"non-standard JSON constant {tok}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def test_cli_writes_the_report(runs, tmp_path, capsys):
    paths, _ = runs
    out = tmp_path / "report"
    rc = evaluate_cli.main([*map(str, paths), "--baselines", "--out", str(out), "--quiet", "--n-boot", "1000"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "report:" in stdout and "**all**" in stdout
    for f in ("report.md", "per_condition.csv", "summary.csv", "summary.json", "comparisons.csv", "table.tex",
              "figures/scatter_top20_de.png", "figures/heatmap_top20_de.png", "figures/bars_mse.png"):
        assert (out / f).exists() and (out / f).stat().st_size > 0, f
    summary = _strict_json(out / "summary.json")
    assert set(summary["models"]) == {"no_change", "mean", "additive"}
    assert summary["info"]["bootstrap"]["n_boot"] == 1000
    pc = pd.read_csv(out / "per_condition.csv")
    assert {"model", "reference", "seed", "condition", "subgroup", *DEFAULT_METRICS} <= set(pc.columns)
    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"no\_change" in tex and r"\textbf{" in tex
    md = (out / "report.md").read_text()
    assert "## Summary" in md and "![" in md and "split-half" in md
    _assert_unseen_claims_leave_the_target_out(md)


def _assert_unseen_claims_leave_the_target_out(md: str) -> None:
    """Every summary bullet of an unseen subgroup names only metrics that leave the perturbed genes
    out (or score their own change apart), and it names at least one."""
    from priorgnn.metrics.registry import METRICS, get_metric

    labels = {get_metric(m).label: m for m in METRICS}
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    seen_unseen = 0
    block = None
    for line in summary.splitlines():
        if line.startswith("- **"):
            block = line.split("**")[1]
            continue
        if block in ("unseen_single", "combo_seen0") and line.startswith("  - ") and "is better" in line:
            label = line[4:].split(" (higher is better)")[0].split(" (lower is better)")[0]
            assert label in labels, line
            assert get_metric(labels[label]).scope != "all", f"{block}: {label} includes the perturbed gene"
            seen_unseen += 1
    assert seen_unseen > 0, "the summary makes no claim about an unseen subgroup to check"


def test_cli_default_subcommand_and_explicit_report(runs, tmp_path):
    paths, _ = runs
    a = evaluate_cli.main([str(paths[0]), "--out", str(tmp_path / "a"), "--quiet", "--no-figures",
                           "--n-boot", "1000", "--no-ceiling"])
    b = evaluate_cli.main(["report", str(paths[0]), "--out", str(tmp_path / "b"), "--quiet", "--no-figures",
                           "--n-boot", "1000", "--no-ceiling"])
    assert a == b == 0
    assert (tmp_path / "a" / "per_condition.csv").read_text() == (tmp_path / "b" / "per_condition.csv").read_text()


def test_cli_baselines_flag_before_a_run(runs, tmp_path):
    """``--baselines RUN`` (no value) takes RUN as a run and the default baselines."""
    paths, _ = runs
    rc = evaluate_cli.main(["--baselines", str(paths[0]), "--out", str(tmp_path / "r"), "--quiet", "--no-figures",
                            "--no-ceiling", "--n-boot", "1000"])
    assert rc == 0
    models = set(pd.read_csv(tmp_path / "r" / "per_condition.csv")["model"])
    assert models == {"no_change", "mean", "additive"}


def test_cli_default_out_folder(runs):
    paths, _ = runs
    assert evaluate_cli._default_out([str(paths[0])]) == paths[0].resolve() / "report"
    assert evaluate_cli._default_out([str(p) for p in paths]) == paths[0].resolve().parent / "report"


def test_cli_errors_exit_2_without_traceback(runs, tmp_path, capsys):
    paths, _ = runs
    rc = evaluate_cli.main([str(tmp_path / "missing"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a run directory" in err and "Traceback" not in err
    rc = evaluate_cli.main([str(paths[0]), "--n-boot", "10", "--quiet"])
    assert rc == 2 and "at least 1000" in capsys.readouterr().err
    # --baselines swallowing the run directory gets a hint
    rc = evaluate_cli.main(["--baselines", "additive,runs/x", "--quiet", str(paths[0])])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like a run directory" in err
    rc = evaluate_cli.main(["--quiet"])
    assert rc == 2 and "at least one run" in capsys.readouterr().err
    with pytest.raises(Exception, match="not a run directory"):
        evaluate_cli.main([str(tmp_path / "missing"), "--quiet", "--debug"])


def test_condition_names_cannot_escape_the_output(tmp_path):
    """Perturbed genes named '../../evil…' appear in tables and figures, never in a path."""
    rename = {f"G{k}": f"../../evil{k}" for k in range(8)}
    paths, _ = build_runs(tmp_path / "runs", models=("additive",), seeds=(1,), rename=rename)
    out = tmp_path / "runs" / "deep" / "report"
    before = {p for p in tmp_path.rglob("*")}
    rc = evaluate_cli.main([str(paths[0]), "--baselines", "no_change", "--out", str(out), "--quiet",
                            "--n-boot", "1000", "--metrics", "mse,pearson_delta_top20_de"])
    assert rc == 0
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(out == p or out in p.parents or p == out.parent for p in created)
    pc = pd.read_csv(out / "per_condition.csv")
    assert pc["condition"].str.contains("../../evil", regex=False).all()


def test_simulated_run_end_to_end(tmp_path):
    """Runs on the built-in simulator's data: the truth reference comes from Run.simulation()."""
    simulate = pytest.importorskip("priorgnn.simulate").simulate
    sim = simulate("tiny", seed=0, out=tmp_path / "sim")
    data = sim.data
    split = make_split(data.conditions, "combo", seed=1, require_subgroups=())
    run = tmp_path / "run"
    get_model_class("additive")().fit(data, split).save(run / "model")
    split.save(run / "split.json")
    write_json(run / "run.json", {"model": "additive", "seed": 1,
                                  "data": {"kind": "simulation", "path": str(tmp_path / "sim"), "load_kwargs": {}}})
    res = evaluate_runs([run], baselines=["no_change"], n_boot=1000, progress=False)
    assert res.references == ["observed", "truth"]
    pc = res.per_condition
    truth_rows = pc[pc["reference"] == "truth"]
    # on simulated data the network_knn oracle joins the baselines
    assert set(truth_rows["model"]) == {"no_change", "additive", "network_knn", "observed_data"}
    # the observed data are closer to the truth than predicting no change
    m = truth_rows.groupby("model")["mse"].mean()
    assert m["observed_data"] < m["no_change"]


def test_an_earlier_report_is_replaced_only_with_overwrite(runs, tmp_path, capsys):
    paths, _ = runs
    out = tmp_path / "rep"
    argv = [str(paths[0]), "--out", str(out), "--quiet", "--no-figures", "--no-ceiling", "--n-boot", "1000"]
    assert evaluate_cli.main([*argv, "--metrics", "mse"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    # a second report into the same folder: refused at once, one line naming the fix, nothing touched
    assert evaluate_cli.main([*argv, "--metrics", "pearson_delta"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a report" in err[0] and "--overwrite" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # with --overwrite it is replaced: the new report has the new metric
    assert evaluate_cli.main([*argv, "--metrics", "pearson_delta", "--overwrite"]) == 0
    assert set(pd.read_csv(out / "summary.csv")["metric"]) == {"pearson_delta"}


def test_near_constant_models_are_flagged_and_every_model_is_reported(runs, result, tmp_path):
    """``mean`` and ``no_change`` predict one change for every condition: flagged in every subgroup with
    two or more conditions; ``additive`` is flagged on unseen singles (its fallback is one vector, the mean
training single) and not on doubles with one single trained (the sum differs by that single).
    Every model appears in the summary and in the fallback table, with the flag next to its score."""
    from priorgnn.metrics.diagnostics import relative_spread
    from priorgnn.report import write_report

    d = result.diagnostics
    assert set(d["model"]) == {"no_change", "mean", "additive"} and set(d["seed"]) == {1, 2}
    defined = d[d["n_conditions"] >= 2]
    assert defined[defined["model"].isin(["mean", "no_change"])]["constant"].all()
    assert (defined[defined["model"].isin(["mean", "no_change"])]["relative_spread"] < 1e-12).all()
    seen1 = defined[(defined["model"] == "additive") & (defined["subgroup"] == "combo_seen1")]
    assert len(seen1) == 2 and not seen1["constant"].any() and (seen1["relative_spread"] > 0.3).all()
    unseen = defined[(defined["model"] == "additive") & (defined["subgroup"] == "unseen_single")]
    assert len(unseen) == 2 and unseen["constant"].all()
    # the table agrees with the diagnostic computed directly on the seed's arrays
    ex = result.examples[1]
    rows = [i for i, c in enumerate(ex.conditions) if ex.subgroups[c] == "combo_seen1"]
    exclude = [[ex.genes.index(g) for g in ex.conditions[i].split("+") if g in ex.genes] for i in rows]
    direct = relative_spread(ex.predicted_delta["additive"][rows], ex.observed_delta[rows], exclude)
    assert direct != pytest.approx(relative_spread(ex.predicted_delta["additive"][rows],
                                                   ex.observed_delta[rows]), rel=1e-3)  # targets matter
    got = seen1[seen1["seed"] == 1]["relative_spread"].iloc[0]
    assert got == pytest.approx(direct, rel=1e-4)  # figures keep float32 copies
    md = write_report(result, tmp_path / "rep", figures=False).read_text()
    summary = md.split("## Summary")[1].split("## Fallbacks")[0]
    fallbacks = md.split("## Fallbacks")[1].split("## Results")[0]
    for m in ("no_change", "mean", "additive"):
        assert f"`{m}`" in summary and f"| `{m}` |" in fallbacks
    assert "| `mean` | none reported |" in fallbacks
    assert "`mean` " in summary and "near-constant predictions" in summary
    line = next(x for x in summary.splitlines() if "Every model" in x and "`mean`" in x)
    assert "`additive`" in line
    assert "mean (near-constant predictions" in md  # next to its scores in the subgroup table
    assert (tmp_path / "rep" / "diagnostics.csv").exists()
