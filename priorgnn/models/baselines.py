"""Simple baselines: ``no_change``, ``mean`` and ``additive``.

Published benchmarks (Ahlmann-Eltze, Huber & Anders, Nature Methods 2025) found that no deep model
beat the additive baseline on double perturbations, so every model here is compared with these.

``no_change``
    Predicts the control mean (delta 0).
``mean``
    Predicts the mean delta of the training perturbations (singles and doubles alike).
``additive``
    A double ``A+B`` is control + δA + δB with δ the measured training deltas of the singles. A
    single measured in training is its own delta. **Fallback** (hyperparameter ``fallback``) for a
    gene whose single is not in training: ``'mean'`` (default) uses the mean single delta of the
    training singles for it; ``'zero'`` uses no change. Each prediction's ``obs['n_fallback']``
    counts the genes that fell back, and ``fit_info['fallback_counts']`` the totals of the last call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from priorgnn.data.conditions import parse_condition
from priorgnn.models.base import PerturbationModel, register_model

__all__ = ["NoChange", "MeanBaseline", "Additive", "training_singles"]


def training_singles(data, split, dtype=None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The singles measured in ``split.train``: their genes (sorted), their changes ``[n, G]`` (cast to
    ``dtype`` if given) and the mean change (zeros without singles)."""
    s = data.summaries
    singles = {parse_condition(c)[0]: c for c in split.train if len(parse_condition(c)) == 1}
    genes = sorted(singles)
    if not genes:
        return genes, np.zeros((0, data.n_genes)), np.zeros(data.n_genes)
    deltas = np.stack([s.delta(singles[g]) for g in genes])
    if dtype is not None:
        deltas = deltas.astype(dtype)
    return genes, deltas, deltas.mean(axis=0)


@register_model("no_change")
class NoChange(PerturbationModel):
    def fit(self, data, split, *, graphs=None, train=None):
        self._remember_data(data, split)
        return self

    def predict_delta(self, conditions: Sequence[str]) -> np.ndarray:
        return np.zeros((len(conditions), len(self.genes)))


@register_model("mean")
class MeanBaseline(PerturbationModel):
    def fit(self, data, split, *, graphs=None, train=None):
        self._remember_data(data, split)
        s = data.summaries
        rows = [s.row[c] for c in split.train if parse_condition(c)]
        self.mean_delta = s.deltas[rows].mean(axis=0).astype(np.float64)
        return self

    def predict_delta(self, conditions):
        return np.tile(self.mean_delta, (len(conditions), 1))

    def _state(self):
        return {"mean_delta": self.mean_delta}

    def _load_state(self, arrays, directory):
        self.mean_delta = arrays["mean_delta"]


@register_model("additive")
class Additive(PerturbationModel):
    def __init__(self, fallback: str = "mean", **kw):
        if fallback not in ("mean", "zero"):
            from priorgnn.errors import ConfigError

            raise ConfigError(f"additive: fallback must be 'mean' or 'zero', not {fallback!r}.")
        super().__init__(fallback=fallback, **kw)

    def fit(self, data, split, *, graphs=None, train=None):
        self._remember_data(data, split)
        self.single_genes, self.single_deltas, self.mean_single = training_singles(data, split, np.float64)
        return self

    def _gene_delta(self, gene: str) -> tuple[np.ndarray, bool]:
        idx = self._index.get(gene)
        if idx is not None:
            return self.single_deltas[idx], False
        return (self.mean_single if self.hparams["fallback"] == "mean" else np.zeros_like(self.mean_single)), True

    @property
    def _index(self) -> dict[str, int]:
        if getattr(self, "_index_genes", None) is not self.single_genes:
            self._index_cache = {g: i for i, g in enumerate(self.single_genes)}
            self._index_genes = self.single_genes
        return self._index_cache

    def _fallbacks(self, conditions):
        idx = self._index
        return [sum(g not in idx for g in parse_condition(c)) for c in conditions]

    def predict_delta(self, conditions):
        out = np.zeros((len(conditions), len(self.genes)))
        for i, c in enumerate(conditions):
            for g in parse_condition(c):
                out[i] += self._gene_delta(g)[0]
        n_fb = self._fallbacks(conditions)
        self.fit_info["fallback_counts"] = {
            "conditions": len(conditions),
            "conditions_with_fallback": int(sum(1 for n in n_fb if n)),
            "genes_fallen_back": int(sum(n_fb)),
        }
        return out

    def prediction_notes(self, conditions):
        return {"n_fallback": self._fallbacks(conditions)}

    def _state(self):
        return {"single_genes": np.array(self.single_genes, dtype=str),
                "single_deltas": self.single_deltas, "mean_single": self.mean_single}

    def _load_state(self, arrays, directory):
        self.single_genes = [str(g) for g in arrays["single_genes"]]
        self.single_deltas = arrays["single_deltas"]
        self.mean_single = arrays["mean_single"]
