"""A small tmpfs mounted for one test: a filesystem that fills up, to test full-disk handling.

Import the fixture into a test module (``from tmpfs import small_tmpfs``) and call it with a
folder and a size; it is unmounted when the test ends. Tests using it skip, with the reason,
where mounting is not possible (not root, or no mount permission in a container).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """``mount(path, size)``: mount a tmpfs of ``size`` (``"256k"``, ``"2m"``) at ``path``."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill up needs root")
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root``, as paths relative to it."""
    return {p.relative_to(root).as_posix() for p in Path(root).rglob("*")}
