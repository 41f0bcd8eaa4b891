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

Subgroups are derived from the training conditions by one rule for every kind: a gene is *seen*
when its single perturbation is in training. A test double of K seen genes is ``combo_seenK``; a
test single is ``unseen_single`` if its gene occurs in no training condition, else ``seen_single``
(its gene was perturbed in training, within a double only).

A split is saved as JSON (and a CSV of condition, set and subgroup) and reloads by path.
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

__all__ = ["Split", "make_split", "assign_subgroups", "SUBGROUPS", "SplitKind"]

SplitKind = Literal["simulation", "combo", "random", "custom"]
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
        self.train = sorted(set(self.train))
        self.val = sorted(set(self.val))
        self.test = sorted(set(self.test))

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
        """Test subgroups."""
        return assign_subgroups(self.test, self.train)

    @property
    def val_subgroups(self) -> dict[str, list[str]]:
        return assign_subgroups(self.val, self.train)

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
            known = set(conditions)
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
        if self.kind == "simulation":
            seen = self.seen_genes
            for c in te | va:
                genes = parse_condition(c)
                if len(genes) == 1 and genes[0] in seen:
                    raise SplitError(f"{c!r} is held out but its gene's single is in training.")
            unseen_test = {g for c in self.subgroups.get("unseen_single", []) for g in parse_condition(c)}
            leaked = unseen_test & self.train_genes
            if leaked:
                raise SplitError(f"unseen genes {sorted(leaked)[:5]} occur in training conditions.")
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
    """Make a seeded split of ``conditions`` (see the module docstring for the kinds)."""
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
        raise SplitError(f"unknown split kind {kind!r}; choose simulation, combo or random.")
    split = Split(kind=kind, seed=seed, train=[CTRL, *train], val=val, test=test, params=params)
    split.check(conditions, require_subgroups=default_required if require_subgroups is None else require_subgroups)
    if not split.val:
        log.warning("the validation set is empty; early stopping and checkpoint selection use training loss.")
    return split
