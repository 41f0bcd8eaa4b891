"""benchmarks/vs_gears.py: its options and the extrapolation of a cell-gears epoch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "vs_gears.py"


def _module():
    spec = importlib.util.spec_from_file_location("vs_gears", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_full_epoch_extrapolation_by_hand():
    vs = _module()
    # 100 of 1,000 steps took 20 s, GEARS's training-set evaluation of those 100 batches 5 s, and the
    # complete validation pass 30 s: (20 + 5) * 1000 / 100 + 30 = 280 s
    epoch = {"steps": 100, "steps_s": 20.0, "train_eval_s": 5.0, "val_s": 30.0}
    assert vs.full_epoch_seconds(epoch, 1000) == pytest.approx(280.0)
    # a full epoch is not scaled
    assert vs.full_epoch_seconds({**epoch, "steps": 1000}, 1000) == pytest.approx(55.0)


def test_options_and_quick_defaults():
    vs = _module()
    args = vs.parse_args(["--quick"])
    assert (args.data, args.seed_list, args.epochs, args.gears_steps) == ("demo", [0], 2, 5)
    args = vs.parse_args(["--seeds", "0,1,2", "--epochs", "4", "--gears-steps", "0"])
    assert (args.data, args.seed_list, args.epochs, args.gears_steps) == ("norman", [0, 1, 2], 4, 0)
    assert args.results.endswith("benchmarks/results")


def test_help_runs():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--gears-steps" in out.stdout and "--quick" in out.stdout
