"""Ctrl-C during training, then ``--resume``: one line says what was kept, and at most one epoch is
redone. In-process (a KeyboardInterrupt raised at a random epoch's end, default suite) and in a
subprocess sent SIGINT at a random epoch (slow: two interpreter start-ups)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests._synth import synth_lognorm

ROOT = Path(__file__).resolve().parent.parent


def _train(*argv: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *argv]


def _epochs_in_curve(run: Path) -> list[int]:
    curve = pd.read_csv(run / "logs" / "metrics.csv")
    return sorted(int(e) for e in curve.dropna(subset=["train_loss"])["epoch"].unique())


def test_keyboard_interrupt_at_a_random_epoch_then_resume_in_process(tmp_path, monkeypatch, capsys):
    import train
    from priorgnn.training import fit

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "d.h5ad"
    synth_lognorm().write_h5ad(data)
    run = tmp_path / "run"
    stop = random.Random().randint(1, 5)  # Ctrl-C arrives in epoch `stop` (0-based), after its steps
    original = fit.EpochClock.on_train_epoch_end

    def interrupt(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if trainer.current_epoch == stop:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit.EpochClock, "on_train_epoch_end", interrupt)
    argv = ["--data", str(data), "--model", "priorgnn", "--go", "none", "--split", "combo", "--model-set", "hidden=8",
            "--epochs", "200", "--patience", "0", "--out", str(run), "--no-progress", "-q"]
    assert train.main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Detected KeyboardInterrupt" not in err
    kept = int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]) + 1
    assert kept == stop  # every completed epoch is kept: only the interrupted one is lost
    assert f"interrupted in epoch {stop + 1}: {stop} completed epoch(s) kept" in err.strip().splitlines()[-1]
    monkeypatch.setattr(fit.EpochClock, "on_train_epoch_end", original)
    assert train.main(["--out", str(run), "--resume", "--epochs", str(stop + 2), "--no-progress", "-q"]) == 0
    ran_now = len(json.loads((run / "run.json").read_text())["fit_info"]["training"]["epoch_seconds"])
    assert ran_now == 2  # the interrupted epoch again, and one more: one epoch redone
    assert _epochs_in_curve(run) == list(range(stop + 2))


@pytest.mark.slow
def test_ctrl_c_at_a_random_epoch_then_resume_redoes_at_most_one_epoch(tmp_path):
    data = tmp_path / "d.h5ad"
    synth_lognorm().write_h5ad(data)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    target = random.Random().randint(2, 6)  # the epoch (0-based) after which Ctrl-C comes
    proc = subprocess.Popen(
        _train("--data", str(data), "--model", "priorgnn", "--go", "none", "--split", "combo", "--model-set",
               "hidden=8", "--epochs", "200", "--patience", "0", "--out", str(run), "--no-progress", "-q"),
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (run / "logs" / "metrics.csv").exists():
            try:
                if max(_epochs_in_curve(run), default=-1) >= target:
                    break
            except (pd.errors.EmptyDataError, KeyError):
                pass
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Detected KeyboardInterrupt" not in stderr, stderr
    # one line (after the run's own warnings): what was kept and how to resume
    assert [ln for ln in lines if "interrupt" in ln.lower()] == [lines[-1]], stderr
    kept = int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]) + 1  # completed epochs
    assert f"{kept} completed epoch(s) kept in {run}" in lines[-1], lines[-1]
    assert f"continue with: python train.py --out {run} --resume" in lines[-1], lines[-1]
    assert not (run / "run.json").exists()
    done_before = len(_epochs_in_curve(run))  # epochs that completed (and were logged) before Ctrl-C
    assert target + 1 <= done_before
    assert done_before - kept <= 1  # the latest completed epoch is in last.ckpt (at most the one being saved is lost)

    # resume, training two more epochs than were kept
    res = subprocess.run(_train("--out", str(run), "--resume", "--epochs", str(kept + 2), "--no-progress", "-q"),
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    fit = json.loads((run / "run.json").read_text())["fit_info"]["training"]
    ran_now = len(fit["epoch_seconds"])  # epochs run by the resumed process
    assert ran_now == 2
    # redone = epochs run before Ctrl-C and again after it
    redone = done_before + ran_now - (kept + 2)
    assert 0 <= redone <= 1, (done_before, kept, ran_now)
    assert _epochs_in_curve(run) == list(range(kept + 2))  # one row per epoch: nothing lost, nothing twice
