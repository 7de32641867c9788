"""Exceptions whose message is the one line a user sees.

Stage scripts and the CLI catch :class:`CnnpipeError`, print ``error: <message>`` and exit
with status 1, so every message must name the file or param at fault and what to do.
"""


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
