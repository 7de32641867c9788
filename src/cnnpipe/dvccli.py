"""Run a `dvc ... --json` command in this environment's Python and return its parsed output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnpipe.errors import CnnpipeError


def dvc_json(args: Sequence[str], *, cwd: str | Path | None = None, empty: Any = None) -> Any:
    """``python -m dvc <args>`` (which must include ``--json``); its stdout parsed.

    A failing command or output that is not JSON raises :class:`CnnpipeError` with DVC's own
    one-line reason; empty output gives ``empty``.
    """
    command = " ".join(a for a in args if a != "--json")
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0:
        reason = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
        raise CnnpipeError(f"`dvc {command}` failed: {reason.removeprefix('ERROR: ')}")
    if not result.stdout.strip():
        return empty
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise CnnpipeError(f"`dvc {command} --json` printed something that is not JSON: {exc}") from None
