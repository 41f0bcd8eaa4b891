"""A simulation: the perturbation design, the sampled cells, the truth and the knowledge files.

:func:`simulate` builds one from a preset (deterministic given preset, seed and overrides) and, with
``out=``, writes it to a folder::

    OUT/
      data.h5ad        cells, GEARS style: obs['condition'] ('ctrl', 'A+ctrl', 'A+B'), var['gene_name'],
                       X = CSR float32 log1p(normalize_total(1e4)); obs['n_counts'] = UMIs per cell
      truth.h5ad       one row per simulated condition (ctrl included): X = noise-free expected
                       log-normalised expression; layers 'molecules' (steady state averaged over cell
                       states) and 'molecules_nominal' (at nominal rates)
      network.csv      true regulatory edges: regulator, target, sign, weight, K, n, logic, ...
      genes.csv        gene, module, submodule, group, role, level, rates, measurement parameters
      go.obo           GO-like ontology (OBO 1.2); with real gene names, the real ontology's terms that
                       the genes' annotations reach (priorgnn.simulate.realgo)
      annotations.gaf  gene annotations (GAF 2.2) at the chosen fidelity (with real gene names: the real
                       annotation lines of the genes); knowledge.json its settings
      simulator.npz    the simulator's arrays (network, rates, cell states), no pickle
      simulator.json   config, version, config hash, design, summary (written last: its presence
                       marks a complete folder)

:func:`load_simulation` reloads a folder without re-sampling cells; :meth:`Simulation.truth` still
works for any condition over the simulator's genes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

import priorgnn
from priorgnn.io import atomic_path, check_output_dir, read_json, sha256_file, write_csv, write_h5ad, write_json
from priorgnn.data.conditions import CTRL, canonical_condition, make_condition
from priorgnn.data.dataset import PerturbationData
from priorgnn.data.io import from_anndata
from priorgnn.errors import ConfigError, DataValidationError, PriorGNNError
from priorgnn.simulate.config import SIMULATOR_VERSION, SimulatorConfig
from priorgnn.simulate.ode import Simulator, gears_anndata, stream_rng
from priorgnn.simulate.ontology import GAF_NAME, OBO_NAME, write_knowledge
from priorgnn.simulate.realgo import (
    GO_DIR_ENV,
    REAL_GO_FIDELITY,
    go_files,
    is_real_go,
    load_real_go,
    write_real_knowledge,
)

log = logging.getLogger(__name__)

__all__ = ["Simulation", "simulate", "load_simulation", "design_conditions"]

_FORMAT = 1
_FILES = ("data.h5ad", "truth.h5ad", "network.csv", "genes.csv", OBO_NAME, GAF_NAME, "simulator.npz")
_JSON = "simulator.json"


@dataclass
class Simulation:
    """A simulated data set with its mechanistic model and ground truth.

    Attributes
    ----------
    data
        The cells as a validated :class:`~priorgnn.data.dataset.PerturbationData`.
    simulator
        The mechanistic model (:class:`~priorgnn.simulate.ode.Simulator`).
    config
        The :class:`~priorgnn.simulate.config.SimulatorConfig` that made it.
    conditions
        Simulated conditions, ``ctrl`` first, then singles and doubles (sorted).
    path
        The folder it lives in (``None`` for an in-memory simulation).
    """

    data: PerturbationData
    simulator: Simulator
    config: SimulatorConfig
    conditions: list[str]
    path: Path | None = None
    preset: str | None = None
    knowledge: dict[str, Any] = field(default_factory=dict)
    stored_truth: np.ndarray | None = None  # [len(conditions), G]
    summary: dict[str, Any] = field(default_factory=dict)
    #: the real GO files that named the genes (``gene_names="real_go"``; not kept on disk)
    real_go: Any = field(default=None, repr=False)

    @property
    def config_hash(self) -> str:
        return self.config.hash()

    @property
    def network(self) -> pd.DataFrame:
        """True regulatory edges (see :attr:`Simulator.network`)."""
        return self.simulator.network

    @property
    def genes(self) -> pd.DataFrame:
        """The gene table (module, role, level, rates)."""
        return self.simulator.gene_table

    @property
    def obo_path(self) -> Path | None:
        """The GO-like ontology (``None`` for an in-memory simulation: see :func:`write_knowledge`)."""
        return None if self.path is None else self.path / OBO_NAME

    @property
    def gaf_path(self) -> Path | None:
        """The gene annotations (``None`` for an in-memory simulation)."""
        return None if self.path is None else self.path / GAF_NAME

    @property
    def singles(self) -> list[str]:
        return [c for c in self.conditions if c.endswith(f"+{CTRL}")]

    @property
    def doubles(self) -> list[str]:
        return [c for c in self.conditions if c != CTRL and not c.endswith(f"+{CTRL}")]

    def truth(self, conditions) -> np.ndarray:
        """Noise-free expected log-normalised expression ``[n, n_genes]`` for any conditions over
        the simulator's genes (stored rows for simulated ones, computed for the others)."""
        if isinstance(conditions, str):
            conditions = [conditions]
        conds = [canonical_condition(c) for c in conditions]
        out = np.empty((len(conds), self.simulator.n_genes))
        row = {c: i for i, c in enumerate(self.conditions)}
        missing = [c for c in conds if c not in row or self.stored_truth is None]
        computed = {}
        if missing:
            uniq = list(dict.fromkeys(missing))
            computed = dict(zip(uniq, self.simulator.truth(uniq)))
        for i, c in enumerate(conds):
            out[i] = computed[c] if c in computed else self.stored_truth[row[c]]
        return out

    def truth_delta(self, conditions) -> np.ndarray:
        """:meth:`truth` minus the truth of ``ctrl``."""
        if isinstance(conditions, str):
            conditions = [conditions]
        t = self.truth(list(conditions) + [CTRL])
        return t[:-1] - t[-1]

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return (f"Simulation({self.preset or 'custom'}, seed {self.config.seed}, {self.data.n_cells} cells x "
                f"{self.data.n_genes} genes, {len(self.singles)} singles, {len(self.doubles)} doubles{where})")

    # -- writing -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, truth_molecules: dict[str, np.ndarray] | None = None,
             write_data: bool = True) -> Path:
        """Write the folder described in the module docstring (atomically, file by file).
        ``write_data=False`` keeps an already written ``data.h5ad``."""
        path = check_output_dir(path)
        path.mkdir(parents=True, exist_ok=True)
        sim = self.simulator
        if write_data:
            adata = self.data.adata.copy()
            adata.var["gene_name"] = adata.var_names.to_numpy()
            write_h5ad(path / "data.h5ad", adata)
            del adata
        truth = self.truth(self.conditions)
        layers = {}
        if truth_molecules:
            layers = {k: np.asarray(v, dtype=np.float64) for k, v in truth_molecules.items()}
        else:
            layers["molecules"] = sim.steady_state(self.conditions, cell_states=True).mean(axis=1)
            layers["molecules_nominal"] = sim.steady_state(self.conditions)
        kinds = ["ctrl" if c == CTRL else ("single" if c.endswith(f"+{CTRL}") else "double")
                 for c in self.conditions]
        n_cells = _cells_per_condition(self.data, self.conditions)
        tobs = pd.DataFrame({"condition": self.conditions, "kind": pd.Categorical(kinds),
                             "n_cells": n_cells}, index=pd.Index(self.conditions, dtype=str))
        tad = ad.AnnData(X=truth, obs=tobs, var=pd.DataFrame({"gene_name": sim.genes}, index=sim.genes),
                         layers=layers)
        write_h5ad(path / "truth.h5ad", tad)
        write_csv(path / "network.csv", sim.network, index=False)
        write_csv(path / "genes.csv", sim.gene_table, index=False)
        with atomic_path(path / "simulator.npz", ".npz") as tmp:
            np.savez(tmp, **sim.state_arrays())
        kn = {"recall": 1.0, "false_rate": 0.0, "shuffle_frac": 0.0, "seed": self.config.seed}
        kn.update(self.knowledge)
        self.path = path
        if is_real_go(sim):
            if self.real_go is None:
                raise ConfigError("the knowledge files of a simulation with real gene names are written from "
                                  f"the real GO files: simulate it with go_dir=DIR (or set ${GO_DIR_ENV}).")
            write_real_knowledge(self, path, self.real_go)
        else:
            write_knowledge(self, path, **kn)
        self.knowledge = kn
        self._write_json()
        return path

    def _write_json(self) -> None:
        write_json(self.path / _JSON, {
            "format": _FORMAT,
            "simulator_version": SIMULATOR_VERSION,
            "priorgnn_version": priorgnn.__version__,
            "preset": self.preset,
            "config": self.config.stored_dict(),
            "config_hash": self.config_hash,
            "simulator": self.simulator.state_meta(),
            "conditions": self.conditions,
            "knowledge": self.knowledge,
            "summary": self.summary,
            "files": list(_FILES),
        })


def _cells_per_condition(data: PerturbationData, conditions: list[str]) -> np.ndarray:
    counts = pd.Series(data.cell_conditions).value_counts()
    return np.array([int(counts.get(c, 0)) for c in conditions], dtype=np.int64)


# -- the perturbation design -----------------------------------------------------------------------
def design_conditions(simulator: Simulator, cfg: SimulatorConfig) -> tuple[list[str], list[str]]:
    """Choose the perturbed genes and the doubles (the ``design`` random stream).

    Perturbed genes are drawn mostly among regulators with targets (``perturb_regulator_frac``),
    round-robin over modules in random order so that they spread over the modules, and within a
    module with weight ``(1 + n_affected) ** perturb_impact_bias``, where ``n_affected`` is the
    number of genes whose nominal steady state the single perturbation changes by more than 10%
    (screens such as Norman's pick genes with strong phenotypes); the rest among all other genes.
    Doubles are pairs of perturbed genes: ``double_within_module_frac`` of them within a module (as
    far as such pairs exist), the others across modules, each drawn with weight
    ``(0.01 + J) ** double_overlap_bias`` where ``J`` is the Jaccard overlap of the two genes'
    affected sets (Norman et al. 2019 profiled pairs chosen for genetic interactions in a growth
    screen, which favours pairs acting on shared genes).
    """
    rng = stream_rng(cfg.seed, "design")
    gt = simulator.gene_table
    has_module = "module" in gt
    regs = gt.index[gt["n_targets"] > 0].to_numpy()
    n_reg = min(int(round(cfg.perturb_regulator_frac * cfg.n_singles)), regs.size)
    picked: list[int] = []
    affected = _affected_sets(simulator, regs)
    reach = np.ones(simulator.n_genes)
    reach[regs] = (1.0 + affected.sum(axis=1)) ** cfg.perturb_impact_bias
    if has_module:
        mod_of = gt["module"].to_numpy()
        by_mod = {m: list(regs[mod_of[regs] == m]) for m in sorted(set(mod_of[regs]))}
        mods = list(by_mod)
        while len(picked) < n_reg:
            for m in rng.permutation(len(mods)):
                pool = by_mod[mods[m]]
                if len(picked) >= n_reg:
                    break
                if pool:
                    w = reach[pool]
                    picked.append(int(pool.pop(int(rng.choice(len(pool), p=w / w.sum())))))
    else:
        picked = [int(i) for i in rng.choice(regs, size=n_reg, replace=False, p=reach[regs] / reach[regs].sum())]
    rest = np.setdiff1d(np.arange(simulator.n_genes), picked)
    others = rng.choice(rest, size=cfg.n_singles - len(picked), replace=False)
    genes = sorted(simulator.genes[i] for i in (*picked, *others.tolist()))
    if n_reg < int(round(cfg.perturb_regulator_frac * cfg.n_singles)):
        log.info("only %d regulators have targets; the other perturbed genes are non-regulators", regs.size)
    singles = [make_condition([g]) for g in genes]
    module = dict(zip(gt["gene"], gt["module"])) if has_module else {g: "" for g in genes}
    pairs = list(combinations(genes, 2))
    within = [p for p in pairs if module[p[0]] == module[p[1]]]
    across = [p for p in pairs if module[p[0]] != module[p[1]]]
    n_w = min(len(within), int(round(cfg.double_within_module_frac * cfg.n_doubles)))
    n_a = min(len(across), cfg.n_doubles - n_w)
    n_w = cfg.n_doubles - n_a  # fill from within-module pairs when cross pairs run out
    weight = _pair_weights(simulator, genes, cfg.double_overlap_bias)
    if cfg.double_interaction_bias > 0:
        nonadd = _pair_nonadditivity(simulator, genes)
        weight = {p: w * (0.001 + nonadd[p]) ** cfg.double_interaction_bias for p, w in weight.items()}
    chosen: list[tuple[str, str]] = []
    for pool, k in ((within, n_w), (across, n_a)):
        if k:
            w = np.array([weight[p] for p in pool])
            chosen += [pool[i] for i in rng.choice(len(pool), size=k, replace=False, p=w / w.sum())]
    doubles = sorted(make_condition(p) for p in chosen)
    return singles, doubles


def _affected_sets(simulator: Simulator, genes_idx: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """``[len(genes_idx), G]`` bool: genes whose nominal steady state a single perturbation of each
    gene changes by more than ``threshold`` in log (the gene itself included)."""
    conds = [make_condition([simulator.genes[i]]) for i in genes_idx]
    out = np.zeros((len(conds), simulator.n_genes), dtype=bool)
    step = 512
    for a in range(0, len(conds), step):
        lu = simulator._solve_log_u(conds[a:a + step], None)
        out[a:a + step] = np.abs(lu) > threshold
    out[np.arange(len(conds)), genes_idx] = True
    return out


def _pair_weights(simulator: Simulator, genes: list[str], bias: float) -> dict[tuple[str, str], float]:
    """Sampling weight of each pair of perturbed genes: ``(0.01 + J) ** bias`` with ``J`` the
    Jaccard overlap of their affected sets (see :func:`_affected_sets`)."""
    if bias == 0:
        return {p: 1.0 for p in combinations(genes, 2)}
    M = _affected_sets(simulator, np.array([simulator.gene_index[g] for g in genes])).astype(np.float64)
    inter = M @ M.T
    size = M.sum(axis=1)
    jac = inter / (size[:, None] + size[None, :] - inter)
    return {(genes[i], genes[j]): float((0.01 + jac[i, j]) ** bias)
            for i, j in combinations(range(len(genes)), 2)}


def _pair_nonadditivity(simulator: Simulator, genes: list[str]) -> dict[tuple[str, str], float]:
    """``1 - r`` for every pair of perturbed genes, ``r`` the Pearson correlation (over all genes but
    the two perturbed ones) of the double's nominal log-change with the sum of the singles'. Uses the
    nominal steady state (one cell state, no measurement), which is cheap: all pairs of the
    ``norman`` preset's 105 genes take seconds, and it ranks pairs like the noise-free
    log-normalised truth does (Spearman 0.95 on the ``norman`` preset, seed 0)."""
    gi = np.array([simulator.gene_index[g] for g in genes])
    lu_s = simulator._solve_log_u([make_condition([g]) for g in genes], None)
    pairs = list(combinations(range(len(genes)), 2))
    out: dict[tuple[str, str], float] = {}
    step = 512
    for a in range(0, len(pairs), step):
        chunk = pairs[a:a + step]
        lu = simulator._solve_log_u([make_condition([genes[i], genes[j]]) for i, j in chunk], None)
        for k, (i, j) in enumerate(chunk):
            keep = np.ones(simulator.n_genes, dtype=bool)
            keep[[gi[i], gi[j]]] = False
            y, s = lu[k, keep], lu_s[i, keep] + lu_s[j, keep]
            r = np.corrcoef(y, s)[0, 1] if y.std() > 0 and s.std() > 0 else 1.0
            out[(genes[i], genes[j])] = float(1.0 - r)
    return out


def _cell_numbers(cfg: SimulatorConfig, n_pert: int) -> np.ndarray:
    rng = stream_rng(cfg.seed, "design", 1)
    n = np.round(cfg.n_cells_per_condition * rng.lognormal(0.0, cfg.cells_sd, n_pert)).astype(np.int64)
    return np.r_[cfg.n_cells_ctrl, np.maximum(cfg.min_cells, n)]


# -- simulate / load -------------------------------------------------------------------------------
def simulate(preset: str | SimulatorConfig = "demo", seed: int | None = None,
             out: str | os.PathLike | None = None, *, go_recall: float = 1.0, go_false_rate: float = 0.0,
             go_shuffle: float = 0.0, go_seed: int | None = None, go_dir: str | os.PathLike | None = None,
             progress: bool = False, **overrides: Any) -> Simulation:
    """Simulate a perturbation data set with known causal truth.

    Parameters
    ----------
    preset
        A preset name (``demo``, ``norman``, ``tiny``) or a :class:`SimulatorConfig`.
    seed
        Master seed (default 0, or the config's seed).
    out
        Folder to write (see :mod:`priorgnn.simulate.simulation`). If it already holds a simulation
        with the same config hash, that one is loaded instead of recomputed (its knowledge files are
        rewritten if the ``go_*`` settings differ); if it holds a different one,
        :class:`~priorgnn.errors.ConfigError` is raised.
    go_recall, go_false_rate, go_shuffle, go_seed
        Fidelity of the written GO-like annotations (:func:`write_knowledge`); ``go_seed`` defaults
        to the simulation's seed. They do not change the cells. Refused for real gene names.
    go_dir
        With ``gene_names="real_go"``: the folder of the real GO files that name the genes and become
        the knowledge files (default ``$PRIORGNN_GO_DIR``; see :mod:`priorgnn.simulate.realgo`). A
        folder already holding the simulation is reused without them; with them, their checksums must
        match the ones it was made with.
    progress
        Show progress bars.
    **overrides
        Any :class:`SimulatorConfig` field.
    """
    if isinstance(preset, SimulatorConfig):
        cfg = preset.with_overrides(**overrides, **({"seed": seed} if seed is not None else {}))
        preset_name = None
    else:
        cfg = SimulatorConfig.from_preset(preset, seed=0 if seed is None else seed, **overrides)
        preset_name = preset
    knowledge = {"recall": float(go_recall), "false_rate": float(go_false_rate),
                 "shuffle_frac": float(go_shuffle), "seed": int(cfg.seed if go_seed is None else go_seed)}
    real = cfg.gene_names == "real_go"
    if real and (knowledge["recall"], knowledge["false_rate"], knowledge["shuffle_frac"]) != (1.0, 0.0, 0.0):
        raise ConfigError(REAL_GO_FIDELITY)
    if go_dir is not None and not real:
        raise ConfigError("go_dir names the real GO files of a simulation with real gene names; this one has "
                          "synthetic names. Add gene_names='real_go' (--set gene_names=real_go) or drop go_dir.")
    if out is not None:
        check_output_dir(out)  # before minutes of simulation that a bad folder would lose at the first write
        existing = _existing(Path(out), cfg)
        if existing is not None:
            if real:
                _check_go_files(existing, go_dir)
                return existing
            if existing.knowledge != knowledge:
                log.info("rewriting the knowledge files of %s with %s", out, knowledge)
                write_knowledge(existing, existing.path, **knowledge)
                existing.knowledge = knowledge
                existing._write_json()
            return existing

    log.info("simulating %s (seed %d, config %s)", preset_name or "custom config", cfg.seed, cfg.hash())
    go = load_real_go(go_dir) if real else None
    if go is not None:
        knowledge.update(go.provenance())
    simulator = Simulator.from_config(cfg, go=go)
    singles, doubles = design_conditions(simulator, cfg)
    conditions = [CTRL, *singles, *doubles]
    n_cells = _cell_numbers(cfg, len(singles) + len(doubles))
    res = simulator._simulate(conditions, n_cells, cfg.seed, "cells", progress=progress)
    # memory: hold one copy of the cell matrix at a time (the norman preset has ~10^8 non-zeros)
    X = res.pop("X")
    perm = stream_rng(cfg.seed, "cells", 0).permutation(X.shape[0])
    X = X[perm]
    adata = gears_anndata(X, res["labels"][perm], res["n_counts"][perm], simulator.genes)
    del X
    adata.uns["priorgnn_simulation"] = {"config_hash": cfg.hash(), "preset": preset_name or "custom",
                                        "seed": cfg.seed}
    summary = {
        "n_genes": simulator.n_genes, "n_edges": int(len(simulator.network)),
        "n_cells": int(adata.n_obs), "n_cells_ctrl": int(n_cells[0]), "n_singles": len(singles),
        "n_doubles": len(doubles),
        "sparsity": float(1.0 - adata.X.nnz / (adata.n_obs * adata.n_vars)),
        "mean_umi_per_cell": float(np.mean(res["n_counts"])),
        "median_umi_per_cell": float(np.median(res["n_counts"])),
    }
    name = f"sim-{preset_name or 'custom'}-seed{cfg.seed}"
    if out is None:
        data = from_anndata(adata, name=name)
        del adata
        return Simulation(data=data, simulator=simulator, config=cfg, conditions=conditions, path=None,
                          preset=preset_name, knowledge=knowledge, stored_truth=res["truth"],
                          summary=summary, real_go=go)
    out = Path(out)
    write_h5ad(out / "data.h5ad", adata)
    del adata
    data = _read_data(out / "data.h5ad", name)
    sim = Simulation(data=data, simulator=simulator, config=cfg, conditions=conditions, path=None,
                     preset=preset_name, knowledge=knowledge, stored_truth=res["truth"], summary=summary,
                     real_go=go)
    nominal = simulator.steady_state(conditions)
    sim.save(out, truth_molecules={"molecules": res["molecules"], "molecules_nominal": nominal},
             write_data=False)
    return sim


def _check_go_files(existing: Simulation, go_dir: str | os.PathLike | None) -> None:
    """A reused simulation with real gene names must come from the same GO files as the ones given (if
    any are given, as ``go_dir`` or ``$PRIORGNN_GO_DIR``)."""
    if go_dir is None and not os.environ.get(GO_DIR_ENV):
        return
    obo, gaf = go_files(go_dir)
    kn = existing.knowledge
    for role, path in (("obo", obo), ("gaf", gaf)):
        if kn.get(f"{role}_sha256") != sha256_file(path):
            raise ConfigError(
                f"{existing.path} holds a simulation whose gene names come from other GO files ({kn.get(role)}, "
                f"sha256 {str(kn.get(f'{role}_sha256'))[:12]}...) than {path}. Write to another folder (--out), or "
                f"delete {existing.path} to replace it."
            )


def _read_data(path: Path, name: str) -> PerturbationData:
    """Validate a written ``data.h5ad`` through :func:`from_anndata`, reading it backed so that
    only one in-memory copy of the matrix is made."""
    try:
        backed = ad.read_h5ad(path, backed="r")
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise PriorGNNError(f"{path}: cannot read it ({exc}); simulate again.") from None
    try:
        return from_anndata(backed, name=name, source=str(path))
    finally:
        backed.file.close()


def _existing(out: Path, cfg: SimulatorConfig) -> Simulation | None:
    """The simulation already in ``out`` if it has the same config; raise if it has another."""
    meta_path = out / _JSON
    if not meta_path.exists():
        return None
    meta = read_json(meta_path)
    if meta.get("config_hash") == cfg.hash() and meta.get("simulator_version") == SIMULATOR_VERSION:
        if all((out / f).exists() for f in meta.get("files", _FILES)):
            log.info("reusing the simulation in %s (config %s)", out, cfg.hash())
            return load_simulation(out)
        return None  # incomplete: simulate again over it
    old = meta.get("config", {})
    default = SimulatorConfig().to_dict()  # a stored config leaves some settings at their default out
    diff = [k for k, v in cfg.to_dict().items() if old.get(k, default[k]) != v]
    detail = f" (differs in {', '.join(diff[:8])})" if diff else ""
    if meta.get("simulator_version") != SIMULATOR_VERSION:
        detail = f" (made by simulator version {meta.get('simulator_version')}, this is {SIMULATOR_VERSION})"
    raise ConfigError(
        f"{out} already holds a different simulation: config {meta.get('config_hash')} of preset "
        f"{meta.get('preset')!r}, seed {old.get('seed')}; asked for config {cfg.hash()}{detail}. "
        f"Write to another folder (--out), or delete {out} to replace it."
    )


def load_simulation(path: str | os.PathLike) -> Simulation:
    """Reload a simulation folder (no cells are re-sampled). ``truth()`` works for new conditions."""
    path = Path(path)
    meta_path = path / _JSON
    if not meta_path.exists():
        raise PriorGNNError(
            f"{path} is not a simulation folder ({_JSON} missing). Create one with "
            f"`python -m priorgnn.simulate --preset demo --out {path}`."
        )
    meta = read_json(meta_path)
    if meta.get("simulator_version") != SIMULATOR_VERSION:
        raise PriorGNNError(
            f"{path} was made by simulator version {meta.get('simulator_version')}; this is "
            f"{SIMULATOR_VERSION}, whose truth for new conditions could differ. Re-simulate it "
            "(delete the folder and run the same command again)."
        )
    missing = [f for f in meta.get("files", _FILES) if not (path / f).exists()]
    if missing:
        raise PriorGNNError(
            f"{path} is an incomplete simulation folder (missing {', '.join(missing)}). Delete it and "
            "simulate again."
        )
    cfg = SimulatorConfig.from_dict(meta["config"])
    if cfg.hash() != meta.get("config_hash"):
        raise PriorGNNError(
            f"{path / _JSON}: its config does not match its recorded hash (edited by hand?). "
            "Restore it or simulate again."
        )
    try:
        with np.load(path / "simulator.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise PriorGNNError(f"{path / 'simulator.npz'} is unreadable ({exc}); simulate again.") from None
    simulator = Simulator.from_state(arrays, meta["simulator"])
    preset = meta.get("preset")
    try:
        tad = ad.read_h5ad(path / "truth.h5ad")
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear message
        raise PriorGNNError(f"{path / 'truth.h5ad'}: cannot read it ({exc}); simulate again.") from None
    data = _read_data(path / "data.h5ad", f"sim-{preset or 'custom'}-seed{cfg.seed}")
    conditions = list(meta["conditions"])
    if list(tad.obs_names) != conditions or tad.n_vars != simulator.n_genes:
        raise DataValidationError(f"{path / 'truth.h5ad'} does not match {_JSON}; simulate again.")
    return Simulation(data=data, simulator=simulator, config=cfg, conditions=conditions, path=path,
                      preset=preset, knowledge=meta.get("knowledge", {}),
                      stored_truth=np.asarray(tad.X, dtype=np.float64), summary=meta.get("summary", {}))
