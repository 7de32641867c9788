"""Download the registry's files, resumably and verified, or copy them from a mirror.

Every file goes through the same steps: bytes are streamed into a partial file under
``partial_dir`` (outside the stage output, so an interrupted run resumes where it
stopped), the complete partial file is checked against its MD5, and only then is it
moved into place. Nothing partial ever exists at the destination.

Transient failures (HTTP 5xx and 429, refused or dropped connections, timeouts, a body
shorter than announced) are retried with exponential backoff and a ``Range`` request
that continues the partial file. An HTML page where a data file was expected (Google
Drive's quota and confirmation pages) or a checksum mismatch fails that URL at once,
and the next URL is tried. A file without a checksum must at least start with its format's
signature (``PK\x03\x04`` for a zip, ``\x1f\x8b`` for gzip, ``ustar`` at offset 257 for a
tar): a landing page of any shape fails the same way, and nothing of it is kept.
A full disk while writing the partial file is one line naming it (it is kept: the rerun
resumes once there is space).

A mirror (``data.mirror``) is a local directory, a ``file://`` URL or an http(s) base
URL holding ``<dataset>/<upstream file name>``; it replaces the registry's URLs. If it
has an ``MD5SUMS`` file in ``md5sum`` format, the checksums listed there are trusted.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from cnnpipe import __version__ as _pkg_version
from cnnpipe.data.md5sums import MD5SUMS, BadMd5Line, file_md5, parse_md5sums
from cnnpipe.data.sources import LOCAL_SETS, get_source
from cnnpipe.errors import DownloadError, ParamError
from cnnpipe.fileio import atomic_file, no_space_as_error

DEFAULT_PARTIAL_DIR = Path(".cache/downloads")

_USER_AGENT = f"cnnpipe/{_pkg_version} (Python-urllib; dataset download)"
_CHUNK = 1 << 16
_SNIFF = 512
_MIRRORS_HINT = 'see README, "Mirrors"'
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)

# Looked up at call time so tests can replace it.
_sleep = time.sleep

Log = Callable[[str], None]


class _Transient(Exception):
    """A failure worth retrying the same URL for (the partial file is kept)."""


class _UrlFailed(Exception):
    """A failure that ends this URL; the message is the user-facing line."""

    def __init__(self, message: str, *, specific: bool = False) -> None:
        super().__init__(message)
        # Specific failures (HTML page, checksum, missing mirror file) say more than a 404
        # from a fallback host, so they win when every URL fails.
        self.specific = specific


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------- mirrors


def _is_http(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https")


def _local_path(location: str) -> Path | None:
    """The filesystem path of a local path or ``file://`` URL; None for anything else."""
    parts = urllib.parse.urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if scheme == "" or len(scheme) == 1:  # a plain path, or a Windows drive letter
        return Path(location)
    return None


def mirror_url(mirror: str, dataset: str, filename: str) -> str:
    """Where ``mirror`` holds ``dataset``'s ``filename``.

    A local directory gives a path, a ``file://`` mirror a ``file://`` URL and an http(s)
    base ``<base>/<dataset>/<filename>``.
    """
    if _is_http(mirror) or mirror.lower().startswith("file:"):
        quoted = "/".join(urllib.parse.quote(p) for p in (dataset, filename))
        return f"{mirror.rstrip('/')}/{quoted}"
    return str(Path(mirror) / dataset / filename)


def _check_mirror(mirror: str) -> None:
    if _is_http(mirror):
        return
    local = _local_path(mirror)
    if local is None:
        raise ParamError(
            f"data.mirror {mirror!r}: unsupported URL scheme; use a local directory, "
            f"a file:// URL or an http(s) base URL ({_MIRRORS_HINT})"
        )
    if not local.is_dir():
        raise ParamError(
            f"data.mirror {mirror!r}: {local} is not a directory; create it with "
            f"<dataset>/<upstream name> files or fix the path ({_MIRRORS_HINT})"
        )


def _parse_manifest(text: str, where: str) -> dict[str, str]:
    try:
        return parse_md5sums(text)
    except BadMd5Line as exc:
        raise DownloadError(
            f"{where}: line {exc.number} is not '<md5>  <dataset>/<file>' ({exc.line[:60]!r}); "
            "regenerate it with md5sum */* in the mirror"
        ) from None


def _manifest_location(mirror: str) -> str:
    if _is_http(mirror) or mirror.lower().startswith("file:"):
        return f"{mirror.rstrip('/')}/{MD5SUMS}"
    return str(Path(mirror) / MD5SUMS)


def _read_http_text(url: str, timeout: float = 60.0) -> str | None:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.build_opener().open(request, timeout=timeout) as response:
            return response.read().decode("utf-8-sig")
    except urllib.error.HTTPError as exc:
        # S3-style static hosting answers 403 for a key that does not exist.
        if exc.code in (403, 404, 410):
            return None
        raise DownloadError(
            f"{url}: HTTP {exc.code} {_one_line(exc.reason)}; check data.mirror "
            "or remove the mirror's MD5SUMS"
        ) from None
    except (OSError, http.client.HTTPException, UnicodeDecodeError) as exc:
        raise DownloadError(
            f"{url}: cannot read the mirror's manifest ({_one_line(exc)}); check data.mirror and the network"
        ) from None


def read_manifest(mirror: str) -> dict[str, str] | None:
    """Parse ``<mirror>/MD5SUMS`` into ``{"<dataset>/<file>": md5}``.

    The file is in ``md5sum`` format (``<md5>  <dataset>/<file>``, an optional ``*``
    binary marker, ``#`` comments and blank lines allowed). Returns None when the mirror
    has no manifest; raises :class:`DownloadError` when it has an unreadable one.
    """
    where = _manifest_location(mirror)
    if _is_http(mirror):
        text = _read_http_text(where)
    else:
        local = _local_path(mirror)
        path = None if local is None else local / MD5SUMS
        if path is None or not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DownloadError(f"{path}: cannot read the mirror's manifest ({exc})") from None
    return None if text is None else _parse_manifest(text, where)


# ---------------------------------------------------------------------------- helpers


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


# ---------------------------------------------------------------------------- local copy


def _copy_local(src: Path, dest: Path, md5: str | None, label: str, origin: str) -> None:
    """Copy ``src`` beside ``dest``, verify it, rename it into place."""
    if not src.is_file():
        raise _UrlFailed(
            f"{src} does not exist; the mirror must hold files under "
            f"<dataset>/<upstream name> ({_MIRRORS_HINT})",
            specific=True,
        )
    if md5 is None:
        failure = _signature_error(label, str(src), _head(src))
        if failure is not None:
            raise failure
    digest = hashlib.md5()
    with atomic_file(dest, src.stat().st_size) as tmp:
        with (
            src.open("rb") as fin,
            tmp.open("wb") as fout,
            _progress(dest.name, src.stat().st_size) as bar,
        ):
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
                bar.update(len(chunk))
        got = digest.hexdigest()
        if md5 is not None and got != md5:
            raise _mismatch_error(label, str(src), got, md5, origin)


# ---------------------------------------------------------------------------- http


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


# ---------------------------------------------------------------------------- public


def _already_present(dest: Path, md5: str | None, label: str, log: Log) -> bool:
    if not dest.is_file():
        return False
    if md5 is None:
        log(f"{label}: already present at {dest} (no checksum to verify it against)")
        return True
    if file_md5(dest) == md5:
        log(f"{label}: already present at {dest}, checksum verified")
        return True
    log(f"{label}: {dest} does not match its checksum; downloading it again")
    return False


def _pick_failure(failures: list[_UrlFailed], tried: int) -> str:
    best = failures[-1]
    for failure in reversed(failures):
        if failure.specific:
            best = failure
            break
    message = str(best)
    if tried > 1:
        message += f" (tried {tried} URLs)"
    return _one_line(message)


def download_file(
    urls: Sequence[str],
    dest: Path,
    md5: str | None,
    *,
    partial_dir: Path | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    log: Log = print,
    checksum_origin: str = "published",
    label: str | None = None,
) -> Path:
    """Try each URL in order until one yields verified bytes at ``dest``; return ``dest``.

    ``urls`` may be http(s) URLs, ``file://`` URLs or local paths. Downloads stream into
    ``<partial_dir>/<label>.part`` (``label`` defaults to ``<dest's folder>/<dest name>``)
    and are resumed from there. ``checksum_origin`` names where ``md5`` came from in error
    messages. Raises :class:`DownloadError` with a one-line message if every URL fails.
    """
    dest = Path(dest)
    label = label or f"{dest.parent.name}/{dest.name}"
    if md5 is not None:
        md5 = md5.lower()
    if _already_present(dest, md5, label, log):
        return dest
    if md5 is None:
        log(f"{label}: no published checksum; not verified — dvc.lock pins the downloaded file")
    if not urls:
        raise DownloadError(f"{label}: no URL to download it from; add one to the registry")

    part = Path(partial_dir if partial_dir is not None else DEFAULT_PARTIAL_DIR) / f"{label}.part"
    retry = {"retries": retries, "backoff": backoff, "timeout": timeout, "log": log}
    failures: list[_UrlFailed] = []
    for index, url in enumerate(urls, start=1):
        try:
            local = None if _is_http(url) else _local_path(url)
            if local is not None:
                _copy_local(local, dest, md5, label, checksum_origin)
            else:
                _from_http(url, dest, md5, part, label, checksum_origin, **retry)
            return dest
        except _UrlFailed as exc:
            failures.append(exc)
            if index < len(urls):
                log(f"{_one_line(exc)}; trying the next URL")
    raise DownloadError(_pick_failure(failures, len(urls)))


def fetch_dataset(
    name: str,
    dest: Path,
    mirror: str | None = None,
    *,
    partial_dir: Path | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    log: Log = print,
) -> list[Path]:
    """Fetch every file of ``SOURCES[name]`` into ``dest/<file name>``; return the paths.

    With a ``mirror`` the registry's URLs are replaced by ``<mirror>/<name>/<file name>``
    and the mirror's ``MD5SUMS``, if it has one, overrides the registry's checksums.
    Partial downloads live under ``<partial_dir>/<name>/`` (default ``.cache/downloads``).
    """
    source = get_source(name)
    manifest: dict[str, str] | None = None
    if mirror is not None:
        _check_mirror(mirror)
        manifest = read_manifest(mirror)
    trust_logged = False
    paths = []
    for file in source.files:
        label = f"{name}/{file.name}"
        urls: Sequence[str] = file.urls
        md5, origin = file.md5, "published"
        if mirror is not None:
            urls = (mirror_url(mirror, name, file.name),)
        if manifest is not None and label in manifest:
            md5, origin = manifest[label], "mirror manifest's"
            if not trust_logged:
                where = _manifest_location(mirror)
                log(f"{name}: trusting the mirror's manifest {where} for checksums")
                trust_logged = True
        paths.append(
            download_file(
                urls,
                Path(dest) / file.name,
                md5,
                partial_dir=partial_dir,
                retries=retries,
                backoff=backoff,
                timeout=timeout,
                log=log,
                checksum_origin=origin,
                label=label,
            )
        )
    return paths


def fetch_local_set(
    name: str,
    path: str | os.PathLike,
    dest: Path,
    final_dir: Path,
    mirror: str | None = None,
    *,
    log: Log = print,
) -> Path:
    """Provide the local set ``name`` (see ``LOCAL_SETS``) for its prepare stage; return its path.

    ``path`` is ``datasets.<name>.path``. When it lies inside ``final_dir`` (the stage
    output, ``data/raw/<name>``, the default) the set's file is copied there from
    ``mirror`` — verified against the mirror's ``MD5SUMS`` when it has one — into the
    temporary directory ``dest``. Any other path is the user's own copy: it must exist,
    and ``dest`` only records where it is (the prepare stage tracks its content). Either
    failure is one line naming ``datasets.<name>.path``.
    """
    key = f"datasets.{name}.path"
    filename = LOCAL_SETS[name]
    user_path = Path(path)
    how = f"point it at your ImageFolder zip or folder (dvc exp run -S {key}=PATH)"
    if user_path.resolve().is_relative_to(Path(final_dir).resolve()):
        if mirror is None:
            raise ParamError(
                f"{key}: {path} comes from data.mirror, which is not set ({name} has no public "
                f"download); {how}, or set data.mirror to a mirror holding {name}/{filename}"
            )
        _check_mirror(mirror)
        manifest = read_manifest(mirror) or {}
        label = f"{name}/{filename}"
        origin = "mirror manifest's"
        download_file(
            (mirror_url(mirror, name, filename),),
            Path(dest) / filename,
            manifest.get(label),
            log=log,
            checksum_origin=origin,
            label=label,
        )
        return Path(final_dir) / filename
    if not user_path.exists():
        raise ParamError(f"{key}: {path} does not exist; {how}")
    (Path(dest) / "source.txt").write_text(f"{user_path.resolve()}\n")
    log(f"{name}: using your set at {user_path} ({key})")
    return user_path
