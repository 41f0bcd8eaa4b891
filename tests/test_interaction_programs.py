"""benchmarks/interaction_programs.py: the program picture's fits against closed forms, and its table."""

from __future__ import annotations

import interaction_programs as bench  # benchmarks/ is on the path (conftest)
import numpy as np
import pandas as pd
import pytest


def test_quadratic_response_is_recovered_and_its_cross_term_matches_the_hand_formula():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(5, 4))  # features z1, z2, z1², z1·z2, z2² for 4 genes
    z = rng.normal(size=(30, 2))
    coef = bench.fit_response(z, bench.quad_features(z) @ true, ridge=1e-12)
    np.testing.assert_allclose(coef, true, atol=1e-8)
    a, b = np.array([0.3, -1.2]), np.array([0.7, 0.4])
    # ψ(a+b) − ψ(a) − ψ(b) of a quadratic without intercept: only the cross products survive
    hand = 2 * a[0] * b[0] * true[2] + (a[0] * b[1] + a[1] * b[0]) * true[3] + 2 * a[1] * b[1] * true[4]
    np.testing.assert_allclose(bench.program_nonadditive(coef, a, b, a + b), hand, atol=1e-8)
    # a double landing elsewhere on the programs (the oracle's case) adds ψ's change to get there
    off = np.array([0.1, -0.2])
    np.testing.assert_allclose(bench.program_nonadditive(coef, a, b, a + b + off),
                               bench.quad_features(a + b + off)[0] @ true - bench.quad_features(a)[0] @ true
                               - bench.quad_features(b)[0] @ true, atol=1e-8)


def test_hub_coefficients_are_recovered_from_saturating_doubles():
    rng = np.random.default_rng(1)
    za, zb = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    c = np.array([-0.5, 0.0, 0.8])
    np.testing.assert_allclose(bench.fit_hub(za, zb, za + zb + c * za * zb, ridge=1e-12), c, atol=1e-9)
    shrunk = bench.fit_hub(za, zb, za + zb + c * za * zb, ridge=1.0)  # ridge pulls toward 0, keeps signs
    assert np.all(np.abs(shrunk) <= np.abs(c) + 1e-12) and shrunk[0] < 0 < shrunk[2]


def test_program_axes_span_the_top_components_with_unit_first_coordinate():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(12, 2)))[0].T  # 2 orthonormal gene profiles
    singles = rng.normal(size=(20, 2)) * [3.0, 1.0] @ basis
    axes = bench.program_axes(singles, 2)
    scores = singles @ axes
    assert np.sqrt(np.mean(scores[:, 0] ** 2)) == pytest.approx(1.0)
    # the axes lie in the singles' span: projecting them on it changes nothing
    np.testing.assert_allclose(basis.T @ (basis @ axes), axes, atol=1e-10)
    assert abs(float(axes[:, 0] @ axes[:, 1])) < 1e-10


def test_render_means_over_seeds_by_hand():
    rows = [{"setting": "norman", "data_seed": s, "model": m, "programs": k if m.startswith("programs") else 0,
             "n_test": 3,
             "nonadditive_corr": v + 0.1 * s + 0.01 * k, "mse_top20_de": 0.1}
            for s in (0, 1) for k in (2, 4) for m, v in zip(bench.MODELS, (0.0, 0.2, 0.4, 0.1, 0.3))
            if k == 2 or m.startswith("programs")]
    text = bench.render(pd.DataFrame(rows), "cmd", 1.0, "0" * 40, 1.0)
    line = next(x for x in text.splitlines() if x.startswith("| programs_oracle | 4 |"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[3:5] == ["0.490", "0.440"]  # mean of 0.44 and 0.54; seed 0
    assert sum(x.startswith("| additive |") for x in text.splitlines()) == 1


@pytest.mark.parametrize("argv", [["--programs", "0"], ["--programs", "x"], ["--ridge", "-1"], ["--ridge", "nan"]])
def test_nonsense_options_are_refused_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and "--programs must be" in capsys.readouterr().err
