"""Run directories: everything needed to reload a trained model and predict.

Layout::

    RUN/
      run.json            model name, data source, split, seed, config, package versions, git revision
      config.yaml         the resolved configuration (re-run with train.py --config RUN/config.yaml)
      split.json, .csv    the split
      graphs/             the prior graphs used (GeneGraph .npz + .json with provenance)
      model/              model.json + model_state.npz (+ weights for trained models)
      checkpoints/        Lightning checkpoints (best.ckpt, last.ckpt) for trained models
      metrics.csv         the training curve (trained models)
      predictions/        test.h5ad and test.csv

No state lives outside the run directory (except the content-keyed cache, which is rebuilt at will).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from priorgnn.io import read_json, write_json
from priorgnn.errors import CheckpointError

log = logging.getLogger(__name__)

__all__ = ["Run", "DataSpec", "environment_info", "RUN_FILE", "RunLock"]

RUN_FILE = "run.json"
_PACKAGES = ("priorgnn", "torch", "torch-geometric", "lightning", "anndata", "scanpy", "goatools",
             "numpy", "scipy", "pandas")


def environment_info() -> dict[str, Any]:
    """Package versions, Python and platform, and the git revision of the working tree if any."""
    versions = {}
    for p in _PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    rev = None
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
        if out.returncode == 0:
            rev = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5, check=False)
            if dirty.stdout.strip():
                rev += "-dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"versions": versions, "python": platform.python_version(), "platform": platform.platform(),
            "git_revision": rev}


@dataclass
class DataSpec:
    """How to reload a run's data: a path to an ``.h5ad``, a named data set, or a simulation folder."""

    kind: str  # "h5ad" | "dataset" | "simulation"
    path: str
    load_kwargs: dict[str, Any]
    content_hash: str | None = None
    name: str | None = None
    #: SHA-256 of the data file, recorded instead of ``content_hash`` by ``--summaries-only`` runs
    file_sha256: str | None = None

    def load(self):
        if self.file_sha256:
            from priorgnn.io import sha256_file

            f = Path(self.path) / "data.h5ad" if self.kind == "simulation" else Path(self.path)
            if f.is_file() and sha256_file(f) != self.file_sha256:
                raise CheckpointError(
                    f"the data at {f} changed since the run was trained (file checksum differs). "
                    "Re-train, or point the run at the original data."
                )
        if self.kind == "simulation":
            from priorgnn.simulate import load_simulation

            data = load_simulation(self.path).data
        else:
            from priorgnn.data.io import load_dataset

            data = load_dataset(self.path, **self.load_kwargs)
        if self.content_hash and data.content_hash != self.content_hash:
            raise CheckpointError(
                f"the data at {self.path} changed since the run was trained (content hash differs). "
                "Re-train, or point the run at the original data."
            )
        return data

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "path": self.path, "load_kwargs": self.load_kwargs,
             "content_hash": self.content_hash, "name": self.name}
        if self.file_sha256:
            d["file_sha256"] = self.file_sha256
        return d


class Run:
    """A run directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        run = cls(path)
        if not (run.path / RUN_FILE).exists():
            raise CheckpointError(
                f"{run.path} is not a run directory ({RUN_FILE} missing). Train one with train.py."
            )
        return run

    @cached_property
    def info(self) -> dict[str, Any]:
        return read_json(self.path / RUN_FILE)

    def write_info(self, info: dict[str, Any]) -> None:
        write_json(self.path / RUN_FILE, info)
        self.__dict__.pop("info", None)

    @property
    def model_name(self) -> str:
        return self.info["model"]

    @property
    def seed(self) -> int:
        return int(self.info.get("seed", 0))

    @property
    def name(self) -> str:
        return self.info.get("name", self.path.name)

    @property
    def data_spec(self) -> DataSpec:
        d = self.info["data"]
        return DataSpec(kind=d["kind"], path=d["path"], load_kwargs=d.get("load_kwargs", {}),
                        content_hash=d.get("content_hash"), name=d.get("name"), file_sha256=d.get("file_sha256"))

    def data(self):
        return self.data_spec.load()

    def split(self):
        from priorgnn.data.splits import Split

        return Split.load(self.path / "split.json")

    def model(self):
        from priorgnn.models.base import load_model

        model = load_model(self.path / "model")
        if model.name != self.model_name:
            raise CheckpointError(
                f"{self.path}: run.json names model {self.model_name!r} but model/ holds a {model.name!r} "
                "model (copied from another run?). Restore the run's own model folder or re-train."
            )
        return model

    def simulation(self):
        """The simulation the data came from, or ``None`` for real data."""
        spec = self.data_spec
        if spec.kind != "simulation":
            return None
        from priorgnn.simulate import load_simulation

        return load_simulation(spec.path)

    def graphs(self):
        from knowledge.graph import GeneGraph
        from priorgnn.models.base import PriorGraphs

        out = PriorGraphs()
        for name in ("go", "coexpression"):
            p = self.path / "graphs" / f"{name}.npz"
            if p.exists():
                setattr(out, name, GeneGraph.load(p))
        return out


class RunLock:
    """An exclusive lock on a run directory while it is written (``with RunLock(path): ...``).

    The lock is an ``flock`` on ``.NAME.lock`` beside the run directory (the directory itself may not
    exist yet, or be swapped in at the end), so it is released by the operating system if the process
    dies. A second writer fails at once with :class:`~priorgnn.errors.CheckpointError` naming the
    process that holds the lock. The lock file is removed on release.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.parent / f".{self.path.name}.lock"
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = open(self.lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise CheckpointError(
                    f"{self.path} is being written by another training ({holder}). Wait for it to finish, "
                    "or choose another --out."
                ) from None
            # the file may have been removed by the previous holder between open and flock: retry
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)
            self._fh.close()  # closing releases the flock
            self._fh = None
