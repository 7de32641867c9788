"""One file's bytes into a partial file: HTTP with resume and retries, and the checks on them.

An HTML page where a data file was expected, a file without a checksum that does not start
with its format's signature, or a checksum mismatch end that URL (:class:`_UrlFailed`);
transient failures (:class:`_Transient`) are retried with exponential backoff and a
``Range`` request that continues the partial file.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from cnnpipe.data.md5sums import file_md5
from cnnpipe.data.mirrors import _MIRRORS_HINT, _USER_AGENT, _one_line
from cnnpipe.fileio import atomic_file, no_space_as_error

_CHUNK = 1 << 16
_SNIFF = 512
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)

Log = Callable[[str], None]

# Looked up at call time so tests can replace it.
_sleep = time.sleep


class _Transient(Exception):
    """A failure worth retrying the same URL for (the partial file is kept)."""


class _UrlFailed(Exception):
    """A failure that ends this URL; the message is the user-facing line."""

    def __init__(self, message: str, *, specific: bool = False) -> None:
        super().__init__(message)
        # Specific failures (HTML page, checksum, missing mirror file) say more than a 404
        # from a fallback host, so they win when every URL fails.
        self.specific = specific


def _progress(name: str, total: int | None, initial: int = 0) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
    )


def _looks_like_html(first_bytes: bytes) -> bool:
    head = first_bytes.lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _html_error(label: str, url: str) -> _UrlFailed:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if "google" in host:
        why = "Google Drive answers large downloads with a quota or confirmation page"
    else:
        why = "the server answered with an error, login or landing page"
    return _UrlFailed(
        f"{label}: {url} returned an HTML page instead of the file ({why}); download it in "
        f"a browser, put it at <mirror>/{label} and set data.mirror ({_MIRRORS_HINT})",
        specific=True,
    )


# What a file with no checksum must start with, by the end of its name: (endings, what it is,
# test of its first bytes). A name with none of these endings is not checked.
_SIGNATURES = (
    ((".zip",), "a zip archive", lambda head: head.startswith((b"PK\x03\x04", b"PK\x05\x06"))),
    ((".gz", ".tgz"), "a gzip file", lambda head: head.startswith(b"\x1f\x8b")),
    ((".tar",), "a tar archive", lambda head: head[257:262] == b"ustar"),
)
SIGNATURE_BYTES = 262  # enough for every test above


def _signature_error(label: str, url: str, head: bytes, content_type: str = "") -> _UrlFailed | None:
    """The failure for a download whose first bytes are not what its name says; None if they are."""
    name = label.lower()
    for endings, what, matches in _SIGNATURES:
        if name.endswith(endings):
            if matches(head):
                return None
            sent = f"Content-Type {content_type}, " if content_type else ""
            sent += f"first bytes {head[:32]!r}" if head else "an empty body"
            return _UrlFailed(
                f"{label}: {url} sent something that is not {what} ({sent}); nothing was saved — "
                f"with no published checksum only the format can be checked: download it in a "
                f"browser, put it at <mirror>/{label} and set data.mirror ({_MIRRORS_HINT})",
                specific=True,
            )
    return None


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(SIGNATURE_BYTES)


def _mismatch_error(label: str, url: str, got: str, md5: str, origin: str) -> _UrlFailed:
    return _UrlFailed(
        f"{label}: MD5 mismatch from {url} (got {got}, expected {md5}, the {origin} "
        "checksum); the download is corrupt or not the upstream file — check the mirror "
        "or try again",
        specific=True,
    )


def _place(part: Path, dest: Path) -> None:
    """Move the verified ``part`` onto ``dest`` atomically, across filesystems too."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(part, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with atomic_file(dest) as tmp:
            shutil.copyfile(part, tmp)
        part.unlink()


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(first byte, total size)`` from a Content-Range header; None where unknown."""
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return first, total


def _content_length(headers: http.client.HTTPMessage) -> int | None:
    value = headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _open(url: str, offset: int, timeout: float, label: str) -> http.client.HTTPResponse:
    """Send the request, turning failures into :class:`_Transient` or :class:`_UrlFailed`."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        request = urllib.request.Request(url, headers=headers)
        return urllib.request.build_opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise
    except ValueError as exc:
        raise _UrlFailed(f"{label}: {url} is not a usable URL ({_one_line(exc)})") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise _UrlFailed(
                f"{label}: {url} has a rejected TLS certificate ({_one_line(exc.reason)})"
            ) from None
        raise _Transient(f"cannot connect ({_one_line(exc.reason)})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"connection failed ({_one_line(exc) or type(exc).__name__})") from None


def _range_refused(exc: urllib.error.HTTPError, part: Path, offset: int, md5: str | None) -> bool:
    """After a 416: True if ``part`` already holds the whole file; else discard it."""
    _, total = _content_range(exc.headers.get("Content-Range"))
    complete = file_md5(part) == md5 if md5 is not None else total == offset
    if not complete:
        part.unlink(missing_ok=True)
    return complete


def _http_error(
    exc: urllib.error.HTTPError, label: str, url: str, part: Path, offset: int, md5: str | None
) -> None:
    """Classify an HTTP error status; returns only when a 416 shows ``part`` is complete."""
    if exc.code == 416 and offset:
        if _range_refused(exc, part, offset, md5):
            return
        raise _Transient("server refused to resume the partial file; restarting from zero")
    if exc.code >= 500 or exc.code in (408, 429):
        raise _Transient(f"HTTP {exc.code} {_one_line(exc.reason)}")
    raise _UrlFailed(f"{label}: {url} answered HTTP {exc.code} {_one_line(exc.reason)}")


def _read(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"connection lost ({_one_line(exc) or type(exc).__name__})") from None


def _stream(
    response: http.client.HTTPResponse, part: Path, offset: int, label: str, url: str, sniff: bool
) -> None:
    """Append (206) or write from zero (200) the response body into ``part``.

    With ``sniff`` (a file without a checksum) a body that does not start with its format's
    signature fails before anything is written.
    """
    headers = response.headers
    length = _content_length(headers)
    if response.status == 206:
        first, total = _content_range(headers.get("Content-Range"))
        if first != offset:
            part.unlink(missing_ok=True)
            raise _Transient(f"server sent bytes from {first}, not {offset}; restarting")
        if total is None and length is not None:
            total = offset + length
    else:
        offset, total = 0, length

    html_expected = part.name.removesuffix(".part").lower().endswith((".html", ".htm"))
    content_type = headers.get_content_type() if headers.get("Content-Type") else ""
    if content_type == "text/html" and not html_expected:
        raise _html_error(label, url)

    chunk = _read(response)
    if offset == 0 and not html_expected and _looks_like_html(chunk[:_SNIFF]):
        raise _html_error(label, url)
    if offset == 0 and sniff:
        failure = _signature_error(label, url, chunk[:SIGNATURE_BYTES], content_type)
        if failure is not None:
            raise failure

    written = offset
    with (
        no_space_as_error(part, total),
        part.open("ab" if offset else "wb") as out,
        _progress(part.name, total, offset) as bar,
    ):
        while chunk:
            out.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
            chunk = _read(response)
    if total is not None and written < total:
        raise _Transient(f"connection closed after {written} of {total} bytes")


def _attempt(url: str, part: Path, label: str, md5: str | None, timeout: float) -> None:
    """One request for ``url``: continue ``part`` from its current size to the end."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout, label)
    except urllib.error.HTTPError as exc:
        _http_error(exc, label, url, part, offset, md5)
        return
    with response:
        _stream(response, part, offset, label, url, sniff=md5 is None)


def _advice(part: Path) -> str:
    if part.is_file() and part.stat().st_size:
        return f"the partial file {part} is kept, run again to resume"
    return "check the network and the URL, or try again later"


def _fetch_http(
    url: str,
    part: Path,
    label: str,
    md5: str | None,
    *,
    retries: int,
    backoff: float,
    timeout: float,
    log: Log,
) -> None:
    """Bring ``part`` to the complete body of ``url``, retrying transient failures."""
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _attempt(url, part, label, md5, timeout)
            return
        except _Transient as exc:
            if attempt == retries:
                raise _UrlFailed(
                    f"{label}: {url} failed after {retries + 1} attempts ({exc}); {_advice(part)}"
                ) from None
            delay = backoff * 2**attempt
            log(f"{label}: {exc} from {url}; retry {attempt + 1}/{retries} in {delay:g}s")
            _sleep(delay)


def _from_http(url: str, dest: Path, md5: str | None, part: Path, label: str, origin: str, **retry) -> None:
    _fetch_http(url, part, label, md5, **retry)
    if md5 is not None:
        got = file_md5(part)
        if got != md5:
            part.unlink(missing_ok=True)
            raise _mismatch_error(label, url, got, md5, origin)
    else:  # a resumed download was not sniffed from its start
        failure = _signature_error(label, url, _head(part))
        if failure is not None:
            part.unlink(missing_ok=True)
            raise failure
    _place(part, dest)
