"""The explicit download commands, against a local HTTP server (fully offline).

The server (``http.server`` on 127.0.0.1, in a thread) serves what each test registers and can
simulate the failures seen in the wild: a dropped connection, a host that refuses (403), an HTML page
in place of the file, a server that ignores ``Range``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from priorgnn.fetch import download, looks_like_html, read_manifest, safe_extract_zip
from priorgnn.errors import DownloadError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "download"
NORMAN_PATH = "/api/access/datafile/6154020"


# -- a local HTTP server -------------------------------------------------------------------------------
@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    ranges: bool = True  # honour Range requests
    drops: int = 0  # how many responses to cut short
    drop_after: int = 0  # bytes sent before the connection is dropped


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add(self, path: str, body: bytes, **kw) -> str:
        self.routes[path] = Route(body, **kw)
        return self.base + path

    def hits(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, dict(self.headers.items())))
        route = state.routes.get(self.path)
        if route is None:
            return self._send(404, b"<html><body>Not found</body></html>", "text/html")
        if route.status != 200:
            page = f"<!DOCTYPE html><html><body>Error {route.status}</body></html>".encode()
            return self._send(route.status, page, "text/html")
        body, status, headers = route.body, 200, {}
        rng = self.headers.get("Range")
        if rng and route.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
            status, headers = 206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            body = body[start:]
        if route.drops > 0:
            route.drops -= 1
            self._send(status, body, route.content_type, headers, cut=route.drop_after)
            return
        self._send(status, body, route.content_type, headers)

    def _send(self, status, body, ctype, headers=None, cut=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def _httpd():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(_httpd, monkeypatch) -> Server:
    """The local server, with no routes registered, and no proxy in the way."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    _httpd.state = Server(_httpd.state.base)
    return _httpd.state


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _payload(n: int = 50_000) -> bytes:
    return np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes()


FAST = dict(progress=False, retry_wait=0.0, timeout=10.0)


# -- the generic downloader ---------------------------------------------------------------------------
def test_download_verifies_size_and_checksum(server, tmp_path):
    body = _payload()
    url = server.add("/f.bin", body)
    dest = tmp_path / "sub" / "f.bin"
    res = download(url, dest, sha256=_sha(body), size=len(body), **FAST)
    assert dest.read_bytes() == body
    assert (res.sha256, res.size, res.verified, res.resumed) == (_sha(body), len(body), True, False)
    assert not dest.with_name("f.bin.part").exists()
    assert server.hits("/f.bin")[0]["User-Agent"].startswith("priorgnn/")
    entry = res.manifest_entry()
    assert entry["url"] == url and entry["sha256"] == _sha(body) and entry["size"] == len(body)


def test_download_records_a_manifest(server, tmp_path):
    body = _payload(1_000)
    url = server.add("/f.bin", body)
    manifest = tmp_path / "m.json"
    download(url, tmp_path / "f.bin", manifest=manifest, manifest_extra={"note": "x"}, **FAST)
    download(server.add("/g.bin", b"g"), tmp_path / "g.bin", manifest=manifest, **FAST)
    files = read_manifest(manifest)["files"]
    assert files["f.bin"]["sha256"] == _sha(body) and files["f.bin"]["url"] == url
    assert files["f.bin"]["size"] == 1_000 and files["f.bin"]["note"] == "x" and files["f.bin"]["date"]
    assert files["g.bin"]["sha256"] == _sha(b"g")


def test_dropped_connection_resumes_within_one_call(server, tmp_path):
    body = _payload()
    url = server.add("/f.bin", body, drops=1, drop_after=12_345)
    res = download(url, tmp_path / "f.bin", sha256=_sha(body), max_attempts=3, **FAST)
    assert (tmp_path / "f.bin").read_bytes() == body and res.resumed and res.verified
    ranges = [h.get("Range") for h in server.hits("/f.bin")]
    assert ranges == [None, "bytes=12345-"]


def test_interrupted_download_resumes_on_the_next_call(server, tmp_path):
    body = _payload()
    url = server.add("/f.bin", body, drops=1, drop_after=20_000)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="resumes from there") as err:
        download(url, dest, sha256=_sha(body), max_attempts=1, **FAST)
    assert "20000 bytes are kept" in str(err.value)
    assert not dest.exists() and dest.with_name("f.bin.part").stat().st_size == 20_000
    res = download(url, dest, sha256=_sha(body), max_attempts=1, **FAST)
    assert dest.read_bytes() == body and res.resumed
    assert server.hits("/f.bin")[-1]["Range"] == "bytes=20000-"


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = _payload()
    url = server.add("/f.bin", body, ranges=False)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"x" * 777)  # stale partial file
    res = download(url, dest, sha256=_sha(body), **FAST)
    assert dest.read_bytes() == body and res.verified
    assert server.hits("/f.bin")[0]["Range"] == "bytes=777-"


def test_416_with_a_complete_partial_file_finishes(server, tmp_path):
    body = _payload()
    url = server.add("/f.bin", body)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(body)
    res = download(url, dest, sha256=_sha(body), **FAST)
    assert dest.read_bytes() == body and res.verified


def test_416_with_an_overlong_partial_file_starts_over(server, tmp_path):
    body = _payload(5_000)
    url = server.add("/f.bin", body)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"y" * 9_000)
    download(url, dest, sha256=_sha(body), max_attempts=1, **FAST)  # a restart is not a retry
    assert dest.read_bytes() == body
    assert [h.get("Range") for h in server.hits("/f.bin")] == ["bytes=9000-", None]


@pytest.mark.parametrize("status, words", [(403, "403 Forbidden"), (401, "login"), (429, "Too Many")])
def test_refusal_names_the_manual_route(server, tmp_path, status, words):
    url = server.add("/f.bin", b"", status=status)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as err:
        download(url, dest, **FAST)
    msg = str(err.value)
    assert words in msg and f"download {url} in a browser" in msg and str(dest) in msg
    assert not dest.exists() and not dest.with_name("f.bin.part").exists()


@pytest.mark.parametrize(
    "ctype, page",
    [("text/html; charset=utf-8", b"<p>Please sign in</p>"),
     ("application/octet-stream", b"\n  <!DOCTYPE html><html><body>Access denied</body></html>"),
     ("application/zip", b"<html><head><title>Rate limited</title></head></html>")],
)
def test_html_page_in_place_of_the_file_is_refused(server, tmp_path, ctype, page):
    url = server.add("/f.zip", page, content_type=ctype)
    dest = tmp_path / "f.zip"
    with pytest.raises(DownloadError, match="web page") as err:
        download(url, dest, **FAST)
    assert "in a browser" in str(err.value) and str(dest) in str(err.value)
    assert not dest.exists() and not dest.with_name("f.zip.part").exists()


def test_checksum_mismatch_deletes_the_file_and_names_both_checksums(server, tmp_path):
    body = _payload()
    url = server.add("/f.bin", body)
    dest = tmp_path / "f.bin"
    wrong = "ab" * 32
    with pytest.raises(DownloadError) as err:
        download(url, dest, sha256=wrong, **FAST)
    assert wrong in str(err.value) and _sha(body) in str(err.value)
    assert not dest.exists() and not dest.with_name("f.bin.part").exists()


def test_size_mismatch_leaves_no_file(server, tmp_path):
    body = _payload(4_000)
    url = server.add("/f.bin", body)
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"previous version")
    with pytest.raises(DownloadError, match="4000 bytes, but the expected size is 5000"):
        download(url, dest, size=5_000, **FAST)
    assert dest.read_bytes() == b"previous version"  # the old file is not replaced by a bad one
    assert not dest.with_name("f.bin.part").exists()


def test_validate_hook_rejects_content_before_it_is_put_in_place(server, tmp_path):
    url = server.add("/f.txt", b"not what we want")

    def validate(path: Path) -> None:
        raise DownloadError("bad content")

    with pytest.raises(DownloadError, match="bad content"):
        download(url, tmp_path / "f.txt", validate=validate, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_and_unreachable_host(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.base + "/nothing", tmp_path / "f", **FAST)
    url = server.add("/busy", b"", status=503)
    with pytest.raises(DownloadError, match="after 3 attempt.*HTTP 503"):
        download(url, tmp_path / "f", max_attempts=3, **FAST)
    assert len(server.hits("/busy")) == 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="after 2 attempt") as err:
        download(f"http://127.0.0.1:{port}/f", tmp_path / "f", max_attempts=2, **FAST)
    assert "network connection" in str(err.value)
    with pytest.raises(DownloadError, match="not an http"):
        download("file:///etc/hosts", tmp_path / "f", **FAST)


def test_looks_like_html():
    assert looks_like_html(b"\xef\xbb\xbf <!doctype HTML>")
    assert not looks_like_html(b"PK\x03\x04") and not looks_like_html(b"format-version: 1.2")


def _zip_bytes(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize(
    "members, symlink, problem",
    [({"ok/a.txt": b"a", "../evil.txt": b"x"}, None, "'..' component"),
     ({"ok/a.txt": b"a", "ok/../../evil.txt": b"x"}, None, "'..' component"),
     ({"ok/a.txt": b"a", "/abs/evil.txt": b"x"}, None, "absolute path"),
     ({"ok/a.txt": b"a"}, "ok/link", "symbolic link")],
)
def test_safe_extract_refuses_members_escaping_the_destination(tmp_path, members, symlink, problem):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes(members, symlink))
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match=problem):
        safe_extract_zip(archive, out)
    assert list(out.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_safe_extract_rejects_a_truncated_archive(tmp_path):
    data = _zip_bytes({"ok/a.txt": _payload(3_000)})
    archive = tmp_path / "a.zip"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DownloadError, match="not a readable zip"):
        safe_extract_zip(archive, tmp_path / "out")


# -- the data sets --------------------------------------------------------------------------------------
def _gears_h5ad(path: Path) -> Path:
    """A tiny AnnData laid out like GEARS's perturb_processed.h5ad."""
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(8)]
    conds = ["ctrl"] * 6 + ["G1+ctrl"] * 3 + ["G2+ctrl"] * 3 + ["G1+G2"] * 3
    X = np.log1p(rng.poisson(3.0, (len(conds), len(genes))) * 1.37).astype(np.float32)
    obs = pd.DataFrame(
        {"condition": conds, "cell_type": "K562", "control": [int(c == "ctrl") for c in conds]},
        index=[f"c{i}" for i in range(len(conds))],
    )
    adata = ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame({"gene_name": genes}, index=genes))
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def h5ad_bytes(tmp_path_factory) -> bytes:
    return _gears_h5ad(tmp_path_factory.mktemp("h5ad") / "p.h5ad").read_bytes()


def _norman_zip(h5ad: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    return _zip_bytes({"norman/perturb_processed.h5ad": h5ad, "norman/go.csv": b"a,b\n", **(extra or {})})


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "datasets"
    monkeypatch.setenv("PRIORGNN_DATA_DIR", str(root))
    return root


def test_dataset_path_defaults(monkeypatch, tmp_path):
    from priorgnn.data.download import DATASETS, dataset_path

    assert set(DATASETS) == {"norman", "adamson", "dixit", "replogle_k562_essential",
                             "replogle_rpe1_essential", "norman2019_subset"}
    assert all(r.url.startswith("https://dataverse.harvard.edu/api/access/datafile/")
               for r in DATASETS.values() if r.archive)
    sub = DATASETS["norman2019_subset"]
    assert sub.url == ("https://raw.githubusercontent.com/altoslabs/perturbench/d357dfae/"
                       "src/perturbench/data/resources/devel.h5ad")
    assert sub.licence_url == "https://raw.githubusercontent.com/altoslabs/perturbench/d357dfae/LICENSE"
    monkeypatch.delenv("PRIORGNN_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dataset_path("adamson") == (
        tmp_path / ".local/share/priorgnn/datasets/adamson/perturb_processed.h5ad"
    )
    monkeypatch.setenv("PRIORGNN_DATA_DIR", str(tmp_path / "d"))
    assert dataset_path("norman") == tmp_path / "d/norman/perturb_processed.h5ad"
    assert dataset_path("norman", root=tmp_path / "x") == tmp_path / "x/norman/perturb_processed.h5ad"


def test_download_unpack_and_load(server, data_dir, h5ad_bytes):
    from priorgnn.data import load_dataset
    from priorgnn.data.download import dataset_manifest, dataset_path, download_dataset

    archive = _norman_zip(h5ad_bytes)
    url = server.add(NORMAN_PATH, archive, content_type="application/zip")
    path = download_dataset("norman", url=url, **FAST)
    assert path == dataset_path("norman") == data_dir / "norman" / "perturb_processed.h5ad"
    assert (data_dir / "norman" / "go.csv").exists()
    assert not (data_dir / "norman.zip").exists()  # deleted after unpacking by default
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no staging left over
    data = load_dataset("norman")
    assert data.adata.n_obs == 15 and set(data.adata.obs["condition"]) >= {"ctrl", "G1+G2"}

    files = dataset_manifest("norman")["files"]
    assert files["norman.zip"]["sha256"] == _sha(archive)
    assert files["norman.zip"]["url"] == url and files["norman.zip"]["size"] == len(archive)
    assert "recorded" in files["norman.zip"]["checksum"]
    assert files["norman/perturb_processed.h5ad"]["sha256"] == _sha(h5ad_bytes)

    n = len(server.requests)  # already present: nothing fetched
    assert download_dataset("norman", url=url, **FAST) == path and len(server.requests) == n


def test_recorded_checksum_verifies_a_later_download(server, data_dir, h5ad_bytes):
    from priorgnn.data.download import dataset_manifest, download_dataset

    url = server.add(NORMAN_PATH, _norman_zip(h5ad_bytes))
    path = download_dataset("norman", url=url, keep_archive=True, **FAST)
    assert (data_dir / "norman.zip").exists()
    path.unlink()  # the kept archive is unpacked again, and keeps its provenance
    download_dataset("norman", url=url, **FAST)
    assert dataset_manifest("norman")["files"]["norman.zip"]["url"] == url
    assert path.exists() and not (data_dir / "norman.zip").exists()
    download_dataset("norman", url=url, force=True, **FAST)  # same file: verified
    assert "verified" in dataset_manifest("norman")["files"]["norman.zip"]["checksum"]

    server.add(NORMAN_PATH, _norman_zip(h5ad_bytes, {"norman/extra.txt": b"changed"}))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_dataset("norman", url=url, force=True, **FAST)
    assert path.read_bytes() == h5ad_bytes  # the data in place are untouched


def test_registry_checksum_is_verified(server, data_dir, h5ad_bytes, monkeypatch):
    from priorgnn.data import download as dl

    archive = _norman_zip(h5ad_bytes)
    url = server.add(NORMAN_PATH, archive)
    monkeypatch.setitem(dl.DATASETS, "norman", replace(dl.DATASETS["norman"], sha256="0" * 64))
    with pytest.raises(DownloadError, match="0{64}"):
        dl.download_dataset("norman", url=url, **FAST)
    assert not dl.dataset_path("norman").exists()
    monkeypatch.setitem(dl.DATASETS, "norman", replace(dl.DATASETS["norman"], sha256=_sha(archive),
                                                       size=len(archive)))
    dl.download_dataset("norman", url=url, **FAST)
    assert "registry" in dl.dataset_manifest("norman")["files"]["norman.zip"]["checksum"]


def test_dataset_download_resumes_after_interruption(server, data_dir, h5ad_bytes):
    from priorgnn.data import load_dataset
    from priorgnn.data.download import download_dataset

    archive = _norman_zip(h5ad_bytes)
    url = server.add(NORMAN_PATH, archive, drops=1, drop_after=len(archive) // 3)
    with pytest.raises(DownloadError, match="resumes"):
        download_dataset("norman", url=url, max_attempts=1, **FAST)
    assert (data_dir / "norman.zip.part").stat().st_size == len(archive) // 3
    download_dataset("norman", url=url, max_attempts=1, **FAST)
    assert server.hits(NORMAN_PATH)[-1]["Range"] == f"bytes={len(archive) // 3}-"
    assert load_dataset("norman").adata.n_obs == 15


def test_dataset_archive_with_zip_slip_is_refused(server, data_dir, h5ad_bytes):
    from priorgnn.data.download import download_dataset

    url = server.add(NORMAN_PATH, _norman_zip(h5ad_bytes, {"norman/../../escaped.txt": b"x"}))
    with pytest.raises(DownloadError, match="refused and nothing was extracted"):
        download_dataset("norman", url=url, **FAST)
    assert not (data_dir.parent / "escaped.txt").exists() and not (data_dir / "escaped.txt").exists()
    assert not (data_dir / "norman").exists()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".norman.unpack")]


def test_archive_without_a_top_folder_is_accepted(server, data_dir, h5ad_bytes):
    from priorgnn.data.download import dataset_path, download_dataset

    url = server.add(NORMAN_PATH, _zip_bytes({"perturb_processed.h5ad": h5ad_bytes, "x.csv": b""}))
    assert download_dataset("norman", url=url, **FAST) == dataset_path("norman")
    assert sorted(p.name for p in (data_dir / "norman").iterdir()) == ["perturb_processed.h5ad", "x.csv"]


def test_archive_without_the_h5ad_is_refused(server, data_dir):
    from priorgnn.data.download import download_dataset

    url = server.add(NORMAN_PATH, _zip_bytes({"norman/readme.txt": b"hi"}))
    with pytest.raises(DownloadError, match="holds no perturb_processed.h5ad"):
        download_dataset("norman", url=url, **FAST)
    assert not (data_dir / "norman").exists()


@pytest.mark.parametrize("refusal", ["403", "html"])
def test_refusal_names_the_manual_route_and_a_hand_placed_archive_is_used(
    server, data_dir, h5ad_bytes, refusal
):
    from priorgnn.data.download import archive_path, dataset_path, download_dataset

    if refusal == "403":
        url = server.add(NORMAN_PATH, b"", status=403)
    else:
        url = server.add(NORMAN_PATH, b"<!DOCTYPE html><html>Sign in</html>", content_type="text/html")
    with pytest.raises(DownloadError) as err:
        download_dataset("norman", url=url, **FAST)
    msg = str(err.value)
    assert f"download {url} in a browser and place the archive at {archive_path('norman')}" in msg
    assert f"or place perturb_processed.h5ad at {dataset_path('norman')}" in msg
    assert "--from-file" in msg
    assert not dataset_path("norman").exists()

    # the manual route: the archive saved by hand where the message said
    archive_path("norman").write_bytes(_norman_zip(h5ad_bytes))
    n = len(server.requests)
    assert download_dataset("norman", url=url, **FAST).read_bytes() == h5ad_bytes
    assert len(server.requests) == n  # nothing fetched


def test_from_file_accepts_an_archive_or_an_h5ad(data_dir, tmp_path, h5ad_bytes):
    from priorgnn.data import load_dataset
    from priorgnn.data.download import dataset_manifest, dataset_path, download_dataset

    zpath = tmp_path / "Downloads" / "norman (1).zip"
    zpath.parent.mkdir()
    zpath.write_bytes(_norman_zip(h5ad_bytes))
    assert download_dataset("norman", from_file=zpath) == dataset_path("norman")
    assert zpath.exists()  # the user's file is left alone
    assert dataset_manifest("norman")["files"]["norman.zip"]["sha256"] == _sha(zpath.read_bytes())
    assert load_dataset("norman").adata.n_obs == 15

    hpath = tmp_path / "Downloads" / "perturb_processed.h5ad"
    hpath.write_bytes(h5ad_bytes)
    assert download_dataset("adamson", from_file=hpath).read_bytes() == h5ad_bytes
    assert load_dataset("adamson").adata.n_vars == 8

    page = tmp_path / "Downloads" / "6154417"
    page.write_bytes(b"<!DOCTYPE html><html>403 Forbidden</html>")
    with pytest.raises(DownloadError, match="web page"):
        download_dataset("dixit", from_file=page)
    junk = tmp_path / "Downloads" / "junk.h5ad"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(DownloadError, match="cannot be opened"):
        download_dataset("dixit", from_file=junk)
    assert not dataset_path("dixit").exists()


# -- the data CLI ---------------------------------------------------------------------------------------
def test_data_cli_list_download_and_errors(server, tmp_path, h5ad_bytes, capsys):
    from priorgnn.data.__main__ import main

    dest = tmp_path / "d"
    assert main(["list", "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("norman", "adamson", "dixit", "replogle_rpe1_essential"))
    assert "norman                   no" in out

    url = server.add(NORMAN_PATH, _norman_zip(h5ad_bytes))
    assert main(["download", "norman", "--dest", str(dest), "--url", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "norman is ready" in out and "later downloads into this folder are verified" in out
    assert main(["download", "norman", "--dest", str(dest), "--url", url]) == 0
    assert "already present" in capsys.readouterr().out
    assert main(["list", "--dest", str(dest)]) == 0
    assert "norman                   yes      recorded" in capsys.readouterr().out

    bad = server.add("/refused", b"", status=403)
    assert main(["download", "adamson", "--dest", str(dest), "--url", bad, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "in a browser" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # one line, as every command line of the project
    with pytest.raises(DownloadError):  # --debug lets the error through, with its traceback
        main(["--debug", "download", "adamson", "--dest", str(dest), "--url", bad])

    page = tmp_path / "page.html"
    page.write_text("<html>no</html>")
    assert main(["download", "dixit", "--dest", str(dest), "--from-file", str(page)]) == 2
    zpath = tmp_path / "dixit.zip"
    zpath.write_bytes(_zip_bytes({"dixit/perturb_processed.h5ad": h5ad_bytes}))
    assert main(["download", "dixit", "--dest", str(dest), "--from-file", str(zpath)]) == 0
    assert (dest / "dixit" / "perturb_processed.h5ad").read_bytes() == h5ad_bytes


def test_data_cli_subprocess_exit_code_and_no_traceback(server, tmp_path):
    url = server.add("/refused", b"", status=403)
    env = {**os.environ, "no_proxy": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "priorgnn.data", "download", "norman", "--dest", str(tmp_path),
         "--url", url, "--no-progress"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert "403 Forbidden" in proc.stderr and "in a browser" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "priorgnn.data", "download", "nosuch"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


# -- Gene Ontology files ------------------------------------------------------------------------------
def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture
def go_server(server):
    obo = (FIXTURES / "go-basic-mini.obo").read_bytes()
    gaf = _gz((FIXTURES / "goa_human-mini.gaf").read_bytes())
    server.add("/obo", obo, content_type="text/plain")
    server.add("/gaf", gaf, content_type="application/gzip")
    return server, obo, gaf


def test_go_download_records_checksums(go_server, tmp_path):
    from knowledge.download import download_go

    server, obo, gaf = go_server
    files = download_go(tmp_path / "go", url_obo=server.base + "/obo", url_gaf=server.base + "/gaf",
                        progress=False)
    assert files.obo.read_bytes() == obo and files.gaf.read_bytes() == gaf
    assert files.data_version == "releases/2024-01-17"
    assert files.downloaded == ("go-basic.obo", "goa_human.gaf.gz")
    manifest = read_manifest(files.manifest)
    assert manifest["go_data_version"] == "releases/2024-01-17"
    o, g = manifest["files"]["go-basic.obo"], manifest["files"]["goa_human.gaf.gz"]
    assert (o["sha256"], o["size"], o["url"]) == (_sha(obo), len(obo), server.base + "/obo")
    assert (g["sha256"], g["size"]) == (_sha(gaf), len(gaf))
    assert o["date"] and o["header"]["data-version"] == "releases/2024-01-17"
    assert g["header"] == {"gaf-version": "2.2", "date-generated": "2024-01-17T02:39",
                           "generated-by": "GOC"}

    n = len(server.requests)  # present: not fetched again
    again = download_go(tmp_path / "go", url_obo=server.base + "/obo", url_gaf=server.base + "/gaf")
    assert again.downloaded == () and len(server.requests) == n


def test_go_files_placed_by_hand_are_checked_and_recorded(go_server, tmp_path):
    from knowledge.download import download_go

    server, obo, gaf = go_server
    dest = tmp_path / "go"
    dest.mkdir()
    (dest / "go-basic.obo").write_bytes(obo)
    files = download_go(dest, url_obo=server.base + "/refused", url_gaf=server.base + "/gaf",
                        progress=False)
    assert files.downloaded == ("goa_human.gaf.gz",)
    entry = read_manifest(files.manifest)["files"]["go-basic.obo"]
    assert entry["sha256"] == _sha(obo) and entry["source"] == "placed by hand"


@pytest.mark.parametrize(
    "which, body, ctype, match",
    [("obo", b"<!DOCTYPE html><html>blocked</html>", "text/plain", "web page"),
     ("obo", b"id: GO:1\nname: x\n", "text/plain", "not an OBO ontology file"),
     ("gaf", b"not gzip at all", "application/gzip", "not a complete gzip"),
     ("gaf", _gz(b"gene\tGO:1\n"), "application/gzip", "not a GAF"),
     ("gaf", _gz(b"!gaf-version: 2.2\n" + b"x\ty\n" * 5000)[:-12], "application/gzip",
      "not a complete gzip")],
)
def test_go_download_rejects_bad_content(go_server, tmp_path, which, body, ctype, match):
    from knowledge.download import download_go

    server, _, _ = go_server
    server.add(f"/bad-{which}", body, content_type=ctype)
    urls = {"url_obo": server.base + "/obo", "url_gaf": server.base + "/gaf"}
    urls[f"url_{which}"] = server.base + f"/bad-{which}"
    dest = tmp_path / "go"
    with pytest.raises(DownloadError, match=match):
        download_go(dest, progress=False, **urls)
    bad_name = "go-basic.obo" if which == "obo" else "goa_human.gaf.gz"
    assert not (dest / bad_name).exists() and not (dest / f"{bad_name}.part").exists()
    assert bad_name not in read_manifest(dest / "go.manifest.json")["files"]


def test_go_cli(go_server, tmp_path, capsys):
    from knowledge.download import main

    server, obo, _ = go_server
    dest = tmp_path / "go"
    argv = ["--dest", str(dest), "--url-obo", server.base + "/obo", "--url-gaf", server.base + "/gaf",
            "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _sha(obo) in out and "releases/2024-01-17" in out and "go.manifest.json" in out
    argv[argv.index("--url-obo") + 1] = server.base + "/missing"
    assert main(argv + ["--force"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "Traceback" not in err
    assert (dest / "go-basic.obo").read_bytes() == obo  # the present file survives a failed refresh
    with pytest.raises(SystemExit) as exc:
        main([], prog="python -m knowledge download-go")
    assert exc.value.code == 2 and "python -m knowledge download-go" in capsys.readouterr().err


def test_go_cli_subprocess(go_server, tmp_path):
    server, obo, _ = go_server
    env = {**os.environ, "no_proxy": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "knowledge.download", "--dest", str(tmp_path / "go"),
         "--url-obo", server.base + "/obo", "--url-gaf", server.base + "/missing", "--no-progress"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "HTTP 404" in proc.stderr
    assert (tmp_path / "go" / "go-basic.obo").read_bytes() == obo


# -- no network at import -----------------------------------------------------------------------------
def test_importing_the_packages_opens_no_socket():
    code = """
import socket
def refuse(*args, **kwargs):
    raise RuntimeError("network access during import")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.socket.sendto = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import priorgnn, priorgnn.data, priorgnn.models, knowledge
import priorgnn.fetch, priorgnn.data.download, priorgnn.data.__main__, knowledge.download
print("imported")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout


# -- no network at run time ---------------------------------------------------------------------------
# Installed before anything is imported: every way to open a connection or resolve a name is
# recorded (and refused), and the count is printed at exit. Code that catches the refusal and
# carries on is still counted.
NETWORK_GUARD = """
import atexit, socket, sys
_attempts = []
def _refuse(*args, **kwargs):
    _attempts.append(repr(args[1:2] or args)[:80])
    raise OSError("network access refused by the test")
for _obj, _name in [(socket.socket, "connect"), (socket.socket, "connect_ex"), (socket.socket, "sendto"),
                    (socket, "create_connection"), (socket, "getaddrinfo"), (socket, "gethostbyname"),
                    (socket, "gethostbyname_ex")]:
    setattr(_obj, _name, _refuse)
atexit.register(lambda: print(f"NETWORK-ATTEMPTS {len(_attempts)} {_attempts[:3]}", file=sys.stderr))
"""


def _guarded(body: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRIORGNN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", NETWORK_GUARD + body], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)


def test_the_network_guard_catches_a_swallowed_connection(tmp_path):
    """Control: the guard below would see network use even when the code catches the error."""
    proc = _guarded(
        "import urllib.request\n"
        "try:\n    urllib.request.urlopen('http://192.0.2.1/x', timeout=1)\nexcept Exception:\n    pass\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NETWORK-ATTEMPTS 1" in proc.stderr


@pytest.mark.parametrize("model", [
    "additive",
    pytest.param("priorgnn", marks=pytest.mark.slow),  # trains, with GO and co-expression priors
])
def test_train_predict_and_evaluate_use_no_network(tmp_path, model):
    """The main job's steps (load, priors, split, train, predict, evaluate) never touch the network."""
    from tests._synth import synth_lognorm
    from robustness_cases import _go_files

    data = tmp_path / "data.h5ad"
    synth_lognorm().write_h5ad(data)
    obo, gaf = _go_files(tmp_path)
    run, report = tmp_path / "run", tmp_path / "report"
    priors = ["--go-obo", str(obo), "--go-gaf", str(gaf), "--epochs", "1"] if model == "priorgnn" else []
    body = f"""
import train, evaluate
assert train.main(["--data", {str(data)!r}, "--model", {model!r}, "--split", "combo", "--out", {str(run)!r},
                   "--no-progress", "-q", *{priors!r}]) == 0
assert train.main(["predict", {str(run)!r}, "--conditions", "G1+G2", "-q"]) == 0
assert evaluate.main([{str(run)!r}, "--baselines", "no_change,additive", "--out", {str(report)!r}, "--quiet",
                      "--n-boot", "1000", "--metrics", "mse,pearson_delta", "--no-figures", "--no-ceiling"]) == 0
print("done")
"""
    proc = _guarded(body, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done" in proc.stdout
    assert "NETWORK-ATTEMPTS 0 []" in proc.stderr, proc.stderr[-2000:]
    assert (report / "report.md").exists()


# -- norman2019_subset: one .h5ad with a known checksum and a licence notice ------------------------
SHARED_SUBSET = REPO.parent / "shared" / "data" / "norman2019_subset"
SUBSET_SHA256 = "220998f5630c813228c8661c86dd52244b9ac87127511289af90e0d900d8429b"  # ../shared/data/README.md
needs_subset = pytest.mark.skipif(not (SHARED_SUBSET / "devel.h5ad").is_file(),
                                  reason="the shared copy of PerturBench's devel.h5ad is not beside the project")


@needs_subset
def test_subset_from_file_verifies_the_checksum_and_keeps_the_licence(tmp_path, capsys):
    from priorgnn.data.__main__ import main
    from priorgnn.data.download import dataset_path

    dest = tmp_path / "d"
    src = SHARED_SUBSET / "devel.h5ad"
    before = _sha(src.read_bytes())
    assert main(["download", "norman2019_subset", "--dest", str(dest), "--from-file", str(src)]) == 0
    out = capsys.readouterr().out
    h5ad = dest / "norman2019_subset" / "devel.h5ad"
    assert dataset_path("norman2019_subset", dest) == h5ad
    assert _sha(h5ad.read_bytes()) == SUBSET_SHA256 == before == _sha(src.read_bytes())  # source untouched
    licence = dest / "norman2019_subset" / "LICENSE-perturbench.txt"
    assert licence.read_bytes() == (SHARED_SUBSET / "LICENSE-perturbench.txt").read_bytes()
    assert SUBSET_SHA256 in out and "LICENSE-perturbench.txt" in out and "--data" in out
    files = read_manifest(dest / "norman2019_subset.manifest.json")["files"]
    assert files["norman2019_subset/devel.h5ad"]["sha256"] == SUBSET_SHA256
    assert files["norman2019_subset/devel.h5ad"]["checksum"] == "verified against the registry"
    assert files["norman2019_subset/LICENSE-perturbench.txt"]["sha256"] == _sha(licence.read_bytes())


def test_subset_from_file_refuses_another_file(tmp_path, h5ad_bytes, capsys):
    from priorgnn.data.__main__ import main

    other = tmp_path / "devel.h5ad"
    other.write_bytes(h5ad_bytes)  # an .h5ad, but not PerturBench's
    assert main(["download", "norman2019_subset", "--dest", str(tmp_path / "d"), "--from-file", str(other)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert SUBSET_SHA256 in err and _sha(h5ad_bytes) in err  # both checksums named
    assert not (tmp_path / "d" / "norman2019_subset" / "devel.h5ad").exists()


@pytest.fixture
def subset_record(monkeypatch, h5ad_bytes):
    """The registry's norman2019_subset record, pointed at a small local .h5ad (its checksum)."""
    from priorgnn.data import download as dl

    rec = replace(dl.DATASETS["norman2019_subset"], sha256=_sha(h5ad_bytes), size=len(h5ad_bytes))
    monkeypatch.setitem(dl.DATASETS, "norman2019_subset", rec)
    return rec


def test_subset_download_fetches_file_and_licence(server, tmp_path, h5ad_bytes, subset_record):
    from priorgnn.data.download import download_dataset

    notice = b"BSD 3-Clause License\n\nCopyright (c) 2024, Altos Labs\n"
    url = server.add("/devel.h5ad", h5ad_bytes)
    lic = server.add("/LICENSE", notice, content_type="text/plain")
    path = download_dataset("norman2019_subset", tmp_path, url=url, licence_url=lic, **FAST)
    assert path == tmp_path / "norman2019_subset" / "devel.h5ad" and path.read_bytes() == h5ad_bytes
    assert (path.parent / "LICENSE-perturbench.txt").read_bytes() == notice
    files = read_manifest(tmp_path / "norman2019_subset.manifest.json")["files"]
    assert files["norman2019_subset/devel.h5ad"]["url"] == url
    assert files["norman2019_subset/LICENSE-perturbench.txt"]["url"] == lic
    # present and verified: nothing fetched again
    n = len(server.hits("/devel.h5ad"))
    assert download_dataset("norman2019_subset", tmp_path, url=url, licence_url=lic, **FAST) == path
    assert len(server.hits("/devel.h5ad")) == n


def test_subset_download_checksum_mismatch_and_missing_licence(server, tmp_path, h5ad_bytes, subset_record):
    from priorgnn.data.download import PERTURBENCH_LICENCE, download_dataset

    bad = server.add("/other.h5ad", h5ad_bytes[:-1] + bytes([h5ad_bytes[-1] ^ 1]))  # same size, one bit off
    with pytest.raises(DownloadError, match="sha256"):
        download_dataset("norman2019_subset", tmp_path, url=bad, **FAST)
    assert not (tmp_path / "norman2019_subset" / "devel.h5ad").exists()
    # the licence URL answers 404: the notice kept with the package is written, not none at all
    url = server.add("/devel.h5ad", h5ad_bytes)
    download_dataset("norman2019_subset", tmp_path, url=url, licence_url=server.base + "/nolicence", **FAST)
    licence = tmp_path / "norman2019_subset" / "LICENSE-perturbench.txt"
    assert licence.read_text() == PERTURBENCH_LICENCE
    if (SHARED_SUBSET / "LICENSE-perturbench.txt").is_file():
        assert PERTURBENCH_LICENCE == (SHARED_SUBSET / "LICENSE-perturbench.txt").read_text()


@pytest.mark.parametrize("argv", [
    ["download"], ["download", "nosuch"], ["download", "norman", "--timeout", "-1"],
    ["download", "norman", "--timeout", "abc"], ["list", "--bogus"], ["bogus"], [],
    ["download", "norman2019_subset", "--url", "ftp://x", "--no-progress"],
])
def test_data_cli_errors_are_one_line(argv, tmp_path, capsys):
    from priorgnn.data.__main__ import main

    try:
        status = main(argv + (["--dest", str(tmp_path)] if argv[:1] == ["download"] and len(argv) > 1 else []))
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("python -m priorgnn.data")


@pytest.mark.parametrize("argv", [[], ["--dest"], ["--dest", "x", "--timeout", "0"], ["--bogus"],
                                  ["--dest", "{d}", "--url-obo", "ftp://x", "--url-gaf", "ftp://y"]])
def test_go_cli_errors_are_one_line(argv, tmp_path, capsys):
    from knowledge.cli import main

    argv = [a.replace("{d}", str(tmp_path / "go")) for a in argv]
    try:
        status = main(["download-go", *argv])
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("python -m knowledge download-go")
