"""Shared fixtures. Tests run offline, with the cache in a temporary folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# The benchmark scripts' shared modules (the bad-input catalogue, the fuzz cases) are imported by name,
# as the scripts in benchmarks/ import each other; the package itself comes from the installed project.
_BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")
if _BENCHMARKS not in sys.path:
    sys.path.append(_BENCHMARKS)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep the on-disk cache of the test session out of the user's home."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("PRIORGNN_CACHE_DIR")
    os.environ["PRIORGNN_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PRIORGNN_CACHE_DIR", None)
    else:
        os.environ["PRIORGNN_CACHE_DIR"] = old


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small test models run fastest on one thread; an oversubscribed CPU makes several threads spin.
    Subprocesses inherit the setting through OMP_NUM_THREADS. Set per test: importing the numba
    stack (scanpy) can reset torch's thread count."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
