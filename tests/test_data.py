"""Loading, validation, summaries and DE of the data layer."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from priorgnn.data import from_anndata, parse_condition, read_h5ad
from priorgnn.data.conditions import canonical_condition, make_condition
from priorgnn.errors import ConditionFormatError, DataValidationError
from tests._synth import synth_counts, synth_lognorm


# -- conditions ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cond, genes",
    [("ctrl", ()), ("A+ctrl", ("A",)), ("ctrl+A", ("A",)), ("B+A", ("A", "B")), (" A+B ", ("A", "B"))],
)
def test_parse_condition(cond, genes):
    assert parse_condition(cond) == genes


@pytest.mark.parametrize(
    "bad, fragment",
    [("A+B+C", "combines 3"), ("A+", "empty gene"), ("+ctrl", "empty gene"), ("", "empty gene"),
     ("A", "bare gene"), ("A+A", "same gene twice"), ("Ctrl", "lower case"), ("A+CTRL", "lower case"),
     ("ctrl+ctrl", "write the control")],
)
def test_malformed_conditions(bad, fragment):
    with pytest.raises(ConditionFormatError, match=fragment):
        parse_condition(bad)


def test_canonical_forms():
    assert canonical_condition("ctrl+KRAS") == "KRAS+ctrl"
    assert canonical_condition("TP53+KRAS") == "KRAS+TP53"
    assert make_condition([]) == "ctrl"


# -- validation --------------------------------------------------------------------------------------
def test_valid_data_loads():
    data = from_anndata(synth_lognorm(), name="t")
    assert data.n_genes == 30
    assert data.conditions[0] == "ctrl"
    assert len(data.perturbations) == 10
    assert sp.isspmatrix_csr(data.X) and data.X.dtype == np.float32


def test_no_control_cells():
    a = synth_lognorm()
    a = a[a.obs["condition"] != "ctrl"].copy()
    with pytest.raises(DataValidationError, match="no control cells"):
        from_anndata(a)


def test_malformed_condition_in_data_reports_all():
    a = synth_lognorm()
    cond = a.obs["condition"].astype(str).to_numpy()
    cond[:3] = "G0+G1+G2"
    cond[3:5] = "G3+"
    a.obs["condition"] = cond
    with pytest.raises(ConditionFormatError) as exc:
        from_anndata(a)
    assert "2 malformed" in str(exc.value) and "G0+G1+G2" in str(exc.value) and "G3+" in str(exc.value)


def test_case_mismatch_of_perturbed_gene():
    a = synth_lognorm()
    cond = a.obs["condition"].astype(str).replace({"G0+ctrl": "g0+ctrl"})
    a.obs["condition"] = cond.to_numpy()
    with pytest.raises(DataValidationError, match="'g0' \\(measured as 'G0'\\)"):
        from_anndata(a)


def test_perturbed_gene_absent_from_var():
    a = synth_lognorm()
    a = a[:, [g for g in a.var_names if g != "G2"]].copy()
    with pytest.raises(DataValidationError, match="not among the measured genes: 'G2'"):
        from_anndata(a)
    data = from_anndata(a, allow_unmeasured_perturbations=True)
    assert "G2" in data.perturbed_genes


def test_duplicated_genes_and_cells():
    a = synth_lognorm()
    a.var["gene_name"] = ["G0"] + list(a.var["gene_name"][1:-1]) + ["G5"]
    with pytest.raises(DataValidationError, match="duplicated gene"):
        from_anndata(a)
    b = synth_lognorm()
    b.obs_names = ["c0"] * 2 + list(b.obs_names[2:])
    with pytest.raises(DataValidationError, match="duplicated cell"):
        from_anndata(b)


@pytest.mark.parametrize("value, fragment", [(np.nan, "NaN"), (np.inf, "infinite"), (-1.0, "negative")])
def test_bad_values(value, fragment):
    a = synth_lognorm()
    X = a.X.toarray()
    X[5, 3] = value
    a.X = X
    with pytest.raises(DataValidationError, match=fragment):
        from_anndata(a)


def test_raw_counts_rejected_or_normalised():
    a = synth_counts()
    with pytest.raises(DataValidationError, match="raw counts"):
        from_anndata(a)
    data = from_anndata(a, normalize=True)
    # normalize_total(1e4) + log1p by hand for one cell
    X = a.X.toarray()
    expected = np.log1p(X[0] / X[0].sum() * 1e4)
    np.testing.assert_allclose(data.X[0].toarray().ravel(), expected, rtol=1e-5)


def test_normalize_refuses_log_data():
    with pytest.raises(DataValidationError, match="already normalised"):
        from_anndata(synth_lognorm(), normalize=True)


def test_unlogged_data_rejected():
    a = synth_counts()
    X = a.X.toarray()
    a.X = X / X.sum(1, keepdims=True) * 1e4  # normalised, not logged
    with pytest.raises(DataValidationError, match="not log-transformed"):
        from_anndata(a)


def test_condition_with_one_cell():
    a = synth_lognorm()
    keep = np.ones(a.n_obs, bool)
    idx = np.nonzero(a.obs["condition"].to_numpy() == "G5+ctrl")[0]
    keep[idx[1:]] = False
    a = a[keep].copy()
    with pytest.raises(DataValidationError, match="G5\\+ctrl \\(1 cell\\)"):
        from_anndata(a)
    data = from_anndata(a, drop_small_conditions=True)
    assert "G5+ctrl" not in data.conditions


def test_missing_condition_column():
    a = synth_lognorm()
    a.obs = a.obs.rename(columns={"condition": "guide"})
    with pytest.raises(DataValidationError, match="no obs column 'condition'.*guide"):
        from_anndata(a)


def test_scperturb_style_conversion():
    a = synth_lognorm()
    mapping = {"ctrl": "control"}
    conv = []
    for c in a.obs["condition"]:
        genes = parse_condition(c)
        conv.append(mapping.get(c, "_".join(genes)))
    a.obs = pd.DataFrame({"perturbation": conv}, index=a.obs_names)
    data = from_anndata(a, style="scperturb")
    assert set(data.conditions) == set(synth_lognorm().obs["condition"])


def test_hvg_keeps_perturbed_genes():
    import scanpy as sc

    a = synth_counts(n_genes=30)
    data = from_anndata(a, normalize=True, n_top_genes=5)
    # the genes are exactly scanpy's highly variable genes plus the perturbed genes outside them
    ref = a.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    sc.pp.highly_variable_genes(ref, n_top_genes=5, flavor="seurat")
    hvg = set(ref.var_names[ref.var["highly_variable"].to_numpy()])
    perturbed = set(data.perturbed_genes)
    assert perturbed - hvg, "the example must have perturbed genes that are not highly variable"
    assert set(data.genes) == hvg | perturbed
    assert data.n_genes < a.n_vars


def test_read_h5ad_errors(tmp_path):
    empty = tmp_path / "empty.h5ad"
    empty.write_bytes(b"")
    with pytest.raises(DataValidationError, match="empty"):
        read_h5ad(empty)
    text = tmp_path / "text.h5ad"
    text.write_text("gene,cell\n1,2\n")
    with pytest.raises(DataValidationError, match="not an .h5ad"):
        read_h5ad(text)
    with pytest.raises(DataValidationError, match="no such file"):
        read_h5ad(tmp_path / "missing.h5ad")


def test_read_h5ad_round_trip(tmp_path):
    a = synth_lognorm()
    a.write_h5ad(tmp_path / "d.h5ad")
    data = read_h5ad(tmp_path / "d.h5ad")
    assert data.name == "d" and data.n_cells == a.n_obs


# -- summaries -------------------------------------------------------------------------------------
def test_pseudobulk_means_and_delta():
    a = synth_lognorm()
    data = from_anndata(a)
    s = data.summaries
    X = (a.X.toarray() if sp.issparse(a.X) else a.X).astype(np.float64)
    cond = a.obs["condition"].to_numpy()
    for c in ("ctrl", "G0+ctrl", "G0+G1"):
        np.testing.assert_allclose(s.mean(c), X[cond == c].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.delta("G0+ctrl"), X[cond == "G0+ctrl"].mean(0) - X[cond == "ctrl"].mean(0),
                               rtol=1e-5, atol=1e-6)
    assert s.n_cells[s.row["ctrl"]] == 120


def test_de_genes_match_direct_scanpy_call():
    import scanpy as sc

    a = synth_lognorm()
    data = from_anndata(a)
    ref = a.copy()
    ref.obs["condition"] = ref.obs["condition"].astype("category")
    sc.tl.rank_genes_groups(ref, groupby="condition", reference="ctrl", rankby_abs=True,
                            n_genes=ref.n_vars, use_raw=False, method="t-test")
    names = ref.uns["rank_genes_groups"]["names"]
    for cond in ("G0+ctrl", "G2+G3", "G5+ctrl"):
        ours = list(data.genes[data.summaries.top_de(cond, 20)])
        assert ours == list(names[cond][:20])
    # GEARS's design: perturbing G0 raises G0 and lowers G10 -> both among the top DE genes
    top = set(data.genes[data.summaries.top_de("G0+ctrl", 5)])
    assert {"G0", "G10"} <= top


def test_non_dropout_de_excludes_dropped_genes():
    a = synth_lognorm()
    X = a.X.toarray()
    cond = a.obs["condition"].to_numpy()
    X[cond == "G0+ctrl", 0] = 0.0  # G0 now all-zero in the condition but expressed in control
    a.X = X
    data = from_anndata(a)
    s = data.summaries
    assert 0 in s.top_de("G0+ctrl", 20)  # a huge drop: top DE
    assert 0 not in s.top_de("G0+ctrl", 20, non_dropout=True)


def test_summaries_cached_and_verified(tmp_path, monkeypatch):
    from priorgnn import cache as _cache

    monkeypatch.setenv("PRIORGNN_CACHE_DIR", str(tmp_path))
    data = from_anndata(synth_lognorm())
    first = data.summaries.means.copy()
    files = list((tmp_path / "summaries").glob("*.npz"))
    assert len(files) == 1
    # a corrupt entry is ignored and rebuilt, not used
    files[0].write_bytes(b"garbage")
    again = from_anndata(synth_lognorm()).summaries.means
    np.testing.assert_array_equal(first, again)
    assert _cache.cache_load("summaries", files[0].stem) is not None


def test_atomic_writes_leave_no_partial_file_and_usual_mode(tmp_path):
    import os

    from priorgnn.io import atomic_write, write_json

    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as fh:
            fh.write("partial")
            raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith("{")  # the old complete file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left behind
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


# -- style detection, separators, cell selection -----------------------------------------------------
def _scperturb_like(sep: str = "+", control: str = "control", both: bool = False) -> ad.AnnData:
    """synth_lognorm with PerturBench-like conditions: 'control', 'G0', 'G0<sep>G1' in obs['condition']."""
    a = synth_lognorm()
    conv = [control if c == "ctrl" else sep.join(parse_condition(c)) for c in a.obs["condition"].astype(str)]
    a.obs = pd.DataFrame({"condition": conv, "batch": ["b1"] * (len(conv) // 2) + ["b2"] * (len(conv) - len(conv) // 2)},
                         index=a.obs_names)
    if both:
        a.obs["perturbation"] = conv
    return a


@pytest.mark.parametrize("both", [False, True])
def test_auto_style_reads_scperturb_conditions(both):
    expected = set(synth_lognorm().obs["condition"])
    data = from_anndata(_scperturb_like(both=both))
    assert set(data.conditions) == expected  # 'control' -> 'ctrl', 'G0' -> 'G0+ctrl', 'G0+G1' kept


def test_auto_style_detects_separator_and_control_label():
    data = from_anndata(_scperturb_like(sep="_", control="non-targeting"))
    assert set(data.conditions) == set(synth_lognorm().obs["condition"])


def test_separator_that_never_occurs_is_named():
    with pytest.raises(DataValidationError, match=r"separator '_' never occurs.*use '\+'.*G\d+\+G\d+"):
        from_anndata(_scperturb_like(), style="scperturb", perturbation_column="condition", separator="_")


def test_scperturb_style_reads_condition_column_when_no_perturbation_column():
    data = from_anndata(_scperturb_like(), style="scperturb", control_label="control")
    assert set(data.conditions) == set(synth_lognorm().obs["condition"])


def test_gears_error_names_the_scperturb_fix():
    a = _scperturb_like(control="untreated")  # no known control label: auto cannot decide
    with pytest.raises(DataValidationError, match="--style scperturb --control-label"):
        from_anndata(a)


def test_select_cells_keeps_only_the_chosen_values():
    from priorgnn.data.io import select_cells

    a = _scperturb_like()
    kept = select_cells(a, {"batch": "b2"})
    assert kept.n_obs == int((a.obs["batch"] == "b2").sum()) and set(kept.obs["batch"]) == {"b2"}
    assert select_cells(a, {"batch": ["b1", "b2"]}).n_obs == a.n_obs
    assert select_cells(a, {"batch": "b1,b2"}).n_obs == a.n_obs
    with pytest.raises(DataValidationError, match="no obs column 'btch'.*batch"):
        select_cells(a, {"btch": "b1"})
    with pytest.raises(DataValidationError, match="'b3' not among the values of obs\\['batch'\\]; valid values: 'b1', 'b2'"):
        select_cells(a, {"batch": "b3"})
    with pytest.raises(DataValidationError, match="give a value; valid values of obs\\['batch'\\]: 'b1', 'b2'"):
        select_cells(a, {"batch": None})  # --select batch=
