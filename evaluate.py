#!/usr/bin/env python
"""Evaluate trained runs (and baselines) on their test conditions and write the report.

    python evaluate.py RUN [RUN ...] [--baselines [no_change,mean,additive]] [--out DIR]

Runs of several models and seeds are evaluated together: runs with the same seed must share the
split, and all runs the data. ``--baselines`` fits models that need no run (``no_change``, ``mean``,
``additive``) on the same data and splits. The report (``report.md``, CSV/JSON tables, ``table.tex``
and PNG figures) goes to ``--out`` (default: ``RUN/report`` for one run, else ``report/`` in the runs'
common parent folder).

The command line is a set of subcommands; ``report`` (the above) is the default, so
``python evaluate.py RUN`` and ``python evaluate.py report RUN`` are the same. A new subcommand is
one entry in :data:`SUBCOMMANDS`; ``python evaluate.py study [--grid smoke|quick|full] [--out DIR]``
runs the knowledge-bias study (:mod:`priorgnn.study`). Errors in the input print a one-line message and exit with
status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from priorgnn.cli import ArgumentParser, nonnegative_int, positive_int, run_main
from priorgnn.errors import ConfigError

log = logging.getLogger("evaluate")

DEFAULT_BASELINES = "no_change,mean,additive"


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


# -- report ---------------------------------------------------------------------------------------
class _BaselinesAction(argparse.Action):
    """``--baselines [NAMES]``. A value that is an existing directory is a run that followed the flag
    (``evaluate.py --baselines RUN``): it joins the runs and the default baselines are used."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is not None and Path(values).is_dir():
            namespace.extra_runs = [*getattr(namespace, "extra_runs", []), values]
            values = None
        setattr(namespace, self.dest, DEFAULT_BASELINES if values is None else values)


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories written by train.py")
    p.add_argument("--baselines", nargs="?", action=_BaselinesAction, default=None, metavar="NAMES",
                   help="comma-separated models fitted here on the same data and splits "
                        f"(without a value: {DEFAULT_BASELINES})")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: RUN/report, or report/ beside several runs)")
    p.add_argument("--metrics", default=None, metavar="NAMES",
                   help="comma-separated metrics (default: all registered)")
    p.add_argument("--headline", default=None, metavar="NAMES",
                   help="metrics of the summary and comparison tables")
    p.add_argument("--table-metrics", default=None, metavar="NAMES", help="columns of table.tex")
    p.add_argument("--ci-style", choices=("pm", "interval"), default="pm",
                   help="table.tex cells: mean ± CI half-width, or mean [lo, hi]")
    p.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples (>= 1000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the bootstrap")
    p.add_argument("--ceiling-seed", type=nonnegative_int, default=0, help="seed of the split-half noise ceiling")
    p.add_argument("--ceiling-repeats", type=positive_int, default=1,
                   help="random half-splits averaged per condition for the ceiling")
    p.add_argument("--no-ceiling", action="store_true", help="skip the split-half noise ceiling")
    p.add_argument("--no-truth", action="store_true", help="on simulated data, skip the truth reference")
    p.add_argument("--no-figures", action="store_true", help="write tables only")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report already in the output folder (without it, an existing report is an error)")
    _common_options(p)


def _default_out(runs: list[str]) -> Path:
    paths = [Path(r).resolve() for r in runs]
    if len(paths) == 1:
        return paths[0] / "report"
    return Path(os.path.commonpath([str(p) for p in paths])) / "report"


def _check_baselines(names: list[str]) -> list[str]:
    from priorgnn.models.base import available_models

    known = set(available_models())
    for n in names:
        if n not in known:
            hint = ""
            if "/" in n or os.sep in n or Path(n).exists():
                hint = (" It looks like a run directory: put --baselines after the runs, or give it a "
                        f"value (--baselines {DEFAULT_BASELINES}).")
            raise ConfigError(f"--baselines: unknown model {n!r}; available: {', '.join(sorted(known))}.{hint}")
    return names


def run_report(args: argparse.Namespace) -> int:
    from priorgnn.metrics import evaluate_runs
    from priorgnn.report import DEFAULT_HEADLINE, summary_lines, write_report

    if args.n_boot < 1000:
        raise ConfigError(f"--n-boot {args.n_boot} is too few for a 95% interval; use at least 1000.")
    runs = [*args.runs, *getattr(args, "extra_runs", [])]
    if not runs:
        raise ConfigError("give at least one run directory: evaluate.py RUN [RUN ...].")
    baselines = _check_baselines(_csv_list(args.baselines) or [])
    out = args.out or _default_out(runs)
    if (out / "report.md").exists() and not args.overwrite:
        # checked before any work: an earlier report is never replaced by accident
        raise ConfigError(f"{out} already holds a report (report.md); pass --overwrite to replace it, "
                          "or --out DIR to write elsewhere.")
    result = evaluate_runs(
        runs, baselines=baselines, metrics=_csv_list(args.metrics), ceiling=not args.no_ceiling,
        ceiling_repeats=args.ceiling_repeats, truth=not args.no_truth, n_boot=args.n_boot,
        bootstrap_seed=args.seed, ceiling_seed=args.ceiling_seed, progress=not args.quiet,
    )
    report = write_report(result, out, headline=_csv_list(args.headline),
                          table_metrics=_csv_list(args.table_metrics), ci_style=args.ci_style,
                          figures=not args.no_figures)
    headline = _csv_list(args.headline)
    lines = summary_lines(result, [m for m in (headline or DEFAULT_HEADLINE) if m in result.metrics])
    print("\n".join(lines))
    print(f"\nreport: {report}")
    return 0


# -- study ----------------------------------------------------------------------------------------
def add_study_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", choices=("smoke", "quick", "full"), default="quick",
                   help="grid size: smoke (seconds, for CI), quick (minutes), full (3 seeds, hours)")
    p.add_argument("--out", type=Path, default=Path("study"), metavar="DIR", help="output folder (default: study/)")
    p.add_argument("--report-only", action="store_true",
                   help="only re-render study.md, CSVs and figures from the finished fits in --out")
    p.add_argument("--no-figures", action="store_true", help="write study.md and the CSVs without figures")
    p.add_argument("--only", default=None, metavar="NAMES",
                   help="comma-separated settings or axes to fit now (e.g. pretrain_mult, or base,go_fidelity_0.5); "
                        "the report still covers every finished fit in --out")
    p.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu", "auto"),
                   help="Lightning accelerator of the gradient-trained models (default cpu)")
    p.add_argument("--no-report", action="store_true", help="fit only; do not render study.md")
    p.add_argument("--go-dir", type=Path, default=None, metavar="DIR",
                   help="folder of the real GO files (go-basic.obo or .obo.gz, goa_human.gaf.gz) for the full grid's "
                        "real_go setting (default: $PRIORGNN_GO_DIR; fetch them with `python -m knowledge "
                        "download-go --dest DIR`); without them that setting is left out")
    _common_options(p)


def run_study_command(args: argparse.Namespace) -> int:
    """The knowledge-bias study (see :mod:`priorgnn.study`); resumes fits already in ``--out``."""
    from priorgnn.study import run_study

    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    command = "python evaluate.py study --grid " + args.grid + (f" --out {args.out}" if args.out != Path("study") else "")
    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
    if only:
        command += f" --only {','.join(only)}"
    if args.accelerator != "cpu":
        command += f" --accelerator {args.accelerator}"
    if args.go_dir is not None:
        command += f" --go-dir {args.go_dir}"
    path = run_study(args.grid, args.out, progress=not args.quiet, report_only=args.report_only,
                     figures=not args.no_figures, command=command, only=only, accelerator=args.accelerator,
                     render=not args.no_report, go_dir=args.go_dir)
    print(f"study: {path}")
    return 0


#: Subcommand name → (help, add_arguments, run). The first is the default.
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                             Callable[[argparse.Namespace], int]]] = {
    "report": ("evaluate runs and baselines, write the report (default)", add_report_arguments, run_report),
    "study": ("run the knowledge-bias study grid and write study/ (study.md, CSVs, figures)",
              add_study_arguments, run_study_command),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="evaluate.py",
        description="Evaluate priorgnn runs and baselines and write the benchmark report. "
                    "Without a subcommand, 'report' is assumed: evaluate.py RUN [RUN ...] [options].",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add, run) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
        p.set_defaults(func=run)
    return parser


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv = [next(iter(SUBCOMMANDS)), *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug, args.quiet)
    return run_main(lambda: args.func(args), args.debug, prog="evaluate.py",
                    interrupted="evaluate.py: interrupted; the report is written only once complete, so nothing "
                                "was written (a study keeps its finished fits and continues from them when rerun).")

if __name__ == "__main__":
    sys.exit(main())
