"""The main job: data -> split -> priors -> model -> run directory; and prediction from a run.

``train.py`` is a thin command line over :func:`train_run` and :func:`predict_run`. With no
options, :func:`train_run` simulates (or reuses) the built-in ``demo`` data, builds its GO and
co-expression priors, makes a GEARS simulation split, trains PriorGNN and writes a run directory
(see :mod:`priorgnn.runs`).
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import yaml

from priorgnn.io import check_output_dir, replace_dir, safe_name, write_csv, write_h5ad, write_text
from priorgnn import experiment
from priorgnn.data.conditions import canonical_condition, make_condition
from priorgnn.errors import CheckpointError, ConfigError, GraphError, Interrupted
from priorgnn.models.base import PriorGraphs, TrainConfig, get_model_class
from priorgnn.runs import DataSpec, Run, RunLock, environment_info

log = logging.getLogger(__name__)

__all__ = ["RunConfig", "train_run", "predict_run", "resolve_data", "build_priors", "model_options",
           "parse_conditions", "prior_free_conditions", "given_files", "RESUMABLE", "PREDICT_CONFIRM_LIMIT"]

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"run_dir", "resume", "extra"}
_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.name in _TRAIN_FIELDS}
#: Options that may change when a run is resumed (``train.py --resume``); any other option given with
#: ``--resume`` must equal the run's saved value.
RESUMABLE = ("train.max_epochs", "train.max_steps", "train.patience", "train.threads", "train.accelerator",
             "train.devices", "train.progress_bar", "train.num_workers")
#: Predictions of more conditions than this need ``yes=True`` (``train.py predict --yes``).
PREDICT_CONFIRM_LIMIT = 1000
from priorgnn.data.splits import SPLIT_KINDS as _SPLIT_KINDS  # noqa: E402 - one list of split kinds
_ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


def _split_options() -> dict[str, inspect.Parameter]:
    from priorgnn.data.splits import make_split

    return {n: p for n, p in inspect.signature(make_split).parameters.items() if n not in ("conditions",)}


def _check_int(where: str, value: Any, low: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} = {value!r} is not an integer.{hint}")
    if value < low:
        raise ConfigError(f"{where} = {value} must be {low} or more.{hint}")


def _check_number(where: str, value: Any, *, positive: bool = False, at_most: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r} is not a finite number.")
    if (positive and value <= 0) or value < 0:
        raise ConfigError(f"{where} = {value} must be {'above' if positive else 'at least'} 0.")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{where} = {value} must be at most {at_most:g}.")


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
    #: train even when some test conditions involve a gene that the model's priors cannot place (no GO
    #: edge, never perturbed in training); those conditions are marked ``prior_free`` in the predictions
    allow_prior_free: bool = False

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

    def validate(self) -> None:
        """Check every option's type, range and key before anything is read or written; raises
        :class:`~priorgnn.errors.ConfigError` naming the option and what it accepts."""
        if not isinstance(self.data, str) or not self.data.strip():
            raise ConfigError(f"data = {self.data!r}: give a preset (demo, norman), a simulation folder or an .h5ad.")
        _check_int("data_seed (--data-seed)", self.data_seed, 0)
        for section in ("simulate", "load", "split", "model_options", "priors", "train"):
            if not isinstance(getattr(self, section), dict):
                raise ConfigError(f"{section} must be a mapping of options, not {getattr(self, section)!r}.")
        # split
        known = _split_options()
        unknown = sorted(set(self.split) - set(known))
        if unknown:
            import difflib

            hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(str(u), known, 1)) else repr(u)
                     for u in unknown]
            raise ConfigError(f"unknown split option(s) {', '.join(hints)}; known: {', '.join(sorted(known))} "
                              "(CLI: --split-set KEY=VALUE).")
        if self.split.get("kind", "simulation") not in _SPLIT_KINDS:
            raise ConfigError(f"split kind {self.split.get('kind')!r} is unknown; choose {', '.join(_SPLIT_KINDS)}.")
        for key, value in self.split.items():
            if key == "seed":
                _check_int("split seed (--split-seed)", value, 0)
            elif key.endswith("_frac"):
                _check_number(f"split option {key} (--split-set)", value, at_most=1.0)
            elif key == "require_subgroups" and value is not None and not isinstance(value, (list, tuple)):
                raise ConfigError(f"split option require_subgroups = {value!r}: give a list of subgroups.")
        # training
        bad = set(self.train) - _TRAIN_FIELDS
        if bad:
            raise ConfigError(f"unknown train option(s) {sorted(bad)}; known: {sorted(_TRAIN_FIELDS)}.")
        t = self.train
        if "max_epochs" in t:
            _check_int("max_epochs (--epochs)", t["max_epochs"], 1,
                       " To save a model without training (a reference row), use --untrained (train.untrained: true).")
        if "max_steps" in t and t["max_steps"] != -1:
            _check_int("max_steps (--max-steps)", t["max_steps"], 1, " (-1: no limit)")
        for key, low in (("batch_size", 1), ("patience", 0), ("seed", 0), ("num_workers", 0)):
            if key in t:
                _check_int(f"{key} (--{key.replace('_', '-')})", t[key], low)
        if t.get("threads") is not None:
            _check_int("threads (--threads)", t["threads"], 1)
        if "lr" in t:
            _check_number("lr (--lr)", t["lr"], positive=True)
        if "weight_decay" in t:
            _check_number("weight_decay (--weight-decay)", t["weight_decay"])
        if "accelerator" in t and t["accelerator"] not in _ACCELERATORS:
            raise ConfigError(f"accelerator {t['accelerator']!r} is unknown; choose one of {', '.join(_ACCELERATORS)}.")
        if "devices" in t:
            d = t["devices"]
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 1) or d == "auto" or d == -1 or (
                isinstance(d, str) and all(x.strip().isdigit() for x in d.strip(",").split(",") if d.strip(",")))
            if not ok or d in ("", ","):
                raise ConfigError(f"devices {d!r}: give a number of devices (1 or more), a list of device ids "
                                  "(e.g. 0,1) or auto.")
        if not isinstance(self.allow_prior_free, bool):
            raise ConfigError(f"allow_prior_free = {self.allow_prior_free!r} is not true or false.")
        for key in ("untrained", "progress_bar"):
            if key in t and not isinstance(t[key], bool):
                raise ConfigError(f"train option {key} = {t[key]!r} is not true or false.")
        select = self.load.get("select")
        if select is not None and (not isinstance(select, dict) or not all(
                isinstance(k, str) and k for k in select)):
            raise ConfigError(f"load.select = {select!r}: give obs column -> value(s), e.g. {{dataset: norman19}} "
                              "(CLI --select dataset=norman19).")
        if self.load.get("n_top_genes") is not None:
            _check_int("n_top_genes (--n-top-genes)", self.load["n_top_genes"], 1)
        get_model_class(self.model).check_hparams(self.model_options)

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
    load = dict(cfg.load)
    if kind == "dataset":  # record the data set's own conventions (e.g. its cell selection) as used
        from priorgnn.data.download import DATASETS

        load = {**DATASETS[cfg.data].load_defaults, **{k: v for k, v in load.items() if v is not None}}
    return data, DataSpec(kind, where, load, data.content_hash, data.name), None


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
    """The prior graphs the model reads, built (or fetched from the cache) as configured.

    ``cfg`` is not changed; :func:`model_options` gives the model's options for the graphs returned.
    """
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
    return graphs


def model_options(cfg: RunConfig, model_cls, graphs: PriorGraphs) -> dict[str, Any]:
    """The model's options for these priors: a copy of ``cfg.model_options`` that turns off each prior
    branch whose graph is absent (``use_go=False``, ``use_coexpression=False``) unless set explicitly.

    ``cfg`` is left as it is; construct the model with ``model_cls(**model_options(cfg, model_cls, graphs))``.
    """
    options = dict(cfg.model_options)
    uses = set(model_cls.uses_priors)
    if "go" in uses and graphs.go is None:
        options.setdefault("use_go", False)
    if "coexpression" in uses and graphs.coexpression is None:
        options.setdefault("use_coexpression", False)
    return options


# -- training ---------------------------------------------------------------------------------------
def _saved_value(cfg: RunConfig, path: str) -> Any:
    """The value of ``path`` (``'model'``, ``'train.lr'``, ...) in ``cfg``, or its default."""
    section, _, key = path.partition(".")
    if not key:
        return getattr(cfg, section)
    d = getattr(cfg, section)
    if key in d:
        return d[key]
    if section == "train":
        return _TRAIN_DEFAULTS.get(key)
    if section == "split":
        p = _split_options().get(key)
        return {"kind": "simulation", "seed": 1}.get(key, None if p is None else p.default)
    if section == "priors":
        return "auto" if key in ("go", "coexpression") else None
    if section == "model_options":
        try:
            p = inspect.signature(get_model_class(cfg.model).__init__).parameters.get(key)
        except ConfigError:
            p = None
        return None if p is None or p.default is inspect.Parameter.empty else p.default
    return None


def _resume_config(out: Path, changes: dict[str, Any] | None, flags: dict[str, str] | None) -> RunConfig:
    """The saved config of the run in ``out`` with the allowed ``changes`` applied; an option that
    contradicts the saved run is an error naming it."""
    if not (out / "config.yaml").exists():
        raise CheckpointError(f"cannot resume: {out} holds no config.yaml of an earlier run. Train it first "
                              "(without --resume), or give the --out of an existing run.")
    cfg = RunConfig.from_yaml(out / "config.yaml")
    conflicts, applied = [], []
    for path, value in (changes or {}).items():
        saved = _saved_value(cfg, path)
        flag = (flags or {}).get(path, path)
        if path in RESUMABLE:
            if value != saved:
                section, _, key = path.partition(".")
                getattr(cfg, section)[key] = value
                applied.append(f"{flag} {value!r} (was {saved!r})")
        elif value != saved:
            conflicts.append(f"{flag} {value!r} (the run has {saved!r})")
    if conflicts:
        raise ConfigError(
            f"cannot resume {out} with {'; '.join(conflicts)}: a resumed run keeps its saved settings. Options "
            "that may change on resume: --epochs, --max-steps, --patience, --threads, --accelerator, --devices, "
            "--no-progress, -q, --debug. For other settings start a new run (another --out, or --overwrite)."
        )
    for line in applied:
        log.info("resume: %s", line)
    cfg.out = str(out)
    return cfg


def _keep_interrupted(work: Path, out: Path) -> Path:
    """Keep an interrupted new run: at ``out`` if that is free, else beside it (the earlier run stays)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    dest = out
    n = 1
    while dest.exists():
        dest = out.parent / f"{out.name}-interrupted{'' if n == 1 else f'-{n}'}"
        n += 1
    os.replace(work, dest)
    return dest


def _is_run_dir(p: Path) -> bool:
    return (p / "run.json").exists() or (p / "config.yaml").exists()


def train_run(cfg: RunConfig, *, overwrite: bool = False, resume: bool = False, progress: bool = True,
              changes: dict[str, Any] | None = None, flags: dict[str, str] | None = None) -> Run:
    """Run the whole job and write the run directory; returns it.

    A new run is built in a temporary folder beside ``cfg.out`` and moved into place only once it has
    succeeded, so ``overwrite=True`` replaces an earlier run only by a complete new one (a failed run
    leaves the earlier one as it was). The run directory is locked while it is written
    (:class:`~priorgnn.runs.RunLock`). With ``resume=True`` the run in ``cfg.out`` continues from its
    last checkpoint with its own ``config.yaml``; ``changes`` (``{'train.max_epochs': 8, ...}``) are
    applied if they are among :data:`RESUMABLE`, and any other that differs from the saved run is an error.
    Ctrl-C during training keeps the epochs completed so far (a resumable run) and raises
    :class:`~priorgnn.errors.Interrupted` saying where they are.
    """
    t0 = time.perf_counter()
    out = Path(cfg.out) if cfg.out else cfg.default_out()
    check_output_dir(out.parent)  # a symbolic link to nothing, or a file, on the way to the run folder
    if out.is_symlink() and not out.exists():
        raise ConfigError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist. Create "
                          "that folder, remove the link, or choose another --out.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder. Give the path of a run folder (created if absent).")
    if resume and not (out / "config.yaml").exists():
        raise CheckpointError(f"cannot resume: {out} holds no config.yaml of an earlier run. Train it first "
                              "(without --resume), or give the --out of an existing run.")
    if not resume:
        cfg.validate()
        if _is_run_dir(out) and not overwrite:
            what = "a run" if (out / "run.json").exists() else "an unfinished (interrupted) run"
            raise ConfigError(f"{out} already holds {what}. Choose another --out, or pass --overwrite "
                              "(replace it once the new run has succeeded) or --resume (continue its training).")
        if out.is_dir() and any(out.iterdir()) and not _is_run_dir(out):
            raise ConfigError(f"{out} is a folder with other files, not a run directory; it is never replaced. "
                              "Choose a new or empty --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        if resume:
            cfg = _resume_config(out, changes, flags)
            model_cls = get_model_class(cfg.model)
            return _build_run(cfg, out, out, model_cls, progress, t0, resume=True)
        model_cls = get_model_class(cfg.model)
        if cfg.summaries_only and model_cls.needs_cells:
            raise ConfigError(f"model {cfg.model!r} trains on cells, which --summaries-only does not load; drop "
                              "--summaries-only for it.")
        cfg.out = str(out) if cfg.out else None
        # replacing a run: build beside it and swap at the end; a new run: build in place (resumable if killed)
        replacing = _is_run_dir(out)
        existed = out.exists()
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent)) if replacing else out

        def discard() -> None:
            shutil.rmtree(work, ignore_errors=True)
            if not replacing and existed:
                out.mkdir(exist_ok=True)

        try:
            _build_run(cfg, out, work, model_cls, progress, t0, resume=False)
        except Interrupted as exc:
            epochs = getattr(exc, "epochs_done", 0)
            if epochs:
                kept = _keep_interrupted(work, out) if replacing else out
                raise _interrupted_line(exc, kept, f"python train.py --out {kept} --resume") from None
            discard()
            raise Interrupted("interrupted before the first epoch ended; nothing was kept"
                              f"{'; the earlier run in ' + str(out) + ' is unchanged' if replacing else ''}.") from None
        except KeyboardInterrupt:
            discard()
            raise Interrupted("interrupted before training finished; nothing was kept"
                              f"{'; the earlier run in ' + str(out) + ' is unchanged' if replacing else ''}.") from None
        except BaseException:
            discard()
            raise
        if replacing:
            replace_dir(work, out)
    run = Run(out)
    log.info("wrote run %s in %.1f s", out, run.info["timings"]["total_s"])
    return run


def _interrupted_line(exc: Interrupted, kept: Path, command: str) -> Interrupted:
    new = Interrupted(f"interrupted in epoch {exc.epochs_done + 1}: {exc.epochs_done} completed epoch(s) kept in "
                      f"{kept}/checkpoints/last.ckpt; continue with: {command}")
    new.epochs_done = exc.epochs_done
    return new


def _build_run(cfg: RunConfig, out: Path, work: Path, model_cls, progress: bool, t0: float, *,
               resume: bool) -> Run:
    """Fit and write the run into ``work`` (``out`` itself when resuming; else a temporary folder
    that :func:`train_run` moves to ``out``)."""
    ckpt = work / "checkpoints" / "last.ckpt"
    work.mkdir(parents=True, exist_ok=True)
    model_cls(**cfg.model_options)  # fail early on bad options
    write_text(work / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    timings: dict[str, float] = {}
    t = time.perf_counter()
    data, spec, sim = resolve_data(cfg, progress=progress)
    split = make_or_load_split(cfg, data)
    if resume and (work / "split.json").exists():
        from priorgnn.data.splits import Split

        saved = Split.load(work / "split.json")
        if (saved.train, saved.val, saved.test) != (split.train, split.val, split.test):
            raise CheckpointError(f"cannot resume {out}: its saved split differs from the configured one.")
    split.save(work / "split.json")
    data.summaries  # noqa: B018 - computed (or loaded) once, timed as data preparation
    timings["data_s"] = time.perf_counter() - t
    log.info("data: %r; split %s: %d train, %d val, %d test conditions", data, split.kind,
             len(split.train), len(split.val), len(split.test))

    t = time.perf_counter()
    graphs = build_priors(cfg, data, split, sim, model_cls, progress=progress)
    # the run records the options the model was built with (its config.yaml, written above, the user's)
    cfg = replace(cfg, model_options=model_options(cfg, model_cls, graphs))
    for name in ("go", "coexpression"):
        g = getattr(graphs, name)
        if g is not None:
            g.save(work / "graphs" / f"{name}.npz")
    timings["priors_s"] = time.perf_counter() - t

    free = prior_free_conditions(cfg, model_cls, graphs, split)
    if free and not (cfg.allow_prior_free or cfg.model_options.get("allow_prior_free") is True):
        genes = sorted({g for gs in free.values() for g in gs})
        raise GraphError(
            f"{len(free)} test condition(s) cannot be predicted by {cfg.model} with these priors: gene(s) "
            f"{', '.join(map(repr, genes[:8]))}{' …' if len(genes) > 8 else ''} have no GO edge and are not perturbed "
            f"in training (e.g. {next(iter(free))!r}). Give GO annotations that cover them, use a split that "
            "trains on them, or pass --allow-prior-free to train anyway and mark them prior_free in the predictions."
        )
    if free:
        log.warning("%d test condition(s) have gene(s) the priors cannot place; they are predicted and marked "
                    "prior_free: %s", len(free), ", ".join(list(free)[:8]))
    options = dict(cfg.model_options)
    if free and "allow_prior_free" in inspect.signature(model_cls.__init__).parameters:
        options["allow_prior_free"] = True

    t = time.perf_counter()
    model = model_cls(**options)
    resume_path = str(ckpt) if resume and ckpt.exists() else None
    if resume and resume_path is None and model_cls.trainable:
        log.warning("no checkpoint to resume from in %s; training from the start", out)
    try:
        experiment.fit(model, data, split, graphs, train=cfg.train_config(work, resume_path))
    except Interrupted as exc:
        if resume:
            raise _interrupted_line(exc, out, f"python train.py --out {out} --resume") from None
        raise
    timings["train_s"] = time.perf_counter() - t
    model.save(work / "model")

    t = time.perf_counter()
    if split.test:
        pred = model.predict(split.test)
        if free:  # marked here for every model; a model's own marks are kept
            mine = np.array([c in free for c in pred.obs_names.astype(str)])
            own = pred.obs["prior_free"].to_numpy(bool) if "prior_free" in pred.obs else np.zeros(len(mine), bool)
            pred.obs["prior_free"] = mine | own
        _write_prediction(pred, work / "predictions", "test")
    timings["predict_s"] = time.perf_counter() - t
    # evaluate_runs scores this file while the model and split are the ones it was predicted from
    saved = {"test": experiment.prediction_record(work)} if split.test else {}
    timings["total_s"] = time.perf_counter() - t0

    inputs = given_files(cfg, spec)
    info = {
        "name": cfg.name or out.name, "model": cfg.model, "seed": int(cfg.train.get("seed", 0)),
        "data": spec.to_dict(), "split": {"kind": split.kind, "seed": split.seed, "file": "split.json"},
        "graphs": {n: _as_given(getattr(graphs, n).provenance, inputs)
                   for n in ("go", "coexpression") if getattr(graphs, n) is not None},
        "inputs": inputs,
        "prior_free_conditions": {c: list(g) for c, g in free.items()},
        "config": cfg.to_dict(), "fit_info": model.fit_info, "timings": timings, "predictions": saved,
        **environment_info(),
    }
    run = Run(work)
    run.write_info(info)
    return run


def prior_free_conditions(cfg: RunConfig, model_cls, graphs: PriorGraphs, split) -> dict[str, list[str]]:
    """Test conditions that ``model_cls`` cannot place with these priors, with the genes at fault.

    A model that places unseen genes through the GO graph (``'go'`` in its ``uses_priors``, GO not
    switched off) has no basis for a gene that has no GO edge to another gene and is not perturbed
    in any training condition; this is known before training and checked before it starts.
    """
    from priorgnn.data.conditions import parse_condition

    if "go" not in model_cls.uses_priors or cfg.model_options.get("use_go", True) is False:
        return {}
    trained = {g for c in split.train for g in parse_condition(c)}
    annotated: set[str] = set()
    if graphs.go is not None:
        mask = graphs.go.annotated()
        annotated = {g for g, a in zip(graphs.go.genes, mask) if a}
    out: dict[str, list[str]] = {}
    for c in split.test:
        bad = [g for g in parse_condition(c) if g not in trained and g not in annotated]
        if bad:
            out[c] = bad
    return out


def _as_given(provenance: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """A graph's provenance for ``run.json``: a source file of a graph taken from the cache names the
    file the user gave now (same sha256), not the path the cache entry was first built from (kept as
    ``cached_from``)."""
    by_sha = {r["sha256"]: r["path"] for r in inputs if r.get("sha256")}
    out = copy.deepcopy(provenance)
    for src in out.get("sources", []) if isinstance(out.get("sources"), list) else []:
        if isinstance(src, dict) and src.get("sha256") in by_sha and src.get("path") != by_sha[src["sha256"]]:
            src["cached_from"] = src.get("path")
            src["path"] = by_sha[src["sha256"]]
    return out


def _file_record(role: str, given: str | os.PathLike) -> dict[str, Any]:
    from priorgnn.io import sha256_file

    p = Path(given).expanduser()
    rec: dict[str, Any] = {"role": role, "given": str(given), "path": str(p.resolve())}
    if p.is_file():
        rec.update(size=p.stat().st_size, sha256=sha256_file(p))
    elif p.is_dir():
        rec["kind"] = "folder"
    return rec


def given_files(cfg: RunConfig, spec: DataSpec) -> list[dict[str, Any]]:
    """The files the user named for this run (data, split file, prior graphs and annotations), as
    given and resolved, with their size and sha256 at training time.

    These are the user's own files: a prior fetched from the cache is recorded by the files it was
    asked for now, not by the paths its cache entry was first built from.
    """
    records = []
    if spec.kind == "h5ad":
        records.append(_file_record("data", cfg.data))
    elif spec.kind == "dataset":
        from priorgnn.data.download import dataset_path

        records.append({**_file_record("data", dataset_path(cfg.data)), "dataset": cfg.data})
    elif spec.kind == "simulation" and Path(cfg.data).is_dir() and Path(spec.path, "data.h5ad").is_file():
        records.append(_file_record("data", Path(spec.path, "data.h5ad")))
    if cfg.split_file:
        records.append(_file_record("split", cfg.split_file))
    for key in ("go", "coexpression"):
        value = str(cfg.priors.get(key, "auto"))
        if value not in ("auto", "none"):
            records.append(_file_record(f"priors.{key}", value))
    for key in ("go_obo", "go_gaf", "go_gene2go", "go_tsv"):
        if cfg.priors.get(key):
            records.append(_file_record(f"priors.{key}", cfg.priors[key]))
    return records


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
        except UnicodeDecodeError:
            raise ConfigError(f"conditions file {file} is not a text file; give one condition per line "
                              "('A+B', 'A+ctrl').") from None
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


def _unknown_gene_error(model, unknown: list[str], conditions: Sequence[str]) -> ConfigError:
    vocab = model._vocabulary()
    lower = {}
    for g in vocab:
        lower.setdefault(g.lower(), g)
    parts = []
    for g in unknown[:5]:
        hint = f" (measured as {lower[g.lower()]!r}: fix the spelling)" if g.lower() in lower else ""
        parts.append(f"{g!r}{hint}")
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    first = next(c for c in conditions if any(g in unknown for g in c.split("+")))
    return ConfigError(
        f"cannot predict {first!r}: the {model.name} model has never seen gene(s) {', '.join(parts)}{more} "
        "(neither measured nor perturbed in training). Check the gene names, or pass --allow-fallback "
        "(predict_run(..., allow_fallback=True)) to predict them with the model's fallback."
    )


def _size_text(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.0f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def predict_run(run_path: str | Path, conditions: Sequence[str], *, out: str | Path | None = None,
                name: str | None = None, allow_prior_free: bool = False, interactions: bool = False,
                top: int = 50, allow_fallback: bool = False, overwrite: bool = False,
                yes: bool = False, rank_by: str = "relative_nonadditive") -> dict[str, Path]:
    """Predict ``conditions`` with a trained run; write AnnData + CSV (and an interaction table).

    A gene the model has never seen (neither measured nor perturbed in training) is an error unless
    ``allow_fallback``. Outputs are never overwritten unless ``overwrite``: without a ``name`` they are
    ``predict.*``, or the first free ``predict-2.*``, ``predict-3.*``, ... (logged); earlier outputs of a
    given ``name`` are an error. More
    than :data:`PREDICT_CONFIRM_LIMIT` conditions need ``yes`` (the error states the size and an
    estimated time, from timing the first few predictions).
    """
    run = Run.load(run_path)
    model = run.model()
    if allow_prior_free and "allow_prior_free" in model.hparams:
        model.hparams["allow_prior_free"] = True
    conditions = list(conditions)
    unknown = model.unknown_genes(conditions)
    if unknown and not allow_fallback:
        raise _unknown_gene_error(model, unknown, conditions)
    folder = Path(out) if out else run.path / "predictions"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file, not a folder; give a folder for the predictions.")
    def targets(stem: str) -> list[Path]:
        return [folder / f"{stem}.h5ad", folder / f"{stem}_delta.csv"] + (
            [folder / f"{stem}_interactions.csv"] if interactions else [])

    stem = safe_name(name or "predict")
    existing = [t for t in targets(stem) if t.exists()]
    if existing and not overwrite:
        if name is not None:
            raise ConfigError(f"{existing[0]} already exists (an earlier prediction). Pass --overwrite to replace it, "
                              "or another --name to write beside it.")
        k = 2
        while any(t.exists() for t in targets(f"{stem}-{k}")):
            k += 1
        log.warning("%s exists from an earlier prediction; writing %s-%d.* beside it (--overwrite replaces it, "
                    "--name chooses a name)", existing[0], stem, k)
        stem = f"{stem}-{k}"
    n = len(conditions)
    if n > 100:
        n_pairs = sum(1 for c in conditions if "+" in c and "ctrl" not in c.split("+"))
        k = min(16, n)
        t = time.perf_counter()
        model.predict(conditions[:k])
        est = (time.perf_counter() - t) / k * n
        size = n * len(model.genes) * 4 * 2 + n * len(model.genes) * 10
        what = (f"{n:,} conditions ({n - n_pairs:,} singles and controls, {n_pairs:,} pairs) x {len(model.genes):,} "
                f"genes: about {est:.0f} s and {_size_text(size)} of output")
        if n > PREDICT_CONFIRM_LIMIT and not yes:
            raise ConfigError(f"{what}, above the {PREDICT_CONFIRM_LIMIT:,}-condition limit that needs confirmation. "
                              "Rerun with --yes to go ahead, or predict fewer genes or conditions.")
        log.warning("predicting %s", what)
    pred = model.predict(conditions)
    h5, csv = _write_prediction(pred, folder, stem)
    written = {"h5ad": h5, "csv": csv}
    if interactions:
        from priorgnn.interactions import rank_pair_interactions

        table = rank_pair_interactions(pred, score=rank_by, top=top)
        path = folder / f"{stem}_interactions.csv"
        write_csv(path, table, index=False)
        written["interactions"] = path
    return written
