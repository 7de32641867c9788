"""Safe access to zip and tar archives.

Every member name is checked before anything is read or written: absolute paths,
``..`` components, drive letters, and links or devices are rejected with an
:class:`~cnnpipe.errors.ArchiveError` naming the archive and the member. Truncated or
corrupt archives raise the same error instead of a zlib or EOF traceback.

The pipeline reads members straight out of archives (CelebA's 202,599 JPEGs are never
materialized as files).

Sizes are bounded before anything is inflated (:class:`ArchiveLimits`, params
``data.max_member_mb`` and ``data.max_ratio``): a member that declares more than
``max_member_mb`` uncompressed, or above 1 MiB a compression ratio over ``max_ratio``
(2 GiB of zeros deflate to 2 MB), is refused from its directory entry alone. Reading a zip
member never yields more than its declared size, and a tar member is read within its
header's size, so what is declared is what memory holds.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cnnpipe.data.gzipstream import GZIP_ERRORS, open_gzip
from cnnpipe.errors import ArchiveError
from cnnpipe.fileio import is_no_space

_CORRUPT: tuple[type[BaseException], ...] = (*GZIP_ERRORS, tarfile.TarError, zipfile.BadZipFile)


def _reason(exc: BaseException) -> str:
    """The first line of an exception, prefixed by its type: enough to say what broke."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


MIB = 1 << 20
DEFAULT_MAX_MEMBER_MB = 256
DEFAULT_MAX_RATIO = 100
# Members this small are never refused for their ratio: they cannot hurt, and a tiny flat
# image (a one-colour BMP) legitimately deflates a hundredfold.
RATIO_EXEMPT_BYTES = MIB


@dataclass(frozen=True)
class ArchiveLimits:
    """How large an archive member may be before it is read: a decompression-bomb guard.

    ``max_member_mb`` bounds a member's declared uncompressed size (MiB), ``max_ratio`` its
    uncompressed/compressed ratio for members over :data:`RATIO_EXEMPT_BYTES`.
    """

    max_member_mb: float = DEFAULT_MAX_MEMBER_MB
    max_ratio: float = DEFAULT_MAX_RATIO

    @property
    def max_member_bytes(self) -> int:
        return int(self.max_member_mb * MIB)

    def size_problem(self, size: int, compressed: int | None = None) -> str | None:
        """Why a member of ``size`` bytes (``compressed`` in the archive) must not be read; None if fine."""
        if size > self.max_member_bytes:
            return (
                f"declares {_mib(size)} MiB uncompressed, over the limit data.max_member_mb: "
                f"{self.max_member_mb:g}"
            )
        ratio = size / max(compressed or 0, 1)
        if compressed is not None and size > RATIO_EXEMPT_BYTES and ratio > self.max_ratio:
            return (
                f"would inflate {ratio:.0f}-fold ({compressed} bytes to {_mib(size)} MiB), over the "
                f"limit data.max_ratio: {self.max_ratio:g}"
            )
        return None

    def zip_problem(self, info: zipfile.ZipInfo) -> str | None:
        """:meth:`size_problem` of a zip member, from its directory entry (nothing is inflated)."""
        return self.size_problem(info.file_size, info.compress_size)


def _mib(nbytes: int) -> str:
    mib = nbytes / MIB
    return f"{mib:.1f}" if mib < 10 else f"{mib:.0f}"


class MemberTooLarge(ArchiveError):
    """An archive member refused by :class:`ArchiveLimits` before it was read."""

    def __init__(self, archive: str | Path, member: str, problem: str):
        self.member, self.problem = member, problem
        super().__init__(
            f"{archive}: member {member!r} {problem} (a decompression bomb?); it was not read — "
            "the archive is not the upstream file: delete it and download it again "
            "(or raise the limit in params.yaml if the member is genuine)"
        )


def read_zip_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str | Path, limits: ArchiveLimits
) -> bytes:
    """The bytes of ``info``, or :class:`MemberTooLarge` before anything is inflated."""
    problem = limits.zip_problem(info)
    if problem is not None:
        raise MemberTooLarge(archive, info.filename, problem)
    return zf.read(info)


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
            if is_no_space(exc):  # a write in the block met a full disk: not the archive's fault
                raise
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


# Leading bytes of the compressed formats tarfile's "r|*" mode recognises.
_COMPRESSED = ((b"\x1f\x8b", open_gzip), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))


def _open_decompressed(path: str | Path) -> BinaryIO:
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, opener in _COMPRESSED:
        if head.startswith(magic):
            return opener(path)
    return open(path, "rb")


def _corrupt_tar(path: str | Path, exc: BaseException) -> ArchiveError:
    return ArchiveError(
        f"{path}: not a readable tar archive ({_reason(exc)}); the file is "
        "truncated or corrupt — delete it and download it again"
    )


class _ForwardReader:
    """Forward-only access to a decompressed tar stream, as ``tarfile.TarFile`` uses it.

    ``seek`` only moves forward (by skipping data): TarFile reads its headers straight from
    the stream, and member data is read through :class:`TarMemberReader` without TarFile's
    stream-mode buffering, which copies every block several times.
    """

    def __init__(self, raw: BinaryIO, archive: str | Path):
        self.raw, self.archive, self.pos = raw, archive, 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.raw.read(size)
        except _CORRUPT as exc:
            raise _corrupt_tar(self.archive, exc) from None
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or pos < self.pos:  # TarFile only moves forward through a stream
            raise io.UnsupportedOperation(f"cannot seek back to {pos} in a streamed archive")
        while self.pos < pos and self.read(min(pos - self.pos, 1 << 20)):
            pass
        return self.pos


class TarMemberReader:
    """One member's bytes, read straight from the archive stream; valid until the next member.

    Offers what ``pickle.Unpickler`` uses (``read``, ``readinto``, ``readline``, ``peek``)
    and never reads past the member's end; data missing at the end of the stream, or a
    corrupt stream, raise :class:`~cnnpipe.errors.ArchiveError`.
    """

    def __init__(self, stream: _ForwardReader, member: tarfile.TarInfo):
        self._stream, self.name, self.size, self._left = stream, member.name, member.size, member.size

    def _consumed(self, count: int, wanted: int) -> None:
        self._stream.pos += count
        self._left -= count
        if count < wanted:
            raise _corrupt_tar(self._stream.archive, EOFError(f"unexpected end of data in {self.name}"))

    def _call(self, method: str, *args):
        try:
            return getattr(self._stream.raw, method)(*args)
        except _CORRUPT as exc:
            raise _corrupt_tar(self._stream.archive, exc) from None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left of the member when negative)."""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._call("read", size) if size else b""
        self._consumed(len(data), size)
        return data

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` from the member (less only where the member ends); return the count."""
        view = memoryview(buffer).cast("B")[: self._left]
        count = 0
        while count < len(view):
            got = self._call("readinto", view[count:])
            if not got:
                break
            count += got
        self._consumed(count, len(view))
        return count

    def readline(self) -> bytes:
        """One line, as ``io.BufferedReader.readline`` reads it, within the member."""
        if not self._left:
            return b""
        data = self._call("readline", self._left)
        self._consumed(len(data), 1)
        return data

    def peek(self, size: int = 0) -> bytes:
        """Bytes ahead without consuming them (at most to the member's end)."""
        return self._call("peek", size)[: self._left] if self._left else b""


def iter_tar_members(path: str | Path) -> Iterator[TarMemberReader]:
    """Yield a :class:`TarMemberReader` for each regular file of a (compressed) tar archive.

    The archive is streamed once, never extracted: member names and links are checked as
    they come, whatever a reader leaves unread is skipped, and the whole stream is read
    to its end (which verifies a gzip CRC). Truncation or corruption raise ArchiveError.
    """
    try:
        with _open_decompressed(path) as raw:
            stream = _ForwardReader(raw, path)
            for member in tarfile.TarFile(fileobj=stream, mode="r"):
                _check_tar_member(member, path)
                if member.issparse():
                    raise ArchiveError(f"{path}: member {member.name!r} is a sparse file; not supported")
                if member.isfile():
                    yield TarMemberReader(stream, member)
            while stream.read(1 << 20):
                pass
    except ArchiveError:
        raise
    except _CORRUPT as exc:
        raise _corrupt_tar(path, exc) from None
