"""Fetch the Gene Ontology files the GO graph is built from, explicitly and with recorded checksums.

Two files from the Gene Ontology Consortium:

* ``go-basic.obo`` -- the ontology (acyclic, ``is_a``/``part_of`` only), from
  https://purl.obolibrary.org/obo/go/go-basic.obo;
* ``goa_human.gaf.gz`` -- the human gene annotations (GAF 2.x), from
  https://current.geneontology.org/annotations/goa_human.gaf.gz.

Both are "current" releases that change over time, so no checksum is known in advance: each download
*records* the sha256, size, URL and date of both files, with the ontology's ``data-version`` and the
annotation file's header, in ``go.manifest.json`` beside them. A graph built from them cites that
record. Nothing runs implicitly; the command is ::

    python -m knowledge download-go --dest DIR        # or: python -m knowledge.download --dest DIR

``--url-obo`` / ``--url-gaf`` fetch from a mirror instead. Files already in ``DIR`` are kept (and
their checksums recorded if they were placed by hand) unless ``--force`` is given. Each file is
checked before it is put in place: the ontology must start with ``format-version:``, the annotation
file must be gzip that decompresses completely and starts with ``!gaf-version:``.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorgnn.fetch import download, manifest_entry, read_manifest, run_cli, update_manifest
from priorgnn.cli import ArgumentParser, positive_float
from priorgnn.errors import DownloadError

log = logging.getLogger(__name__)

__all__ = [
    "GO_OBO_URL",
    "GOA_HUMAN_GAF_URL",
    "OBO_NAME",
    "GAF_NAME",
    "MANIFEST_NAME",
    "GOFiles",
    "check_obo",
    "check_gaf",
    "download_go",
    "main",
]

GO_OBO_URL = "https://purl.obolibrary.org/obo/go/go-basic.obo"
GOA_HUMAN_GAF_URL = "https://current.geneontology.org/annotations/goa_human.gaf.gz"
OBO_NAME = "go-basic.obo"
GAF_NAME = "goa_human.gaf.gz"
MANIFEST_NAME = "go.manifest.json"


@dataclass(frozen=True)
class GOFiles:
    """The GO files in place, with their provenance.

    Attributes
    ----------
    obo, gaf
        Paths of ``go-basic.obo`` and ``goa_human.gaf.gz``.
    manifest
        Path of ``go.manifest.json`` (URL, size, sha256 and date of each file).
    data_version
        The ontology's ``data-version`` header (e.g. ``releases/2024-01-17``), if it has one.
    downloaded
        The names of the files fetched by this call (empty if both were already there).
    """

    obo: Path
    gaf: Path
    manifest: Path
    data_version: str | None
    downloaded: tuple[str, ...]


def check_obo(path: str | os.PathLike, url: str = GO_OBO_URL) -> dict[str, str]:
    """Check that ``path`` is an OBO file and return its header tags (``format-version``,
    ``data-version``, ...). ``url`` (where the file comes from) is named in the error message.

    Raises
    ------
    DownloadError
        The file does not start with ``format-version:`` (the OBO header).
    """
    path = Path(path)
    header: dict[str, str] = {}
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if not first.startswith("format-version:"):
        raise DownloadError(
            f"{path.name} is not an OBO ontology file (it starts with {first[:60]!r}, not "
            "'format-version:'). The URL may point to a web page; check it, or download "
            f"{url} in a browser and place it at {path.parent / OBO_NAME}."
        )
    for line in lines:
        if not line.strip() or line.startswith("["):
            break
        tag, sep, value = line.partition(":")
        if sep:
            header.setdefault(tag.strip(), value.strip())
    return header


def check_gaf(path: str | os.PathLike, url: str = GOA_HUMAN_GAF_URL) -> dict[str, str]:
    """Check that ``path`` is a gzipped GAF file that decompresses completely; return its header
    (``gaf-version``, and ``date-generated``/``generated-by`` when present). ``url`` (where the
    file comes from) is named in the error message.

    Raises
    ------
    DownloadError
        The file is not gzip, is truncated, or does not start with ``!gaf-version:``.
    """
    path = Path(path)
    header: dict[str, str] = {}
    fix = (f"Download {url} again (in a browser if need be) and place it at "
           f"{path.parent / GAF_NAME}.")
    try:
        with gzip.open(path, "rb") as fh:
            first = fh.readline()
            if not first.startswith(b"!gaf-version:"):
                raise DownloadError(
                    f"{path.name} is gzip but not a GAF annotation file (it starts with "
                    f"{first[:60].decode('utf-8', 'replace')!r}, not '!gaf-version:'). {fix}"
                )
            header["gaf-version"] = first.split(b":", 1)[1].strip().decode("utf-8", "replace")
            line = fh.readline()
            while line.startswith(b"!"):
                tag, sep, value = line[1:].decode("utf-8", "replace").partition(":")
                if sep and tag.strip() in ("date-generated", "generated-by"):
                    header.setdefault(tag.strip(), value.strip())
                line = fh.readline()
            while fh.read(1 << 20):  # read to the end: the gzip checksum catches a truncated file
                pass
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DownloadError(
            f"{path.name} is not a complete gzip file ({type(exc).__name__}: {exc}); it is damaged, "
            f"truncated or a web page. {fix}"
        ) from None
    return header


def _manual(url: str, target: Path) -> str:
    return (f"download {url} in a browser and place it at {target}, then run the command again "
            "(files already in place are kept and their checksums recorded)")


def download_go(
    dest: str | os.PathLike,
    *,
    url_obo: str | None = None,
    url_gaf: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    timeout: float = 60.0,
    max_attempts: int = 3,
    retry_wait: float = 2.0,
) -> GOFiles:
    """Fetch ``go-basic.obo`` and ``goa_human.gaf.gz`` into ``dest`` and record their checksums.

    Parameters
    ----------
    dest
        The folder for the two files and ``go.manifest.json`` (created if needed).
    url_obo, url_gaf
        Fetch from these URLs instead of the Gene Ontology Consortium's (mirrors, or tests).
    force
        Fetch the current release even if the files are present (each is replaced only once the new
        copy is complete and checked).
    progress
        Progress bars: ``True``, ``False`` or ``None`` (only on a terminal).
    timeout, max_attempts, retry_wait
        As in :func:`priorgnn.fetch.download`.

    Returns
    -------
    GOFiles
        Paths, manifest and the ontology's ``data-version``.

    Raises
    ------
    DownloadError
        The host refused (the message names the manual route), the connection failed, or a file is
        not what it should be.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    manifest_file = dest / MANIFEST_NAME
    read_manifest(manifest_file)  # a damaged manifest is reported before anything is fetched
    specs = (
        (OBO_NAME, url_obo or GO_OBO_URL, check_obo),
        (GAF_NAME, url_gaf or GOA_HUMAN_GAF_URL, check_gaf),
    )
    downloaded: list[str] = []
    headers: dict[str, dict[str, str]] = {}
    for name, url, check in specs:
        target = dest / name
        recorded = read_manifest(manifest_file)["files"].get(name)
        if target.exists() and not force:
            headers[name] = check(target, url)
            entry = manifest_entry(target, url=None, source="placed by hand", header=headers[name])
            if recorded is None or recorded.get("sha256") != entry["sha256"]:
                log.info("%s is present; recording its checksum", target)
                update_manifest(manifest_file, {name: entry})
            else:
                log.info("%s is present (recorded %s); not fetched (force=True fetches it again)",
                         target, recorded.get("date"))
            continue
        found: dict[str, str] = {}

        def validate(part: Path, check=check, found=found, url=url) -> None:
            found.update(check(part, url))

        download(
            url, target, manual=_manual(url, target), validate=validate, progress=progress,
            timeout=timeout, max_attempts=max_attempts, retry_wait=retry_wait,
            manifest=manifest_file, manifest_extra={"header": found},
        )
        headers[name] = found
        downloaded.append(name)

    data_version = headers[OBO_NAME].get("data-version")
    if data_version is None:
        log.warning("%s has no data-version header; its release is identified by its checksum only",
                    OBO_NAME)
    update_manifest(manifest_file, go_data_version=data_version)
    return GOFiles(dest / OBO_NAME, dest / GAF_NAME, manifest_file, data_version, tuple(downloaded))


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog or "python -m knowledge.download",
        description=(
            "Download the current Gene Ontology (go-basic.obo) and human GO annotations "
            "(goa_human.gaf.gz) from the Gene Ontology Consortium, check them, and record their "
            f"sha256, size, URL, date and GO data-version in {MANIFEST_NAME} beside them."
        ),
        epilog=(
            "Files already in DIR are kept (and their checksums recorded) unless --force is given. "
            "If the host refuses, download the URL in a browser, place the file in DIR under the "
            f"name {OBO_NAME} or {GAF_NAME}, and run the command again."
        ),
    )
    parser.add_argument("--dest", metavar="DIR", type=Path, required=True,
                        help="folder for the GO files and their manifest (created if needed)")
    parser.add_argument("--url-obo", metavar="URL", help=f"ontology URL (default: {GO_OBO_URL})")
    parser.add_argument("--url-gaf", metavar="URL",
                        help=f"annotation URL (default: {GOA_HUMAN_GAF_URL})")
    parser.add_argument("--force", action="store_true",
                        help="fetch the current release even if the files are present")
    parser.add_argument("--timeout", type=positive_float, default=60.0, metavar="SECONDS",
                        help="network timeout per connection and read (default: 60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback and debug messages on errors")
    return parser


def _run(args: argparse.Namespace) -> int:
    files = download_go(
        args.dest, url_obo=args.url_obo, url_gaf=args.url_gaf, force=args.force,
        progress=False if args.no_progress else None, timeout=args.timeout,
    )
    manifest: dict[str, Any] = read_manifest(files.manifest)
    for path in (files.obo, files.gaf):
        entry = manifest["files"][path.name]
        state = "downloaded" if path.name in files.downloaded else "present"
        print(f"{path} ({state}): {entry['size']} bytes, sha256 {entry['sha256']}")
    print(f"GO data-version: {files.data_version or 'unknown (no data-version header)'}")
    print(f"checksums recorded in {files.manifest}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Command line of the GO download; returns the exit status (2 on an error, with its message).

    ``prog`` names the command in help and usage (the knowledge CLI passes
    ``"python -m knowledge download-go"``).
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    return run_cli(_run, args, loggers=("priorgnn", "knowledge"), prog=parser.prog)


if __name__ == "__main__":
    sys.exit(main())
