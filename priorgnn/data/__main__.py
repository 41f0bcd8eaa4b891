"""``python -m priorgnn.data``: list and download the data sets (explicitly; never implied): GEARS's
processed data sets, and ``norman2019_subset`` (real cells, from PerturBench).

Examples
--------
::

    python -m priorgnn.data list
    python -m priorgnn.data download norman
    python -m priorgnn.data download norman --from-file ~/Downloads/norman.zip
    python -m priorgnn.data download norman2019_subset
    python -m priorgnn.data download norman2019_subset --from-file ../shared/data/norman2019_subset/devel.h5ad
    python -m priorgnn.data download adamson --dest /data/perturbseq --keep-archive
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from priorgnn.fetch import run_cli
from priorgnn.cli import ArgumentParser, positive_float
from priorgnn.errors import PriorGNNError

PROG = "python -m priorgnn.data"

_EPILOG = """\
Where the data go: --dest DIR, else $PRIORGNN_DATA_DIR, else ~/.local/share/priorgnn/datasets.
Each data set NAME is unpacked to NAME/perturb_processed.h5ad there, with NAME.manifest.json
recording the URL, size, sha256 and date of what was fetched. norman2019_subset is saved as
norman2019_subset/devel.h5ad (sha256 verified) with its licence notice LICENSE-perturbench.txt.

Checksums: where no checksum is known in advance, the first download records the archive's sha256 in
the manifest and later downloads into the same folder are verified against it.

If the host refuses (HTTP 403 or a web page in place of the file), open the URL in a browser, save
the archive as DIR/NAME.zip (or the h5ad as DIR/NAME/perturb_processed.h5ad) and run the download
command again, or pass the saved file with --from-file PATH.
"""


def _add_debug(parser: argparse.ArgumentParser, top: bool) -> None:
    parser.add_argument(
        "--debug", action="store_true", default=False if top else argparse.SUPPRESS,
        help="show the full traceback and debug messages on errors",
    )


def build_parser() -> argparse.ArgumentParser:
    from priorgnn.data.download import DATASETS, DATAVERSE_DOI

    parser = ArgumentParser(
        prog=PROG,
        description=(
            "List and download GEARS's processed Perturb-seq data sets (Harvard Dataverse, "
            f"doi:{DATAVERSE_DOI}) and norman2019_subset (real Norman 2019 cells from PerturBench). "
            "Nothing in priorgnn downloads implicitly: this is the command."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_debug(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="show the known data sets and which are present",
                            description="Show the known data sets and whether each is present.")
    p_list.add_argument("--dest", metavar="DIR", type=Path,
                        help="data folder (default: $PRIORGNN_DATA_DIR or ~/.local/share/priorgnn/datasets)")
    _add_debug(p_list, top=False)

    p_dl = sub.add_parser(
        "download", help="download, verify and unpack a data set",
        description="Download, verify (size, sha256) and unpack a data set; an interrupted download "
                    "is resumed by running the command again.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_dl.add_argument("name", choices=list(DATASETS), metavar="NAME",
                      help=f"the data set: {', '.join(DATASETS)}")
    p_dl.add_argument("--dest", metavar="DIR", type=Path,
                      help="data folder (default: $PRIORGNN_DATA_DIR or ~/.local/share/priorgnn/datasets)")
    p_dl.add_argument("--force", action="store_true",
                      help="fetch again from scratch even if the data set is present")
    p_dl.add_argument("--from-file", metavar="PATH", type=Path,
                      help="use an archive (.zip) or perturb_processed.h5ad already downloaded by hand")
    p_dl.add_argument("--url", help="download from this URL instead (a mirror)")
    p_dl.add_argument("--licence-url", metavar="URL",
                      help="for a data set with a licence notice (norman2019_subset): fetch the notice "
                           "from this URL instead (a mirror)")
    p_dl.add_argument("--keep-archive", action="store_true",
                      help="keep NAME.zip after unpacking (deleted by default)")
    p_dl.add_argument("--timeout", type=positive_float, default=60.0, metavar="SECONDS",
                      help="network timeout per connection and read (default: 60)")
    p_dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_debug(p_dl, top=False)
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    from priorgnn.data.download import DATASETS, DATAVERSE_DOI, data_root, dataset_manifest, dataset_path

    root = data_root(args.dest)
    print(f"Data sets in {root} (GEARS's from Harvard Dataverse doi:{DATAVERSE_DOI} unless noted):")
    width = max(len(n) for n in DATASETS)
    print(f"  {'name':<{width}}  present  checksum  description")
    for name, record in DATASETS.items():
        present = dataset_path(name, root).is_file()
        if record.sha256:
            checksum = "registry"
        else:
            try:
                checksum = "recorded" if dataset_manifest(name, root)["files"] else "-"
            except PriorGNNError:
                checksum = "damaged"
        origin = "" if record.archive else f"; from {record.source}"
        print(f"  {name:<{width}}  {'yes' if present else 'no':<7}  {checksum:<8}  "
              f"{record.description} ({record.reference}{origin})")
    print(
        "\nchecksum: 'registry' = known in advance and verified on download; 'recorded' = recorded in "
        "NAME.manifest.json by the first download, later downloads are verified against it.\n"
        f"Fetch one with: {PROG} download NAME"
    )
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from priorgnn.data.download import (
        DATASETS,
        archive_path,
        data_root,
        dataset_manifest,
        dataset_path,
        download_dataset,
        manifest_path,
    )

    name = args.name
    root = data_root(args.dest)
    present = dataset_path(name, root).is_file()
    h5ad = download_dataset(
        name, args.dest, force=args.force, url=args.url, from_file=args.from_file,
        keep_archive=args.keep_archive, progress=False if args.no_progress else None,
        timeout=args.timeout, licence_url=args.licence_url,
    )
    if present and not args.force and args.from_file is None:
        print(f"{name} is already present at {h5ad}; nothing to do (--force fetches it again).")
        return 0
    files = dataset_manifest(name, root)["files"]
    archive = files.get(archive_path(name, root).name)
    record = DATASETS[name]
    print(f"{name} is ready: {h5ad}")
    if not record.archive:
        entry = files.get(f"{name}/{record.file}", {})
        print(f"  sha256 {entry.get('sha256')} ({entry.get('size')} bytes): verified against the registry")
        if record.licence_file:
            print(f"  licence notice ({record.source}): {h5ad.parent / record.licence_file}; keep it "
                  "with any copy of the data")
    if archive is not None:
        if DATASETS[name].sha256:
            note = "verified against the registry"
        elif "verified" in archive.get("checksum", ""):
            note = "verified against the checksum recorded by an earlier download"
        else:
            note = ("no checksum was known in advance: recorded now, and later downloads into this "
                    "folder are verified against it")
        print(f"  archive sha256 {archive['sha256']} ({archive['size']} bytes): {note}")
    print(f"  provenance: {manifest_path(name, root)}")
    if record.load_hint:
        data = name if args.dest is None else str(h5ad)
        print(f"  train on it with: python train.py --data {data} {record.load_hint}")
        if args.dest is not None:
            print(f"  (or set PRIORGNN_DATA_DIR={root} and use --data {name})")
    elif args.dest is None:
        print(f"  load it with: priorgnn.data.load_dataset({name!r})")
    else:
        print(f"  load it with: priorgnn.data.load_dataset({str(h5ad)!r}) "
              f"(or set PRIORGNN_DATA_DIR={root} and use {name!r})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m priorgnn.data``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = {"list": _cmd_list, "download": _cmd_download}[args.command]
    return run_cli(func, args, loggers=("priorgnn",), prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
