"""What every prepare path shares: the params checks, the missing-file error, the log line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnpipe.checks import integer, param_error
from cnnpipe.errors import DataFormatError

Log = Callable[[str], Any]
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _valid_first(name: str, value: Any, n_train: int | None, train_file: str) -> int:
    """``datasets.<name>.valid_first``, checked against ``n_train`` unless that is not known yet."""
    key = f"datasets.{name}.valid_first"
    value = integer(value, key, 0)
    if n_train is not None and value >= n_train:
        raise param_error(key, f"must be below {n_train}, the training images in {train_file}", value)
    return int(value)


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataFormatError(f"{path} is missing; download it first (`dvc repro`)")
    return path


def _log_counts(log: Log, name: str, out_dir: Path, *counts: int) -> None:
    train, valid, test = counts
    log(f"{name}: prepared train {train}, valid {valid}, test {test} images in {out_dir}")


def _reason(exc: Exception) -> str:
    # Pillow names the in-memory buffer ("<_io.BytesIO object at 0x7f…>"): drop it so that
    # skipped.json is the same on every run.
    return f"{type(exc).__name__}: {_OBJECT_REPR.sub('', str(exc)).strip()}"
