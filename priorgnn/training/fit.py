"""Run Lightning training for a delta-predicting module: checkpoints, early stopping, CSV log, resume."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from priorgnn.errors import CheckpointError, Interrupted
from priorgnn.training.config import TrainConfig
from priorgnn.training.io import AtomicCheckpointIO, AtomicCSVLogger
from priorgnn.training.plan import ConditionDataModule, PerturbationTrainingPlan
from priorgnn.training.progress import EpochProgressBar
from priorgnn.training.targets import ConditionTargets

log = logging.getLogger(__name__)

__all__ = ["train_delta_module", "load_checkpoint_weights", "cpu_threads", "TrainingInterrupted"]


class TrainingInterrupted(Interrupted):
    """Ctrl-C during training; ``epochs_done`` completed epochs are in ``checkpoints/last.ckpt``."""

    def __init__(self, message: str, epochs_done: int, checkpoint: str | None) -> None:
        super().__init__(message)
        self.epochs_done, self.checkpoint = epochs_done, checkpoint


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose saved state follows its run folder when the folder is
    moved (a run is built in a temporary folder and moved into place): paths under the saved
    ``dirpath`` are mapped to the current one, so a resumed run keeps its best score."""

    @property
    def state_key(self) -> str:
        # the key Lightning's own ModelCheckpoint gives this state, so runs saved before keep resuming alike
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        new = self.dirpath
        if old and new and old != new and Path(old).name == Path(new).name:
            def move(p):
                if isinstance(p, str) and p.startswith(old):
                    return new + p[len(old):]
                return p

            state_dict = dict(state_dict)
            state_dict["dirpath"] = new
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = move(state_dict[key])
            if isinstance(state_dict.get("best_k_models"), dict):
                state_dict["best_k_models"] = {move(k): v for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)


def cpu_threads(requested: int | None = None) -> int:
    """Threads for torch: ``requested``, else ``$OMP_NUM_THREADS``, else all cores."""
    if requested:
        return int(requested)
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)


class EpochClock(Callback):
    """Wall time of each epoch (its training steps and its validation pass), of its training steps
    alone, of each optimiser step (from the previous step's end, so fetching the batch counts, with the
    number of conditions it trained on) and the monitored score; after a resume, of the epochs run in
    this process only. On a GPU the clock waits for the device before reading the time."""

    def __init__(self, monitor: str) -> None:
        self.monitor, self.epochs, self.seconds, self.scores, self._t = monitor, [], [], [], None
        self.steps_seconds: list[float] = []  # per epoch: first step's start to last step's end
        self.step_seconds: list[float] = []  # per optimiser step
        self.step_sizes: list[int] = []  # conditions per optimiser step
        self._mark = None

    @staticmethod
    def _now(pl_module) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t = self._mark = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._mark is None:
            return
        now = self._now(pl_module)
        self.step_seconds.append(now - self._mark)
        self.step_sizes.append(int(len(batch["rows"])) if isinstance(batch, dict) and "rows" in batch else -1)
        self._mark = now

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # Lightning calls it after validation
        if self._t is None:
            return
        self.steps_seconds.append(self._mark - self._t)  # to the last step's end: validation excluded
        self.seconds.append(self._now(pl_module) - self._t)
        self.epochs.append(int(trainer.current_epoch) + 1)
        score = trainer.callback_metrics.get(self.monitor)
        self.scores.append(float(score) if score is not None else None)

    def summary(self) -> dict[str, Any]:
        scored = [(s, i) for i, s in enumerate(self.scores) if s is not None]
        best = min(scored)[1] if scored else None  # the first epoch reaching the minimum, as ModelCheckpoint
        return {"epoch_seconds": [round(s, 4) for s in self.seconds],
                "steps_seconds": [round(s, 5) for s in self.steps_seconds],
                "step_seconds": [round(s, 5) for s in self.step_seconds], "step_sizes": list(self.step_sizes),
                "best_epoch": None if best is None else self.epochs[best],
                "seconds_to_best": None if best is None else round(sum(self.seconds[:best + 1]), 4)}


def load_checkpoint_weights(path: str | Path, prefix: str = "net.") -> dict[str, torch.Tensor]:
    """The ``net`` weights of a Lightning checkpoint, read with ``torch.load(weights_only=True)``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}).") from None
    state = ckpt.get("state_dict", ckpt)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def train_delta_module(net: torch.nn.Module, encode, data, split, train: TrainConfig | None,
                       plan_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Train ``net`` on ``split.train`` with model selection on ``split.val``; load the best weights.

    Checkpoints (``best.ckpt``, ``last.ckpt``) and the CSV training curve go to
    ``train.run_dir`` (a temporary folder if unset). ``train.resume`` continues from a checkpoint.
    Returns a summary (epochs run, best score, paths). With ``train.untrained`` nothing is trained:
    ``net`` is returned as built (in eval mode), with a summary of zero epochs and steps.
    """
    train = train or TrainConfig()
    # The thread count changes floating-point reduction order; fix it explicitly, since importing
    # the scanpy/numba stack can change torch's count behind our back.
    threads = cpu_threads(train.threads)
    torch.set_num_threads(threads)
    pl.seed_everything(train.seed, workers=True, verbose=False)
    if train.untrained:
        if train.resume is not None:
            raise CheckpointError("an untrained model has no training to resume: drop --resume or --untrained.")
        # no optimiser step, no checkpoint: the module stays as it was built
        net.eval()
        log.info("untrained: no optimiser step; the model is kept as initialised")
        return {"untrained": True, "epochs": 0, "global_steps": 0, "threads": threads, "monitor": None,
                "best_score": None, "best_checkpoint": None, "metrics_csv": None, "epoch_seconds": [],
                "best_epoch": None, "seconds_to_best": None}
    targets_train = ConditionTargets.from_data(data, split.train)
    targets_val = ConditionTargets.from_data(data, split.val) if split.val else None
    dm = ConditionDataModule(targets_train, targets_val, batch_size=train.batch_size, seed=train.seed)
    plan = PerturbationTrainingPlan(net, encode, lr=train.lr, weight_decay=train.weight_decay,
                                    seed=train.seed, **plan_kwargs)
    tmp = None
    if train.run_dir is None:
        tmp = tempfile.mkdtemp(prefix="priorgnn-train-")
    run_dir = Path(train.run_dir or tmp)
    ckpt_dir = run_dir / "checkpoints"
    monitor, mode = ("val_mse_top20_de", "min") if targets_val is not None else ("train_loss", "min")
    checkpoint = RunCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode,
                               save_top_k=1, enable_version_counter=False)
    # the latest epoch, every epoch (after its validation), so an interrupted run resumes where it stopped
    latest = RunCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                           save_on_train_epoch_end=True, enable_version_counter=False)
    clock = EpochClock(monitor)
    callbacks: list = [checkpoint, latest, clock]
    if train.patience and train.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=train.patience))
    if train.progress_bar:
        callbacks.append(EpochProgressBar())
    resume = train.resume
    if resume is not None and not Path(resume).exists():
        raise CheckpointError(f"cannot resume: {resume} does not exist.")
    resume_epoch = None
    if resume is not None:
        ckpt = torch.load(resume, map_location="cpu", weights_only=True)
        # the checkpoint of a completed epoch e stores epoch e; rows after it are recomputed
        resume_epoch = int(ckpt.get("epoch", -1))
        del ckpt
    logger = AtomicCSVLogger(run_dir / "logs", resume_from_epoch=resume_epoch)
    trainer = pl.Trainer(
        max_epochs=train.max_epochs, max_steps=train.max_steps, accelerator=train.accelerator,
        devices=train.devices, callbacks=callbacks, logger=logger,
        # on a GPU some kernels (scatter-adds) have no deterministic variant: warn instead of failing
        deterministic=True if train.accelerator == "cpu" else "warn",
        enable_progress_bar=train.progress_bar, enable_model_summary=False, log_every_n_steps=1,
        num_sanity_val_steps=0, default_root_dir=str(run_dir),
        limit_val_batches=1.0 if targets_val is not None else 0, plugins=[AtomicCheckpointIO()],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        try:
            trainer.fit(plan, datamodule=dm, ckpt_path=resume, weights_only=True)
            if trainer.interrupted:
                raise SystemExit(1)
        except SystemExit:
            # Lightning turns Ctrl-C into a graceful shutdown, ignores further Ctrl-C and exits; undo both
            if not trainer.interrupted:
                raise
            with contextlib.suppress(ValueError):  # only the main thread may set handlers
                signal.signal(signal.SIGINT, signal.default_int_handler)
            last = ckpt_dir / "last.ckpt"
            done = 0
            if last.exists():
                done = int(torch.load(last, map_location="cpu", weights_only=True).get("epoch", -1)) + 1
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise TrainingInterrupted(
                f"interrupted in epoch {done + 1}: {done} completed epoch(s) kept in {last}",
                done, str(last) if last.exists() and tmp is None else None,
            ) from None
        except (RuntimeError, KeyError) as exc:
            if resume is None or not any(s in str(exc) for s in ("state_dict", "size mismatch", "Missing key",
                                                                   "Unexpected key")):
                raise
            raise CheckpointError(
                f"the checkpoint {resume} does not fit this model: it was written by another model or "
                f"configuration ({str(exc).splitlines()[0][:200]}). Resume with the run's own config.yaml "
                "unchanged, or start a new run."
            ) from None
    best = checkpoint.best_model_path or checkpoint.last_model_path
    if best and Path(best).exists():
        net.load_state_dict(load_checkpoint_weights(best))
    net.eval()
    metrics_csv = run_dir / "logs" / "metrics.csv"
    summary = {
        "epochs": int(trainer.current_epoch), "global_steps": int(trainer.global_step), "threads": threads,
        "monitor": monitor,
        "best_score": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
        "best_checkpoint": os.path.relpath(best, run_dir) if best and tmp is None else None,
        "metrics_csv": os.path.relpath(metrics_csv, run_dir) if metrics_csv.exists() and tmp is None else None,
        **clock.summary(),
    }
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
