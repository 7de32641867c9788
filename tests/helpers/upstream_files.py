"""Upstream files for the tests: whole archives read or extracted, and torchvision's CelebA extras.

The pipeline streams archives member by member and never extracts them; the tests (and
benchmarks/train_speed.py, which builds torchvision's CelebA from the sample mirror) also want
them in memory or on disk, checked the same way.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnpipe.data.archives import (
    ArchiveLimits,
    MemberTooLarge,
    check_member_name,
    iter_tar_members,
    open_zip,
    read_zip_member,
)
from cnnpipe.data.readers import stream_cifar10
from cnnpipe.data.sources import CELEBA_PARTITION
from cnnpipe.fileio import atomic_dir, atomic_write_bytes


def iter_tar_files(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for each regular file of a (compressed) tar archive.

    See :func:`iter_tar_members`: the archive is streamed once and checked as it is read.
    """
    for member in iter_tar_members(path):
        yield member.name, member.read()


def safe_extract(archive: str | Path, dest: str | Path, limits: ArchiveLimits | None = None) -> Path:
    """Extract a zip or tar archive into ``dest`` (replaced atomically); return ``dest``.

    A member over ``limits`` (default :class:`ArchiveLimits`) raises :class:`MemberTooLarge`.
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or ArchiveLimits()
    with atomic_dir(dest) as tmp:
        if archive.suffix.lower() == ".zip" or zipfile.is_zipfile(archive):
            with open_zip(archive) as zf:
                for info in zf.infolist():
                    target = tmp / check_member_name(info.filename, archive)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(read_zip_member(zf, info, archive, limits))
        else:
            for member in iter_tar_members(archive):
                problem = limits.size_problem(member.size)
                if problem is not None:
                    raise MemberTooLarge(archive, member.name, problem)
                target = tmp / check_member_name(member.name, archive)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(member.read())
    return dest


def read_cifar10(archive: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Read ``cifar-10-python.tar.gz`` into memory without extracting it.

    Returns ``({"train": (images, labels), "test": (images, labels)}, class names)`` with
    images uint8 N×3×32×32 and labels int64; train is ``data_batch_1`` … ``data_batch_5`` in
    that order (as torchvision concatenates them), test is ``test_batch``, and the class
    names come from ``batches.meta``. :func:`stream_cifar10` does the same without holding
    the whole set in memory.
    """
    batches: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def keep(split: str, position: int, images: np.ndarray, labels: np.ndarray) -> None:
        batches[split, position] = (images, labels)

    classes = stream_cifar10(archive, keep)
    splits = {}
    for split in ("train", "test"):
        parts = [batches[key] for key in sorted(k for k in batches if k[0] == split)]
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return splits, classes


def write_celeba_torchvision_extras(folder: Path) -> None:
    """Write the three other files torchvision's ``CelebA`` loads next to the sample ones.

    ``identity_CelebA.txt``, ``list_bbox_celeba.txt`` and
    ``list_landmarks_align_celeba.txt`` (each with upstream's header lines), one row per
    image of ``folder/list_eval_partition.txt`` in the same order, with plausible values.
    """
    folder = Path(folder)
    names = [line.split()[0] for line in (folder / CELEBA_PARTITION).read_text().splitlines() if line.strip()]
    identity = [f"{f} {1 + i // 20}" for i, f in enumerate(names)]
    bbox = [str(len(names)), "image_id x_1 y_1 width height"]
    bbox += [f"{f} {95 + i % 7:>5d} {71 + i % 5:>3d} {226:>3d} {313:>3d}" for i, f in enumerate(names)]
    landmarks = [
        str(len(names)),
        "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
        "leftmouth_x leftmouth_y rightmouth_x rightmouth_y",
    ]
    landmarks += [
        f"{f} {70:>4d} {108:>4d} {108:>4d} {108:>4d} {89:>4d} {128:>4d} "
        f"{72:>4d} {150:>4d} {106:>4d} {150:>4d}"
        for f in names
    ]
    for file, lines in (
        ("identity_CelebA.txt", identity),
        ("list_bbox_celeba.txt", bbox),
        ("list_landmarks_align_celeba.txt", landmarks),
    ):
        atomic_write_bytes(folder / file, ("\n".join(lines) + "\n").encode())
