"""IDX (MNIST, Fashion-MNIST) and CIFAR-10: the leading training images become valid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnpipe.data.archives import ArchiveLimits
from cnnpipe.data.arrays import PreparedWriter, SplitAppender
from cnnpipe.data.prepare.common import Log, _log_counts, _require, _valid_first
from cnnpipe.data.readers import read_idx, stream_cifar10
from cnnpipe.data.sources import CIFAR_FILE, IDX_CLASSES, IDX_FILES
from cnnpipe.errors import DataFormatError


def _read_idx_pair(
    images_file: Path, labels_file: Path, n_classes: int, limits: ArchiveLimits
) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_require(images_file), ndim=3, limits=limits)
    labels = read_idx(_require(labels_file), ndim=1, limits=limits).astype(np.int64)
    if len(images) != len(labels):
        raise DataFormatError(
            f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} "
            "labels; one of them is from another download — download both again"
        )
    _check_labels(labels, n_classes, labels_file)
    return images[:, None], labels  # N×H×W → N×1×H×W


def _check_labels(labels: np.ndarray, n_classes: int, where: Path) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataFormatError(
            f"{where}: label values {labels.min()}..{labels.max()} fall outside the "
            f"{n_classes} classes 0..{n_classes - 1}; the file is corrupt — download it again"
        )


def _write_leading_valid(
    writer: PreparedWriter,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    n_valid: int,
) -> None:
    (images, labels), (test_images, test_labels) = train, test
    writer.write_split("train", images[n_valid:], labels[n_valid:])
    writer.write_split("valid", images[:n_valid], labels[:n_valid])
    writer.write_split("test", test_images, test_labels)


def _prepare_idx(
    name: str, raw_dir: Path, out_dir: Path, valid_first: int | None, log: Log, limits: ArchiveLimits
) -> None:
    classes = IDX_CLASSES[name]
    train = _read_idx_pair(*(raw_dir / f for f in IDX_FILES["train"]), len(classes), limits)
    test = _read_idx_pair(*(raw_dir / f for f in IDX_FILES["test"]), len(classes), limits)
    n_valid = _valid_first(name, valid_first, len(train[0]), IDX_FILES["train"][0])
    size = sum(a.nbytes for pair in (train, test) for a in pair)
    with PreparedWriter(out_dir, expected_bytes=size) as writer:
        _write_leading_valid(writer, train, test, n_valid)
        writer.set_classes(
            classes,
            dataset=name,
            source=[*IDX_FILES["train"], *IDX_FILES["test"]],
            valid_first=n_valid,
        )
    _log_counts(log, name, out_dir, len(train[0]) - n_valid, n_valid, len(test[0]))


def _gzip_size(path: Path) -> int | None:
    """The uncompressed size a gzip file records in its last four bytes (modulo 4 GiB); None
    for a file that is not gzip."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return None
            f.seek(-4, 2)
            return int.from_bytes(f.read(4), "little")
    except OSError:
        return None


def _prepare_cifar(
    name: str, raw_dir: Path, out_dir: Path, valid_first: int | None, log: Log, limits: ArchiveLimits
) -> None:
    archive = _require(raw_dir / CIFAR_FILE)
    n_valid = _valid_first(name, valid_first, None, CIFAR_FILE)
    # The prepared arrays take about what the tar inside the gzip does (pixels and labels).
    with PreparedWriter(out_dir, expected_bytes=_gzip_size(archive)) as writer:
        # Batches are written as the archive is read; the first n_valid images go to valid.
        valid, train, test = (writer.append_split(s, (3, 32, 32)) for s in ("valid", "train", "test"))
        route = {"train": _InOrder(_LeadingRows(n_valid, valid, train)), "test": _InOrder(test.append)}
        classes = stream_cifar10(
            archive, lambda split, i, images, labels: route[split].add(i, images, labels), limits
        )
        n_train = valid.count + train.count
        _valid_first(name, valid_first, n_train, CIFAR_FILE)
        writer.set_classes(classes, dataset=name, source=[CIFAR_FILE], valid_first=n_valid)
    _log_counts(log, name, out_dir, n_train - n_valid, n_valid, test.count)


class _InOrder:
    """Pass a split's batches on in batch order, holding any the archive stores early."""

    def __init__(self, emit: Callable[[np.ndarray, np.ndarray], Any]):
        self._emit, self._next, self._held = emit, 0, {}

    def add(self, position: int, images: np.ndarray, labels: np.ndarray) -> None:
        self._held[position] = (images, labels)
        while self._next in self._held:
            self._emit(*self._held.pop(self._next))
            self._next += 1


class _LeadingRows:
    """Send the first ``n`` rows appended to ``head``, the rest to ``tail``."""

    def __init__(self, n: int, head: SplitAppender, tail: SplitAppender):
        self._n, self._head, self._tail = n, head, tail

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> None:
        k = min(max(self._n - self._head.count, 0), len(images))
        if k:
            self._head.append(images[:k], labels[:k])
        if k < len(images):
            self._tail.append(images[k:], labels[k:])
