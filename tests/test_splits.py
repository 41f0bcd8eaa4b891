"""Split invariants: no leakage, subgroups exactly as defined, seeded, saved and reloaded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from priorgnn.data.conditions import make_condition, parse_condition
from priorgnn.data.splits import Split, assign_subgroups, make_split
from priorgnn.errors import SplitError


def _conditions(n_genes=20, n_doubles=60, seed=0):
    rng = np.random.default_rng(seed)
    genes = [f"g{i:02d}" for i in range(n_genes)]
    pairs = list(itertools.combinations(genes, 2))
    chosen = [pairs[i] for i in rng.choice(len(pairs), n_doubles, replace=False)]
    return ["ctrl"] + [make_condition([g]) for g in genes] + [make_condition(p) for p in chosen]


def test_simulation_split_subgroups_exact():
    conds = _conditions()
    split = make_split(conds, "simulation", seed=3)
    seen = split.seen_genes
    genes = sorted({g for c in conds for g in parse_condition(c)})
    # stage 1 keeps int(20 * 0.75) = 15 genes; stage 2 keeps int(15 * 0.9) = 13 of them for training
    assert len(seen) == 13
    train = set(split.train)
    for c in conds:
        g = parse_condition(c)
        k = sum(x in seen for x in g)
        if c == "ctrl":
            assert c in train
        elif len(g) == 1 and k == 1:
            assert c in train  # every single of a seen gene trains
    subs = split.subgroups
    # definitions, checked independently of the implementation's bookkeeping
    for c in subs.get("unseen_single", []):
        (g,) = parse_condition(c)
        assert all(g not in parse_condition(t) for t in split.train)
    for k in range(3):
        for c in subs.get(f"combo_seen{k}", []):
            assert len(parse_condition(c)) == 2 and sum(x in seen for x in parse_condition(c)) == k
    assert sorted(sum(subs.values(), [])) == sorted(split.test)
    assert set(split.test).isdisjoint(train) and set(split.val).isdisjoint(train)
    assert set(split.test).isdisjoint(split.val)
    assert sorted(split.train + split.val + split.test) == sorted(conds)
    # test genes unseen at stage 1 never appear in training or validation
    test_unseen = {g for c in subs["unseen_single"] for g in parse_condition(c)}
    assert not test_unseen & {g for c in split.train + split.val for g in parse_condition(c)}
    assert len(genes) == 20


def test_simulation_split_seeded():
    conds = _conditions()
    a, b = make_split(conds, seed=1), make_split(conds, seed=1)
    c = make_split(conds, seed=2)
    assert a.test == b.test and a.val == b.val
    assert a.test != c.test
    # order of the input does not matter
    d = make_split(list(reversed(conds)), seed=1)
    assert d.test == a.test


def test_combo_split():
    conds = _conditions()
    split = make_split(conds, "combo", seed=0)
    singles = [c for c in conds if len(parse_condition(c)) == 1]
    doubles = [c for c in conds if len(parse_condition(c)) == 2]
    assert set(singles) <= set(split.train)
    assert all(len(parse_condition(c)) == 2 for c in split.test + split.val)
    assert len(split.test) == 30  # half of 60 doubles
    assert len(split.val) == 3  # 10 % of the remaining 30
    assert set(split.subgroups) == {"combo_seen2"}
    assert sorted(split.train + split.val + split.test) == sorted(conds)
    assert len(doubles) == 60


def test_random_split():
    conds = _conditions()
    split = make_split(conds, "random", seed=0, test_frac=0.25, val_frac=0.1)
    n = len(conds) - 1
    assert len(split.test) == round(n * 0.25) and len(split.val) == round(n * 0.1)
    assert sorted(split.train + split.val + split.test) == sorted(conds)


def test_assign_subgroups_rule():
    train = ["ctrl", "A+ctrl", "B+ctrl", "C+D"]
    subs = assign_subgroups(["A+B", "A+E", "E+F", "C+ctrl", "E+ctrl"], train)
    assert subs == {"combo_seen2": ["A+B"], "combo_seen1": ["A+E"], "combo_seen0": ["E+F"],
                    "seen_single": ["C+ctrl"], "unseen_single": ["E+ctrl"]}


def test_save_and_reload(tmp_path):
    conds = _conditions()
    split = make_split(conds, seed=5)
    path = split.save(tmp_path / "split.json")
    again = Split.load(path)
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)
    assert again.subgroups == split.subgroups
    frame = (tmp_path / "split.csv").read_text().splitlines()
    assert frame[0] == "condition,set,subgroup" and len(frame) == len(conds) + 1
    again.check(conds)


def test_leaky_or_foreign_split_rejected(tmp_path):
    conds = _conditions()
    split = make_split(conds, seed=0)
    bad = Split("custom", 0, train=split.train + [split.test[0]], val=split.val, test=split.test)
    with pytest.raises(SplitError, match="both train and test"):
        bad.check()
    foreign = Split("custom", 0, train=["ctrl", "zz+ctrl"], val=[], test=["yy+ctrl"])
    with pytest.raises(SplitError, match="the data do not have"):
        foreign.check(conds)
    with pytest.raises(SplitError, match="in no set"):
        Split("custom", 0, train=split.train, val=split.val, test=split.test[1:]).check(conds)


def test_empty_subgroup_is_an_error():
    conds = ["ctrl", "a+ctrl", "b+ctrl"]
    with pytest.raises(SplitError, match="combo"):
        make_split(conds, "combo")
    with pytest.raises(SplitError, match="'combo_seen0' is empty"):
        make_split(_conditions(), "simulation", require_subgroups=("combo_seen0", "unseen_single"),
                   train_gene_frac=1.0)


def test_gears_simulation_split_by_hand():
    """cell-gears's simulation split worked out by hand on four genes (no package needed).

    GEARS draws with NumPy's legacy generator seeded with the split seed; choice without replacement
    is the start of a permutation. Seed 3: permutation(4) starts [3, 1, 0], so of the sorted genes
    A, B, C, D the training genes are D, B, A and C is unseen. The doubles of two training genes,
    sorted by name, are A+B, D+B; int(2 * 0.75) = 1 trains, permutation(2)[0] = 1 picks D+B. The
    validation pass over the training conditions (genes A, B, D; int(3 * 0.9) = 2 drawn,
    permutation(3) starts [1, 0]: B, A) leaves D unseen, so D+B (D perturbed only in a double) is
    the validation double with one seen gene."""
    import numpy as np

    from priorgnn.data.splits import gears_simulation_split

    assert np.random.RandomState(3).permutation(4)[:3].tolist() == [3, 1, 0]
    assert np.random.RandomState(3).permutation(2)[:1].tolist() == [1]
    assert np.random.RandomState(3).permutation(3)[:2].tolist() == [1, 0]
    conds = ["ctrl", "A+ctrl", "B+ctrl", "C+ctrl", "A+B", "D+B", "C+D", "A+C"]
    s = make_split(conds, "gears_simulation", seed=3)
    assert s.kind == "gears_simulation"
    assert s.train == ["A+ctrl", "B+ctrl", "ctrl"]
    assert s.val == ["B+D"]  # stored in canonical spelling
    assert s.test == ["A+B", "A+C", "C+D", "C+ctrl"]
    # GEARS's subgroups: D was drawn as a training gene, so C+D has one seen gene, although D has
    # no single in training (this project's own rule would call it combo_seen0)
    assert s.subgroups == {"combo_seen1": ["A+C", "C+D"], "combo_seen2": ["A+B"], "unseen_single": ["C+ctrl"]}
    assert s.val_subgroups == {"combo_seen1": ["B+D"]}
    assert s.to_frame().set_index("condition").loc["C+D", "subgroup"] == "combo_seen1"
    # the function and make_split agree; the spelling of the names is GEARS's input
    assert gears_simulation_split(conds, seed=3).test == s.test


def test_gears_simulation_split_round_trips(tmp_path):
    conds = ["ctrl", "A+ctrl", "B+ctrl", "C+ctrl", "A+B", "D+B", "C+D", "A+C"]
    s = make_split(conds, "gears_simulation", seed=3)
    again = Split.load(s.save(tmp_path / "split.json"))
    assert again.subgroups == s.subgroups and again.val_subgroups == s.val_subgroups and again.test == s.test
    again.check(conds)


def test_split_files_match_conditions_in_any_gene_order(tmp_path):
    """A split written with a double's genes in the other order, or a single as ctrl+A, is the data's."""
    from priorgnn.io import write_json

    data_conds = ["ctrl", "ACVR1B+ctrl", "CACUL1+ctrl", "ACVR1B+CACUL1", "A+B"]
    path = tmp_path / "split.json"
    write_json(path, {"kind": "custom", "seed": 0, "train": ["ctrl", "ctrl+ACVR1B", "CACUL1+ctrl"],
                      "val": ["B+A"], "test": ["CACUL1+ACVR1B"]})
    split = Split.load(path)
    split.check(data_conds)  # accepted
    assert split.test == ["ACVR1B+CACUL1"] and split.train == ["ACVR1B+ctrl", "CACUL1+ctrl", "ctrl"]
    assert split.subgroups == {"combo_seen2": ["ACVR1B+CACUL1"]}
    # the same double in two sets under two spellings is leakage, not two conditions
    write_json(path, {"kind": "custom", "seed": 0, "train": ["ctrl", "A+B", "ACVR1B+ctrl"], "val": [],
                      "test": ["B+A"]})
    with pytest.raises(SplitError, match="both train and test"):
        Split.load(path)
