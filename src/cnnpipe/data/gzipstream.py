"""The fastest gzip reader available here, with the standard library's checks.

Inflating is most of the cost of reading the CIFAR-10 archive (163 MB of gzip). Three
readers, fastest first, each optional except the last:

* rapidgzip inflates one gzip stream on several cores at once. It is used for large files
  when more than one core is free; it checks each member's CRC32 but returns a truncated
  stream's data without complaint, so :class:`CheckedParallelGzip` checks the end itself;
* ISA-L (``isal``) inflates faster than zlib, in a background thread while the caller parses
  what came before;
* the standard library's :mod:`gzip`.

Every reader raises one of :data:`GZIP_ERRORS` for a truncated or corrupt file, which
:mod:`cnnpipe.data.archives` turns into one line for the user.
"""

from __future__ import annotations

import atexit
import gzip
import os
import struct
import weakref
import zlib
from pathlib import Path
from typing import BinaryIO

from cnnpipe.cpus import usable_cpus

GZIP_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error)
try:
    from isal.isal_zlib import error as _IsalError

    GZIP_ERRORS += (_IsalError,)
except ImportError:  # isal is an optional speed-up
    pass

# Below this size, inflating on several cores gains less than starting the threads costs.
PARALLEL_MIN_BYTES = 16 << 20


def open_gzip(path: str | Path) -> BinaryIO:
    """A decompressing binary reader for the gzip file ``path`` (see the module docstring)."""
    cpus = usable_cpus()
    if cpus > 1 and os.path.getsize(path) >= PARALLEL_MIN_BYTES:
        try:
            import rapidgzip
        except ImportError:  # optional speed-up
            pass
        else:
            return CheckedParallelGzip(path, rapidgzip.open(os.fspath(path), parallelization=cpus))
    try:
        from isal import igzip_threaded
    except ImportError:  # optional speed-up; the standard library does the same job
        return gzip.open(path, "rb")
    return igzip_threaded.open(path, "rb", threads=1)


def verify_gzip(path: str | Path) -> None:
    """Inflate the whole of ``path`` on one core, raising what the standard reader raises."""
    with gzip.open(path, "rb") as f:
        while f.read(1 << 22):
            pass


class CheckedParallelGzip:
    """A rapidgzip reader that raises, like :mod:`gzip`, for a truncated or corrupt file.

    rapidgzip verifies CRC32s, but for a stream cut short it returns what it could inflate.
    At the end of the data this reader compares the byte count with the gzip trailer's size
    field; a file cut anywhere leaves random bytes there. A mismatch is also what a valid
    file of several gzip members gives (the trailer holds the last member's size), so a
    mismatch is settled by inflating the file once more with :func:`verify_gzip`.
    """

    def __init__(self, path: str | Path, reader: BinaryIO):
        self.path, self._reader, self._count, self._checked = path, reader, 0, False
        _OPEN_READERS.add(self)

    def _call(self, method: str, *args):
        try:
            return getattr(self._reader, method)(*args)
        except (RuntimeError, ValueError) as exc:  # rapidgzip's C++ errors: a corrupt stream
            # Its messages can be as bare as "std::exception": let the standard reader say what is wrong.
            verify_gzip(self.path)
            raise OSError(f"gzip: {exc}") from None

    def _consumed(self, count: int, wanted: int | None) -> None:
        self._count += count
        if count == 0 and wanted != 0 and not self._checked:
            self._checked = True
            self._check_end()

    def _check_end(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            (size,) = struct.unpack("<I", f.read(4))
        if size != self._count % (1 << 32):
            verify_gzip(self.path)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative)."""
        data = self._call("read", size)
        self._consumed(len(data), size)
        return data

    def readinto(self, buffer) -> int:
        """Fill as much of ``buffer`` as one read gives; return the count."""
        count = self._call("readinto", buffer)
        self._consumed(count, len(memoryview(buffer)))
        return count

    def readline(self, size: int = -1) -> bytes:
        """One line, or at most ``size`` bytes of it."""
        data = self._call("readline", size)
        self._consumed(len(data), size)
        return data

    def peek(self, size: int = 0) -> bytes:
        """Bytes ahead, without consuming them."""
        return self._call("peek", size)

    def close(self) -> None:
        """Stop the inflating threads and close the file."""
        _OPEN_READERS.discard(self)
        self._reader.close()

    def __enter__(self) -> CheckedParallelGzip:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_OPEN_READERS: weakref.WeakSet[CheckedParallelGzip] = weakref.WeakSet()


@atexit.register
def _close_open_readers() -> None:
    # rapidgzip aborts the interpreter when its threads still run at exit, as they do for a
    # reader left open inside an unfinished generator.
    for reader in list(_OPEN_READERS):
        reader.close()
