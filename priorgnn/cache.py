"""The on-disk cache: content-keyed ``.npz`` files, verified on load.

The cache lives in ``$PRIORGNN_CACHE_DIR`` if set, else ``~/.cache/priorgnn``; never in the working
directory. Entries are keyed by a hash of their inputs and parameters. Each entry stores its own key,
and a file whose key or structure does not match is ignored and rebuilt, so a stale or truncated
entry is never used.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from priorgnn.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["cache_dir", "cache_load", "cache_save"]


def cache_dir() -> Path:
    """The cache folder (created): ``$PRIORGNN_CACHE_DIR``, else ``~/.cache/priorgnn``."""
    root = os.environ.get("PRIORGNN_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "priorgnn"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _entry(kind: str, key: str) -> Path:
    return cache_dir() / kind / f"{key}.npz"


def cache_load(kind: str, key: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
    """Return the cached arrays for ``key``, or ``None`` if absent, corrupt or mismatched."""
    path = _entry(kind, key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("ignoring unreadable cache entry %s (%s); rebuilding", path.name, exc)
        return None
    if str(data.get("__key__", "")) != key or any(r not in data for r in required):
        log.warning("ignoring cache entry %s whose content does not match its key; rebuilding", path.name)
        return None
    data.pop("__key__")
    return data


def cache_save(kind: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
    """Store ``arrays`` under ``key`` (with the key itself, checked on load), atomically; returns the file."""
    path = _entry(kind, key)
    with atomic_path(path, ".npz") as tmp:
        np.savez(tmp, __key__=np.array(key), **arrays)
    return path
