"""The mechanistic model: ODE steady states of a regulatory DAG, perturbations, cells and truth.

:class:`Simulator` holds a network in the normalised form of :mod:`priorgnn.simulate.grn`, a finite
set of cell states and the measurement parameters. Its steady states are exact: the network is
acyclic, so ``dx/dt = 0`` is solved level by level,

``log u_i = log m_si + log pi_i + log F_i(u_regulators)``,  with ``u = x / x_ref``,

vectorised over conditions x cell states (NumPy fancy indexing and ``reduceat`` over each target's
incoming edges; no Python loop over genes). :meth:`Simulator.rhs` evaluates the ODE's right-hand
side for any state, so tests can check that it vanishes at the reported steady states.

Perturbations multiply the target's transcription: CRISPRa by a gene-specific fold (Norman et al.,
Science 2019 is a CRISPRa screen), CRISPRi by a residual fraction. A double applies both factors;
genetic interactions then come only from the dynamics.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from priorgnn.data.conditions import CTRL, canonical_condition, parse_condition
from priorgnn.errors import ConditionFormatError, ConfigError
from priorgnn.simulate.grn import LOGIC_NAMES, NetworkSpec, random_network, standard_network
from priorgnn.simulate.measure import counts_to_log_csr, log1p_table, sample_counts

log = logging.getLogger(__name__)

__all__ = ["Simulator", "STREAMS"]

#: Random streams derived from the master seed: changing one part of a simulation (e.g. the number
#: of cells or the knowledge fidelity) leaves the others unchanged.
STREAMS = {"network": 11, "states": 12, "design": 13, "cells": 14, "extra_cells": 15, "knowledge": 16,
           "shared_response": 17, "gene_names": 18}
#: Optional text columns of the gene table, kept with the simulator (module structure; real GO terms).
_GENE_COLUMNS = ("module", "submodule", "group", "go_term", "go_subterm")

_ROWS_PER_CHUNK = 2048  # conditions x states rows solved at once
_CELLS_PER_CHUNK = 1024  # cells sampled at once (fixed: part of the deterministic stream)


def stream_rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    """The generator of a named random stream of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[stream], *map(int, extra)]))


def _condition_key(condition: str) -> int:
    return zlib.crc32(condition.encode("utf-8"))


@dataclass
class _Group:
    """Edges into one set of targets of one level with one logic."""

    targets: np.ndarray
    reg: np.ndarray
    n: np.ndarray
    log1m_occ: np.ndarray
    log_occ: np.ndarray
    act: np.ndarray
    w: np.ndarray
    starts: np.ndarray
    log_alpha: np.ndarray | None  # OR groups only


class Simulator:
    """A mechanistic gene-regulatory model with cell states and a count measurement.

    Build one with :meth:`from_config` (a random modular network) or :meth:`from_network` (an
    explicit network in standard Hill form, e.g. a hand-built motif).

    Parameters
    ----------
    spec
        The network in normalised form.
    state_log_mult
        ``[n_states, n_genes]`` log transcription multipliers of the cell states (zeros: one state
        without variation).
    modality
        ``"crispra"`` or ``"crispri"``.
    library_size, library_sd, target_sum
        Measurement: median and log-sd of UMIs per cell, ``normalize_total`` target.
    seed
        The master seed (used for the default cell streams).
    """

    def __init__(self, spec: NetworkSpec, *, state_log_mult: np.ndarray | None = None,
                 modality: str = "crispra", library_size: float = 2500.0, library_sd: float = 0.3,
                 target_sum: float = 1e4, seed: int = 0, shared_response: np.ndarray | None = None,
                 shared_affinity: np.ndarray | None = None) -> None:
        if modality not in ("crispra", "crispri"):
            raise ConfigError(f"modality={modality!r}: choose 'crispra' or 'crispri'.")
        self.spec = spec
        g = spec.genes
        self.genes: list[str] = g["gene"].astype(str).tolist()
        self.n_genes = len(self.genes)
        self.gene_index = {n: i for i, n in enumerate(self.genes)}
        self.expression = g["expression"].to_numpy(np.float64)
        self.degradation = g["degradation"].to_numpy(np.float64)
        self.basal = g["basal"].to_numpy(np.float64)
        self.logic = np.array([LOGIC_NAMES.index(v) for v in g["logic"]], dtype=np.int64)
        self.crispra_fold = g["crispra_fold"].to_numpy(np.float64)
        self.crispri_residual = g["crispri_residual"].to_numpy(np.float64)
        self.theta = g["theta"].to_numpy(np.float64)
        if state_log_mult is None:
            state_log_mult = np.zeros((1, self.n_genes))
        self.state_log_mult = np.asarray(state_log_mult, dtype=np.float64)
        if self.state_log_mult.shape[1] != self.n_genes:
            raise ConfigError("state_log_mult must have one column per gene.")
        self.modality = modality
        # systematic variation (SimulatorConfig.shared_response): the common program's log loadings
        # (already scaled) and each gene's affinity for it as a perturbed gene; zeros: off
        self.shared_response = (np.zeros(self.n_genes) if shared_response is None
                                else np.asarray(shared_response, dtype=np.float64))
        self.shared_affinity = (np.zeros(self.n_genes) if shared_affinity is None
                                else np.asarray(shared_affinity, dtype=np.float64))
        if self.shared_response.shape != (self.n_genes,) or self.shared_affinity.shape != (self.n_genes,):
            raise ConfigError("shared_response and shared_affinity must have one value per gene.")
        self.library_size = float(library_size)
        self.library_sd = float(library_sd)
        self.target_sum = float(target_sum)
        self.seed = int(seed)
        e = spec.edges
        self._src = e["regulator"].to_numpy(np.int64)
        self._tgt = e["target"].to_numpy(np.int64)
        self._sign = e["sign"].to_numpy(np.int64)
        self._n = e["n"].to_numpy(np.float64)
        self._occ = e["occupancy"].to_numpy(np.float64)
        self._alpha = e["alpha"].to_numpy(np.float64)
        self._w = (e["exponent"] if "exponent" in e else pd.Series(np.ones(len(e)))).to_numpy(np.float64)
        self.level = self._levels()
        self._plan = self._compile()
        self._theta_values, self._theta_class = np.unique(self.theta, return_inverse=True)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg, *, go=None) -> Simulator:
        """A random modular network and cell states drawn from ``cfg`` (a
        :class:`~priorgnn.simulate.config.SimulatorConfig`). With ``gene_names="real_go"``, ``go`` (a
        :class:`~priorgnn.simulate.realgo.RealGO`) names the genes after real human genes."""
        spec = random_network(cfg, stream_rng(cfg.seed, "network"))
        if cfg.gene_names == "real_go":
            from priorgnn.simulate.realgo import name_genes

            if go is None:
                raise ConfigError("gene_names='real_go' needs the real GO files: pass go=load_real_go(DIR) "
                                  "(priorgnn.simulate.realgo), or simulate(..., go_dir=DIR).")
            spec = NetworkSpec(genes=name_genes(spec.genes, go, cfg.seed), edges=spec.edges)
        rng = stream_rng(cfg.seed, "states")
        gene_sd = cfg.state_sd * np.exp(cfg.state_sd_spread * rng.standard_normal(cfg.n_genes))
        states = gene_sd * rng.standard_normal((cfg.n_states, cfg.n_genes))
        if cfg.state_module_sd > 0 and "module" in spec.genes:
            # cell-level co-variation of co-regulated genes (drawn after the per-gene states, so that
            # a config without it reproduces the same cells)
            module = pd.factorize(spec.genes["module"])[0]
            states = states + cfg.state_module_sd * rng.standard_normal((cfg.n_states, module.max() + 1))[:, module]
        shared = affinity = None
        if cfg.shared_response > 0:
            srng = stream_rng(cfg.seed, "shared_response")
            carries = srng.random(cfg.n_genes) < cfg.shared_response_frac
            shared = cfg.shared_response * srng.standard_normal(cfg.n_genes) * carries
            affinity = srng.uniform(0.4, 1.0, cfg.n_genes)
        return cls(spec, state_log_mult=states, modality=cfg.modality, library_size=cfg.library_size,
                   library_sd=cfg.library_sd, target_sum=cfg.target_sum, seed=cfg.seed,
                   shared_response=shared, shared_affinity=affinity)

    @classmethod
    def from_network(cls, genes: pd.DataFrame, edges: pd.DataFrame, *, n_states: int = 1,
                     state_sd: float = 0.0, seed: int = 0, **kwargs) -> Simulator:
        """An explicit network in standard Hill form (see
        :func:`~priorgnn.simulate.grn.standard_network` for the columns). ``kwargs`` go to the
        constructor (``modality``, ``library_size``, ``library_sd``, ``target_sum``)."""
        spec = standard_network(genes, edges)
        states = state_sd * stream_rng(seed, "states").standard_normal((n_states, len(spec.genes)))
        return cls(spec, state_log_mult=states, seed=seed, **kwargs)

    def with_modality(self, modality: str) -> Simulator:
        """The same system under another perturbation modality (``crispra``/``crispri``)."""
        return Simulator(self.spec, state_log_mult=self.state_log_mult, modality=modality,
                         library_size=self.library_size, library_sd=self.library_sd,
                         target_sum=self.target_sum, seed=self.seed, shared_response=self.shared_response,
                         shared_affinity=self.shared_affinity)

    # -- structure ---------------------------------------------------------------------------------
    def _levels(self) -> np.ndarray:
        """Longest-path depth of every gene (0 for genes without regulators); checks acyclicity."""
        G = self.n_genes
        level = np.zeros(G, dtype=np.int64)
        indeg = np.bincount(self._tgt, minlength=G)
        order = np.argsort(self._src, kind="stable")
        ptr = np.searchsorted(self._src[order], np.arange(G + 1))
        frontier = np.nonzero(indeg == 0)[0]
        remaining = indeg.copy()
        seen = frontier.size
        while frontier.size:
            edges = np.concatenate([order[ptr[i]:ptr[i + 1]] for i in frontier]) if frontier.size else []
            edges = np.asarray(edges, dtype=np.int64)
            if edges.size == 0:
                break
            tg = self._tgt[edges]
            np.maximum.at(level, tg, level[self._src[edges]] + 1)
            np.subtract.at(remaining, tg, 1)
            nxt = np.unique(tg[remaining[tg] == 0])
            seen += nxt.size
            frontier = nxt
        if seen < G:
            raise ConfigError("the network has a feedback loop; the simulator needs an acyclic network.")
        return level

    def _compile(self) -> list[list[_Group]]:
        plan: list[list[_Group]] = []
        tl = self.level[self._tgt]
        with np.errstate(divide="ignore"):
            log_occ = np.log(self._occ)
            log1m = np.log1p(-self._occ)
            log_alpha = np.log(self._alpha)
        for lv in range(1, int(self.level.max()) + 1 if self.n_genes else 1):
            groups = []
            for code in (1, 2):
                sel = np.nonzero((tl == lv) & (self.logic[self._tgt] == code))[0]
                if sel.size == 0:
                    continue
                sel = sel[np.argsort(self._tgt[sel], kind="stable")]
                tg = self._tgt[sel]
                starts = np.r_[0, np.nonzero(np.diff(tg))[0] + 1]
                groups.append(_Group(
                    targets=tg[starts], reg=self._src[sel], n=self._n[sel], log1m_occ=log1m[sel],
                    log_occ=log_occ[sel], act=(self._sign[sel] > 0).astype(np.float64), w=self._w[sel],
                    starts=starts,
                    log_alpha=log_alpha[sel] if code == 2 else None,
                ))
            plan.append(groups)
        return plan

    @cached_property
    def _children(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self._src, kind="stable")
        ptr = np.searchsorted(self._src[order], np.arange(self.n_genes + 1))
        return self._tgt[order], ptr

    def _gene(self, gene: str) -> int:
        try:
            return self.gene_index[gene]
        except KeyError:
            raise ConditionFormatError(
                f"gene {gene!r} is not one of the simulator's {self.n_genes} genes."
            ) from None

    def direct_targets(self, gene: str) -> list[str]:
        """Genes directly regulated by ``gene`` (sorted)."""
        kids, ptr = self._children
        i = self._gene(gene)
        return sorted(self.genes[j] for j in set(kids[ptr[i]:ptr[i + 1]].tolist()))

    def regulators(self, gene: str) -> list[str]:
        """Direct regulators of ``gene`` (sorted)."""
        i = self._gene(gene)
        return sorted(self.genes[j] for j in self._src[self._tgt == i])

    def descendants(self, gene: str) -> list[str]:
        """Every gene downstream of ``gene`` (its causal effects can reach them), sorted."""
        return sorted(self.genes[j] for j in self._descendant_idx(self._gene(gene)))

    def _descendant_idx(self, i: int) -> np.ndarray:
        kids, ptr = self._children
        seen = np.zeros(self.n_genes, dtype=bool)
        frontier = np.array([i])
        while frontier.size:
            nxt = np.concatenate([kids[ptr[j]:ptr[j + 1]] for j in frontier])
            nxt = np.unique(nxt[~seen[nxt]])
            seen[nxt] = True
            frontier = nxt
        return np.nonzero(seen)[0]

    @property
    def n_states(self) -> int:
        return self.state_log_mult.shape[0]

    @cached_property
    def network(self) -> pd.DataFrame:
        """True regulatory edges: ``regulator, target, sign, weight, K, n, logic`` (+ ``occupancy``,
        ``alpha``, ``exponent``). ``weight`` is the edge's elasticity at the nominal control state,
        ``|d log production(target) / d log x(regulator)|``; ``K`` the Hill threshold in molecules
        (``inf``/``0`` in the power-law limit)."""
        occ, n = self._occ, self._n
        slope = np.where(self._sign > 0, n * (1.0 - occ), n * occ)
        weight = (1.0 - self.basal[self._tgt]) * self._alpha * self._w * slope
        xr = self.expression[self._src]
        with np.errstate(divide="ignore", invalid="ignore"):
            K = xr * ((1.0 - occ) / occ) ** (1.0 / n)
        K = np.where(occ <= 0, np.inf, np.where(occ >= 1, 0.0, K))
        df = pd.DataFrame({
            "regulator": [self.genes[i] for i in self._src],
            "target": [self.genes[i] for i in self._tgt],
            "sign": self._sign, "weight": weight, "K": K, "n": n,
            "logic": [LOGIC_NAMES[self.logic[t]] for t in self._tgt],
            "occupancy": occ, "alpha": self._alpha, "exponent": self._w,
        })
        return df.sort_values(["target", "regulator"], kind="stable").reset_index(drop=True)

    @cached_property
    def gene_table(self) -> pd.DataFrame:
        """One row per gene: module membership, role, level, rates and measurement parameters.

        ``expression`` is the nominal control steady state (molecules); ``control_mean_umi`` the
        expected UMIs per control cell (over cell states and library sizes)."""
        G = self.n_genes
        n_targets = np.bincount(self._src, minlength=G)
        n_regs = np.bincount(self._tgt, minlength=G)
        n_desc = np.array([self._descendant_idx(i).size if n_targets[i] else 0 for i in range(G)])
        role = np.where(n_targets > 0, np.where(n_regs == 0, "master", "regulator"),
                        np.where(n_regs == 0, "constitutive", "target"))
        x = self.expression * np.exp(self._solve_log_u([CTRL], np.arange(self.n_states)))
        p = (x / x.sum(axis=1, keepdims=True)).mean(axis=0)  # control composition over cell states
        df = pd.DataFrame({"gene": self.genes})
        for col in _GENE_COLUMNS:
            if col in self.spec.genes:
                df[col] = self.spec.genes[col].astype(str).to_numpy()
        if "is_program" in self.spec.genes:
            role = np.where(self.spec.genes["is_program"].to_numpy(bool), "program", role)
        df["role"] = role
        df["level"] = self.level
        df["n_regulators"] = n_regs
        df["n_targets"] = n_targets
        df["n_descendants"] = n_desc
        df["logic"] = [LOGIC_NAMES[v] for v in self.logic]
        df["expression"] = self.expression
        df["control_mean_umi"] = self.library_size * np.exp(self.library_sd**2 / 2) * p
        df["degradation"] = self.degradation
        df["production"] = self.degradation * self.expression
        df["basal"] = self.basal
        df["crispra_fold"] = self.crispra_fold
        df["crispri_residual"] = self.crispri_residual
        df["theta"] = self.theta
        return df

    # -- perturbations -----------------------------------------------------------------------------
    def _log_pert(self, condition: str) -> list[tuple[int, float]]:
        genes = parse_condition(condition)
        idx = [self._gene(g) for g in genes]
        factor = self.crispra_fold if self.modality == "crispra" else self.crispri_residual
        return [(i, float(np.log(factor[i]))) for i in idx]

    def _shared_shift(self, condition: str) -> np.ndarray | None:
        """The condition's log multiplier of transcription from the shared response program
        (``k * v``, ``k = 1 - prod_p (1 - q_p)`` over its perturbed genes); ``None`` when off."""
        genes = parse_condition(condition)
        if not genes or not self.shared_response.any():
            return None
        k = 1.0 - np.prod([1.0 - self.shared_affinity[self._gene(g)] for g in genes])
        return k * self.shared_response

    def _canonical(self, conditions: Sequence[str] | str) -> list[str]:
        if isinstance(conditions, str):
            conditions = [conditions]
        out = [canonical_condition(c) for c in conditions]
        for c in out:
            for g in parse_condition(c):
                self._gene(g)
        return out

    # -- dynamics ----------------------------------------------------------------------------------
    @staticmethod
    def _group_log_factor(logu: np.ndarray, grp: _Group, log_b: np.ndarray, log_1mb: np.ndarray) -> np.ndarray:
        z = logu[:, grp.reg] * grp.n
        log_h = grp.w * (grp.act * z - np.logaddexp(grp.log1m_occ, grp.log_occ + z))
        if grp.log_alpha is None:
            log_a = np.add.reduceat(log_h, grp.starts, axis=1)
        else:
            log_a = np.log(np.add.reduceat(np.exp(log_h + grp.log_alpha), grp.starts, axis=1))
        return np.logaddexp(log_b[grp.targets], log_1mb[grp.targets] + log_a)

    @cached_property
    def _log_basal(self) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore"):
            return np.log(self.basal), np.log1p(-self.basal)

    def _solve_log_u(self, conditions: list[str], states: np.ndarray | None) -> np.ndarray:
        """``log(x / x_ref)`` at steady state, ``[len(conditions) * len(states), G]`` (condition-major).
        ``states=None``: the nominal state (no cell-state variation)."""
        S = 1 if states is None else len(states)
        base = np.zeros((1, self.n_genes)) if states is None else self.state_log_mult[states]
        logu = np.tile(base, (len(conditions), 1))
        for ci, cond in enumerate(conditions):
            shift = self._shared_shift(cond)
            if shift is not None:
                logu[ci * S:(ci + 1) * S] += shift
            for gi, lp in self._log_pert(cond):
                logu[ci * S:(ci + 1) * S, gi] += lp
        log_b, log_1mb = self._log_basal
        for groups in self._plan:
            for grp in groups:
                logu[:, grp.targets] += self._group_log_factor(logu, grp, log_b, log_1mb)
        return logu

    def _iter_log_u(self, conditions: list[str], progress: bool = False,
                    desc: str = "steady states") -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, log_u [stop - start, S, G])`` over chunks of conditions."""
        S = self.n_states
        step = max(1, _ROWS_PER_CHUNK // S)
        states = np.arange(S)
        bar = tqdm(total=len(conditions), desc=desc, disable=not progress, unit="cond", leave=False)
        for a in range(0, len(conditions), step):
            b = min(len(conditions), a + step)
            lu = self._solve_log_u(conditions[a:b], states).reshape(b - a, S, self.n_genes)
            yield a, b, lu
            bar.update(b - a)
        bar.close()

    def steady_state(self, conditions: Sequence[str] | str, *, cell_states: bool = False) -> np.ndarray:
        """Molecular steady states (molecules per cell).

        Returns ``[n_conditions, n_genes]`` at nominal rates, or with ``cell_states=True``
        ``[n_conditions, n_states, n_genes]``, one per cell state.
        """
        conds = self._canonical(conditions)
        if not cell_states:
            return self.expression * np.exp(self._solve_log_u(conds, None))
        out = np.empty((len(conds), self.n_states, self.n_genes))
        for a, b, lu in self._iter_log_u(conds):
            out[a:b] = self.expression * np.exp(lu)
        return out

    def rhs(self, x: np.ndarray, condition: str = CTRL, *, state: int | None = None) -> np.ndarray:
        """The ODE right-hand side ``dx/dt`` at molecule numbers ``x`` (``[G]`` or ``[B, G]``)
        under ``condition``, in cell state ``state`` (``None``: nominal rates)."""
        cond = self._canonical([condition])[0]
        x = np.asarray(x, dtype=np.float64)
        x2 = np.atleast_2d(x)
        if x2.shape[1] != self.n_genes:
            raise ConfigError(f"x has {x2.shape[1]} genes; the simulator has {self.n_genes}.")
        with np.errstate(divide="ignore"):
            logu = np.log(x2 / self.expression)
        log_f = np.zeros_like(logu)
        log_b, log_1mb = self._log_basal
        for groups in self._plan:
            for grp in groups:
                log_f[:, grp.targets] = self._group_log_factor(logu, grp, log_b, log_1mb)
        log_prod = log_f + (0.0 if state is None else self.state_log_mult[state])
        shift = self._shared_shift(cond)
        if shift is not None:
            log_prod = log_prod + shift
        for gi, lp in self._log_pert(cond):
            log_prod[:, gi] += lp
        production = self.degradation * self.expression * np.exp(log_prod)
        out = production - self.degradation * x2
        return out[0] if x.ndim == 1 else out

    # -- measurement -------------------------------------------------------------------------------
    @property
    def table(self):
        """The expected log1p-normalised value as a function of composition (cached)."""
        return log1p_table(self._theta_values, self.library_size, self.library_sd, self.target_sum)

    def _truth_from_log_u(self, lu: np.ndarray) -> np.ndarray:
        """``[C, S, G]`` log_u -> ``[C, G]`` expected log-normalised expression."""
        x = self.expression * np.exp(lu)
        p = x / x.sum(axis=-1, keepdims=True)
        return self.table(p, self._theta_class).mean(axis=1)

    def truth(self, conditions: Sequence[str] | str, *, progress: bool = False) -> np.ndarray:
        """Noise-free expected log-normalised expression ``[n_conditions, n_genes]``: the mean over
        infinitely many cells (all cell states, library sizes and count noise) of
        ``log1p(target_sum * counts / total)``."""
        conds = self._canonical(conditions)
        out = np.empty((len(conds), self.n_genes))
        for a, b, lu in self._iter_log_u(conds, progress=progress, desc="truth"):
            out[a:b] = self._truth_from_log_u(lu)
        return out

    def truth_delta(self, conditions: Sequence[str] | str) -> np.ndarray:
        """:meth:`truth` minus the truth of the control."""
        conds = self._canonical(conditions)
        t = self.truth(conds + [CTRL])
        return t[:-1] - t[-1]

    def _simulate(self, conditions: list[str], n_cells: np.ndarray, seed: int, stream: str,
                  progress: bool = False) -> dict:
        """Sample cells of ``conditions`` and compute their truth in one pass over steady states."""
        Xs: list[sp.csr_matrix] = []
        totals: list[np.ndarray] = []
        truth = np.empty((len(conditions), self.n_genes))
        mol = np.empty((len(conditions), self.n_genes))
        bar = tqdm(total=int(n_cells.sum()), desc="sampling cells", unit="cell", disable=not progress)
        for a, b, lu in self._iter_log_u(conditions):
            x = self.expression * np.exp(lu)
            mol[a:b] = x.mean(axis=1)
            p = x / x.sum(axis=-1, keepdims=True)
            truth[a:b] = self.table(p, self._theta_class).mean(axis=1)
            for k in range(b - a):
                cond = conditions[a + k]
                rng = stream_rng(seed, stream, _condition_key(cond))
                left = int(n_cells[a + k])
                while left > 0:
                    m = min(left, _CELLS_PER_CHUNK)
                    st = rng.integers(self.n_states, size=m)
                    counts, _ = sample_counts(p[k][st], self.theta, self.library_size, self.library_sd, rng)
                    X, tot = counts_to_log_csr(counts, self.target_sum)
                    Xs.append(X)
                    totals.append(tot)
                    left -= m
                    bar.update(m)
        bar.close()
        X = _stack_csr(Xs, self.n_genes)
        labels = np.repeat(np.array(conditions, dtype=object), n_cells)
        return {"X": X, "labels": labels, "n_counts": np.concatenate(totals) if totals else np.zeros(0),
                "truth": truth, "molecules": mol}

    def sample_cells(self, conditions: Sequence[str] | str, n_cells: int | Sequence[int], seed: int = 0,
                     *, progress: bool = False) -> ad.AnnData:
        """Sample cells of the same system (same network, cell states and measurement), GEARS style.

        Parameters
        ----------
        conditions
            Conditions over the simulator's genes (any, not only simulated ones).
        n_cells
            Cells per condition (one number, or one per condition).
        seed
            Seed of this draw. The stream differs from the one that made a simulation's data, so
            extra cells are new cells even with the simulation's seed.

        Returns
        -------
        AnnData with ``X`` = CSR float32 ``log1p(normalize_total(1e4))``, ``obs['condition']``,
        ``obs['n_counts']`` (UMIs per cell) and the GEARS columns, ``var['gene_name']``.
        """
        conds = self._canonical(conditions)
        counts = np.broadcast_to(np.asarray(n_cells, dtype=np.int64), (len(conds),)).copy()
        if np.any(counts < 0):
            raise ConfigError("n_cells must be >= 0.")
        res = self._simulate(conds, counts, seed, "extra_cells", progress=progress)
        return gears_anndata(res["X"], res["labels"], res["n_counts"], self.genes)

    # -- persistence (arrays + JSON-able metadata; no pickle) --------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        g = self.spec.genes
        arrays = {
            "gene_name": np.array(self.genes, dtype=str),
            "gene_expression": self.expression, "gene_degradation": self.degradation,
            "gene_basal": self.basal, "gene_logic": self.logic,
            "gene_crispra_fold": self.crispra_fold, "gene_crispri_residual": self.crispri_residual,
            "gene_theta": self.theta,
            "edge_regulator": self._src, "edge_target": self._tgt, "edge_sign": self._sign,
            "edge_n": self._n, "edge_occupancy": self._occ, "edge_alpha": self._alpha,
            "edge_exponent": self._w,
            "state_log_mult": self.state_log_mult,
        }
        if self.shared_response.any():
            arrays["shared_response"] = self.shared_response
            arrays["shared_affinity"] = self.shared_affinity
        for col in _GENE_COLUMNS:
            if col in g:
                arrays[f"gene_{col}"] = g[col].astype(str).to_numpy().astype(str)
        if "is_program" in g:
            arrays["gene_is_program"] = g["is_program"].to_numpy(bool)
        return arrays

    def state_meta(self) -> dict:
        return {"modality": self.modality, "library_size": self.library_size,
                "library_sd": self.library_sd, "target_sum": self.target_sum, "seed": self.seed}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> Simulator:
        genes = pd.DataFrame({
            "gene": arrays["gene_name"].astype(str),
            "expression": arrays["gene_expression"], "degradation": arrays["gene_degradation"],
            "basal": arrays["gene_basal"],
            "logic": [LOGIC_NAMES[int(v)] for v in arrays["gene_logic"]],
            "crispra_fold": arrays["gene_crispra_fold"],
            "crispri_residual": arrays["gene_crispri_residual"], "theta": arrays["gene_theta"],
        })
        for col in _GENE_COLUMNS:
            if f"gene_{col}" in arrays:
                genes[col] = arrays[f"gene_{col}"].astype(str)
        if "gene_is_program" in arrays:
            genes["is_program"] = arrays["gene_is_program"].astype(bool)
        edges = pd.DataFrame({
            "regulator": arrays["edge_regulator"], "target": arrays["edge_target"],
            "sign": arrays["edge_sign"], "n": arrays["edge_n"], "occupancy": arrays["edge_occupancy"],
            "alpha": arrays["edge_alpha"], "exponent": arrays["edge_exponent"],
        })
        return cls(NetworkSpec(genes=genes, edges=edges), state_log_mult=arrays["state_log_mult"],
                   modality=meta["modality"], library_size=meta["library_size"],
                   library_sd=meta["library_sd"], target_sum=meta["target_sum"], seed=meta["seed"],
                   shared_response=arrays.get("shared_response"), shared_affinity=arrays.get("shared_affinity"))

    def __repr__(self) -> str:
        return (f"Simulator({self.n_genes} genes, {len(self._src)} edges, {int(self.level.max()) + 1} levels, "
                f"{self.n_states} cell states, {self.modality})")


def _stack_csr(blocks: list[sp.csr_matrix], n_cols: int) -> sp.csr_matrix:
    """Stack CSR blocks row-wise, releasing each block as it is copied (one copy at a time)."""
    nnz = sum(b.nnz for b in blocks)
    rows = sum(b.shape[0] for b in blocks)
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=np.int32)
    indptr = np.empty(rows + 1, dtype=np.int64)
    indptr[0] = 0
    at, r = 0, 0
    while blocks:
        b = blocks.pop(0)
        data[at:at + b.nnz] = b.data
        indices[at:at + b.nnz] = b.indices
        indptr[r + 1:r + 1 + b.shape[0]] = b.indptr[1:] + at
        at += b.nnz
        r += b.shape[0]
    return sp.csr_matrix((data, indices, indptr), shape=(rows, n_cols))


def gears_anndata(X: sp.csr_matrix, labels: np.ndarray, n_counts: np.ndarray, genes: list[str]) -> ad.AnnData:
    """Cells as a GEARS-style AnnData (``condition``, ``cell_type``, ``dose_val``, ``control``,
    ``condition_name``; ``var['gene_name']``)."""
    labels = np.asarray(labels, dtype=object).astype(str)
    width = max(6, len(str(len(labels))))
    obs = pd.DataFrame({
        "condition": pd.Categorical(labels),
        "cell_type": pd.Categorical(["simulated"] * len(labels)),
        "dose_val": pd.Categorical(np.where(labels == CTRL, "1", np.char.add("1+", np.full(len(labels), "1")))),
        "control": (labels == CTRL).astype(np.int64),
        "condition_name": pd.Categorical(np.char.add(np.char.add("simulated_", labels.astype(str)), "_1+1")),
        "n_counts": np.asarray(n_counts, dtype=np.float64),
    }, index=[f"cell{i:0{width}d}" for i in range(len(labels))])
    var = pd.DataFrame({"gene_name": genes}, index=pd.Index(genes, name=None))
    return ad.AnnData(X=X, obs=obs, var=var)
