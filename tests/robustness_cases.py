"""The catalogue of bad inputs: each case builds a broken input, runs a command-line tool on it and
states the message it must print. Used by ``tests/test_robustness.py`` (one test per case) and by
``benchmarks/robustness.py`` (the counts table).

A case passes when the tool exits with status 2 (or 0 for a documented, logged repair), prints the
expected fragment, prints no traceback, and loses no data: every file that existed before the
command is unchanged afterwards, and no output is left under its final name by a failed command.
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

from tests._synth import synth_counts, synth_lognorm


@dataclass
class Case:
    name: str
    build: Callable[[Path], tuple[str, list[str]]]  # -> (tool, argv)
    expect: str  # fragment of the message
    status: int = 2  # 0 for a logged repair


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
    # G5 is perturbed but has no GO annotation: trained on its own embedding, with a warning
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
    Case("perturbed gene not in GO graph (logged repair)", _case_gene_not_in_go, "no GO annotation", status=0),
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
]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_case(case: Case, tmp: Path) -> Outcome:
    """Build the case in ``tmp``, run its tool in-process, and check the outcome."""
    import evaluate
    import train

    tool, argv = case.build(tmp)
    before = _snapshot(tmp)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = (train.main if tool == "train" else evaluate.main)(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        except Exception as exc:  # noqa: BLE001 - an uncaught exception is a failed case
            import traceback

            traceback.print_exc(file=err)
            status = -1
            del exc
    message = err.getvalue()
    after = _snapshot(tmp)
    lost = [f for f, h in before.items() if after.get(f) != h]
    if status != 0:
        # a failed command must not leave a run's final files behind
        lost += [f for f in after if f not in before and Path(f).name in ("run.json", "report.md")]
    return Outcome(case.name, status, message.strip(), status == case.status and case.expect in message,
                   "Traceback" in message, lost)
