"""The one place where the project fetches files over the network, and only when a user asks.

Nothing here runs at import time. The data set and Gene Ontology download commands
(``python -m priorgnn.data download``, ``python -m knowledge download-go``) call :func:`download`,
which

* streams to ``DEST.part`` and, when that file is already there from an interrupted run, resumes
  with an HTTP ``Range`` request (a server that ignores the range and answers 200 is handled by
  starting over; a 416 answer either confirms that the partial file is complete or starts over);
* retries a dropped connection or a server error a bounded number of times, each read under a
  timeout, and keeps the partial file for the next run when it gives up;
* verifies the size and sha256 when they are known, deleting the file on a mismatch;
* recognises a host that refuses (HTTP 401/403/429, or an HTML page served in place of the file)
  and raises :class:`~priorgnn.errors.DownloadError` naming the manual route: the exact URL to open in
  a browser and the exact path to save the file at;
* renames the verified file into place atomically, so ``DEST`` is either absent or complete.

The standard library's ``urllib`` is used (proxies from ``http_proxy``/``https_proxy``/``no_proxy`` are
honoured). Provenance is kept in small manifest JSON files beside the downloads
(:func:`update_manifest`): URL, size, sha256 and date of each file.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import os
import re
import shutil
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from priorgnn import __version__
from priorgnn.io import read_json, sha256_file, write_json
from priorgnn.errors import DownloadError, PriorGNNError

log = logging.getLogger(__name__)

__all__ = [
    "USER_AGENT",
    "DownloadResult",
    "download",
    "looks_like_html",
    "read_manifest",
    "update_manifest",
    "manifest_entry",
    "safe_extract_zip",
    "utc_now",
    "cli_logging",
    "run_cli",
]

USER_AGENT = f"priorgnn/{__version__} (explicit data download; Python urllib)"

#: HTTP statuses meaning "the host will not give this file to a script", with what they mean.
_REFUSED = {
    401: "asks for a login (HTTP 401 Unauthorized)",
    403: "refused access (HTTP 403 Forbidden)",
    429: "refused further requests for now (HTTP 429 Too Many Requests)",
}
#: Statuses worth another attempt: the server or a proxy had a passing problem.
_TRANSIENT = {408, 500, 502, 503, 504}
_MANIFEST_FORMAT = 1


class _Transient(Exception):
    """An attempt failed in a way another attempt may fix (dropped connection, server error)."""


class _Restart(Exception):
    """The partial file cannot be continued (it was deleted); start again from the first byte."""


@dataclass(frozen=True)
class DownloadResult:
    """A file fetched by :func:`download`.

    Attributes
    ----------
    url
        The URL asked for (before any redirect).
    path
        Where the verified file now is.
    size
        Its size in bytes.
    sha256
        Its sha256 (hex).
    downloaded_at
        UTC date and time the download completed (ISO 8601).
    resumed
        Whether an earlier partial download was continued.
    verified
        Whether the sha256 was checked against a known value (rather than recorded for the first time).
    """

    url: str
    path: Path
    size: int
    sha256: str
    downloaded_at: str
    resumed: bool
    verified: bool

    def manifest_entry(self) -> dict[str, Any]:
        """The record kept for this file in a manifest (see :func:`update_manifest`)."""
        return manifest_entry(
            self.path, url=self.url, sha256=self.sha256, size=self.size, date=self.downloaded_at
        )


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def looks_like_html(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a body or file) is the start of an HTML page."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def _default_manual(url: str, dest: Path) -> str:
    return f"download {url} in a browser and save the file as {dest}, then run the command again"


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` into (start, end, total)."""
    if not value:
        return None, None, None
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value)
    if not m:
        return None, None, None
    start, end, total = m.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _refused_error(url: str, what: str, manual: str) -> DownloadError:
    return DownloadError(
        f"{_host(url)} {what} for {url}. Some hosts (Harvard Dataverse among them) block scripted "
        f"downloads from time to time. Manual route: {manual}."
    )


def _attempt(
    url: str,
    part: Path,
    *,
    display: str,
    expected_size: int | None,
    timeout: float,
    chunk_size: int,
    progress: bool | None,
    allow_html: bool,
    manual: str,
) -> tuple[int | None, bool]:
    """One HTTP request continuing ``part``; returns (total size if the server said, resumed?).

    Raises :class:`_Transient` when a further attempt may succeed, :class:`_Restart` when the partial
    file was discarded, :class:`DownloadError` when nothing will help.
    """
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        log.info("%s is larger than the expected %d bytes; starting over", part.name, expected_size)
        _unlink(part)
        offset = 0
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        # A fresh opener per request, so proxy settings are read from the environment as it is now.
        response = urllib.request.build_opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            _, _, total = _content_range(exc.headers.get("Content-Range"))
            if total is not None and total == offset:
                log.info("%s already holds the whole file (%d bytes)", part.name, offset)
                return total, True
            log.info("the server cannot continue %s at byte %d; starting over", part.name, offset)
            _unlink(part)
            raise _Restart("the partial file did not match the server's file") from None
        if exc.code in _REFUSED:
            raise _refused_error(url, _REFUSED[exc.code], manual) from None
        if exc.code in (404, 410):
            raise DownloadError(
                f"{_host(url)} has no file at {url} (HTTP {exc.code}). The address may have changed: "
                "check it (or pass a mirror's URL). Manual route: " + manual + "."
            ) from None
        if exc.code in _TRANSIENT:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(
            f"{_host(url)} answered HTTP {exc.code} ({exc.reason}) for {url}. Manual route: {manual}."
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, ConnectionError)) or "timed out" in str(reason):
            raise _Transient(f"no answer from {_host(url)} ({reason})") from None
        raise DownloadError(
            f"cannot reach {_host(url)} for {url} ({reason}). Check the network connection and any "
            f"proxy settings (http_proxy/https_proxy), then run the command again; or {manual}."
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from None

    with response:
        status = response.status
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        length = _int_header(response.headers.get("Content-Length"))
        resumed = False
        if status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                log.info("the server answered a different range than asked for; starting over")
                _unlink(part)
                raise _Restart("the server answered a different byte range")
            resumed = offset > 0
            mode = "ab"
        elif status == 200:
            if offset:
                log.info("the server does not support resuming; downloading %s from the start", display)
            offset, total, mode = 0, length, "wb"
        else:
            raise DownloadError(
                f"{_host(url)} answered HTTP {status} for {url}, expected the file. Manual route: "
                f"{manual}."
            )
        if not allow_html and content_type in ("text/html", "application/xhtml+xml"):
            raise _refused_error(url, "served a web page (HTML) instead of the file", manual)
        end = offset + length if length is not None else None

        try:
            first = response.read(chunk_size)
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"the connection broke ({type(exc).__name__}: {exc})") from None
        if not allow_html and offset == 0 and looks_like_html(first[:512]):
            raise _refused_error(url, "served a web page (HTML) instead of the file", manual)

        written = offset
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=display, disable=None if progress is None else not progress, leave=False,
        )
        try:
            with open(part, mode) as fh:
                chunk = first
                while chunk:
                    fh.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
                    try:
                        chunk = response.read(chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(
                            f"the connection broke after {written} bytes ({type(exc).__name__}: {exc})"
                        ) from None
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            bar.close()
        if end is not None and written < end:
            raise _Transient(f"the connection closed after {written} of {end} bytes")
        return total, resumed


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    manual: str | None = None,
    validate: Callable[[Path], None] | None = None,
    timeout: float = 60.0,
    max_attempts: int = 3,
    retry_wait: float = 2.0,
    progress: bool | None = None,
    chunk_size: int = 1 << 20,
    allow_html: bool = False,
    manifest: str | os.PathLike | None = None,
    manifest_extra: dict[str, Any] | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming, verifying and renaming into place atomically.

    Parameters
    ----------
    url
        An ``http://`` or ``https://`` URL (redirects are followed).
    dest
        The final path. The download goes to ``dest`` + ``.part`` first; an existing ``.part`` is
        continued. An existing ``dest`` is replaced once the new file is verified.
    sha256, size
        Known checksum and size of the file, verified when given. On a mismatch the partial file is
        deleted and :class:`~priorgnn.errors.DownloadError` names both values.
    manual
        The manual route, for error messages when the host refuses (what to fetch in a browser and
        where to put it). By default: fetch ``url`` and save it as ``dest``.
    validate
        Called with the complete, verified ``.part`` file before it is renamed into place; it raises
        :class:`~priorgnn.errors.DownloadError` if the content is unusable (the file is then deleted).
    timeout
        Seconds to wait for the connection and for each read.
    max_attempts
        Attempts in total when the connection drops or the server has a passing error; after the
        last one the partial file is kept and the next call resumes it.
    retry_wait
        Seconds before the second attempt (doubled for each further one).
    progress
        Show a progress bar: ``True``, ``False``, or ``None`` for only on a terminal.
    chunk_size
        Bytes read at a time.
    allow_html
        Accept an HTML answer (by default an HTML page is taken as the host refusing).
    manifest
        A manifest JSON to record the file in (URL, size, sha256, date; see :func:`update_manifest`),
        under the file's name, once it is in place.
    manifest_extra
        More fields for that record (read after ``validate`` has run, so it may fill them in).

    Returns
    -------
    DownloadResult
        Path, size, sha256 and date of the file.

    Raises
    ------
    DownloadError
        The host refused or is unreachable, the file does not match its checksum or size, the
        connection kept dropping, or ``validate`` rejected the content.
    """
    dest = Path(dest)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url!r} is not an http(s) URL; give the full address, e.g. https://...")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    sha256 = sha256.lower() if sha256 else None
    manual = manual or _default_manual(url, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    was_partial = part.exists() and part.stat().st_size > 0
    log.info("downloading %s to %s%s", url, dest, " (resuming)" if was_partial else "")

    resumed = False
    total: int | None = None
    attempt, restarted = 1, False
    while True:
        try:
            total, resumed_now = _attempt(
                url, part, display=dest.name, expected_size=size, timeout=timeout,
                chunk_size=chunk_size, progress=progress, allow_html=allow_html, manual=manual,
            )
            resumed = resumed or resumed_now
            break
        except _Restart as exc:
            if restarted:  # a fresh start is asked for once; twice means the server is inconsistent
                raise DownloadError(
                    f"{_host(url)} gives inconsistent answers for {url} ({exc}). Try again later; "
                    f"or {manual}."
                ) from None
            restarted = True
        except _Transient as exc:
            have = part.stat().st_size if part.exists() else 0
            if attempt >= max_attempts:
                kept = (
                    f"{have} bytes are kept in {part}, and running the command again resumes from there"
                    if have else "nothing was kept"
                )
                raise DownloadError(
                    f"the download of {url} failed after {max_attempts} attempt(s): {exc}. {kept}. "
                    f"Check the network connection and run the command again; or {manual}."
                ) from None
            wait = retry_wait * 2 ** (attempt - 1)
            log.warning("attempt %d of %d failed (%s); trying again in %.0f s, continuing at byte %d",
                        attempt, max_attempts, exc, wait, have)
            resumed = resumed or have > 0
            attempt += 1
            time.sleep(wait)

    actual = part.stat().st_size
    for expected, source in ((size, "the expected size"), (total, "the size the server announced")):
        if expected is not None and actual != expected:
            _unlink(part)
            raise DownloadError(
                f"the file downloaded from {url} has {actual} bytes, but {source} is {expected}. "
                "The partial file was deleted; run the command again. If this happens again, the "
                f"file on the server has changed or is damaged; {manual}."
            )
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        _unlink(part)
        raise DownloadError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}. The file was "
            "deleted. Run the command again; if the mismatch persists, the file on the server differs "
            "from the one recorded (a new release or a damaged copy): check the source before "
            "trusting it."
        )
    if validate is not None:
        try:
            validate(part)
        except BaseException:
            _unlink(part)
            raise
    os.replace(part, dest)
    result = DownloadResult(
        url=url, path=dest, size=actual, sha256=digest, downloaded_at=utc_now(), resumed=resumed,
        verified=sha256 is not None,
    )
    log.info("saved %s (%d bytes, sha256 %s%s)", dest, actual, digest,
             ", verified" if result.verified else "")
    if manifest is not None:
        update_manifest(manifest, {dest.name: {**result.manifest_entry(), **(manifest_extra or {})}})
    return result


# --------------------------------------------------------------------------------------------- manifest


def manifest_entry(
    path: str | os.PathLike,
    *,
    url: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    date: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A manifest record for ``path``; checksum and size are computed when not given."""
    path = Path(path)
    return {
        "url": url,
        "size": path.stat().st_size if size is None else size,
        "sha256": sha256_file(path) if sha256 is None else sha256,
        "date": date or utc_now(),
        **extra,
    }


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read a manifest; an absent file gives an empty one (``{"format": 1, "files": {}}``)."""
    path = Path(path)
    if not path.exists():
        return {"format": _MANIFEST_FORMAT, "files": {}}
    try:
        data = read_json(path)
    except PriorGNNError as exc:
        raise DownloadError(
            f"{exc} It records the checksums of the files beside it; delete it to record them anew."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise DownloadError(
            f"{path} is not a download manifest (no 'files' table). Delete it to record the "
            "checksums anew."
        )
    return data


def update_manifest(
    path: str | os.PathLike, files: dict[str, dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    """Merge file records (keyed by file name) and top-level ``fields`` into a manifest, atomically.

    The manifest is a JSON file ``{"format": 1, "files": {NAME: {url, size, sha256, date, ...}},
    ...}`` kept beside the files it describes, as their provenance.
    """
    data = read_manifest(path)
    data["format"] = _MANIFEST_FORMAT
    data["files"].update(files or {})
    data.update(fields)
    write_json(path, data)
    return data


# ------------------------------------------------------------------------------------------------ unzip


def _member_problem(name: str, mode: int) -> str | None:
    if "\x00" in name:
        return "a NUL character in its name"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        return "an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "a '..' component that leads outside the destination"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return None


def safe_extract_zip(
    archive: str | os.PathLike, dest: str | os.PathLike, *, skip_prefixes: tuple[str, ...] = ("__MACOSX/",)
) -> list[Path]:
    """Extract a zip archive into ``dest``, refusing members that would land outside it.

    Every member is checked before anything is written: an absolute path, a ``..`` component, a
    symbolic link or a path resolving outside ``dest`` ("zip slip") makes the whole archive refused.
    The free disk space is checked against the unpacked size.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    DownloadError
        The archive is unreadable, unsafe or too large for the disk.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(
            f"{archive} is not a readable zip archive ({exc}); it may be truncated. Delete it and "
            "download it again."
        ) from None
    written: list[Path] = []
    with zf:
        members = [m for m in zf.infolist() if not m.filename.startswith(skip_prefixes)]
        targets = []
        for m in members:
            problem = _member_problem(m.filename, m.external_attr >> 16)
            target = (root / m.filename.replace("\\", "/")).resolve()
            if problem is None and target != root and root not in target.parents:
                problem = "a path that resolves outside the destination"
            if problem:
                raise DownloadError(
                    f"{archive} holds the member {m.filename!r} with {problem}; the archive is refused "
                    "and nothing was extracted. Get the archive from its original source."
                )
            targets.append(target)
        needed = sum(m.file_size for m in members)
        free = shutil.disk_usage(root).free
        if needed > free:
            raise DownloadError(
                f"unpacking {archive.name} needs {needed / 1e9:.1f} GB but {root} has "
                f"{free / 1e9:.1f} GB free. Free some space or choose another destination."
            )
        try:
            for m, target in zip(members, targets, strict=True):
                if m.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                written.append(target)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DownloadError(
                f"{archive} is damaged ({type(exc).__name__}: {exc}). Delete it and download it again."
            ) from None
    return written


# ------------------------------------------------------------------------------------ command lines


@contextlib.contextmanager
def cli_logging(names: Sequence[str], level: int = logging.INFO) -> Iterator[None]:
    """Send the named loggers' records, as plain lines, while a command runs: progress (below
    WARNING) to stdout, warnings to stderr, so that a failed command's stderr is its one error line."""
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    handlers = (out, err)
    for h in handlers:
        h.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger(n) for n in names]
    old = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        for h in handlers:
            lg.addHandler(h)
        lg.setLevel(level)
        lg.propagate = False  # the lines are printed here, not a second time by a root handler
    try:
        yield
    finally:
        for lg, (lvl, prop) in zip(loggers, old, strict=True):
            for h in handlers:
                lg.removeHandler(h)
            lg.setLevel(lvl)
            lg.propagate = prop


def run_cli(func, args: argparse.Namespace, loggers: Sequence[str], prog: str | None = None) -> int:
    """Run ``func(args)`` through the project's shared error handling
    (:func:`priorgnn.cli.run_main`): a user error is one line on stderr and exit status 2 (the
    traceback only with ``--debug``); Ctrl-C is one line saying the download resumes (exit 130)."""
    from priorgnn.cli import run_main

    debug = bool(getattr(args, "debug", False))
    with cli_logging(loggers, logging.DEBUG if debug else logging.INFO):
        return run_main(lambda: int(func(args) or 0), debug, prog=prog,
                        interrupted="interrupted; run the command again to resume the download.")
