#!/usr/bin/env python
"""Where the non-additive part of the ``norman`` preset's doubles comes from: shared programs.

    python benchmarks/interaction_programs.py [--seeds 11,12,13,14,15,16] [--programs 2,4,8] [--results ...]

The interaction targets' T3 (``nonadditive_corr`` ≥ 0.3 on doubles of two measured singles) is not met
on the plain ``norman`` preset. In its network most genes listen to a few saturating program hubs, so a
perturbation's profile is, to a first approximation, a smooth function ``ψ_g(z)`` of where it moves the
programs (``z``, a few coordinates). This script asks which part of that picture limits a prediction:

- ``programs_oracle``: ``ψ(z_AB) − ψ(z_A) − ψ(z_B)`` with the double's *own* program coordinates (the
  projection of its true profile). Not a prediction: the ceiling of the program picture, if one knew where
  the double moves the programs.
- ``programs_sum``: the same with ``z_AB = z_A + z_B``: the programs add at the hubs, and the non-additive
  part is only the curvature of each gene's response along them.
- ``programs_hub``: ``z_AB = z_A + z_B + c ⊙ z_A ⊙ z_B``, one coefficient per program coordinate fitted
  (ridge) on the training doubles: a saturating hub.
- ``relation_additive`` and ``additive``: the project's baselines, fitted and scored on the same split.

``z`` are the scores of the training singles' top ``--programs`` principal components (measured, not the
truth; 2, 4 and 8 of them, each a separate fit: the more coordinates, the more of the double's own profile
the oracle reads); each gene's ``ψ_g`` is a quadratic in ``z`` fitted by ridge to the measured training singles and
doubles. Scored on the simulation split's ``combo_seen2`` doubles against the noise-free truth, as
``interaction_targets.py`` scores them: ``nonadditive_corr`` (the project's
:func:`~priorgnn.metrics.interactions.nonadditive_correlation`, the pair's genes left out) and
``mse_top20_de`` (the double's 20 most changed measured genes). The program models predict
``m_A + m_B +`` their non-additive part, ``m`` the measured singles.

Settings as ``interaction_targets.py``, on data seeds the study and the targets never use (default
11-16; simulations shared with ``pair_backbones.py``). Writes ``RESULTS/interaction_programs.csv`` (per
setting, seed, model and number of program coordinates, 0 for the baselines: means over the test doubles)
and ``RESULTS/interaction_programs.md``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import made_by, script_setup  # a sibling script (benchmarks/ is on sys.path)
from claims import head_commit

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_MODELS = ("programs_oracle", "programs_sum", "programs_hub")
MODELS = ("additive", "relation_additive", *PROGRAM_MODELS)
METRICS = ("nonadditive_corr", "mse_top20_de")


def program_axes(singles: np.ndarray, k: int) -> np.ndarray:
    """``[G, k]``: the top ``k`` right singular vectors of the ``[P, G]`` single profiles, scaled so that
    the first program coordinate has unit root mean square over the singles (the ridge penalties below
    are relative, so only the scale's consistency matters)."""
    _, s, vt = np.linalg.svd(np.asarray(singles, dtype=np.float64), full_matrices=False)
    return vt[:k].T * (np.sqrt(len(singles)) / s[0])


def quad_features(z: np.ndarray) -> np.ndarray:
    """``[n, k + k(k+1)/2]``: the coordinates and their products ``z_i z_j`` (``i ≤ j``)."""
    z = np.atleast_2d(z)
    i, j = np.triu_indices(z.shape[1])
    return np.hstack([z, z[:, i] * z[:, j]])


def fit_response(z: np.ndarray, profiles: np.ndarray, ridge: float) -> np.ndarray:
    """``[F, G]`` coefficients of every gene's quadratic response ``ψ_g(z)`` (no intercept: ``ψ(0) = 0``,
    the control), by ridge with penalty ``ridge ×`` the mean diagonal of the normal matrix."""
    x = quad_features(z)
    a = x.T @ x
    return np.linalg.solve(a + ridge * np.trace(a) / len(a) * np.eye(len(a)), x.T @ np.asarray(profiles, float))


def program_nonadditive(coef: np.ndarray, za: np.ndarray, zb: np.ndarray, zab: np.ndarray) -> np.ndarray:
    """``[G]``: ``ψ(z_AB) − ψ(z_A) − ψ(z_B)``."""
    return (quad_features(zab) - quad_features(za) - quad_features(zb))[0] @ coef


def fit_hub(za: np.ndarray, zb: np.ndarray, zab: np.ndarray, ridge: float) -> np.ndarray:
    """``[k]``: per program coordinate ``c`` of ``z_AB − z_A − z_B ≈ c ⊙ z_A ⊙ z_B`` over the ``[D, k]``
    training doubles, by ridge (penalty ``ridge ×`` the mean of the coordinates' sums of squares)."""
    prod = np.asarray(za) * np.asarray(zb)
    ss = (prod ** 2).sum(0)
    return (prod * (np.asarray(zab) - za - zb)).sum(0) / (ss + ridge * ss.mean())


def score_programs(data, sim, split, k: int, ridge: float) -> pd.DataFrame:
    """Per ``combo_seen2`` test double: ``nonadditive_corr`` and ``mse_top20_de`` of the program models."""
    from priorgnn.data.conditions import parse_condition
    from priorgnn.metrics.core import N_DE, perturbed_gene_idx
    from priorgnn.metrics.interactions import nonadditive_correlation

    s = data.summaries
    single = {c: s.delta(c).astype(np.float64) for c in split.train if len(parse_condition(c)) == 1}
    doubles = [c for c in split.train if len(g := parse_condition(c)) == 2
               and all(f"{x}+ctrl" in single for x in g)]
    names = list(single)
    profiles = np.stack([single[c] for c in names])
    axes = program_axes(profiles, k)
    z = dict(zip(names, profiles @ axes))
    pair = [tuple(f"{x}+ctrl" for x in parse_condition(c)) for c in doubles]
    observed = np.stack([s.delta(c).astype(np.float64) for c in doubles])
    z_obs = observed @ axes
    za, zb = (np.stack([z[p[i]] for p in pair]) for i in (0, 1))
    coef = fit_response(np.vstack([profiles @ axes, z_obs]), np.vstack([profiles, observed]), ridge)
    hub = fit_hub(za, zb, z_obs, ridge)
    rows = []
    for c in split.subgroups.get("combo_seen2", []):
        a, b = (f"{x}+ctrl" for x in parse_condition(c))
        ta, tb, tab = sim.truth_delta([a, b, c])
        ma, mb = single[a], single[b]
        own = perturbed_gene_idx([c], data.genes)[0]
        top = s.top_de(c, N_DE)
        zab = {"programs_oracle": tab @ axes, "programs_sum": z[a] + z[b],
               "programs_hub": z[a] + z[b] + hub * z[a] * z[b]}
        for model, target in zab.items():
            pred = ma + mb + program_nonadditive(coef, z[a], z[b], target)
            corr, _ = nonadditive_correlation(pred, ma, mb, tab, ta, tb, exclude=[own])
            rows.append({"condition": c, "model": model, "nonadditive_corr": float(corr[0]),
                         "mse_top20_de": float(np.mean((pred - tab)[top] ** 2))})
    return pd.DataFrame(rows)


def run(seeds, out: Path, ks, ridge: float) -> pd.DataFrame:
    from priorgnn import experiment
    from priorgnn.data.splits import make_split
    from priorgnn.simulate import simulate

    from interaction_targets import settings

    rows = []
    for name, overrides in settings().items():
        for seed in seeds:
            sim = simulate("norman", seed=seed, out=out / f"{name}-s{seed}", **overrides)
            split = make_split(sim.conditions, "simulation", seed=1)
            test = list(split.subgroups.get("combo_seen2", []))
            fitted = {m: experiment.fit(m, sim, split) for m in ("additive", "relation_additive")}
            base = experiment.score(fitted, sim, split, conditions=test, metrics=list(METRICS))
            base = base[base["reference"] == "truth"][["condition", "model", *METRICS]]
            per = pd.concat([base.assign(programs=0)]
                            + [score_programs(sim.data, sim, split, k, ridge).assign(programs=k) for k in ks],
                            ignore_index=True)
            mean = per.groupby(["model", "programs"], sort=False)[list(METRICS)].mean()
            for (model, k), v in mean.iterrows():
                if model in MODELS:
                    rows.append({"setting": name, "data_seed": seed, "model": model, "programs": k,
                                 "n_test": len(test), **{m: float(v[m]) for m in METRICS}})
            logging.info("%s seed %d: %s", name, seed, mean["nonadditive_corr"].round(3).to_dict())
    return pd.DataFrame(rows)


def render(frame: pd.DataFrame, command: str, wall: float, commit: str, ridge: float) -> str:
    L = ["# Where the non-additive part comes from: shared programs", "",
         f"{made_by(command, wall, commit)}. Ridge {ridge:g}; `k`: the number of program coordinates. `combo_seen2` test doubles of the simulation "
         "split, against the noise-free truth: means over the doubles of each seed, then over seeds (per-seed "
         "values in the CSV). `programs_oracle` is given each test double's own program coordinates, so it is a "
         "ceiling, not a prediction. Design in the script's docstring.", ""]
    for name, sub in frame.groupby("setting", sort=False):
        seeds = sorted(sub["data_seed"].unique())
        L += [f"## `{name}` (data seeds {', '.join(map(str, seeds))})", "",
              "| model | k | nonadditive_corr | " + " | ".join(f"seed {s}" for s in seeds) + " | mse_top20_de |",
              "|---|---:|---:|" + "---:|" * len(seeds) + "---:|"]
        for (model, k), m in sub.groupby(["model", "programs"], sort=False):
            m = m.set_index("data_seed")
            L.append(f"| {model} | {k or '–'} | {m['nonadditive_corr'].mean():.3f} | "
                     + " | ".join(f"{m.loc[s, 'nonadditive_corr']:.3f}" for s in seeds)
                     + f" | {m['mse_top20_de'].mean():.4f} |")
        L.append("")
    return "\n".join(L)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="11,12,13,14,15,16", help="data seeds (the study and the targets use 0-2)")
    p.add_argument("--programs", default="2,4,8", help="numbers of program coordinates (principal components)")
    p.add_argument("--ridge", type=float, default=1.0, help="relative ridge of the response and hub fits")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "pair-backbones", help="simulations")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    try:
        ks = [int(k) for k in args.programs.split(",")]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1 or not np.isfinite(args.ridge) or args.ridge <= 0:
        p.error("--programs must be a comma-separated list of integers >= 1 and --ridge a positive number")
    script_setup()
    from priorgnn.io import write_csv, write_text

    t0 = time.perf_counter()
    frame = run([int(s) for s in args.seeds.split(",")], args.out, ks, args.ridge)
    commit = head_commit(ROOT)
    frame["git_commit"] = commit
    command = "python benchmarks/interaction_programs.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    args.results.mkdir(parents=True, exist_ok=True)
    write_csv(args.results / "interaction_programs.csv", frame, index=False)
    text = render(frame, command.strip(), time.perf_counter() - t0, commit, args.ridge)
    write_text(args.results / "interaction_programs.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
