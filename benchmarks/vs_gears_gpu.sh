#!/usr/bin/env bash
# PriorGNN against cell-gears with both models on one CUDA GPU, on the norman preset (93,026 cells x
# 5,045 genes), sized for a lent accelerator that allows about 10 minutes per command. Two commands,
# one after the other on the same machine (the second reuses what the first wrote):
#
#   benchmarks/vs_gears_gpu.sh simulate   # the norman simulation (CPU, about 4-5 min), skipped if present
#   benchmarks/vs_gears_gpu.sh bench      # graphs, then every run of benchmarks/vs_gears.py on the GPU
#
# Settings (environment): SEEDS (default 0), EPOCHS (cell-gears epochs, default 2), GEARS_STEPS (steps per
# cell-gears epoch, 0 = full epochs, the default), THREADS (CPU threads per process, default 4), OUT
# (default runs/bench-vs-gears-gpu), RESULTS (default benchmarks/results/vs_gears_gpu), PY (the project's
# Python, default .venv/bin/python). vs_gears.py reuses runs already finished in OUT, so a `bench`
# command cut by its time limit continues where it stopped when run again on the same machine.
#
# What fits: cell-gears's data preparation on this data takes about 2 min on the CPU, and each of its
# full epochs is 1,461 steps of 32 cells plus GEARS's pass over the training set and its validation.
# Fewer than GEARS's 20 epochs is not a trained cell-gears: the tables then give no accuracy verdict
# and state its end-to-end time as a lower bound (measured, not extrapolated).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0}
EPOCHS=${EPOCHS:-2}
GEARS_STEPS=${GEARS_STEPS:-0}
THREADS=${THREADS:-4}
OUT=${OUT:-runs/bench-vs-gears-gpu}
RESULTS=${RESULTS:-benchmarks/results/vs_gears_gpu}
export PYTHONUNBUFFERED=1
what=${1:-}
case "$what" in
  simulate)
    if [ -f runs/sim/norman-seed0/simulator.json ]; then
      echo "runs/sim/norman-seed0 holds the simulation already"
    else
      "$PY" -m priorgnn.simulate --preset norman --seed 0 --out runs/sim/norman-seed0 --quiet
    fi
    ;;
  bench)
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else
      'no CUDA device: this script runs both models on a GPU (use benchmarks/vs_gears.py on a CPU)')"
    if [ ! -f runs/sim/norman-seed0/simulator.json ]; then
      echo "no simulation in runs/sim/norman-seed0: run '$0 simulate' first" >&2
      exit 2
    fi
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    "$PY" benchmarks/vs_gears.py --data norman --accelerator gpu --seeds "$SEEDS" --epochs "$EPOCHS" \
      --gears-steps "$GEARS_STEPS" --threads "$THREADS" --out "$OUT" --results "$RESULTS"
    ;;
  *)
    echo "usage: $0 simulate|bench   (settings: see the comments at the top of this script)" >&2
    exit 2
    ;;
esac
