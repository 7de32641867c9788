"""Tests for cnnpipe.data.fetch against a local HTTP server that misbehaves on demand."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import math
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from cnnpipe.data import http_transfer, sources
from cnnpipe.data.fetch import (
    download_file,
    fetch_dataset,
    fetch_local_set,
)
from cnnpipe.data.md5sums import MD5SUMS
from cnnpipe.data.mirrors import mirror_url, read_manifest
from cnnpipe.data.sources import DatasetSource, SourceFile
from cnnpipe.errors import DownloadError, ParamError
from tests.helpers.tmpfs import tree

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = bytes(range(256)) * 800  # 200 KiB, not text, not HTML
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


ZIP_PAYLOAD = _zip_bytes({"a/b.bin": PAYLOAD})  # for names without a checksum: a real zip
OTHER = b"\x89other file" * 1000
OTHER_MD5 = hashlib.md5(OTHER).hexdigest()

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


# ---------------------------------------------------------------------------- server


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server
        with state.lock:
            state.requests.append((self.path, self.headers.get("Range")))
            previous = sum(1 for p, _ in state.requests[:-1] if p == self.path)
        behaviours = state.routes.get(self.path)
        if behaviours is None:
            self.send_error(404)
            return
        behaviours[min(previous, len(behaviours) - 1)](self)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.routes: dict[str, list[Behaviour]] = {}
        self.requests: list[tuple[str, str | None]] = []

    def route(self, path: str, *behaviours: Behaviour) -> str:
        """Answer the n-th request for ``path`` with ``behaviours[n]`` (the last repeats)."""
        self.routes[path] = list(behaviours)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


def send(
    data: bytes, *, honour_range: bool = True, content_type: str = "application/octet-stream"
) -> Behaviour:
    """Serve ``data``; with ``honour_range`` answer ``Range: bytes=k-`` with a 206."""

    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        requested = handler.headers.get("Range")
        if honour_range and requested and requested.startswith("bytes="):
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
        else:
            handler.send_response(200)
            body = data
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


def drop_halfway(data: bytes) -> Behaviour:
    """Announce all of ``data``, send half, then close the connection."""

    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    return behaviour


def status(code: int) -> Behaviour:
    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_error(code)

    return behaviour


# ---------------------------------------------------------------------------- helpers


FAST = {"retries": 4, "backoff": 0.01, "timeout": 5.0}


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self)


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message
    assert "Traceback" not in message
    return message


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(destination directory, partial directory) on the same filesystem."""
    return tmp_path / "out" / "toy", tmp_path / "partial"


# ---------------------------------------------------------------------------- download_file


def test_dropped_connection_resumes_with_range(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", drop_halfway(PAYLOAD), send(PAYLOAD))
    log = Log()

    out = download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=log, **FAST)

    assert out.read_bytes() == PAYLOAD
    ranges = server.ranges("/f.bin")
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(PAYLOAD) // 2}-"
    assert len(ranges) == 2
    assert files_under(partial) == []  # the part was moved into place
    assert log.has("connection closed after")


def test_retries_on_503_then_succeeds(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", status(503), status(503), send(PAYLOAD))

    out = download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    assert out.read_bytes() == PAYLOAD
    assert len(server.ranges("/f.bin")) == 3


def test_gives_up_after_retries_and_keeps_the_part(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", drop_halfway(PAYLOAD), status(503))

    with pytest.raises(DownloadError) as exc:
        download_file(
            [url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(),
            retries=2, backoff=0.01, timeout=5.0,
        )  # fmt: skip

    message = one_line(exc)
    assert message.startswith("toy/f.bin: ")
    assert "HTTP 503" in message and "3 attempts" in message and "is kept" in message
    assert len(server.ranges("/f.bin")) == 3
    assert not (dest_dir / "f.bin").exists()
    assert (partial / "toy" / "f.bin.part").stat().st_size == len(PAYLOAD) // 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<p>Too many users have downloaded this file recently</p>", "text/html; charset=utf-8"),
        (b"\n  <HTML><body>Sign in</body></HTML>", "application/octet-stream"),
    ],
    ids=["content-type", "sniffed"],
)
def test_html_page_instead_of_file(server: _Server, dirs, body: bytes, content_type: str) -> None:
    dest_dir, partial = dirs
    url = server.route("/img.zip", send(body, content_type=content_type))

    with pytest.raises(DownloadError) as exc:
        download_file([url], dest_dir / "img.zip", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    message = one_line(exc)
    assert "HTML page" in message
    assert "toy/img.zip" in message and "data.mirror" in message
    assert len(server.ranges("/img.zip")) == 1  # not retried
    assert files_under(dest_dir) == []
    assert files_under(partial) == []


def test_html_file_is_not_mistaken_for_an_error_page(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    page = b"<!doctype html><html><body>the real file</body></html>"
    url = server.route("/index.html", send(page, content_type="text/html"))

    out = download_file([url], dest_dir / "index.html", None, partial_dir=partial, log=Log(), **FAST)

    assert out.read_bytes() == page


def test_wrong_bytes_fail_the_md5_check(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", send(OTHER))

    with pytest.raises(DownloadError) as exc:
        download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    message = one_line(exc)
    assert "MD5 mismatch" in message
    assert OTHER_MD5 in message and PAYLOAD_MD5 in message
    assert files_under(dest_dir) == []
    assert files_under(partial) == []  # a corrupt part is not kept for resuming


def test_server_ignoring_range_restarts_from_zero(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", drop_halfway(PAYLOAD), send(PAYLOAD, honour_range=False))

    out = download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    assert out.read_bytes() == PAYLOAD  # not the first half twice over
    assert server.ranges("/f.bin")[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_falls_back_to_the_next_url_after_404(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    good = server.route("/good/f.bin", send(PAYLOAD))
    missing = server.url("/gone/f.bin")
    log = Log()

    download_file([missing, good], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=log, **FAST)

    assert (dest_dir / "f.bin").read_bytes() == PAYLOAD
    assert len(server.ranges("/gone/f.bin")) == 1  # a 404 is not retried
    assert log.has("HTTP 404")


def test_all_urls_failing_reports_the_most_specific_error(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    html = server.route("/a.zip", send(b"<html>quota</html>", content_type="text/html"))
    missing = server.url("/b.zip")

    with pytest.raises(DownloadError) as exc:
        download_file(
            [html, missing], dest_dir / "a.zip", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST
        )

    message = one_line(exc)
    assert "HTML page" in message and "tried 2 URLs" in message


def test_missing_checksum_is_announced_and_not_verified(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.zip", send(ZIP_PAYLOAD))
    log = Log()

    out = download_file([url], dest_dir / "f.zip", None, partial_dir=partial, log=log, **FAST)

    assert out.read_bytes() == ZIP_PAYLOAD
    assert log.has("toy/f.zip: no published checksum; not verified — dvc.lock pins")


# ---------------------------------------------------------------------- format signatures


LANDING_PAGES = [
    (b"Sorry, this file is no longer hosted here. Visit our new site.", "text/plain"),
    (b'{"error": {"code": 403, "message": "quota exceeded"}}', "application/json"),
    (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "application/xml"),
    (b"\xef\xbb\xbf  \n<HTML><body>moved</body></HTML>", "application/octet-stream"),
    (b"", "application/octet-stream"),
]


@pytest.mark.parametrize(("body", "content_type"), LANDING_PAGES)
def test_a_landing_page_without_checksum_is_refused_and_nothing_saved(
    server: _Server, dirs, body: bytes, content_type: str
) -> None:
    dest_dir, partial = dirs
    url = server.route("/horse-or-human.zip", send(body, content_type=content_type))

    with pytest.raises(DownloadError) as exc:
        download_file([url], dest_dir / "horse-or-human.zip", None, partial_dir=partial, log=Log(), **FAST)

    message = one_line(exc)
    assert message.startswith(f"toy/horse-or-human.zip: {url} sent something that is not a zip archive (")
    assert f"Content-Type {content_type}, " in message
    assert " ".join(repr(body[:32]).split()) in message if body else "an empty body" in message
    assert "nothing was saved" in message and "data.mirror" in message
    assert files_under(dest_dir.parent) == [] and files_under(partial) == []  # nothing to pin


@pytest.mark.parametrize(
    ("name", "good", "what"),
    [
        ("a.zip", ZIP_PAYLOAD, "a zip archive"),
        ("empty.zip", _zip_bytes({}), "a zip archive"),  # PK\x05\x06: an empty archive is still one
        ("a.tar.gz", gzip.compress(PAYLOAD, mtime=0), "a gzip file"),
        ("a.tgz", gzip.compress(PAYLOAD, mtime=0), "a gzip file"),
        ("a.tar", None, "a tar archive"),
    ],
)
def test_downloads_without_checksum_must_start_with_their_signature(
    server: _Server, dirs, name: str, good: bytes | None, what: str
) -> None:
    dest_dir, partial = dirs
    if good is None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("x.bin")
            info.size = len(PAYLOAD)
            tar.addfile(info, io.BytesIO(PAYLOAD))
        good = buf.getvalue()
    ok = server.route(f"/ok/{name}", send(good))
    assert (
        download_file([ok], dest_dir / name, None, partial_dir=partial, log=Log(), **FAST).read_bytes()
        == good
    )

    bad = server.route(f"/bad/{name}", send(b"x" * 600))
    with pytest.raises(DownloadError) as exc:
        download_file([bad], dest_dir / f"bad-{name}", None, partial_dir=partial, log=Log(), **FAST)
    assert f"is not {what} (" in one_line(exc)
    assert not (dest_dir / f"bad-{name}").exists()


def test_a_resumed_download_is_checked_from_its_first_byte(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    page = b"Please log in to download this file. " * 20
    url = server.route("/f.zip", send(page))
    part = partial / "toy" / "f.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(page[:100])  # an earlier run stopped after the first bytes

    with pytest.raises(DownloadError, match=r"first bytes b'Please log in"):
        download_file([url], dest_dir / "f.zip", None, partial_dir=partial, log=Log(), **FAST)

    assert server.ranges("/f.zip") == ["bytes=100-"]
    assert files_under(partial) == [] and not (dest_dir / "f.zip").exists()


def test_a_mirror_file_without_checksum_is_checked_too(tmp_path) -> None:
    sea = tmp_path / "sea_mirror"
    (sea / "sea").mkdir(parents=True)
    (sea / "sea" / "sea_creatures.zip").write_bytes(b"<!-- saved from a browser -->\n<p>not found</p>")
    (tmp_path / "dest").mkdir()

    with pytest.raises(DownloadError) as exc:  # no MD5SUMS, and the sea set has no published checksum
        fetch_local_set("sea", tmp_path / "final/sea_creatures.zip", tmp_path / "dest", tmp_path / "final",
                        mirror=str(sea), log=Log())  # fmt: skip

    message = one_line(exc)
    assert "sea/sea_creatures.zip:" in message and "is not a zip archive (first bytes b'<!-- saved" in message
    assert list((tmp_path / "dest").iterdir()) == []


def test_part_from_an_earlier_run_is_resumed(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", send(PAYLOAD))
    part = partial / "toy" / "f.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:12345])

    download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    assert (dest_dir / "f.bin").read_bytes() == PAYLOAD
    assert server.ranges("/f.bin") == ["bytes=12345-"]
    assert not part.exists()


def test_complete_part_answered_with_416_is_verified_and_used(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", send(PAYLOAD))
    part = partial / "toy" / "f.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD)

    download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    assert (dest_dir / "f.bin").read_bytes() == PAYLOAD
    assert server.ranges("/f.bin") == [f"bytes={len(PAYLOAD)}-"]


def test_invalid_part_answered_with_416_restarts(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", send(PAYLOAD))
    part = partial / "toy" / "f.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(OTHER * 30)  # longer than the file: the server refuses the range

    download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    assert (dest_dir / "f.bin").read_bytes() == PAYLOAD
    assert server.ranges("/f.bin") == [f"bytes={len(OTHER) * 30}-", None]


def test_verified_file_already_in_place_is_not_downloaded(server: _Server, dirs) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", send(PAYLOAD))
    dest_dir.mkdir(parents=True)
    (dest_dir / "f.bin").write_bytes(PAYLOAD)
    log = Log()

    download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=log, **FAST)

    assert server.requests == []
    assert log.has("already present")


def test_part_on_another_filesystem_is_copied_into_place(server: _Server, dirs, monkeypatch) -> None:
    dest_dir, partial = dirs
    url = server.route("/f.bin", send(PAYLOAD))
    real_replace = http_transfer.os.replace

    def replace(src, dst):
        if str(src).endswith(".part"):
            raise OSError(http_transfer.errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(http_transfer.os, "replace", replace)

    download_file([url], dest_dir / "f.bin", PAYLOAD_MD5, partial_dir=partial, log=Log(), **FAST)

    assert (dest_dir / "f.bin").read_bytes() == PAYLOAD
    assert files_under(dest_dir) == [dest_dir / "f.bin"]
    assert files_under(partial) == []


# ---------------------------------------------------------------------------- mirrors


def test_mirror_url_layouts(tmp_path: Path) -> None:
    assert mirror_url("https://example.org/m/", "mnist", "a.gz") == "https://example.org/m/mnist/a.gz"
    assert mirror_url("file:///srv/m", "celeba", "x y.txt") == "file:///srv/m/celeba/x%20y.txt"
    assert mirror_url(str(tmp_path), "rps", "rps.zip") == str(tmp_path / "rps" / "rps.zip")


def test_read_manifest_parses_md5sum_format(tmp_path: Path) -> None:
    (tmp_path / MD5SUMS).write_text(
        "# generated by md5sum\n"
        "\n"
        f"{PAYLOAD_MD5}  toy/a.bin\n"
        f"{OTHER_MD5.upper()} *toy/b.bin\n"
        f"{PAYLOAD_MD5}  ./other/c.bin\n"
    )

    assert read_manifest(str(tmp_path)) == {
        "toy/a.bin": PAYLOAD_MD5,
        "toy/b.bin": OTHER_MD5,
        "other/c.bin": PAYLOAD_MD5,
    }
    assert read_manifest(str(tmp_path / "nowhere")) is None


def test_read_manifest_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / MD5SUMS).write_text("<html>\n<body>not found</body>\n")

    with pytest.raises(DownloadError) as exc:
        read_manifest(tmp_path.as_uri())

    assert "line 1" in one_line(exc)


def test_read_manifest_over_http(server: _Server) -> None:
    server.route("/m/MD5SUMS", send(f"{PAYLOAD_MD5}  toy/a.bin\n".encode()))

    assert read_manifest(server.url("/m")) == {"toy/a.bin": PAYLOAD_MD5}
    assert read_manifest(server.url("/empty/")) is None  # 404: no manifest


@pytest.fixture
def toy_source(server: _Server, monkeypatch: pytest.MonkeyPatch) -> DatasetSource:
    """A two-file dataset whose registry checksums are wrong, so only a manifest can pass.

    Its upstream URLs answer, so a mirror that failed to replace them would show up in
    ``server.requests``.
    """
    source = DatasetSource(
        "toy",
        "idx",
        (
            SourceFile("a.bin", (server.route("/upstream/a.bin", send(PAYLOAD)),), "0" * 32),
            SourceFile("b.bin", (server.route("/upstream/b.bin", send(OTHER)),), "0" * 32),
        ),
        "https://example.org/toy",
    )
    monkeypatch.setattr(sources, "SOURCES", {"toy": source})
    return source


def _manifest() -> str:
    return f"{PAYLOAD_MD5}  toy/a.bin\n{OTHER_MD5}  toy/b.bin\n"


def test_fetch_dataset_from_http_mirror_trusts_its_manifest(server: _Server, tmp_path, toy_source) -> None:
    server.route("/mirror/MD5SUMS", send(_manifest().encode()))
    server.route("/mirror/toy/a.bin", send(PAYLOAD))
    server.route("/mirror/toy/b.bin", send(OTHER))
    log = Log()

    paths = fetch_dataset(
        "toy", tmp_path / "raw", server.url("/mirror"), partial_dir=tmp_path / "p", log=log, **FAST
    )

    assert paths == [tmp_path / "raw" / "a.bin", tmp_path / "raw" / "b.bin"]
    assert paths[0].read_bytes() == PAYLOAD and paths[1].read_bytes() == OTHER
    trust = [line for line in log if "trusting the mirror's manifest" in line]
    assert trust == [f"toy: trusting the mirror's manifest {server.url('/mirror/MD5SUMS')} for checksums"]
    assert not any(path.startswith("/upstream/") for path, _ in server.requests)


def test_http_mirror_without_manifest_uses_registry_checksums(server: _Server, tmp_path, toy_source) -> None:
    server.route("/mirror/toy/a.bin", send(PAYLOAD))

    with pytest.raises(DownloadError) as exc:
        fetch_dataset(
            "toy", tmp_path / "raw", server.url("/mirror"), partial_dir=tmp_path / "p", log=Log(), **FAST
        )

    message = one_line(exc)
    assert message.startswith("toy/a.bin: MD5 mismatch") and "0" * 32 in message
    assert files_under(tmp_path / "raw") == []


@pytest.mark.parametrize("form", ["relative", "absolute", "file-url"])
def test_fetch_dataset_from_local_mirror(
    server: _Server, tmp_path, toy_source, monkeypatch, form: str
) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "a.bin").write_bytes(PAYLOAD)
    (mirror / "toy" / "b.bin").write_bytes(OTHER)
    (mirror / MD5SUMS).write_text(_manifest())
    monkeypatch.chdir(tmp_path)
    location = {"relative": "mirror", "absolute": str(mirror), "file-url": mirror.as_uri()}[form]
    log = Log()

    paths = fetch_dataset("toy", Path("raw"), location, partial_dir=Path("p"), log=log, **FAST)

    assert [p.read_bytes() for p in paths] == [PAYLOAD, OTHER]
    assert log.has("toy: trusting the mirror's manifest")
    assert files_under(tmp_path / "raw") == [tmp_path / "raw" / "a.bin", tmp_path / "raw" / "b.bin"]
    assert server.requests == []  # the mirror replaces the upstream URLs


def test_local_mirror_with_corrupt_file_leaves_nothing(tmp_path, toy_source) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "a.bin").write_bytes(OTHER)
    (mirror / MD5SUMS).write_text(_manifest())

    with pytest.raises(DownloadError) as exc:
        fetch_dataset("toy", tmp_path / "raw", str(mirror), log=Log(), **FAST)

    assert "MD5 mismatch" in one_line(exc)
    assert files_under(tmp_path / "raw") == []


def test_local_mirror_missing_file_names_the_path(tmp_path, toy_source) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "a.bin").write_bytes(PAYLOAD)
    (mirror / MD5SUMS).write_text(_manifest())

    with pytest.raises(DownloadError) as exc:
        fetch_dataset("toy", tmp_path / "raw", str(mirror), log=Log(), **FAST)

    message = one_line(exc)
    assert message.startswith(f"{mirror / 'toy' / 'b.bin'} does not exist")
    assert "<dataset>/<upstream name>" in message
    assert (tmp_path / "raw" / "a.bin").read_bytes() == PAYLOAD


def test_mirror_that_is_not_a_directory_is_a_param_error(tmp_path, toy_source) -> None:
    with pytest.raises(ParamError) as exc:
        fetch_dataset("toy", tmp_path / "raw", str(tmp_path / "nope"), log=Log(), **FAST)

    assert "data.mirror" in one_line(exc)


def test_fetch_dataset_upstream_warns_about_missing_checksums(server: _Server, tmp_path, monkeypatch) -> None:
    source = DatasetSource(
        "toy",
        "imagefolder",
        (
            SourceFile(
                "a.zip", (server.url("/gone/a.zip"), server.route("/up/a.zip", send(ZIP_PAYLOAD))), None
            ),
        ),
        "https://example.org/toy",
    )
    monkeypatch.setattr(sources, "SOURCES", {"toy": source})
    log = Log()

    paths = fetch_dataset("toy", tmp_path / "raw", partial_dir=tmp_path / "p", log=log, **FAST)

    assert paths[0].read_bytes() == ZIP_PAYLOAD
    assert "toy/a.zip: no published checksum; not verified — dvc.lock pins the downloaded file" in log
    assert not log.has("trusting")


# ---------------------------------------------------------------------------- local sets (sea)


def _sea_mirror(root: Path, payload: bytes, listed_md5: str) -> Path:
    mirror = root / "mirror"
    (mirror / "sea").mkdir(parents=True)
    (mirror / "sea" / "sea_creatures.zip").write_bytes(payload)
    (mirror / MD5SUMS).write_text(f"{listed_md5}  sea/sea_creatures.zip\n")
    return mirror


def test_local_set_default_path_comes_from_the_mirror_verified(tmp_path) -> None:
    mirror = _sea_mirror(tmp_path, PAYLOAD, PAYLOAD_MD5)
    final, dest = tmp_path / "data/raw/sea", tmp_path / "tmp"
    dest.mkdir()
    got = fetch_local_set(
        "sea", final / "sea_creatures.zip", dest, final, mirror=str(mirror), log=lambda _: None
    )
    assert got == final / "sea_creatures.zip" and (dest / "sea_creatures.zip").read_bytes() == PAYLOAD
    corrupt = _sea_mirror(tmp_path / "bad", OTHER, PAYLOAD_MD5)
    (tmp_path / "tmp2").mkdir()
    with pytest.raises(DownloadError, match=r"sea/sea_creatures\.zip"):
        fetch_local_set("sea", final / "sea_creatures.zip", tmp_path / "tmp2", final, mirror=str(corrupt))
    assert not list((tmp_path / "tmp2").iterdir())


def test_local_set_without_mirror_or_path_names_the_key(tmp_path) -> None:
    final = tmp_path / "data/raw/sea"
    with pytest.raises(ParamError) as no_mirror:
        fetch_local_set("sea", final / "sea_creatures.zip", tmp_path, final, mirror=None)
    message = str(no_mirror.value)
    assert message.startswith("datasets.sea.path: ") and "data.mirror" in message and "\n" not in message
    with pytest.raises(ParamError, match=r"^datasets\.sea\.path: /no/such\.zip does not exist; point it at"):
        fetch_local_set("sea", "/no/such.zip", tmp_path, final, mirror=str(tmp_path))


def test_local_set_users_own_copy_is_recorded_not_copied(tmp_path) -> None:
    own = tmp_path / "my_sea.zip"
    own.write_bytes(PAYLOAD)
    dest = tmp_path / "tmp"
    dest.mkdir()
    got = fetch_local_set("sea", own, dest, tmp_path / "data/raw/sea", mirror=None, log=lambda _: None)
    assert got == own and [p.name for p in dest.iterdir()] == ["source.txt"]
    assert (dest / "source.txt").read_text().strip() == str(own.resolve())


# ---------------------------------------------------------------------------- a full disk


def test_a_full_disk_while_downloading_is_one_line_naming_the_part_it_keeps(
    server: _Server, tmp_path, small_tmpfs
) -> None:
    payload = _zip_bytes({f"train/a/{i}.png": bytes(range(256)) * 400 for i in range(10)})  # ~1 MB
    for name in ("horse-or-human.zip", "validation-horse-or-human.zip"):
        server.route(f"/m/horse_or_human/{name}", send(payload))
    ws = small_tmpfs(tmp_path / "ws", "256k")
    (ws / "params.yaml").write_text(yaml.safe_dump({"data": {"mirror": server.url("/m")}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1", "NO_PROXY": "*"}

    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "download.py"), "horse_or_human"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    part = ".cache/downloads/horse_or_human/horse-or-human.zip.part"
    last = [line for line in re.split(r"[\r\n]", result.stderr) if line.strip()][-1]
    assert last == (
        f"error: no space left on {ws} writing {part} (needs ≈ {math.ceil(len(payload) / 1e5) / 10:.1f} MB); "
        "free space and rerun"
    ), output
    assert output.count("error:") == 1
    # Only the partial file the line names is left (a rerun resumes it); nothing under data/.
    assert tree(ws) == {"params.yaml", ".cache", ".cache/downloads", ".cache/downloads/horse_or_human", part}
