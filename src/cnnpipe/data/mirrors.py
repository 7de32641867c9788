"""Mirrors (``data.mirror``): where a mirror holds a file, and the checksums its ``MD5SUMS`` lists.

A mirror is a local directory, a ``file://`` URL or an http(s) base URL holding
``<dataset>/<upstream file name>``; it replaces the registry's URLs.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cnnpipe import __version__ as _pkg_version
from cnnpipe.data.md5sums import MD5SUMS, BadMd5Line, parse_md5sums
from cnnpipe.errors import DownloadError, ParamError

_USER_AGENT = f"cnnpipe/{_pkg_version} (Python-urllib; dataset download)"
_MIRRORS_HINT = 'see README, "Mirrors"'


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


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
