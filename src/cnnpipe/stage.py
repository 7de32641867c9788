"""Shared entry-point wrapper for the thin scripts under stages/ and the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from cnnpipe.errors import CnnpipeError
from cnnpipe.fileio import no_space_cause, no_space_error, remove_stale_temps


def run(main: Callable[[], None]) -> None:
    """Run ``main``; turn an expected failure into ``error: <one line>`` and exit status 1.

    A full disk or quota is expected too: the atomic-write helpers of :mod:`cnnpipe.fileio`
    raise it as a :class:`~cnnpipe.errors.NoSpaceError` naming the output, and an ENOSPC or
    EDQUOT from anywhere else becomes the same line here, naming the file it has.
    """
    try:
        main()
    except CnnpipeError as exc:
        _fail(exc)
    except Exception as exc:
        cause = no_space_cause(exc)
        if cause is None:
            raise
        _fail(no_space_error(cause, cause.filename or os.getcwd()))
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written to the stage outputs", file=sys.stderr)
        sys.exit(130)


def _fail(exc: BaseException) -> None:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)


def clean_outputs(*outputs: str | os.PathLike) -> None:
    """Remove what a crashed earlier run of this stage left beside its outputs (see
    :func:`cnnpipe.fileio.remove_stale_temps`), saying so, before the stage writes anything."""
    for path in remove_stale_temps(*outputs):
        print(f"removed {path}, left by an earlier run that did not finish")
