"""Helpers shared by the benchmark scripts: the machine they ran on, number formatting and the
"Made by" line of a results page.

The scripts import it by name (``from _common import ...``): Python puts a script's own folder on
``sys.path``; the tests put ``benchmarks/`` there (``tests/conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["cpu_model", "memory_bytes", "fmt", "made_by", "script_setup"]


def cpu_model(default: str = "unknown") -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux); ``default`` where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def memory_bytes() -> int | None:
    """Total memory in bytes from ``/proc/meminfo`` (Linux); ``None`` where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fmt(x: float | None, digits: int = 3) -> str:
    """A number as the report tables write it (:func:`priorgnn.report.tables.fmt`); ``–`` for ``None``."""
    from priorgnn.report.tables import fmt as table_fmt

    return "–" if x is None else table_fmt(float(x), digits)


def made_by(command: str, wall: float, commit: str) -> str:
    """The opening of a results page's provenance line: the command, its wall time, the machine, the
    Python version and the commit (its first 10 characters), as ``Made by `CMD` in N s (...)``."""
    import platform

    return (f"Made by `{command}` in {wall:.0f} s ({platform.machine()}, Python {platform.python_version()}, "
            f"commit {commit[:10]})")


def script_setup() -> None:
    """A benchmark script's run-time set-up: its own progress logged at INFO, the library's and
    lightning's logs at WARNING, and one BLAS thread unless ``OMP_NUM_THREADS`` is set (the results pages
    record timings on one core)."""
    import logging
    import os

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("priorgnn", "knowledge", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
