"""Random gene-regulatory networks with modules: a layered DAG with Hill kinetics.

Structure
---------
Genes are split into modules (pathways) of unequal size, grouped into pathway groups; each module is
split into sub-modules. A fraction of genes are regulators, placed on hierarchy levels
``0 .. n_regulator_levels - 1`` (every module has a level-0 master regulator; level sizes grow by
``level_growth`` per level, a pyramid). Every regulated gene draws ``1 + Poisson(mean_indegree - 1)``
regulators, each slot filled from its own sub-module, its module, its pathway group or anywhere
(probabilities ``p_same_*``), among regulators on higher levels (so the graph is acyclic), with
probability proportional to a log-normal "hubness" (heavy-tailed out-degrees) times
``level_decay`` to the power of the level gap beyond one (deep cascades). Regulation is thus mostly
intra-module, with cross-module edges, as in the nested modular organisation of real networks.

Programs
--------
``n_programs`` regulators of the deepest regulator level are "program" hubs: each integrates a
fraction ``program_input_frac`` of the regulators above it, drawn from the whole network by
hubness (a fraction ``program_input_activator_frac`` of these inputs activate), and each regulated
non-regulator gene listens to each program with probability ``program_frac`` (weaker edges,
``program_weight``, that saturate, ``program_occupancy``). A program acts on a listening gene like an
extra enhancer: the gene sums its inputs (OR logic) with probability
``interaction_strength * program_or_frac``. Perturbations of many regulators thus converge on a few
broad expression programs, as Norman et al. (Science 2019) observed for CRISPRa in K562 cells
(erythroid, granulocyte, megakaryocyte, pro-growth and cell-cycle-arrest programs): single effects
are broad and shared between genes, and saturating programs make many doubles sub-additive.

Why acyclic
-----------
Each steady state of a DAG is unique and globally stable (the Jacobian is triangular with diagonal
``-gamma``) and is computed exactly, level by level, vectorised over conditions and cell states. A
network with feedback would need a numerical root-finder per condition and state and could be
multistable, which would make the "noise-free truth" ill-defined. The price is that the simulator
cannot produce feedback-driven phenomena (oscillations, bistable switches).

Kinetics
--------
Gene ``i`` obeys ``dx_i/dt = V_i * m_si * F_i(x) * pi_i - gamma_i * x_i``, with ``m_si`` the cell
state's transcription multiplier, ``pi_i`` the perturbation factor and the regulation factor

* ``F_i = b_i + (1 - b_i) * prod_j r_ij(x_j)`` for cooperative (AND-like) genes,
* ``F_i = b_i + (1 - b_i) * sum_j alpha_ij r_ij(x_j)`` for additive (OR-like) genes (SERGIO's form,
  Dibaeinia & Sinha, Cell Systems 2020),

with basal share ``b_i`` and normalised responses ``r_ij = (h_ij(x_j) / h_ij(x_j_ref)) ** w_ij``:
Hill functions ``h = x^n / (K^n + x^n)`` (activators) or ``K^n / (K^n + x^n)`` (repressors), raised
to an edge weight ``w`` in (0, 1] (the share of the target's control the edge carries; ``w = 1`` is
the plain Hill product), and ``x_ref`` the nominal control steady state, so that ``F_i = 1`` at
control and ``x_i_ref = V_i / gamma_i`` is the gene's drawn expression level. With ``u = x / x_ref``
and ``o = x_ref^n / (K^n + x_ref^n)`` (the occupancy at control) the responses are
``(u^n / (1 - o + o u^n))^w`` and ``(1 / (1 - o + o u^n))^w``. The elasticity of an edge at control
is ``w n (1 - o)`` (activator) or ``w n o`` (repressor), times ``(1 - b) alpha``. Each gene's input
gain, the L2 norm of its inputs' elasticities, is capped at ``max_gain`` by scaling its weights, so
that cell-to-cell variation does not amplify along cascades (the log-variance inherited from
independent upstream noise is ``sum_j e_j^2 var_j``).

Interaction strength
--------------------
Random networks draw, per edge, a weight, a Hill coefficient ``n1`` and an occupancy ``o1`` for
``interaction_strength = 1``; at strength ``s`` the edge has ``n = 1 + s (n1 - 1)`` (cooperativity)
and occupancy ``s o1`` (activators) or ``1 - s o1`` (repressors), so ``o1`` measures the distance
from the power-law limit.
``s`` also scales the share of OR genes, the basal shares and the share of "off gates" (AND genes
with a basal share of 0.9-0.99, whose regulated term is small at control so that mostly a joint
change of their inputs turns them on). At ``s = 0`` every response is the power law ``u^(+-w)``
with ``w <= 1``: the model is log-linear (doubles exactly additive in log molecules) and cascades
attenuate. At ``s = 1`` (the calibrated default) genetic interactions of doubles (synergy,
buffering, epistasis, neomorphic effects) arise from saturation, cooperativity, basal floors and
converging paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from priorgnn.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["NetworkSpec", "random_network", "standard_network", "LOGIC_NAMES"]

LOGIC_NAMES = ("none", "and", "or")  # logic codes 0, 1, 2


@dataclass
class NetworkSpec:
    """A network in the simulator's normalised form (see the module docstring).

    ``genes`` columns: ``gene``, ``expression`` (x_ref, molecules), ``degradation``, ``basal``,
    ``logic`` (``none``/``and``/``or``), ``crispra_fold``, ``crispri_residual``, ``theta`` and
    optionally ``module``, ``submodule``, ``group`` (strings).
    ``edges`` columns: ``regulator``, ``target`` (gene indices), ``sign`` (+1/-1), ``n``,
    ``occupancy``, ``alpha`` (OR share; 1 for AND edges), ``exponent`` (the edge weight ``w``).
    """

    genes: pd.DataFrame
    edges: pd.DataFrame


# -- random networks -------------------------------------------------------------------------------
def _split_sizes(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integer sizes proportional to ``weights`` summing to ``total``, each >= ``minimum``."""
    k = len(weights)
    base = np.full(k, minimum, dtype=np.int64)
    rest = total - base.sum()
    share = weights / weights.sum() * rest
    sizes = base + np.floor(share).astype(np.int64)
    remainder = total - sizes.sum()
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    sizes[order[:remainder]] += 1
    return sizes


def random_network(cfg, rng: np.random.Generator) -> NetworkSpec:
    """Draw a modular layered network from a :class:`~priorgnn.simulate.config.SimulatorConfig`."""
    G = cfg.n_genes
    s = cfg.interaction_strength
    # modules, sub-modules, groups (genes in internal module order; permuted at the end)
    msizes = _split_sizes(G, rng.lognormal(0.0, cfg.module_size_sd, cfg.n_modules), 3)
    module = np.repeat(np.arange(cfg.n_modules), msizes)
    submodule = np.empty(G, dtype=np.int64)  # global sub-module id
    sub_of_module: list[np.ndarray] = []
    start, next_sub = 0, 0
    for m, size in enumerate(msizes):
        k = min(cfg.submodules_per_module, size)
        ssizes = _split_sizes(size, rng.lognormal(0.0, 0.25, k), 1)
        ids = np.arange(next_sub, next_sub + k)
        submodule[start:start + size] = np.repeat(ids, ssizes)
        sub_of_module.append(ids)
        start += size
        next_sub += k
    group = module // cfg.modules_per_group

    # regulators: per module proportional to size, one per sub-module first
    n_reg = max(cfg.n_modules, round(cfg.regulator_frac * G))
    rsizes = _split_sizes(n_reg, msizes.astype(float), 1)
    is_reg = np.zeros(G, dtype=bool)
    level = np.zeros(G, dtype=np.int64)
    R = cfg.n_regulator_levels
    level_w = cfg.level_growth ** np.arange(R, dtype=float)  # a pyramid: few masters, more below
    level_w = level_w / level_w.sum()
    for m in range(cfg.n_modules):
        members = np.nonzero(module == m)[0]
        want = min(int(rsizes[m]), len(members) - 1) if len(members) > 1 else 1
        chosen: list[int] = []
        for sid in rng.permutation(sub_of_module[m]):
            if len(chosen) >= want:
                break
            chosen.append(int(rng.choice(np.nonzero(submodule == sid)[0])))
        pool = np.setdiff1d(members, chosen)
        extra = want - len(chosen)
        if extra > 0:
            chosen.extend(rng.choice(pool, size=extra, replace=False).tolist())
        chosen_arr = np.array(chosen)
        is_reg[chosen_arr] = True
        lv = rng.choice(R, size=len(chosen_arr), p=level_w)
        lv[0] = 0  # the module's master regulator
        level[chosen_arr] = lv
    hub = rng.lognormal(0.0, cfg.hub_sd, G)

    # program hubs: regulators of the deepest level, spread over pathway groups
    program = np.zeros(G, dtype=bool)
    if cfg.n_programs:
        deepest = np.nonzero(is_reg & (level == R - 1))[0]
        by_group = [list(rng.permutation(deepest[group[deepest] == g])) for g in np.unique(group[deepest])]
        chosen_p: list[int] = []
        while len(chosen_p) < min(cfg.n_programs, deepest.size):
            for gi in rng.permutation(len(by_group)):
                if by_group[gi] and len(chosen_p) < cfg.n_programs:
                    chosen_p.append(int(by_group[gi].pop()))
        program[chosen_p] = True

    # which non-regulators are constitutive
    nonreg = np.nonzero(~is_reg)[0]
    constitutive = np.zeros(G, dtype=bool)
    constitutive[nonreg[rng.random(nonreg.size) < cfg.constitutive_frac]] = True
    regulated = (is_reg & (level > 0)) | (~is_reg & ~constitutive)

    # edges
    p_sub, p_mod, p_grp = cfg.p_same_submodule, cfg.p_same_module, cfg.p_same_group
    cat_p = np.array([p_sub, p_mod, p_grp, max(0.0, 1.0 - p_sub - p_mod - p_grp)])
    cat_p = cat_p / cat_p.sum()
    reg_idx = np.nonzero(is_reg)[0]
    regs_src: list[int] = []
    regs_tgt: list[int] = []
    for i in np.nonzero(regulated)[0]:
        if is_reg[i]:
            cand_all = reg_idx[level[reg_idx] < level[i]]
        else:
            cand_all = reg_idx
        cand_all = cand_all[cand_all != i]
        if cand_all.size == 0:
            continue
        if program[i]:  # a program hub integrates many upstream regulators from anywhere
            k = max(1, int(round(cfg.program_input_frac * cand_all.size)))
            w = hub[cand_all]
            picked_arr = rng.choice(cand_all, size=k, replace=False, p=w / w.sum())
            regs_src.extend(sorted(picked_arr.tolist()))
            regs_tgt.extend([int(i)] * k)
            continue
        k = int(min(cfg.max_indegree, 1 + rng.poisson(cfg.mean_indegree - 1), cand_all.size))
        masks = (
            submodule[cand_all] == submodule[i],
            (module[cand_all] == module[i]) & (submodule[cand_all] != submodule[i]),
            (group[cand_all] == group[i]) & (module[cand_all] != module[i]),
            group[cand_all] != group[i],
        )
        # prefer regulators of the level just above (deep cascades); targets count as level R
        depth = (level[i] if is_reg[i] else R) - 1 - level[cand_all]
        pref = hub[cand_all] * cfg.level_decay ** depth
        picked: set[int] = set()
        for _ in range(k):
            cat = int(rng.choice(4, p=cat_p))
            # fall back to the nearest non-empty category (own sub-module first)
            order = [cat] + [c for c in (0, 1, 2, 3) if c != cat]
            for c in order:
                sel = masks[c] & ~np.isin(cand_all, list(picked)) if picked else masks[c]
                cand = cand_all[sel]
                if cand.size:
                    w = pref[sel]
                    j = int(rng.choice(cand, p=w / w.sum()))
                    picked.add(j)
                    break
        regs_src.extend(sorted(picked))
        regs_tgt.extend([int(i)] * len(picked))
    templates: dict[int, int] = {}
    if cfg.prior_informativeness > 0:
        templates = _share_programs(regs_src, regs_tgt, submodule, is_reg, level, program,
                                    cfg.prior_informativeness, rng)
    # program edges: regulated non-regulator genes listen to programs
    hubs = np.nonzero(program)[0]
    n_regular = len(regs_src)
    if hubs.size:
        candidates = np.nonzero(~is_reg & ~constitutive)[0]
        have = set(zip(regs_src, regs_tgt))
        for h in hubs.tolist():  # each gene listens to each program independently
            for t in candidates[rng.random(candidates.size) < cfg.program_frac].tolist():
                if (h, t) not in have:
                    regs_src.append(h)
                    regs_tgt.append(t)
    src = np.array(regs_src, dtype=np.int64)
    tgt = np.array(regs_tgt, dtype=np.int64)
    E = src.size
    is_program_edge = np.arange(E) >= n_regular
    into_program = program[tgt]

    # edge parameters
    act_p = np.where(into_program, cfg.program_input_activator_frac, cfg.activator_frac)
    sign = np.where(rng.random(E) < act_p, 1, -1).astype(np.int64)
    if cfg.prior_informativeness > 0:
        _copy_template_signs(src, tgt, sign, submodule, program, templates)
    n_prog = int(is_program_edge.sum())
    weight = rng.uniform(*cfg.weight_range, size=E)
    weight[is_program_edge] = rng.uniform(*cfg.program_weight, size=n_prog)
    hill1 = rng.uniform(*cfg.hill_range, size=E)
    off = rng.uniform(*cfg.occupancy_range, size=E)  # distance from the power-law limit at s = 1
    off[is_program_edge] = rng.uniform(*cfg.program_occupancy, size=n_prog)
    n = 1.0 + s * (hill1 - 1.0)
    occ = np.where(sign > 0, s * off, 1.0 - s * off)
    indeg = np.bincount(tgt, minlength=G)

    # gene logic, OR shares and basal shares
    logic = np.where(indeg > 0, 1, 0).astype(np.int64)
    multi = indeg >= 2
    listens = np.zeros(G, dtype=bool)
    listens[tgt[is_program_edge]] = True
    p_or = s * np.where(listens, cfg.program_or_frac, cfg.or_logic_frac)
    logic[multi & (rng.random(G) < p_or)] = 2
    alpha = np.ones(E)
    for i in np.nonzero(logic == 2)[0]:
        e = np.nonzero(tgt == i)[0]
        alpha[e] = rng.dirichlet(np.full(e.size, 2.0))
    basal = np.zeros(G)
    if s > 0:
        m = cfg.basal_mean
        if m > 0:
            basal = s * rng.beta(1.0, (1.0 - m) / m, size=G)
        gate = (logic == 1) & multi & (rng.random(G) < s * cfg.off_gate_frac)
        basal[gate] = rng.uniform(0.9, 0.99, size=int(gate.sum()))
    basal[indeg == 0] = 0.0

    # cap each gene's input gain at control, the L2 norm over its inputs of the elasticities
    # (1 - b) alpha w n (1 - o) (activators) or (1 - b) alpha w n o (repressors), at max_gain by
    # scaling its input weights: the log-variance a gene inherits from independent upstream noise,
    # sum_j e_j^2 var_j, then does not grow along cascades
    slope = np.where(sign > 0, n * (1.0 - occ), n * occ)
    elasticity = (1.0 - basal[tgt]) * alpha * weight * slope
    total = np.sqrt(np.bincount(tgt, weights=elasticity**2, minlength=G))
    scale = np.minimum(1.0, cfg.max_gain / np.maximum(total, 1e-12))
    weight = weight * scale[tgt]

    # expression levels, degradation, perturbation strengths, dispersion
    expr = rng.lognormal(0.0, cfg.expression_sd, G)
    expr[is_reg] *= cfg.regulator_expression
    expr *= 50.0 * G / expr.sum()  # 50 molecules per gene on average (sets the ODE's units only)
    degr = rng.lognormal(0.0, cfg.degradation_sd, G)
    fold = np.maximum(1.5, np.exp(np.log(cfg.crispra_fold) + cfg.crispra_fold_sd * rng.standard_normal(G)))
    resid = np.minimum(0.8, np.exp(np.log(cfg.crispri_residual)
                                   + cfg.crispri_residual_sd * rng.standard_normal(G)))
    theta = _draw_dispersion(cfg, rng, G)

    # final gene order: a random permutation, so that neither index nor name reveals the module
    perm = rng.permutation(G)  # perm[new] = old
    inv = np.empty(G, dtype=np.int64)
    inv[perm] = np.arange(G)
    width = max(4, len(str(G)))
    names = [f"G{i + 1:0{width}d}" for i in range(G)]
    n_sub = int(submodule.max()) + 1
    genes = pd.DataFrame({
        "gene": names,
        "module": [f"M{module[o] + 1:02d}" for o in perm],
        "submodule": [_sub_name(module[o], submodule[o], sub_of_module) for o in perm],
        "group": [f"P{group[o] + 1:02d}" for o in perm],
        "expression": expr[perm],
        "degradation": degr[perm],
        "basal": basal[perm],
        "logic": [LOGIC_NAMES[v] for v in logic[perm]],
        "crispra_fold": fold[perm],
        "crispri_residual": resid[perm],
        "theta": theta[perm],
        "is_regulator": is_reg[perm],
        "is_program": program[perm],
    })
    edges = pd.DataFrame({
        "regulator": inv[src], "target": inv[tgt], "sign": sign, "n": n, "occupancy": occ,
        "alpha": alpha, "exponent": weight,
    })
    log.debug("network: %d genes, %d modules, %d sub-modules, %d regulators, %d edges",
              G, cfg.n_modules, n_sub, int(is_reg.sum()), E)
    return NetworkSpec(genes=genes, edges=edges)


def _templates(src: np.ndarray, submodule: np.ndarray, is_reg: np.ndarray, program: np.ndarray) -> dict[int, int]:
    """``{sub-module: template regulator}``: the sub-module's (non-program) regulator with the most
    direct targets (ties: the lowest index)."""
    out_deg = np.bincount(src, minlength=len(submodule)) if len(src) else np.zeros(len(submodule), int)
    out: dict[int, int] = {}
    for r in np.nonzero(is_reg & ~program)[0]:
        s = int(submodule[r])
        if s not in out or out_deg[r] > out_deg[out[s]]:
            out[s] = int(r)
    return out


def _share_programs(regs_src: list[int], regs_tgt: list[int], submodule: np.ndarray, is_reg: np.ndarray,
                    level: np.ndarray, program: np.ndarray, rho: float,
                    rng: np.random.Generator) -> dict[int, int]:
    """Prior informativeness: every regulator of a sub-module copies each direct target of the
    sub-module's template regulator with probability ``rho``, and drops each of its own other
    (non-program) targets with probability ``rho`` (in place; signs follow in
    :func:`_copy_template_signs`). A copy that would break acyclicity (a regulator target on the
    copier's level or above) or duplicate an edge is skipped. Returns the templates."""
    src = np.asarray(regs_src, dtype=np.int64)
    tgt = np.asarray(regs_tgt, dtype=np.int64)
    templates = _templates(src, submodule, is_reg, program)
    have = set(zip(regs_src, regs_tgt))
    drop: set[tuple[int, int]] = set()
    for r in np.nonzero(is_reg & ~program)[0].tolist():
        t = templates.get(int(submodule[r]))
        if t is None or t == r:
            continue
        shared = set(tgt[src == t].tolist())
        for target in tgt[src == r].tolist():
            # the copier's own other targets (not program hubs) are dropped with the same probability
            if target not in shared and not program[target] and rng.random() < rho:
                drop.add((r, target))
        for target in sorted(shared):
            if target == r or (r, target) in have or program[target]:
                continue
            if is_reg[target] and level[target] <= level[r]:
                continue
            if rng.random() < rho:
                regs_src.append(r)
                regs_tgt.append(target)
                have.add((r, target))
    if drop:
        keep = [i for i, e in enumerate(zip(regs_src, regs_tgt)) if e not in drop]
        regs_src[:] = [regs_src[i] for i in keep]
        regs_tgt[:] = [regs_tgt[i] for i in keep]
    return templates


def _copy_template_signs(src: np.ndarray, tgt: np.ndarray, sign: np.ndarray, submodule: np.ndarray,
                         program: np.ndarray, templates: dict[int, int]) -> None:
    """Give every edge from a regulator to a target that its sub-module's template also regulates the
    template's sign (in place): co-annotated regulators then move shared targets the same way."""
    tsign = {(int(a), int(b)): int(s) for a, b, s in zip(src, tgt, sign)}
    for e in range(len(src)):
        r = int(src[e])
        t = templates.get(int(submodule[r]))
        if t is None or t == r or program[r]:
            continue
        s = tsign.get((t, int(tgt[e])))
        if s is not None:
            sign[e] = s


def _sub_name(m: int, sid: int, sub_of_module: list[np.ndarray]) -> str:
    local = int(np.nonzero(sub_of_module[m] == sid)[0][0])
    return f"M{m + 1:02d}.{chr(ord('a') + local) if local < 26 else local}"


def _draw_dispersion(cfg, rng: np.random.Generator, G: int) -> np.ndarray:
    """Per-gene NB theta snapped to ``n_dispersion_classes`` log-spaced values."""
    if not np.isfinite(cfg.dispersion):
        return np.full(G, np.inf)
    raw = np.log(cfg.dispersion) + cfg.dispersion_sd * rng.standard_normal(G)
    k = cfg.n_dispersion_classes
    if k == 1 or cfg.dispersion_sd == 0:
        return np.full(G, float(cfg.dispersion))
    grid = np.log(cfg.dispersion) + cfg.dispersion_sd * np.linspace(-2.0, 2.0, k)
    idx = np.abs(raw[:, None] - grid[None, :]).argmin(axis=1)
    return np.exp(grid[idx])


# -- explicit networks in standard Hill form ------------------------------------------------------
def standard_network(genes: pd.DataFrame, edges: pd.DataFrame) -> NetworkSpec:
    """Convert a network written in standard form to the normalised form.

    ``genes`` columns: ``gene``, ``basal_rate`` (beta), ``max_rate`` (kappa; AND genes and genes
    without regulators), ``degradation`` (gamma), optional ``logic`` (``and``/``or``, default
    ``and``), ``crispra_fold``, ``crispri_residual``, ``theta``, ``module``, ``submodule``,
    ``group``. ``edges`` columns: ``regulator``, ``target`` (gene names), ``sign`` (+1/-1), ``K``,
    ``n`` and, for targets with OR logic, ``max_rate`` (kappa_ij).

    Production is ``beta + kappa * prod_j h_j(x_j)`` (AND; an empty product is 1) or
    ``beta + sum_j kappa_ij h_j(x_j)`` (OR), with ``h`` as in the module docstring.
    """
    g = genes.reset_index(drop=True).copy()
    names = g["gene"].astype(str).tolist()
    if len(set(names)) != len(names):
        raise ConfigError("gene names in the network must be unique.")
    index = {n: i for i, n in enumerate(names)}
    e = edges.reset_index(drop=True).copy()
    for col in ("regulator", "target", "sign", "K", "n"):
        if col not in e:
            raise ConfigError(f"network edges need a {col!r} column.")
    unknown = sorted((set(e["regulator"]) | set(e["target"])) - set(names))
    if unknown:
        raise ConfigError(f"edges name genes that are not in the gene table: {unknown[:8]}.")
    src = e["regulator"].map(index).to_numpy(np.int64)
    tgt = e["target"].map(index).to_numpy(np.int64)
    K = e["K"].to_numpy(float)
    n = e["n"].to_numpy(float)
    sign = np.sign(e["sign"].to_numpy(float)).astype(np.int64)
    if np.any(~np.isfinite(K)) or np.any(K <= 0) or np.any(n <= 0) or np.any(sign == 0):
        raise ConfigError("every edge needs a finite K > 0, n > 0 and sign +1 or -1.")
    G = len(names)
    logic_s = g.get("logic", pd.Series(["and"] * G)).fillna("and").astype(str).str.lower()
    beta = g["basal_rate"].to_numpy(float)
    kappa = g.get("max_rate", pd.Series(np.zeros(G))).fillna(0.0).to_numpy(float)
    gamma = g["degradation"].to_numpy(float)
    if np.any(gamma <= 0):
        raise ConfigError("degradation rates must be > 0.")
    edge_kappa = e["max_rate"].to_numpy(float) if "max_rate" in e else np.full(len(e), np.nan)

    order = _topological_order(G, src, tgt, names)
    x_ref = np.zeros(G)
    occ = np.zeros(len(e))
    alpha = np.ones(len(e))
    basal = np.zeros(G)
    logic = np.zeros(G, dtype=np.int64)
    for i in order:
        ein = np.nonzero(tgt == i)[0]
        if ein.size == 0:
            P = beta[i] + kappa[i]
            logic[i] = 0
        else:
            xr = x_ref[src[ein]]
            o = xr ** n[ein] / (K[ein] ** n[ein] + xr ** n[ein])
            occ[ein] = o
            h = np.where(sign[ein] > 0, o, 1.0 - o)
            if logic_s[i] == "or":
                kij = edge_kappa[ein]
                if np.any(~np.isfinite(kij)):
                    raise ConfigError(f"gene {names[i]!r} has OR logic: give each of its edges a max_rate.")
                reg = kij * h
                P = beta[i] + reg.sum()
                alpha[ein] = reg / reg.sum() if reg.sum() > 0 else 1.0 / ein.size
                logic[i] = 2
            elif logic_s[i] == "and":
                P = beta[i] + kappa[i] * np.prod(h)
                logic[i] = 1
            else:
                raise ConfigError(f"gene {names[i]!r}: logic must be 'and' or 'or', not {logic_s[i]!r}.")
        if not P > 0:
            raise ConfigError(
                f"gene {names[i]!r} has zero production at control; give it a basal_rate > 0."
            )
        basal[i] = beta[i] / P if ein.size else 0.0
        x_ref[i] = P / gamma[i]
    out = pd.DataFrame({
        "gene": names,
        "expression": x_ref,
        "degradation": gamma,
        "basal": basal,
        "logic": [LOGIC_NAMES[v] for v in logic],
        "crispra_fold": g.get("crispra_fold", pd.Series(np.full(G, 10.0))).to_numpy(float),
        "crispri_residual": g.get("crispri_residual", pd.Series(np.full(G, 0.1))).to_numpy(float),
        "theta": g.get("theta", pd.Series(np.full(G, np.inf))).to_numpy(float),
        "is_regulator": np.isin(np.arange(G), src),
    })
    for col in ("module", "submodule", "group"):
        if col in g:
            out[col] = g[col].astype(str).to_numpy()
    e_out = pd.DataFrame({"regulator": src, "target": tgt, "sign": sign, "n": n, "occupancy": occ,
                          "alpha": alpha, "exponent": np.ones(len(e))})
    return NetworkSpec(genes=out, edges=e_out)


def _topological_order(G: int, src: np.ndarray, tgt: np.ndarray, names: list[str]) -> list[int]:
    indeg = np.bincount(tgt, minlength=G)
    children: list[list[int]] = [[] for _ in range(G)]
    for a, b in zip(src, tgt):
        children[a].append(int(b))
    ready = [i for i in range(G) if indeg[i] == 0]
    order: list[int] = []
    indeg = indeg.copy()
    while ready:
        i = ready.pop()
        order.append(i)
        for c in children[i]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if len(order) < G:
        cyc = [names[i] for i in range(G) if indeg[i] > 0][:8]
        raise ConfigError(
            f"the network has a feedback loop through {cyc}; the simulator needs an acyclic network "
            "(each steady state is then unique and stable). Remove an edge of the loop."
        )
    return order
