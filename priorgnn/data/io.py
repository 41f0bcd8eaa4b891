"""Reading perturbation data into a validated :class:`~priorgnn.data.dataset.PerturbationData`.

Two layouts are understood:

* **GEARS style**: ``obs['condition']`` holds ``ctrl`` / ``A+ctrl`` / ``A+B`` and gene symbols are in
  ``var['gene_name']`` (or the var index).
* **scPerturb style**: a perturbation column (``obs['perturbation']`` by default) whose values join
  gene symbols with a separator and name control cells with a control label (``control`` by
  default). It is converted to GEARS style on load. The separator is detected from the values
  (``+``, ``_``, ``|``, ``;`` or ``,``) unless given; a separator that never occurs is an error.

With ``style='auto'`` a ``condition`` column without any ``ctrl`` but with a control label
(``control``, ``non-targeting``, ...) is read as scPerturb style (PerturBench's files, for example,
write ``control``, ``A`` and ``A+B`` in ``obs['condition']``).

``select={'dataset': 'norman19'}`` keeps only the cells whose ``obs`` column has one of the given
values (CLI ``--select dataset=norman19``), before anything else is read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from priorgnn.data.conditions import CTRL, make_condition
from priorgnn.data.dataset import PerturbationData
from priorgnn.data.validate import (
    canonicalise_conditions,
    check_cells_per_condition,
    check_matrix_values,
    check_perturbed_genes_measured,
    check_unique_names,
    looks_like_counts,
)
from priorgnn.errors import ConditionFormatError, DataValidationError

log = logging.getLogger(__name__)

__all__ = ["read_h5ad", "from_anndata", "scperturb_to_gears", "preprocess", "load_dataset"]

Style = Literal["auto", "gears", "scperturb"]

#: Separators of scPerturb-style combinations, in the order preferred when several occur.
SEPARATORS = ("+", "_", "|", ";", ",")
#: Labels that scPerturb-style files give control cells (looked for by ``style='auto'``).
CONTROL_LABELS = ("control", "non-targeting", "non_targeting", "nontargeting", "NT", "unperturbed")


def _examples(values: list[str], n: int = 4) -> str:
    return ", ".join(map(repr, values[:n])) + (" …" if len(values) > n else "")


def select_cells(adata: ad.AnnData, select: Mapping[str, Any]) -> ad.AnnData:
    """Keep the cells whose ``obs[column]`` is one of the given values, for every ``column`` in
    ``select`` (a value, a list of values, or a comma-separated string). Values are compared as text.

    Raises
    ------
    DataValidationError
        A column is not in ``obs`` (the available ones are listed), a value does not occur in its
        column (the values that do are listed), or no cell is left.
    """
    if not isinstance(select, Mapping):
        raise DataValidationError(f"select = {select!r}: give obs column -> value(s), e.g. "
                                  "{'dataset': 'norman19'} (CLI --select dataset=norman19).")
    mask = np.ones(adata.n_obs, dtype=bool)
    for column, wanted in select.items():
        if column not in adata.obs:
            raise DataValidationError(
                f"--select {column}=...: no obs column {column!r}. Columns: "
                f"{', '.join(map(str, adata.obs.columns)) or '(none)'}."
            )
        if wanted is None:
            wanted = []
        elif isinstance(wanted, str):
            wanted = [w.strip() for w in wanted.split(",") if w.strip()]
        elif not isinstance(wanted, (list, tuple, set)):
            wanted = [wanted]
        wanted = [str(w) for w in wanted]
        values = adata.obs[column].astype(str)
        present = sorted(pd.unique(values))
        if not wanted:
            raise DataValidationError(f"--select {column}=: give a value; valid values of obs[{column!r}]: "
                                      f"{_examples(present, 12)}.")
        unknown = [w for w in wanted if w not in set(present)]
        if unknown:
            raise DataValidationError(
                f"--select {column}={','.join(wanted)}: {_examples(unknown)} not among the values of "
                f"obs[{column!r}]; valid values: {_examples(present, 12)}."
            )
        mask &= values.isin(wanted).to_numpy()
    if not mask.any():
        raise DataValidationError(f"--select {select}: no cell has all of these values; choose values that "
                                  "occur together.")
    log.info("selected %d of %d cells (%s)", int(mask.sum()), adata.n_obs,
             ", ".join(f"{k}={v}" for k, v in select.items()))
    return adata[mask].copy()


def _guess_separator(values: list[str], control_label: str | None) -> str | None:
    """The first of :data:`SEPARATORS` that occurs in a (non-control) value, or ``None``."""
    values = [v for v in values if v != control_label]
    for sep in SEPARATORS:
        if any(sep in v for v in values):
            return sep
    return None


def _looks_gears(values: list[str]) -> bool:
    return any(v == CTRL or v.startswith(CTRL + "+") or v.endswith("+" + CTRL) for v in values)


def _detect_style(obs: pd.DataFrame, condition_column: str, perturbation_column: str,
                  control_label: str | None) -> tuple[str, str, str | None]:
    """``(style, column, control_label)`` for ``style='auto'``."""
    for column in (condition_column, perturbation_column):
        if column not in obs:
            continue
        values = [str(v) for v in pd.unique(obs[column].dropna().astype(str))]
        if _looks_gears(values):
            if column == condition_column:
                return "gears", column, control_label
            continue
        labels = [control_label] if control_label else list(CONTROL_LABELS)
        label = next((lab for lab in labels if lab in values), None)
        if label is not None:
            log.info("obs[%r] has no 'ctrl' but has control label %r: reading it as scPerturb style "
                     "(override with --style gears)", column, label)
            return "scperturb", column, label
    if condition_column in obs:
        return "gears", condition_column, control_label
    if perturbation_column in obs:
        return "scperturb", perturbation_column, control_label
    return "gears", condition_column, control_label


def _read_file(path: str | os.PathLike, backed: bool = False) -> ad.AnnData:
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"{path}: no such file. Check the path.")
    if path.is_dir():
        candidate = path / "perturb_processed.h5ad"
        if candidate.exists():
            path = candidate
        else:
            raise DataValidationError(
                f"{path} is a folder without perturb_processed.h5ad; pass the .h5ad file itself."
            )
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path}: the file is empty (0 bytes). Re-download or re-export it.")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic != b"\x89HDF\r\n\x1a\n":
        raise DataValidationError(
            f"{path}: not an .h5ad file (no HDF5 signature). Convert it with anndata "
            "(e.g. anndata.read_csv / read_loom, then .write_h5ad)."
        )
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise DataValidationError(
            f"{path}: HDF5 file that anndata cannot read as AnnData ({type(exc).__name__}: {exc}). "
            "The file may be truncated or written by an incompatible tool; re-export it."
        ) from None


def scperturb_to_gears(
    adata: ad.AnnData,
    *,
    perturbation_column: str = "perturbation",
    separator: str | None = None,
    control_label: str = "control",
) -> ad.AnnData:
    """Add a GEARS-style ``obs['condition']`` converted from an scPerturb-style column (in place).

    ``separator=None`` detects it (the first of :data:`SEPARATORS` that occurs). A given separator
    that occurs in no value, while another one does, is an error naming the one the data use.
    """
    if perturbation_column not in adata.obs:
        raise DataValidationError(
            f"no obs column {perturbation_column!r} (scPerturb style). Available columns: "
            f"{', '.join(map(str, adata.obs.columns)) or '(none)'}. Pass perturbation_column=..."
        )
    raw = adata.obs[perturbation_column].astype(str)
    distinct = [str(v).strip() for v in pd.unique(raw)]
    found = _guess_separator(distinct, control_label)
    if separator is None:
        separator = found or "_"
    elif separator and found is not None and separator != found and not any(
            separator in v for v in distinct if v != control_label):
        combos = [v for v in distinct if found in v]
        raise DataValidationError(
            f"the separator {separator!r} never occurs in obs[{perturbation_column!r}]; its combinations "
            f"use {found!r} (e.g. {_examples(combos, 3)}). Pass separator={found!r} (CLI --separator "
            f"'{found}'), or leave it out to detect it."
        )
    if not separator:
        raise DataValidationError("separator='' is empty; give the character that joins genes (e.g. '+').")
    mapping: dict[str, str] = {}
    for value in pd.unique(raw):
        v = value.strip()
        if v == control_label:
            mapping[value] = CTRL
            continue
        parts = [p for p in v.split(separator)]
        if any(p == "" for p in parts):
            raise DataValidationError(
                f"perturbation {value!r} has an empty part when split on {separator!r}; "
                "check separator= and control_label=."
            )
        parts = [p for p in parts if p != control_label]
        if len(parts) > 2:
            raise DataValidationError(
                f"perturbation {value!r} splits into {len(parts)} genes on {separator!r}; only singles "
                "and doubles are supported. If gene names contain the separator, choose another "
                "separator=."
            )
        if len(parts) == 2 and parts[0] == parts[1]:
            raise DataValidationError(f"perturbation {value!r} names the same gene twice.")
        mapping[value] = make_condition(parts)
    if CTRL not in mapping.values():
        import difflib

        values = sorted(map(str, mapping))
        close = difflib.get_close_matches(control_label, values, 3, 0.5)
        raise DataValidationError(
            f"the control label {control_label!r} is not among the values of obs[{perturbation_column!r}]"
            f"{' (close: ' + ', '.join(map(repr, close)) + ')' if close else ''}; values include "
            f"{', '.join(map(repr, values[:6]))}{' …' if len(values) > 6 else ''}. Pass the label your control "
            "cells carry (control_label=..., CLI --control-label)."
        )
    adata.obs["condition"] = raw.map(mapping).astype("category")
    return adata


def preprocess(
    adata: ad.AnnData,
    *,
    normalize: bool = True,
    target_sum: float = 1e4,
    n_top_genes: int | None = None,
    keep_genes: list[str] | None = None,
) -> ad.AnnData:
    """Optional preprocessing: ``normalize_total`` + ``log1p``, then highly variable genes.

    Highly variable genes (scanpy, ``flavor='seurat'`` on the log data) are selected with
    ``n_top_genes``; ``keep_genes`` (the perturbed genes) are always kept, on top of that number.
    Returns a new AnnData.
    """
    import scanpy as sc

    adata = adata.copy()
    if normalize:
        if not looks_like_counts(adata.X):
            raise DataValidationError(
                "normalize=True was asked for, but the matrix does not hold integer counts; it looks "
                "already normalised. Load it without normalize."
            )
        sc.pp.normalize_total(adata, target_sum=target_sum)
        sc.pp.log1p(adata)
    if n_top_genes is not None and n_top_genes < adata.n_vars:
        sc.pp.highly_variable_genes(adata, n_top_genes=n_top_genes, flavor="seurat")
        keep = adata.var["highly_variable"].to_numpy().copy()
        n_hvg = int(keep.sum())  # scanpy's 'seurat' flavour can return more than n_top_genes on ties
        if keep_genes:
            keep |= adata.var_names.isin(keep_genes)
        log.info(
            "keeping %d highly variable genes plus %d perturbed genes outside them",
            n_hvg, int(keep.sum()) - n_hvg,
        )
        adata = adata[:, keep].copy()
    return adata


def from_anndata(
    adata: ad.AnnData,
    *,
    name: str = "data",
    style: Style = "auto",
    condition_column: str = "condition",
    gene_column: str | None = "gene_name",
    perturbation_column: str = "perturbation",
    separator: str | None = None,
    control_label: str | None = None,
    layer: str | None = None,
    select: Mapping[str, Any] | None = None,
    normalize: bool = False,
    n_top_genes: int | None = None,
    min_cells: int = 2,
    drop_small_conditions: bool = False,
    allow_unmeasured_perturbations: bool = False,
    source: str | None = None,
    copy: bool = True,
) -> PerturbationData:
    """Validate an in-memory AnnData and wrap it as :class:`PerturbationData`.

    See the module docstring for the two layouts. ``normalize=True`` applies ``normalize_total`` +
    ``log1p`` to raw counts; without it, raw counts are an error. The input object is not modified,
    unless ``copy=False``: then its matrix is reused and ``adata`` must not be used afterwards
    (this saves one copy of the matrix, which matters for large data).

    ``separator=None`` detects the scPerturb separator; ``control_label=None`` means ``control``
    (or, with ``style='auto'``, the first of :data:`CONTROL_LABELS` found). ``select`` keeps only the
    cells with the given ``obs`` values (see :func:`select_cells`).
    """
    if adata.isbacked:
        adata = adata.to_memory()
    if select:
        adata = select_cells(adata, select)  # a new object: the caller's is left alone
    elif copy:
        adata = adata.copy()
    if layer is not None:
        if layer not in adata.layers:
            raise DataValidationError(
                f"no layer {layer!r}; available layers: {', '.join(adata.layers) or '(none)'}."
            )
        adata.X = adata.layers[layer]
    adata.layers = {}  # keep one matrix; the layers are not used downstream

    if style == "auto":
        style, column, control_label = _detect_style(adata.obs, condition_column, perturbation_column,
                                                     control_label)
        if style == "scperturb":
            perturbation_column = column
    elif style == "scperturb" and perturbation_column not in adata.obs and condition_column in adata.obs:
        log.info("no obs column %r: reading the scPerturb-style perturbations from obs[%r]",
                 perturbation_column, condition_column)
        perturbation_column = condition_column
    if style == "scperturb":
        scperturb_to_gears(
            adata, perturbation_column=perturbation_column, separator=separator,
            control_label=control_label or "control",
        )
        condition_column = "condition"
    elif condition_column not in adata.obs:
        raise DataValidationError(
            f"no obs column {condition_column!r} naming each cell's perturbation. Available columns: "
            f"{', '.join(map(str, adata.obs.columns)) or '(none)'}. Pass condition_column=..., or for "
            "scPerturb-style data style='scperturb' with perturbation_column=, separator=, control_label=."
        )

    # gene names
    if gene_column and gene_column in adata.var:
        genes = adata.var[gene_column].astype(str)
        if genes.isna().any() or (genes == "").any():
            raise DataValidationError(f"var[{gene_column!r}] has empty gene names; fill them in.")
        adata.var_names = pd.Index(genes.to_numpy(), dtype=str)
    else:
        adata.var_names = adata.var_names.astype(str)
    check_unique_names(adata.var_names, "gene")
    adata.obs_names = adata.obs_names.astype(str)
    check_unique_names(adata.obs_names, "cell")

    try:
        cond = canonicalise_conditions(adata.obs[condition_column])
    except ConditionFormatError as exc:
        values = [str(v) for v in pd.unique(adata.obs[condition_column].dropna().astype(str))]
        if style == "scperturb" or _looks_gears(values):
            raise
        raise ConditionFormatError(
            f"{exc} obs[{condition_column!r}] has no 'ctrl' at all, so it may be scPerturb style (control "
            "cells labelled e.g. 'control', combinations 'A+B'): load it with --style scperturb "
            "--control-label LABEL (style='scperturb', control_label=LABEL), LABEL being the control cells' value."
        ) from None
    adata.obs = pd.DataFrame({"condition": cond.to_numpy()}, index=adata.obs_names)

    keep = check_cells_per_condition(adata.obs["condition"], min_cells=min_cells,
                                     drop_small=drop_small_conditions)
    if not keep.all():
        adata = adata[keep].copy()

    # values
    check_matrix_values(adata.X, expect_log=not normalize)
    if normalize or n_top_genes is not None:
        perturbed = sorted({g for c in adata.obs["condition"].unique() for g in c.split("+") if g != CTRL})
        adata = preprocess(adata, normalize=normalize, n_top_genes=n_top_genes, keep_genes=perturbed)
        check_matrix_values(adata.X, expect_log=True)

    perturbed = sorted({g for c in adata.obs["condition"].unique() for g in c.split("+") if g != CTRL})
    check_perturbed_genes_measured(perturbed, adata.var_names,
                                   allow_unmeasured=allow_unmeasured_perturbations)

    X = adata.X
    X = sp.csr_matrix(X, dtype=np.float32) if not sp.issparse(X) else X.tocsr().astype(np.float32, copy=False)
    del adata.X  # the AnnData no longer holds a second reference to the matrix
    X.sort_indices()
    clean = ad.AnnData(X=X, obs=adata.obs[["condition"]].copy(), var=pd.DataFrame(index=adata.var_names))
    clean.obs["condition"] = clean.obs["condition"].astype("category")
    return PerturbationData(clean, name=name, source=source)


def read_h5ad(path: str | os.PathLike, *, name: str | None = None, **kwargs) -> PerturbationData:
    """Read and validate an ``.h5ad`` (GEARS or scPerturb style). Keyword arguments as in
    :func:`from_anndata`."""
    adata = _read_file(path)
    name = name or Path(path).stem
    kwargs.setdefault("copy", False)  # the object was just read: no one else holds it
    return from_anndata(adata, name=name, source=str(path), **kwargs)


def load_dataset(spec: str, **kwargs) -> PerturbationData:
    """Load a data set by path (``.h5ad``) or by the name of a downloaded data set.

    Named data sets (``norman``, ``adamson``, ``norman2019_subset``, ...) are looked up where
    ``python -m priorgnn.data download`` puts them; nothing is downloaded here. A named data set's
    own loading conventions (``DatasetRecord.load_defaults``, e.g. ``norman2019_subset``'s
    scPerturb style and ``select={'dataset': 'norman19'}``) apply unless ``kwargs`` set them.
    """
    p = Path(spec)
    if p.suffix == ".h5ad" or p.exists():
        return read_h5ad(p, **kwargs)
    from priorgnn.data.download import DATASETS, dataset_path

    if spec in DATASETS:
        record = DATASETS[spec]
        path = dataset_path(spec)
        if not path.exists():
            raise DataValidationError(
                f"data set {spec!r} is not on this machine (looked for {path}). Fetch it explicitly "
                f"with `python -m priorgnn.data download {spec}` (or import a copy with --from-file PATH)."
            )
        given = {k: v for k, v in kwargs.items() if v is not None}
        defaults = {k: v for k, v in record.load_defaults.items() if k not in given}
        if defaults:
            log.info("%s: loading with its conventions %s (options given take precedence)", spec,
                     ", ".join(f"{k}={v}" for k, v in defaults.items()))
        return read_h5ad(path, name=spec, **{**defaults, **given})
    raise DataValidationError(
        f"{spec!r} is neither an .h5ad file nor a known data set ({', '.join(DATASETS)})."
    )
