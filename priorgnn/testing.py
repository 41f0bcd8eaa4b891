"""Small synthetic perturbation data for tests and the robustness benchmark (not the simulator:
independent and hand-checkable)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from priorgnn.data.conditions import make_condition

__all__ = ["synth_counts", "synth_lognorm", "lognorm_h5ad", "ring_graph", "small_prior_data"]


def synth_counts(
    n_genes: int = 30,
    singles: tuple[str, ...] = ("G0", "G1", "G2", "G3", "G4", "G5"),
    doubles: tuple[tuple[str, str], ...] = (("G0", "G1"), ("G2", "G3"), ("G0", "G4"), ("G1", "G5")),
    cells: int = 40,
    ctrl_cells: int = 120,
    seed: int = 0,
    effect: float = 3.0,
    shared_gene: int | None = None,
) -> ad.AnnData:
    """Poisson counts. Perturbing gene ``Gk`` multiplies gene ``k`` by ``effect`` and gene ``k+10`` by
    ``1/effect``; a double multiplies both genes' effects (additive in log space before noise).
    ``shared_gene``: every perturbation also multiplies that gene by 4 (a systematic response)."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    base = rng.uniform(2, 20, n_genes)
    conds = ["ctrl"] * ctrl_cells
    rates = [np.tile(base, (ctrl_cells, 1))]
    for combo in [(s,) for s in singles] + list(doubles):
        r = base.copy()
        for g in combo:
            k = int(g[1:])
            r[k] *= effect
            r[(k + 10) % n_genes] /= effect
        if shared_gene is not None:
            r[shared_gene] *= 4
        rates.append(np.tile(r, (cells, 1)))
        conds += [make_condition(combo)] * cells
    lam = np.vstack(rates)
    X = rng.poisson(lam).astype(np.float32)
    obs = pd.DataFrame({"condition": conds}, index=[f"cell{i}" for i in range(len(conds))])
    return ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame({"gene_name": genes}, index=genes))


def synth_lognorm(**kw) -> ad.AnnData:
    import scanpy as sc

    a = synth_counts(**kw)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    a.uns.pop("log1p", None)
    return a


def lognorm_h5ad(tmp_path_factory, name: str, **kw):
    """``(AnnData, path)``: :func:`synth_lognorm` written to a fresh ``.h5ad``."""
    a = synth_lognorm(**kw)
    path = tmp_path_factory.mktemp(name) / "data.h5ad"
    a.write_h5ad(path)
    return a, path


def ring_graph(genes, offset: int = 1):
    """A ring over ``genes`` (each gene linked to the one ``offset`` further, both ways, weight 0.5)
    plus self-loops of weight 1: a small prior graph for model tests."""
    from knowledge.graph import GeneGraph

    n = len(genes)
    src = np.arange(n)
    dst = (src + offset) % n
    ei = np.stack([np.r_[src, dst, src], np.r_[dst, src, src]])
    w = np.r_[np.full(2 * n, 0.5), np.ones(n)]
    return GeneGraph(list(genes), ei, w, {"kind": "test-ring"})


def small_prior_data():
    """``(data, split, graphs)``: 40 synthetic genes, a combo split and two ring graphs as priors."""
    from priorgnn.data import from_anndata, make_split
    from priorgnn.models import PriorGraphs

    a = synth_lognorm(n_genes=40, cells=50, ctrl_cells=150)
    data = from_anndata(a, name="synth")
    split = make_split(data.conditions, "combo", seed=0, test_frac=0.5, val_frac=0.34)
    graphs = PriorGraphs(go=ring_graph(data.genes, 3), coexpression=ring_graph(data.genes, 1))
    return data, split, graphs
