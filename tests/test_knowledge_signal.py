"""The transferable-signal oracle, the simulator's prior informativeness and systematic variation,
and PriorGNN's propagation pathway (issue "knowledge that counts")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from priorgnn.models.neighbours import (degree_factors, loo_fit, loo_fit_degree, loo_fit_degree_powers, loo_shrinkage,
                                        nearest_walk_weights, neighbour_average, powered,
                                        signed_target_similarity, transfer_deviations, walk_weights)
from priorgnn.simulate import SimulatorConfig
from priorgnn.simulate.ode import Simulator

# A hand-built network: A, B, C perturbed in training, U unseen; T1..T4 measured.
NET = pd.DataFrame({
    "regulator": ["A", "A", "B", "B", "C", "U", "U", "U"],
    "target": ["T1", "T2", "T1", "T2", "T3", "T1", "T2", "T3"],
    "sign": [1, 1, 1, -1, 1, 1, 1, 1],
})


def test_signed_target_similarity_by_hand():
    S = signed_target_similarity(NET, ["A", "B", "C", "U"])
    # signed target vectors over (T1, T2, T3): A (1,1,0), B (1,-1,0), C (0,0,1), U (1,1,1)
    assert S[3, 0] == pytest.approx(2 / math.sqrt(6))
    assert S[3, 1] == pytest.approx(0.0)
    assert S[3, 2] == pytest.approx(1 / math.sqrt(3))
    assert S[0, 1] == pytest.approx(0.0)  # one shared target moved the same way, one the other way
    assert np.all(np.diag(S) == 0)


def test_network_knn_transfer_by_hand():
    deltas = np.array([[2.0, 2.0, 0.0, 0.0],    # A
                       [1.0, -1.0, 0.0, 1.0],   # B
                       [0.0, 0.0, 3.0, 0.0]])   # C
    S = signed_target_similarity(NET, ["A", "B", "C", "U"])
    moved = transfer_deviations(S[3:, :3], deltas, [None, None, None])[0]
    m = np.array([1.0, 1 / 3, 1.0, 1 / 3])
    wa, wc = 2 / math.sqrt(6), 1 / math.sqrt(3)
    dev_a = np.array([2.0, 2.0, 0.0, 0.0]) - m
    dev_c = np.array([0.0, 0.0, 3.0, 0.0]) - m
    np.testing.assert_allclose(moved, (wa * dev_a + wc * dev_c) / (wa + wc))


def test_loo_shrinkage_by_hand():
    # singles 1 and 2 are neighbours (weight 1); 3 has none and is skipped
    deltas = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    W = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # i=1: m=(1, .5), d=(0, -.5), r=(1, -.5): <d,r>=.25, |r|^2=1.25
    # i=2: m=(.5, .5), d=(1.5, -.5), r=(.5, -.5): <d,r>=1.0, |r|^2=.5
    assert loo_shrinkage(W, deltas, [None] * 3) == pytest.approx(1.25 / 1.75)
    # a single's own target column is left out of the fit: masking column 0 for single 2 changes it
    lam = loo_shrinkage(W, deltas, [None, 0, None])
    assert 0 <= lam <= 1 and lam != pytest.approx(1.25 / 1.75)
    assert loo_shrinkage(np.zeros((3, 3)), deltas, [None] * 3) == 0.0


def test_loo_error_by_hand():
    # the example above; single 3 (no neighbour) counts with its full deviation d_3 = (-1.5, 1)
    deltas = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    W = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    lam, err = loo_fit(W, deltas, [None] * 3)
    # sum of |d_i|^2 = .25 + 2.5 + 3.25 = 6; minus num^2/den at the optimum = 1.25^2 / 1.75
    assert lam == pytest.approx(1.25 / 1.75)
    assert err == pytest.approx(6.0 - 1.25 ** 2 / 1.75)
    assert loo_fit(np.zeros((3, 3)), deltas, [None] * 3) == (0.0, pytest.approx(6.0))


def test_degree_factors_by_hand():
    # λ_u = min(1, a s/(s + κ)); 0 without a neighbour
    np.testing.assert_allclose(degree_factors(np.array([0.0, 1.0, 3.0]), 1.0, 1.0), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(degree_factors(np.array([0.0, 1.0, 3.0]), 2.0, 1.0), [0.0, 1.0, 1.0])
    np.testing.assert_allclose(degree_factors(np.array([0.0, 1.0, 3.0]), 0.4, 0.0), [0.0, 0.4, 0.4])


def test_loo_fit_degree_equal_weights_is_the_one_lambda_fit():
    # the example above: singles 1 and 2 have the same total weight (1), so every κ gives every
    # single the same factor, the errors tie and the smallest κ (0) is kept: loo_fit's λ and error
    deltas = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    W = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    a, kappa, err = loo_fit_degree(W, deltas, [None] * 3)
    assert kappa == 0.0
    assert a == pytest.approx(1.25 / 1.75)
    assert err == pytest.approx(6.0 - 1.25 ** 2 / 1.75)
    assert loo_fit_degree(np.zeros((3, 3)), deltas, [None] * 3) == (0.0, 0.0, pytest.approx(6.0))


def test_loo_fit_degree_against_brute_force():
    """The closed-form fit against leave-one-out written out directly from its definition, on random
    singles whose neighbour weights differ in total."""
    rng = np.random.default_rng(3)
    n, G = 7, 5
    deltas = rng.normal(size=(n, G))
    W = rng.uniform(0, 1, size=(n, n)) * (rng.uniform(size=(n, n)) < 0.5)
    targets = [0, None, 2, None, 4, 1, None]
    rows = []
    for i in range(n):  # d_i and r_i straight from loo_fit's docstring
        m_i = np.delete(deltas, i, axis=0).mean(0)
        d = deltas[i] - m_i
        dev = deltas - m_i
        for j, t in enumerate(targets):
            if t is not None:
                dev[j, t] = 0.0
        if targets[i] is not None:
            d[targets[i]] = 0.0
        w = W[i].copy()
        w[i] = 0.0
        r = (w @ dev) / w.sum() if w.sum() > 0 else np.zeros(G)
        if targets[i] is not None:
            r[targets[i]] = 0.0
        rows.append((d, r, w.sum()))

    def error(a, kappa):
        return sum(float(np.sum((d - min(1.0, a * s / (s + kappa) if s > 0 else 0.0) * r) ** 2)) for d, r, s in rows)

    a, kappa, err = loo_fit_degree(W, deltas, targets)
    assert err == pytest.approx(error(a, kappa))
    # κ = 0 is among the candidates, so the fit is never worse than the one-λ fit
    lam, err0 = loo_fit(W, deltas, targets)
    assert err <= err0 + 1e-9
    assert err0 == pytest.approx(error(lam, 0.0))
    # and for its κ, no a on a fine grid does clearly better than the closed form
    grid = np.linspace(0, 4, 2001)
    assert err <= min(error(g, kappa) for g in grid) + 1e-6 * err


def test_powered_and_the_choice_of_power_by_hand():
    np.testing.assert_allclose(powered(np.array([[0.5, -0.2, 0.0]]), 2.0), [[0.25, -0.04, 0.0]])
    W = np.array([[0.0, 0.9, 0.1], [0.9, 0.0, 0.2], [0.1, 0.2, 0.0]])
    assert powered(W, 1.0) is not None and np.array_equal(powered(W, 1.0), W)
    rng = np.random.default_rng(5)
    deltas = rng.normal(size=(3, 4))
    deltas[1] += deltas[0]  # singles 0 and 1 alike, as their strong weight says
    fits = {p: loo_fit_degree(powered(W, p), deltas, [None] * 3) for p in (1.0, 2.0)}
    a, kappa, power, err = loo_fit_degree_powers(W, deltas, [None] * 3)
    best = min(fits, key=lambda p: fits[p][2])
    assert power == best and (a, kappa, err) == fits[best]


def test_walk_weights_on_a_path_by_hand():
    import scipy.sparse as sp

    # the path 0 - 1 - 2 - 3; walks towards node 0
    A = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=float))
    steps = walk_weights(A, [0], 3)
    # P[1,0] = 1/2; (P^2)[0,0] = 1/2, (P^2)[2,0] = 1/4; (P^3)[1,0] = 3/8, (P^3)[3,0] = 1/4
    np.testing.assert_allclose(steps[0][:, 0], [0, 0.5, 0, 0])
    np.testing.assert_allclose(steps[1][:, 0], [0.5, 0.5, 0.25, 0])
    np.testing.assert_allclose(steps[2][:, 0], [0.5, 0.875, 0.25, 0.25])
    # nearest: node 1 keeps its one-step weight, 2 and 3 look further, node 0 is not its own neighbour
    np.testing.assert_allclose(nearest_walk_weights(A, [0], 3)[:, 0], [0, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(nearest_walk_weights(A, [0], 1)[:, 0], [0, 0.5, 0, 0])


def test_neighbour_average_signed_and_empty_rows():
    out = neighbour_average(np.array([[1.0, -1.0], [0.0, 0.0]]), np.array([[2.0], [4.0]]))
    np.testing.assert_allclose(out, [[(2.0 - 4.0) / 2.0], [0.0]])


def _tiny(**over):
    cfg = SimulatorConfig.from_preset("tiny", seed=3, **over)
    return cfg, Simulator.from_config(cfg)


def test_prior_informativeness_zero_leaves_the_network_unchanged():
    _, a = _tiny()
    _, b = _tiny(prior_informativeness=0.0, shared_response=0.0, state_module_sd=0.0)
    pd.testing.assert_frame_equal(a.network, b.network)
    np.testing.assert_array_equal(a.state_log_mult, b.state_log_mult)


def test_prior_informativeness_one_shares_signed_targets_within_a_term():
    cfg, sim = _tiny(prior_informativeness=1.0, n_genes=60, regulator_frac=0.3)
    g = sim.spec.genes
    net = sim.network
    sub = dict(zip(g["gene"], g["submodule"]))
    reg = g.loc[g["is_regulator"] & ~g["is_program"], "gene"].tolist()
    targets = {r: dict(zip(net.loc[net.regulator == r, "target"], net.loc[net.regulator == r, "sign"])) for r in reg}
    checked = 0
    for s in set(sub[r] for r in reg):
        members = [r for r in reg if sub[r] == s]
        if len(members) < 2:
            continue
        template = max(members, key=lambda r: len(targets[r]))
        for r in members:
            shared = set(targets[r]) & set(targets[template])
            for t in shared:  # every target shared with the template is moved the template's way
                assert targets[r][t] == targets[template][t]
                checked += 1
    assert checked > 0


def test_shared_response_is_saturating_and_steady():
    cfg, sim = _tiny(shared_response=0.5, shared_response_frac=1.0)
    genes = [g for g in sim.genes[:2]]
    qa, qb = (sim.shared_affinity[sim.gene_index[g]] for g in genes)
    ka = sim._shared_shift(f"{genes[0]}+ctrl")
    kab = sim._shared_shift(f"{genes[0]}+{genes[1]}")
    np.testing.assert_allclose(ka, qa * sim.shared_response)
    np.testing.assert_allclose(kab, (1 - (1 - qa) * (1 - qb)) * sim.shared_response)
    assert sim._shared_shift("ctrl") is None
    # the steady state solves the ODE with the shared response included
    x = sim.steady_state(f"{genes[0]}+ctrl")[0]
    np.testing.assert_allclose(sim.rhs(x, f"{genes[0]}+ctrl"), 0.0, atol=1e-6 * x.max())
    # saved and reloaded, the response is the same
    again = Simulator.from_state(sim.state_arrays(), sim.state_meta())
    np.testing.assert_allclose(again.truth([f"{genes[0]}+ctrl"]), sim.truth([f"{genes[0]}+ctrl"]))


@pytest.mark.slow
def test_priorgnn_true_go_beats_permuted_go_on_a_positive_control(tmp_path):
    """On a small positive-control simulation, PriorGNN with the true GO predicts unseen singles off
    the target better than with a permuted GO, against the noise-free truth."""
    from knowledge.cache import go_graph
    from knowledge.degrade import degrade
    from priorgnn.data.conditions import parse_condition
    from priorgnn.data.splits import make_split
    from priorgnn.models import get_model_class
    from priorgnn.models.base import PriorGraphs, TrainConfig
    from priorgnn.simulate import simulate
    from priorgnn.study import POSITIVE_CONTROL

    sim = simulate("demo", seed=0, out=tmp_path / "sim", **POSITIVE_CONTROL)
    split = make_split(sim.conditions, "simulation", seed=1)
    seen = {g for c in split.train for g in parse_condition(c)}
    test = [c for c in split.test if len(parse_condition(c)) == 1 and parse_condition(c)[0] not in seen]
    truth = sim.truth_delta(test)
    col = {g: i for i, g in enumerate(sim.data.genes)}
    go = go_graph(obo=sim.obo_path, gaf=sim.gaf_path, k=20, threshold=0.1)

    def score(graph):
        model = get_model_class("priorgnn")(use_coexpression=False, allow_prior_free=True)
        model.fit(sim.data, split, graphs=PriorGraphs(go=graph),
                  train=TrainConfig(max_epochs=200, patience=20, progress_bar=False, threads=1, seed=0))
        pred = model.predict_delta(test)
        out = []
        for i, c in enumerate(test):
            keep = np.arange(pred.shape[1]) != col[parse_condition(c)[0]]
            out.append(np.corrcoef(pred[i][keep], truth[i][keep])[0, 1])
        return float(np.mean(out))

    true_go, permuted = score(go), score(degrade(go, "permute", seed=0))
    assert true_go > permuted + 0.1, (true_go, permuted)


def test_configs_without_the_new_settings_keep_their_names():
    # the norman preset's config hash recorded in benchmarks/results/simulator_calibration.md before
    # the settings for prior informativeness, systematic variation and module co-variation existed
    assert SimulatorConfig.from_preset("norman", seed=0).hash() == "b428632af697ac2e"
    assert SimulatorConfig.from_preset("norman", seed=0, prior_informativeness=0.5).hash() != "b428632af697ac2e"
