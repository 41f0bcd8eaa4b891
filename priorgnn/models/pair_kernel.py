"""The non-additive part of a double learned from the training doubles of similar pairs.

A pair kernel regression on top of a backbone of doubles (PriorGNN's ``pair_kernel``). Each training
double of two measured singles leaves a residual beyond its backbone, ``R_j = δ_j − backbone_j`` (a
vector over genes). A new pair ``(A, B)`` of measured singles gets

    Σ_j K((A, B), (C_j, D_j)) α_j,       α = (K + λ I)⁻¹ R,

kernel ridge regression over pairs with the symmetric tensor-product pair kernel of Ben-Hur & Noble
(Bioinformatics 2005, "Kernel methods for predicting protein-protein interactions"),

    K((A, B), (C, D)) = k(A, C) k(B, D) + k(A, D) k(B, C),

and a gene kernel ``k(A, C) = exp(γ (cos(δA, δC) − 1))`` on the measured singles' profiles (their own
perturbed genes left out). Two pairs are alike when their singles are alike, in either order, so a test
pair inherits the interaction of training pairs that perturb the same programs. ``γ`` (the kernel's
width) and ``λ`` (relative to the mean diagonal of ``K``) are chosen by leave-one-double-out error over
the training doubles (closed form for kernel ridge: the held-out residual is ``(R − H R)_j / (1 − H_jj)``
with ``H = K (K + λ I)⁻¹``), with "off" (no residual) as a candidate: the correction is kept only
where it predicts held-out training doubles better than the backbone alone.

Written here with numpy rather than a library's kernel ridge because the pair kernel, the closed-form
leave-one-out error over a mask of genes and the "off" candidate are a few lines each, and none of the
project's dependencies provides them together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["GAMMAS", "RIDGES", "MIN_DOUBLES", "PAIR_SHRINK", "check_shrink", "gene_kernel", "pair_kernel",
           "fit_pair_kernel", "fit_on_training_doubles"]

#: the gene kernel's widths ``γ`` tried by leave-one-double-out
GAMMAS = (0.5, 1.0, 3.0)
#: the ridges ``λ`` tried (relative to the mean diagonal of the pair kernel)
RIDGES = (0.1, 0.3, 1.0, 3.0)
#: training doubles of measured singles needed before the correction is considered
MIN_DOUBLES = 10
#: the default shrinkage of a double's backbone toward the sum of its measured singles (``s`` of
#: ``additive + s·(backbone − additive)``; ``benchmarks/results/pair_shrinkage.md``)
PAIR_SHRINK = 0.5


def check_shrink(model: str, key: str, value) -> float:
    """``value`` as a shrinkage factor in [0, 1], or a :class:`~priorgnn.errors.ConfigError` naming it."""
    from priorgnn.errors import ConfigError

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{model}: {key} must be a number from 0 (the sum of the two singles) to 1 (the "
                          f"backbone as fitted), not {value!r}.")
    return float(value)


def gene_kernel(singles: np.ndarray, gamma: float, own: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """``[S, S]``: ``exp(γ (cos(δ_i, δ_j) − 1))`` between the ``[S, G]`` single profiles, with every
    single's own perturbed genes (``own[i]``, gene columns) left out of all the profiles, so that the
    large change of a perturbed gene itself does not dilute the similarity of the rest. A zero profile
    has cosine 0 with every other."""
    return np.exp(gamma * (_cosine(singles, own) - 1.0))


def _cosine(singles: np.ndarray, own: Sequence[Sequence[int]] | None) -> np.ndarray:
    """``[S, S]`` cosine similarity of the single profiles without their own genes (see :func:`gene_kernel`)."""
    x = np.array(singles, dtype=np.float64)
    if own is not None:
        cols = sorted({int(g) for row in own for g in row if g is not None and int(g) >= 0})
        x[:, cols] = 0.0
    norm = np.linalg.norm(x, axis=1)
    x = np.divide(x, norm[:, None], out=np.zeros_like(x), where=norm[:, None] > 0)
    cos = np.clip(x @ x.T, -1.0, 1.0)
    np.fill_diagonal(cos, np.where(norm > 0, 1.0, 0.0))
    return cos


def pair_kernel(kg: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """``[n, m]``: the symmetric tensor-product kernel between the ``[n, 2]`` pairs ``rows_a`` and the
    ``[m, 2]`` pairs ``rows_b`` (rows of the gene kernel ``kg``)."""
    a, b = np.asarray(rows_a, dtype=np.int64).reshape(-1, 2), np.asarray(rows_b, dtype=np.int64).reshape(-1, 2)
    return (kg[np.ix_(a[:, 0], b[:, 0])] * kg[np.ix_(a[:, 1], b[:, 1])]
            + kg[np.ix_(a[:, 0], b[:, 1])] * kg[np.ix_(a[:, 1], b[:, 0])])


def fit_pair_kernel(singles: np.ndarray, pairs: np.ndarray, residual: np.ndarray, focus: np.ndarray, *,
                    own: Sequence[Sequence[int]] | None = None, gammas: Sequence[float] = GAMMAS,
                    ridges: Sequence[float] = RIDGES, min_doubles: int = MIN_DOUBLES) -> dict:
    """Choose and fit the pair kernel correction (see the module docstring).

    Parameters
    ----------
    singles
        ``[S, G]`` measured single profiles.
    pairs
        ``[D, 2]`` rows of ``singles`` of each training double's two genes.
    residual
        ``[D, G]`` each training double's change beyond its backbone (set it to 0 on the pair's own
        perturbed genes: the correction leaves them alone).
    focus
        ``[D, G]`` boolean: the genes whose held-out error chooses the candidate (e.g. each double's
        top-20 DE genes other than its own).
    own
        Per single, its own perturbed gene columns (left out of the gene kernel).

    Returns
    -------
    ``{"kept": bool, "gamma", "ridge", "alpha" ([D, G], or None), "gene_kernel" (the chosen ``[S, S]``
    :func:`gene_kernel`, or None), "loo_error": {"off": e, "γ=…, λ=…": e}, "n_doubles": D}``; ``kept`` is
    False (and ``alpha`` None) with fewer than ``min_doubles`` doubles or when no candidate's
    leave-one-double-out error is below "off"'s.
    """
    singles = np.asarray(singles, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    residual = np.asarray(residual, dtype=np.float64)
    focus = np.asarray(focus, dtype=bool)
    n = len(pairs)
    if residual.shape != (n, singles.shape[1]) or focus.shape != residual.shape:
        raise ValueError(f"fit_pair_kernel: {n} pairs, residual {residual.shape}, focus {focus.shape}, "
                         f"singles {singles.shape}")
    off = float(np.sum(residual[focus] ** 2))
    out: dict = {"kept": False, "gamma": None, "ridge": None, "alpha": None, "gene_kernel": None,
                 "loo_error": {"off": off}, "n_doubles": n}
    if n < min_doubles:
        out["reason"] = f"fewer than {min_doubles} training doubles of measured singles"
        return out
    best = (off, None, None)
    cos = _cosine(singles, own)  # once; each width is exp(γ (cos − 1))
    kernels = {}
    for gamma in gammas:
        kg = np.exp(gamma * (cos - 1.0))
        k = pair_kernel(kg, pairs, pairs)
        kernels[gamma] = (kg, k)
        scale = float(np.trace(k)) / n
        for ridge in ridges:
            h = k @ np.linalg.inv(k + ridge * scale * np.eye(n))
            loo = (residual - h @ residual) / (1.0 - np.diag(h))[:, None]
            err = float(np.sum(loo[focus] ** 2))
            out["loo_error"][f"gamma={gamma:g}, ridge={ridge:g}"] = err
            if err < best[0]:
                best = (err, gamma, ridge)
    if best[1] is None:
        out["reason"] = "no kernel predicts the held-out training doubles better than the backbone alone"
        return out
    _, gamma, ridge = best
    kg, k = kernels[gamma]
    alpha = np.linalg.solve(k + ridge * float(np.trace(k)) / n * np.eye(n), residual)
    out.update(kept=True, gamma=float(gamma), ridge=float(ridge), alpha=alpha, gene_kernel=kg)
    return out


def fit_on_training_doubles(data, split, singles: np.ndarray, single_genes: Sequence[str], genes: Sequence[str],
                            predict: Callable[[list[str]], np.ndarray]) -> tuple[dict, np.ndarray]:
    """Fit the correction on what ``predict`` (a model without it) leaves in the training doubles of two
    measured singles, as PriorGNN and the ``pair_kernel`` baseline do.

    ``singles`` ``[S, G]`` are the measured training singles of ``single_genes``; the residuals are set to
    0 on each double's own perturbed genes, and the leave-one-double-out error is taken over every other
    gene. Returns ``(fit, pairs)``: :func:`fit_pair_kernel`'s result (with the chosen gene kernel) and the
    ``[D, 2]`` rows of the training doubles' singles.
    """
    from priorgnn.data.conditions import parse_condition
    from priorgnn.metrics.core import perturbed_gene_idx

    row = {g: i for i, g in enumerate(single_genes)}
    doubles = [c for c in split.train if len(g := parse_condition(c)) == 2 and all(x in row for x in g)]
    own = perturbed_gene_idx([f"{g}+ctrl" for g in single_genes], list(genes))
    pairs = np.array([[row[g] for g in parse_condition(c)] for c in doubles], dtype=np.int64).reshape(-1, 2)
    residual = np.zeros((len(doubles), len(genes)))
    focus = np.ones_like(residual, dtype=bool)
    if doubles:
        s = data.summaries
        residual = np.stack([s.delta(c) for c in doubles]).astype(np.float64) - predict(doubles)
        for j, targets in enumerate(perturbed_gene_idx(doubles, list(genes))):
            residual[j, targets] = 0.0
            focus[j, targets] = False
    return fit_pair_kernel(singles, pairs, residual, focus, own=own), pairs
