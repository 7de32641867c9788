"""Readers for CelebA's two text tables: ``list_attr_celeba.txt`` and ``list_eval_partition.txt``.

Each fails with a :class:`~cnnpipe.errors.DataFormatError` whose message names the file (and
the line) and says what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnpipe.errors import DataFormatError


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise DataFormatError(f"{path} is missing; download it first (`dvc repro`)") from None
    except UnicodeDecodeError:
        raise DataFormatError(
            f"{path}: not a text file (an HTML quota page or a binary download?); delete it "
            "and download it again"
        ) from None


def read_celeba_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: (attribute names, file names, N×K int64 in {-1, 1}).

    The first line is the image count, the second the attribute names (the upstream header
    ends with a space, so fields are split on any whitespace), then one row per image.
    """
    path = Path(path)
    lines = [line for line in _read_lines(path) if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataFormatError(
            f"{path}: does not start with an image count and a header line; not the CelebA "
            "attribute list — download it again"
        )
    count, names, rows = int(lines[0]), lines[1].split(), lines[2:]
    if len(rows) != count:
        raise DataFormatError(
            f"{path}: header says {count} images but {len(rows)} rows follow; the file is "
            "truncated — download it again"
        )
    files: list[str] = []
    values = np.empty((len(rows), len(names)), dtype=np.int64)
    for i, row in enumerate(rows):
        fields = row.split()
        try:
            if len(fields) != len(names) + 1:
                raise ValueError(f"{len(fields) - 1} values for {len(names)} attributes")
            values[i] = [int(v) for v in fields[1:]]
        except ValueError as exc:
            raise DataFormatError(f"{path}: line {i + 3} is malformed ({exc})") from None
        files.append(fields[0])
    bad = ~np.isin(values, (-1, 1))
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataFormatError(
            f"{path}: line {row + 3} ({files[row]}) has values other than -1/1; the file is corrupt"
        )
    return names, files, values


def read_celeba_partition(path: Path) -> dict[str, int]:
    """Parse ``list_eval_partition.txt``: file name → 0 (train), 1 (valid) or 2 (test), in file order."""
    path = Path(path)
    partition: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataFormatError(
                f"{path}: line {number} is not '<file> <0|1|2>'; not the CelebA partition "
                "list — download it again"
            )
        partition[fields[0]] = int(fields[1])
    if not partition:
        raise DataFormatError(f"{path}: no entries; the file is empty — download it again")
    return partition
