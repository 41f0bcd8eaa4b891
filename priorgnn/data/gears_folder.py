"""Read a GEARS processed data folder: the data, the GO annotations and the saved splits.

cell-gears (``PertData``) keeps a data set as::

    DATA_ROOT/gene2go_all.pkl                     gene symbol -> set of GO ids (shared by data sets)
    DATA_ROOT/NAME/perturb_processed.h5ad         GEARS-style AnnData (obs['condition'], var['gene_name'])
    DATA_ROOT/NAME/splits/NAME_simulation_1_0.75.pkl            {'train': [...], 'val': [...], 'test': [...]}
    DATA_ROOT/NAME/splits/NAME_simulation_1_0.75_subgroup.pkl   {'test_subgroup': {...}, 'val_subgroup': {...}}

:func:`read_gears_folder` reads all of it without cell-gears and without running code from the files:
every pickle goes through the data-only unpickler of :mod:`knowledge.go` (no class, no function, only
plain dicts, lists, tuples, sets and strings). A simulation split keeps GEARS's own subgroups (kind
``gears_simulation``, see :mod:`priorgnn.data.splits`); other splits are ``custom``. Condition names are
stored canonically, so a split file that spells a double's genes in another order still matches.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorgnn.data.conditions import canonical_condition
from priorgnn.data.splits import Split
from priorgnn.errors import DataValidationError, SplitError

log = logging.getLogger(__name__)

__all__ = ["GearsFolder", "read_gears_folder", "read_gears_split", "read_data_pickle"]

_SPLIT_NAME = re.compile(r"_(simulation_single|simulation|combo_seen[012]|single|no_test|no_split)_(\d+)_([0-9.]+)$")


@dataclass
class GearsFolder:
    """What :func:`read_gears_folder` found.

    Attributes
    ----------
    data
        The validated :class:`~priorgnn.data.dataset.PerturbationData` of ``perturb_processed.h5ad``.
    splits
        File stem -> :class:`~priorgnn.data.splits.Split`, checked against the data's conditions.
    gene2go
        The path of ``gene2go_all.pkl`` (the folder's or its parent's), or ``None``; read it with
        :meth:`go_annotations` or build the GO graph with :meth:`go_graph`.
    path
        The data set folder.
    gears_conditions
        The condition names as the file spells them (``obs['condition']``, in order of first
        appearance): GEARS's split draws depend on the spelling of doubles.
    """

    data: Any
    splits: dict[str, Split] = field(default_factory=dict)
    gene2go: Path | None = None
    path: Path | None = None
    gears_conditions: list[str] = field(default_factory=list)

    def simulation_split(self, seed: int = 1, **kwargs: Any) -> Split:
        """The split cell-gears's ``prepare_split(split='simulation', seed=seed)`` makes of this folder
        (:func:`~priorgnn.data.splits.gears_simulation_split` on the file's own condition names)."""
        from priorgnn.data.splits import gears_simulation_split

        split = gears_simulation_split(self.gears_conditions, seed=seed, **kwargs)
        split.check(self.data.conditions)
        return split

    def go_annotations(self):
        """The GO annotations of ``gene2go_all.pkl`` (:func:`knowledge.go.read_gene2go_pickle`, data only)."""
        from knowledge.go import read_gene2go_pickle

        if self.gene2go is None:
            raise DataValidationError(f"{self.path}: no gene2go_all.pkl in the folder or its parent; give GO "
                                      "annotations another way (--go-obo/--go-gaf) or train without GO (--go none).")
        return read_gene2go_pickle(self.gene2go)

    def go_graph(self, **kwargs):
        """The GO graph of ``gene2go_all.pkl`` (:func:`knowledge.cache.go_graph`, cached)."""
        from knowledge.cache import go_graph

        self.go_annotations()  # the same clear error when there is none
        return go_graph(gene2go=self.gene2go, **kwargs)


def read_data_pickle(path: str | os.PathLike) -> Any:
    """Unpickle plain data only (dicts, lists, tuples, sets, strings, numbers); any class or function
    in the file is refused before it is built, so no code can run. The project's data-only unpickler
    (:func:`knowledge.go.read_data_pickle`), with its errors as :class:`DataValidationError`."""
    from knowledge import go

    path = Path(path)
    try:
        return go.read_data_pickle(path)
    except FileNotFoundError:
        raise DataValidationError(f"{path} does not exist.") from None
    except pickle.UnpicklingError as exc:
        raise DataValidationError(
            f"{path}: refused to unpickle ({exc}). Only plain data (dicts and lists of condition names) "
            "are read from GEARS files; re-save the split as a dict of lists, or as a split JSON."
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as exc:
        raise DataValidationError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); the file "
                                  "may be truncated.") from None


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(c, str) for c in value):
        raise SplitError(f"{where} is not a list of condition names.")
    return list(value)


def read_gears_split(path: str | os.PathLike) -> Split:
    """A GEARS split file (``splits/*.pkl``), with GEARS's subgroups from ``*_subgroup.pkl`` when present.

    The kind is ``gears_simulation`` for a simulation split with its subgroup file, else ``custom``;
    the seed is read from the file name (``NAME_simulation_SEED_FRAC.pkl``), else 0.
    """
    path = Path(path)
    d = read_data_pickle(path)
    if not isinstance(d, dict) or "train" not in d:
        raise SplitError(f"{path}: not a GEARS split (a dict with 'train', 'val', 'test' lists).")
    sets = {k: _names(d.get(k, []), f"{path}: '{k}'") for k in ("train", "val", "test")}
    m = _SPLIT_NAME.search(path.stem)
    seed = int(m.group(2)) if m else 0
    params: dict[str, Any] = {"source": path.name}
    kind = "custom"
    sub_path = path.with_name(path.stem + "_subgroup.pkl")
    if sub_path.exists():
        sub = read_data_pickle(sub_path)
        if not isinstance(sub, dict) or not isinstance(sub.get("test_subgroup"), dict):
            raise SplitError(f"{sub_path}: not a GEARS subgroup file (a dict with 'test_subgroup').")
        params["gears_subgroups"] = {
            part: {str(k): _names(v, f"{sub_path}: {key}[{k!r}]") for k, v in (sub.get(key) or {}).items()}
            for part, key in (("test", "test_subgroup"), ("val", "val_subgroup"))}
        kind = "gears_simulation"
        if m:
            params["train_gene_set_size"] = float(m.group(3))
    if "ctrl" not in {canonical_condition(c) for c in sets["train"]}:
        sets["train"].append("ctrl")  # GEARS lists control cells in training; older files may not
    return Split(kind=kind, seed=seed, train=sets["train"], val=sets["val"], test=sets["test"], params=params)


def read_gears_folder(path: str | os.PathLike, **load_kwargs: Any) -> GearsFolder:
    """Read a GEARS processed data folder (see the module docstring).

    Parameters
    ----------
    path
        The data set folder holding ``perturb_processed.h5ad`` (and ``splits/``).
    load_kwargs
        Passed to :func:`priorgnn.data.io.read_h5ad` (GEARS style and ``var['gene_name']`` are the
        defaults).

    Raises
    ------
    DataValidationError
        Without ``perturb_processed.h5ad``, or for a pickle that is not plain data.
    SplitError
        For a split naming conditions the data do not have.
    """
    from priorgnn.data.io import read_h5ad

    folder = Path(path)
    h5 = folder / "perturb_processed.h5ad"
    if not h5.exists():
        raise DataValidationError(f"{folder}: no perturb_processed.h5ad; give the GEARS data set folder "
                                  "(the one cell-gears's PertData.load made, e.g. DATA_ROOT/norman).")
    load_kwargs.setdefault("style", "gears")
    load_kwargs.setdefault("gene_column", "gene_name")
    data = read_h5ad(h5, name=load_kwargs.pop("name", folder.name), **load_kwargs)
    splits: dict[str, Split] = {}
    for p in sorted((folder / "splits").glob("*.pkl")):
        if p.stem.endswith("_subgroup"):
            continue
        split = read_gears_split(p)
        try:
            split.check(data.conditions)
        except SplitError as exc:
            raise SplitError(f"{p}: {exc}") from None
        splits[p.stem] = split
    gene2go = next((q for q in (folder / "gene2go_all.pkl", folder.parent / "gene2go_all.pkl") if q.exists()), None)
    log.info("%s: %d cells, %d genes, %d splits%s", folder, data.n_cells, data.n_genes, len(splits),
             ", gene2go_all.pkl" if gene2go else "")
    import anndata as ad

    backed = ad.read_h5ad(h5, backed="r")  # obs only: the names as GEARS spells them
    try:
        raw = [str(c) for c in dict.fromkeys(backed.obs["condition"].astype(str))]
    finally:
        backed.file.close()
    return GearsFolder(data=data, splits=splits, gene2go=gene2go, path=folder, gears_conditions=raw)
