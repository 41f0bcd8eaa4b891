"""Train / validation / test splits over conditions.

Three kinds, all seeded:

``simulation`` (GEARS, Roohani et al. 2023)
    A fraction ``train_gene_frac`` (0.75) of the perturbed genes is *seen*. Training holds every
    single of a seen gene and a fraction ``combo_seen2_train_frac`` (0.75) of the doubles of two seen
    genes. The test set holds ``unseen_single`` (singles of unseen genes), ``combo_seen0`` (doubles of
    two unseen genes), ``combo_seen1`` (one seen, one unseen) and ``combo_seen2`` (the held-out
    doubles of two seen genes). The validation set is carved from the training conditions the same
    way (fractions 0.9 and 0.9, as GEARS does).
``combo`` (Ahlmann-Eltze, Huber & Anders, Nature Methods 2025)
    Every single trains; a fraction ``test_frac`` (0.5) of the doubles is the test set. A fraction
    ``val_frac`` of the remaining doubles is the validation set.
``random``
    Conditions are assigned to test and validation at random (``test_frac``, ``val_frac``).
``gears_simulation`` (cell-gears's own ``PertData.prepare_split(split='simulation', seed=s)``)
    The same sets and subgroups as cell-gears for the same seed and condition names
    (:func:`gears_simulation_split`), for comparisons with published GEARS numbers. It keeps GEARS's
    subgroups: a gene is *seen* when GEARS drew it as a training gene, so a gene perturbed only in
    training doubles is seen there.

Subgroups of the other kinds are derived from the training conditions by one rule: a gene is *seen*
when its single perturbation is in training. A test double of K seen genes is ``combo_seenK``; a
test single is ``unseen_single`` if its gene occurs in no training condition, else ``seen_single``
(its gene was perturbed in training, within a double only).

A split is saved as JSON (and a CSV of condition, set and subgroup) and reloads by path. Condition
names are stored in canonical spelling (:func:`~priorgnn.data.conditions.canonical_condition`), so a
split written with the genes of a double in another order (``CACUL1+ACVR1B``) or with a single as
``ctrl+A`` matches the data's ``ACVR1B+CACUL1`` and ``A+ctrl``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from priorgnn._io import read_json, write_csv, write_json
from priorgnn.data.conditions import CTRL, canonical_condition, parse_condition
from priorgnn.errors import SplitError

log = logging.getLogger(__name__)

__all__ = ["Split", "make_split", "assign_subgroups", "gears_simulation_split", "SUBGROUPS", "SplitKind",
           "SPLIT_KINDS"]

SplitKind = Literal["simulation", "combo", "random", "gears_simulation", "custom"]
#: The kinds :func:`make_split` makes.
SPLIT_KINDS = ("simulation", "combo", "random", "gears_simulation")
SUBGROUPS = ("unseen_single", "seen_single", "combo_seen0", "combo_seen1", "combo_seen2")
_SPLIT_FORMAT = 1


def _seen_genes(train: Iterable[str]) -> set[str]:
    return {parse_condition(c)[0] for c in train if len(parse_condition(c)) == 1}


def assign_subgroups(conditions: Iterable[str], train: Iterable[str]) -> dict[str, list[str]]:
    """Subgroup of each (non-training) condition, by the rule in the module docstring."""
    train = list(train)
    seen = _seen_genes(train)
    in_train = {g for c in train for g in parse_condition(c)}
    out: dict[str, list[str]] = {s: [] for s in SUBGROUPS}
    for c in conditions:
        genes = parse_condition(c)
        if len(genes) == 0:
            continue
        if len(genes) == 1:
            out["seen_single" if genes[0] in in_train else "unseen_single"].append(c)
        else:
            out[f"combo_seen{sum(g in seen for g in genes)}"].append(c)
    return {k: sorted(v) for k, v in out.items() if v}


@dataclass
class Split:
    """A split of conditions. ``ctrl`` is always in ``train`` and never elsewhere."""

    kind: str
    seed: int
    train: list[str]
    val: list[str]
    test: list[str]
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # canonical spelling: a split written with a double's genes in another order matches the data
        self.train = sorted({canonical_condition(c) for c in self.train})
        self.val = sorted({canonical_condition(c) for c in self.val})
        self.test = sorted({canonical_condition(c) for c in self.test})
        stored = self.params.get("gears_subgroups") if isinstance(self.params, dict) else None
        if stored is not None:
            if not isinstance(stored, dict) or not all(isinstance(stored.get(k, {}), dict) for k in ("test", "val")):
                raise SplitError("params.gears_subgroups must map 'test' and 'val' to subgroup -> conditions.")
            self.params["gears_subgroups"] = {
                part: {sg: sorted({canonical_condition(c) for c in conds})
                       for sg, conds in (stored.get(part) or {}).items()}
                for part in ("test", "val")}

    def _stored_subgroups(self, part: str) -> dict[str, list[str]] | None:
        """GEARS's own subgroups, kept by a ``gears_simulation`` split (``None`` for other kinds)."""
        stored = self.params.get("gears_subgroups")
        if stored is None:
            return None
        return {sg: list(conds) for sg, conds in stored[part].items() if conds}

    # -- derived ----------------------------------------------------------------------------------
    @property
    def seen_genes(self) -> set[str]:
        """Genes whose single perturbation is in training."""
        return _seen_genes(self.train)

    @property
    def train_genes(self) -> set[str]:
        """Genes perturbed in any training condition."""
        return {g for c in self.train for g in parse_condition(c)}

    @property
    def subgroups(self) -> dict[str, list[str]]:
        """Test subgroups (GEARS's own for a ``gears_simulation`` split)."""
        stored = self._stored_subgroups("test")
        return stored if stored is not None else assign_subgroups(self.test, self.train)

    @property
    def val_subgroups(self) -> dict[str, list[str]]:
        """Validation subgroups (GEARS's own for a ``gears_simulation`` split)."""
        stored = self._stored_subgroups("val")
        return stored if stored is not None else assign_subgroups(self.val, self.train)

    def subgroup_of(self, condition: str) -> str:
        for name, conds in {**self.val_subgroups, **self.subgroups}.items():
            if condition in conds:
                return name
        return "train" if condition in self.train else "unknown"

    def set_of(self, condition: str) -> str:
        for name in ("train", "val", "test"):
            if condition in getattr(self, name):
                return name
        raise SplitError(f"condition {condition!r} is not in the split.")

    # -- checks -------------------------------------------------------------------------------------
    def check(self, conditions: Sequence[str] | None = None, *, require_subgroups: Sequence[str] = ()) -> None:
        """Raise :class:`SplitError` on leakage, unknown or missing conditions, or empty sets."""
        tr, va, te = set(self.train), set(self.val), set(self.test)
        for a, b, name in ((tr, va, "train and val"), (tr, te, "train and test"), (va, te, "val and test")):
            both = a & b
            if both:
                raise SplitError(f"conditions in both {name}: {sorted(both)[:5]}. A split must be disjoint.")
        if CTRL not in tr:
            raise SplitError("'ctrl' must be in the training set.")
        if CTRL in va | te:
            raise SplitError("'ctrl' may only be in the training set.")
        for name, s in (("train", tr - {CTRL}), ("test", te)):
            if not s:
                raise SplitError(f"the {name} set is empty; the data have too few conditions for this split.")
        for c in tr | va | te:
            canonical_condition(c)
        if conditions is not None:
            known = {canonical_condition(c) for c in conditions}  # any spelling of the data's names
            unknown = (tr | va | te) - known
            if unknown:
                raise SplitError(
                    f"the split names {len(unknown)} condition(s) that the data do not have: "
                    f"{sorted(unknown)[:8]}. The split was made for other data; make a new split."
                )
            missing = known - (tr | va | te)
            if missing:
                raise SplitError(
                    f"{len(missing)} condition(s) of the data are in no set of the split: "
                    f"{sorted(missing)[:8]}. Make a new split for these data."
                )
        if self.kind in ("simulation", "gears_simulation"):
            seen = self.seen_genes
            for c in te | va:
                genes = parse_condition(c)
                if len(genes) == 1 and genes[0] in seen:
                    raise SplitError(f"{c!r} is held out but its gene's single is in training.")
            unseen_test = {g for c in self.subgroups.get("unseen_single", []) for g in parse_condition(c)}
            leaked = unseen_test & self.train_genes
            if leaked:
                raise SplitError(f"unseen genes {sorted(leaked)[:5]} occur in training conditions.")
        if self._stored_subgroups("test") is not None:
            for part, names in (("test", te), ("val", va)):
                listed = [c for conds in self._stored_subgroups(part).values() for c in conds]
                if set(listed) != names or len(listed) != len(names):
                    raise SplitError(f"the stored GEARS subgroups of the {part} set do not list each {part} "
                                     "condition exactly once; the split file is damaged, make it again.")
        subs = self.subgroups
        for s in require_subgroups:
            if not subs.get(s):
                raise SplitError(
                    f"test subgroup {s!r} is empty. The data have too few conditions of that kind for "
                    "this split; use more data or another seed/fraction."
                )

    # -- persistence --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["format"] = _SPLIT_FORMAT
        d["subgroups"] = self.subgroups
        d["val_subgroups"] = self.val_subgroups
        return d

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for set_name in ("train", "val", "test"):
            for c in getattr(self, set_name):
                rows.append((c, set_name, self.subgroup_of(c) if set_name != "train" else "train"))
        return pd.DataFrame(rows, columns=["condition", "set", "subgroup"])

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) and a CSV beside it (same stem)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "split.json"
        write_json(path, self.to_dict())
        write_csv(path.with_suffix(".csv"), self.to_frame(), index=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        if path.is_dir():
            path = path / "split.json"
        d = read_json(path)
        try:
            split = cls(kind=d["kind"], seed=int(d["seed"]), train=d["train"], val=d["val"],
                        test=d["test"], params=d.get("params", {}))
        except (KeyError, TypeError) as exc:
            raise SplitError(f"{path}: not a split file (missing {exc}). Make one with make_split.") from None
        split.check()
        return split


# -- construction --------------------------------------------------------------------------------
def _singles(conds: Iterable[str]) -> list[str]:
    return [c for c in conds if len(parse_condition(c)) == 1]


def _doubles(conds: Iterable[str]) -> list[str]:
    return [c for c in conds if len(parse_condition(c)) == 2]


def _simulation_once(perts: list[str], gene_frac: float, combo_frac: float,
                     rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """One GEARS simulation split of ``perts`` into (train, held-out)."""
    genes = sorted({g for c in perts for g in parse_condition(c)})
    n_seen = int(len(genes) * gene_frac)
    seen = set(rng.choice(genes, n_seen, replace=False).tolist()) if n_seen else set()
    train: list[str] = []
    held: list[str] = []
    seen2: list[str] = []
    for c in sorted(perts):
        g = parse_condition(c)
        k = sum(x in seen for x in g)
        if len(g) == 1:
            (train if k == 1 else held).append(c)
        elif k == 2:
            seen2.append(c)
        else:
            held.append(c)
    n_train2 = int(len(seen2) * combo_frac)
    order = rng.permutation(len(seen2))
    train += [seen2[i] for i in order[:n_train2]]
    held += [seen2[i] for i in order[n_train2:]]
    return train, held


def _gears_genes(perts: Iterable[str]) -> np.ndarray:
    # cell-gears DataSplitter.get_genes_from_perts
    genes = [g for p in np.unique(list(perts)) for g in p.split("+")]
    return np.unique([g for g in genes if g != CTRL])


def _gears_parse(p: str) -> list[str]:
    # cell-gears utils.parse_any_pert (note: a substring test for 'ctrl', as there)
    a, b = p.split("+")[0], p.split("+")[1]
    if CTRL in p and p != CTRL:
        return [b if a == CTRL else a]
    return [a, b]


def _gears_perts_from_genes(genes, pert_list: list[str], kind: str) -> list[str]:
    # cell-gears DataSplitter.get_perts_from_genes
    if kind == "single":
        candidates = [p for p in pert_list if CTRL in p and p != CTRL]
    else:
        candidates = [p for p in pert_list if CTRL not in p]
    genes = list(genes)
    return [p for p in candidates if any(g in _gears_parse(p) for g in genes)]


def _gears_simulation_once(pert_list: list[str], train_gene_set_size: float, combo_seen2_train_frac: float,
                           seed: int) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """cell-gears ``DataSplitter.get_simulation_split`` (no ``test_set_perts``), step for step.

    GEARS seeds NumPy's global legacy generator; a ``RandomState`` with the same seed draws the same
    numbers without touching global state."""
    unique_pert_genes = _gears_genes(pert_list)
    rng = np.random.RandomState(seed)
    train_genes = rng.choice(unique_pert_genes, int(len(unique_pert_genes) * train_gene_set_size), replace=False)
    ood_genes = np.setdiff1d(unique_pert_genes, train_genes)
    train_set = set(train_genes.tolist())
    pert_train = list(_gears_perts_from_genes(train_genes, pert_list, "single"))
    pert_combo = _gears_perts_from_genes(train_genes, pert_list, "combo")
    combo_seen1 = [x for x in pert_combo if sum(t in train_set for t in x.split("+")) == 1]
    pert_combo = np.setdiff1d(pert_combo, combo_seen1)
    rng = np.random.RandomState(seed)  # GEARS reseeds before drawing the training doubles
    combo_train = rng.choice(pert_combo, int(len(pert_combo) * combo_seen2_train_frac), replace=False)
    combo_seen2 = np.setdiff1d(pert_combo, combo_train).tolist()
    pert_train.extend(combo_train.tolist())
    unseen_single = _gears_perts_from_genes(ood_genes, pert_list, "single")
    combo_ood = _gears_perts_from_genes(ood_genes, pert_list, "combo")
    combo_seen0 = [x for x in combo_ood if sum(t in train_set for t in x.split("+")) == 0]
    held = combo_seen1 + combo_seen2 + unseen_single + combo_seen0
    return pert_train, held, {"combo_seen0": combo_seen0, "combo_seen1": combo_seen1,
                              "combo_seen2": combo_seen2, "unseen_single": unseen_single}


def gears_simulation_split(conditions: Sequence[str], *, seed: int = 1, train_gene_set_size: float = 0.75,
                           combo_seen2_train_frac: float = 0.75) -> Split:
    """The split cell-gears makes with ``PertData.prepare_split(split='simulation', seed=seed)``.

    This mirrors cell-gears (``gears/data_utils.py``, ``DataSplitter.split_data`` and
    ``get_simulation_split``, version 0.1.x) step for step, so the same condition names and seed give
    the same train, validation and test sets and the same subgroups, without the package. It is
    written out here rather than imported because cell-gears is an optional extra and its splitter
    needs an AnnData and a data folder.

    Parameters
    ----------
    conditions
        The condition names *as cell-gears sees them* (``perturb_processed.h5ad``'s
        ``obs['condition']``, e.g. ``A+ctrl``, ``ctrl+A``, ``B+A``): GEARS sorts and draws doubles by
        their names, so the spelling of a double decides which ones train. Names are stored in this
        project's canonical spelling.
    seed, train_gene_set_size, combo_seen2_train_frac
        As in ``prepare_split``. The validation set is carved from training with 0.9 and 0.9 and the
        same seed, as GEARS does.

    Returns
    -------
    A split of kind ``gears_simulation`` whose ``subgroups`` and ``val_subgroups`` are GEARS's.
    """
    raw = [str(c) for c in conditions]
    for c in raw:
        canonical_condition(c)  # one clear error for a malformed name
    perts = list(dict.fromkeys(c for c in raw if c != CTRL))
    if not perts:
        raise SplitError("no perturbed conditions to split.")
    train, test, test_sub = _gears_simulation_once(perts, train_gene_set_size, combo_seen2_train_frac, seed)
    train, val, val_sub = _gears_simulation_once(train, 0.9, 0.9, seed)
    params = {"train_gene_set_size": train_gene_set_size, "combo_seen2_train_frac": combo_seen2_train_frac,
              "mirrors": "cell-gears PertData.prepare_split(split='simulation')",
              "gears_subgroups": {"test": test_sub, "val": val_sub}}
    return Split(kind="gears_simulation", seed=seed, train=[CTRL, *train], val=val, test=test, params=params)


def make_split(
    conditions: Sequence[str],
    kind: SplitKind = "simulation",
    *,
    seed: int = 1,
    train_gene_frac: float = 0.75,
    combo_seen2_train_frac: float = 0.75,
    val_gene_frac: float = 0.9,
    val_combo_frac: float = 0.9,
    test_frac: float = 0.5,
    val_frac: float = 0.1,
    require_subgroups: Sequence[str] | None = None,
) -> Split:
    """Make a seeded split of ``conditions`` (see the module docstring for the kinds).

    ``gears_simulation`` uses ``train_gene_frac`` and ``combo_seen2_train_frac`` (GEARS's
    ``train_gene_set_size`` and ``combo_seen2_train_frac``); its validation fractions are GEARS's
    fixed 0.9 and 0.9."""
    if kind == "gears_simulation":
        split = gears_simulation_split(conditions, seed=seed, train_gene_set_size=train_gene_frac,
                                       combo_seen2_train_frac=combo_seen2_train_frac)
        split.check([canonical_condition(c) for c in conditions],
                    require_subgroups=("unseen_single",) if require_subgroups is None else require_subgroups)
        if not split.val:
            log.warning("the validation set is empty; early stopping and checkpoint selection use training loss.")
        return split
    conditions = [canonical_condition(c) for c in conditions]
    perts = sorted(set(conditions) - {CTRL})
    if not perts:
        raise SplitError("no perturbed conditions to split.")
    rng = np.random.default_rng(seed)
    if kind == "simulation":
        train, test = _simulation_once(perts, train_gene_frac, combo_seen2_train_frac, rng)
        train, val = _simulation_once(train, val_gene_frac, val_combo_frac, rng)
        params = dict(train_gene_frac=train_gene_frac, combo_seen2_train_frac=combo_seen2_train_frac,
                      val_gene_frac=val_gene_frac, val_combo_frac=val_combo_frac)
        default_required: Sequence[str] = ("unseen_single",)
    elif kind == "combo":
        doubles = _doubles(perts)
        if not doubles:
            raise SplitError("the 'combo' split needs double perturbations; the data have none.")
        order = rng.permutation(len(doubles))
        n_test = max(1, int(round(len(doubles) * test_frac)))
        test = [doubles[i] for i in order[:n_test]]
        rest = [doubles[i] for i in order[n_test:]]
        n_val = int(round(len(rest) * val_frac))
        val = rest[:n_val]
        train = _singles(perts) + rest[n_val:]
        params = dict(test_frac=test_frac, val_frac=val_frac)
        default_required = ("combo_seen2",)
    elif kind == "random":
        order = rng.permutation(len(perts))
        n_test = max(1, int(round(len(perts) * test_frac)))
        n_val = int(round(len(perts) * val_frac))
        test = [perts[i] for i in order[:n_test]]
        val = [perts[i] for i in order[n_test:n_test + n_val]]
        train = [perts[i] for i in order[n_test + n_val:]]
        params = dict(test_frac=test_frac, val_frac=val_frac)
        default_required = ()
    else:
        raise SplitError(f"unknown split kind {kind!r}; choose {', '.join(SPLIT_KINDS)}.")
    split = Split(kind=kind, seed=seed, train=[CTRL, *train], val=val, test=test, params=params)
    split.check(conditions, require_subgroups=default_required if require_subgroups is None else require_subgroups)
    if not split.val:
        log.warning("the validation set is empty; early stopping and checkpoint selection use training loss.")
    return split
