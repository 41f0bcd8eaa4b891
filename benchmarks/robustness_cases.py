"""The catalogue of bad inputs: each case builds a broken input, runs a command-line tool on it and
states the message it must print. Used by ``benchmarks/robustness.py`` (the counts table) and by ``tests/test_robustness.py`` (one test
per case). The tools run in-process: ``train.py`` and ``evaluate.py`` are imported as modules (pytest puts
the repository root on ``sys.path``; ``benchmarks/robustness.py`` loads both scripts by path).

A case passes when the tool exits with status 2 (or 0 for a documented, logged repair, or 130 for
Ctrl-C), prints the expected fragment (and none of the forbidden ones), prints no traceback, and loses
no data: every file that existed before the command is unchanged afterwards, and no output is left
under its final name by a failed command.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from priorgnn.testing import synth_counts, synth_lognorm


@dataclass
class Case:
    name: str
    build: Callable[[Path], tuple[str, list[str]]]  # -> (tool, argv)
    expect: str  # fragment of the message
    status: int = 2  # 0 for a logged repair, 130 for Ctrl-C
    forbid: tuple[str, ...] = ()  # fragments that must not appear in the output
    updates: str | None = None  # a run folder the command updates by design (a successful --resume)
    once: bool = False  # no log line may appear twice


#: Callables run after a case's command (release a lock, undo a patch), set by the case's build.
_AFTER: list[Callable[[], None]] = []


@dataclass
class Outcome:
    name: str
    status: int
    message: str
    clear: bool
    traceback: bool
    data_loss: list[str]

    @property
    def ok(self) -> bool:
        return self.clear and not self.traceback and not self.data_loss


def _h5ad(tmp: Path, adata: ad.AnnData, name: str = "d.h5ad") -> Path:
    p = tmp / name
    adata.write_h5ad(p)
    return p


def _with_conditions(tmp: Path, replace: dict[str, str]) -> Path:
    a = synth_lognorm()
    a.obs["condition"] = a.obs["condition"].astype(str).replace(replace).to_numpy()
    return _h5ad(tmp, a)


def _train(path: Path, *extra: str) -> tuple[str, list[str]]:
    return "train", ["--data", str(path), "--model", "additive", "--split", "combo", "--out",
                     str(path.parent / "run"), "--no-progress", "-q", *extra]


def _mutate_X(fn) -> Callable[[Path], tuple[str, list[str]]]:
    def build(tmp: Path):
        a = synth_lognorm()
        X = a.X.toarray()
        fn(X)
        a.X = X
        return _train(_h5ad(tmp, a))

    return build


def _trained_run(tmp: Path, model: str = "additive", *extra: str) -> Path:
    import train

    data = _h5ad(tmp, synth_lognorm(), "base.h5ad")
    out = tmp / f"run-{model}"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert train.main(["--data", str(data), "--model", model, "--split", "combo", "--out", str(out),
                           "--no-progress", "-q", *extra]) == 0
    return out


def _go_files(tmp: Path, obo_extra: str = "", gaf_lines: list[str] | None = None) -> tuple[Path, Path]:
    obo = tmp / "go.obo"
    obo.write_text(
        "format-version: 1.2\n\n"
        "[Term]\nid: GO:0000001\nname: root\nnamespace: biological_process\n\n"
        "[Term]\nid: GO:0000002\nname: a\nnamespace: biological_process\nis_a: GO:0000001\n\n"
        "[Term]\nid: GO:0000003\nname: b\nnamespace: biological_process\nis_a: GO:0000001\n" + obo_extra
    )
    gaf = tmp / "genes.gaf"
    rows = gaf_lines if gaf_lines is not None else [
        "\t".join(["DB", f"id{i}", f"G{i}", "involved_in", f"GO:000000{2 + i % 2}", "REF", "IDA", "", "P",
                   "", "", "protein", "taxon:9606", "20220101", "DB", "", ""]) for i in range(30)
    ]
    gaf.write_text("!gaf-version: 2.2\n" + "\n".join(rows) + "\n")
    return obo, gaf


def _gnn_train(tmp: Path, obo: Path, gaf: Path) -> tuple[str, list[str]]:
    data = _h5ad(tmp, synth_lognorm())
    return "train", ["--data", str(data), "--model", "priorgnn", "--split", "combo", "--go-obo", str(obo),
                     "--go-gaf", str(gaf), "--epochs", "1", "--out", str(tmp / "run"), "--no-progress", "-q"]


def _case_empty(tmp):
    p = tmp / "empty.h5ad"
    p.write_bytes(b"")
    return _train(p)


def _case_not_h5ad(tmp):
    p = tmp / "table.h5ad"
    p.write_text("cell,condition\nc1,ctrl\n")
    return _train(p)


def _case_missing_column(tmp):
    a = synth_lognorm()
    a.obs = a.obs.rename(columns={"condition": "guide"})
    return _train(_h5ad(tmp, a))


def _case_gene_not_measured(tmp):
    a = synth_lognorm()
    return _train(_h5ad(tmp, a[:, [g for g in a.var_names if g != "G3"]].copy()))


def _case_no_control(tmp):
    a = synth_lognorm()
    return _train(_h5ad(tmp, a[a.obs["condition"] != "ctrl"].copy()))


def _case_one_cell(tmp):
    a = synth_lognorm()
    idx = np.nonzero(a.obs["condition"].to_numpy() == "G4+ctrl")[0]
    keep = np.ones(a.n_obs, bool)
    keep[idx[1:]] = False
    return _train(_h5ad(tmp, a[keep].copy()))


def _case_raw_counts(tmp):
    return _train(_h5ad(tmp, synth_counts()))


def _case_dup_genes(tmp):
    a = synth_lognorm()
    a.var["gene_name"] = ["G0", "G0"] + list(a.var["gene_name"][2:])
    a.var_names = [f"v{i}" for i in range(a.n_vars)]
    return _train(_h5ad(tmp, a))


def _case_dup_cells(tmp):
    a = synth_lognorm()
    a.obs_names = ["dup"] * 3 + list(a.obs_names[3:])
    return _train(_h5ad(tmp, a))


def _case_gaf_malformed(tmp):
    obo, gaf = _go_files(tmp, gaf_lines=["DB\tid1\tG1\tinvolved_in\tGO:0000002\tREF"])  # 6 columns
    return _gnn_train(tmp, obo, gaf)


def _case_obo_cycle(tmp):
    extra = ("\n[Term]\nid: GO:0000004\nname: c\nnamespace: biological_process\nis_a: GO:0000005\n\n"
             "[Term]\nid: GO:0000005\nname: d\nnamespace: biological_process\nis_a: GO:0000004\n")
    obo, gaf = _go_files(tmp, obo_extra=extra)
    return _gnn_train(tmp, obo, gaf)


def _case_obo_unknown_parent(tmp):
    extra = "\n[Term]\nid: GO:0000004\nname: c\nnamespace: biological_process\nis_a: GO:0009999\n"
    obo, gaf = _go_files(tmp, obo_extra=extra)
    return _gnn_train(tmp, obo, gaf)


def _case_gene_not_in_go(tmp):
    # G5 is perturbed but has no GO annotation (so no GO-graph neighbour): trained on its own embedding, with a warning
    rows = ["\t".join(["DB", f"id{i}", f"G{i}", "involved_in", "GO:0000002", "REF", "IDA", "", "P", "", "",
                       "protein", "taxon:9606", "20220101", "DB", "", ""]) for i in range(30) if i != 5]
    obo, gaf = _go_files(tmp, gaf_lines=rows)
    tool, argv = _gnn_train(tmp, obo, gaf)
    return tool, [a for a in argv if a != "-q"]


def _case_split_unknown(tmp):
    data = _h5ad(tmp, synth_lognorm())
    split = {"kind": "custom", "seed": 0, "train": ["ctrl", "G0+ctrl", "NOPE+ctrl"], "val": [],
             "test": ["G1+ctrl"]}
    (tmp / "split.json").write_text(json.dumps(split))
    tool, argv = _train(data)
    return tool, argv + ["--split-file", str(tmp / "split.json")]


def _case_checkpoint_other_model(tmp):
    import shutil

    run = _trained_run(tmp, "additive")
    other = _trained_run(tmp, "mean")
    shutil.rmtree(run / "model")
    shutil.copytree(other / "model", run / "model")  # a model folder from another run
    return "evaluate", [str(run), "--no-figures", "--quiet", "--out", str(tmp / "rep")]


def _case_checkpoint_other_genes(tmp):
    run = _trained_run(tmp, "additive")
    other = synth_lognorm(n_genes=31)
    other.write_h5ad(tmp / "base.h5ad")  # the run's data file now holds other genes
    return "evaluate", [str(run), "--no-figures", "--quiet", "--out", str(tmp / "rep")]


def _case_resume_other_architecture(tmp):
    run = _trained_run(tmp, "priorgnn", "--go", "none", "--epochs", "2", "--model-set", "hidden=8")
    cfg = (run / "config.yaml").read_text().replace("hidden: 8", "hidden: 16")
    (run / "config.yaml").write_text(cfg)
    return "train", ["--out", str(run), "--resume", "--no-progress", "-q"]


def _case_predict_unknown_gene(tmp):
    run = _trained_run(tmp, "priorgnn", "--go", "none", "--epochs", "1", "--model-set", "hidden=8")
    return "train", ["predict", str(run), "--conditions", "NOTAGENE+G1", "-q"]


def _case_predict_malformed(tmp):
    run = _trained_run(tmp, "additive")
    return "train", ["predict", str(run), "--conditions", "G1+G2+G3", "-q"]


# -- round two: runs lost, nonsense accepted, tracebacks, misleading messages, noise -------------------
def _run_with_predictions(tmp: Path, model: str = "additive", *extra: str) -> Path:
    run = _trained_run(tmp, model, *extra)
    return run


def _case_overwrite_bad_data(tmp):
    run = _trained_run(tmp, "additive")
    bad = tmp / "empty.h5ad"
    bad.write_bytes(b"")
    return "train", ["--data", str(bad), "--model", "additive", "--split", "combo", "--out", str(run),
                     "--overwrite", "--no-progress", "-q"]


def _case_overwrite_other_folder(tmp):
    data = _h5ad(tmp, synth_lognorm())
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("the user's own files\n")
    return "train", ["--data", str(data), "--model", "additive", "--split", "combo", "--out", str(tmp / "mine"),
                     "--overwrite", "--no-progress", "-q"]


def _case_locked(tmp):
    from priorgnn.runs import RunLock

    run = _trained_run(tmp, "additive")
    lock = RunLock(run).__enter__()  # another training holds the run
    _AFTER.append(lambda: lock.__exit__(None, None, None))
    return "train", ["--data", str(tmp / "base.h5ad"), "--model", "additive", "--split", "combo", "--out", str(run),
                     "--overwrite", "--no-progress", "-q"]


def _case_predict_again(tmp):
    import train

    run = _trained_run(tmp, "additive")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert train.main(["predict", str(run), "--conditions", "G1+G2", "-q"]) == 0
    return "train", ["predict", str(run), "--conditions", "G3+G4", "-q"]


def _case_predict_again_named(tmp):
    import train

    run = _trained_run(tmp, "additive")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert train.main(["predict", str(run), "--conditions", "G1+G2", "--name", "mine", "-q"]) == 0
    return "train", ["predict", str(run), "--conditions", "G3+G4", "--name", "mine", "-q"]


def _case_evaluate_again(tmp):
    import evaluate

    run = _trained_run(tmp, "additive")
    argv = [str(run), "--no-figures", "--quiet", "--no-ceiling", "--n-boot", "1000", "--out", str(tmp / "rep")]
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert evaluate.main(argv) == 0
    return "evaluate", argv


def _case_predict_ctrl_c(tmp):
    from priorgnn.models.base import PerturbationModel

    run = _trained_run(tmp, "additive")
    original = PerturbationModel.predict

    def interrupted(self, conditions):
        raise KeyboardInterrupt

    PerturbationModel.predict = interrupted
    _AFTER.append(lambda: setattr(PerturbationModel, "predict", original))
    return "train", ["predict", str(run), "--all-pairs", "G1,G2,G3", "-q"]


def _case_ctrl_c(tmp):
    from priorgnn.training import fit

    data = _h5ad(tmp, synth_lognorm())
    original = fit.EpochClock.on_train_epoch_end

    def interrupt_in_epoch_3(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if trainer.current_epoch == 2:
            raise KeyboardInterrupt

    fit.EpochClock.on_train_epoch_end = interrupt_in_epoch_3
    _AFTER.append(lambda: setattr(fit.EpochClock, "on_train_epoch_end", original))
    return "train", ["--data", str(data), "--model", "priorgnn", "--go", "none", "--split", "combo", "--model-set",
                     "hidden=8", "--epochs", "6", "--out", str(tmp / "run"), "--no-progress", "-q"]


def _train_flags(*flags: str):
    return lambda tmp: _train(_h5ad(tmp, synth_lognorm()), *flags)


def _case_resume(*flags: str, quiet: bool = True):
    def build(tmp):
        run = _trained_run(tmp, "priorgnn", "--go", "none", "--epochs", "2", "--model-set", "hidden=8")
        return "train", ["--out", str(run), "--resume", "--no-progress", *(["-q"] if quiet else []), *flags]

    return build


def _case_predict(conditions: str, *extra: str, model: str = "additive", n_genes: int = 30):
    def build(tmp):
        if n_genes != 30:
            import train

            data = _h5ad(tmp, synth_lognorm(n_genes=n_genes), "base.h5ad")
            run = tmp / "run-big"
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                assert train.main(["--data", str(data), "--model", model, "--split", "combo", "--out", str(run),
                                   "--no-progress", "-q"]) == 0
        else:
            run = _trained_run(tmp, model)
        key = "--all-pairs" if "," in conditions and "+" not in conditions else "--conditions"
        return "train", ["predict", str(run), key, conditions, *extra]

    return build


def _case_read_only(tool: str):
    # /sys refuses new folders to every user, root included: a real read-only output place
    def build(tmp):
        if tool == "train":
            return _train(_h5ad(tmp, synth_lognorm()), "--out", "/sys/priorgnn-test/run")
        if tool == "simulate":
            return "simulate", ["--preset", "tiny", "--out", "/sys/priorgnn-test/sim", "--quiet"]
        run = _trained_run(tmp, "additive")
        if tool == "predict":
            return "train", ["predict", str(run), "--conditions", "G1+G2", "--out", "/sys/priorgnn-test", "-q"]
        return "evaluate", [str(run), "--no-figures", "--quiet", "--no-ceiling", "--out", "/sys/priorgnn-test"]

    return build


def _case_damaged_model(what: str):
    def build(tmp):
        run = _trained_run(tmp, "priorgnn", "--go", "none", "--epochs", "1", "--model-set", "hidden=8")
        f = run / "model" / ("weights.pt" if "weights" in what else "model_state.npz")
        if what.startswith("missing"):
            f.unlink()
        elif what == "empty weights.pt":
            f.write_bytes(b"")
        else:  # truncated
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        return "train", ["predict", str(run), "--conditions", "G1+G2", "-q"]

    return build


def _case_integer_conditions(tmp):
    a = synth_lognorm()
    codes = {c: str(i) for i, c in enumerate(sorted(set(a.obs["condition"].astype(str))))}
    a.obs["condition"] = a.obs["condition"].astype(str).map(codes).to_numpy()
    return _train(_h5ad(tmp, a))


def _case_nan_conditions(tmp):
    a = synth_lognorm()
    cond = a.obs["condition"].astype(str).to_numpy().astype(object)
    cond[:3] = np.nan
    a.obs["condition"] = pd.Categorical(cond)
    return _train(_h5ad(tmp, a))


def _case_control_label_absent(tmp):
    a = synth_lognorm()
    a.obs["perturbation"] = (a.obs["condition"].astype(str).str.replace("+ctrl", "", regex=False)
                             .str.replace("+", "_", regex=False).str.replace("ctrl", "control", regex=False))
    del a.obs["condition"]
    return _train(_h5ad(tmp, a), "--style", "scperturb", "--control-label", "non-targeting")


def _case_subset_other_file(tmp):
    src = _h5ad(tmp, synth_lognorm(), "devel.h5ad")  # an .h5ad, but not PerturBench's
    return "data", ["download", "norman2019_subset", "--dest", str(tmp / "datasets"), "--from-file", str(src)]


def _case_subset_wrong_separator(tmp):
    a = synth_lognorm()
    a.obs["condition"] = [c.replace("+ctrl", "") if c != "ctrl" else "control" for c in a.obs["condition"].astype(str)]
    return _train(_h5ad(tmp, a), "--style", "scperturb", "--separator", "_")


def _case_select_unknown_value(tmp):
    a = synth_lognorm()
    a.obs["dataset"] = "norman19"
    return _train(_h5ad(tmp, a), "--select", "dataset=norman")


def _case_noise(quiet: bool):
    def build(tmp):
        data = _h5ad(tmp, synth_lognorm())
        argv = ["--data", str(data), "--model", "priorgnn", "--go", "none", "--split", "combo", "--model-set",
                "hidden=8", "--epochs", "1", "--out", str(tmp / "run"), "--no-progress"]
        return "train", argv + (["-q"] if quiet else [])

    return build


CASES: list[Case] = [
    Case("empty file", _case_empty, "empty"),
    Case("not an h5ad", _case_not_h5ad, "not an .h5ad"),
    Case("missing condition column", _case_missing_column, "no obs column 'condition'"),
    Case("condition A+B+C", lambda t: _train(_with_conditions(t, {"G0+G1": "G0+G1+G2"})), "combines 3"),
    Case("condition A+", lambda t: _train(_with_conditions(t, {"G0+ctrl": "G0+"})), "empty gene name"),
    Case("condition +ctrl", lambda t: _train(_with_conditions(t, {"G0+ctrl": "+ctrl"})), "empty gene name"),
    Case("gene case mismatch", lambda t: _train(_with_conditions(t, {"G0+ctrl": "g0+ctrl"})), "measured as 'G0'"),
    Case("control label case", lambda t: _train(_with_conditions(t, {"ctrl": "Ctrl"})), "lower case"),
    Case("perturbed gene not measured", _case_gene_not_measured, "not among the measured genes"),
    Case("perturbed gene not in GO graph (logged repair)", _case_gene_not_in_go, "no GO-graph neighbour", status=0),
    Case("no control cells", _case_no_control, "no control cells"),
    Case("condition with one cell", _case_one_cell, "(1 cell)"),
    Case("NaN values", _mutate_X(lambda X: X.__setitem__((0, 0), np.nan)), "NaN"),
    Case("infinite values", _mutate_X(lambda X: X.__setitem__((0, 0), np.inf)), "infinite"),
    Case("negative values", _mutate_X(lambda X: X.__setitem__((0, 0), -0.5)), "negative"),
    Case("raw counts", _case_raw_counts, "raw counts"),
    Case("duplicated genes", _case_dup_genes, "duplicated gene"),
    Case("duplicated cells", _case_dup_cells, "duplicated cell"),
    Case("GAF malformed line", _case_gaf_malformed, "line 2"),
    Case("OBO with a cycle", _case_obo_cycle, "cycle"),
    Case("OBO unknown parent", _case_obo_unknown_parent, "GO:0009999"),
    Case("split file with unknown conditions", _case_split_unknown, "the data do not have"),
    Case("checkpoint of another model", _case_checkpoint_other_model, "holds a 'mean' model"),
    Case("checkpoint of another gene set", _case_checkpoint_other_genes, "changed since the run was trained"),
    Case("resume with another architecture", _case_resume_other_architecture, "does not fit"),
    Case("predict a gene outside the graph", _case_predict_unknown_gene, "NOTAGENE"),
    Case("predict a malformed condition", _case_predict_malformed, "combines 3"),
    # runs lost
    Case("--overwrite a good run with bad data", _case_overwrite_bad_data, "empty"),
    Case("two trainings into one --out", _case_locked, "being written by another training"),
    Case("--overwrite onto a folder that is not a run", _case_overwrite_other_folder, "it is never replaced"),
    Case("--resume where no run is", lambda t: ("train", ["--out", str(t / "nothing"), "--resume", "-q"]),
         "holds no config.yaml"),
    Case("predict again onto earlier predictions (numbered, logged)", _case_predict_again,
         "writing predict-2.* beside it", status=0),
    Case("predict again onto an earlier --name", _case_predict_again_named, "Pass --overwrite"),
    Case("evaluate again into an earlier report", _case_evaluate_again, "pass --overwrite to replace it"),
    Case("Ctrl-C during a prediction", _case_predict_ctrl_c, "prediction interrupted; nothing was written",
         status=130),
    Case("Ctrl-C during training", _case_ctrl_c, "2 completed epoch(s) kept", status=130,
         forbid=("Detected KeyboardInterrupt",)),
    # accepted as nonsense
    Case("--model-set with a typo", _train_flags("--model", "priorgnn", "--model-set", "hiden=8"), "did you mean 'hidden'"),
    Case("--epochs 0", _train_flags("--epochs", "0"), "use --untrained"),
    Case("--epochs -1", _train_flags("--epochs", "-1"), "must be 1 or more"),
    Case("--batch-size 0", _train_flags("--batch-size", "0"), "a positive integer"),
    Case("--split-set test_frac=2", _train_flags("--split-set", "test_frac=2"), "must be at most 1"),
    Case("--resume with another --model", _case_resume("--model", "transformer"), "cannot resume"),
    Case("--resume with more --epochs (allowed, logged)", _case_resume("--epochs", "3", quiet=False),
         "resume: --epochs 3 (was 2)", status=0, updates="run-priorgnn/"),
    Case("--resume with --no-progress (allowed)", _case_resume(), "", status=0, updates="run-priorgnn/"),
    Case("predict a gene the model never saw", _case_predict("NOTAGENE+ctrl"), "never seen gene(s) 'NOTAGENE'"),
    Case("predict a gene in the wrong case", _case_predict("g0+G1"), "measured as 'G0'"),
    Case("predict all pairs of many genes", _case_predict(",".join(f"G{i}" for i in range(50)), n_genes=50),
         "Rerun with --yes"),
    Case("ill-conditioned interaction fits (flagged)", _case_predict("G20,G21,G22", "--allow-fallback"),
         "ill-conditioned", status=0),
    # tracebacks
    Case("--model-set hidden=abc", _train_flags("--model", "priorgnn", "--model-set", "hidden=abc"), "not an integer"),
    Case("--model-set hidden=-4", _train_flags("--model", "priorgnn", "--model-set", "hidden=-4"), "must be 1 or more"),
    Case("--lr -0.01", _train_flags("--lr", "-0.01"), "must be a positive number"),
    Case("--lr nan", _train_flags("--lr", "nan"), "not a finite number"),
    Case("--split-set with an unknown key", _train_flags("--split-set", "tset_frac=0.3"), "did you mean 'test_frac'"),
    Case("--out an existing file", lambda t: _train(_h5ad(t, synth_lognorm()), "--out", str(t / "d.h5ad")),
         "is a file, not a folder"),
    Case("train into a read-only folder", _case_read_only("train"), "Operation not permitted"),
    Case("predict into a read-only folder", _case_read_only("predict"), "Operation not permitted"),
    Case("evaluate into a read-only folder", _case_read_only("evaluate"), "Operation not permitted"),
    Case("simulate into a read-only folder", _case_read_only("simulate"), "Operation not permitted"),
    Case("truncated model_state.npz", _case_damaged_model("truncated model_state.npz"), "model_state.npz is unreadable"),
    Case("empty weights.pt", _case_damaged_model("empty weights.pt"), "weights.pt is unreadable"),
    Case("missing weights.pt", _case_damaged_model("missing weights.pt"), "weights.pt is missing"),
    Case("missing model_state.npz", _case_damaged_model("missing model_state.npz"), "model_state.npz is missing"),
    # misleading messages
    Case("integer-coded conditions", _case_integer_conditions, "integer codes"),
    Case("NaN conditions", _case_nan_conditions, "have no condition (missing/NaN"),
    Case("--control-label absent from the data", _case_control_label_absent, "'non-targeting' is not among"),
    # download commands and real-data loading (issues 14 and 15)
    Case("data download: bad --timeout (one line, not argparse's usage block)",
         lambda t: ("data", ["download", "norman", "--dest", str(t / "d"), "--timeout", "-1"]),
         "'-1' must be a positive number"),
    Case("data download: unknown data set", lambda t: ("data", ["download", "nosuch", "--dest", str(t / "d")]),
         "invalid choice: 'nosuch'"),
    Case("download-go without --dest", lambda t: ("download-go", []), "required: --dest"),
    Case("download-go from a URL that is not http(s)",
         lambda t: ("download-go", ["--dest", str(t / "go"), "--url-obo", "ftp://x", "--url-gaf", "ftp://y"]),
         "is not an http(s) URL"),
    Case("norman2019_subset --from-file another .h5ad", _case_subset_other_file, "checksum mismatch"),
    Case("scPerturb separator that never occurs", _case_subset_wrong_separator, "separator '_' never occurs"),
    Case("--select a value the column lacks", _case_select_unknown_value, "valid values: 'norman19'"),
    # noise
    Case("third-party logging once, no advertisement", _case_noise(False), "",
         status=0, forbid=("litmodels", "Tip:", "LitLogger"), once=True),
    Case("-q silences third-party logging", _case_noise(True), "", status=0,
         forbid=("lightning", "GPU available", "litmodels", "Tip:")),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _tool(name: str):
    import evaluate
    import train
    from knowledge import cli as knowledge_cli
    from priorgnn.simulate import __main__ as simulate_cli

    from priorgnn.data import __main__ as data_cli

    return {"train": train.main, "evaluate": evaluate.main, "simulate": simulate_cli.main,
            "knowledge": knowledge_cli.main, "data": data_cli.main,
            "download-go": lambda argv: knowledge_cli.main(["download-go", *argv])}[name]


def _log_lines(message: str) -> list[str]:
    """Log lines without their time stamps (to find a line printed twice)."""
    import re

    return [re.sub(r"^\d\d:\d\d:\d\d ", "", ln) for ln in message.splitlines() if ln.strip()]


def run_case(case: Case, tmp: Path) -> Outcome:
    """Build the case in ``tmp``, run its tool in-process, and check the outcome."""
    import logging

    tool, argv = case.build(tmp)
    before = _snapshot(tmp)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = _tool(tool)(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        except BaseException as exc:  # noqa: BLE001 - an uncaught exception is a failed case
            import traceback

            traceback.print_exc(file=err)
            status = -1
            del exc
        finally:
            for h in logging.getLogger().handlers:  # the log handler wrote to this case's stderr
                h.flush()
    message = err.getvalue()
    after = _snapshot(tmp)
    while _AFTER:  # after the snapshot: a lock file held for the case is the case's own
        _AFTER.pop()()
    lost = [f for f, h in before.items() if after.get(f) != h
            and not (case.updates and status == 0 and f.startswith(case.updates))]
    if status != 0:
        # a failed command must not leave a run's final files behind
        lost += [f for f in after if f not in before and Path(f).name in ("run.json", "report.md")]
    clear = status == case.status and case.expect in message and not any(f in message for f in case.forbid)
    if case.once:
        lines = _log_lines(message)
        clear = clear and len(lines) == len(set(lines))
    return Outcome(case.name, status, message.strip(), clear, "Traceback" in message, lost)
