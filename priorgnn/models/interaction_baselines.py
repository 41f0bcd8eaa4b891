"""Simple interaction baselines for doubles: ``scaled_additive``, ``scaled_additive_mag``,
``overlap_additive``, ``relation_additive``, ``pair_auto``, ``pair_kernel``, ``dominance``.

Any learned genetic interaction is measured against these. All of them predict a double ``A+B`` from
the measured training singles δA, δB, as :class:`~priorgnn.models.baselines.Additive` does, and
predict singles and conditions of more than two genes exactly as ``additive`` (its ``fallback``
hyperparameter included: a gene whose single is not in training gets the mean training single, or
no change, and ``obs['n_fallback']`` counts such genes).

Throughout, the two singles of a double are ordered by the size of their effect, ``‖δ‖₂`` over the
genes other than the pair's own perturbed genes: δL is the larger, δS the smaller (ties by gene
name). Gene order inside a pair is arbitrary, so a rule written for "first" and "second" gene would
not be symmetric; one for "larger" and "smaller" is. The perturbed genes' own change is predicted as
the sum of the singles' changes at those genes (the perturbation acts on them directly), and
coefficients are fitted over the other genes only.

``scaled_additive``
    Norman et al. (Science 2019): ``δAB ≈ cL·δL + cS·δS`` with one global pair ``(cL, cS)``,
    fitted by least squares pooled over the genes of every training double whose two singles were
    measured in training. It is applied to doubles of two measured singles; other doubles are
    predicted additively. With no such training double it *is* ``additive`` (``cL = cS = 1``): it
    logs a warning, records ``fit_info['scaled_additive']['fallback']`` and marks every double in
    ``obs['additive_fallback']``.
``scaled_additive_mag``
    The same with coefficients that depend on the singles' magnitudes:
    ``c_k = a_k + b_k·zL + d_k·zS`` for ``k ∈ {L, S}``, with ``z = (log‖δ‖ − m) / s`` standardised over
    the training doubles' singles. The six numbers are fitted jointly by least squares over the same
    pooled genes, with a ridge penalty on the four slopes (``ridge`` times the mean diagonal of the
    normal matrix, so the penalty does not depend on the units of expression); with fewer than
    ``min_doubles`` training doubles the slopes are left out (the global fit), and below one double
    the additive fallback applies, as above.
``overlap_additive``
    ``scaled_additive`` plus two per-gene terms for the genes *both* singles move:
    ``δAB_g ≈ cL·δL_g + cS·δS_g + b₊·o₊_g + b₋·o₋_g`` with ``o_g = sign(δL_g)·min(|δL_g|, |δS_g|)``,
    split by whether the two singles move gene ``g`` the same way (``o₊``) or opposite ways (``o₋``).
    A regulatory network saturates: where two perturbations push a shared target the same way, the
    double moves it less than the sum (``b₊ < 0``, buffering); ``b₊ > 0`` is synergy. The four numbers
    are fitted by least squares pooled over each training double's top-20 DE genes
    (``fit_genes='top_de'``, the default; ``'all'``: over every gene, as ``scaled_additive``); with no
    training double it is ``additive``. Over every gene the fit is dominated by the many genes a double
    hardly moves, where the singles' measurement noise attenuates the coefficients (regression
    dilution), and so shrinks the large changes that matter; over the DE genes it fits the buffering
    of the strongly moved targets (chosen on validation doubles of simulations the study never uses,
    ``benchmarks/results/pair_backbones.md``). Unlike ``scaled_additive``, which scales whole profiles, this predicts
    the non-additive part gene by gene, and so ranks pairs by their shared targets.
``relation_additive``
    ``overlap_additive`` whose two coefficients depend on the pair:
    ``c_k = a_k + s_k·(r_LS, r_SL, |r_LS|, |r_SL|)`` for ``k ∈ {L, S}``, where ``r_LS = δL[S] / δS[S]`` is
    how far the larger single moves the smaller one's perturbed gene, relative to that gene's own
    change (and ``r_SL`` the reverse; :func:`pair_relations`). When one perturbation already raises the
    other's gene, the double pushes that gene's downstream program twice, and in a saturating network
    the program then moves less (or more) than the sum: epistasis through regulation, which a rule with
    one coefficient per single for all pairs cannot express. It reads the singles at the pair's own
    genes, which every other rule here leaves out. The eight slopes are shrunk by a ridge penalty chosen
    by leave-one-double-out over the training doubles (:data:`RELATION_RIDGES`); fitted over the same
    genes as ``overlap_additive`` (``fit_genes``). Where neither perturbed gene is measured the ratios
    are 0 and it is ``overlap_additive``.
``pair_auto``
    The backbone chosen per data set: ``additive``, ``scaled_additive`` (global), ``overlap_additive``
    or ``relation_additive``, whichever has the lowest leave-one-double-out squared error over the
    training doubles of measured singles (each held-out double predicted from the coefficients fitted
    on the others, ``relation``'s ridge chosen inside each fold so that its tuning does not favour it;
    over the genes the coefficients are fitted on, ``fit_genes``, other than the pair's own).
    ``relation`` is no candidate where every training pair's ratios are 0. With fewer than
    ``min_doubles`` (3) such doubles it is ``scaled_additive`` (``additive`` with none). :func:`choose_pair_backbone` does the choice
    (PriorGNN's ``pair_backbone='auto'`` uses it too).
``pair_kernel``
    ``pair_auto`` shrunk toward additive (``additive + s·(pair_auto − additive)``, ``shrink`` ``s``,
    default 0.5), plus the non-additive part that this leaves in the training doubles of similar
    pairs (:mod:`priorgnn.models.pair_kernel`; :class:`PairKernel`).
``dominance``
    The dominance rule: the double is the whole profile of the stronger single, ``δAB ≈ δL`` (Norman
    et al.'s epistasis, ``c = (1, 0)``), except for the weaker gene's own change, which is added at
    that gene. The whole profile was chosen over a per-gene maximum of ``|δA|`` and ``|δB|`` because
    it keeps the expression program of one gene intact, as Norman et al. describe epistatic pairs;
    a per-gene maximum mixes the two programs. A gene without a measured single takes the additive
    fallback delta as its profile. No fitting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from priorgnn.data.conditions import parse_condition
from priorgnn.errors import ConfigError
from priorgnn.metrics.core import N_DE
from priorgnn.models.base import register_model
from priorgnn.models.baselines import Additive
from priorgnn.models.pair_kernel import PAIR_SHRINK, check_shrink

log = logging.getLogger(__name__)

__all__ = ["ScaledAdditive", "ScaledAdditiveMagnitude", "OverlapAdditive", "RelationAdditive", "PairAuto",
           "PairKernel", "Dominance", "order_by_effect", "overlap_terms", "pair_relations", "choose_pair_backbone"]

_MODES = ("global", "magnitude")


def order_by_effect(delta_a: np.ndarray, delta_b: np.ndarray, keep: np.ndarray,
                    names: tuple[str, str] = ("", "")) -> tuple[int, int]:
    """Positions ``(larger, smaller)`` of two singles by ``‖δ‖₂`` over the genes in ``keep``
    (a boolean mask); ties go to the first name in sorted order as the larger."""
    na, nb = float(np.linalg.norm(delta_a[keep])), float(np.linalg.norm(delta_b[keep]))
    if na > nb or (na == nb and names[0] <= names[1]):
        return 0, 1
    return 1, 0


class _PairRule(Additive):
    """Shared machinery: a double of two measured singles goes through :meth:`_combine`; the rest
    is ``additive``."""

    def _gene_mask(self, genes: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        row = self._gene_row
        own = [row[g] for g in genes if g in row]
        keep = np.ones(len(self.genes), dtype=bool)
        keep[own] = False
        return keep, own

    @property
    def _gene_row(self) -> dict[str, int]:
        if getattr(self, "_row_genes", None) is not self.genes:
            self._row_cache = {g: i for i, g in enumerate(self.genes)}
            self._row_genes = self.genes
        return self._row_cache

    def _pair(self, genes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], tuple[float, float]] | None:
        """``(δL, δS, keep, own, rel)`` of a double (``keep``: the genes other than its perturbed genes,
        ``own``: the rows of its perturbed genes, ``rel``: :func:`pair_relations`), or ``None`` if it is
        not a double of two measured singles (rules with ``_pair_uses_fallback`` also take fallback
        deltas of unmeasured singles)."""
        if len(genes) != 2:
            return None
        if not self._pair_uses_fallback and any(g not in self._index for g in genes):
            return None
        da, db = (self._gene_delta(g)[0] for g in genes)
        keep, own = self._gene_mask(genes)
        i, j = order_by_effect(da, db, keep, (genes[0], genes[1]))
        pair = (da, db)
        row = self._gene_row
        rel = pair_relations(pair[i], pair[j], row.get(genes[i]), row.get(genes[j]))
        return pair[i], pair[j], keep, own, rel

    _pair_uses_fallback = False

    def _combine(self, big: np.ndarray, small: np.ndarray, keep: np.ndarray,
                 rel: tuple[float, float]) -> np.ndarray:
        raise NotImplementedError  # each rule defines it

    def predict_delta(self, conditions: Sequence[str]) -> np.ndarray:
        out = super().predict_delta(conditions)  # additive for everything, fallback counts recorded
        for i, c in enumerate(conditions):
            p = self._pair(parse_condition(c))
            if p is None:
                continue
            big, small, keep, own, rel = p
            pred = self._combine(big, small, keep, rel)
            pred[own] = big[own] + small[own]  # the perturbed genes' own change stays additive
            out[i] = pred
        return out


@register_model("scaled_additive")
class ScaledAdditive(_PairRule):
    """Norman et al.'s ``δAB ≈ cL·δL + cS·δS`` with coefficients fitted on the training doubles; see
    the module docstring. ``mode='global'`` fits one pair, ``'magnitude'`` lets the pair depend on
    the singles' magnitudes (also registered as ``scaled_additive_mag``)."""

    def __init__(self, mode: str = "global", fallback: str = "mean", ridge: float = 1.0,
                 min_doubles: int = 3, **kw) -> None:
        if mode not in _MODES:
            raise ConfigError(f"{self.name}: mode must be one of {', '.join(_MODES)}, not {mode!r}.")
        super().__init__(fallback=fallback, **kw)
        self.hparams.update(mode=mode, ridge=float(ridge), min_doubles=int(min_doubles))
        # no training doubles yet: the additive expectation
        self.coef = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        self.z_mean, self.z_sd = 0.0, 1.0
        self.scaled = False

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, data, split, *, graphs=None, train=None):
        super().fit(data, split, graphs=graphs, train=train)
        s = data.summaries
        doubles = [c for c in split.train if len(g := parse_condition(c)) == 2 and all(x in self._index for x in g)]
        mode = self.hparams["mode"]
        info = {"mode": mode, "n_doubles": len(doubles), "fallback": None}
        if not doubles:
            self.coef = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
            self.scaled = False
            info["fallback"] = ("no training double has both singles measured: predicting doubles additively "
                                "(cL = cS = 1)")
            log.warning("%s: %s", self.name, info["fallback"])
        else:
            pairs = [self._pair(parse_condition(c)) for c in doubles]
            ys = [s.delta(c).astype(np.float64) for c in doubles]
            logs = np.log(np.array([[np.linalg.norm(p[0][p[2]]), np.linalg.norm(p[1][p[2]])] for p in pairs])
                          + 1e-12)
            self.z_mean = float(logs.mean())
            self.z_sd = float(logs.std()) or 1.0
            use_slopes = mode == "magnitude" and len(doubles) >= self.hparams["min_doubles"]
            if mode == "magnitude" and not use_slopes:
                info["fallback"] = (f"{len(doubles)} training double(s), fewer than min_doubles="
                                    f"{self.hparams['min_doubles']}: one global (cL, cS) without magnitude terms")
                log.warning("%s: %s", self.name, info["fallback"])
            XtX, Xty = np.zeros((6, 6)), np.zeros(6)
            for (big, small, keep, _own, _rel), y, (lb, ls) in zip(pairs, ys, logs, strict=True):
                X = self._design(big[keep], small[keep], lb, ls)
                XtX += X.T @ X
                Xty += X.T @ y[keep]
            active = np.array([True, use_slopes, use_slopes, True, use_slopes, use_slopes])
            A = XtX[np.ix_(active, active)]
            if use_slopes:
                penalty = self.hparams["ridge"] * float(np.mean(np.diag(A)))
                A = A + np.diag(np.where([False, True, True, False, True, True], penalty, 0.0))
            # lstsq: a minimum-norm answer where the singles of every double are collinear
            sol = np.linalg.lstsq(A, Xty[active], rcond=None)[0]
            self.coef = np.zeros(6)
            self.coef[active] = sol
            self.scaled = True
            info["slopes"] = bool(use_slopes)
        info.update(c_large=float(self.coef[0]), c_small=float(self.coef[3]),
                    coef=[float(v) for v in self.coef], z_mean=self.z_mean, z_sd=self.z_sd)
        self.fit_info["scaled_additive"] = info
        return self

    def _z(self, log_norm: float) -> float:
        return (log_norm - self.z_mean) / self.z_sd

    def _design(self, big: np.ndarray, small: np.ndarray, log_big: float, log_small: float) -> np.ndarray:
        zb, zs = self._z(log_big), self._z(log_small)
        return np.stack([big, big * zb, big * zs, small, small * zb, small * zs], axis=1)

    def coefficients(self, big: np.ndarray, small: np.ndarray, keep: np.ndarray | None = None) -> tuple[float, float]:
        """``(cL, cS)`` for a double with single changes ``big`` (the larger) and ``small``."""
        keep = np.ones(big.shape, dtype=bool) if keep is None else keep
        zb = self._z(float(np.log(np.linalg.norm(big[keep]) + 1e-12)))
        zs = self._z(float(np.log(np.linalg.norm(small[keep]) + 1e-12)))
        c = self.coef
        return float(c[0] + c[1] * zb + c[2] * zs), float(c[3] + c[4] * zb + c[5] * zs)

    def _combine(self, big, small, keep, rel):
        cl, cs = self.coefficients(big, small, keep)
        return cl * big + cs * small

    def prediction_notes(self, conditions):
        obs = super().prediction_notes(conditions)
        obs["additive_fallback"] = [int(not self.scaled and len(parse_condition(c)) == 2) for c in conditions]
        return obs

    # -- persistence -------------------------------------------------------------------------------
    def _state(self):
        return {**super()._state(), "coef": self.coef, "z": np.array([self.z_mean, self.z_sd]),
                "scaled": np.array(self.scaled)}

    def _load_state(self, arrays, directory):
        super()._load_state(arrays, directory)
        self.coef = np.asarray(arrays["coef"], dtype=np.float64)
        self.z_mean, self.z_sd = (float(v) for v in arrays["z"])
        self.scaled = bool(arrays["scaled"])


@register_model("scaled_additive_mag")
class ScaledAdditiveMagnitude(ScaledAdditive):
    """``scaled_additive`` with ``mode='magnitude'`` by default: ``(cL, cS)`` depend on the singles'
    magnitudes (see the module docstring)."""

    def __init__(self, mode: str = "magnitude", fallback: str = "mean", ridge: float = 1.0,
                 min_doubles: int = 3, **kw) -> None:
        super().__init__(mode=mode, fallback=fallback, ridge=ridge, min_doubles=min_doubles, **kw)


def overlap_terms(big: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(o₊, o₋)`` per gene: ``sign(big)·min(|big|, |small|)`` where the two changes have the same
    sign (``o₊``) or opposite signs (``o₋``), 0 elsewhere (see ``overlap_additive``)."""
    o = np.sign(big) * np.minimum(np.abs(big), np.abs(small))
    same = np.sign(big) * np.sign(small)
    return np.where(same > 0, o, 0.0), np.where(same < 0, o, 0.0)


#: the genes of a training double the fitted backbones (``pair_auto``, ``overlap_additive``,
#: ``relation_additive``) are fitted and chosen on: ``'top_de'`` its top-20 DE genes (the genes
#: ``mse_top20_de`` scores), ``'all'`` every gene
FIT_GENES = ("top_de", "all")

#: the backbones :func:`choose_pair_backbone` chooses among, simplest first (ties go to the simpler)
PAIR_BACKBONES = ("additive", "scaled", "overlap", "relation")

#: the size of a relation ratio (:func:`pair_relations`) is capped here: a ratio of 1 already means that one
#: perturbation moves the other's gene as far as that gene's own perturbation does
RELATION_CLIP = 1.0
#: the ridge penalties, in units of the mean diagonal of the normal matrix, among which the ``relation``
#: backbone's slopes are shrunk (chosen by leave-one-double-out; ``benchmarks/results/pair_backbones.md``)
RELATION_RIDGES = (0.01, 0.1, 1.0, 10.0, 100.0)
#: number of coefficients of every backbone, as :func:`choose_pair_backbone` returns them:
#: ``(cL, cS, b₊, b₋)`` then the relation slopes of ``cL`` and of ``cS``
#: (on ``r_LS, r_SL, |r_LS|, |r_SL|`` each)
N_COEF = 12


def pair_relations(big: np.ndarray, small: np.ndarray, row_big: int | None = None,
                   row_small: int | None = None) -> tuple[float, float]:
    """``(r_LS, r_SL)``: how far each single of a double moves the *other* perturbed gene, relative to
    that gene's change under its own perturbation: ``r_LS = δL[S] / δS[S]``, ``r_SL = δS[L] / δL[L]``
    (``row_big``, ``row_small``: the rows of the larger and the smaller single's perturbed genes).

    A ratio near 0 means the two perturbations do not act on each other's gene; ``r_LS > 0`` means the
    larger one already raises (CRISPRa) the smaller one's gene, so in the double that gene's program is
    pushed twice. Each is clipped to ``±RELATION_CLIP`` and is 0 where the gene is not measured (``None``)
    or its own change is 0 or not finite."""
    def ratio(other: np.ndarray, own: np.ndarray, row: int | None) -> float:
        if row is None or not np.isfinite(own[row]) or not np.isfinite(other[row]) or own[row] == 0:
            return 0.0
        return float(np.clip(other[row] / own[row], -RELATION_CLIP, RELATION_CLIP))

    return ratio(big, small, row_small), ratio(small, big, row_big)


def _backbone_design(kind: str, big: np.ndarray, small: np.ndarray,
                     rel: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The columns a fitted backbone weighs: ``[big, small]`` (``scaled``), ``[big, small, o₊, o₋]``
    (``overlap``), and for ``relation`` also ``big`` and ``small`` times each of ``r_LS, r_SL, |r_LS|,
    |r_SL|`` (``rel``: :func:`pair_relations`), so that each single's coefficient depends on the pair."""
    if kind == "scaled":
        return np.stack([big, small], axis=1)
    cols = [big, small, *overlap_terms(big, small)]
    if kind == "relation":
        f = (rel[0], rel[1], abs(rel[0]), abs(rel[1]))
        cols += [big * v for v in f] + [small * v for v in f]
    return np.stack(cols, axis=1)


def _as_coef(kind: str, coef: Sequence[float]) -> np.ndarray:
    """A backbone's coefficients as all :data:`N_COEF` (``additive``: ``(1, 1, 0, …)``; the others padded
    with zeros)."""
    if kind == "additive":
        coef = (1.0, 1.0)
    return np.concatenate([np.asarray(coef, dtype=np.float64), np.zeros(N_COEF - len(coef))])


def _relation_fit(parts: list[tuple], XtX: np.ndarray, Xty: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The ``relation`` backbone's fit: ``(coef, ridge, loo_error)``.

    The eight slopes are shrunk by a ridge penalty, ``λ`` times the mean diagonal of the normal matrix
    of the doubles fitted on (so that it does not depend on the units of expression), with ``λ`` from :data:`RELATION_RIDGES`:
    the final ``λ`` minimises the leave-one-double-out error over all doubles, and ``loo_error`` is that
    of a *nested* choice (each held-out double is predicted with the ``λ`` chosen by leave-one-out over
    the others), so that the comparison with the backbones that have nothing to tune stays fair.
    ``parts``: per double ``(X, y, XᵀX, Xᵀy, yᵀy)``; a double's squared error for coefficients ``c`` is
    ``yᵀy − 2cᵀXᵀy + cᵀXᵀXc``, so no error needs the genes again."""
    n = len(parts)
    slopes = np.diag(np.r_[np.zeros(4), np.ones(N_COEF - 4)])

    def solve(A, b, lam):  # each fit scales its penalty by its own normal matrix, as a fit on those doubles would
        return np.linalg.lstsq(A + lam * (float(np.mean(np.diag(A))) or 1.0) * slopes, b, rcond=None)[0]

    def err(c, part):
        return float(part[4] - 2 * c @ part[3] + c @ part[2] @ c)

    # e[l, i, j]: error on double j of the fit without doubles i and j (the diagonal: without j only)
    e = np.zeros((len(RELATION_RIDGES), n, n))
    for li, lam in enumerate(RELATION_RIDGES):
        for i in range(n):
            Ai, bi = XtX - parts[i][2], Xty - parts[i][3]
            e[li, i, i] = err(solve(Ai, bi, lam), parts[i])
            for j in range(i + 1, n):
                c = solve(Ai - parts[j][2], bi - parts[j][3], lam)
                e[li, i, j], e[li, j, i] = err(c, parts[j]), err(c, parts[i])
    diag = np.einsum("lii->li", e)  # [L, n]: plain leave-one-out errors
    inner = e.sum(axis=2) - diag  # [L, i]: leave-one-out error over the doubles other than i
    nested = float(sum(diag[int(np.argmin(inner[:, i])), i] for i in range(n)))
    lam = RELATION_RIDGES[int(np.argmin(diag.sum(axis=1)))]
    return solve(XtX, Xty, lam), lam, nested


def choose_pair_backbone(pairs: Sequence[tuple[np.ndarray, ...]], min_doubles: int = 3,
                         candidates: Sequence[str] = PAIR_BACKBONES,
                         relations: Sequence[tuple[float, float]] | None = None) -> dict:
    """The backbone of doubles with the lowest leave-one-double-out squared error.

    ``pairs``: one ``(big, small, observed)`` or ``(big, small, observed, focus)`` per training double of
    measured singles, each the changes over the genes other than the pair's own (``big`` the larger
    single); ``focus`` is a boolean mask of the genes the coefficients are fitted on and the error is
    summed over (without it, every gene). ``relations``: each double's :func:`pair_relations` (without
    them, or where every one is 0, the ``relation`` backbone is not a candidate: it would be ``overlap``).
    Returns ``{"backbone": 'additive' | 'scaled' | 'overlap' | 'relation', "coef": the :data:`N_COEF`
    coefficients (fitted on all doubles), "loo_error": {backbone: summed squared error}, "n_doubles": n}``
    (and ``"ridge"``, the relation slopes' ``λ``, when ``relation`` was fitted): ``(cL, cS, 0, …)`` for
    ``scaled``, ``(1, 1, 0, …)`` for ``additive``. Each backbone's coefficients are the least squares
    pooled over the (focus) genes of the doubles, as ``scaled_additive`` and ``overlap_additive`` fit
    them (``relation``: with its slopes shrunk, :func:`_relation_fit`); the held-out double's are refitted
    without it (a downdate of the normal equations). With one candidate, or fewer than ``min_doubles``
    doubles, no error is computed and the choice is the only candidate, or ``scaled`` (``additive``
    without doubles)."""
    n = len(pairs)
    out: dict = {"n_doubles": n, "loo_error": {}}
    if n == 0:
        return {**out, "backbone": "additive", "coef": _as_coef("additive", ()).tolist()}
    rels = [(0.0, 0.0)] * n if relations is None else [tuple(map(float, r)) for r in relations]
    if len(rels) != n:
        raise ValueError(f"{len(rels)} relations for {n} doubles")
    if len(candidates) > 1 and not any(any(r) for r in rels):
        candidates = tuple(k for k in candidates if k != "relation")
    # restricted to each double's focus genes once, so every sum below is over those genes only
    pairs = [p[:3] if len(p) == 3 else tuple(np.asarray(v)[p[3]] for v in p[:3]) for p in pairs]
    normal = {}
    for kind in [k for k in ("scaled", "overlap", "relation")
                 if k in candidates or (len(candidates) > 1 and k != "relation")]:
        parts = []
        for (big, small, y), rel in zip(pairs, rels, strict=True):
            X = _backbone_design(kind, big, small, rel)
            parts.append((X, y, X.T @ X, X.T @ y, float(y @ y)))
        normal[kind] = (parts, sum(p[2] for p in parts), sum(p[3] for p in parts))
    coef = {k: np.linalg.lstsq(XtX, Xty, rcond=None)[0] for k, (_, XtX, Xty) in normal.items() if k != "relation"}
    if "relation" in normal and (len(candidates) == 1 or n >= min_doubles):
        coef["relation"], out["ridge"], rel_err = _relation_fit(*normal["relation"])
    if len(candidates) == 1 or n < min_doubles:
        best = candidates[0] if len(candidates) == 1 else "scaled"
        return {**out, "backbone": best, "coef": _as_coef(best, coef.get(best, ())).tolist()}
    errors = {"additive": float(sum(np.sum((y - big - small) ** 2) for big, small, y in pairs))}
    for kind, (parts, XtX, Xty) in normal.items():
        if kind == "relation":
            errors[kind] = rel_err
            continue
        err = 0.0
        for X, y, a, b, _ in parts:
            c = np.linalg.lstsq(XtX - a, Xty - b, rcond=None)[0]
            err += float(np.sum((y - X @ c) ** 2))
        errors[kind] = err
    # ties, to rounding (a richer backbone nests the simpler ones, so on exact data they tie): the simpler
    floor = min(errors[k] for k in candidates)
    best = min((k for k in candidates if errors[k] <= floor + 1e-9 * max(floor, 1e-12)), key=PAIR_BACKBONES.index)
    return {**out, "backbone": best, "coef": _as_coef(best, coef.get(best, ())).tolist(), "loo_error": errors}


@register_model("pair_auto")
class PairAuto(_PairRule):
    """The backbone of doubles chosen by leave-one-double-out (see the module docstring)."""

    #: the backbones this rule chooses among
    candidates: tuple[str, ...] = PAIR_BACKBONES

    def __init__(self, fallback: str = "mean", min_doubles: int = 3, fit_genes: str = "top_de", **kw) -> None:
        if fit_genes not in FIT_GENES:
            raise ConfigError(f"{self.name}: fit_genes must be one of {', '.join(FIT_GENES)}, not {fit_genes!r}.")
        super().__init__(fallback=fallback, **kw)
        self.hparams.update(min_doubles=int(min_doubles), fit_genes=fit_genes)
        self.backbone, self.coef = "additive", _as_coef("additive", ())

    def fit(self, data, split, *, graphs=None, train=None):
        super().fit(data, split, graphs=graphs, train=train)
        s = data.summaries
        pairs, relations = [], []
        for c in split.train:
            genes = parse_condition(c)
            if len(genes) == 2 and all(g in self._index for g in genes):
                big, small, keep, _own, rel = self._pair(genes)
                pair = (big[keep], small[keep], s.delta(c).astype(np.float64)[keep])
                if self.hparams["fit_genes"] == "top_de":
                    focus = np.zeros(len(keep), dtype=bool)
                    focus[s.top_de(c, N_DE)] = True
                    pair += (focus[keep],)
                pairs.append(pair)
                relations.append(rel)
        choice = choose_pair_backbone(pairs, self.hparams["min_doubles"], self.candidates, relations)
        self.backbone, self.coef = choice["backbone"], np.asarray(choice["coef"], dtype=np.float64)
        if not pairs:
            choice["fallback"] = "no training double has both singles measured: predicting doubles additively"
            log.warning("%s: %s", self.name, choice["fallback"])
        choice.update(zip(("c_large", "c_small", "b_same", "b_opposite"), map(float, self.coef)))
        choice["relation_slopes"] = [float(v) for v in self.coef[4:]]
        self.fit_info[self.name] = choice
        log.info("%s: backbone %s (leave-one-double-out error %s; %d training doubles)", self.name, self.backbone,
                 ", ".join(f"{k} {v:.4g}" for k, v in choice["loo_error"].items()) or "not computed", len(pairs))
        return self

    def _combine(self, big, small, keep, rel):
        if self.backbone == "additive":
            return big + small
        X = _backbone_design(self.backbone, big, small, rel)
        return X @ self.coef[:X.shape[1]]

    def _state(self):
        return {**super()._state(), "coef": self.coef, "backbone": np.array(self.backbone)}

    def _load_state(self, arrays, directory):
        super()._load_state(arrays, directory)
        coef = np.asarray(arrays["coef"], dtype=np.float64)
        self.coef = np.concatenate([coef, np.zeros(N_COEF - len(coef))])  # saved before the relation slopes
        self.backbone = str(arrays["backbone"])


@register_model("overlap_additive")
class OverlapAdditive(PairAuto):
    """``cL·δL + cS·δS`` plus the shared targets' buffering or synergy (see the module docstring): the
    ``overlap`` backbone, always."""

    candidates = ("overlap",)


@register_model("relation_additive")
class RelationAdditive(PairAuto):
    """``overlap_additive`` with each single's coefficient depending on how the pair's perturbations act
    on each other's gene (see the module docstring): the ``relation`` backbone, always."""

    candidates = ("relation",)


@register_model("pair_kernel")
class PairKernel(PairAuto):
    """``pair_auto`` plus the pair kernel correction of :mod:`priorgnn.models.pair_kernel`: a double of two
    measured singles also gets the non-additive part that ``pair_auto`` leaves in the training doubles of
    similar pairs (kernel ridge over pairs, width and ridge chosen by leave-one-double-out over every gene
    other than the pair's own; off where that does not beat ``pair_auto`` alone, or with fewer than 10
    such doubles). PriorGNN's default (``pair_kernel=True``) fits the same correction on what its own
    trained network leaves unexplained, so this rule shows what the correction gives without the
    network.

    ``shrink`` (default 0.5, as PriorGNN's ``pair_shrink``): a double of two measured singles starts from
    ``additive + shrink·(pair_auto − additive)``, and the correction is fitted on what that leaves
    (``benchmarks/results/pair_shrinkage.md``); 1 is ``pair_auto`` itself."""

    def __init__(self, shrink: float = PAIR_SHRINK, **kw) -> None:
        shrink = check_shrink(self.name, "shrink", shrink)
        super().__init__(**kw)
        self.hparams.update(shrink=shrink)

    def fit(self, data, split, *, graphs=None, train=None):
        from priorgnn.models.pair_kernel import fit_on_training_doubles

        super().fit(data, split, graphs=graphs, train=train)
        # the backbone's record under the rule it is (PairAuto.fit files it under this model's name), the
        # correction's under "pair_kernel", as PriorGNN files it
        self.fit_info["pair_auto"] = self.fit_info.pop(self.name)
        self.kernel_alpha = None
        fit, pairs = fit_on_training_doubles(data, split, self.single_deltas, self.single_genes, self.genes,
                                             self._backbone)
        if fit["kept"]:
            self.kernel_genes, self.kernel_rows, self.kernel_alpha = fit["gene_kernel"], pairs, fit["alpha"]
        self.fit_info["pair_kernel"] = {k: v for k, v in fit.items() if k not in ("alpha", "gene_kernel")}
        return self

    def _backbone(self, conditions):
        out = super().predict_delta(conditions)
        s = float(self.hparams.get("shrink", 1.0))
        which = self._measured_doubles(conditions)
        if s != 1.0 and which:
            rows = np.array([[self._index[g] for g in parse_condition(conditions[i])] for i in which])
            summed = np.asarray(self.single_deltas, dtype=out.dtype)[rows].sum(1)
            out[which] = summed + s * (out[which] - summed)
        return out

    def _measured_doubles(self, conditions) -> list[int]:
        """The positions in ``conditions`` of the doubles whose two singles were measured."""
        return [i for i, c in enumerate(conditions)
                if len(g := parse_condition(c)) == 2 and all(x in self._index for x in g)]

    def predict_delta(self, conditions):
        from priorgnn.metrics.core import perturbed_gene_idx
        from priorgnn.models.pair_kernel import pair_kernel

        out = self._backbone(conditions)
        if getattr(self, "kernel_alpha", None) is None:
            return out
        which = self._measured_doubles(conditions)
        if which:
            rows = [[self._index[g] for g in parse_condition(conditions[i])] for i in which]
            add = pair_kernel(self.kernel_genes, rows, self.kernel_rows) @ self.kernel_alpha
            for k, own in enumerate(perturbed_gene_idx([conditions[i] for i in which], self.genes)):
                add[k, own] = 0.0
            out[which] += add
        return out

    def _state(self):
        kept = getattr(self, "kernel_alpha", None) is not None
        return {**super()._state(), "kernel_kept": np.array(kept), "shrink": np.array(self.hparams["shrink"]),
                **({"kernel_genes": self.kernel_genes, "kernel_rows": self.kernel_rows,
                    "kernel_alpha": self.kernel_alpha} if kept else {})}

    def _load_state(self, arrays, directory):
        super()._load_state(arrays, directory)
        self.kernel_alpha = None
        # saved before the shrinkage existed: none
        self.hparams["shrink"] = float(arrays["shrink"]) if "shrink" in arrays else 1.0
        if bool(arrays.get("kernel_kept", False)):
            self.kernel_genes, self.kernel_rows = arrays["kernel_genes"], arrays["kernel_rows"]
            self.kernel_alpha = arrays["kernel_alpha"]


@register_model("dominance")
class Dominance(_PairRule):
    """The double is the stronger single's whole profile (see the module docstring)."""

    _pair_uses_fallback = True

    def _combine(self, big, small, keep, rel):
        return big.copy()
