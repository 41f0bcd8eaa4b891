"""Validation of perturbation AnnData objects.

Each check raises :class:`~priorgnn.errors.DataValidationError` with a message that names the
problem and the fix. Nothing is dropped silently: the only repairs (dropping conditions with too
few cells, normalising raw counts) happen when the caller asks for them, and are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from priorgnn.data.conditions import CTRL, canonical_condition
from priorgnn.errors import ConditionFormatError, DataValidationError

log = logging.getLogger(__name__)

__all__ = [
    "check_matrix_values",
    "looks_like_counts",
    "canonicalise_conditions",
    "check_unique_names",
    "check_perturbed_genes_measured",
    "check_cells_per_condition",
]

#: Largest value plausible for log1p(normalised counts). log1p(1e4 * 1.0) = 9.2 is the ceiling when a
#: single gene takes the whole library at target_sum 1e4; values above this are not log data.
MAX_LOG_VALUE = 15.0


def _values(X) -> np.ndarray:
    """The stored values of a dense or sparse matrix (zeros of a sparse matrix excluded)."""
    if sp.issparse(X):
        return np.asarray(X.data)
    return np.asarray(X).ravel()


def _list(items: Iterable, limit: int = 8) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" … and {len(items) - limit} more" if len(items) > limit else "")


def looks_like_counts(X) -> bool:
    """True if every stored value is a non-negative integer and some value exceeds 1.

    Log-normalised expression is essentially never all-integer, so this identifies raw counts.
    """
    vals = _values(X)
    if vals.size == 0:
        return False
    sample = vals if vals.size <= 2_000_000 else vals[:: vals.size // 2_000_000 + 1]
    return bool(np.all(sample == np.round(sample)) and sample.max() > 1)


def check_matrix_values(X, *, expect_log: bool = True) -> None:
    """Reject empty matrices, NaN/inf, negative values, and (if ``expect_log``) raw or unlogged data."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataValidationError(
            f"the expression matrix is empty ({X.shape[0]} cells x {X.shape[1]} genes)."
        )
    vals = _values(X)
    if not np.issubdtype(vals.dtype, np.number):
        raise DataValidationError(
            f"the expression matrix has dtype {vals.dtype}; it must be numeric (float32)."
        )
    bad = ~np.isfinite(vals)
    if bad.any():
        n_nan = int(np.isnan(vals).sum())
        raise DataValidationError(
            f"the expression matrix holds {n_nan} NaN and {int(bad.sum()) - n_nan} infinite values. "
            "Impute or remove them upstream (e.g. drop the affected cells or genes) and reload."
        )
    if vals.size and vals.min() < 0:
        raise DataValidationError(
            f"the expression matrix has {int((vals < 0).sum())} negative values (min {vals.min():.3g}). "
            "priorgnn expects log1p of normalised counts, which is never negative; if the matrix was "
            "scaled or centred, load the unscaled log-normalised layer (layer=...) instead."
        )
    if not expect_log:
        return
    if looks_like_counts(X):
        raise DataValidationError(
            "the expression matrix holds integer values up to "
            f"{vals.max():.0f}: these look like raw counts, but log-normalised data are expected. "
            "Pass normalize=True (CLI: --normalize) to apply normalize_total + log1p, or load the "
            "log-normalised layer."
        )
    if vals.size and vals.max() > MAX_LOG_VALUE:
        raise DataValidationError(
            f"the expression matrix reaches {vals.max():.4g}, more than log1p of normalised counts "
            f"can (about {MAX_LOG_VALUE}). The data look normalised but not log-transformed; apply "
            "log1p (scanpy.pp.log1p) or pass normalize=True with raw counts."
        )


def canonicalise_conditions(
    conditions: pd.Series, *, gene_names: Iterable[str] | None = None
) -> pd.Series:
    """Validate every distinct condition string and return the canonical spelling per cell.

    All malformed conditions are reported at once. If ``gene_names`` is given, a gene that matches
    a measured gene only up to case is reported as a case mismatch, with the measured spelling.
    """
    missing = int(pd.isna(conditions).sum()) if len(conditions) else 0
    if missing:
        raise DataValidationError(
            f"{missing} cell(s) have no condition (missing/NaN in the condition column). Remove those cells or "
            "fill in their condition ('ctrl', 'A+ctrl' or 'A+B')."
        )
    values = conditions.astype(str)
    uniques = pd.unique(values)
    codes = [u for u in uniques if str(u).strip().lstrip("-").replace(".", "", 1).isdigit()]
    if codes:
        raise DataValidationError(
            f"the condition column holds numbers ({', '.join(map(repr, codes[:3]))}{' …' if len(codes) > 3 else ''}), "
            "not condition names: it looks like integer codes. Map the codes to names ('ctrl', 'A+ctrl', 'A+B') "
            "first, or point condition_column= (CLI --condition-column) to the column that holds the names."
        )
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for u in uniques:
        try:
            mapping[u] = canonical_condition(u)
        except ConditionFormatError as exc:
            problems.append(str(exc))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ConditionFormatError(
            f"{len(problems)} malformed condition(s){more}:\n  - " + "\n  - ".join(problems[:5])
        )
    if CTRL not in mapping.values():
        raise DataValidationError(
            "no control cells: no cell has condition 'ctrl'. Deltas are measured against control "
            f"cells. Present conditions: {_list(sorted(mapping.values()))}. If controls use another "
            "label (e.g. 'non-targeting'), load with style='scperturb' and control_label=that label "
            "(CLI: --style scperturb --control-label LABEL)."
        )
    return values.map(mapping)


def check_unique_names(names: pd.Index, what: str) -> None:
    """Reject duplicated gene or cell names, naming a few and the fix."""
    dup = names[names.duplicated()].unique()
    if len(dup):
        fix = (
            "make them unique (adata.var_names_make_unique()) or aggregate the duplicated genes"
            if what == "gene"
            else "make them unique (adata.obs_names_make_unique()) or remove duplicated cells"
        )
        raise DataValidationError(
            f"{len(dup)} duplicated {what} name(s): {_list(dup)}. Each {what} must appear once; {fix}."
        )


def check_perturbed_genes_measured(
    perturbed: Iterable[str], genes: Iterable[str], *, allow_unmeasured: bool = False
) -> list[str]:
    """Return perturbed genes absent from the measured genes; raise unless ``allow_unmeasured``."""
    genes = list(genes)
    gene_set = set(genes)
    missing = sorted(set(perturbed) - gene_set)
    if missing and not allow_unmeasured:
        lower = {g.lower(): g for g in genes}
        case = [f"{m!r} (measured as {lower[m.lower()]!r})" for m in missing if m.lower() in lower]
        hint = f" Case mismatches: {', '.join(case[:8])}; fix the spelling." if case else ""
        raise DataValidationError(
            f"{len(missing)} perturbed gene(s) are not among the measured genes: {_list(missing)}."
            f"{hint} Keep the perturbed genes when selecting genes (preprocess keeps them), or pass "
            "allow_unmeasured_perturbations=True (CLI: --allow-unmeasured-perturbations) if the "
            "targets were genuinely not measured."
        )
    if missing:
        log.warning("%d perturbed gene(s) are not measured: %s", len(missing), _list(missing))
    return missing


def check_cells_per_condition(
    conditions: pd.Series, *, min_cells: int = 2, drop_small: bool = False
) -> np.ndarray:
    """Return a boolean mask of cells to keep; conditions with fewer than ``min_cells`` cells fail.

    With ``drop_small=True`` their cells are dropped instead, and the drop is logged.
    """
    counts = conditions.value_counts()
    small = counts[counts < min_cells]
    if CTRL in small.index:
        raise DataValidationError(
            f"only {int(small[CTRL])} control cell(s); at least {min_cells} are needed to estimate the "
            "control mean and test differential expression."
        )
    if len(small) and not drop_small:
        detail = _list([f"{c} ({n} cell{'s' if n != 1 else ''})" for c, n in small.items()])
        raise DataValidationError(
            f"{len(small)} condition(s) have fewer than {min_cells} cells: {detail}. A condition needs "
            f"{min_cells}+ cells for differential expression. Remove them, or pass "
            "drop_small_conditions=True (CLI: --drop-small-conditions) to drop them with a log entry."
        )
    keep = ~conditions.isin(small.index).to_numpy()
    if len(small):
        log.warning(
            "dropping %d condition(s) with fewer than %d cells (%d cells): %s",
            len(small), min_cells, int((~keep).sum()), _list(small.index),
        )
    return keep
