#!/usr/bin/env python
"""Train a perturbation-outcome model and write a run directory; or predict with a trained run.

    python train.py                                   # simulate the demo data, train PriorGNN
    python train.py --model additive --data my.h5ad --go-obo go-basic.obo --go-gaf goa_human.gaf.gz
    python train.py --config run.yaml --out runs/x    # options from YAML; flags override them
    python train.py --out runs/x --resume             # continue an interrupted run
    python train.py predict RUN --conditions "A+B,C+ctrl"
    python train.py predict RUN --all-pairs "A,B,C,D" # every pair, plus a table of interactions

Run ``python train.py --help`` or ``python train.py predict --help`` for every option.
"""

from __future__ import annotations

import argparse
import sys

from priorgnn.data.splits import SPLIT_KINDS
from priorgnn.cli import (ArgumentParser, nonnegative_float, nonnegative_int, parse_key_values, positive_float,
                          positive_int, run_main, setup_logging)


def _train_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="train.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a model on a data set and split; write a run directory "
                    "(config, split, priors, checkpoints, training curve, test predictions).\n"
                    "Subcommand: `train.py predict RUN ...` predicts conditions with a trained run.",
        epilog="With no options: simulate (or reuse) the built-in demo data and train PriorGNN.",
    )
    p.add_argument("--config", help="YAML config (keys as in priorgnn.pipeline.RunConfig); flags override it")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="simulator preset (demo, norman), simulation folder, .h5ad path, or a "
                                  "downloaded data set name (default: demo)")
    g.add_argument("--data-seed", type=nonnegative_int, help="simulation seed (default 0)")
    g.add_argument("--sim-dir", help="where a simulated data set is written (default runs/sim/PRESET-seedN)")
    g.add_argument("--sim-set", action="append", metavar="KEY=VALUE", help="simulator option override")
    g.add_argument("--normalize", action="store_true", default=None,
                   help="raw counts given: apply normalize_total + log1p")
    g.add_argument("--n-top-genes", type=positive_int, help="keep this many highly variable genes (+ perturbed genes)")
    g.add_argument("--style", choices=["auto", "gears", "scperturb"], help="AnnData layout (default auto)")
    g.add_argument("--condition-column", help="GEARS-style obs column (default condition)")
    g.add_argument("--perturbation-column", help="scPerturb-style obs column (default perturbation)")
    g.add_argument("--separator", help="scPerturb gene separator (default _)")
    g.add_argument("--control-label", help="scPerturb control label (default control)")
    g.add_argument("--layer", help="use this AnnData layer as expression")
    g.add_argument("--select", action="append", metavar="COLUMN=VALUE[,VALUE]",
                   help="keep only the cells whose obs COLUMN has one of these values (repeatable; e.g. "
                        "--select dataset=norman19 on norman2019_subset); recorded in the run's config")
    g.add_argument("--drop-small-conditions", action="store_true", default=None,
                   help="drop conditions with fewer than 2 cells (logged) instead of failing")
    g.add_argument("--allow-unmeasured-perturbations", action="store_true", default=None,
                   help="allow perturbed genes absent from the measured genes")
    g.add_argument("--summaries-only", action="store_true", default=None,
                   help="stream per-condition summaries from the file instead of loading the cell matrix "
                        "(memory bounded by conditions x genes; models that do not train on cells; needs a saved "
                        "or no co-expression graph)")
    g = p.add_argument_group("split")
    g.add_argument("--split", choices=list(SPLIT_KINDS),
                   help="split kind (default simulation; gears_simulation reproduces cell-gears's "
                        "prepare_split(split='simulation', seed) on GEARS-style condition names)")
    g.add_argument("--split-seed", type=nonnegative_int, help="split seed (default 1)")
    g.add_argument("--split-file", help="use a saved split (split.json)")
    g.add_argument("--split-set", action="append", metavar="KEY=VALUE",
                   help="split option, e.g. train_gene_frac=0.75, test_frac=0.5")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registered model name (default priorgnn); see --list-models")
    g.add_argument("--model-set", action="append", metavar="KEY=VALUE",
                   help="model hyperparameter, e.g. hidden=64, singles=none, loss=mse")
    g.add_argument("--list-models", action="store_true", help="list registered models and exit")
    g = p.add_argument_group("priors")
    g.add_argument("--go", help="GO graph: auto (from annotations / the simulation), none, or a saved graph .npz")
    g.add_argument("--go-obo", help="GO ontology (OBO)")
    g.add_argument("--go-gaf", help="gene annotations (GAF)")
    g.add_argument("--go-gene2go", help="GEARS's gene2go_all.pkl (read with a restricted unpickler)")
    g.add_argument("--go-tsv", help="gene<TAB>GO-id table")
    g.add_argument("--go-propagate", action="store_true", default=None, help="propagate annotations to ancestors")
    g.add_argument("--go-degrade", metavar="OP[:FRAC]",
                   help="degrade the GO graph: dropout:0.5, rewire, permute, random, empty")
    g.add_argument("--go-degrade-seed", type=nonnegative_int)
    g.add_argument("--coexpression", help="co-expression graph: auto (training cells), none, or a saved graph .npz")
    g.add_argument("--allow-prior-free", action="store_true", default=None,
                   help="train even if some test conditions have a gene with no GO edge that is never perturbed "
                        "in training (otherwise refused before training); they are marked prior_free")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_epochs, dest="max_epochs",
                   help="maximum epochs, 1 or more (one epoch = every training condition once); for a model saved without training use --untrained")
    g.add_argument("--batch-size", type=positive_int, help="conditions per batch (default 32)")
    g.add_argument("--lr", type=positive_float, help="learning rate (> 0)")
    g.add_argument("--weight-decay", type=nonnegative_float, help="weight decay (>= 0)")
    g.add_argument("--patience", type=nonnegative_int, help="early-stopping patience in epochs (0: off)")
    g.add_argument("--seed", type=nonnegative_int, help="training seed (default 0)")
    g.add_argument("--accelerator", help="Lightning accelerator (cpu, gpu, auto)")
    g.add_argument("--devices", help="Lightning devices (e.g. 1, 4, auto)")
    g.add_argument("--max-steps", type=positive_int, help="stop after this many optimiser steps")
    g.add_argument("--untrained", action="store_true", default=None,
                   help="no training: save the model at initialisation, for reference rows in benchmarks "
                        "(PriorGNN: its decoder's output at zero, so it predicts through its built-in backbone "
                        "only: the mean training single, the sum of measured singles for a double)")
    g.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: $OMP_NUM_THREADS or all cores)")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default runs/DATA-MODEL-SPLIT-sSEED)")
    g.add_argument("--name", help="run name")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing run directory, once the new run has succeeded (a failed or interrupted "
                        "run leaves it as it was)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint. Options that may change on resume: "
                        "--epochs, --max-steps, --patience, --threads, --accelerator, --devices, --no-progress, -q, "
                        "--debug; any other option that differs from the run's config.yaml is an error")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _predict_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="train.py predict",
        description="Predict mean expression (and delta from control) for conditions with a trained run. "
                    "Writes an AnnData (.h5ad, delta in layers['delta']) and a CSV of deltas.",
    )
    p.add_argument("run", help="run directory written by train.py")
    p.add_argument("--conditions", help='comma-separated, e.g. "A+B,C+ctrl"')
    p.add_argument("--conditions-file", help="one condition per line")
    p.add_argument("--all-pairs", metavar="GENES", help="comma-separated genes: predict every single and pair, "
                                                       "and write a table of the top predicted interactions")
    p.add_argument("--top", type=positive_int, default=50, help="rows of the interaction table (default 50)")
    from priorgnn.interactions import RANK_SCORES

    p.add_argument("--rank-by", choices=sorted(RANK_SCORES), default="relative_nonadditive",
                   help="how --all-pairs ranks the pairs (default relative_nonadditive: the predicted departure "
                        "from the sum of singles relative to that sum; magnitude_deviation: Norman et al.'s "
                        "|magnitude - 1|)")
    p.add_argument("--out", help="output folder (default RUN/predictions)")
    p.add_argument("--name", help="output file stem (default predict, or predict-2, predict-3, ... if taken)")
    p.add_argument("--allow-prior-free", action="store_true",
                   help="predict genes without GO annotation that were never perturbed, marked prior_free")
    p.add_argument("--allow-fallback", action="store_true",
                   help="predict genes the model has never seen (not measured, never perturbed) with the model's "
                        "fallback (e.g. the additive model's mean single) instead of failing")
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs of the same --name")
    p.add_argument("-y", "--yes", action="store_true",
                   help="run a prediction beyond the size that needs confirmation "
                        "(more than 1,000 conditions; the size and an estimated time are printed first)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    return p


def _epochs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value == 0:
        raise argparse.ArgumentTypeError("0 epochs trains nothing; to save the model at initialisation "
                                         "(a reference row) use --untrained")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more (for no limit, give a large number with "
                                         "--patience for early stopping)")
    return value


#: config location -> the flag that sets it (for messages)
_FLAGS = {"data": "--data", "data_seed": "--data-seed", "sim_dir": "--sim-dir", "split_file": "--split-file",
          "model": "--model", "out": "--out", "name": "--name", "summaries_only": "--summaries-only",
          "split.kind": "--split", "split.seed": "--split-seed", "train.max_epochs": "--epochs",
          "train.progress_bar": "--no-progress", "train.devices": "--devices", "allow_prior_free": "--allow-prior-free",
          "load.select": "--select"}


def _flag(path: str) -> str:
    if path in _FLAGS:
        return _FLAGS[path]
    section, _, key = path.partition(".")
    option = {"simulate": "--sim-set", "split": "--split-set", "model_options": "--model-set"}.get(section)
    return f"{option} {key}=..." if option else "--" + key.replace("_", "-")


def _given(args) -> dict[str, object]:
    """The settings given on the command line, as ``{config location: value}`` (``'model'``,
    ``'train.max_epochs'``, ``'model_options.hidden'``, ...)."""
    given: dict[str, object] = {}
    for key in ("data", "data_seed", "sim_dir", "split_file", "model", "out", "name", "summaries_only",
                "allow_prior_free"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    for k, v in parse_key_values(args.sim_set, "--sim-set").items():
        given[f"simulate.{k}"] = v
    for key in ("normalize", "n_top_genes", "style", "condition_column", "perturbation_column", "separator",
                "control_label", "layer", "drop_small_conditions", "allow_unmeasured_perturbations"):
        if getattr(args, key) is not None:
            given[f"load.{key}"] = getattr(args, key)
    if args.select:
        given["load.select"] = parse_key_values(args.select, "--select")
    if args.split is not None:
        given["split.kind"] = args.split
    if args.split_seed is not None:
        given["split.seed"] = args.split_seed
    for k, v in parse_key_values(args.split_set, "--split-set").items():
        given[f"split.{k}"] = v
    for k, v in parse_key_values(args.model_set, "--model-set").items():
        given[f"model_options.{k}"] = v
    for key in ("go", "go_obo", "go_gaf", "go_gene2go", "go_tsv", "go_propagate", "go_degrade",
                "go_degrade_seed", "coexpression"):
        if getattr(args, key) is not None:
            given[f"priors.{key}"] = getattr(args, key)
    for key in ("max_epochs", "batch_size", "lr", "weight_decay", "patience", "seed", "accelerator",
                "max_steps", "threads", "untrained"):
        if getattr(args, key) is not None:
            given[f"train.{key}"] = getattr(args, key)
    if args.devices is not None:
        given["train.devices"] = int(args.devices) if args.devices.isdigit() else args.devices
    if args.no_progress:
        given["train.progress_bar"] = False
    return given


def _config(args):
    from priorgnn.pipeline import RunConfig

    cfg = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    for path, value in _given(args).items():
        section, _, key = path.partition(".")
        if key:
            getattr(cfg, section)[key] = value
        else:
            setattr(cfg, section, value)
    cfg.validate()
    return cfg


def main_train(argv: list[str]) -> int:
    args = _train_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else 0, args.debug)

    def run() -> int:
        from priorgnn.errors import ConfigError
        from priorgnn.models import available_models
        from priorgnn.pipeline import RunConfig, train_run

        if args.list_models:
            print("\n".join(available_models()))
            return 0
        if args.resume:
            if args.config:
                raise ConfigError("--resume continues a run with its own config.yaml; drop --config (or start a "
                                  "new run with --config and another --out).")
            if args.overwrite:
                raise ConfigError("--resume continues the run in --out and --overwrite replaces it; choose one.")
            if not args.out:
                raise ConfigError("--resume needs --out: the run directory to continue.")
            given = _given(args)
            run_ = train_run(RunConfig(out=args.out), resume=True, progress=not args.no_progress,
                             changes={k: v for k, v in given.items() if k != "out"}, flags={k: _flag(k) for k in given})
        else:
            cfg = _config(args)
            run_ = train_run(cfg, overwrite=args.overwrite, progress=not args.no_progress)
        info = run_.info
        print(f"run written to {run_.path}  (model {info['model']}, {info['timings']['total_s']:.1f} s)")
        print(f"evaluate it with: python evaluate.py {run_.path}")
        return 0

    return run_main(run, args.debug, interrupted="interrupted before training started; nothing was written.")


def main_predict(argv: list[str]) -> int:
    args = _predict_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else 0, args.debug)

    def run() -> int:
        from priorgnn.pipeline import parse_conditions, predict_run

        conds = parse_conditions(args.conditions, args.conditions_file, args.all_pairs)
        written = predict_run(args.run, conds, out=args.out, name=args.name,
                              allow_prior_free=args.allow_prior_free, interactions=bool(args.all_pairs),
                              top=args.top, allow_fallback=args.allow_fallback, overwrite=args.overwrite,
                              yes=args.yes, rank_by=args.rank_by)
        print(f"predicted {len(conds)} condition(s):")
        for kind, path in written.items():
            print(f"  {kind}: {path}")
        return 0

    return run_main(run, args.debug, interrupted="prediction interrupted; nothing was written (predictions are "
                                                 "written once complete). The run is unchanged.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "predict":
        return main_predict(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    return main_train(argv)


if __name__ == "__main__":
    sys.exit(main())
