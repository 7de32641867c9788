"""Shared entry-point wrapper for the thin scripts under stages/ and the CLI."""

from __future__ import annotations

import sys
from collections.abc import Callable

from cnnpipe.errors import CnnpipeError


def run(main: Callable[[], None]) -> None:
    """Run ``main``; turn an expected failure into ``error: <one line>`` and exit status 1."""
    try:
        main()
    except CnnpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written to the stage outputs", file=sys.stderr)
        sys.exit(130)
