"""The main job: data -> split -> priors -> model -> run directory; and prediction from a run.

``train.py`` is a thin command line over :func:`train_run` and :func:`predict_run`. With no
options, :func:`train_run` simulates (or reuses) the built-in ``demo`` data, builds its GO and
co-expression priors, makes a GEARS simulation split, trains PriorGNN and writes a run directory
(see :mod:`priorgnn.runs`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import yaml

from priorgnn._io import safe_name, write_csv, write_h5ad, write_text
from priorgnn.data.conditions import canonical_condition, make_condition
from priorgnn.errors import CheckpointError, ConfigError, GraphError
from priorgnn.models.base import PriorGraphs, TrainConfig, get_model_class
from priorgnn.runs import DataSpec, Run, environment_info

log = logging.getLogger(__name__)

__all__ = ["RunConfig", "train_run", "predict_run", "resolve_data", "build_priors", "parse_conditions"]

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"run_dir", "resume", "extra"}


@dataclass
class RunConfig:
    """Everything that defines a run. Mirrors the YAML config (``train.py --config``).

    ``data`` is a simulator preset (``demo``, ``norman``), a simulation folder, an ``.h5ad`` path or
    the name of a downloaded data set. ``priors`` maps ``go`` / ``coexpression`` to ``auto``,
    ``none`` or a saved graph (``.npz``); ``go_obo``/``go_gaf`` (or ``go_gene2go``/``go_tsv``) give
    annotations for real data; ``go_degrade`` (e.g. ``dropout:0.5``) degrades the GO graph.
    """

    data: str = "demo"
    data_seed: int = 0
    sim_dir: str | None = None
    simulate: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=lambda: {"kind": "simulation", "seed": 1})
    split_file: str | None = None
    model: str = "priorgnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    priors: dict[str, Any] = field(default_factory=lambda: {"go": "auto", "coexpression": "auto"})
    train: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    name: str | None = None
    #: stream per-condition summaries from the file instead of loading the cell matrix (models that do
    #: not need cells; see :class:`priorgnn.data.stream.SummaryData`)
    summaries_only: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config key(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}.")
        model = d.get("model")
        if isinstance(model, dict):
            model = dict(model)
            d["model"] = model.pop("name", "priorgnn")
            d["model_options"] = {**model, **d.get("model_options", {})}
        if isinstance(d.get("split"), str):
            d["split"] = {"kind": d["split"]}
        cfg = cls(**d)
        bad = set(cfg.train) - _TRAIN_FIELDS
        if bad:
            raise ConfigError(f"unknown train option(s) {sorted(bad)}; known: {sorted(_TRAIN_FIELDS)}.")
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        try:
            with open(path, encoding="utf-8") as fh:
                d = yaml.safe_load(fh) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({exc}).") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: a config is a mapping of keys (data, split, model, ...).")
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    def train_config(self, run_dir: Path, resume: str | None = None) -> TrainConfig:
        return TrainConfig(**self.train, run_dir=str(run_dir), resume=resume)

    def default_out(self) -> Path:
        stem = Path(self.data).stem if ("/" in self.data or self.data.endswith(".h5ad")) else self.data
        seed = self.train.get("seed", 0)
        return Path("runs") / safe_name(self.name or f"{stem}-{self.model}-{self.split.get('kind', 'simulation')}-s{seed}")


# -- data -------------------------------------------------------------------------------------------
def _is_simulation_dir(p: Path) -> bool:
    return p.is_dir() and (p / "simulator.json").exists()


def _sim_dir(cfg: RunConfig) -> Path:
    """Where a preset's simulation is written (``--sim-dir``, default ``runs/sim/PRESET-seedN``)."""
    return Path(cfg.sim_dir) if cfg.sim_dir else Path("runs") / "sim" / f"{cfg.data}-seed{cfg.data_seed}"


def _summaries_only(cfg: RunConfig, progress: bool):
    """``(SummaryData, DataSpec, knowledge)`` streamed from an ``.h5ad`` or a simulation folder's data;
    ``knowledge`` names a simulation's OBO and GAF (``None`` for an ``.h5ad``)."""
    from priorgnn.data.stream import SummaryData
    from priorgnn.simulate import PRESETS

    p = Path(cfg.data)
    if cfg.data in PRESETS:
        p = _sim_dir(cfg)
        if not _is_simulation_dir(p):
            raise ConfigError(f"--summaries-only reads a written data set, and {p} holds none yet. Simulate it "
                              f"first (python -m priorgnn.simulate --preset {cfg.data} --out {p}) or drop "
                              "--summaries-only.")
    kind = "simulation" if _is_simulation_dir(p) else "h5ad"
    h5ad = p / "data.h5ad" if kind == "simulation" else p
    if not h5ad.is_file():
        raise ConfigError(f"--summaries-only needs an .h5ad file or a simulation folder; {cfg.data} is neither.")
    streamable = {"condition_column", "allow_unmeasured_perturbations"}
    other = sorted(k for k, v in cfg.load.items() if k not in streamable and v not in (None, False))
    if other:
        raise ConfigError(f"--summaries-only reads log-normalised GEARS-style data as stored; it cannot apply "
                          f"{', '.join(other)}. Preprocess the file first, or drop --summaries-only.")
    kw = {k: v for k, v in cfg.load.items() if k in streamable and v is not None}
    data = SummaryData.from_h5ad(h5ad, name=p.name if kind == "simulation" else None, progress=progress, **kw)
    spec = DataSpec(kind, str(p.resolve()), dict(cfg.load), None, data.name, file_sha256=data.file_sha256)
    knowledge = None
    if kind == "simulation":  # its GO-like knowledge files, without loading the simulation's cells
        from priorgnn.simulate.ontology import GAF_NAME, OBO_NAME

        knowledge = SimpleNamespace(obo_path=p / OBO_NAME, gaf_path=p / GAF_NAME)
    return data, spec, knowledge


def resolve_data(cfg: RunConfig, *, progress: bool = True):
    """Load (or simulate) the data; returns ``(data, DataSpec, simulation_or_None)``."""
    from priorgnn.simulate import PRESETS, load_simulation, simulate

    if cfg.summaries_only:
        return _summaries_only(cfg, progress)
    p = Path(cfg.data)
    if cfg.data in PRESETS:
        sim_dir = _sim_dir(cfg)
        sim = simulate(cfg.data, seed=cfg.data_seed, out=sim_dir, **cfg.simulate)
        spec = DataSpec("simulation", str(sim_dir.resolve()), {}, sim.data.content_hash, sim.data.name)
        return sim.data, spec, sim
    if _is_simulation_dir(p):
        sim = load_simulation(p)
        return sim.data, DataSpec("simulation", str(p.resolve()), {}, sim.data.content_hash, sim.data.name), sim
    from priorgnn.data.io import load_dataset

    data = load_dataset(cfg.data, **cfg.load)
    kind = "h5ad" if (p.suffix == ".h5ad" or p.exists()) else "dataset"
    where = str(p.resolve()) if kind == "h5ad" else cfg.data
    return data, DataSpec(kind, where, dict(cfg.load), data.content_hash, data.name), None


def make_or_load_split(cfg: RunConfig, data):
    from priorgnn.data.splits import Split, make_split

    if cfg.split_file:
        split = Split.load(cfg.split_file)
        split.check(data.conditions)
        return split
    opts = dict(cfg.split)
    kind = opts.pop("kind", "simulation")
    seed = int(opts.pop("seed", 1))
    return make_split(data.conditions, kind, seed=seed, **opts)


# -- priors -----------------------------------------------------------------------------------------
def _go_from_annotations(cfg: RunConfig, sim, progress: bool):
    from knowledge.cache import go_graph

    pri = cfg.priors
    k = int(pri.get("go_k", 20))
    threshold = float(pri.get("go_threshold", 0.1))
    if pri.get("go_gaf"):
        if not pri.get("go_obo"):
            raise ConfigError("a GAF needs its ontology: give priors.go_obo (CLI --go-obo) too.")
        return go_graph(obo=pri["go_obo"], gaf=pri["go_gaf"], k=k, threshold=threshold,
                        propagate=bool(pri.get("go_propagate", False)),
                        namespaces=pri.get("go_namespaces"), progress=progress)
    if pri.get("go_gene2go"):
        return go_graph(gene2go=pri["go_gene2go"], k=k, threshold=threshold, progress=progress)
    if pri.get("go_tsv"):
        return go_graph(tsv=pri["go_tsv"], k=k, threshold=threshold, progress=progress)
    if sim is not None:
        return go_graph(obo=sim.obo_path, gaf=sim.gaf_path, k=k, threshold=threshold,
                        propagate=bool(pri.get("go_propagate", False)), progress=progress)
    raise GraphError(
        "no GO annotations for these data. Give --go-obo and --go-gaf (fetch the current files with "
        "`python -m knowledge download-go --dest DIR`), --go-gene2go (GEARS's gene2go_all.pkl) or "
        "--go-graph (a saved graph); or train without the GO prior (--go none)."
    )


def build_priors(cfg: RunConfig, data, split, sim, model_cls, *, progress: bool = True) -> PriorGraphs:
    """The prior graphs the model reads, built (or fetched from the cache) as configured."""
    from knowledge.graph import GeneGraph

    graphs = PriorGraphs()
    uses = set(model_cls.uses_priors)
    opts = cfg.model_options
    pri = cfg.priors
    if "go" in uses and opts.get("use_go", True) and str(pri.get("go", "auto")) != "none":
        spec = str(pri.get("go", "auto"))
        graph = GeneGraph.load(spec) if spec != "auto" else _go_from_annotations(cfg, sim, progress)
        if pri.get("go_degrade"):
            from knowledge.degrade import degrade

            op, _, frac = str(pri["go_degrade"]).partition(":")
            graph = degrade(graph, op, seed=int(pri.get("go_degrade_seed", 0)),
                            frac=float(frac) if frac else None)
        graphs.go = graph
    if "coexpression" in uses and opts.get("use_coexpression", True) and str(pri.get("coexpression", "auto")) != "none":
        spec = str(pri.get("coexpression", "auto"))
        if spec == "auto":
            from knowledge.cache import coexpression

            if cfg.summaries_only:
                raise ConfigError("the co-expression graph is built from training cells, which --summaries-only "
                                  "does not load. Pass a saved graph (--coexpression GRAPH.npz), train without it "
                                  "(--coexpression none), or drop --summaries-only.")

            graphs.coexpression = coexpression(data, split, k=int(pri.get("coexpression_k", 20)),
                                               threshold=float(pri.get("coexpression_threshold", 0.4)),
                                               progress=progress)
        else:
            graphs.coexpression = GeneGraph.load(spec)
    if "go" in uses and graphs.go is None:
        cfg.model_options.setdefault("use_go", False)
    if "coexpression" in uses and graphs.coexpression is None:
        cfg.model_options.setdefault("use_coexpression", False)
    return graphs


# -- training ---------------------------------------------------------------------------------------
def train_run(cfg: RunConfig, *, overwrite: bool = False, resume: bool = False, progress: bool = True) -> Run:
    """Run the whole job and write the run directory; returns it."""
    t0 = time.perf_counter()
    out = Path(cfg.out) if cfg.out else cfg.default_out()
    if (out / "run.json").exists() and not (overwrite or resume):
        raise ConfigError(f"{out} already holds a run. Choose another --out, or pass --overwrite "
                          "(replace it) or --resume (continue its training).")
    ckpt = out / "checkpoints" / "last.ckpt"
    if resume:
        if not (out / "config.yaml").exists():
            raise CheckpointError(f"cannot resume: {out} holds no config.yaml of an earlier run.")
        cfg = RunConfig.from_yaml(out / "config.yaml")
        cfg.out = str(out)
    if overwrite and not resume:
        import shutil

        for stale in ("checkpoints", "logs", "predictions", "model", "graphs"):
            shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    model_cls = get_model_class(cfg.model)
    model_cls(**cfg.model_options)  # fail early on bad options
    if cfg.summaries_only and model_cls.needs_cells:
        raise ConfigError(f"model {cfg.model!r} trains on cells, which --summaries-only does not load; drop "
                          "--summaries-only for it.")
    write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    timings: dict[str, float] = {}
    t = time.perf_counter()
    data, spec, sim = resolve_data(cfg, progress=progress)
    split = make_or_load_split(cfg, data)
    if resume and (out / "split.json").exists():
        from priorgnn.data.splits import Split

        saved = Split.load(out / "split.json")
        if (saved.train, saved.val, saved.test) != (split.train, split.val, split.test):
            raise CheckpointError(f"cannot resume {out}: its saved split differs from the configured one.")
    split.save(out / "split.json")
    data.summaries  # noqa: B018 - computed (or loaded) once, timed as data preparation
    timings["data_s"] = time.perf_counter() - t
    log.info("data: %r; split %s: %d train, %d val, %d test conditions", data, split.kind,
             len(split.train), len(split.val), len(split.test))

    t = time.perf_counter()
    graphs = build_priors(cfg, data, split, sim, model_cls, progress=progress)
    for name in ("go", "coexpression"):
        g = getattr(graphs, name)
        if g is not None:
            g.save(out / "graphs" / f"{name}.npz")
    timings["priors_s"] = time.perf_counter() - t

    t = time.perf_counter()
    model = model_cls(**cfg.model_options)
    resume_path = str(ckpt) if resume and ckpt.exists() else None
    if resume and resume_path is None and model_cls.trainable:
        log.warning("no checkpoint to resume from in %s; training from the start", out)
    model.fit(data, split, graphs=graphs, train=cfg.train_config(out, resume_path))
    timings["train_s"] = time.perf_counter() - t
    model.save(out / "model")

    t = time.perf_counter()
    if split.test:
        pred = model.predict(split.test)
        _write_prediction(pred, out / "predictions", "test")
    timings["predict_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    info = {
        "name": cfg.name or out.name, "model": cfg.model, "seed": int(cfg.train.get("seed", 0)),
        "data": spec.to_dict(), "split": {"kind": split.kind, "seed": split.seed, "file": "split.json"},
        "graphs": {n: getattr(graphs, n).provenance for n in ("go", "coexpression") if getattr(graphs, n) is not None},
        "config": cfg.to_dict(), "fit_info": model.fit_info, "timings": timings, **environment_info(),
    }
    run = Run(out)
    run.write_info(info)
    log.info("wrote run %s in %.1f s", out, timings["total_s"])
    return run


def _write_prediction(pred, folder: Path, name: str) -> tuple[Path, Path]:
    name = safe_name(name)
    h5 = folder / f"{name}.h5ad"
    write_h5ad(h5, pred)
    delta = pd.DataFrame(pred.layers["delta"], index=pred.obs_names, columns=pred.var_names)
    delta.index.name = "condition"
    csv = folder / f"{name}_delta.csv"
    write_csv(csv, delta.round(6))
    return h5, csv


# -- prediction -------------------------------------------------------------------------------------
def parse_conditions(text: str | None = None, file: str | None = None, all_pairs: str | None = None) -> list[str]:
    """Conditions from a comma-separated string, a file (one per line, ``#`` comments), or every
    pair (and single) of a gene list."""
    conds: list[str] = []
    if text:
        conds += [c.strip() for c in text.split(",") if c.strip()]
    if file:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ConfigError(f"conditions file {file} not found.") from None
        conds += [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]
    if all_pairs:
        genes = sorted({g.strip() for g in all_pairs.replace("\n", ",").split(",") if g.strip()})
        if len(genes) < 2:
            raise ConfigError("--all-pairs needs at least two genes.")
        conds += [make_condition([g]) for g in genes]
        conds += [make_condition([a, b]) for i, a in enumerate(genes) for b in genes[i + 1:]]
    if not conds:
        raise ConfigError("no conditions given: use --conditions, --conditions-file or --all-pairs.")
    out = list(dict.fromkeys(canonical_condition(c) for c in conds))
    return out


def predict_run(run_path: str | Path, conditions: Sequence[str], *, out: str | Path | None = None,
                name: str = "predict", allow_prior_free: bool = False, interactions: bool = False,
                top: int = 50) -> dict[str, Path]:
    """Predict ``conditions`` with a trained run; write AnnData + CSV (and an interaction table)."""
    run = Run.load(run_path)
    model = run.model()
    if allow_prior_free and "allow_prior_free" in model.hparams:
        model.hparams["allow_prior_free"] = True
    pred = model.predict(list(conditions))
    folder = Path(out) if out else run.path / "predictions"
    h5, csv = _write_prediction(pred, folder, name)
    written = {"h5ad": h5, "csv": csv}
    if interactions:
        from priorgnn.interactions import rank_pair_interactions

        table = rank_pair_interactions(pred, top=top)
        path = folder / f"{safe_name(name)}_interactions.csv"
        write_csv(path, table, index=False)
        written["interactions"] = path
    return written

