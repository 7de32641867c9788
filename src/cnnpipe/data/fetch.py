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

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cnnpipe import paths
from cnnpipe.data.http_transfer import (
    _CHUNK,
    Log,
    _from_http,
    _head,
    _mismatch_error,
    _progress,
    _signature_error,
    _UrlFailed,
)
from cnnpipe.data.md5sums import file_md5
from cnnpipe.data.mirrors import (
    _MIRRORS_HINT,
    _check_mirror,
    _is_http,
    _local_path,
    _manifest_location,
    _one_line,
    mirror_url,
    read_manifest,
)
from cnnpipe.data.sources import LOCAL_SETS, get_source
from cnnpipe.errors import DownloadError, ParamError
from cnnpipe.fileio import atomic_file

DEFAULT_PARTIAL_DIR = paths.PARTIAL_DOWNLOADS


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
