"""Reading a GEARS processed data folder (built here: plain pickles, a small h5ad)."""

from __future__ import annotations

import pickle

import pytest

from priorgnn.data.gears_folder import read_data_pickle, read_gears_folder, read_gears_split
from priorgnn.data.splits import gears_simulation_split
from priorgnn.errors import DataValidationError, SplitError
from tests._synth import synth_lognorm

SINGLES = ("G0", "G1", "G2", "G3", "G4", "G5")
DOUBLES = (("G0", "G1"), ("G2", "G3"), ("G0", "G4"), ("G1", "G5"), ("G2", "G5"), ("G3", "G4"))


def _reversed(c: str) -> str:
    if c == "ctrl":
        return c
    a, b = c.split("+")
    return c if b == "ctrl" else f"{b}+{a}"


@pytest.fixture
def folder(tmp_path):
    """DATA_ROOT/toy/ as cell-gears leaves it, with the doubles of the split files spelled B+A."""
    root = tmp_path / "gears_data"
    ds = root / "toy"
    (ds / "splits").mkdir(parents=True)
    a = synth_lognorm(n_genes=20, singles=SINGLES, doubles=DOUBLES, cells=6, ctrl_cells=20)
    a.obs["condition"] = [_reversed(c) if c.startswith("G2+") else c for c in a.obs["condition"]]  # as GEARS may
    a.write_h5ad(ds / "perturb_processed.h5ad")
    conds = list(dict.fromkeys(a.obs["condition"]))
    assert "G3+G2" in conds and "G5+G2" in conds
    split = gears_simulation_split(conds, seed=1)
    sets = {k: [_reversed(c) for c in getattr(split, k)] for k in ("train", "val", "test")}
    sub = {"test_subgroup": {k: [_reversed(c) for c in v] for k, v in split.subgroups.items()},
           "val_subgroup": {k: [_reversed(c) for c in v] for k, v in split.val_subgroups.items()}}
    with open(ds / "splits" / "toy_simulation_1_0.75.pkl", "wb") as fh:
        pickle.dump(sets, fh)
    with open(ds / "splits" / "toy_simulation_1_0.75_subgroup.pkl", "wb") as fh:
        pickle.dump(sub, fh)
    with open(ds / "splits" / "toy_custom_0_0.75.pkl", "wb") as fh:
        pickle.dump({"train": [c for c in conds if c.endswith("+ctrl")],
                     "val": [], "test": [c for c in conds if "ctrl" not in c]}, fh)
    with open(root / "gene2go_all.pkl", "wb") as fh:
        pickle.dump({"G0": {"GO:0000001", "GO:0000002"}, "G1": {"GO:0000001"}, "G2": {"GO:0000003"}}, fh, protocol=2)
    return ds, split


def test_reads_data_splits_and_gene2go(folder):
    ds, expected = folder
    g = read_gears_folder(ds)
    assert g.data.n_genes == 20 and len(g.data.conditions) == 1 + len(SINGLES) + len(DOUBLES)
    assert set(g.splits) == {"toy_simulation_1_0.75", "toy_custom_0_0.75"}
    sim = g.splits["toy_simulation_1_0.75"]
    assert sim.kind == "gears_simulation" and sim.seed == 1
    # B+A in the files is the data's A+B: the same sets and GEARS's own subgroups
    assert (sim.train, sim.val, sim.test) == (expected.train, expected.val, expected.test)
    assert sim.subgroups == expected.subgroups and sim.val_subgroups == expected.val_subgroups
    custom = g.splits["toy_custom_0_0.75"]
    assert custom.kind == "custom" and "ctrl" in custom.train
    assert custom.subgroups == {"combo_seen2": sorted(f"{a}+{b}" for a, b in DOUBLES)}
    assert g.gene2go == ds.parent / "gene2go_all.pkl"
    # the file's own spelling is kept for GEARS's draws; the data hold canonical names
    assert "G3+G2" in g.gears_conditions and "G2+G3" in g.data.conditions
    again = g.simulation_split(seed=1)
    assert (again.train, again.val, again.test, again.subgroups) == (sim.train, sim.val, sim.test, sim.subgroups)
    ann = g.go_annotations()
    assert ann.gene2go["G0"] == frozenset({"GO:0000001", "GO:0000002"})  # a protocol-2 set is plain data


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_pickles_that_would_run_code_are_refused(folder, tmp_path):
    ds, _ = folder
    bad = ds / "splits" / "toy_simulation_2_0.75.pkl"
    with open(bad, "wb") as fh:
        pickle.dump({"train": ["ctrl"], "val": [], "test": _Evil()}, fh)
    with pytest.raises(DataValidationError, match="refused to unpickle"):
        read_data_pickle(bad)
    with pytest.raises(DataValidationError, match="refused to unpickle"):
        read_gears_folder(ds)


def test_bad_folders_and_splits_name_the_problem(folder, tmp_path):
    ds, _ = folder
    with pytest.raises(DataValidationError, match="no perturb_processed.h5ad"):
        read_gears_folder(tmp_path)
    other = ds / "splits" / "toy_simulation_3_0.75.pkl"
    with open(other, "wb") as fh:
        pickle.dump({"train": ["ctrl", "G0+ctrl"], "val": [], "test": ["G9+ctrl"]}, fh)
    assert read_gears_split(other).test == ["G9+ctrl"]
    with pytest.raises(SplitError, match="toy_simulation_3_0.75.pkl: .*do not have"):
        read_gears_folder(ds)
    with open(other, "wb") as fh:
        pickle.dump(["G0+ctrl"], fh)
    with pytest.raises(SplitError, match="not a GEARS split"):
        read_gears_split(other)
