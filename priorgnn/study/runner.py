"""The study's runner: the per-setting context (simulations, knowledge files, splits, cached on
disk), one cell (fit, predict and score through :mod:`priorgnn.experiment`, then the causal,
interaction and latent tables), the whole grid, and the rendering of the report.
"""

from __future__ import annotations

import functools
import logging
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from priorgnn.data.conditions import CTRL, make_condition, parse_condition
from priorgnn.errors import ConfigError
from priorgnn.io import read_json, safe_name, write_csv, write_json
from priorgnn.report.study import write_study_report
from priorgnn.study.analysis import (
    _cosine,
    _spearman,
    _upper,
    average_precision,
    cell_dir,
    cell_stem,
    read_tables,
)
from priorgnn.study.grid import GRIDS, MODELS, STUDY_METRICS, Grid, Setting, simulation_name

log = logging.getLogger(__name__)

__all__ = ["run_cell", "run_study", "render_study", "code_version"]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A content hash of the code a study cell runs: every Python file of the ``priorgnn`` package (its
    report layer aside, which only renders finished cells) and of ``knowledge``, path and bytes.

    Each cell records it, and a resumed study refits a cell recorded by other code instead of mixing
    its numbers with the new code's (:func:`run_cell`). Hashed from the installed files rather than from
    git, so that it also holds for an installed copy that is not a checkout."""
    import hashlib

    import knowledge
    import priorgnn

    h = hashlib.sha256()
    for pkg in (priorgnn, knowledge):
        root = Path(pkg.__file__).resolve().parent
        for f in sorted(root.rglob("*.py")):
            rel = f.relative_to(root.parent).as_posix()
            if rel.startswith("priorgnn/report/"):
                continue
            h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# -- the per-setting context -------------------------------------------------------------------------
class _Context:
    """Simulations, knowledge files, splits and reference tables, built once and cached on disk."""

    def __init__(self, grid: Grid, out: Path, accelerator: str = "cpu", go_dir: str | Path | None = None) -> None:
        self.grid, self.out, self.accelerator, self.go_dir = grid, out, accelerator, go_dir
        self._sims: dict[tuple, Any] = {}
        self._go: dict[tuple, str] = {}
        self._gene2go: dict[tuple, dict] = {}

    def sim(self, setting: Setting):
        """The setting's simulation: the grid's, at another interaction strength, (for the negative
        control) another prior informativeness, or (the real-GO setting) with real gene names."""
        key = (setting.interaction, setting.informativeness, setting.gene_names)
        if key not in self._sims:
            from priorgnn.simulate import simulate

            g = self.grid
            over = dict(g.sim_overrides)
            if setting.interaction != 1.0:
                over["interaction_strength"] = setting.interaction
            if setting.informativeness is not None:  # the negative control
                over.update(g.negative_overrides)
                over["prior_informativeness"] = setting.informativeness
            if setting.gene_names != "synthetic":  # real human genes, the real GO files as knowledge
                over["gene_names"] = setting.gene_names
                over["go_dir"] = self.go_dir
            self._sims[key] = simulate(g.preset, seed=g.data_seed, out=self.out / "sims" / simulation_name(setting),
                                       **over)
        return self._sims[key]

    def knowledge_files(self, setting: Setting) -> tuple[Path, Path]:
        """OBO and GAF at the setting's GO fidelity (recall f, false annotations 1 - f)."""
        from priorgnn.simulate.ontology import write_knowledge

        sim = self.sim(setting)
        f = setting.go_fidelity
        if f == 1.0:
            return sim.obo_path, sim.gaf_path
        folder = self.out / "knowledge" / (f"interaction_{setting.interaction:g}_fidelity_{f:g}"
                                           + ("" if setting.informativeness is None
                                              else f"_informativeness_{setting.informativeness:g}"))
        obo, gaf = folder / "go.obo", folder / "annotations.gaf"
        if not (folder / "knowledge.json").exists():
            write_knowledge(sim, folder, recall=f, false_rate=1.0 - f, seed=self.grid.data_seed)
        return obo, gaf

    def go_graph_path(self, setting: Setting) -> str:
        """``'auto'`` at full fidelity; otherwise a saved GO graph of the degraded annotations."""
        key = (setting.interaction, setting.go_fidelity, setting.informativeness, setting.gene_names)
        if key not in self._go:
            if setting.go_fidelity == 1.0:
                self._go[key] = "auto"
            else:
                from knowledge.cache import go_graph

                obo, gaf = self.knowledge_files(setting)
                path = obo.parent / "go_graph.npz"
                if not path.exists():
                    go_graph(obo=obo, gaf=gaf, k=20, threshold=0.1).save(path)
                self._go[key] = str(path)
        return self._go[key]

    def gene2go(self, setting: Setting) -> dict[str, frozenset]:
        key = (setting.interaction, setting.go_fidelity, setting.informativeness, setting.gene_names)
        if key not in self._gene2go:
            from knowledge.go import read_gaf

            obo, gaf = self.knowledge_files(setting)
            self._gene2go[key] = read_gaf(gaf, obo).gene2go
        return self._gene2go[key]

    def split(self, setting: Setting, seed: int):
        """The GEARS simulation split of seed ``1 + seed``; for data scaling, a seeded subsample of
        its training perturbations (validation and test unchanged)."""
        from priorgnn.data.splits import Split, make_split

        sim = self.sim(setting)
        split = make_split(sim.data.conditions, "simulation", seed=1 + seed)
        if setting.train_frac >= 1.0:
            return split
        perts = [c for c in split.train if c != CTRL]
        # one seeded order per seed, so the smaller training sets are nested in the larger ones
        order = np.random.default_rng([seed, 7]).permutation(len(perts))
        k = max(2, int(round(setting.train_frac * len(perts))))
        keep = sorted(perts[i] for i in order[:k])
        return Split(kind="custom", seed=split.seed, train=[CTRL, *keep], val=split.val, test=split.test,
                     params={**split.params, "subsampled_from": "simulation", "train_frac": setting.train_frac})

    def extra_pretraining_cells(self, setting: Setting, split, seed: int):
        """``(pretrain_mult - 1)`` times the data's own pretraining cells (control + training
        conditions), newly drawn from the same system; ``None`` at 1."""
        if setting.pretrain_mult <= 1.0:
            return None
        sim = self.sim(setting)
        data = sim.data
        conds = sorted(set(split.train) | {CTRL})
        counts = pd.Series(data.cell_conditions).value_counts()
        own = np.array([int(counts.get(c, 0)) for c in conds])
        n = np.round(own * (setting.pretrain_mult - 1.0)).astype(np.int64)
        return sim.simulator.sample_cells(conds, n, seed=1000 + seed)


# -- one cell -----------------------------------------------------------------------------------------
def _reference_tables(ctx: _Context, setting: Setting, seed: int) -> None:
    """Ceiling and observed-vs-truth rows of a setting's split, and the reference causal rows."""
    from priorgnn.metrics import evaluate_seed

    d = cell_dir(ctx.out, setting)
    path = d / f"_reference_s{seed}.csv"
    if path.exists():
        return
    sim = ctx.sim(setting)
    split = ctx.split(setting, seed)
    table, _ = evaluate_seed(sim.data, split, {}, seed=seed, metrics=list(STUDY_METRICS), simulation=sim,
                             ceiling=True, ceiling_seed=seed)
    conds = split.subgroups.get("unseen_single", [])
    s = sim.data.summaries
    causal = []
    if conds:
        obs = np.stack([s.delta(c) for c in conds])
        causal.append(_causal_rows(sim, conds, obs, "observed_data"))
        causal.append(_causal_rows(sim, conds, sim.truth_delta(conds), "truth"))
    latent = _go_vs_effect(ctx, setting)
    _write_cell(d, f"_reference_s{seed}", setting, seed, table,
                pd.concat(causal, ignore_index=True) if causal else pd.DataFrame(), pd.DataFrame(),
                latent, {"model": "_reference"})


def _causal_rows(sim, conditions: list[str], delta: np.ndarray, label: str) -> pd.DataFrame:
    """Per held-out single ``A``: AUPRC of ``|delta_A[B]|`` (B ≠ A) for B downstream of A.

    ``ranking_identical`` marks a model whose ranking of the genes is the same for every held-out
    target (e.g. ``mean``, which predicts one vector for every unseen single): its AUPRC is then not a
    target-specific recovery of causal effects, whatever its value. ``ranking_agreement`` is the mean
    Spearman correlation between the rankings of two held-out targets (own genes left out).
    ``auprc_agnostic`` scores, for the same positives, the model's target-agnostic ranking: the mean
    ``|delta|`` of its predictions for the *other* held-out targets, each without its own gene's
    change; ``auprc − auprc_agnostic`` is what the model's ranking for ``A`` adds beyond what it
    predicts for every target."""
    from priorgnn.metrics.stats import ranking_agreement, rankings_identical

    genes = list(sim.simulator.genes)
    pos = {g: i for i, g in enumerate(genes)}
    own = [pos.get(parse_condition(c)[0]) for c in conditions]
    own_idx = [i for i in own if i is not None]
    mag = np.abs(np.asarray(delta, dtype=np.float64))
    same = rankings_identical(mag, exclude=own_idx)
    agreement = ranking_agreement(mag, exclude=own_idx)
    masked = mag.copy()
    for k, i in enumerate(own):
        if i is not None:
            masked[k, i] = np.nan  # a target's own change says nothing about the other targets' effects
    rows = []
    for k, c in enumerate(conditions):
        a = parse_condition(c)[0]
        down = set(sim.simulator.descendants(a)) - {a}
        keep = np.array([g != a for g in genes])
        lab = np.array([g in down for g in genes])[keep]
        score = mag[k][keep]
        agnostic = None
        if len(conditions) > 1:
            others = np.delete(masked, k, axis=0)
            with np.errstate(invalid="ignore"):
                cnt = np.isfinite(others).sum(axis=0)
                agnostic = np.where(cnt > 0, np.nansum(others, axis=0) / np.maximum(cnt, 1), 0.0)[keep]
        rows.append({"model": label, "condition": c, "gene": a, "n_targets": int(lab.sum()),
                     "positive_rate": float(lab.mean()) if lab.size else np.nan,
                     "auprc": average_precision(score, lab) if lab.any() else np.nan,
                     "auprc_agnostic": average_precision(agnostic, lab) if lab.any() and agnostic is not None
                     else np.nan,
                     "ranking_identical": same, "ranking_agreement": agreement})
    return pd.DataFrame(rows)


def _go_vs_effect(ctx: _Context, setting: Setting) -> pd.DataFrame:
    """Spearman of GO similarity with true-effect similarity over the perturbed genes (the
    information the GO prior carries about effects)."""
    from knowledge.go import pairwise_jaccard

    genes, effect_sim = _effect_similarity(ctx, setting)
    go = ctx.gene2go(setting)
    go_sim = pairwise_jaccard([go.get(g, frozenset()) for g in genes])
    return pd.DataFrame([{"model": "_go_vs_effect", "space": "GO Jaccard", "n_genes": len(genes),
                          "spearman_go": np.nan,
                          "spearman_effect": _spearman(_upper(go_sim), _upper(effect_sim))}])


def _effect_similarity(ctx: _Context, setting: Setting) -> tuple[list[str], np.ndarray]:
    sim = ctx.sim(setting)
    genes = sorted(sim.data.perturbed_genes)
    eff = sim.truth_delta([make_condition([g]) for g in genes]).astype(np.float64)
    pos = {g: i for i, g in enumerate(sim.simulator.genes)}
    for i, g in enumerate(genes):  # the target's own change says nothing about its downstream effects
        eff[i, pos[g]] = 0.0
    return genes, _cosine(eff)


def _latent_rows(ctx: _Context, setting: Setting, label: str, model) -> pd.DataFrame:
    """Spearman of the model's latent similarity (cosine of :meth:`~PerturbationModel.embeddings`)
    with GO similarity and with true-effect similarity over the perturbed genes it embeds."""
    from knowledge.go import pairwise_jaccard

    emb = model.embeddings()
    if emb is None:
        return pd.DataFrame()
    genes, effect_sim = _effect_similarity(ctx, setting)
    rows = emb.rows()
    idx = [rows.get(g) for g in genes]
    keep = [i for i, x in enumerate(idx) if x is not None]
    genes = [genes[i] for i in keep]
    E = np.asarray(emb.matrix, dtype=np.float64)[[idx[i] for i in keep]]
    go = ctx.gene2go(setting)
    go_sim = pairwise_jaccard([go.get(g, frozenset()) for g in genes])
    lat = _upper(_cosine(E))
    eff = _upper(effect_sim[np.ix_(keep, keep)])
    return pd.DataFrame([{"model": label, "space": emb.space, "n_genes": len(genes),
                          "spearman_go": _spearman(lat, _upper(go_sim)), "spearman_effect": _spearman(lat, eff)}])


def _gi_rows(sim, split, model, label: str) -> pd.DataFrame:
    """Interaction labels of the test doubles: the model's predicted double against the true one, both
    scored on the true singles (the convention of the ``gi_label_match`` metric: only the double
    differs between the two labels)."""
    from priorgnn.interactions import highly_expressed_genes, score_interactions

    doubles = [c for c in split.test if len(parse_condition(c)) == 2]
    if not doubles:
        return pd.DataFrame()
    genes = sorted({g for c in doubles for g in parse_condition(c)})
    singles = [make_condition([g]) for g in genes]
    pred = np.asarray(model.predict_delta(model.canonical(doubles)), dtype=np.float64)
    truth = sim.truth_delta(doubles + singles)
    hv = highly_expressed_genes(sim.truth([CTRL])[0])
    nd = len(doubles)
    true_singles = dict(zip(genes, truth[nd:]))
    p = score_interactions(doubles, pred, true_singles, genes=hv)
    t = score_interactions(doubles, truth[:nd], true_singles, genes=hv)
    sub = {c: sg for sg, cs in split.subgroups.items() for c in cs}
    return pd.DataFrame({"model": label, "condition": doubles, "subgroup": [sub.get(c, "other") for c in doubles],
                         "label_pred": p["label"].to_numpy(), "label_true": t["label"].to_numpy(),
                         "magnitude_pred": p["magnitude"].to_numpy(), "magnitude_true": t["magnitude"].to_numpy()})


def _write_cell(d: Path, stem: str, setting: Setting, seed: int, metrics: pd.DataFrame, causal: pd.DataFrame,
                gi: pd.DataFrame, latent: pd.DataFrame, info: dict) -> None:
    for name, df in (("causal", causal), ("gi", gi), ("latent", latent)):
        if len(df):
            df = df.copy()
            df.insert(0, "setting", setting.name)
            df.insert(1, "seed", seed)
            write_csv(d / f"{stem}.{name}.csv", df, index=False)
    write_json(d / f"{stem}.json", {"setting": asdict(setting), "seed": seed, **info})
    metrics = metrics.copy()
    metrics.insert(0, "setting", setting.name)
    write_csv(d / f"{stem}.csv", metrics, index=False)  # written last: marks the cell complete


def run_cell(ctx: _Context, setting: Setting, label: str, seed: int) -> bool:
    """Fit one model in one setting with one seed and write its tables; ``False`` if they existed."""
    from priorgnn import experiment
    from priorgnn.models.base import TrainConfig, get_model_class
    from priorgnn.pipeline import RunConfig, build_priors, model_options

    d = cell_dir(ctx.out, setting)
    stem = cell_stem(label, seed)
    if (d / f"{stem}.csv").exists():
        done = read_json(d / f"{stem}.json") if (d / f"{stem}.json").exists() else {}
        if done.get("code_version") == code_version():
            return False
        log.warning("%s/%s was fitted by other code (version %s, now %s): fitting it again", setting.name, stem,
                    done.get("code_version") or "not recorded", code_version())
    _reference_tables(ctx, setting, seed)
    spec = MODELS[label]
    g = ctx.grid
    sim = ctx.sim(setting)
    data = sim.data
    split = ctx.split(setting, seed)
    cls = get_model_class(spec.model)
    options = dict(spec.options)
    if spec.model == "transformer":
        options.update(g.transformer_options)
        if setting.axis == "pretrain_mult":
            options.update(g.pretrain_arm_options)
        if options.get("pretrain"):
            options["pretrain_batch_size"] = g.pretrain_batch_size
            options["pretrain_extra_labels"] = True
    if options.get("network") == "auto":  # the oracle reads the simulation's true network
        options["network"] = str(sim.path / "network.csv")
    priors = dict(spec.priors)
    if priors.get("go", "none") == "auto":
        priors["go"] = ctx.go_graph_path(setting)
    if "go_degrade" in priors:
        priors["go_degrade_seed"] = seed
    cfg = RunConfig(data=g.preset, model=spec.model, model_options=options, priors=priors)
    graphs = build_priors(cfg, data, split, sim, cls, progress=False)
    options = model_options(cfg, cls, graphs)
    model = cls(**options)
    extra = {}
    if spec.model == "transformer" and options.get("pretrain"):
        cells = ctx.extra_pretraining_cells(setting, split, seed)
        if cells is not None:
            extra["pretrain_cells"] = cells
    train = TrainConfig(seed=seed, max_epochs=g.max_epochs, patience=g.patience, progress_bar=False, threads=1,
                        run_dir=str(ctx.out / "_train" / safe_name(setting.name) / stem), extra=extra,
                        accelerator=ctx.accelerator)
    t0 = time.perf_counter()
    experiment.fit(model, data, split, graphs, train=train if cls.trainable else None)
    fit_s = time.perf_counter() - t0
    delta, control = experiment.predict(model, split.test, genes=data.genes)
    table = experiment.score({label: (delta, control)}, data, split, simulation=sim, metrics=list(STUDY_METRICS),
                             seed=seed)
    table = table[table["model"] == label]  # the limits (observed_data) live in the setting's reference table
    unseen = split.subgroups.get("unseen_single", [])
    if unseen:
        pos = {c: i for i, c in enumerate(split.test)}
        causal = _causal_rows(sim, unseen, delta[[pos[c] for c in unseen]], label)
    else:
        causal = pd.DataFrame()
    gi = _gi_rows(sim, split, model, label)
    latent = _latent_rows(ctx, setting, label, model)
    training = model.fit_info.get("training", {}) or {}
    pre = model.fit_info.get("pretraining", {}) or {}
    info = {"model": label, "registered": spec.model, "options": options, "priors": priors, "fit_s": fit_s,
            "code_version": code_version(),
            "accelerator": ctx.accelerator if cls.trainable else "cpu",
            "epochs": training.get("epochs"), "best_epoch": training.get("best_epoch"),
            "max_epochs": g.max_epochs if cls.trainable else None, "patience": g.patience if cls.trainable else None,
            # a fit that ran its full epoch budget did not reach its early-stopping rule
            "hit_cap": bool(training.get("epochs") is not None and training["epochs"] >= g.max_epochs)
            if cls.trainable else None,
            "pretrain_cells": (pre.get("data_cells", 0) + pre.get("extra_cells", 0))
            if pre else 0, "pretrain_steps": pre.get("steps"),
            # PriorGNN's choices after training (validation data only): the learned interaction kept for
            # pairs of measured singles, the scale of the network's residual for unseen genes, the
            # propagation's leave-one-out lambda and the fitted pair backbone
            "interaction_kept": (model.fit_info.get("interaction_gate") or {}).get("kept"),
            "gate_validation_pairs": (model.fit_info.get("interaction_gate") or {}).get("validation_pairs"),
            "unseen_scale": (model.fit_info.get("unseen_gate") or {}).get("scale"),
            "propagation_lambda": (model.fit_info.get("propagation") or {}).get("lambda"),
            "pair_c_large": (model.fit_info.get("pair_backbone") or {}).get("c_large"),
            "pair_c_small": (model.fit_info.get("pair_backbone") or {}).get("c_small"),
            "pair_backbone": (model.fit_info.get("pair_backbone") or {}).get("chosen"),
            "pair_kernel_kept": (model.fit_info.get("pair_kernel") or {}).get("kept")}
    _write_cell(d, stem, setting, seed, table, causal, gi, latent, info)
    shutil.rmtree(ctx.out / "_train" / safe_name(setting.name) / stem, ignore_errors=True)
    return True


# -- the whole study -----------------------------------------------------------------------------------
def run_study(grid: str | Grid = "quick", out: str | Path = "study", *, progress: bool = True,
              report_only: bool = False, render: bool = True, figures: bool = True,
              command: str | None = None, only: Sequence[str] | None = None,
              accelerator: str = "cpu", go_dir: str | Path | None = None) -> Path:
    """Run (or resume) the grid into ``out`` and write ``study.md`` (unless ``render=False``; without
    figures if ``figures=False``); returns its path.

    ``only`` restricts the fits run now to settings whose name or axis is listed (e.g. ``["pretrain_mult"]``
    or ``["base", "go_fidelity_0.5"]``); the report still covers every finished fit in ``out`` and counts the
    missing ones. ``accelerator`` is Lightning's (``cpu``, ``gpu``, ``auto``) for the gradient-trained
    models; each fit records the one it used. A CPU run without ``only`` leaves out the grid's
    :attr:`Grid.gpu_settings` (the report lists them as not fitted, with the grid's reason).

    ``go_dir`` is the folder of the real GO files for the real-GO setting (default ``$PRIORGNN_GO_DIR``;
    see :mod:`priorgnn.simulate.realgo`). Without them, a run that names that setting with ``only`` is an
    error; any other run leaves it out (the report lists it as not fitted, with the reason)."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ConfigError(f"unknown study grid {grid!r}; choose one of {', '.join(GRIDS)}.")
        grid = GRIDS[grid]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = grid.cells()
    if not only and accelerator == "cpu" and grid.gpu_settings:
        cells = [c for c in cells if c[0].name not in grid.gpu_settings]
        log.info("left out (GPU settings; fit them with --only ... --accelerator gpu): %s",
                 ", ".join(grid.gpu_settings))
    if only:
        known = {st.name for st in grid.settings()} | {st.axis for st in grid.settings()}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ConfigError(f"--only {', '.join(unknown)}: not a setting or axis of grid {grid.name!r}; choose "
                              f"among {', '.join(sorted(known))}.")
        cells = [c for c in cells if c[0].name in only or c[0].axis in only]
    if not report_only and any(c[0].gene_names == "real_go" for c in cells):
        from priorgnn.simulate.realgo import go_files

        try:
            go_files(go_dir)
        except ConfigError as exc:
            if only:
                raise ConfigError(f"the real_go setting: {exc}") from None
            cells = [c for c in cells if c[0].gene_names != "real_go"]
            log.warning("left out the real-GO setting: %s", exc)
    t0 = time.perf_counter()
    n_run = 0
    from priorgnn.runs import environment_info

    env = environment_info()  # at the start: the code that fits the cells
    if not report_only:
        from tqdm.auto import tqdm

        ctx = _Context(grid, out, accelerator, go_dir)
        bar = tqdm(cells, desc=f"study ({grid.name})", unit="cell", disable=not progress)
        for setting, label, seed in bar:
            bar.set_postfix_str(f"{setting.name} {label} s{seed}")
            n_run += run_cell(ctx, setting, label, seed)
        bar.close()
    wall = time.perf_counter() - t0
    if n_run:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # GiB (Linux: KiB)
        prev = read_json(out / "timing.json") if (out / "timing.json").exists() else {}
        write_json(out / "timing.json", {"grid": grid.name, "cells_run": n_run + prev.get("cells_run", 0),
                                         "wall_s": wall + prev.get("wall_s", 0.0),
                                         "peak_rss_gib": max(rss, prev.get("peak_rss_gib", 0.0)),
                                         "command": command or prev.get("command"),
                                         "accelerator": accelerator, "device": _device_name(accelerator),
                                         "git_revision": env.get("git_revision"),
                                         "environment": env})
    if not render:
        return out / "study.md"
    return render_study(grid, out, command=command, figures=figures)


def _device_name(accelerator: str) -> str | None:
    if accelerator == "cpu":
        return None
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def render_study(grid: Grid, out: Path, *, command: str | None = None, figures: bool = True) -> Path:
    """Aggregate the cell tables in ``out`` and write the CSVs, figures and ``study.md``."""
    tables = read_tables(out, grid)
    return write_study_report(grid, out, tables, command=command, figures=figures)
