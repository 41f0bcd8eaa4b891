"""The GEARS data sets: a registry, where they live on disk, and the explicit download command.

GEARS's processed Perturb-seq data sets are published on Harvard Dataverse (dataset DOI
``10.7910/DVN/Q2ZV3E``), one zip archive each, unpacking to ``<name>/perturb_processed.h5ad`` (plus
files GEARS derives from it, which are not used here). Nothing in the project downloads them
implicitly: a user runs ::

    python -m priorgnn.data download norman     # or adamson, dixit, replogle_k562_essential, ...
    python -m priorgnn.data list                # what is known, and what is on this machine

after which ``priorgnn.data.load_dataset("norman")`` reads it.

Where the files live
--------------------
``$PRIORGNN_DATA_DIR`` if set, else ``~/.local/share/priorgnn/datasets`` (never the working
directory), or the folder given with ``--dest`` / ``dest=``. Under that root, for a data set ``NAME``:

* ``NAME/perturb_processed.h5ad`` -- the data (:func:`dataset_path`);
* ``NAME.zip`` -- the archive while it is being downloaded (``NAME.zip.part``) and unpacked; it is
  deleted after a successful unpack unless ``keep_archive=True``;
* ``NAME.manifest.json`` -- provenance: URL, size, sha256 and date of the archive and of the h5ad.

Checksums
---------
Each registry record can carry the archive's sha256 and size. Where the registry has none
(``sha256=None``, as for all records until someone fills them in from a trusted download), the first
download *records* the archive's sha256 in the manifest, and later downloads into the same folder
(``--force``) are *verified* against that record. A Dataverse file id names one fixed file, so a
different checksum means a damaged or substituted file.

When the host refuses
---------------------
Dataverse sometimes refuses scripted downloads (HTTP 403, or an HTML page in place of the file). The
error then names the manual route: open the URL in a browser, save the archive at ``ROOT/NAME.zip``
(or the h5ad at ``ROOT/NAME/perturb_processed.h5ad``) and run the command again; a file saved
elsewhere is taken with ``--from-file PATH`` (an archive or an ``.h5ad``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorgnn._download import (
    download,
    looks_like_html,
    manifest_entry,
    read_manifest,
    safe_extract_zip,
    update_manifest,
    utc_now,
)
from priorgnn._io import sha256_file
from priorgnn.errors import ConfigError, DownloadError

log = logging.getLogger(__name__)

__all__ = [
    "DATAVERSE_DOI",
    "DATASETS",
    "DatasetRecord",
    "H5AD_NAME",
    "data_root",
    "dataset_path",
    "archive_path",
    "manifest_path",
    "dataset_manifest",
    "download_dataset",
    "check_h5ad",
]

DATAVERSE_DOI = "10.7910/DVN/Q2ZV3E"
H5AD_NAME = "perturb_processed.h5ad"
_DATAVERSE_FILE = "https://dataverse.harvard.edu/api/access/datafile/{}"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class DatasetRecord:
    """A downloadable data set.

    Attributes
    ----------
    name
        The name used on the command line and by :func:`~priorgnn.data.io.load_dataset`.
    url
        Where the zip archive is published.
    description
        One line for ``python -m priorgnn.data list``.
    reference
        The publication the data come from.
    sha256, size
        The archive's checksum and size when known (verified on every download); ``None`` means not
        yet known: the first download records it in the manifest and later ones verify against that.
    """

    name: str
    url: str
    description: str
    reference: str
    sha256: str | None = None
    size: int | None = None


def _record(name: str, file_id: int, description: str, reference: str) -> DatasetRecord:
    return DatasetRecord(name, _DATAVERSE_FILE.format(file_id), description, reference)


#: The data sets GEARS publishes, by name. Checksums are filled in here once known from a trusted
#: download (``NAME.manifest.json`` records them).
DATASETS: dict[str, DatasetRecord] = {
    r.name: r
    for r in (
        _record("norman", 6154020, "K562, CRISPRa, single and double perturbations",
                "Norman et al. 2019, Science 365:786"),
        _record("adamson", 6154417, "K562, CRISPRi, single perturbations (unfolded protein response)",
                "Adamson et al. 2016, Cell 167:1867"),
        _record("dixit", 6154416, "CRISPR knockout Perturb-seq",
                "Dixit et al. 2016, Cell 167:1853"),
        _record("replogle_k562_essential", 7458695, "K562, CRISPRi, essential genes",
                "Replogle et al. 2022, Cell 185:2559"),
        _record("replogle_rpe1_essential", 7458694, "RPE1, CRISPRi, essential genes",
                "Replogle et al. 2022, Cell 185:2559"),
    )
}


def _get(name: str) -> DatasetRecord:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}. For another "
            "data set, load its .h5ad by path."
        ) from None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the data sets: ``root`` if given, else ``$PRIORGNN_DATA_DIR``, else
    ``~/.local/share/priorgnn/datasets``. It is not created here."""
    if root is None:
        env = os.environ.get("PRIORGNN_DATA_DIR")
        root = env if env else Path.home() / ".local" / "share" / "priorgnn" / "datasets"
    return Path(root).expanduser()


def dataset_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where data set ``name``'s ``perturb_processed.h5ad`` is (whether or not it is there yet)."""
    return data_root(root) / _get(name).name / H5AD_NAME


def archive_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where data set ``name``'s zip archive is downloaded to (and may be placed by hand)."""
    return data_root(root) / f"{_get(name).name}.zip"


def manifest_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """The provenance manifest of data set ``name`` (beside its folder)."""
    return data_root(root) / f"{_get(name).name}.manifest.json"


def dataset_manifest(name: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of data set ``name`` (empty if it was never downloaded)."""
    return read_manifest(manifest_path(name, root))


def check_h5ad(path: str | os.PathLike, fix: str = "Delete it and fetch the data set again.") -> None:
    """Check that ``path`` is an HDF5 file that looks like an AnnData (has ``X`` and ``obs``).

    ``fix`` ends the error message (what the user should do about a bad file).

    Raises
    ------
    DownloadError
        It is missing, not HDF5, unreadable or not an AnnData file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path} does not exist.")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head.startswith(_HDF5_MAGIC):
        what = "a web page (HTML)" if looks_like_html(head) else "not an HDF5 file"
        raise DownloadError(
            f"{path} is {what}, not an .h5ad. {fix}"
        )
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except OSError as exc:
        raise DownloadError(
            f"{path} has an HDF5 signature but cannot be opened ({exc}); it is probably truncated. "
            f"{fix}"
        ) from None
    if not {"X", "obs"} <= keys:
        raise DownloadError(
            f"{path} is an HDF5 file but not an AnnData .h5ad (it has no X/obs; found "
            f"{', '.join(sorted(keys)) or 'nothing'}). {fix}"
        )


def _manual_route(record: DatasetRecord, url: str, root: Path, dest_given: bool) -> str:
    dest_opt = f" --dest {root}" if dest_given else ""
    return (
        f"download {url} in a browser and place the archive at {archive_path(record.name, root)}, "
        f"or place {H5AD_NAME} at {dataset_path(record.name, root)}; then run `python -m priorgnn.data "
        f"download {record.name}{dest_opt}` again (a file saved elsewhere is taken with "
        "--from-file PATH)"
    )


def _expected_sha256(record: DatasetRecord, manifest: dict[str, Any]) -> tuple[str | None, str]:
    """The archive checksum to verify against, and where it comes from."""
    if record.sha256:
        return record.sha256.lower(), "the registry"
    recorded = manifest["files"].get(f"{record.name}.zip", {}).get("sha256")
    if recorded:
        return recorded, "the manifest of an earlier download"
    return None, ""


def _file_kind(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(_HDF5_MAGIC):
        return "h5ad"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if looks_like_html(head):
        return "html"
    return "unknown"


def _locate_h5ad(staging: Path, name: str) -> Path:
    """The folder of the unpacked archive that holds ``perturb_processed.h5ad``."""
    for candidate in (staging / name, staging):
        if (candidate / H5AD_NAME).is_file():
            return candidate
    found = sorted(p for p in staging.rglob(H5AD_NAME) if p.is_file())
    if len(found) == 1:
        return found[0].parent
    listing = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())[:10]
    raise DownloadError(
        f"the archive for {name!r} holds {'no' if not found else len(found)} {H5AD_NAME} "
        f"(expected {name}/{H5AD_NAME}; found {', '.join(listing) or 'no files'}). It is not the "
        "GEARS archive for this data set: check the URL or file."
    )


def _install_dir(src: Path, target: Path) -> None:
    """Move folder ``src`` to ``target``, replacing an existing ``target`` only once ``src`` is ready."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    try:
        os.replace(src, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _unpack(archive: Path, record: DatasetRecord, root: Path) -> Path:
    """Unpack ``archive`` safely and move its data-set folder to ``root/NAME``; return the h5ad."""
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{record.name}.unpack-"))
    try:
        log.info("unpacking %s", archive)
        safe_extract_zip(archive, staging)
        folder = _locate_h5ad(staging, record.name)
        check_h5ad(folder / H5AD_NAME)
        _install_dir(folder, root / record.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / record.name / H5AD_NAME


def _install_h5ad(src: Path, target: Path) -> None:
    """Copy an h5ad to ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _verify_archive(archive: Path, expected: str | None, source: str, how_to_fix: str) -> str:
    digest = sha256_file(archive)
    if expected is not None and digest != expected:
        raise DownloadError(
            f"checksum mismatch for {archive}: expected sha256 {expected} (from {source}), got "
            f"{digest}. {how_to_fix}"
        )
    return digest


def download_dataset(
    name: str,
    dest: str | os.PathLike | None = None,
    force: bool = False,
    url: str | None = None,
    *,
    from_file: str | os.PathLike | None = None,
    keep_archive: bool = False,
    progress: bool | None = None,
    timeout: float = 60.0,
    max_attempts: int = 3,
    retry_wait: float = 2.0,
) -> Path:
    """Fetch a GEARS data set, verify and unpack it, and return its ``perturb_processed.h5ad``.

    Nothing is fetched if the h5ad is already there (unless ``force``). An archive already at
    :func:`archive_path` (an interrupted run, or placed there by hand) is used instead of downloading;
    an interrupted download (``NAME.zip.part``) is resumed.

    Parameters
    ----------
    name
        A key of :data:`DATASETS`.
    dest
        The data root (see :func:`data_root`); by default ``$PRIORGNN_DATA_DIR`` or
        ``~/.local/share/priorgnn/datasets``.
    force
        Fetch again from scratch, replacing the data set's folder once the new copy is verified.
    url
        Download from this URL instead of the registry's (a mirror, or a local server in tests).
    from_file
        Take the data from this file instead of downloading: a zip archive (verified and unpacked;
        the file itself is left alone) or a ``perturb_processed.h5ad`` (checked and copied).
    keep_archive
        Keep ``NAME.zip`` after unpacking (it is deleted by default; its checksum stays in the manifest).
    progress
        Progress bar: ``True``, ``False`` or ``None`` (only on a terminal).
    timeout, max_attempts, retry_wait
        As in :func:`priorgnn._download.download`.

    Returns
    -------
    Path
        The data set's ``perturb_processed.h5ad``.

    Raises
    ------
    DownloadError
        The host refused (the message names the manual route), the download or file failed its
        checksum, the archive is unsafe or lacks the h5ad, or the h5ad does not open.
    """
    record = _get(name)
    root = data_root(dest)
    root.mkdir(parents=True, exist_ok=True)
    h5ad = dataset_path(name, root)
    archive = archive_path(name, root)
    manifest_file = manifest_path(name, root)
    source_url = url or record.url
    manual = _manual_route(record, source_url, root, dest_given=dest is not None)
    manifest = read_manifest(manifest_file)
    expected, expected_from = _expected_sha256(record, manifest)

    if from_file is not None:
        return _from_file(Path(from_file), record, root, expected, expected_from)

    if h5ad.exists() and not force:
        check_h5ad(h5ad, fix=f"Fetch it again with `python -m priorgnn.data download {name} --force`.")
        log.info("%s is already at %s; nothing to download (force=True fetches it again)", name, h5ad)
        return h5ad

    part = archive.with_name(archive.name + ".part")
    if force:
        for stale in (archive, part):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    if archive.exists():
        log.info("using the archive already at %s", archive)
        kind = _file_kind(archive)
        if kind != "zip":
            raise DownloadError(
                f"{archive} is {'a web page (HTML)' if kind == 'html' else 'not a zip archive'}, not "
                f"the data set's archive. Delete it; then {manual}."
            )
        digest = _verify_archive(
            archive, expected, expected_from,
            f"Delete {archive} and run the command again, or check where the file came from.",
        )
        earlier = manifest["files"].get(archive.name, {})
        entry = (
            dict(earlier) if earlier.get("sha256") == digest  # kept from an earlier download
            else manifest_entry(archive, url=None, sha256=digest, source="placed by hand")
        )
    else:
        result = download(
            source_url, archive, sha256=expected, size=record.size, manual=manual,
            progress=progress, timeout=timeout, max_attempts=max_attempts, retry_wait=retry_wait,
        )
        entry = result.manifest_entry()
    entry["checksum"] = (
        f"verified against {expected_from}" if expected else "recorded (no known checksum to verify)"
    )

    h5ad = _unpack(archive, record, root)
    h5ad_entry = manifest_entry(h5ad, url=None, source=f"unpacked from {archive.name}")
    update_manifest(
        manifest_file, {archive.name: entry, f"{record.name}/{H5AD_NAME}": h5ad_entry},
        dataset=record.name, doi=DATAVERSE_DOI, reference=record.reference,
    )
    if not keep_archive:
        archive.unlink()
    log.info("%s is ready at %s", name, h5ad)
    return h5ad


def _from_file(
    src: Path, record: DatasetRecord, root: Path, expected: str | None, expected_from: str
) -> Path:
    if not src.is_file():
        raise DownloadError(f"--from-file {src}: no such file. Check the path.")
    kind = _file_kind(src)
    manifest_file = manifest_path(record.name, root)
    target = dataset_path(record.name, root)
    if kind == "zip":
        digest = _verify_archive(
            src, expected, expected_from,
            "The file is not the archive downloaded before: check where it came from.",
        )
        h5ad = _unpack(src, record, root)
        files = {
            f"{record.name}.zip": manifest_entry(
                src, url=None, sha256=digest, source=f"file {src.resolve()}",
                checksum=(f"verified against {expected_from}" if expected
                          else "recorded (no known checksum to verify)"),
            ),
        }
    elif kind == "h5ad":
        check_h5ad(src)
        if src.resolve() != target.resolve():
            _install_h5ad(src, target)
        h5ad = target
        files = {}
    elif kind == "html":
        raise DownloadError(
            f"{src} is a web page (HTML), not the data: the host served an error or login page in "
            f"place of the file. Download {record.url} again in a browser (sign in if asked) and "
            "pass the saved .zip or .h5ad."
        )
    else:
        raise DownloadError(
            f"{src} is neither a zip archive nor an .h5ad (HDF5) file. Pass the archive downloaded "
            f"from {record.url}, or its {H5AD_NAME}."
        )
    files[f"{record.name}/{H5AD_NAME}"] = manifest_entry(
        h5ad, url=None, source=f"file {src.resolve()}", date=utc_now()
    )
    update_manifest(manifest_file, files, dataset=record.name, doi=DATAVERSE_DOI,
                    reference=record.reference)
    log.info("%s is ready at %s (from %s)", record.name, h5ad, src)
    return h5ad
