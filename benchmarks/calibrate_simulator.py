"""Calibrate the simulator against Norman et al. (Science 2019)'s genetic-interaction statistics.

Simulates a preset (by default ``norman``) in a child process (timed: wall clock and peak resident
memory, as ``/usr/bin/time -v`` reports them), then scores its doubles as Norman et al. did in their
``GI_model_fits`` analysis (public repository Perturbseq_GI):

* genes: control mean UMI per cell > 0.5 (Norman's "abundant genes", mean > 0.5), excluding every
  perturbed gene; doubles with more than 10 DE genes (Norman: > 10 at adjusted p < 0.001);
* ``corr_sum``: Pearson of the double's change dAB with dA + dB;
* ``corr_fit``: Pearson of dAB with the least-squares fit c1 dA + c2 dB without intercept (Norman's
  ``corr_fit`` uses the ordinary least-squares prediction); ``corr_fit_ts`` the same with the
  Theil-Sen fit;
* ``magnitude``: sqrt(c1^2 + c2^2) of the robust Theil-Sen fit without intercept (Norman's
  ``ts_norm2``), computed as sklearn's ``TheilSenRegressor(fit_intercept=False,
  max_subpopulation=1e5)`` does: the spatial median of the exact solutions of 1e5 random pairs of
  genes (vectorised here; ``--check-sklearn`` compares with sklearn on a few doubles);
* DE genes: BH-adjusted Welch t-test p < 0.05 against control
  (:meth:`ConditionSummaries.n_de_genes`, scanpy's ``rank_genes_groups``).

Changes d are pseudobulk means of log1p(normalize_total 1e4) minus the control mean, observed (from
the noisy cells) and noise-free (``Simulation.truth_delta``). Norman's own matrix was instead the
mean of UMI-normalised expression z-scored against control cells; that variant is reported too
("z-scale", informative).

Targets: the observed medians of corr_sum, corr_fit and magnitude inside Norman's interquartile
ranges (0.81-0.90, 0.82-0.91, 0.83-1.26; from ``regr_fits_final.csv``); the median number of DE
genes of a single within [1/2, 2] x 398 * n_genes / 5045 (Norman's median single has 10^2.6 = 398 DE
genes; we take 5,045 genes, the gene count of GEARS's processed Norman data, as the denominator);
at least a quarter of the doubles with noise-free corr_sum < 0.97 (genuine interactions).

Usage::

    python benchmarks/calibrate_simulator.py --preset norman --out runs/calibration/norman
    python benchmarks/calibrate_simulator.py --preset demo --out runs/calibration/demo

Results go to ``benchmarks/results/simulator_calibration.md`` (one section per preset, replaced on
re-run) and ``benchmarks/results/simulator_calibration.csv`` (one row per double).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent

from priorgnn.io import write_csv, write_text  # noqa: E402
from priorgnn.data.conditions import CTRL, parse_condition  # noqa: E402
from priorgnn.data.dataset import pseudobulk  # noqa: E402

NORMAN_IQR = {"corr_sum": (0.81, 0.90), "corr_fit": (0.82, 0.91), "magnitude": (0.83, 1.26)}
NORMAN_MEDIAN = {"corr_sum": 0.85, "corr_fit": 0.86, "magnitude": 1.02}
NORMAN_SINGLE_DE = 10**2.6
NORMAN_DOUBLE_DE = 10**3.0
NORMAN_N_GENES = 5045
MIN_UMI = 0.5
MIN_DE_DOUBLE = 10
TRUTH_INTERACTION = 0.97


def theil_sen_2d(X: np.ndarray, y: np.ndarray, n_pairs: int = 100_000, seed: int = 1000,
                 max_iter: int = 300, tol: float = 1e-9) -> np.ndarray:
    """Theil-Sen regression without intercept for two regressors: the spatial median of the exact
    solutions through random pairs of points (as sklearn's estimator with ``n_subsamples = 2``)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    i = rng.integers(n, size=n_pairs)
    j = rng.integers(n, size=n_pairs)
    a, b, c, d = X[i, 0], X[i, 1], X[j, 0], X[j, 1]
    det = a * d - b * c
    ok = (i != j) & (np.abs(det) > 1e-12 * (np.abs(a * d) + np.abs(b * c) + 1e-300))
    det = det[ok]
    sol = np.stack([(d[ok] * y[i[ok]] - b[ok] * y[j[ok]]) / det,
                    (a[ok] * y[j[ok]] - c[ok] * y[i[ok]]) / det], axis=1)
    m = np.median(sol, axis=0)
    for _ in range(max_iter):  # Weiszfeld iterations for the spatial median
        dist = np.linalg.norm(sol - m, axis=1)
        w = 1.0 / np.maximum(dist, 1e-12)
        new = (sol * w[:, None]).sum(0) / w.sum()
        if np.linalg.norm(new - m) < tol:
            m = new
            break
        m = new
    return m


def interaction_stats(dA: np.ndarray, dB: np.ndarray, dAB: np.ndarray) -> dict[str, float]:
    X = np.stack([dA, dB], axis=1)
    ols = np.linalg.lstsq(X, dAB, rcond=None)[0]
    ts = theil_sen_2d(X, dAB)
    return {
        "corr_sum": float(np.corrcoef(dA + dB, dAB)[0, 1]),
        "corr_fit": float(np.corrcoef(X @ ols, dAB)[0, 1]),
        "corr_fit_ts": float(np.corrcoef(X @ ts, dAB)[0, 1]),
        "c1": float(ts[0]), "c2": float(ts[1]), "magnitude": float(np.hypot(*ts)),
    }


def run_simulation(args) -> dict:
    """Simulate in a child process; return wall time and the child's peak RSS (as time -v)."""
    cmd = [sys.executable, "-m", "priorgnn.simulate", "--preset", args.preset, "--seed", str(args.seed),
           "--out", str(args.out), "--quiet"]
    for s in args.set:
        cmd += ["--set", s]
    reused = (Path(args.out) / "simulator.json").exists()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"simulation failed (exit {proc.returncode})")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(proc.stdout.strip())
    display = ["python", "-m", "priorgnn.simulate", *cmd[3:-1]]
    out = Path(args.out).resolve()
    if out.is_relative_to(ROOT):  # report the folder as the command is typed from the project root
        display[display.index("--out") + 1] = str(out.relative_to(ROOT))
    return {"wall_s": wall, "peak_rss_gb": peak_kb / 1024**2, "reused": reused,
            "command": " ".join(shlex.quote(c) for c in display)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="norman")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="simulation folder (default runs/calibration/PRESET)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="simulator override")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--no-write", action="store_true", help="print only; do not update the results files")
    p.add_argument("--check-sklearn", type=int, default=3, metavar="N",
                   help="compare the Theil-Sen fit with sklearn's on N doubles (0: skip)")
    args = p.parse_args(argv)
    args.out = args.out or ROOT / "runs" / "calibration" / args.preset
    os.environ.setdefault("PRIORGNN_CACHE_DIR", str(Path(args.out) / ".cache"))

    run = run_simulation(args)
    from priorgnn.simulate import load_simulation

    t0 = time.perf_counter()
    sim = load_simulation(args.out)
    data = sim.data
    S = data.summaries
    t_summ = time.perf_counter() - t0
    G = data.n_genes
    obs = ad.read_h5ad(Path(args.out) / "data.h5ad", backed="r").obs
    n_counts = obs["n_counts"].to_numpy(float)
    target_sum = sim.simulator.target_sum

    # control mean UMI per gene (counts recovered from the log-normalised values and the totals)
    ctrl = data.cells_of(CTRL)
    Xc = data.X[ctrl].astype(np.float64)
    counts_c = Xc.copy()
    counts_c.data = np.expm1(counts_c.data)
    counts_c = sp.diags(n_counts[ctrl] / target_sum) @ counts_c
    ctrl_umi = np.asarray(counts_c.mean(axis=0)).ravel()
    perturbed = set(data.perturbed_genes)
    genes_ok = (ctrl_umi > MIN_UMI) & ~np.isin(np.asarray(data.genes), list(perturbed))

    # Norman's scale: UMI-normalised (not logged) expression z-scored against control cells
    Xn = data.X.astype(np.float64).copy()
    Xn.data = np.expm1(Xn.data)
    means_n, _ = pseudobulk(Xn, data.cell_conditions, S.conditions)
    Xn_c = Xn[ctrl]
    sq = Xn_c.copy()
    sq.data **= 2
    sd_c = np.sqrt(np.maximum(np.asarray(sq.mean(axis=0)).ravel() - means_n[0] ** 2, 1e-12))
    z = (means_n - means_n[0]) / sd_c

    truth_delta = sim.truth_delta(S.conditions)
    row = S.row
    singles = [c for c in S.conditions if c.endswith("+ctrl")]
    doubles = [c for c in S.conditions if c != CTRL and not c.endswith("+ctrl")]
    n_de = {c: S.n_de_genes(c) for c in S.conditions if c != CTRL}
    records = []
    for dbl in doubles:
        a, b = parse_condition(dbl)
        sa, sb = f"{a}+ctrl", f"{b}+ctrl"
        if sa not in row or sb not in row:
            continue
        rec = {"preset": args.preset, "seed": args.seed, "double": dbl, "n_de_double": n_de[dbl],
               "n_de_first": n_de[sa], "n_de_second": n_de[sb],
               "included": n_de[dbl] > MIN_DE_DOUBLE}
        m = genes_ok
        obs_d = S.deltas
        for key, D in (("", obs_d), ("truth_", truth_delta), ("z_", z)):
            st = interaction_stats(D[row[sa], m], D[row[sb], m], D[row[dbl], m])
            rec.update({f"{key}{k}": v for k, v in st.items()})
        records.append(rec)
    df = pd.DataFrame(records)
    inc = df[df["included"]]

    # sklearn cross-check of the Theil-Sen implementation
    ts_check = ""
    if args.check_sklearn and len(inc):
        from sklearn.linear_model import TheilSenRegressor

        diffs = []
        for dbl in inc["double"].head(args.check_sklearn):
            a, b = parse_condition(dbl)
            X = np.stack([S.deltas[row[f"{a}+ctrl"], genes_ok], S.deltas[row[f"{b}+ctrl"], genes_ok]], 1)
            y = S.deltas[row[dbl], genes_ok]
            sk = TheilSenRegressor(fit_intercept=False, max_subpopulation=10_000, random_state=1000).fit(X, y)
            diffs.append(np.abs(sk.coef_ - theil_sen_2d(X, y)).max())
        ts_check = (f"Theil-Sen check: max |c_sklearn - c_here| = {max(diffs):.3f} over {len(diffs)} doubles "
                    "(sklearn with max_subpopulation=1e4; both are randomised estimators)")
        print(ts_check)

    X = data.X
    single_de = float(np.median([n_de[c] for c in singles]))
    double_de = float(np.median([n_de[c] for c in doubles]))
    de_target = NORMAN_SINGLE_DE * G / NORMAN_N_GENES
    truth_frac = float((inc["truth_corr_sum"] < TRUTH_INTERACTION).mean()) if len(inc) else float("nan")
    rows = []

    def add(name, value, target, ok, fmt="{:.3f}", note=""):
        rows.append({"metric": name, "value": fmt.format(value) if isinstance(value, float) else str(value),
                     "target": target, "result": ("PASS" if ok else "FAIL") if ok is not None else "info",
                     "note": note})

    for k in ("corr_sum", "corr_fit", "magnitude"):
        v = float(inc[k].median()) if len(inc) else float("nan")
        lo, hi = NORMAN_IQR[k]
        add(f"median {k} (observed)", v, f"Norman IQR {lo:.2f}-{hi:.2f} (median {NORMAN_MEDIAN[k]:.2f})",
            bool(lo <= v <= hi))
    add("median DE genes of a single", single_de,
        f"{de_target:.0f} (398 x {G}/5045), accept {de_target / 2:.0f}-{2 * de_target:.0f}",
        bool(de_target / 2 <= single_de <= 2 * de_target), fmt="{:.0f}")
    add(f"doubles with truth corr_sum < {TRUTH_INTERACTION}", truth_frac, ">= 0.25", bool(truth_frac >= 0.25))
    add("median corr_fit_ts (observed, Theil-Sen prediction)", float(inc["corr_fit_ts"].median()),
        "Norman IQR 0.82-0.91 (their corr_fit is the OLS fit)", None)
    for k in ("corr_sum", "corr_fit", "magnitude"):
        add(f"median {k} (noise-free truth)", float(inc[f"truth_{k}"].median()), "-", None)
    for k in ("corr_sum", "corr_fit", "magnitude"):
        lo, hi = NORMAN_IQR[k]
        add(f"median {k} (observed, Norman's z-scale)", float(inc[f"z_{k}"].median()),
            f"Norman IQR {lo:.2f}-{hi:.2f}", None)
    add("median DE genes of a double", double_de,
        f"Norman 10^3.0 scaled: {NORMAN_DOUBLE_DE * G / NORMAN_N_GENES:.0f}", None, fmt="{:.0f}")
    add("doubles scored / simulated", f"{len(inc)} / {len(df)}", f"> {MIN_DE_DOUBLE} DE genes", None)
    add("genes used for the fits", int(genes_ok.sum()), f"control mean UMI > {MIN_UMI}, not perturbed", None)
    add("zeros in X", float(1 - X.nnz / (X.shape[0] * X.shape[1])), "10x data: ~0.8-0.95 for HVG sets", None)
    add("UMIs per cell (mean / median)", f"{n_counts.mean():.0f} / {np.median(n_counts):.0f}", "-", None)
    add("cells (control / total)", f"{len(ctrl)} / {data.n_cells}", "Norman: ~8-10k / ~90k", None)
    if run["reused"]:
        add("simulation wall time / peak RSS", "reused folder (not timed)", "< 10 min, < 8 GB", None)
    else:
        add("simulation wall time", run["wall_s"], "norman: < 600 s", run["wall_s"] < 600 if args.preset == "norman" else None,
            fmt="{:.1f} s")
        add("simulation peak RSS", run["peak_rss_gb"], "norman: < 8 GB",
            run["peak_rss_gb"] < 8 if args.preset == "norman" else None, fmt="{:.2f} GB")
    add("summaries (pseudobulk + DE) time", t_summ, "-", None, fmt="{:.1f} s")
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))

    if not args.no_write:
        cmd = f"python benchmarks/calibrate_simulator.py --preset {args.preset} --seed {args.seed}" + "".join(
            f" --set {s}" for s in args.set)
        section = "\n".join([
            f"<!-- preset:{args.preset} -->",
            f"## Preset `{args.preset}` (seed {args.seed}, config `{sim.config_hash}`)",
            "",
            f"Command: `{cmd}` (simulation step alone: `{run['command']}`).",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
            f"{ts_check}." if ts_check else "",
            "",
            _markdown(table),
            "",
            f"<!-- /preset:{args.preset} -->",
        ])
        args.results.mkdir(parents=True, exist_ok=True)
        md_path = args.results / "simulator_calibration.md"
        old = md_path.read_text() if md_path.exists() else _MD_HEADER
        start, end = f"<!-- preset:{args.preset} -->", f"<!-- /preset:{args.preset} -->"
        if start in old and end in old:
            new = old[: old.index(start)] + section + old[old.index(end) + len(end):]
        else:
            new = old.rstrip() + "\n\n" + section + "\n"
        write_text(md_path, new)
        csv_path = args.results / "simulator_calibration.csv"
        if csv_path.exists():
            prev = pd.read_csv(csv_path)
            prev = prev[~((prev["preset"] == args.preset) & (prev["seed"] == args.seed))]
            df = pd.concat([prev, df], ignore_index=True)
        write_csv(csv_path, df.round(5), index=False)
        print(f"wrote {md_path} and {csv_path}")
    return 0 if all(table.loc[table["result"] != "info", "result"] == "PASS") else 1


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| metric | value | target | result |", "|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.metric} | {r.value} | {r.target} | {r.result} |")
    return "\n".join(lines)


_MD_HEADER = """# Simulator calibration against Norman et al. (2019)

Produced by `benchmarks/calibrate_simulator.py` (see its docstring for every definition). Norman et al.
(Science 2019) fitted each of 125 CRISPRa doubles in K562 cells as dAB ~ c1 dA + c2 dB over abundant
genes; their interquartile ranges (from `regr_fits_final.csv` of their public repository) are the
targets for the observed (noisy) statistics of the simulated doubles. DE genes: BH-adjusted t-test
p < 0.05 against control; Norman's median single has 10^2.6 = 398 DE genes, scaled here by
n_genes / 5045 (the gene count of GEARS's processed Norman data, our assumption for the
denominator). Rows marked "info" are reported, not targets. The per-double values are in
`simulator_calibration.csv`.
"""


if __name__ == "__main__":
    sys.exit(main())
