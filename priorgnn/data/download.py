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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorgnn.fetch import (
    download,
    looks_like_html,
    manifest_entry,
    read_manifest,
    safe_extract_zip,
    update_manifest,
    utc_now,
)
from priorgnn.io import replace_dir, sha256_file
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
        For a record published as a single ``.h5ad`` (``archive=False``), those of the ``.h5ad``.
    archive
        ``True``: ``url`` is a zip archive holding ``NAME/perturb_processed.h5ad`` (GEARS's layout);
        ``False``: ``url`` is the ``.h5ad`` itself, saved as ``NAME/<file>``.
    file
        The ``.h5ad``'s name inside the data set's folder.
    source
        Who publishes it (for ``list``).
    licence_url, licence_file
        Where the licence notice that must accompany the data is published, and its name beside the
        ``.h5ad`` (``None``: the publisher states no such requirement).
    load_hint
        The ``train.py`` options that load the file by path, shown after a download.
    load_defaults
        Loading options applied when the data set is loaded by name (its conventions, and which
        cells to use); options the user gives take precedence.
    """

    name: str
    url: str
    description: str
    reference: str
    sha256: str | None = None
    size: int | None = None
    archive: bool = True
    file: str = H5AD_NAME
    source: str = f"GEARS, Harvard Dataverse doi:{DATAVERSE_DOI}"
    licence_url: str | None = None
    licence_file: str | None = None
    load_hint: str | None = None
    load_defaults: dict[str, Any] = field(default_factory=dict, hash=False)


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

#: PerturBench's development subset (real cells of Norman et al. 2019 and McFaline-Figueroa et al.
#: 2023). The repository's full commit id was not available when this record was written; GitHub
#: resolves the abbreviated id below, and the sha256 pins the exact bytes whatever the URL serves.
PERTURBENCH_COMMIT = "d357dfae"
_PERTURBENCH_RAW = "https://raw.githubusercontent.com/altoslabs/perturbench/" + PERTURBENCH_COMMIT + "/{}"
NORMAN2019_SUBSET = DatasetRecord(
    name="norman2019_subset",
    url=_PERTURBENCH_RAW.format("src/perturbench/data/resources/devel.h5ad"),
    description="real cells: Norman 2019 K562 CRISPRa (obs dataset=norman19: 100 controls, 18 singles, "
                "15 doubles) and McFaline-Figueroa 2023 CRISPRi (dataset=mcfaline23); 500 genes, "
                "scPerturb style",
    reference="Norman et al. 2019, Science 365:786; McFaline-Figueroa et al. 2023, Cell Genomics",
    sha256="220998f5630c813228c8661c86dd52244b9ac87127511289af90e0d900d8429b",
    archive=False,
    file="devel.h5ad",
    source=f"PerturBench (Altos Labs), commit {PERTURBENCH_COMMIT}, BSD 3-Clause",
    licence_url=_PERTURBENCH_RAW.format("LICENSE"),
    licence_file="LICENSE-perturbench.txt",
    load_hint="--style scperturb --control-label control --separator + --allow-unmeasured-perturbations "
              "--select dataset=norman19",
    # The perturbed genes are not among the 500 measured genes; the McFaline-Figueroa cells have no
    # control cells of their own, so by name only the Norman 2019 K562 cells are used.
    load_defaults={"style": "scperturb", "perturbation_column": "condition", "separator": "+",
                   "control_label": "control", "allow_unmeasured_perturbations": True,
                   "select": {"dataset": "norman19"}},
)
DATASETS[NORMAN2019_SUBSET.name] = NORMAN2019_SUBSET

#: The start of PerturBench's licence notice: a fetched licence file must begin with it.
_BSD3_HEAD = "BSD 3-Clause License"
#: PerturBench's licence notice as published with the file (kept with every copy of the data; written
#: from here when the notice cannot be fetched and no copy lies beside an imported file).
PERTURBENCH_LICENCE = """\
BSD 3-Clause License

Copyright (c) 2024, Altos Labs

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

Additional License Information
-------------------
Certain files within this repository are subject to different licensing terms.
Please see the specific files in the perturbench/modelcore/models for their
respective licenses.
"""


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
    """Where data set ``name``'s ``.h5ad`` is (whether or not it is there yet): ``NAME/<file>`` under
    the data root (``perturb_processed.h5ad`` for GEARS's data sets)."""
    record = _get(name)
    return data_root(root) / record.name / record.file


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


def _unpack(archive: Path, record: DatasetRecord, root: Path) -> Path:
    """Unpack ``archive`` safely and move its data-set folder to ``root/NAME``; return the h5ad."""
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{record.name}.unpack-"))
    try:
        log.info("unpacking %s", archive)
        safe_extract_zip(archive, staging)
        folder = _locate_h5ad(staging, record.name)
        check_h5ad(folder / H5AD_NAME)
        replace_dir(folder, root / record.name)
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
        umask = os.umask(0)  # mkstemp creates the file private; give it the user's usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
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
    licence_url: str | None = None,
) -> Path:
    """Fetch a data set, verify and unpack it, and return its ``perturb_processed.h5ad``.

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
        As in :func:`priorgnn.fetch.download`.
    licence_url
        For a data set with a licence notice: fetch the notice from here instead (a mirror).

    A data set published as one ``.h5ad`` (``norman2019_subset``) is fetched, or imported with
    ``from_file``, and verified against its known sha256; its licence notice is put beside it.

    Returns
    -------
    Path
        The data set's ``.h5ad``.

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

    if not record.archive:
        return _download_h5ad(record, root, force=force, url=url, from_file=from_file,
                              licence_url=licence_url, progress=progress, timeout=timeout,
                              max_attempts=max_attempts, retry_wait=retry_wait)
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


# ------------------------------------------------------------------- data sets published as one .h5ad


def _check_licence(path: Path) -> None:
    head = path.read_bytes()[:4096].decode("utf-8", errors="replace").lstrip("\ufeff")
    if not head.startswith(_BSD3_HEAD):
        raise DownloadError(f"{path.name} is not the licence notice (it does not start with "
                            f"{_BSD3_HEAD!r}).")


def _place_licence(record: DatasetRecord, folder: Path, *, beside: Path | None, fetch: bool,
                   url: str | None, **net: Any) -> dict[str, Any]:
    """Put the record's licence notice in ``folder``; return its manifest entry.

    Taken, in this order, from a copy ``beside`` an imported file, from ``url`` (or the record's)
    when ``fetch``, else (or when that fetch fails) written from the copy kept in this module."""
    assert record.licence_file is not None
    target = folder / record.licence_file
    if beside is not None and beside.is_file():
        _check_licence(beside)
        if beside.resolve() != target.resolve():
            _install_h5ad(beside, target)
        return manifest_entry(target, url=None, source=f"file {beside.resolve()}")
    if fetch:
        src = url or record.licence_url
        try:
            download(src, target, validate=_check_licence, **net)
            return manifest_entry(target, url=src, source="downloaded")
        except DownloadError as exc:
            log.warning("could not fetch the licence notice (%s); writing the copy kept with priorgnn", exc)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(PERTURBENCH_LICENCE)
    os.replace(tmp, target)
    return manifest_entry(target, url=None, source="written from the copy kept with priorgnn "
                                                   f"(published at {record.licence_url})")


def _download_h5ad(record: DatasetRecord, root: Path, *, force: bool, url: str | None,
                   from_file: str | os.PathLike | None, licence_url: str | None,
                   **net: Any) -> Path:
    """Fetch (or import) a data set published as one ``.h5ad`` with a known sha256, and its licence."""
    target = dataset_path(record.name, root)
    folder = target.parent
    manifest_file = manifest_path(record.name, root)
    read_manifest(manifest_file)  # a damaged manifest is reported before anything is fetched
    source_url = url or record.url
    fix = (f"Fetch it again with `python -m priorgnn.data download {record.name} --force`, or pass "
           f"a copy with --from-file PATH.")

    if from_file is not None:
        src = Path(from_file).expanduser()
        if not src.is_file():
            raise DownloadError(f"--from-file {src}: no such file. Check the path.")
        if _file_kind(src) != "h5ad":
            raise DownloadError(
                f"{src} is not an .h5ad (HDF5) file. Pass {record.file} as published at {record.url}."
            )
        digest = _verify_archive(
            src, record.sha256, "the registry",
            f"The file is not {record.name}'s {record.file} (a different version or a damaged copy); "
            f"fetch it from {record.url}.",
        )
        check_h5ad(src, fix=fix)
        folder.mkdir(parents=True, exist_ok=True)
        if src.resolve() != target.resolve():
            _install_h5ad(src, target)
        entry = manifest_entry(target, url=None, sha256=digest, source=f"file {src.resolve()}",
                               checksum="verified against the registry")
        licence = (_place_licence(record, folder, beside=src.parent / record.licence_file, fetch=False,
                                  url=None) if record.licence_file else None)
    else:
        if target.exists() and not force:
            digest = _verify_archive(target, record.sha256, "the registry", fix)
            check_h5ad(target, fix=fix)
            log.info("%s is already at %s; nothing to download (force=True fetches it again)",
                     record.name, target)
            if record.licence_file and not (folder / record.licence_file).is_file():
                update_manifest(manifest_file, {f"{record.name}/{record.licence_file}": _place_licence(
                    record, folder, beside=None, fetch=True, url=licence_url, **net)})
            return target
        folder.mkdir(parents=True, exist_ok=True)
        manual = (f"download {source_url} in a browser and pass the saved file with --from-file PATH "
                  f"(`python -m priorgnn.data download {record.name} --from-file PATH`)")
        result = download(source_url, target, sha256=record.sha256, size=record.size, manual=manual,
                          validate=lambda p: check_h5ad(p, fix=fix), **net)
        entry = result.manifest_entry()
        entry["checksum"] = "verified against the registry"
        licence = (_place_licence(record, folder, beside=None, fetch=True, url=licence_url, **net)
                   if record.licence_file else None)
    files = {f"{record.name}/{record.file}": entry}
    if licence is not None:
        files[f"{record.name}/{record.licence_file}"] = licence
    update_manifest(manifest_file, files, dataset=record.name, source=record.source,
                    reference=record.reference)
    log.info("%s is ready at %s", record.name, target)
    return target
