"""What every prepare path shares: the params checks, the missing-file error, the log line."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnpipe.errors import DataFormatError, ParamError

Log = Callable[[str], Any]
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")

# ------------------------------------------------------------------------- params


def _param_error(key: str, value: Any, need: str) -> ParamError:
    return ParamError(f"{key}={value!r} is invalid: set it to {need} in params.yaml")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _image_size(value: Any, key: str) -> tuple[int, int]:
    if _is_int(value) and value > 0:
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise _param_error(key, value, "[height, width] or a single size in pixels")


def _fraction(value: Any, key: str) -> float:
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if number and 0 <= value < 1:
        return float(value)
    raise _param_error(key, value, "a fraction with 0 <= f < 1")


def _seed(value: Any, key: str) -> int:
    if _is_int(value) and value >= 0:
        return int(value)
    raise _param_error(key, value, "a non-negative integer")


def _valid_first(name: str, params: Mapping[str, Any], n_train: int | None, train_file: str) -> int:
    """``datasets.<name>.valid_first``, checked against ``n_train`` unless that is not known yet."""
    key = f"datasets.{name}.valid_first"
    value = params.get("valid_first")
    if not _is_int(value) or value < 0:
        raise _param_error(key, value, "the number of leading training images used for validation")
    if n_train is not None and value >= n_train:
        raise ParamError(
            f"{key}={value} but the training file {train_file} has only {n_train} images; "
            f"set it below {n_train}"
        )
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
