#!/usr/bin/env python
"""Memory and time of the prior-free transformer at ``norman`` scale (~5,000 gene tokens, ~90,000 cells).

    python benchmarks/transformer_memory.py --data norman --sim-dir runs/sim/norman-seed0 \\
        --out runs/bench-transformer-memory
    python benchmarks/transformer_memory.py --data runs/sim/norman-seed0/data.h5ad --threads 1 \
        --out runs/bench-transformer-memory
    python benchmarks/transformer_memory.py --data synthetic --out runs/bench-transformer-memory

Runs, in a child process: data (the simulator's ``norman`` preset, an ``.h5ad`` such as a norman
simulation's ``data.h5ad``, or with ``--data synthetic`` a same-shaped synthetic screen: 5,045 genes, 105 singles, 131 doubles, 8,000 control and 350 cells per
perturbation), a GEARS simulation split, masked-expression pretraining (``--pretrain-steps`` steps of
``--pretrain-batch`` cells), ``--epochs`` fine-tuning epochs (training on ``--train-tokens`` sampled
tokens, validation on all tokens) and prediction of every test condition on all tokens. The child's
resident memory is sampled every 0.2 s and reported per phase (``data``: load + split;
``summaries``: pseudobulk, DE ranking and loss targets, the data layer's work; ``fit_setup``,
``pretrain``, ``finetune``: the model's fit; ``predict``), freed heap memory being returned to the
operating system before the fit and before prediction so that those phases show the model's own
footprint on top of the loaded data; the parent reports the child's overall peak RSS from
``resource.getrusage(RUSAGE_CHILDREN)``. Results: ``OUT/result.json`` and a Markdown
table on stdout (for ``benchmarks/results/transformer.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

N_GENES, N_SINGLES, N_DOUBLES, N_CTRL, N_PER_COND = 5045, 105, 131, 8000, 350


def synthetic_norman(seed: int = 0):
    """A same-shaped synthetic screen (not the simulator): Poisson counts with library size ~6,000,
    CRISPRa-like singles (the target gene x8 and ~30 downstream genes with log-fold N(0, 0.5)),
    doubles additive in log space; log1p(normalize_total(1e4)), CSR float32."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from priorgnn.data import from_anndata
    from priorgnn.data.conditions import make_condition

    rng = np.random.default_rng(seed)
    genes = [f"G{i:04d}" for i in range(N_GENES)]
    base = rng.lognormal(0.0, 1.5, N_GENES)
    base = base / base.sum() * 6000.0
    targets = rng.choice(N_GENES, N_SINGLES, replace=False)
    effects = np.zeros((N_SINGLES, N_GENES))
    for i, t in enumerate(targets):
        down = rng.choice(N_GENES, 30, replace=False)
        effects[i, down] = rng.normal(0.0, 0.5, 30)
        effects[i, t] = np.log(8.0)
    pairs = set()
    while len(pairs) < N_DOUBLES:
        a, b = sorted(rng.choice(N_SINGLES, 2, replace=False))
        pairs.add((int(a), int(b)))
    conds = [((), np.zeros(N_GENES))] + [((i,), effects[i]) for i in range(N_SINGLES)]
    conds += [((a, b), effects[a] + effects[b]) for a, b in sorted(pairs)]
    blocks, labels = [], []
    for k, (idx, eff) in enumerate(conds):
        n = N_CTRL if k == 0 else N_PER_COND
        lam = base * np.exp(eff)
        counts = rng.poisson(lam[None, :] * rng.lognormal(0.0, 0.2, (n, 1))).astype(np.float32)
        lib = counts.sum(1, keepdims=True)
        blocks.append(sp.csr_matrix(np.log1p(counts / np.maximum(lib, 1) * 1e4).astype(np.float32)))
        labels += [make_condition([genes[targets[i]] for i in idx])] * n
    X = sp.vstack(blocks, format="csr")
    obs = pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(X.shape[0])])
    return from_anndata(ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes)), name="synthetic-norman")


class RSSSampler(threading.Thread):
    """Samples this process's resident memory (``VmRSS``) and keeps the maximum per phase."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.phase, self.peaks = interval, "start", {}
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def run(self) -> None:
        while not self._stop.is_set():
            rss = self.rss_mb()
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            time.sleep(self.interval)

    def enter(self, phase: str) -> None:
        rss = self.rss_mb()
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
        self.phase = phase
        self.peaks[phase] = rss

    def stop(self) -> None:
        self.enter("end")
        self._stop.set()


def _release_memory() -> None:
    """Collect garbage and return freed heap pages to the operating system (glibc)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _phase_hooks(sampler: RSSSampler) -> None:
    """Label the sampler's phases at the start of pretraining and of fine-tuning (the transformer
    imports both functions at call time, so wrapping the module attributes is enough)."""
    from priorgnn.models import _transformer_pretrain
    from priorgnn.training import fit as fit_module

    def wrap(module, name, phase):
        inner = getattr(module, name)

        def wrapped(*a, **k):
            sampler.enter(phase)
            return inner(*a, **k)

        setattr(module, name, wrapped)

    wrap(_transformer_pretrain, "pretrain_masked", "pretrain")
    wrap(fit_module, "train_delta_module", "finetune")


def child(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sampler = RSSSampler()
    sampler.start()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    sampler.enter("data")
    from priorgnn import experiment
    from priorgnn.data import make_split
    from priorgnn.models import TrainConfig, get_model_class

    if args.data == "synthetic":
        data = synthetic_norman(args.data_seed)
    elif args.data.endswith(".h5ad"):
        from priorgnn.data.io import read_h5ad

        data = read_h5ad(args.data)
    else:
        from priorgnn.simulate import simulate

        data = simulate(args.data, seed=args.data_seed, out=args.sim_dir).data
    split = make_split(data.conditions, "simulation", seed=1)
    timings["data_s"] = time.perf_counter() - t
    t = time.perf_counter()
    sampler.enter("summaries")
    data.summaries  # noqa: B018 - pseudobulk and DE ranking: the data layer's cost, timed apart
    from priorgnn.training.targets import ConditionTargets

    ConditionTargets.from_data(data, split.train)  # cached on disk: the fit reads them back
    ConditionTargets.from_data(data, split.val)
    timings["summaries_s"] = time.perf_counter() - t
    _release_memory()  # so the fit's phases measure the model, not the data layer's freed buffers
    _phase_hooks(sampler)
    model = get_model_class("transformer")(
        pretrain=args.pretrain_steps > 0, pretrain_epochs=1, pretrain_steps=max(args.pretrain_steps, 1),
        pretrain_batch_size=args.pretrain_batch, pretrain_tokens=args.pretrain_tokens,
        train_tokens=args.train_tokens, predict_batch=args.predict_batch, checkpointing=args.checkpointing,
        d_model=args.d_model, n_layers=args.n_layers,
    )
    rss_fit_start = sampler.rss_mb()
    sampler.enter("fit_setup")
    t = time.perf_counter()
    experiment.fit(model, data, split, train=TrainConfig(max_epochs=args.epochs, patience=0, batch_size=args.batch_size,
                                                         run_dir=str(Path(args.out) / "run"), progress_bar=False))
    timings["fit_s"] = time.perf_counter() - t
    _release_memory()
    sampler.enter("predict")
    t = time.perf_counter()
    pred, _ = experiment.predict(model, split.test, genes=data.genes)
    timings["predict_s"] = time.perf_counter() - t
    sampler.stop()
    info = model.fit_info
    epochs = max(1, info["training"]["epochs"])
    result = {
        "data": data.name, "n_cells": int(data.n_cells), "n_genes": int(data.n_genes),
        "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test),
        "hparams": model.hparams, "threads": torch.get_num_threads(), "timings": timings,
        "model_timings": info.get("timings", {}), "pretraining": info.get("pretraining"),
        "training": info["training"], "finetune_s_per_epoch": info["timings"]["finetune_s"] / epochs,
        "predict_s_per_condition": timings["predict_s"] / max(1, len(split.test)),
        "rss_peak_mb_by_phase": sampler.peaks, "rss_mb_at_fit_start": rss_fit_start, "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "prediction_shape": list(pred.shape), "loadavg_end": os.getloadavg(),
    }
    Path(args.out, "child.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--data", default="norman",
                   help="'norman' (simulator preset, written to --sim-dir), 'synthetic', or an .h5ad (e.g. the "
                        "data.h5ad of a norman simulation folder)")
    p.add_argument("--sim-dir", help="simulation folder for --data norman (default OUT/sim)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--pretrain-steps", type=int, default=100, help="0: no pretraining")
    p.add_argument("--pretrain-batch", type=int, default=64)
    p.add_argument("--pretrain-tokens", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-tokens", type=int, default=1024)
    p.add_argument("--predict-batch", type=int, default=16)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.sim_dir is None:
        args.sim_dir = str(Path(args.out) / "sim")
    if args.child:
        return child(args)
    t = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", *(argv if argv is not None else sys.argv[1:])]
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB on Linux
    if rc != 0:
        print(f"child failed with status {rc}", file=sys.stderr)
        return rc
    res = json.loads(Path(args.out, "child.json").read_text(encoding="utf-8"))
    res.update({"peak_rss_mb": peak, "wall_s": wall, "command": " ".join(["python", *sys.argv])})
    Path(args.out, "result.json").write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    pre = res.get("pretraining") or {}
    ph = res["rss_peak_mb_by_phase"]
    rows = [
        ("data", f"{res['data']}: {res['n_cells']:,} cells x {res['n_genes']:,} genes; "
                 f"{res['n_train']}/{res['n_val']}/{res['n_test']} train/val/test conditions"),
        ("peak RSS (child, getrusage)", f"{peak / 1024:.2f} GiB"),
        ("peak RSS by phase (sampled)", ", ".join(f"{k} {v / 1024:.2f} GiB" for k, v in ph.items()
                                                  if k not in ("start", "end"))),
        ("RSS at the start of the fit (data loaded)", f"{res['rss_mb_at_fit_start'] / 1024:.2f} GiB"),
        ("wall time, total", f"{wall:.0f} s"),
        ("data + split / summaries + targets", f"{res['timings']['data_s']:.0f} s / {res['timings']['summaries_s']:.0f} s"),
        ("pretraining", f"{res['model_timings'].get('pretrain_s', 0):.0f} s for {pre.get('steps', 0)} steps "
                        f"({pre.get('steps', 0) and res['model_timings'].get('pretrain_s', 0) / pre['steps']:.2f} s/step); "
                        f"held-out loss {pre.get('initial_heldout_loss', float('nan')):.3f} -> "
                        f"{pre.get('final_heldout_loss', float('nan')):.3f}"),
        ("fine-tuning, per epoch", f"{res['finetune_s_per_epoch']:.0f} s ({res['training']['epochs']} epochs, "
                                   f"{res['training']['global_steps']} steps, validation on all tokens)"),
        ("prediction, all tokens", f"{res['predict_s_per_condition']:.2f} s per condition"),
        ("torch threads; load average at the end", f"{res['threads']}; {res['loadavg_end']}"),
    ]
    print("| quantity | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
