"""Interaction baselines (scaled_additive, scaled_additive_mag, dominance) on hand-built deltas."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from priorgnn.data import from_anndata
from priorgnn.data.splits import Split
from priorgnn.errors import ConfigError
from priorgnn.models import get_model_class, load_model

N_PLAIN = 20
PERTURBED = ("A", "B", "C", "D", "E", "F", "H", "K")
GENES = [f"g{i}" for i in range(N_PLAIN)] + list(PERTURBED)
OWN = 1.5  # each single raises its own gene by this much


def _singles(seed: int = 0) -> dict[str, np.ndarray]:
    """Single deltas: random on the plain genes, with sizes that differ clearly between genes (so the
    larger single of every pair is unambiguous), and ``OWN`` on the gene's own column."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, g in enumerate(PERTURBED):
        d = np.zeros(len(GENES))
        d[:N_PLAIN] = rng.normal(size=N_PLAIN) * (0.3 + 0.25 * k)
        d[GENES.index(g)] = OWN
        out[g] = d
    return out


def _data(deltas: dict[str, np.ndarray]) -> ad.AnnData:
    """Cells at each condition's mean ± a tiny symmetric offset, so pseudobulk means are exact."""
    ctrl = np.linspace(7.0, 9.0, len(GENES))  # high enough that no mean is negative
    conds = {"ctrl": np.zeros(len(GENES)), **deltas}
    rows, labels = [], []
    for c, d in conds.items():
        for sign in (+1, -1):
            rows.append(ctrl + d + sign * 0.01 * np.arange(1, len(GENES) + 1) / len(GENES))
            labels.append(c)
    obs = pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(len(labels))])
    return ad.AnnData(X=np.array(rows, dtype=np.float32), obs=obs, var=pd.DataFrame(index=GENES))


def _big_small(s: dict[str, np.ndarray], a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """The two singles ordered by norm over the plain genes (written out independently)."""
    na, nb = np.linalg.norm(s[a][:N_PLAIN]), np.linalg.norm(s[b][:N_PLAIN])
    return (s[a], s[b]) if na >= nb else (s[b], s[a])


def _double(s, a, b, c_big, c_small):
    """``c_big·δL + c_small·δS`` on the plain genes, the sum on the two perturbed genes' own columns."""
    big, small = _big_small(s, a, b)
    d = c_big * big + c_small * small
    for g in (a, b):
        j = GENES.index(g)
        d[j] = s[a][j] + s[b][j]
    return d


TRAIN_DOUBLES = (("A", "B"), ("C", "D"), ("A", "E"), ("B", "F"), ("D", "H"), ("E", "K"))
TEST_DOUBLES = (("C", "K"), ("F", "H"))


def _data_split(double_fn, train_doubles=TRAIN_DOUBLES, singles=None):
    """Hand-built data with doubles made by ``double_fn``, its split, and the singles (``singles()``,
    default :func:`_singles`)."""
    s = (singles or _singles)()
    deltas = {f"{g}+ctrl": s[g] for g in PERTURBED}
    for a, b in train_doubles + TEST_DOUBLES:
        deltas[f"{a}+{b}"] = double_fn(s, a, b)
    data = from_anndata(_data(deltas))
    train = ["ctrl", *(f"{g}+ctrl" for g in PERTURBED), *(f"{a}+{b}" for a, b in train_doubles)]
    split = Split("custom", 0, train=train, val=[], test=[f"{a}+{b}" for a, b in TEST_DOUBLES])
    return data, split, s


def _fit(name, double_fn, train_doubles=TRAIN_DOUBLES, singles=None, **hp):
    data, split, s = _data_split(double_fn, train_doubles, singles)
    return get_model_class(name)(**hp).fit(data, split), s


@pytest.mark.parametrize("name", ["scaled_additive", "scaled_additive_mag"])
def test_recovers_half_the_sum(name):
    """The issue's check: doubles built as half the sum of two singles give c1 = c2 = 0.5."""
    m, s = _fit(name, lambda s, a, b: _double(s, a, b, 0.5, 0.5))
    info = m.fit_info["scaled_additive"]
    assert info["fallback"] is None and info["n_doubles"] == len(TRAIN_DOUBLES)
    assert info["c_large"] == pytest.approx(0.5, abs=1e-5)
    assert info["c_small"] == pytest.approx(0.5, abs=1e-5)
    # an exact global fit leaves nothing for the magnitude slopes
    np.testing.assert_allclose(info["coef"], [0.5, 0, 0, 0.5, 0, 0], atol=1e-5)
    pred = m.predict_delta([f"{a}+{b}" for a, b in TEST_DOUBLES])
    for row, (a, b) in zip(pred, TEST_DOUBLES):
        np.testing.assert_allclose(row, _double(s, a, b, 0.5, 0.5), atol=1e-5)
        # on the plain genes exactly half the sum of the singles
        np.testing.assert_allclose(row[:N_PLAIN], 0.5 * (s[a] + s[b])[:N_PLAIN], atol=1e-5)


def test_global_coefficients_follow_the_larger_single():
    """Unequal coefficients: the larger single gets c_large whichever gene is named first."""
    m, s = _fit("scaled_additive", lambda s, a, b: _double(s, a, b, 0.8, 0.3))
    info = m.fit_info["scaled_additive"]
    assert (info["c_large"], info["c_small"]) == pytest.approx((0.8, 0.3), abs=1e-5)
    big, small = _big_small(s, "C", "K")
    np.testing.assert_allclose(m.predict_delta(["C+K"])[0][:N_PLAIN], (0.8 * big + 0.3 * small)[:N_PLAIN], atol=1e-5)
    # gene order within the pair does not matter
    np.testing.assert_allclose(m.predict_delta(["K+C"]), m.predict_delta(["C+K"]))


def test_magnitude_dependent_coefficients():
    """With c a linear function of the standardised log sizes of the singles, and no ridge, the
    magnitude variant recovers the function; the global variant cannot."""
    s = _singles()
    logs = np.log([np.linalg.norm(x[:N_PLAIN]) for a, b in TRAIN_DOUBLES for x in _big_small(s, a, b)])
    mu, sd = logs.mean(), logs.std()

    def c_of(a, b):
        zb, zs = ((np.log(np.linalg.norm(x[:N_PLAIN])) - mu) / sd for x in _big_small(s, a, b))
        return 0.6 + 0.2 * zb - 0.1 * zs, 0.4 - 0.15 * zb + 0.05 * zs

    def double(s, a, b):
        return _double(s, a, b, *c_of(a, b))

    m, _ = _fit("scaled_additive_mag", double, ridge=0.0)
    np.testing.assert_allclose(m.fit_info["scaled_additive"]["coef"], [0.6, 0.2, -0.1, 0.4, -0.15, 0.05], atol=1e-5)
    for a, b in TEST_DOUBLES:
        np.testing.assert_allclose(m.predict_delta([f"{a}+{b}"])[0], double(s, a, b), atol=1e-5)
    flat, _ = _fit("scaled_additive", double)
    errs = [np.abs(flat.predict_delta([f"{a}+{b}"])[0] - double(s, a, b)).max() for a, b in TEST_DOUBLES]
    assert max(errs) > 1e-2
    # too few doubles for the slopes: one global pair, said so
    few, _ = _fit("scaled_additive_mag", double, train_doubles=TRAIN_DOUBLES[:2])
    info = few.fit_info["scaled_additive"]
    assert info["slopes"] is False and "min_doubles" in info["fallback"]
    assert info["coef"][1:3] == [0.0, 0.0] and info["coef"][4:] == [0.0, 0.0]


def test_no_training_doubles_falls_back_to_additive(caplog):
    m, s = _fit("scaled_additive", lambda s, a, b: _double(s, a, b, 0.5, 0.5), train_doubles=())
    info = m.fit_info["scaled_additive"]
    assert info["n_doubles"] == 0 and "additively" in info["fallback"]
    assert "no training double" in caplog.text
    np.testing.assert_allclose(m.predict_delta(["C+K"])[0], s["C"] + s["K"], atol=1e-5)
    pred = m.predict(["C+K", "C+ctrl"])
    assert list(pred.obs["additive_fallback"]) == [1, 0]
    assert list(pred.obs["n_fallback"]) == [0, 0]


def test_unmeasured_single_is_predicted_additively_with_the_fallback():
    m, s = _fit("scaled_additive", lambda s, a, b: _double(s, a, b, 0.5, 0.5))
    mean_single = np.mean([s[g] for g in PERTURBED], axis=0)
    # Z was never measured: the additive prediction with the mean training single, counted
    np.testing.assert_allclose(m.predict_delta(["C+Z"])[0], s["C"] + mean_single, atol=1e-5)
    assert list(m.predict(["C+Z"]).obs["n_fallback"]) == [1]


def test_dominance_is_the_stronger_single():
    m, s = _fit("dominance", lambda s, a, b: _double(s, a, b, 1.0, 0.0))
    for a, b in TEST_DOUBLES:
        big, _ = _big_small(s, a, b)
        expected = big.copy()
        for g in (a, b):  # both perturbed genes keep their own change
            expected[GENES.index(g)] = s[a][GENES.index(g)] + s[b][GENES.index(g)]
        np.testing.assert_allclose(m.predict_delta([f"{a}+{b}"])[0], expected, atol=1e-5)
    np.testing.assert_allclose(m.predict_delta(["C+ctrl"])[0], s["C"], atol=1e-5)


@pytest.mark.parametrize("name", ["scaled_additive", "scaled_additive_mag", "dominance"])
def test_round_trip(name, tmp_path):
    m, _ = _fit(name, lambda s, a, b: _double(s, a, b, 0.7, 0.2))
    m.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    conds = ["C+K", "F+H", "C+ctrl", "C+Z"]
    np.testing.assert_array_equal(again.predict_delta(conds), m.predict_delta(conds))


def test_bad_mode_is_one_clear_error():
    with pytest.raises(ConfigError, match="mode must be one of global, magnitude"):
        get_model_class("scaled_additive").check_hparams({"mode": "bogus"})


# -- overlap_additive and pair_auto -----------------------------------------------------------------
def _overlap(big, small):
    """``(o+, o-)`` written out gene by gene: the smaller magnitude, signed like ``big``, where the
    two changes agree (o+) or disagree (o-) in sign."""
    op, om = np.zeros_like(big), np.zeros_like(big)
    for j, (x, y) in enumerate(zip(big, small)):
        if x * y > 0:
            op[j] = np.sign(x) * min(abs(x), abs(y))
        elif x * y < 0:
            om[j] = np.sign(x) * min(abs(x), abs(y))
    return op, om


def _buffered(s, a, b, coef=(0.9, 0.8, -0.6, 0.3)):
    """``cL·δL + cS·δS + b+·o+ + b-·o-`` on the plain genes, the sum on the pair's own columns."""
    big, small = _big_small(s, a, b)
    op, om = _overlap(big, small)
    d = coef[0] * big + coef[1] * small + coef[2] * op + coef[3] * om
    for g in (a, b):
        j = GENES.index(g)
        d[j] = s[a][j] + s[b][j]
    return d


def test_overlap_terms_by_hand():
    from priorgnn.models.interaction_baselines import overlap_terms

    big = np.array([2.0, -1.0, 0.5, 3.0, 0.0])
    small = np.array([1.0, -3.0, -0.2, 0.0, 1.0])
    op, om = overlap_terms(big, small)
    np.testing.assert_allclose(op, [1.0, -1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(om, [0.0, 0.0, 0.2, 0.0, 0.0])
    np.testing.assert_allclose((op, om), _overlap(big, small))


def test_overlap_additive_recovers_its_coefficients():
    model, s = _fit("overlap_additive", _buffered)
    np.testing.assert_allclose(model.coef, [0.9, 0.8, -0.6, 0.3] + [0.0] * 8, atol=1e-4)
    pred = model.predict_delta(["C+K", "F+H"])
    np.testing.assert_allclose(pred[0], _buffered(s, "C", "K"), atol=1e-4)
    # on doubles that are exactly Norman's scaled sum, the overlap terms come out 0
    model, _ = _fit("overlap_additive", lambda s, a, b: _double(s, a, b, 0.7, 0.4))
    np.testing.assert_allclose(model.coef, [0.7, 0.4] + [0.0] * 10, atol=1e-4)


@pytest.mark.parametrize("truth,expected", [
    (lambda s, a, b: s[a] + s[b], "additive"),
    (lambda s, a, b: _double(s, a, b, 0.7, 0.4), "scaled"),
    (_buffered, "overlap"),
])
def test_pair_auto_chooses_the_backbone_that_made_the_doubles(truth, expected):
    model, s = _fit("pair_auto", truth)
    assert model.backbone == expected
    errors = model.fit_info["pair_auto"]["loo_error"]
    assert set(errors) == {"additive", "scaled", "overlap"}
    assert errors[expected] == pytest.approx(min(errors.values()), abs=1e-6)
    np.testing.assert_allclose(model.predict_delta(["C+K"])[0], truth(s, "C", "K"), atol=1e-4)


def test_choose_pair_backbone_leave_one_out_by_hand():
    """Three doubles of one gene each, y = 2·big: the scaled fit without double i is
    (Σ_{j≠i} big_j y_j) / (Σ_{j≠i} big_j²) = 2 exactly, so its LOO error is 0; additive's error is
    Σ (y − big − small)² written out."""
    from priorgnn.models.interaction_baselines import choose_pair_backbone

    bigs = [np.array([1.0]), np.array([2.0]), np.array([3.0])]
    smalls = [np.array([0.0]), np.array([0.0]), np.array([0.0])]
    pairs = [(b, s_, 2 * b) for b, s_ in zip(bigs, smalls)]
    out = choose_pair_backbone(pairs)
    assert out["loo_error"]["additive"] == pytest.approx(1 + 4 + 9)
    assert out["loo_error"]["scaled"] == pytest.approx(0.0, abs=1e-12)
    assert out["backbone"] == "scaled" and out["coef"][0] == pytest.approx(2.0)
    assert choose_pair_backbone(pairs[:2])["backbone"] == "scaled"  # too few doubles for a choice
    assert choose_pair_backbone([])["backbone"] == "additive"


@pytest.mark.parametrize("truth,expected", [
    (lambda s, a, b: _double(s, a, b, 0.7, 0.4), "scaled"),
    (_buffered, "overlap"),
    ("epistatic", "relation"),
])
def test_priorgnn_auto_backbone_takes_the_baselines_choice(truth, expected):
    """PriorGNN's pair_backbone='auto' (untrained: its learned interaction is off; not shrunk) predicts a double of
    measured singles as the chosen baseline does (the exact truth where the backbone can express it
    exactly; the relation backbone's ridge shrinks its slopes a little, so there: the baseline's answer)."""
    singles = None
    if truth == "epistatic":
        truth, singles = _epistatic, _related_singles
    data, split, s = _data_split(truth, singles=singles)
    from priorgnn.training.config import TrainConfig

    model = get_model_class("priorgnn")(use_go=False, use_coexpression=False, pair_backbone="auto", pair_shrink=1.0)
    model.fit(data, split, train=TrainConfig(max_epochs=0, progress_bar=False))
    assert model.fit_info["pair_backbone"]["chosen"] == expected
    pred = model.predict_delta(["C+K", "F+H"])
    ref = get_model_class("pair_auto")().fit(data, split).predict_delta(["C+K", "F+H"])
    np.testing.assert_allclose(pred, ref, atol=1e-4)
    if expected != "relation":
        np.testing.assert_allclose(pred, np.stack([truth(s, "C", "K"), truth(s, "F", "H")]), atol=1e-4)


def test_choose_pair_backbone_focus_genes_by_hand():
    """With a focus mask, only the focus genes count: there y = 2·big (scaled LOO error 0, additive's
    error Σ (big)² over them), while the other genes follow y = −big and would change both."""
    from priorgnn.models.interaction_baselines import choose_pair_backbone

    pairs = []
    for k in (1.0, 2.0, 3.0):
        big, small = np.array([k, 10 * k]), np.zeros(2)
        pairs.append((big, small, np.array([2 * k, -10 * k]), np.array([True, False])))
    out = choose_pair_backbone(pairs)
    assert out["loo_error"]["additive"] == pytest.approx(1 + 4 + 9)
    assert out["loo_error"]["scaled"] == pytest.approx(0.0, abs=1e-12)
    assert out["backbone"] == "scaled" and out["coef"][0] == pytest.approx(2.0)
    # without the mask the far larger second gene dominates: cL = (Σ 2k² − 100k²) / (Σ k² + 100k²)
    assert choose_pair_backbone([p[:3] for p in pairs])["coef"][0] == pytest.approx(-98 / 101)


def _off_program(s, a, b):
    """Buffered doubles plus a pattern no backbone has (so fits over different genes differ)."""
    return _buffered(s, a, b) + 0.4 * np.cos(np.arange(len(GENES)) * (1 + PERTURBED.index(a)))


@pytest.mark.parametrize("fit_genes", ["top_de", "all"])
def test_overlap_additive_fit_genes_matches_a_written_out_least_squares(fit_genes):
    """``fit_genes='top_de'`` fits over each training double's top-20 DE genes (``'all'``: every gene),
    its own genes excluded: the same numbers as ``numpy.linalg.lstsq`` over those rows, built here
    from the data's DE ranking and the hand-written overlap terms."""
    data, split, s = _data_split(_off_program)
    model = get_model_class("overlap_additive")(fit_genes=fit_genes).fit(data, split)
    X, y = [], []
    for a, b in TRAIN_DOUBLES:
        c = f"{a}+{b}"
        own = {GENES.index(a), GENES.index(b)}
        rows = data.summaries.top_de(c, 20) if fit_genes == "top_de" else range(len(GENES))
        rows = [j for j in rows if j not in own]
        big, small = _big_small(s, a, b)
        X.append(np.stack([big, small, *_overlap(big, small)], axis=1)[rows])
        y.append(_off_program(s, a, b)[rows])
    ref = np.linalg.lstsq(np.concatenate(X), np.concatenate(y), rcond=None)[0]
    np.testing.assert_allclose(model.coef, np.r_[ref, np.zeros(8)], atol=1e-4)


def test_fit_genes_is_checked_and_reaches_priorgnn():
    with pytest.raises(ConfigError, match="fit_genes"):
        get_model_class("pair_auto")(fit_genes="some")
    with pytest.raises(ConfigError, match="pair_fit_genes"):
        get_model_class("priorgnn")(pair_fit_genes="some")
    data, split, _ = _data_split(_off_program)
    from priorgnn.training.config import TrainConfig

    for fit_genes in ("top_de", "all"):
        model = get_model_class("priorgnn")(use_go=False, use_coexpression=False, pair_fit_genes=fit_genes)
        model.fit(data, split, train=TrainConfig(max_epochs=0, progress_bar=False))
        ref = get_model_class("pair_auto")(fit_genes=fit_genes).fit(data, split)
        record = model.fit_info["pair_backbone"]
        assert record["chosen"] == ref.backbone
        np.testing.assert_allclose([record["c_large"], record["c_small"]], ref.coef[:2], atol=1e-6)


# -- relation_additive: coefficients that depend on how a pair's perturbations act on each other's gene ---
#: (acting gene, gene it moves, by how much): the other singles leave the perturbed genes alone
CROSS = (("A", "B", 0.6), ("B", "A", -0.3), ("C", "K", 0.9), ("D", "C", 0.45), ("E", "A", -0.75),
         ("F", "H", 0.3), ("H", "D", 1.2), ("K", "E", -0.15), ("B", "F", -0.6), ("E", "K", 0.3))


def _related_singles() -> dict[str, np.ndarray]:
    """:func:`_singles` where some perturbations also move another perturbed gene (``CROSS``)."""
    s = _singles()
    for a, b, v in CROSS:
        s[a][GENES.index(b)] = v
    return s


def _relations_by_hand(s, a, b):
    """``(r_LS, r_SL)`` written out: the larger single's change at the smaller's gene over the smaller's
    change there (and the reverse), capped at ±1."""
    big, small = _big_small(s, a, b)
    g_big, g_small = (a, b) if big is s[a] else (b, a)
    j_big, j_small = GENES.index(g_big), GENES.index(g_small)
    return (float(np.clip(big[j_small] / small[j_small], -1, 1)), float(np.clip(small[j_big] / big[j_big], -1, 1)))


def _epistatic(s, a, b):
    """Epistasis through regulation: ``c_L = 1 − 0.5·|r_SL|``, ``c_S = 1 − 0.8·r_LS``, plus buffering of
    shared targets (``b₊ = −0.3``) on the plain genes; the sum on the pair's own columns."""
    big, small = _big_small(s, a, b)
    r_ls, r_sl = _relations_by_hand(s, a, b)
    d = (1 - 0.5 * abs(r_sl)) * big + (1 - 0.8 * r_ls) * small - 0.3 * _overlap(big, small)[0]
    for g in (a, b):
        j = GENES.index(g)
        d[j] = s[a][j] + s[b][j]
    return d


def test_pair_relations_by_hand():
    from priorgnn.models.interaction_baselines import pair_relations

    big = np.array([0.5, 0.3, 2.0, 4.0])  # row 2: the larger single's own gene; row 1: the smaller's
    small = np.array([0.1, 1.5, -0.5, 0.0])
    assert pair_relations(big, small, 2, 1) == pytest.approx((0.3 / 1.5, -0.5 / 2.0))
    big[1] = 6.0  # moves the smaller's gene four times as far as its own perturbation: capped
    assert pair_relations(big, small, 2, 1) == pytest.approx((1.0, -0.25))
    assert pair_relations(big, small, None, None) == (0.0, 0.0)  # perturbed genes not measured
    assert pair_relations(big, small, 2, 3) == (0.0, -0.25)  # the smaller's own change is 0: no ratio
    small[1] = np.nan
    assert pair_relations(big, small, 2, 1)[0] == 0.0


def _relation_rows(s, doubles, fit_rows):
    """The relation design written out (``[δL, δS, o₊, o₋, δL·f, δS·f]``, ``f = (r_LS, r_SL, |r_LS|,
    |r_SL|)``) and the doubles' changes, per double over ``fit_rows(a, b)``."""
    out = []
    for a, b in doubles:
        big, small = _big_small(s, a, b)
        r = _relations_by_hand(s, a, b)
        f = [r[0], r[1], abs(r[0]), abs(r[1])]
        X = np.column_stack([big, small, *_overlap(big, small), *[big * v for v in f], *[small * v for v in f]])
        rows = fit_rows(a, b)
        out.append((X[rows], _epistatic(s, a, b)[rows]))
    return out


def _ridge(parts, lam):
    XtX = sum(X.T @ X for X, _ in parts)
    pen = np.diag([0.0] * 4 + [1.0] * 8) * np.mean(np.diag(XtX))
    return np.linalg.lstsq(XtX + lam * pen, sum(X.T @ y for X, y in parts), rcond=None)[0]


def test_relation_additive_is_a_written_out_ridge_with_its_penalty_chosen_by_leave_one_out():
    """Over every gene but the pair's own: the coefficients are the ridge solution of the hand-built
    design, with the penalty among RELATION_RIDGES whose leave-one-double-out error (refitted by brute
    force here) is lowest; and on these epistatic doubles the slopes carry the truth's signs."""
    from priorgnn.models.interaction_baselines import RELATION_RIDGES

    model, s = _fit("relation_additive", _epistatic, singles=_related_singles, fit_genes="all")
    info = model.fit_info["relation_additive"]
    parts = _relation_rows(s, TRAIN_DOUBLES, lambda a, b: [j for j in range(len(GENES))
                                                           if GENES[j] not in (a, b)])
    loo = {lam: sum(float(np.sum((y - X @ _ridge(parts[:i] + parts[i + 1:], lam)) ** 2))
                    for i, (X, y) in enumerate(parts)) for lam in RELATION_RIDGES}
    assert info["ridge"] == min(loo, key=loo.get)
    np.testing.assert_allclose(model.coef, _ridge(parts, info["ridge"]), atol=1e-6)
    assert model.backbone == "relation"
    # truth: c_S = 1 - 0.8 r_LS, c_L = 1 - 0.5 |r_SL|; shrunk by the ridge, but with the truth's signs
    slopes_big, slopes_small = model.coef[4:8], model.coef[8:]
    assert slopes_small[0] < -0.1 and slopes_big[3] < -0.1


def test_pair_auto_chooses_relation_for_epistatic_doubles_with_a_nested_leave_one_out():
    """pair_auto picks ``relation`` on doubles made by epistasis through regulation, predicts the test
    doubles closer to the truth than ``overlap_additive``, and its relation error is the nested
    leave-one-out: each held-out double predicted with the penalty that leave-one-out over the other
    doubles chose (brute force here)."""
    from priorgnn.models.interaction_baselines import RELATION_RIDGES

    data, split, s = _data_split(_epistatic, singles=_related_singles)
    model = get_model_class("pair_auto")().fit(data, split)
    assert model.backbone == "relation"
    errors = model.fit_info["pair_auto"]["loo_error"]
    assert set(errors) == {"additive", "scaled", "overlap", "relation"}
    assert errors["relation"] < errors["overlap"]
    top = {(a, b): [j for j in data.summaries.top_de(f"{a}+{b}", 20) if GENES[j] not in (a, b)]
           for a, b in TRAIN_DOUBLES}
    parts = _relation_rows(s, TRAIN_DOUBLES, lambda a, b: top[(a, b)])
    nested = 0.0
    for i, (X, y) in enumerate(parts):
        rest = parts[:i] + parts[i + 1:]
        inner = {lam: sum(float(np.sum((y2 - X2 @ _ridge(rest[:j] + rest[j + 1:], lam)) ** 2))
                          for j, (X2, y2) in enumerate(rest)) for lam in RELATION_RIDGES}
        nested += float(np.sum((y - X @ _ridge(rest, min(inner, key=inner.get))) ** 2))
    assert errors["relation"] == pytest.approx(nested, rel=1e-6)
    truth = np.stack([_epistatic(s, a, b) for a, b in TEST_DOUBLES])
    conds = [f"{a}+{b}" for a, b in TEST_DOUBLES]
    overlap = get_model_class("overlap_additive")().fit(data, split).predict_delta(conds)
    assert np.mean((model.predict_delta(conds) - truth) ** 2) < 0.5 * np.mean((overlap - truth) ** 2)


def test_relation_is_no_candidate_without_relations_and_old_states_load(tmp_path):
    """With no pair moving the other's gene the relation backbone would be overlap: pair_auto does not
    offer it. A state saved with four coefficients (before the relation slopes) loads with zero slopes."""
    model, _ = _fit("pair_auto", _buffered)
    assert "relation" not in model.fit_info["pair_auto"]["loo_error"]
    model, _ = _fit("relation_additive", _epistatic, singles=_related_singles)
    model.save(tmp_path / "m")
    conds = ["C+K", "F+H", "C+ctrl", "C+Z"]
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_delta(conds), model.predict_delta(conds))
    old, _ = _fit("overlap_additive", _buffered)
    old.coef = old.coef[:4]
    old.save(tmp_path / "old")
    again = load_model(tmp_path / "old")
    assert len(again.coef) == 12 and not again.coef[4:].any()
    np.testing.assert_array_equal(again.predict_delta(conds), old.predict_delta(conds))


def test_priorgnn_relation_backbone_saves_and_loads_weights_saved_before_it(tmp_path):
    """PriorGNN with the relation backbone round-trips; weights saved before the relation slopes existed
    (no ``pair_relation`` entry) load with zero slopes, which is what that model computed."""
    import torch

    from priorgnn.training.config import TrainConfig

    data, split, _ = _data_split(_epistatic, singles=_related_singles)
    model = get_model_class("priorgnn")(use_go=False, use_coexpression=False, pair_backbone="relation")
    model.fit(data, split, train=TrainConfig(max_epochs=0, progress_bar=False))
    assert model.fit_info["pair_backbone"]["chosen"] == "relation"
    conds = ["C+K", "F+H", "C+ctrl"]
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_delta(conds), model.predict_delta(conds))
    with torch.no_grad():
        model.net.pair_relation.zero_()
    model.save(tmp_path / "old")
    weights = tmp_path / "old" / "weights.pt"
    state = torch.load(weights, weights_only=True)
    del state["pair_relation"]
    torch.save(state, weights)
    np.testing.assert_array_equal(load_model(tmp_path / "old").predict_delta(conds), model.predict_delta(conds))


def test_priorgnn_without_the_perturbed_genes_columns_falls_back_from_relation_to_overlap():
    """Without ``pert_flag`` the network has no table of the perturbed genes' columns, so it cannot read
    the relation ratios: ``pair_backbone='relation'`` fits ``overlap`` instead and predicts as
    ``overlap_additive`` does, off the perturbed genes (whose columns it does not know either, so it does
    not keep their change at the sum)."""
    from priorgnn.training.config import TrainConfig

    data, split, _ = _data_split(_epistatic, singles=_related_singles)
    model = get_model_class("priorgnn")(use_go=False, use_coexpression=False, pair_backbone="relation",
                                        pert_flag=False, pair_shrink=1.0)
    model.fit(data, split, train=TrainConfig(max_epochs=0, progress_bar=False))
    assert model.fit_info["pair_backbone"]["chosen"] == "overlap"
    assert not any(model.fit_info["pair_backbone"]["relation_slopes"])
    ref = get_model_class("overlap_additive")().fit(data, split).predict_delta(["C+K", "F+H"])
    off = [j for j, g in enumerate(GENES) if g not in PERTURBED]
    np.testing.assert_allclose(model.predict_delta(["C+K", "F+H"])[:, off], ref[:, off], atol=1e-4)
