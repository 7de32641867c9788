"""CelebA: splits from the partition list, full-size images decoded straight from the zip."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from cnnpipe.data.archives import ArchiveLimits, MemberTooLarge, open_zip, read_zip_member
from cnnpipe.data.arrays import PreparedWriter, prepared_bytes
from cnnpipe.data.celeba_lists import read_celeba_attributes, read_celeba_partition
from cnnpipe.data.prepare.common import Log, _log_counts, _reason, _require
from cnnpipe.data.prepare.threads import _ordered_map, _progress
from cnnpipe.data.readers import IMAGE_ERRORS, decode_image
from cnnpipe.data.sources import CELEBA_ATTR, CELEBA_FOLDER, CELEBA_PARTITION, CELEBA_SPLIT_CODE, CELEBA_ZIP
from cnnpipe.errors import DataFormatError


def _prepare_celeba(
    name: str, raw_dir: Path, out_dir: Path, workers: int | None, log: Log, limits: ArchiveLimits
) -> None:
    zip_path = _require(raw_dir / CELEBA_ZIP)
    attr_names, by_split = _celeba_lists(raw_dir)
    total = sum(len(files) for files, _ in by_split.values())
    with PreparedWriter(out_dir) as writer:
        with open_zip(zip_path) as zf, _progress(total, name) as bar:
            members = {info.filename: info for info in zf.infolist()}
            for files, _ in by_split.values():
                for file in files:
                    info = members.get(f"{CELEBA_FOLDER}/{file}")
                    if info is None:
                        raise DataFormatError(
                            f"{zip_path}: {CELEBA_FOLDER}/{file}, listed in {CELEBA_PARTITION}, "
                            "is missing; the zip is incomplete — delete it and download it again"
                        )
                    problem = limits.zip_problem(info)
                    if problem is not None:  # refused before anything is inflated
                        raise MemberTooLarge(zip_path, info.filename, problem)

            def read(member: str) -> bytes:
                return read_zip_member(zf, members[member], zip_path, limits)

            # Every image must have the shape of the first one (3×218×178 upstream).
            first = f"{CELEBA_FOLDER}/{next(f for files, _ in by_split.values() for f in files)}"
            shape = _decode_celeba(zip_path, first, read(first)).shape
            writer.expected_bytes = prepared_bytes(total, shape, (len(attr_names),))
            for split, (files, labels) in by_split.items():
                arrays = writer.new_split(split, len(files), shape, labels.shape[1:])
                arrays.labels[:] = labels
                members_in_order = (f"{CELEBA_FOLDER}/{f}" for f in files)
                jobs = ((arrays.images, i, m, read(m)) for i, m in enumerate(members_in_order))
                for _ in _ordered_map(partial(_decode_celeba_into, zip_path, shape), jobs, workers):
                    bar.update()
                arrays.images.flush()
                arrays.labels.flush()
        writer.set_classes(
            attr_names,
            label_type="attributes",
            dataset=name,
            source=[CELEBA_ZIP, CELEBA_ATTR, CELEBA_PARTITION],
            label_values="attributes -1/1 of list_attr_celeba.txt as 0/1",
        )
    _log_counts(log, name, out_dir, *(len(files) for files, _ in by_split.values()))


def _celeba_lists(raw_dir: Path) -> tuple[list[str], dict[str, tuple[list[str], np.ndarray]]]:
    """Attribute names and, per split, its files in partition-file order with 0/1 labels."""
    attr_path = _require(raw_dir / CELEBA_ATTR)
    attr_names, attr_files, attrs = read_celeba_attributes(attr_path)
    partition = read_celeba_partition(_require(raw_dir / CELEBA_PARTITION))
    row_of = {f: i for i, f in enumerate(attr_files)}
    for file in partition:
        if file not in row_of:
            raise DataFormatError(
                f"{attr_path}: no attribute row for {file}, which {CELEBA_PARTITION} lists; the "
                "two files do not belong together — download both again"
            )
    by_split = {}
    for split, code in CELEBA_SPLIT_CODE.items():
        files = [f for f, c in partition.items() if c == code]
        rows = np.array([row_of[f] for f in files], dtype=np.int64)
        # {-1, 1} → {0, 1}, as torchvision's CelebA(target_type="attr") returns them.
        by_split[split] = (files, (attrs[rows] + 1) // 2)
    return attr_names, by_split


def _decode_celeba(zip_path: Path, member: str, data: bytes) -> np.ndarray:
    try:
        return decode_image(data, None)
    except IMAGE_ERRORS as exc:
        raise DataFormatError(
            f"{zip_path}: {member} is not a readable image ({_reason(exc)}); the zip is corrupt "
            "— delete it and download it again"
        ) from None


def _decode_celeba_into(
    zip_path: Path, shape: tuple[int, ...], images: np.ndarray, i: int, member: str, data: bytes
) -> None:
    image = _decode_celeba(zip_path, member, data)
    if image.shape != shape:
        raise DataFormatError(
            f"{zip_path}: {member} is {image.shape[2]}×{image.shape[1]} pixels, not "
            f"{shape[2]}×{shape[1]} like the others; the zip is not img_align_celeba — "
            "download it again"
        )
    images[i] = image
