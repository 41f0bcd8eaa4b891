"""Calibrate what priors can carry: systematic variation, co-expression density and transferable signal,
on the real Norman et al. cells and on the simulator's settings.

Three statistics, computed the same way on real and simulated cells:

* **Systematic variation** (:func:`priorgnn.metrics.diagnostics.systematic_variation`): for every single
  perturbation, the Pearson correlation of its observed change (pseudobulk mean minus the control mean, log-normalised data) with the mean change
  of all *other* perturbations (singles and doubles), over the genes other than the perturbed gene (the project's
  :func:`priorgnn.metrics.core.rowwise_pearson`); the median over singles. This is what the ``mean``
  baseline scores on a held-out single, without noise in its own estimate (Systema, Viñas Torné et al.
  2025, describe the effect for real screens).
* **Co-expression density**: the co-expression graph that ``knowledge`` builds for PriorGNN (Pearson
  over all cells, top 20 per gene, |r| > 0.4; :func:`knowledge.coexpression.build_coexpression_graph`):
  the share of genes with at least one co-expression neighbour, and the mean number of neighbours.
* **Transferable signal** (simulations only, against the noise-free truth): on the unseen singles of
  the GEARS-style simulation split (seed 1), ``pearson_delta_excl_target`` of the ``mean`` baseline,
  of ``go_knn`` (GO neighbours' measured singles) and of the ``network_knn`` oracle (true-network
  neighbours, shrunk by leave-one-out; :mod:`priorgnn.models.neighbours`). The oracle's lead over
  ``mean`` is the signal a neighbour-based prior can transfer on that data.

Real data: ``../shared/data/norman2019_subset/devel.h5ad`` (or ``--real PATH``), K562 CRISPRa cells of
Norman et al. (Science 2019) as distributed by PerturBench (``obs['dataset'] == 'norman19'``).

Usage::

    python benchmarks/calibrate_knowledge.py            # writes benchmarks/results/knowledge_calibration.{md,csv}
"""

from __future__ import annotations

import argparse
import logging
import platform
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from priorgnn.io import write_csv, write_text
from priorgnn.data.conditions import parse_condition
from priorgnn.metrics.core import keep_mask, perturbed_gene_idx, rowwise_pearson
from priorgnn.metrics.diagnostics import systematic_variation

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "norman2019_subset" / "devel.h5ad"

#: The simulator settings compared: name -> (preset, overrides). The positive control is the study's.
def _settings() -> dict[str, tuple[str, dict]]:
    from priorgnn.study import NEGATIVE_CONTROL, POSITIVE_CONTROL

    return {
        "demo (default)": ("demo", {}),
        "positive control": ("demo", dict(POSITIVE_CONTROL)),
        "negative control": ("demo", dict(NEGATIVE_CONTROL)),
    }


def coexpression_density(data) -> dict[str, float]:
    from knowledge.coexpression import build_coexpression_graph
    from priorgnn.data.splits import Split

    split = Split(kind="custom", seed=0, train=list(data.conditions), val=[], test=[], params={})
    g = build_coexpression_graph(data, split, k=20, threshold=0.4)
    src, tgt = np.asarray(g.edge_index)
    off = src != tgt
    deg = np.bincount(tgt[off], minlength=len(g.genes))
    return {"coex_genes_with_edge": float((deg > 0).mean()), "coex_mean_degree": float(deg.mean())}


def transfer(sim, split_seed: int = 1) -> dict[str, float]:
    from knowledge.cache import go_graph
    from priorgnn import experiment
    from priorgnn.data.splits import make_split
    from priorgnn.models import get_model_class
    from priorgnn.models.base import PriorGraphs

    split = make_split(sim.conditions, "simulation", seed=split_seed)
    seen = {g for c in split.train for g in parse_condition(c)}
    test = [c for c in split.test if len(parse_condition(c)) == 1 and parse_condition(c)[0] not in seen]
    truth = sim.truth_delta(test)
    mask = keep_mask(truth.shape, perturbed_gene_idx(test, sim.data.genes))
    go = go_graph(obo=sim.obo_path, gaf=sim.gaf_path, k=20, threshold=0.1)
    out: dict[str, float] = {"unseen_singles": len(test)}
    for name, opts in (("mean", {}), ("go_knn", {}), ("network_knn", {"network": str(sim.path / "network.csv")})):
        model = experiment.fit(get_model_class(name)(**opts), sim.data, split, PriorGraphs(go=go))
        # the model's own float64 changes: experiment.predict reads them back from the float32 prediction
        # AnnData, and these baselines' scores are recorded at full precision
        out[name] = float(np.mean(rowwise_pearson(model.predict_delta(test), truth, mask)))
        if name == "network_knn":
            out["network_knn_lambda"] = float(model.lam)
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="the real subset (devel.h5ad)")
    p.add_argument("--seeds", default="0,1,2", help="simulation seeds (default 0,1,2)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "calibrate-knowledge", help="simulation folder")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of every simulated row (for calibration runs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    from priorgnn.data.io import read_h5ad
    from priorgnn.simulate import simulate

    t0 = time.time()
    rows = []
    if args.real.is_file():
        real = read_h5ad(args.real, style="scperturb", control_label="control", separator="+",
                         select={"dataset": "norman19"}, name="norman2019_subset",
                         allow_unmeasured_perturbations=True)  # the subset measures 500 HVGs, not the targets
        mo = systematic_variation(real)
        rows.append({"data": "real: Norman et al. 2019 K562 (PerturBench subset)", "seed": "", "n_genes": real.n_genes,
                     "n_singles": len(mo), "mean_of_others_median": float(np.median(mo)),
                     "mean_of_others_iqr": f"{np.percentile(mo, 25):.2f}-{np.percentile(mo, 75):.2f}",
                     **coexpression_density(real)})
    else:
        print(f"real subset not found at {args.real}; simulated rows only", file=sys.stderr)
    extra = dict(kv.split("=", 1) for kv in args.set)
    for label, (preset, over) in _settings().items():
        over = {**over, **extra}
        for seed in [int(s) for s in args.seeds.split(",")]:
            slug = label.replace(" ", "_").replace("(", "").replace(")", "")
            sim = simulate(preset, seed=seed, out=args.out / f"{slug}-s{seed}", **over)
            mo = systematic_variation(sim.data)
            rows.append({"data": f"simulated: {label}", "seed": seed, "n_genes": sim.data.n_genes,
                         "n_singles": len(mo), "mean_of_others_median": float(np.median(mo)),
                         "mean_of_others_iqr": f"{np.percentile(mo, 25):.2f}-{np.percentile(mo, 75):.2f}",
                         **coexpression_density(sim.data), **transfer(sim)})
    table = pd.DataFrame(rows)
    table["git_commit"] = _git_commit()
    args.results.mkdir(parents=True, exist_ok=True)
    write_csv(args.results / "knowledge_calibration.csv", table)
    write_csv(args.results / "knowledge_calibration_summary.csv", summarise(table))
    cmd = "python benchmarks/calibrate_knowledge.py" + (f" {shlex.join(argv)}" if argv else "")
    write_text(args.results / "knowledge_calibration.md", _markdown(table, cmd, time.time() - t0))
    print(_markdown(table, cmd, time.time() - t0))
    return 0


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per data set (real) or setting (simulated, means over seeds), for the README."""
    cols = ["mean_of_others_median", "coex_genes_with_edge", "coex_mean_degree", "mean", "go_knn", "network_knn"]
    rows = []
    for label, g in table.groupby("data", sort=False):
        row = {"data": label.removeprefix("simulated: ").removeprefix("real: "), "n_seeds": int(g["seed"].astype(str).ne("").sum())}
        for c in cols:
            row[c] = float(pd.to_numeric(g[c], errors="coerce").mean()) if c in g else float("nan")
        row["oracle_minus_mean"] = row["network_knn"] - row["mean"]
        rows.append(row)
    out = pd.DataFrame(rows)
    out["git_commit"] = table["git_commit"].iloc[0]
    return out


def _fmt(v, digits=3) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def _markdown(table: pd.DataFrame, cmd: str, seconds: float) -> str:
    L = ["# What priors can carry: real cells against the simulator's settings", "",
         f"Produced by `{cmd}` in {seconds:.0f} s on {platform.machine()}, Python {platform.python_version()} "
         f"(commit {str(table['git_commit'].iloc[0])[:10]}). Definitions in the script's docstring.", "",
         "| data | seed | singles | mean of others, Pearson Δ (median; IQR) | genes with a co-expression edge | "
         "co-expression neighbours per gene | unseen singles | mean | go_knn | network_knn oracle (λ) |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        sim = "network_knn" in r and pd.notna(r.get("network_knn"))
        L.append(f"| {r['data']} | {r['seed']} | {r['n_singles']} | {r['mean_of_others_median']:.2f}; "
                 f"{r['mean_of_others_iqr']} | {r['coex_genes_with_edge']:.2f} | {r['coex_mean_degree']:.1f} | "
                 + (f"{int(r['unseen_singles'])} | {r['mean']:.3f} | {r['go_knn']:.3f} | "
                    f"{r['network_knn']:.3f} ({r['network_knn_lambda']:.2f}) |" if sim else "- | - | - | - |"))
    sims = table[table["data"].str.startswith("simulated")]
    if len(sims):
        L += ["", "## Means over seeds", "",
              "| setting | mean of others | genes with a co-expression edge | mean | go_knn | network_knn | "
              "oracle − mean |", "|---|---|---|---|---|---|---|"]
        for label, g in sims.groupby("data", sort=False):
            L.append(f"| {label.removeprefix('simulated: ')} | {g['mean_of_others_median'].mean():.2f} | "
                     f"{g['coex_genes_with_edge'].mean():.2f} | {g['mean'].mean():.3f} | {g['go_knn'].mean():.3f} | "
                     f"{g['network_knn'].mean():.3f} | {(g['network_knn'] - g['mean']).mean():+.3f} |")
    L += ["", "The `mean`, `go_knn` and `network_knn` columns are `pearson_delta_excl_target` on the unseen singles "
          "of the simulation split (seed 1) against the noise-free truth.", ""]
    return "\n".join(L)


if __name__ == "__main__":
    raise SystemExit(main())
