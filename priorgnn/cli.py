"""Shared command-line plumbing: argument parsing, logging set-up and error handling.

Errors the user can fix (:class:`~priorgnn.errors.PriorGNNError`), a bad option, and a file the
operating system refuses to read or write are printed as one line on stderr and exit with status 2;
``--debug`` shows the traceback instead. Ctrl-C prints one line saying what was kept (exit 130).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import warnings
from collections.abc import Callable

import yaml

from priorgnn.errors import ConfigError, Interrupted, PriorGNNError

__all__ = ["setup_logging", "run_main", "parse_key_values", "ArgumentParser", "positive_int",
           "nonnegative_int", "positive_float", "nonnegative_float", "os_error_message"]

#: Third-party loggers whose records pass through the project's one handler (once, filtered).
THIRD_PARTY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                       "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
#: Fragments of third-party log lines that advertise services rather than report on the run.
_ADVERTISEMENTS = ("litmodels", "LitLogger", "Tip:", "lightning.ai", "litlogger")


class _NoAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is let through unchanged
            return True
        return not any(a in msg for a in _ADVERTISEMENTS)


def setup_logging(verbose: int = 0, debug: bool = False) -> None:
    """One handler on stderr. ``verbose < 0`` (``-q``): warnings of the project only, third-party
    logging silenced except errors; ``debug``: everything, tracebacks shown by :func:`run_main`."""
    level = logging.DEBUG if debug else (logging.INFO if verbose >= 0 else logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoAdvertisements())
    # Lightning installs its own handler when imported before logging is configured, which prints each
    # line a second time; its records go through the root handler only. It announces hardware and tips
    # at INFO on every fit: keep its warnings (errors only with -q).
    third = logging.INFO if debug else (logging.WARNING if verbose >= 0 else logging.ERROR)
    for name in THIRD_PARTY_LOGGERS:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
        lg.setLevel(third)
    if not debug:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        if verbose < 0:
            warnings.filterwarnings("ignore", module="lightning")
            warnings.filterwarnings("ignore", module="torch")


def parse_key_values(items: list[str] | None, what: str) -> dict:
    """``['a=1', 'b=x']`` -> ``{'a': 1, 'b': 'x'}`` (values parsed as YAML scalars)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE.")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


# -- parsing ----------------------------------------------------------------------------------------
class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are one line on stderr (exit status 2), naming the option
    and pointing to ``--help``, instead of the usage block followed by the error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(cast, name: str, test, what: str):
    def parse(text: str):
        try:
            value = cast(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return value

    parse.__name__ = name
    return parse


positive_int = _number(int, "an integer", lambda v: v > 0, "a positive integer (1 or more)")
nonnegative_int = _number(int, "an integer", lambda v: v >= 0, "0 or a positive integer")
positive_float = _number(float, "a number", lambda v: v > 0, "a positive number")
nonnegative_float = _number(float, "a number", lambda v: v >= 0, "0 or a positive number")


# -- running --------------------------------------------------------------------------------------
def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: the file, the reason, the fix."""
    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc) or type(exc).__name__
    import errno

    fix = {
        errno.EACCES: "choose a folder you may write to (e.g. --out under your home or the project) or fix its "
                      "permissions",
        errno.EPERM: "choose a folder you may write to or fix its permissions",
        errno.EROFS: "the file system is read-only; choose another output folder",
        errno.ENOSPC: "free disk space or choose an output folder on another disk",
        errno.ENOTDIR: "a path component is a file, not a folder; choose another path",
        errno.EISDIR: "the path is a folder where a file is expected; choose another path",
        errno.ENOENT: "check the path",
        errno.EEXIST: "the path already exists; choose another one",
        errno.ENAMETOOLONG: "choose a shorter path",
    }.get(exc.errno, "check the path and its permissions")
    return f"cannot use {where}: {reason}. Fix: {fix}."


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def run_main(main: Callable[[], int], debug: bool, *, prog: str | None = None,
             interrupted: str = "interrupted; nothing was written.") -> int:
    """Call ``main``; turn user-fixable errors into one line on stderr and exit status 2, and Ctrl-C
    into one line saying what was kept (exit status 130).

    ``interrupted`` is the line printed on Ctrl-C unless the interruption carries its own
    (:class:`~priorgnn.errors.Interrupted`, e.g. a training run saying which epoch it kept).
    """
    head = f"{prog}: error: " if prog else "error: "
    try:
        return main()
    except PriorGNNError as exc:
        if debug:
            raise
        print(head + _one_line(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        if debug:
            raise
        print(head + os_error_message(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if debug and not isinstance(exc, Interrupted):
            raise
        msg = str(exc) if isinstance(exc, Interrupted) and str(exc) else interrupted
        print(_one_line(msg), file=sys.stderr)
        return 130
