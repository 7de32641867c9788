"""Exceptions whose message is the one line a user sees.

Stage scripts and the CLI catch :class:`CnnpipeError`, print ``error: <message>`` and exit
with status 1, so every message must name the file or param at fault and what to do.
"""

import math


class CnnpipeError(Exception):
    """Base class: an expected failure with a one-line, user-facing message."""


class ParamError(CnnpipeError):
    """A params.yaml value is missing or invalid."""


class DownloadError(CnnpipeError):
    """A file could not be fetched or failed verification."""


class ArchiveError(CnnpipeError):
    """An archive is unsafe, truncated or not in the expected layout."""


class DataFormatError(CnnpipeError):
    """A data file does not hold what its upstream format promises."""


class NoSpaceError(CnnpipeError):
    """A write failed because its filesystem is full (ENOSPC) or a disk quota is used up (EDQUOT).

    :mod:`cnnpipe.fileio` raises it from the atomic-write helpers, which know the output and
    about how much it needs; the stage runner turns any other ENOSPC into one as well.
    """

    def __init__(self, path: str, filesystem: str, needed: int | None = None, *, quota: bool = False):
        self.path, self.filesystem, self.needed, self.quota = path, filesystem, needed, quota
        where = f"{filesystem} (disk quota exceeded)" if quota else filesystem
        size = "" if not needed else f" (needs ≈ {_megabytes(needed)} MB)"
        super().__init__(f"no space left on {where} writing {path}{size}; free space and rerun")


class ParamsChangedError(CnnpipeError):
    """params.yaml changed under a running stage (another ``dvc exp run`` in the same workspace)."""


def _megabytes(nbytes: int) -> str:
    """``nbytes`` in MB (10^6 bytes), rounded up: one decimal below 10 MB."""
    mb = nbytes / 1e6
    return f"{math.ceil(mb * 10) / 10:.1f}" if mb < 10 else f"{math.ceil(mb)}"
