"""Readers for CelebA's two text tables: ``list_attr_celeba.txt`` and ``list_eval_partition.txt``.

Both fail with a :class:`~cnnpipe.errors.DataFormatError` whose message names the file and
the line and says what to do. The attribute list (202,599 rows of 40 values upstream) is
parsed by pandas' C reader, more than twice as fast as splitting its lines in Python; a file
it does not parse into the expected table is read again line by line, which says what is
wrong with it. The partition list, two fields a row, is as fast line by line.
"""

from __future__ import annotations

import csv
import io
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
    parsed = _attribute_table(rows, len(names))
    files, values = parsed if parsed is not None else _attribute_rows(path, rows, len(names))
    bad = ~np.isin(values, (-1, 1))
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataFormatError(
            f"{path}: line {row + 3} ({files[row]}) has values other than -1/1; the file is corrupt"
        )
    return names, files, values


def _attribute_rows(path: Path, rows: list[str], n_names: int) -> tuple[list[str], np.ndarray]:
    """The attribute rows split line by line; raises for the first malformed one."""
    files: list[str] = []
    values = np.empty((len(rows), n_names), dtype=np.int64)
    for i, row in enumerate(rows):
        fields = row.split()
        try:
            if len(fields) != n_names + 1:
                raise ValueError(f"{len(fields) - 1} values for {n_names} attributes")
            values[i] = [int(v) for v in fields[1:]]
        except ValueError as exc:
            raise DataFormatError(f"{path}: line {i + 3} is malformed ({exc})") from None
        files.append(fields[0])
    return files, values


def _attribute_table(rows: list[str], n_names: int) -> tuple[list[str], np.ndarray] | None:
    """The attribute rows parsed by pandas: (file names, values); None unless every row is a
    file name and ``n_names`` integers (then :func:`_attribute_rows` says what is wrong)."""
    import pandas as pd  # here: only this list needs it, and it takes a while to import

    body = "\n".join(rows)
    try:
        table = pd.read_csv(
            io.StringIO(body),
            sep=r"\s+",
            header=None,
            dtype={0: str, **dict.fromkeys(range(1, n_names + 1), np.int64)},
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            engine="c",
        )
    except (ValueError, OverflowError, pd.errors.ParserError):
        return None
    if table.shape != (len(rows), n_names + 1):
        return None
    files = table[0].tolist()
    # pandas reads "1.0" or "1e0" as the integer 1, where int() refuses them: any dot or
    # exponent outside the file names sends the file the line-by-line way.
    names = "".join(files)
    if any(body.count(c) != names.count(c) for c in ".eE"):
        return None
    return files, table.iloc[:, 1:].to_numpy(np.int64)


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
