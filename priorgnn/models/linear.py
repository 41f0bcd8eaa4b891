"""Linear baselines: ``linear`` and ``linear_go`` (Ahlmann-Eltze, Huber & Anders, Nature Methods
2025), and ``go_knn``.

``linear``
    Ahlmann-Eltze et al.'s linear model ``Y ≈ G W Pᵀ + b``. ``Y`` is the training pseudobulk
    (genes × training perturbations), ``b`` its row means, ``G`` (genes × K) the top-K principal
    component scores of ``Y − b`` (genes as observations), and ``P`` (perturbations × K) the
    perturbation embeddings, taken from the same PCA: a perturbed gene ``j`` is ``G[j]``, a double
    the sum of its two genes' rows. ``W`` is the ridge solution
    ``W = (GᵀG + λI)⁻¹ Gᵀ (Y − b) P (PᵀP + λI)⁻¹`` with λ = 0.1 and K = 10 by default. A prediction
    for a perturbation ``p`` is ``G W pᵀ + b`` (so a double adds its genes' terms, with ``b`` once).
    A gene that is not measured has no PCA row: its embedding is zero (prediction ``b``), which is
    counted in ``obs['n_fallback']``.
``linear_go``
    The explicit-prior variant: genes perturbed in training keep their PCA rows; any other gene's
    embedding is the GO-similarity-weighted mean of the PCA rows of its GO neighbours that were
    perturbed in training (falling back to its own PCA row when it has no such neighbour).
``go_knn``
    An unseen gene's effect is the GO-similarity-weighted average of the measured effects of its GO
    neighbours with a training single; a gene measured in training keeps its own effect; doubles use
    the additive rule on those. A gene with no measured neighbour falls back to the mean training
    single (counted in ``obs['n_fallback']``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from priorgnn.data.conditions import parse_condition
from priorgnn.errors import ConfigError, GraphError
from priorgnn.models.base import PerturbationModel, register_model
from priorgnn.models.baselines import training_singles

log = logging.getLogger(__name__)

__all__ = ["Linear", "LinearGO", "GoKNN", "ridge_bilinear"]


def ridge_bilinear(G: np.ndarray, Y: np.ndarray, P: np.ndarray, lam: float) -> np.ndarray:
    """Closed-form ``W = argmin ||Y − G W Pᵀ||² + λ||W||²`` in the separable form used by
    Ahlmann-Eltze et al.: ``(GᵀG + λI)⁻¹ Gᵀ Y P (PᵀP + λI)⁻¹``."""
    K1, K2 = G.shape[1], P.shape[1]
    left = np.linalg.solve(G.T @ G + lam * np.eye(K1), G.T @ Y)
    return np.linalg.solve(P.T @ P + lam * np.eye(K2), (left @ P).T).T


class _GONeighbours:
    """Weighted GO neighbours of a gene among an allowed set (self-loops excluded)."""

    def __init__(self, graph, allowed: Sequence[str]) -> None:
        self.graph = graph
        self.index = graph.gene_index
        self.allowed = np.isin(np.asarray(graph.genes, dtype=object), list(allowed))
        self.adj = graph.to_scipy()  # A[target, source]

    def __call__(self, gene: str) -> tuple[list[str], np.ndarray]:
        i = self.index.get(gene)
        if i is None:
            return [], np.zeros(0)
        row = self.adj.getrow(i)
        keep = (row.indices != i) & self.allowed[row.indices]
        return [self.graph.genes[j] for j in row.indices[keep]], row.data[keep].astype(np.float64)


@register_model("linear")
class Linear(PerturbationModel):
    """Ahlmann-Eltze et al.'s linear model (see the module docstring)."""

    use_go_for_unseen = False

    def __init__(self, n_components: int = 10, ridge: float = 0.1, **kw) -> None:
        if n_components < 1 or ridge < 0:
            raise ConfigError("linear: n_components must be >= 1 and ridge >= 0.")
        super().__init__(n_components=n_components, ridge=ridge, **kw)

    def fit(self, data, split, *, graphs=None, train=None):
        self._remember_data(data, split)
        s = data.summaries
        train_perts = [c for c in split.train if parse_condition(c)]
        Y = np.stack([s.mean(c) for c in train_perts], axis=1)  # genes x perturbations
        self.b = Y.mean(axis=1)
        Yc = Y - self.b[:, None]
        K = min(self.hparams["n_components"], min(Yc.shape))
        U, S, _ = np.linalg.svd(Yc, full_matrices=False)
        self.G = U[:, :K] * S[:K]  # gene scores of the top-K components
        self.gene_row = {g: i for i, g in enumerate(self.genes)}
        self.embedding: dict[str, np.ndarray] = {}
        self.trained_genes = sorted({g for c in train_perts for g in parse_condition(c)})
        self._trained = set(self.trained_genes)
        P = np.stack([self._embed_condition(c)[0] for c in train_perts])
        self.W = ridge_bilinear(self.G, Yc, P, self.hparams["ridge"])
        if self.use_go_for_unseen:
            self._fit_go(graphs)
        return self

    def _fit_go(self, graphs) -> None:
        if graphs is None or graphs.go is None:
            raise GraphError("linear_go needs a GO graph; build one or use the plain 'linear' model.")
        self.go = graphs.go
        self._neighbours = _GONeighbours(self.go, self.trained_genes)

    def _gene_embedding(self, gene: str) -> tuple[np.ndarray, bool]:
        """(embedding, fell_back)."""
        if self.use_go_for_unseen and gene not in self._trained:
            names, w = self._neighbours(gene)
            rows = [self.gene_row[g] for g in names if g in self.gene_row]
            if rows:
                w = np.array([x for g, x in zip(names, w) if g in self.gene_row])
                return (w[:, None] * self.G[rows]).sum(0) / w.sum(), False
        if gene in self.gene_row:
            return self.G[self.gene_row[gene]], False
        return np.zeros(self.G.shape[1]), True

    def _embed_condition(self, condition: str) -> tuple[np.ndarray, int]:
        vecs = [self._gene_embedding(g) for g in parse_condition(condition)]
        emb = np.sum([v for v, _ in vecs], axis=0) if vecs else np.zeros(self.G.shape[1])
        return emb, sum(fb for _, fb in vecs)

    def predict_delta(self, conditions):
        P = np.stack([self._embed_condition(c)[0] for c in conditions]) if conditions else np.zeros((0, self.G.shape[1]))
        pred = (self.G @ self.W @ P.T).T + self.b[None, :]
        delta = pred - self.control_mean[None, :]
        for i, c in enumerate(conditions):
            if not parse_condition(c):
                delta[i] = 0.0
        return delta

    def prediction_notes(self, conditions):
        return {"n_fallback": [self._embed_condition(c)[1] for c in conditions]}

    def _state(self):
        return {"G": self.G, "W": self.W, "b": self.b, "trained_genes": np.array(self.trained_genes, dtype=str)}

    def _load_state(self, arrays, directory):
        self.G, self.W, self.b = arrays["G"], arrays["W"], arrays["b"]
        self.trained_genes = [str(g) for g in arrays["trained_genes"]]
        self._trained = set(self.trained_genes)
        self.gene_row = {g: i for i, g in enumerate(self.genes)}
        if self.use_go_for_unseen:
            from knowledge.graph import GeneGraph
            from priorgnn.models.base import PriorGraphs

            self._fit_go(PriorGraphs(go=GeneGraph.load(directory / "go.npz")))

    def save(self, directory):
        directory = super().save(directory)
        if self.use_go_for_unseen:
            self.go.save(directory / "go.npz")
        return directory


@register_model("linear_go")
class LinearGO(Linear):
    """``linear`` with GO-neighbour embeddings for genes not perturbed in training."""

    use_go_for_unseen = True
    uses_priors = ("go",)


@register_model("go_knn")
class GoKNN(PerturbationModel):
    """GO-neighbour average of measured single effects (see the module docstring)."""

    uses_priors = ("go",)

    def fit(self, data, split, *, graphs=None, train=None):
        if graphs is None or graphs.go is None:
            raise GraphError("go_knn needs a GO graph (--go auto with annotations, or a saved graph).")
        self._remember_data(data, split)
        self.single_genes, self.single_deltas, self.mean_single = training_singles(data, split)
        self._set_go(graphs.go)
        return self

    def _set_go(self, graph) -> None:
        self.go = graph
        self._idx = {g: i for i, g in enumerate(self.single_genes)}
        self._neighbours = _GONeighbours(graph, self.single_genes)

    def _gene_effect(self, gene: str) -> tuple[np.ndarray, bool]:
        if gene in self._idx:
            return self.single_deltas[self._idx[gene]], False
        names, w = self._neighbours(gene)
        if not names:
            return self.mean_single, True
        eff = self.single_deltas[[self._idx[g] for g in names]]
        return (w[:, None] * eff).sum(0) / w.sum(), False

    def predict_delta(self, conditions):
        out = np.zeros((len(conditions), len(self.genes)))
        for i, c in enumerate(conditions):
            for g in parse_condition(c):
                out[i] += self._gene_effect(g)[0]
        return out

    def prediction_notes(self, conditions):
        return {"n_fallback": [sum(self._gene_effect(g)[1] for g in parse_condition(c)) for c in conditions]}

    def _state(self):
        return {"single_genes": np.array(self.single_genes, dtype=str), "single_deltas": self.single_deltas,
                "mean_single": self.mean_single}

    def _load_state(self, arrays, directory):
        from knowledge.graph import GeneGraph

        self.single_genes = [str(g) for g in arrays["single_genes"]]
        self.single_deltas, self.mean_single = arrays["single_deltas"], arrays["mean_single"]
        self._set_go(GeneGraph.load(directory / "go.npz"))

    def save(self, directory):
        directory = super().save(directory)
        self.go.save(directory / "go.npz")
        return directory
