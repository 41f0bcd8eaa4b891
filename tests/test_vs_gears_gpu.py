"""The GPU path of the cell-gears comparison: the adapter's device choice and the prepared script."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from priorgnn.errors import ConfigError
from priorgnn.models.gears_ref import _device

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "vs_gears_gpu.sh"


def test_gears_device_follows_the_accelerator():
    assert _device("cpu") == "cpu"
    assert _device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="cpu, gpu or auto"):
        _device("tpu")
    if torch.cuda.is_available():
        assert _device("gpu") == "cuda"
    else:
        with pytest.raises(ConfigError, match="no CUDA device"):
            _device("gpu")


def test_gpu_script_syntax_and_usage():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage" in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_script_refuses_without_a_gpu():
    out = subprocess.run(["bash", str(SCRIPT), "bench"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "no CUDA device" in out.stderr
