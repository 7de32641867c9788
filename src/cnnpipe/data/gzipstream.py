"""The fastest gzip reader available here, with the standard library's checks.

Inflating is most of the cost of reading the CIFAR-10 archive (163 MB of gzip). Two
readers, the faster first:

* ISA-L (``isal``, the optional ``fast-gzip`` extra) inflates faster than zlib, in a
  background thread while the caller parses what came before;
* the standard library's :mod:`gzip`, when ``isal`` is not installed.

Either raises one of :data:`GZIP_ERRORS` for a truncated or corrupt file, which
:mod:`cnnpipe.data.archives` turns into one line for the user.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO

GZIP_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error)
try:
    from isal.isal_zlib import error as _IsalError

    GZIP_ERRORS += (_IsalError,)
except ImportError:  # isal is an optional speed-up
    pass


def open_gzip(path: str | Path) -> BinaryIO:
    """A decompressing binary reader for the gzip file ``path`` (see the module docstring)."""
    try:
        from isal import igzip_threaded
    except ImportError:  # optional speed-up; the standard library does the same job
        return gzip.open(path, "rb")
    return igzip_threaded.open(path, "rb", threads=1)
