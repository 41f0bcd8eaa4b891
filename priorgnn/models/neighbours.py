"""Transfer of measured single effects to unseen genes through a similarity graph, with shrinkage.

An unseen gene's change is predicted as the mean training single plus ``λ`` times the
similarity-weighted mean of its neighbours' *deviations* from that mean:

    δ̂_u = m + λ · Σ_j s_uj d_j / Σ_j |s_uj|,   d_j = δ_j − m,

with ``j`` over the training singles. Two uses share this arithmetic:

* the ``network_knn`` oracle (:class:`NetworkKNN`): ``s`` is the similarity of two regulators in the
  simulator's *true* network (cosine similarity of their signed direct-target vectors). Its score on
  unseen singles, above the ``mean`` baseline's, measures how much signal a neighbour-based prior can
  transfer on that data at all;
* PriorGNN's propagation pathway (``knowledge='propagate'``): ``s`` is the GO graph.

**Shrinkage.** ``λ`` is chosen by leave-one-out over the training singles: each training single ``i``
is predicted from the others (mean and neighbours without ``i``), and ``λ`` minimises the summed
squared error, a closed form, clipped to ``[0, 1]``. With ``λ = 1`` the neighbours' own noise and a
large common component of all responses can push the transfer below the mean baseline; with no
useful similarity the fitted ``λ`` goes to 0 and the prediction is the mean.
PriorGNN's default (``prop_shrink='degree'``) lets ``λ`` grow with a gene's total neighbour weight instead
(:func:`loo_fit_degree`, ``λ_u = min(1, a s_u / (s_u + κ))``, ``a`` and ``κ`` by the same
leave-one-out): a mean over many close neighbours carries less noise than one distant neighbour.
The oracle keeps the one ``λ``, as its definition asks.

**Targets.** A perturbed gene's own change (CRISPRa's large fold) says nothing about another gene's
perturbation, so each training single's own target is removed from its deviation (set to 0) before
it is transferred, and from the leave-one-out fit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from priorgnn.data.conditions import parse_condition
from priorgnn.errors import ConfigError, DataValidationError
from priorgnn.models.base import PerturbationModel, register_model
from priorgnn.models.baselines import training_singles

log = logging.getLogger(__name__)

__all__ = ["signed_target_similarity", "neighbour_average", "loo_fit", "loo_shrinkage", "loo_fit_degree",
           "loo_fit_degree_powers", "fit_shrinkage", "powered", "degree_factors", "KAPPA_MULTIPLES", "POWERS",
           "SHRINKS", "walk_weights", "nearest_walk_weights", "transfer_deviations", "NetworkKNN"]


def signed_target_similarity(network: pd.DataFrame, genes: Sequence[str]) -> np.ndarray:
    """``[len(genes), len(genes)]`` cosine similarity of the genes' signed direct-target vectors
    (``+1`` activated, ``-1`` repressed target) in ``network`` (columns ``regulator, target, sign``).
    Shared targets moved the same way count for, the other way against; a gene without targets has
    similarity 0 with every gene. The diagonal is 0 (a gene is not its own neighbour)."""
    for col in ("regulator", "target", "sign"):
        if col not in network:
            raise DataValidationError(f"the network table has no {col!r} column; it needs regulator, "
                                      "target and sign (the simulator's network.csv has them).")
    genes = list(map(str, genes))
    row = {g: i for i, g in enumerate(genes)}
    net = network[network["regulator"].astype(str).isin(row)]
    targets = sorted(set(map(str, net["target"])))
    col = {t: j for j, t in enumerate(targets)}
    M = np.zeros((len(genes), len(targets)))
    for r, t, s in zip(net["regulator"].astype(str), net["target"].astype(str), net["sign"]):
        M[row[r], col[t]] = float(np.sign(s))
    norm = np.linalg.norm(M, axis=1)
    norm[norm == 0] = 1.0
    U = M / norm[:, None]
    S = U @ U.T
    np.fill_diagonal(S, 0.0)
    return S


def neighbour_average(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``Σ_j w_ij v_j / Σ_j |w_ij|`` per row ``i``; 0 for a row without any weight."""
    weights = np.asarray(weights, dtype=np.float64)
    total = np.abs(weights).sum(axis=1, keepdims=True)
    out = weights @ np.asarray(values, dtype=np.float64)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def _masked_deviations(deltas: np.ndarray, centre: np.ndarray, target_cols: Sequence[int | None]) -> np.ndarray:
    dev = deltas - centre
    for i, t in enumerate(target_cols):
        if t is not None and t >= 0:
            dev[i, t] = 0.0
    return dev


def _loo_terms(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None]):
    """The leave-one-out terms of the transfer over ``n`` training singles: ``(base, dr, rr, total)``
    with ``base = Σ_i ‖d_i‖²`` and, per single ``i``, ``dr_i = ⟨d_i, r_i⟩``, ``rr_i = ‖r_i‖²`` and
    ``total_i = Σ_{j≠i} |w_ij|`` (0 for a single without a neighbour, whose ``r_i`` is 0); ``d_i`` and
    ``r_i`` as in :func:`loo_fit`."""
    deltas = np.asarray(deltas, dtype=np.float64)
    n = deltas.shape[0]
    W = np.array(weights, dtype=np.float64)
    np.fill_diagonal(W, 0.0)
    total_all = deltas.sum(axis=0)
    dr, rr, tot = np.zeros(n), np.zeros(n), np.abs(W).sum(axis=1)
    base = 0.0
    for i in range(n):
        m_i = (total_all - deltas[i]) / (n - 1)
        d = deltas[i] - m_i
        t = target_cols[i]
        if t is not None and t >= 0:
            d = d.copy()
            d[t] = 0.0  # the single's own target is judged by target metrics, not by the transfer
        base += float(d @ d)
        if not tot[i]:
            continue
        dev = _masked_deviations(deltas, m_i, target_cols)
        r = neighbour_average(W[i:i + 1], dev)[0]
        if t is not None and t >= 0:
            r[t] = 0.0
        dr[i], rr[i] = float(d @ r), float(r @ r)
    return base, dr, rr, tot


def loo_fit(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None]) -> tuple[float, float]:
    """Leave-one-out ``(λ, error)`` for :func:`transfer_deviations` over ``n`` training singles.

    ``weights`` ``[n, n]`` (diagonal ignored), ``deltas`` ``[n, G]``, ``target_cols[i]`` the column of
    single ``i``'s own perturbed gene (``None`` if not measured). For each ``i``, with ``m_i`` the mean
    of the other singles, ``d_i = δ_i − m_i`` and ``r_i`` the weighted mean over ``j ≠ i`` of
    ``δ_j − m_i`` (targets masked), ``λ = Σ_i ⟨d_i, r_i⟩ / Σ_i ‖r_i‖²`` (the least-squares fit of
    ``d ≈ λ r``), clipped to ``[0, 1]``; 0 when fewer than 3 singles or no single has a neighbour.
    ``error`` is the summed squared leave-one-out error ``Σ_i ‖d_i − λ r_i‖²`` over every single
    (``r_i = 0`` for a single without a neighbour, and the single's own target left out), so errors
    of different weight matrices over the same singles compare directly."""
    if np.asarray(deltas).shape[0] < 3:
        return 0.0, float("nan")
    base, dr, rr, _ = _loo_terms(weights, deltas, target_cols)
    num, den = sum(dr.tolist()), sum(rr.tolist())  # summed in order, as single floats were before
    lam = float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0
    return lam, base - 2 * lam * num + lam * lam * den


def loo_shrinkage(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None]) -> float:
    """The ``λ`` of :func:`loo_fit`."""
    return loo_fit(weights, deltas, target_cols)[0]


#: the multiples of the training singles' median neighbour weight tried as ``κ`` by :func:`loo_fit_degree`
#: (0: one ``λ`` for every gene, the fit of :func:`loo_fit` except that ``a`` may exceed 1)
KAPPA_MULTIPLES = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def degree_factors(total: np.ndarray, a: float, kappa: float) -> np.ndarray:
    """Per-gene shrinkage ``λ_u = min(1, a · s_u / (s_u + κ))`` for total neighbour weights ``s_u``
    (0 for a gene without a neighbour)."""
    total = np.asarray(total, dtype=np.float64)
    frac = np.divide(total, total + kappa, out=np.zeros_like(total), where=total > 0)
    return np.minimum(1.0, a * frac)


def loo_fit_degree(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None],
                   kappa_multiples: Sequence[float] = KAPPA_MULTIPLES) -> tuple[float, float, float]:
    """Leave-one-out ``(a, κ, error)`` of a shrinkage that trusts a gene's neighbours by how much
    neighbour weight it has: ``λ_u = min(1, a · s_u / (s_u + κ))``, ``s_u = Σ_j |w_uj|``.

    The neighbours' mean deviation ``r_u`` is a mean of noisy measured singles; the more (and the more
    similar) neighbours it averages, the less noise it carries, so a gene with many close neighbours
    earns a larger ``λ_u`` than a gene with one distant one. This is the empirical-Bayes reading of
    the transfer (a posterior mean whose prior weight grows with the evidence); :func:`loo_fit` is its
    ``κ = 0`` case with one ``λ`` for all. For each ``κ`` (a multiple of the median ``s_i`` over the
    training singles that have a neighbour) ``a`` is the closed-form least-squares fit of
    ``d_i ≈ a f_i r_i`` over the training singles (``f_i = s_i / (s_i + κ)``, leave-one-out terms as
    in :func:`loo_fit`), clipped at 0; the error is that of the capped ``λ_i = min(1, a f_i)``. The
    ``κ`` with the lowest error wins (ties: the smaller). Errors compare with :func:`loo_fit`'s.
    ``(0, 0, nan)`` with fewer than 3 singles."""
    if np.asarray(deltas).shape[0] < 3:
        return 0.0, 0.0, float("nan")
    base, dr, rr, tot = _loo_terms(weights, deltas, target_cols)
    has = tot > 0
    if not has.any():
        return 0.0, 0.0, base
    scale = float(np.median(tot[has]))
    best = None
    for mult in kappa_multiples:
        kappa = float(mult) * scale
        f = degree_factors(tot, 1.0, kappa)
        den = float(f @ (f * rr))
        a = max(0.0, float(f @ dr) / den) if den > 0 else 0.0
        lam = degree_factors(tot, a, kappa)
        err = base - 2 * float(lam @ dr) + float((lam * lam) @ rr)
        if best is None or err < best[2] - 1e-12 * abs(base):
            best = (a, kappa, err)
    return best


def powered(weights: np.ndarray, power: float) -> np.ndarray:
    """``sign(w) |w|^power``: a sharper similarity kernel for ``power > 1`` (the closest neighbours
    count more); the weights themselves for ``power = 1``."""
    weights = np.asarray(weights, dtype=np.float64)
    return weights if power == 1.0 else np.sign(weights) * np.abs(weights) ** power


#: the powers of the similarity weights tried with :func:`loo_fit_degree` (PriorGNN's default shrinkage)
POWERS = (1.0, 2.0)


def loo_fit_degree_powers(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None],
                          powers: Sequence[float] = POWERS) -> tuple[float, float, float, float]:
    """``(a, κ, power, error)``: :func:`loo_fit_degree` over the weights raised to each power
    (:func:`powered`), the lowest leave-one-out error winning (ties: the smaller power)."""
    best = None
    for power in powers:
        a, kappa, err = loo_fit_degree(powered(weights, power), deltas, target_cols)
        if best is None or (np.isfinite(err) and (not np.isfinite(best[3]) or err < best[3])):
            best = (a, kappa, float(power), err)
    return best


#: the shrinkage rules of the transfer: one ``λ`` (:func:`loo_fit`) or per gene (:func:`loo_fit_degree_powers`)
SHRINKS = ("global", "degree")


def fit_shrinkage(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None],
                  shrink: str) -> tuple[float, float, float, float]:
    """``(a, κ, power, error)`` of the transfer's shrinkage by leave-one-out: ``shrink='degree'`` by
    :func:`loo_fit_degree_powers`; ``'global'`` one ``λ`` by :func:`loo_fit`, i.e. ``(λ, 0, 1, error)``.
    Either way a gene's factor is :func:`degree_factors` ``(s_u, a, κ)`` over the weights to ``power``
    (with ``κ = 0`` and ``a = λ ≤ 1`` that is ``λ`` for every gene with a neighbour)."""
    if shrink == "degree":
        return loo_fit_degree_powers(weights, deltas, target_cols)
    lam, err = loo_fit(weights, deltas, target_cols)
    return lam, 0.0, 1.0, err


def walk_weights(adjacency, cols: Sequence[int], hops: int, *, exclude_own: bool = False) -> list[np.ndarray]:
    """Random-walk weights from every node to the nodes ``cols``, for 1 to ``hops`` steps.

    ``adjacency`` is a sparse ``[N, N]`` matrix, ``adjacency[u, v] > 0`` when ``v`` is one of ``u``'s
    neighbours (the GO graph: ``v`` among ``u``'s most similar genes). With ``P`` its row-normalised
    transition matrix, element ``k − 1`` of the result is ``Σ_{h=1..k} (P^h)[:, cols]`` (``[N, len(cols)]``):
    the chance of a walk from ``u`` being at each column's node within ``k`` steps, summed over steps.
    Near neighbours dominate where they exist; farther ones give a gene without a near measured
    neighbour a (weaker, row-normalised later) neighbourhood. Computed as ``hops`` sparse-dense
    products (``O(hops · nnz · len(cols))``), never a dense ``N × N`` power. ``exclude_own``: a walk
    back to a column's own node does not count (set to 0), so that leave-one-out sees the others."""
    import scipy.sparse as sp

    A = sp.csr_matrix(adjacency, dtype=np.float64)
    deg = np.asarray(np.abs(A).sum(axis=1)).ravel()
    P = sp.diags(np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)) @ A
    cols = np.asarray(cols, dtype=np.int64)
    X = np.zeros((A.shape[0], len(cols)))
    X[cols, np.arange(len(cols))] = 1.0
    out, acc = [], np.zeros_like(X)
    for _ in range(hops):
        X = P @ X
        acc = acc + X
        out.append(acc.copy())
    if exclude_own:
        for Wk in out:
            Wk[cols, np.arange(len(cols))] = 0.0
    return out


def nearest_walk_weights(adjacency, cols: Sequence[int], hops: int) -> np.ndarray:
    """``[N, len(cols)]`` weights of each node's *nearest* columns: the walk weights of
    :func:`walk_weights` at the fewest steps (1 to ``hops``) at which the node reaches any of
    ``cols``; a row of zeros for a node that reaches none within ``hops`` steps. A gene with a direct
    measured neighbour keeps exactly its one-hop weights; only a gene without one looks further. A
    column's own node never counts as its own neighbour."""
    steps = walk_weights(adjacency, cols, hops, exclude_own=True)
    W = steps[0].copy()
    for Wk in steps[1:]:
        empty = ~(np.abs(W).sum(axis=1) > 0)
        W[empty] = Wk[empty]
    return W


def transfer_deviations(weights: np.ndarray, deltas: np.ndarray, target_cols: Sequence[int | None]) -> np.ndarray:
    """``[q, G]`` weighted mean of the training singles' deviations from their mean (targets masked),
    for ``q`` query genes with ``weights`` ``[q, n]``; add ``λ`` times it to the mean."""
    deltas = np.asarray(deltas, dtype=np.float64)
    dev = _masked_deviations(deltas, deltas.mean(axis=0), target_cols)
    return neighbour_average(weights, dev)


def read_network(path: str | Path) -> pd.DataFrame:
    """A network table (``regulator, target, sign``) from CSV, with a clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"network_knn: network file {path} does not exist; give the simulation's "
                          "network.csv (--model-set network=SIM/network.csv).")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataValidationError(f"{path}: cannot read it as a CSV network table ({exc}).") from None


@register_model("network_knn")
class NetworkKNN(PerturbationModel):
    """Oracle on simulated data: the transfer of :mod:`priorgnn.models.neighbours` with the
    simulator's true network as the similarity. A gene perturbed in training keeps its measured
    single; doubles add their genes' effects. ``network`` is the simulation's ``network.csv``.
    ``shrink``: ``'global'`` (default; one ``λ`` by leave-one-out, the oracle as first defined) or
    ``'degree'`` (PriorGNN's default shrinkage, :func:`loo_fit_degree_powers`), so that PriorGNN can be
    compared with an oracle that shrinks the same way."""

    def __init__(self, network: str = "", shrink: str = "global") -> None:
        if shrink not in SHRINKS:
            raise ConfigError(f"network_knn: shrink must be 'global' or 'degree', not {shrink!r}.")
        super().__init__(network=network, shrink=shrink)

    def fit(self, data, split, *, graphs=None, train=None):
        if not self.hparams["network"]:
            raise ConfigError("network_knn is an oracle for simulated data: give the true network with "
                              "--model-set network=SIM/network.csv.")
        self._remember_data(data, split)
        net = read_network(self.hparams["network"])
        self.single_genes, self.single_deltas, self.mean_single = training_singles(data, split)
        col = {g: i for i, g in enumerate(self.genes)}
        self._targets = [col.get(g) for g in self.single_genes]
        self.vocab = sorted(set(map(str, net["regulator"])) | set(map(str, net["target"])) | set(self.single_genes))
        self._net = net
        sim = signed_target_similarity(net, self.single_genes)
        self.lam, self.kappa, self.power, _ = fit_shrinkage(sim, self.single_deltas, self._targets,
                                                            self.hparams.get("shrink", "global"))
        self.fit_info.update({"lambda": self.lam, "kappa": self.kappa, "power": self.power})
        log.info("network_knn: leave-one-out shrinkage lambda = %.3f (kappa %.3g, power %g) over %d singles",
                 self.lam, self.kappa, self.power, len(self.single_genes))
        return self

    def _gene_effects(self, genes: list[str]) -> dict[str, np.ndarray]:
        idx = {g: i for i, g in enumerate(self.single_genes)}
        unseen = [g for g in genes if g not in idx]
        out = {g: self.single_deltas[idx[g]] for g in genes if g in idx}
        if unseen:
            allg = self.single_genes + unseen
            sim = signed_target_similarity(self._net, allg)[len(self.single_genes):, :len(self.single_genes)]
            sim = powered(sim, self.power)
            moved = transfer_deviations(sim, self.single_deltas, self._targets)
            lam = degree_factors(np.abs(sim).sum(axis=1), self.lam, self.kappa)
            for g, row, f in zip(unseen, moved, lam):
                out[g] = self.mean_single + f * row
        return out

    def predict_delta(self, conditions):
        genes = sorted({g for c in conditions for g in parse_condition(c)})
        eff = self._gene_effects(genes)
        out = np.zeros((len(conditions), len(self.genes)))
        for i, c in enumerate(conditions):
            for g in parse_condition(c):
                out[i] += eff[g]
        return out

    def _vocabulary(self) -> set[str]:
        return set(self.genes or []) | set(getattr(self, "vocab", []))

    def _state(self):
        return {"single_genes": np.array(self.single_genes, dtype=str), "single_deltas": self.single_deltas,
                "mean_single": self.mean_single, "lam": np.array(self.lam), "kappa": np.array(self.kappa),
                "power": np.array(self.power)}

    def _load_state(self, arrays, directory):
        self.single_genes = [str(g) for g in arrays["single_genes"]]
        self.single_deltas, self.mean_single = arrays["single_deltas"], arrays["mean_single"]
        self.lam = float(arrays["lam"])
        self.kappa = float(arrays["kappa"]) if "kappa" in arrays else 0.0
        self.power = float(arrays["power"]) if "power" in arrays else 1.0
        self._net = read_network(self.hparams["network"])
        col = {g: i for i, g in enumerate(self.genes)}
        self._targets = [col.get(g) for g in self.single_genes]
        self.vocab = sorted(set(map(str, self._net["regulator"])) | set(map(str, self._net["target"])))
