"""I/O helpers shared by the packages: atomic writes, content hashes, safe file names.

Every file the project writes goes through :func:`atomic_write` (or one of its wrappers): the data
are written to a temporary file in the target directory and renamed over the target, so a process
killed mid-write never leaves a half-written file that a later run would read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from priorgnn.errors import OutputError, PriorGNNError

__all__ = [
    "atomic_write",
    "write_json",
    "write_text",
    "write_h5ad",
    "write_csv",
    "save_figure",
    "read_json",
    "sha256_file",
    "sha256_bytes",
    "hash_arrays",
    "safe_name",
    "replace_dir",
    "atomic_path",
    "check_output_dir",
    "check_free_space",
    "h5ad_nbytes",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fresh_file_mode(fd: int) -> None:
    """mkstemp creates files readable by the owner only; give them the usual mode (0666 & ~umask)."""
    os.fchmod(fd, 0o666 & ~_umask())


def check_output_dir(path: str | os.PathLike) -> Path:
    """``path`` if it is, or can be made, a folder; else :class:`~priorgnn.errors.OutputError`.

    ``mkdir(parents=True, exist_ok=True)`` fails with a bare ``FileExistsError`` on a symbolic link
    to a missing folder and on a path through a file; callers check first, before minutes of work
    that the first write would lose.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            raise OutputError(f"{p} is a symbolic link to {os.readlink(p)}, which does not exist: create that "
                              "folder, remove the link, or choose another output folder.")
        if p.exists():
            if not p.is_dir():
                raise OutputError(f"{p} is a file, not a folder, so {path} cannot be written: choose another "
                                  "output folder, or move the file.")
            break
    return path


def _make_parent(path: Path) -> None:
    check_output_dir(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Raise :class:`~priorgnn.errors.OutputError` if ``folder`` has less than ``needed`` bytes free.

    Writers check before they start: HDF5 can crash the process when the disk fills mid-write,
    instead of raising an error that would remove the temporary file.
    """
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OutputError(f"writing {what} needs about {needed / 1e9:.2f} GB, but {folder} has "
                          f"{free / 1e9:.2f} GB free: free some disk space, or choose an output folder on "
                          "another disk.")


def h5ad_nbytes(adata) -> int:
    """About the bytes an uncompressed ``.h5ad`` of ``adata`` takes: the bytes of its matrices (``X``,
    layers, ``obsm``/``varm``/``obsp``/``varp``; sparse ones as data, indices and index pointers) and
    of its ``obs``/``var`` tables. Names, ``uns`` and HDF5's own metadata are left out; they are small
    next to the matrices of any data set whose size matters here."""
    import scipy.sparse as sp

    def size(m) -> int:
        if m is None:
            return 0
        if sp.issparse(m):
            m = m if hasattr(m, "indptr") else sp.csr_matrix(m)  # anndata writes other formats as CSR
            return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)
        return int(getattr(m, "nbytes", 0))

    total = size(adata.X)
    for store in (adata.layers, adata.obsm, adata.varm, adata.obsp, adata.varp):
        total += sum(size(store[k]) for k in store.keys())
    for table in (adata.obs, adata.var):
        total += int(table.memory_usage(index=True, deep=True).sum())
    return total


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    _make_parent(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    _fresh_file_mode(fd)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that need a file name (h5py, savefig).

    ``suffix`` keeps the extension that some writers use to pick a format.
    """
    path = Path(path)
    _make_parent(path)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{suffix}")
    _fresh_file_mode(fd)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON, atomically (numpy scalars and arrays, sets and paths allowed)."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, default=_json_default, allow_nan=True)
        fh.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or truncated file is one clear :class:`PriorGNNError`."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise PriorGNNError(f"{path}: file not found.") from None
    except json.JSONDecodeError as exc:
        raise PriorGNNError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}). The file may be truncated; "
            "re-create it."
        ) from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_csv(path: str | os.PathLike, df, **kwargs: Any) -> None:
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, **kwargs)


def write_h5ad(path: str | os.PathLike, adata, **kwargs: Any) -> None:
    """Write an AnnData as .h5ad, atomically, after checking that the disk has room for it
    (:func:`h5ad_nbytes`, uncompressed; compressed files take less, so then the check is skipped)."""
    path = Path(path)
    _make_parent(path)
    if kwargs.get("compression") is None:
        check_free_space(path.parent, h5ad_nbytes(adata), str(path))
    with atomic_path(path, ".h5ad") as tmp:
        adata.write_h5ad(tmp, **kwargs)


def save_figure(fig, path: str | os.PathLike, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically (format from the extension)."""
    kwargs.setdefault("dpi", 150)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **kwargs)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _buffer(arr: np.ndarray) -> memoryview:
    """The bytes of an array without copying them (``tobytes()`` would duplicate a multi-GB matrix)."""
    arr = np.ascontiguousarray(arr)
    return memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")


def hash_arrays(*parts: Any) -> str:
    """A content hash of numpy arrays, scipy sparse matrices, strings and JSON-able values."""
    import scipy.sparse as sp

    h = hashlib.sha256()
    for part in parts:
        if sp.issparse(part):
            part = part.tocsr()
            for arr in (part.indptr, part.indices, part.data):
                h.update(_buffer(arr))
            h.update(str(part.shape).encode())
        elif isinstance(part, np.ndarray):
            if part.dtype == object:
                h.update("\x1f".join(map(str, part.ravel())).encode())
            else:
                h.update(_buffer(part))
            h.update(f"{part.dtype}{part.shape}".encode())
        elif isinstance(part, (bytes, bytearray)):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        h.update(b"\x1e")
    return h.hexdigest()


_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_name(value: str, max_len: int = 120) -> str:
    """Turn a data value (a condition, a gene) into a file-name component that cannot escape a folder.

    Path separators, ``..`` and other unsafe characters are replaced; the result never starts with a
    dot. A short hash is appended when anything was replaced, so distinct values stay distinct.
    """
    cleaned = _SAFE.sub("_", value).lstrip(".")
    if cleaned != value or not cleaned:
        cleaned = f"{cleaned[: max_len - 9] or 'x'}_{sha256_bytes(value.encode())[:8]}"
    return cleaned[:max_len]


def replace_dir(src: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``src`` to ``target``; an earlier ``target`` is removed only after the swap.

    Both must be on one file system (``src`` is usually a temporary folder beside ``target``). If the
    final rename fails, the earlier ``target`` is put back, so a failure never loses it.
    """
    src, target = Path(src), Path(target)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(src, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
