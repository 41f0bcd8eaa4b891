"""Shared command-line plumbing: logging set-up and error handling.

Errors the user can fix (:class:`~priorgnn.errors.PriorGNNError`) are printed as one message and
exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable

import yaml

from priorgnn.errors import ConfigError, PriorGNNError

__all__ = ["setup_logging", "run_main", "parse_key_values"]


def setup_logging(verbose: int = 0, debug: bool = False) -> None:
    level = logging.DEBUG if debug else (logging.INFO if verbose >= 0 else logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    # Lightning announces hardware and tips at INFO on every fit; keep its warnings.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING if not debug else logging.INFO)
    if not debug:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def parse_key_values(items: list[str] | None, what: str) -> dict:
    """``['a=1', 'b=x']`` -> ``{'a': 1, 'b': 'x'}`` (values parsed as YAML scalars)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE.")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def run_main(main: Callable[[], int], debug: bool) -> int:
    """Call ``main`` and turn user-fixable errors into one message and exit status 2."""
    try:
        return main()
    except PriorGNNError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted. Completed checkpoints are kept; continue a training run with --resume.",
              file=sys.stderr)
        return 130
