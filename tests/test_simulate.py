"""Tests of the mechanistic simulator (priorgnn.simulate).

Expected values are worked out independently: closed forms of hand-built networks written in
standard Hill form, brute-force expectations from scipy's negative binomial, a numerical ODE
integration, and counts derived from the fidelity definitions.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.integrate import solve_ivp

from priorgnn.data.conditions import CTRL, parse_condition
from priorgnn.data.dataset import PerturbationData
from priorgnn.data.validate import looks_like_counts
from priorgnn.errors import ConfigError, PriorGNNError
from priorgnn.simulate import (
    PRESETS,
    Simulation,
    Simulator,
    SimulatorConfig,
    load_simulation,
    simulate,
    write_knowledge,
)
from priorgnn.simulate.measure import log1p_table
from priorgnn.simulate.ontology import true_annotations

TINY = "tiny"


@pytest.fixture(scope="module")
def tiny() -> Simulation:
    return simulate(TINY, seed=3)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Simulation:
    return simulate(TINY, seed=1, out=tmp_path_factory.mktemp("sim") / "tiny")


def _hill(x, K, n, sign):
    h = x**n / (K**n + x**n)
    return h if sign > 0 else 1.0 - h


# -- hand-built networks: closed forms -------------------------------------------------------------
def _cascade():
    genes = pd.DataFrame({
        "gene": ["A", "B", "C"], "basal_rate": [2.0, 0.5, 0.2], "max_rate": [0.0, 4.0, 3.0],
        "degradation": [1.0, 0.5, 2.0], "crispra_fold": [5.0, 5.0, 5.0],
        "crispri_residual": [0.2, 0.2, 0.2],
    })
    edges = pd.DataFrame({"regulator": ["A", "B"], "target": ["B", "C"], "sign": [1, -1],
                          "K": [1.5, 2.0], "n": [2.0, 3.0]})
    return genes, edges


def test_linear_cascade_matches_closed_form():
    genes, edges = _cascade()
    sim = Simulator.from_network(genes, edges)
    for cond, fold_a in ((CTRL, 1.0), ("A+ctrl", 5.0)):
        xa = fold_a * 2.0 / 1.0
        xb = (0.5 + 4.0 * _hill(xa, 1.5, 2.0, +1)) / 0.5
        xc = (0.2 + 3.0 * _hill(xb, 2.0, 3.0, -1)) / 2.0
        np.testing.assert_allclose(sim.steady_state([cond])[0], [xa, xb, xc], rtol=1e-12)
    # CRISPRi of the middle gene: its production is scaled by the residual, C follows
    xb = 0.2 * (0.5 + 4.0 * _hill(2.0, 1.5, 2.0, +1)) / 0.5
    xc = (0.2 + 3.0 * _hill(xb, 2.0, 3.0, -1)) / 2.0
    ss = sim.with_modality("crispri").steady_state(["B+ctrl"])[0]
    np.testing.assert_allclose(ss, [2.0, xb, xc], rtol=1e-12)
    assert sim.descendants("A") == ["B", "C"] and sim.direct_targets("A") == ["B"]
    assert sim.regulators("C") == ["B"] and sim.descendants("C") == []


def _two_input(logic: str):
    genes = pd.DataFrame({
        "gene": ["A", "B", "C"], "basal_rate": [1.0, 1.0, 0.3], "max_rate": [0.0, 0.0, 5.0],
        "degradation": [1.0, 1.0, 1.0], "logic": ["and", "and", logic],
        "crispra_fold": [4.0, 6.0, 2.0], "crispri_residual": [0.2, 0.2, 0.2],
    })
    edges = pd.DataFrame({"regulator": ["A", "B"], "target": ["C", "C"], "sign": [1, 1],
                          "K": [2.0, 3.0], "n": [2.0, 1.5], "max_rate": [2.0, 3.0]})
    return Simulator.from_network(genes, edges)


def test_and_motif_is_synergistic():
    """AND gate with a basal rate: P = beta + kappa hA hB. With a = hA'/hA, b = hB'/hB and
    k = kappa hA hB, (beta + k a b)(beta + k) - (beta + k a)(beta + k b) = beta k (a-1)(b-1) > 0,
    so log x_C is super-additive under joint activation of its two activators."""
    sim = _two_input("and")
    x = sim.steady_state([CTRL, "A+ctrl", "B+ctrl", "A+B"])
    hA = {1: _hill(1.0, 2.0, 2.0, 1), 4: _hill(4.0, 2.0, 2.0, 1)}
    hB = {1: _hill(1.0, 3.0, 1.5, 1), 6: _hill(6.0, 3.0, 1.5, 1)}
    expected = [0.3 + 5.0 * hA[a] * hB[b] for a, b in ((1, 1), (4, 1), (1, 6), (4, 6))]
    np.testing.assert_allclose(x[:, 2], expected, rtol=1e-12)
    lx = np.log(x[:, 2])
    gi = (lx[3] - lx[0]) - (lx[1] - lx[0]) - (lx[2] - lx[0])
    assert gi > 0.05


def test_or_motif_is_buffering():
    """OR gate: P = beta + kA hA + kB hB. With X = P at control and increments dA, dB > 0,
    (X + dA + dB) X - (X + dA)(X + dB) = -dA dB < 0: log x_C is sub-additive."""
    sim = _two_input("or")
    x = sim.steady_state([CTRL, "A+ctrl", "B+ctrl", "A+B"])
    hA = {1: _hill(1.0, 2.0, 2.0, 1), 4: _hill(4.0, 2.0, 2.0, 1)}
    hB = {1: _hill(1.0, 3.0, 1.5, 1), 6: _hill(6.0, 3.0, 1.5, 1)}
    expected = [0.3 + 2.0 * hA[a] + 3.0 * hB[b] for a, b in ((1, 1), (4, 1), (1, 6), (4, 6))]
    np.testing.assert_allclose(x[:, 2], expected, rtol=1e-12)
    lx = np.log(x[:, 2])
    assert (lx[3] - lx[0]) - (lx[1] - lx[0]) - (lx[2] - lx[0]) < -0.05


def test_feedback_loop_is_rejected():
    genes = pd.DataFrame({"gene": ["A", "B"], "basal_rate": [1.0, 1.0], "max_rate": [1.0, 1.0],
                          "degradation": [1.0, 1.0]})
    edges = pd.DataFrame({"regulator": ["A", "B"], "target": ["B", "A"], "sign": [1, 1],
                          "K": [1.0, 1.0], "n": [1.0, 1.0]})
    with pytest.raises(ConfigError, match="feedback loop"):
        Simulator.from_network(genes, edges)


# -- the ODE: steady states of random networks ---------------------------------------------------
@pytest.mark.parametrize("modality", ["crispra", "crispri"])
def test_rhs_vanishes_at_steady_states(tiny, modality):
    sim = tiny.simulator.with_modality(modality)
    conds = [CTRL, tiny.singles[0], tiny.singles[1], tiny.doubles[0]]
    for cond, x in zip(conds, sim.steady_state(conds)):
        scale = sim.degradation * x
        assert np.max(np.abs(sim.rhs(x, cond)) / scale) < 1e-10
        # and not at another condition's steady state
        if cond != CTRL:
            assert np.max(np.abs(sim.rhs(x, CTRL)) / scale) > 1e-3
    xs = sim.steady_state(conds, cell_states=True)
    for s in (0, sim.n_states - 1):
        r = sim.rhs(xs[3, s], conds[3], state=s)
        assert np.max(np.abs(r) / (sim.degradation * xs[3, s])) < 1e-10


def test_steady_state_is_the_attractor_of_the_ode(tiny):
    """Integrating dx/dt from a distant start reaches the reported steady state (unique, stable)."""
    sim = tiny.simulator
    cond = tiny.doubles[0]
    target = sim.steady_state([cond])[0]
    x0 = target * np.exp(np.random.default_rng(0).normal(0, 1.0, target.size))
    t_end = 60.0 / sim.degradation.min()
    sol = solve_ivp(lambda t, x: sim.rhs(np.maximum(x, 1e-12), cond), (0, t_end), x0, method="LSODA",
                    rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.y[:, -1], target, rtol=1e-5)


def test_perturbed_gene_changes_by_its_fold(tiny):
    """In a DAG a gene's regulators are not downstream of it, so its steady state scales by exactly
    the CRISPRa fold (or CRISPRi residual) of its transcription."""
    sim = tiny.simulator
    g = parse_condition(tiny.singles[0])[0]
    i = sim.gene_index[g]
    gt = sim.gene_table.set_index("gene")
    for modality, column in (("crispra", "crispra_fold"), ("crispri", "crispri_residual")):
        x = sim.with_modality(modality).steady_state([CTRL, f"{g}+ctrl"])
        np.testing.assert_allclose(x[1, i] / x[0, i], gt.loc[g, column], rtol=1e-12)
        assert (x[1, i] > x[0, i]) == (modality == "crispra")


def test_crispra_up_and_crispri_down_in_sampled_cells():
    for modality, up in (("crispra", True), ("crispri", False)):
        sim = simulate(TINY, seed=5, modality=modality, n_cells_per_condition=200)
        data = sim.data
        for cond in sim.singles[:3]:
            g = parse_condition(cond)[0]
            diff = data.summaries.delta(cond)[data.gene_index[g]]
            assert (diff > 0) == up, (modality, cond, diff)


def test_zero_interaction_strength_is_additive():
    """At interaction_strength = 0 every response is a power law: log steady states of doubles
    are exactly the sum of the singles' log changes; at 1 they are not."""
    for strength in (0.0, 1.0):
        sim = simulate(TINY, seed=2, interaction_strength=strength)
        sv = sim.simulator
        resid = []
        for d in sim.doubles:
            a, b = parse_condition(d)
            lx = np.log(sv.steady_state([CTRL, f"{a}+ctrl", f"{b}+ctrl", d]))
            resid.append(np.abs((lx[3] - lx[0]) - (lx[1] - lx[0]) - (lx[2] - lx[0])).max())
        if strength == 0:
            assert max(resid) < 1e-9
        else:
            assert max(resid) > 0.05


# -- the measurement model -------------------------------------------------------------------------
def test_log1p_table_matches_brute_force():
    """E[log1p(c k)] for k ~ NB(L p, theta), L log-normal: the table against scipy's NB pmf summed
    directly, with the library size integrated by a 60-point Gauss-Hermite rule."""
    L0, sd, ts = 2000.0, 0.3, 1e4
    table = log1p_table([3.0, np.inf], L0, sd, ts)
    z, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    for ci, theta in enumerate((3.0, np.inf)):
        for p in (1e-6, 3e-4, 5e-3, 0.05):
            acc = 0.0
            for zi, wi in zip(z, w):
                L = L0 * np.exp(sd * zi)
                k = np.arange(int(L * p * 30 + 100))
                pmf = stats.poisson.pmf(k, L * p) if np.isinf(theta) else stats.nbinom.pmf(
                    k, theta, theta / (theta + L * p))
                acc += wi * np.sum(pmf * np.log1p(ts / L * k))
            got = table(np.array([[p]]), np.array([ci]))[0, 0]
            assert abs(got - acc) < 1e-4 * max(1.0, acc), (theta, p, got, acc)


def test_pseudobulk_converges_to_truth(tiny):
    sim = tiny.simulator
    conds = [CTRL, tiny.doubles[0]]
    cells = sim.sample_cells(conds, 20000, seed=11)
    X = cells.X.toarray()
    lab = cells.obs["condition"].to_numpy()
    truth = tiny.truth(conds)
    for k, c in enumerate(conds):
        xs = X[lab == c]
        se = xs.std(axis=0) / np.sqrt(len(xs))
        err = np.abs(xs.mean(axis=0) - truth[k])
        # sampling error plus the O(1/L) bias of normalising by L instead of the realised total
        assert np.all(err < 5 * se + 5e-3), (c, err.max())
        assert err.mean() < 0.01


def test_data_validate_as_gears_style(tiny_dir):
    data = tiny_dir.data
    assert isinstance(data, PerturbationData)
    assert CTRL in data.conditions and len(data.perturbations) == len(tiny_dir.conditions) - 1
    assert sp.isspmatrix_csr(data.X) and data.X.dtype == np.float32
    assert not looks_like_counts(data.X) and np.isfinite(data.X.data).all() and data.X.data.min() > 0
    import anndata as ad

    raw = ad.read_h5ad(tiny_dir.path / "data.h5ad")
    assert list(raw.var["gene_name"]) == tiny_dir.simulator.genes
    assert {"condition", "cell_type", "control", "n_counts"} <= set(raw.obs.columns)
    # normalize_total(1e4) + log1p: every cell's expm1 sums to 1e4
    np.testing.assert_allclose(np.asarray(np.expm1(raw.X.astype(np.float64)).sum(axis=1)).ravel(), 1e4,
                               rtol=1e-4)
    counts = np.expm1(raw.X[:50].toarray().astype(np.float64)) * raw.obs["n_counts"].to_numpy()[:50, None] / 1e4
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-2)


# -- determinism and streams -----------------------------------------------------------------------
def test_determinism_and_independent_streams():
    a = simulate(TINY, seed=7)
    b = simulate(TINY, seed=7)
    c = simulate(TINY, seed=8)
    assert (a.data.X != b.data.X).nnz == 0 and a.data.X.nnz == b.data.X.nnz
    np.testing.assert_array_equal(a.truth(a.conditions), b.truth(b.conditions))
    assert a.conditions != c.conditions or (a.data.X != c.data.X).nnz > 0
    # more control cells leave the perturbed cells' draws unchanged (one stream per condition)
    d = simulate(TINY, seed=7, n_cells_ctrl=60)
    for cond in a.singles[:2]:
        xa = a.data.X[a.data.cells_of(cond)]
        xd = d.data.X[d.data.cells_of(cond)]
        assert abs(xa.sum() - xd.sum()) < 1e-3 * xa.sum()


def test_extra_cells_are_new_draws_of_the_same_system(tiny):
    extra = tiny.simulator.sample_cells([CTRL], 100, seed=tiny.config.seed)
    assert extra.n_obs == 100 and list(extra.obs["condition"].unique()) == [CTRL]
    assert list(extra.var_names) == tiny.simulator.genes
    mine = tiny.data.X[tiny.data.cells_of(CTRL)][:100].toarray()
    assert not np.array_equal(mine, extra.X.toarray())


# -- knowledge files -------------------------------------------------------------------------------
def _read(obo, gaf):
    from goatools.anno.gaf_reader import GafReader
    from goatools.obo_parser import GODag

    dag = GODag(str(obo), prt=None)
    reader = GafReader(str(gaf), prt=None)
    return dag, reader


def test_obo_and_gaf_parse_with_goatools(tiny_dir):
    sim = tiny_dir
    dag, reader = _read(sim.obo_path, sim.gaf_path)
    gt = sim.genes
    n_groups, n_modules, n_subs = gt["group"].nunique(), gt["module"].nunique(), gt["submodule"].nunique()
    assert len(dag) == 1 + n_groups + n_modules + n_subs
    assert all(t.startswith("GO:9") and len(t) == 10 for t in dag)
    assert all(dag[t].namespace == "biological_process" for t in dag)
    assert dag["GO:9000000"].parents == set()
    assert max(dag[t].depth for t in dag) == 3  # root -> group -> module -> sub-module
    assert reader.hdr.startswith("gaf-version: 2.2") or "2.2" in str(reader.hdr)
    id2gos = reader.get_id2gos(namespace="BP", prt=None)
    truth = true_annotations(sim.simulator)
    assert {g: set(t) for g, t in truth.items()} == {g: set(t) for g, t in id2gos.items()}
    # a gene's sub-module term is a descendant of its module term
    g0 = gt.iloc[0]
    sub = next(t for t in id2gos[g0["gene"]] if t.startswith("GO:93"))
    assert dag[sub].name.endswith(g0["submodule"])
    assert dag[sub].parents.pop().name.endswith(g0["module"])
    with open(sim.gaf_path) as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh if not line.startswith("!")]
    assert all(len(r) == 17 and r[8] == "P" for r in rows)


def test_knowledge_fidelity_knobs(tiny_dir, tmp_path):
    sim = tiny_dir
    truth = {(g, t) for g, ts in true_annotations(sim.simulator).items() for t in ts}
    n_true = len(truth)

    def pairs(**kw):
        obo, gaf = write_knowledge(sim, tmp_path / str(sorted(kw.items())), **kw)
        _, reader = _read(obo, gaf)
        return {(g, t) for g, ts in reader.get_id2gos(namespace="BP", prt=None).items() for t in ts}

    half = pairs(recall=0.5, seed=1)
    assert half <= truth and len(half) == round(0.5 * n_true)
    assert half != pairs(recall=0.5, seed=2) and half == pairs(recall=0.5, seed=1)
    noisy = pairs(false_rate=0.25, seed=1)
    assert truth <= noisy and len(noisy - truth) == round(0.25 * n_true)
    by_gene = {}
    for g, t in truth:
        by_gene.setdefault(g, set()).add(t)
    shuffled = pairs(shuffle_frac=0.5, seed=3)
    moved = {}
    for g, t in shuffled:
        moved.setdefault(g, set()).add(t)
    changed = [g for g in by_gene if moved.get(g) != by_gene[g]]
    n_genes = len(by_gene)
    # half of the genes were permuted among themselves; genes sharing a sub-module can swap
    # identical sets, so slightly fewer may look changed
    assert 0.3 * n_genes <= len(changed) <= round(0.5 * n_genes)
    assert sorted(map(sorted, moved.values())) == sorted(map(sorted, by_gene.values()))


def test_fidelity_does_not_change_cells(tmp_path):
    a = simulate(TINY, seed=4, out=tmp_path / "a")
    b = simulate(TINY, seed=4, out=tmp_path / "b", go_recall=0.3, go_shuffle=0.5)
    assert (a.data.X != b.data.X).nnz == 0
    assert a.gaf_path.read_text() != b.gaf_path.read_text()
    assert a.obo_path.read_text() == b.obo_path.read_text()


# -- folders: save, load, reuse ---------------------------------------------------------------------
def test_save_load_round_trip_and_new_conditions(tiny_dir):
    sim = tiny_dir
    loaded = load_simulation(sim.path)
    assert loaded.config == sim.config and loaded.conditions == sim.conditions
    assert (loaded.data.X != sim.data.X).nnz == 0
    assert loaded.data.content_hash == sim.data.content_hash
    np.testing.assert_array_equal(loaded.truth(sim.conditions), sim.truth(sim.conditions))
    pd.testing.assert_frame_equal(loaded.network, sim.network)
    # a double never simulated, in reversed spelling
    simulated = set(sim.conditions)
    genes = sorted({g for c in sim.singles for g in parse_condition(c)})
    new = next(f"{b}+{a}" for i, a in enumerate(genes) for b in genes[i + 1:] if f"{a}+{b}" not in simulated)
    np.testing.assert_allclose(loaded.truth([new]), sim.simulator.truth([new]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.truth_delta([new])[0],
                               sim.simulator.truth([new])[0] - sim.simulator.truth([CTRL])[0], atol=1e-12)
    for name in ("network.csv", "genes.csv", "truth.h5ad", "simulator.json", "simulator.npz"):
        assert (sim.path / name).exists()
    net = pd.read_csv(sim.path / "network.csv")
    assert {"regulator", "target", "sign", "weight", "K", "n", "logic"} <= set(net.columns)
    assert set(net["sign"]) <= {-1, 1}


def test_reuse_and_mismatch_of_an_out_folder(tmp_path):
    out = tmp_path / "sim"
    first = simulate(TINY, seed=9, out=out)
    stamp = os.stat(out / "data.h5ad").st_mtime_ns
    time.sleep(0.01)
    again = simulate(TINY, seed=9, out=out)
    assert os.stat(out / "data.h5ad").st_mtime_ns == stamp
    assert (again.data.X != first.data.X).nnz == 0
    with pytest.raises(ConfigError, match="already holds a different simulation.*n_doubles"):
        simulate(TINY, seed=9, out=out, n_doubles=3)
    with pytest.raises(PriorGNNError, match="not a simulation folder"):
        load_simulation(tmp_path)


# -- configuration errors and the CLI ---------------------------------------------------------------
def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="n_doubles=40 exceeds the 15 possible pairs"):
        SimulatorConfig.from_preset(TINY, n_singles=6, n_doubles=40)
    with pytest.raises(ConfigError, match="unknown simulator setting.*'typo'"):
        SimulatorConfig.from_preset(TINY, typo=1)
    with pytest.raises(ConfigError, match="modality"):
        SimulatorConfig.from_preset(TINY, modality="knockout")
    with pytest.raises(ConfigError, match="unknown simulator preset"):
        SimulatorConfig.from_preset("nope")
    with pytest.raises(ConfigError, match="not a valid int"):
        SimulatorConfig.from_preset(TINY, n_singles="many")
    assert {"demo", "norman", "tiny"} <= set(PRESETS)
    assert SimulatorConfig.from_preset(TINY, n_doubles="3").n_doubles == 3


def test_truth_rejects_unknown_genes(tiny):
    with pytest.raises(PriorGNNError, match="not one of the simulator"):
        tiny.truth(["NOPE+ctrl"])


def test_cli(tmp_path, capsys):
    from priorgnn.simulate.__main__ import main

    out = tmp_path / "cli"
    assert main(["--preset", TINY, "--seed", "2", "--out", str(out), "--quiet", "--set", "n_doubles=4",
                 "--go-recall", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "4 doubles" in printed and "recall 0.5" in printed
    assert load_simulation(out).knowledge["recall"] == 0.5
    assert main(["--preset", TINY, "--out", str(tmp_path / "bad"), "--quiet", "--set", "n_doubles=999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "n_doubles" in err
    assert main(["--preset", TINY, "--set", "oops"]) == 2


def test_demo_preset_shape():
    sim = simulate("demo", seed=0)
    assert sim.data.n_genes == 300 and len(sim.singles) == 50 and len(sim.doubles) == 50
    assert sim.simulator.network["regulator"].nunique() > 10


@pytest.mark.slow
def test_norman_preset_shape(tmp_path):
    """The norman preset has Norman et al. (2019)'s shape as processed by GEARS."""
    sim = simulate("norman", seed=0, out=tmp_path / "norman")
    data = sim.data
    assert data.n_genes == 5045 and len(sim.singles) == 105 and len(sim.doubles) == 131
    assert 85_000 <= data.n_cells <= 100_000 and len(data.cells_of(CTRL)) == 8000
    # 8,000 UMIs over the 5,045 simulated genes leave about half the entries zero (reported, not
    # calibrated, in benchmarks/results/simulator_calibration.md); the matrix must stay sparse.
    sparsity = 1.0 - data.X.nnz / (data.n_cells * data.n_genes)
    assert 0.3 < sparsity < 0.97
    loaded = load_simulation(sim.path)
    assert loaded.data.content_hash == data.content_hash


def test_pair_nonadditivity_matches_steady_states(tiny):
    """``1 - r`` of each pair, against the public steady states: r is the Pearson correlation of the
    double's log-change with the sum of its singles' (the two perturbed genes left out)."""
    from itertools import combinations

    from priorgnn.simulate.simulation import _pair_nonadditivity

    simulator = tiny.simulator
    genes = [parse_condition(c)[0] for c in tiny.singles][:5]
    got = _pair_nonadditivity(simulator, genes)
    assert set(got) == set(combinations(genes, 2))
    ctrl = np.log(simulator.steady_state([CTRL])[0])
    for a, b in combinations(genes, 2):
        la, lb, lab = (np.log(simulator.steady_state([c])[0]) - ctrl for c in (f"{a}+ctrl", f"{b}+ctrl", f"{a}+{b}"))
        keep = np.ones(simulator.n_genes, bool)
        keep[[simulator.gene_index[a], simulator.gene_index[b]]] = False
        y, s = lab[keep], (la + lb)[keep]
        expected = 1.0 - np.corrcoef(y, s)[0, 1] if y.std() > 0 and s.std() > 0 else 0.0
        assert got[(a, b)] == pytest.approx(expected, abs=1e-9)


def test_double_interaction_bias_picks_non_additive_pairs():
    """With the bias on, the drawn doubles are more non-additive (noise-free) than without it."""
    from priorgnn.simulate.simulation import _pair_nonadditivity, design_conditions

    over = {"n_genes": 120, "n_modules": 6, "regulator_frac": 0.25, "n_singles": 20, "n_doubles": 15}
    cfg0 = SimulatorConfig.from_preset("demo", seed=2, **over)
    cfg1 = cfg0.with_overrides(double_interaction_bias=3.0)
    simulator = Simulator.from_config(cfg0)
    singles0, doubles0 = design_conditions(simulator, cfg0)
    singles1, doubles1 = design_conditions(Simulator.from_config(cfg1), cfg1)
    assert singles0 == singles1  # the bias changes only which pairs are drawn
    score = _pair_nonadditivity(simulator, [parse_condition(c)[0] for c in singles0])
    pick = lambda doubles: np.array([score[tuple(sorted(parse_condition(d)))] for d in doubles])  # noqa: E731
    assert np.median(pick(doubles1)) > np.median(pick(doubles0))
    # the pairs it favours are rare: most random pairs of a sparse network are (near) additive
    all_scores = np.array(list(score.values()))
    assert np.median(pick(doubles1)) > np.quantile(all_scores, 0.75)


def test_simulate_refuses_a_dangling_output_link_before_simulating(tmp_path, monkeypatch):
    from priorgnn.errors import OutputError
    from priorgnn.simulate import simulation

    def never(*_a, **_k):
        raise AssertionError("simulated before checking the output folder")

    monkeypatch.setattr(simulation.Simulator, "from_config", never)
    link = tmp_path / "sim"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(OutputError, match="symbolic link.*does not exist"):
        simulation.simulate("tiny", seed=0, out=link)
    assert not (tmp_path / "gone").exists()


def test_cli_names_a_dangling_output_link_in_one_line(tmp_path, capsys):
    from priorgnn.simulate.__main__ import main

    link = tmp_path / "sim"
    link.symlink_to(tmp_path / "gone")
    assert main(["--preset", TINY, "--out", str(link), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "symbolic link" in err and str(tmp_path / "gone") in err
