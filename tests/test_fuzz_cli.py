"""Fuzz test of the command lines (the cases and their checks: ``benchmarks/fuzz_cli.py``)."""

from __future__ import annotations

import pytest
from fuzz_cli import N_FAST, N_SLOW, fuzz, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("fuzz"))


def test_fuzz_cli_fast(world, monkeypatch):
    monkeypatch.chdir(world)
    counts = fuzz(world, N_FAST, seed=0)
    assert counts["cases"] == N_FAST
    assert counts["exit 2"] > 0 and counts["exit 0"] > 0  # both kinds of outcome were exercised


@pytest.mark.slow
def test_fuzz_cli_slow(world, monkeypatch):
    monkeypatch.chdir(world)
    counts = fuzz(world, N_SLOW, seed=1)
    assert counts["cases"] == N_SLOW
