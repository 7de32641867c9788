"""Safe access to zip and tar archives.

Every member name is checked before anything is read or written: absolute paths,
``..`` components, drive letters, and links or devices are rejected with an
:class:`~cnnpipe.errors.ArchiveError` naming the archive and the member. Truncated or
corrupt archives raise the same error instead of a zlib or EOF traceback.

The pipeline reads members straight out of archives (CelebA's 202,599 JPEGs are never
materialized as files); :func:`safe_extract` is there for the cases where files on disk
are wanted, and extracts into a temporary directory renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import gzip
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cnnpipe.errors import ArchiveError
from cnnpipe.fileio import atomic_dir

_CORRUPT: tuple[type[BaseException], ...] = (
    EOFError,
    OSError,
    zlib.error,
    tarfile.TarError,
    zipfile.BadZipFile,
)
try:
    from isal.isal_zlib import error as _IsalError

    _CORRUPT += (_IsalError,)
except ImportError:  # isal is an optional speed-up
    pass


def _reason(exc: BaseException) -> str:
    """The first line of an exception, prefixed by its type: enough to say what broke."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def check_member_name(name: str, archive: str | Path) -> PurePosixPath:
    """Return ``name`` as a relative posix path, or raise if it could escape the destination."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if (
        not normalized
        or normalized.startswith("/")
        or (len(normalized) > 1 and normalized[1] == ":")
        or ".." in path.parts
        or "\x00" in normalized
    ):
        raise ArchiveError(
            f"{archive}: unsafe member path {name!r} (absolute or with '..'); refusing to read "
            "this archive — re-download it from a trusted source"
        )
    return path


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


@contextlib.contextmanager
def open_zip(path: str | Path) -> Iterator[zipfile.ZipFile]:
    """Open a zip whose member names have all been checked; wraps corruption errors."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(
            f"{path}: not a readable zip archive ({_reason(exc)}); the file is truncated or corrupt — "
            "delete it and download it again"
        ) from None
    with zf:
        for info in zf.infolist():
            check_member_name(info.filename, path)
            if _zip_is_link(info):
                raise ArchiveError(
                    f"{path}: member {info.filename!r} is a symbolic link; refusing to read this "
                    "archive — re-download it from a trusted source"
                )
        try:
            yield zf
        except _CORRUPT as exc:
            raise ArchiveError(
                f"{path}: corrupt member data ({_reason(exc)}); the archive is truncated or damaged — "
                "delete it and download it again"
            ) from None


def _check_tar_member(member: tarfile.TarInfo, archive: str | Path) -> None:
    check_member_name(member.name, archive)
    if member.issym() or member.islnk():
        # A symlink target is relative to its own folder, a hard link's to the archive root.
        base = posixpath.dirname(member.name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise ArchiveError(
                f"{archive}: link {member.name!r} -> {member.linkname!r} points outside the "
                "archive; refusing to read it — re-download it from a trusted source"
            )
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(
            f"{archive}: member {member.name!r} is a device or special file; refusing to read it"
        )


def _gzip_stream(path: str | Path):
    """A decompressing reader for a gzip file: ISA-L in a background thread when available.

    Inflating the archive is most of the cost of reading CIFAR-10; ISA-L inflates faster
    than zlib and its threaded reader overlaps that with unpickling.
    """
    try:
        from isal import igzip_threaded
    except ImportError:  # optional speed-up; the standard library does the same job
        return gzip.open(path, "rb")
    return igzip_threaded.open(path, "rb", threads=1)


def _is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def iter_tar_files(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for each regular file of a (compressed) tar archive.

    The archive is streamed once; names are checked as they come and truncation
    surfaces as ArchiveError.
    """
    try:
        with contextlib.ExitStack() as stack:
            stream = None
            if _is_gzip(path):
                stream = stack.enter_context(_gzip_stream(path))
                tf = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
            else:
                tf = stack.enter_context(tarfile.open(path, mode="r|*"))
            for member in tf:
                _check_tar_member(member, path)
                if member.isfile():
                    yield member.name, tf.extractfile(member).read()
            if stream is not None:  # read to the end so the gzip CRC is verified
                while stream.read(1 << 20):
                    pass
    except ArchiveError:
        raise
    except _CORRUPT as exc:
        raise ArchiveError(
            f"{path}: not a readable tar archive ({_reason(exc)}); the file is "
            "truncated or corrupt — delete it and download it again"
        ) from None


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a zip or tar archive into ``dest`` (replaced atomically); return ``dest``."""
    archive, dest = Path(archive), Path(dest)
    with atomic_dir(dest) as tmp:
        if archive.suffix.lower() == ".zip" or zipfile.is_zipfile(archive):
            with open_zip(archive) as zf:
                for info in zf.infolist():
                    target = tmp / check_member_name(info.filename, archive)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))
        else:
            for name, data in iter_tar_files(archive):
                target = tmp / check_member_name(name, archive)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    return dest
