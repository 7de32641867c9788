"""The prepared-array store: ``data/prepared/<dataset>/``.

Layout (read by training without PIL, memory-mapped)::

    {train,valid,test}.images.npy   uint8  N×C×H×W
    {train,valid,test}.labels.npy   int64  N (class index) or N×K (0/1 attributes)
    classes.json                    {"classes": [...], "label_type": "class"|"attributes",
                                     "splits": {"train": N, ...}, "image_shape": [C, H, W], ...}
    skipped.json                    (ImageFolder sets) unreadable images left out, with why

All three splits are always written; a split may hold zero images. Memory-mapped splits
reserve their whole size on disk before anything is written through the map (so a full disk
is one error line, never a SIGBUS), and a full disk anywhere is one
:class:`~cnnpipe.errors.NoSpaceError` naming the dataset and about how much it needs.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnpipe.errors import DataFormatError
from cnnpipe.fileio import atomic_dir, reserve

SPLITS = ("train", "valid", "test")
CLASSES_FILE = "classes.json"


def images_path(root: Path, split: str) -> Path:
    """Path of ``split``'s image array under a prepared dataset directory."""
    return Path(root) / f"{split}.images.npy"


def labels_path(root: Path, split: str) -> Path:
    """Path of ``split``'s label array under a prepared dataset directory."""
    return Path(root) / f"{split}.labels.npy"


@dataclass
class SplitArrays:
    """One split of a prepared dataset."""

    images: np.ndarray  # uint8 N×C×H×W
    labels: np.ndarray  # int64 N or N×K


class _NpyAppender:
    """A ``.npy`` file written row block by row block, its length settled when it is closed.

    numpy pads a header so that the first dimension can grow to 21 digits without the
    header changing size, so the final header overwrites the provisional one in place.
    """

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]):
        self._dtype, self._row_shape, self.count = np.dtype(dtype), tuple(row_shape), 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._header_size = self._write_header()

    def _write_header(self) -> int:
        self._file.seek(0)
        header = {
            "descr": np.lib.format.dtype_to_descr(self._dtype),
            "fortran_order": False,
            "shape": (self.count, *self._row_shape),
        }
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self._dtype)
        if rows.shape[1:] != self._row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} appended to rows of shape {self._row_shape}")
        if rows.size:  # memoryview refuses to flatten an empty array
            self._file.write(memoryview(rows).cast("B"))
        self.count += len(rows)

    def close(self, complete: bool = True) -> None:
        """Close the file, first writing the final header unless the output is being abandoned.

        An abandoned file is going to be deleted: what is still buffered (which a full disk
        cannot take either) is dropped without a second error.
        """
        if self._file.closed:
            return
        if not complete:
            with contextlib.suppress(OSError):
                self._file.close()
            return
        try:
            if self._write_header() != self._header_size:
                raise RuntimeError(f"{self._file.name}: the .npy header changed size while appending")
        finally:
            self._file.close()


class SplitAppender:
    """One split written incrementally: see :meth:`PreparedWriter.append_split`."""

    def __init__(self, root: Path, split: str, image_shape: tuple[int, ...], label_shape: tuple[int, ...]):
        self._images = _NpyAppender(images_path(root, split), np.uint8, image_shape)
        self._labels = _NpyAppender(labels_path(root, split), np.int64, label_shape)

    @property
    def count(self) -> int:
        """Images appended so far."""
        return self._images.count

    def append(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Append images (uint8 N×C×H×W) and their labels (int64 N or N×K)."""
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self._images.append(images)
        self._labels.append(labels)

    def close(self, complete: bool = True) -> None:
        """Write the final headers (unless ``complete`` is false) and close both files."""
        try:
            self._images.close(complete)
        finally:
            self._labels.close(complete)


class PreparedWriter:
    """Write a prepared dataset into a temporary directory that replaces ``out_dir`` on success.

    Use as a context manager::

        with PreparedWriter(out) as w:
            w.write_split("train", images, labels)
            ...
            w.set_classes(["airplane", "bird"])
    """

    def __init__(self, out_dir: str | Path, expected_bytes: int | None = None):
        self.out_dir = Path(out_dir)
        # What a full disk's error says the dataset needs: the caller's estimate of the whole
        # (when it knows the sizes up front), or what has been written and reserved so far.
        self.expected_bytes = expected_bytes
        self._ctx = atomic_dir(self.out_dir, lambda: self.expected_bytes)
        self.tmp: Path | None = None
        self._classes: list[str] | None = None
        self._label_type = "class"
        self._meta: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self._shape: list[int] | None = None
        self._appenders: dict[str, tuple[SplitAppender, tuple[int, ...]]] = {}

    def __enter__(self) -> PreparedWriter:
        self.tmp = self._ctx.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._close_appenders(complete=exc_type is None)
            if exc_type is None:
                self._finish()
        except BaseException as error:  # the temporary directory goes, the error stays
            self._close_appenders(complete=False)
            self._ctx.__exit__(type(error), error, error.__traceback__)
            raise
        return bool(self._ctx.__exit__(exc_type, exc, tb))

    def append_split(
        self, split: str, image_shape: tuple[int, int, int], label_shape: tuple[int, ...] = ()
    ) -> SplitAppender:
        """Start ``split`` for images appended block by block while its size is not yet known.

        The files are complete (headers written) when the writer closes.
        """
        self._check_split(split)
        appender = SplitAppender(self.tmp, split, image_shape, label_shape)
        self._appenders[split] = (appender, tuple(image_shape))
        return appender

    def new_split(
        self, split: str, n: int, image_shape: tuple[int, int, int], label_shape: tuple[int, ...] = ()
    ) -> SplitArrays:
        """Create memory-mapped arrays for ``n`` images to be filled in place (for large sets)."""
        self._check_split(split)
        images = _reserved_memmap(images_path(self.tmp, split), np.uint8, (n, *image_shape))
        labels = _reserved_memmap(labels_path(self.tmp, split), np.int64, (n, *label_shape))
        self._note_split(split, n, image_shape)
        return SplitArrays(images, labels)

    def shrink_split(self, split: str, keep: np.ndarray, block: int = 256) -> None:
        """Keep only the rows of ``split`` where boolean ``keep`` is true (skipped images), in place.

        The kept rows move down ``block`` at a time inside the memory-mapped files, which are then
        cut to their new length: memory stays at one block of images whatever the split's size
        (Dogs vs Cats' 20,000 training photos at 300×300 are 5.4 GB), and nothing is written twice.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.all():
            return
        rows = np.flatnonzero(keep)
        image_shape = _compact_npy(images_path(self.tmp, split), rows, block)
        _compact_npy(labels_path(self.tmp, split), rows, block)
        self._note_split(split, len(rows), image_shape[1:])

    def write_split(self, split: str, images: np.ndarray, labels: np.ndarray) -> None:
        """Write a whole split from in-memory arrays."""
        self._check_split(split)
        images = np.ascontiguousarray(images, dtype=np.uint8)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"{split}: images {images.shape} and labels {labels.shape} do not match")
        save_npy(images_path(self.tmp, split), images)
        save_npy(labels_path(self.tmp, split), labels)
        self._note_split(split, len(images), images.shape[1:])

    def set_classes(self, classes: list[str], label_type: str = "class", **meta: Any) -> None:
        """Record class (or attribute) names and any extra metadata for classes.json."""
        if label_type not in ("class", "attributes"):
            raise ValueError(f"label_type must be 'class' or 'attributes', not {label_type!r}")
        self._classes = list(classes)
        self._label_type = label_type
        self._meta.update(meta)

    def write_json(self, name: str, obj: Any) -> None:
        """Write an extra JSON report (e.g. skipped.json) into the dataset directory."""
        (self.tmp / name).write_text(json.dumps(obj, indent=2) + "\n")

    def _close_appenders(self, complete: bool) -> None:
        while self._appenders:
            split, (appender, image_shape) = self._appenders.popitem()
            appender.close(complete)
            self._note_split(split, appender.count, image_shape)

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")

    def _note_split(self, split: str, n: int, image_shape) -> None:
        self._counts[split] = int(n)
        if n:
            self._shape = [int(s) for s in image_shape]

    def _finish(self) -> None:
        if self._classes is None:
            raise ValueError("set_classes() was not called before the prepared dataset was closed")
        if self._shape is None:
            raise ValueError("a prepared dataset needs at least one non-empty split")
        for split in SPLITS:  # every split exists, possibly empty
            if split not in self._counts:
                label_shape = (len(self._classes),) if self._label_type == "attributes" else ()
                self.write_split(
                    split, np.zeros((0, *self._shape), np.uint8), np.zeros((0, *label_shape), np.int64)
                )
        meta = {
            "classes": self._classes,
            "label_type": self._label_type,
            "splits": {s: self._counts[s] for s in SPLITS},
            "image_shape": self._shape,
            **self._meta,
        }
        (self.tmp / CLASSES_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save(path, array)`` for a C-contiguous array, byte for byte, through Python's file writes.

    numpy writes with C ``fwrite`` and reports a full disk as an OSError without an errno;
    this way it is the ENOSPC that becomes one line naming the dataset.
    """
    array = np.ascontiguousarray(array)
    header = {
        "descr": np.lib.format.dtype_to_descr(array.dtype),
        "fortran_order": False,
        "shape": array.shape,
    }
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        if array.size:  # memoryview refuses to flatten an empty array
            f.write(memoryview(array).cast("B"))


def _compact_npy(path: Path, rows: np.ndarray, block: int) -> tuple[int, ...]:
    """Keep rows ``rows`` (ascending) of the ``.npy`` file at ``path``, in place; return the new shape.

    Row ``rows[i]`` moves to ``i <= rows[i]``: each block is read (a copy) before it is written
    lower down, and no later block reads a row that an earlier one overwrote.
    """
    array = np.load(path, mmap_mode="r+")
    dtype, shape, offset = array.dtype, (len(rows), *array.shape[1:]), array.offset
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        array[start : start + len(chunk)] = array[chunk]
    array.flush()
    del array
    with open(path, "r+b") as f:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(f, header)
        if f.tell() != offset:  # numpy pads headers so that the first dimension can shrink in place
            raise RuntimeError(f"{path}: the .npy header changed size while shrinking it")
        f.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    return shape


def _reserved_memmap(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file mapped for writing, its whole size reserved on disk first."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    reserve(path, path.stat().st_size)
    return array


def prepared_bytes(n: int, image_shape: tuple[int, ...], label_shape: tuple[int, ...] = ()) -> int:
    """About how many bytes ``n`` prepared images and their labels take on disk."""
    return int(n) * (int(np.prod(image_shape)) + 8 * int(np.prod(label_shape, dtype=np.int64)))


def load_split(root: str | Path, split: str, mmap: bool = True) -> SplitArrays:
    """Load one split; memory-mapped read-only by default."""
    root = Path(root)
    ipath = images_path(root, split)
    if not ipath.exists():
        raise DataFormatError(f"{ipath} is missing: run `dvc repro` to prepare {root.name}")
    mode = "r" if mmap else None
    return SplitArrays(np.load(ipath, mmap_mode=mode), np.load(labels_path(root, split), mmap_mode=mode))


def load_meta(root: str | Path) -> dict[str, Any]:
    """Read classes.json of a prepared dataset."""
    path = Path(root) / CLASSES_FILE
    if not path.exists():
        raise DataFormatError(f"{path} is missing: run `dvc repro` to prepare {Path(root).name}")
    return json.loads(path.read_text())
