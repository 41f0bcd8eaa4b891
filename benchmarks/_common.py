"""Helpers shared by the benchmark scripts: the machine they ran on and number formatting.

The scripts import it by name (``from _common import ...``): Python puts a script's own folder on
``sys.path``; the tests put ``benchmarks/`` there (``tests/conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["cpu_model", "memory_bytes", "fmt"]


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
