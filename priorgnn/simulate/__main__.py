"""Command line: ``python -m priorgnn.simulate --preset demo --seed 0 --out DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from priorgnn.cli import ArgumentParser, nonnegative_float, nonnegative_int, run_main
from priorgnn.errors import PriorGNNError

_EPILOG = """\
examples:
  python -m priorgnn.simulate --preset demo --seed 0 --out runs/sim-demo
  python -m priorgnn.simulate --preset norman --out runs/sim-norman --set interaction_strength=0.3
  python -m priorgnn.simulate --preset demo --out runs/sim-demo --go-recall 0.5 --go-shuffle 0.2
  python -m priorgnn.simulate --preset demo --out runs/sim-real --set gene_names=real_go --go-dir data/go

An existing --out folder with the same settings is reused (only the GO files are rewritten if the
--go-* options changed); a folder holding a different simulation is an error.
Settings (--set KEY=VALUE): python -m priorgnn.simulate --list-settings
"""


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m priorgnn.simulate",
        description="Simulate a perturbation screen (single and double CRISPRa/CRISPRi perturbations) "
        "from a mechanistic gene-regulatory ODE model with known causal truth, and write cells "
        "(data.h5ad, GEARS style), noise-free truth, the true network and GO-like knowledge files.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="demo", help="named preset: demo, norman or tiny (default: demo)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="master seed (default: 0)")
    p.add_argument("--out", help="output folder (required unless --list-settings)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override a simulator setting; repeatable (e.g. --set n_doubles=80)")
    p.add_argument("--go-recall", type=nonnegative_float, default=1.0, metavar="R",
                   help="fraction of true GO-like annotations kept (default: 1.0)")
    p.add_argument("--go-false-rate", type=nonnegative_float, default=0.0, metavar="F",
                   help="wrong annotations added, as a fraction of the true ones (default: 0)")
    p.add_argument("--go-shuffle", type=nonnegative_float, default=0.0, metavar="S",
                   help="fraction of genes whose annotation sets are permuted among them (default: 0)")
    p.add_argument("--go-seed", type=nonnegative_int, default=None, help="seed of the knowledge files (default: --seed)")
    p.add_argument("--go-dir", default=None, metavar="DIR",
                   help="with --set gene_names=real_go: folder of the real GO files (go-basic.obo or .obo.gz, "
                        "goa_human.gaf.gz) that name the genes and become the knowledge files "
                        "(default: $PRIORGNN_GO_DIR)")
    p.add_argument("--list-settings", action="store_true", help="print the preset's settings and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log messages")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    return p


def _overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PriorGNNError(f"--set {item!r}: write KEY=VALUE, e.g. --set n_doubles=80.")
        out[key.strip()] = value.strip()
    return out


def _run(args: argparse.Namespace) -> int:
    from priorgnn.simulate.config import SimulatorConfig
    from priorgnn.simulate.simulation import simulate

    overrides = _overrides(args.settings)
    if args.list_settings:
        cfg = SimulatorConfig.from_preset(args.preset, seed=args.seed, **overrides)
        for key, value in cfg.to_dict().items():
            print(f"{key} = {value}")
        return 0
    if not args.out:
        raise PriorGNNError("--out is required: the folder to write the simulation to.")
    t0 = time.perf_counter()
    sim = simulate(args.preset, seed=args.seed, out=args.out, go_recall=args.go_recall,
                   go_false_rate=args.go_false_rate, go_shuffle=args.go_shuffle,
                   go_seed=args.go_seed, go_dir=args.go_dir, progress=not args.quiet, **overrides)
    wall = time.perf_counter() - t0
    s = sim.summary
    kn = sim.knowledge
    print(f"simulation written to {sim.path} ({wall:.1f} s)")
    print(f"  preset {sim.preset or 'custom'}, seed {sim.config.seed}, config {sim.config_hash}")
    print(f"  {s.get('n_cells', sim.data.n_cells)} cells x {sim.data.n_genes} genes: "
          f"{s.get('n_cells_ctrl')} control, {len(sim.singles)} singles, {len(sim.doubles)} doubles "
          f"({sim.config.modality})")
    print(f"  network: {len(sim.network)} edges, interaction_strength {sim.config.interaction_strength}")
    if "sparsity" in s:
        print(f"  zeros {100 * s['sparsity']:.1f}%, UMIs per cell: mean {s['mean_umi_per_cell']:.0f}, "
              f"median {s['median_umi_per_cell']:.0f}")
    if kn.get("source") == "real_go":
        print(f"  knowledge: {sim.obo_path.name}, {sim.gaf_path.name}: the real GO files ({kn.get('obo')}, "
              f"{kn.get('gaf')}; {kn.get('ontology_version') or 'no version'}) for these genes")
    else:
        print(f"  knowledge: {sim.obo_path.name}, {sim.gaf_path.name} (recall {kn.get('recall')}, "
              f"false rate {kn.get('false_rate')}, shuffled {kn.get('shuffle_frac')})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Simulate and write a data set; user errors are one line on stderr and exit status 2."""
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.debug else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return run_main(lambda: _run(args), args.debug,
                    interrupted="interrupted; a simulation is written to --out only once complete (rerun to write it).")


if __name__ == "__main__":
    sys.exit(main())
