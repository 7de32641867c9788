"""ImageFolder sets: class folders of images, resized; a stratified valid split unless given.

Two layouts: ``train/<class>/…`` with optional ``val/`` and ``test/`` folders
(:func:`prepare_imagefolder`, and the training and test zips of horse_or_human and rps), and
one tree of class folders with no split folders, valid and test drawn from it
(:func:`prepare_class_folders`, Dogs vs Cats).

Unreadable images and members over the archive limits are skipped and listed in
``skipped.json``; ``files.json`` records which source file each row came from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cnnpipe import checks
from cnnpipe.data.archives import ArchiveLimits, MemberTooLarge, open_zip, read_zip_member
from cnnpipe.data.arrays import SPLITS, PreparedWriter, prepared_bytes
from cnnpipe.data.prepare.common import Log, _log_counts, _reason, _require
from cnnpipe.data.prepare.threads import _ordered_map, _progress
from cnnpipe.data.readers import (
    IMAGE_ERRORS,
    class_folders_root,
    decode_image,
    list_imagefolder,
    list_top_folders,
)
from cnnpipe.errors import DataFormatError

SKIPPED_FILE = "skipped.json"
FILES_FILE = "files.json"


def folder_params(
    name: str, image_size: Any, valid_fraction: Any, split_seed: Any
) -> tuple[tuple[int, int], float, int]:
    """``datasets.<name>``'s image_size, valid_fraction and split_seed, checked: (size, fraction, seed).

    A bad value raises a one-line :class:`~cnnpipe.checks.ParamError` naming the full key.
    """
    where = f"datasets.{name}"
    return (
        checks.image_size(image_size, f"{where}.image_size"),
        checks.fraction(valid_fraction, f"{where}.valid_fraction"),
        checks.integer(split_seed, f"{where}.split_seed", 0),
    )


def prepare_imagefolder(
    source: Path,
    out_dir: Path,
    *,
    image_size: int | list[int] | tuple[int, int],
    valid_fraction: float,
    split_seed: int,
    workers: int | None = None,
    log: Log = print,
    name: str = "imagefolder",
    limits: ArchiveLimits | None = None,
) -> None:
    """Prepare a local directory or zip laid out ``train/<class>/…``.

    An optional ``val/`` or ``validate/`` folder becomes the valid split (otherwise a
    stratified ``valid_fraction`` of train, seeded by ``split_seed``); an optional ``test/``
    folder the test split. ``name`` labels the log lines and param names in errors. A file
    or member over ``limits`` is skipped unread and listed in ``skipped.json``.
    """
    source = _require(Path(source))
    size, fraction, seed = folder_params(name, image_size, valid_fraction, split_seed)
    tops = list_top_folders(source)
    if "train" not in tops:
        found = ", ".join(f"{t}/" for t in tops) or "no folders"
        raise DataFormatError(
            f"{source}: no train/ folder (found {found}); lay it out as train/<class>/<image>, "
            "with optional val/ and test/ folders"
        )
    valid_folders = [t for t in ("val", "validate") if t in tops]
    if len(valid_folders) > 1:
        raise DataFormatError(
            f"{source}: has both val/ and validate/; keep one of them as the validation folder"
        )
    parts = {"train": (source, "train")}
    if valid_folders:
        parts["valid"] = (source, valid_folders[0])
    if "test" in tops:
        parts["test"] = (source, "test")
    _prepare_folders(
        name,
        parts,
        Path(out_dir),
        size=size,
        valid_fraction=fraction,
        split_seed=seed,
        workers=workers,
        log=log,
        meta={"source": [source.name]},
        limits=limits or ArchiveLimits(),
    )


def prepare_class_folders(
    source: Path,
    out_dir: Path,
    *,
    image_size: int | list[int] | tuple[int, int],
    valid_fraction: float,
    test_fraction: float,
    split_seed: int,
    workers: int | None = None,
    log: Log = print,
    name: str = "imagefolder",
    limits: ArchiveLimits | None = None,
) -> None:
    """Prepare a directory or zip whose top folders are the classes, with no split folders.

    The class folders may sit inside one wrapper folder (``PetImages/Cat/…``, see
    :func:`~cnnpipe.data.readers.class_folders_root`); classes are their names in sorted order,
    as torchvision's ImageFolder numbers them. Valid and test are stratified shares
    (``valid_fraction``, ``test_fraction``) drawn with ``split_seed`` (:func:`stratified_splits`);
    the rest is train. Unreadable images (empty, truncated, not an image) are skipped and listed
    in ``skipped.json``; files without an image extension (``Thumbs.db``) are not images and
    are ignored, as torchvision ignores them.
    """
    source = _require(Path(source))
    size, valid, seed = folder_params(name, image_size, valid_fraction, split_seed)
    test = checks.fraction(test_fraction, f"datasets.{name}.test_fraction")
    if valid + test >= 1:
        raise checks.param_error(
            f"datasets.{name}.test_fraction",
            f"must be below 1 - valid_fraction = {1 - valid:g}, to leave images to train on",
            test_fraction,
        )
    root = class_folders_root(source)
    classes, listed = _list_split(source, root)
    if len(classes) < 2:
        raise DataFormatError(
            f"{source}: found only the class folder {classes[0]!r}; lay it out as <class>/<image> "
            "(optionally inside one wrapper folder) with a folder per class"
        )
    train_idx, valid_idx, test_idx = stratified_splits([lbl for _, lbl in listed], (valid, test), seed)
    samples = {
        split: [listed[i] for i in idx]
        for split, idx in zip(SPLITS, (train_idx, valid_idx, test_idx), strict=True)
    }
    meta = {
        "source": [source.name],
        "root": root,
        "valid_fraction": valid,
        "test_fraction": test,
        "split_seed": seed,
    }
    _write_folders(
        name,
        classes,
        samples,
        dict.fromkeys(SPLITS, source),
        Path(out_dir),
        size,
        workers,
        log,
        meta,
        limits or ArchiveLimits(),
    )


def stratified_splits(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> tuple[np.ndarray, ...]:
    """Split indices into train and one part per fraction, each class in proportion, all sorted.

    Classes are taken in ascending order; each is permuted once by
    ``numpy.random.default_rng(seed)`` and gives its first ``round(fraction × count)`` images to
    the first part, the next ones to the second, and so on, always keeping at least one in train.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen: list[list[np.ndarray]] = [[np.empty(0, dtype=np.int64)] for _ in fractions]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for part, fraction in zip(chosen, fractions, strict=True):
            take = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1 - start)
            part.append(members[start : start + take])
            start += take
    parts = [np.sort(np.concatenate(part)) for part in chosen]
    in_train = np.ones(len(labels), dtype=bool)
    for part in parts:
        in_train[part] = False
    return (np.flatnonzero(in_train), *parts)


def stratified_split(labels: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, valid): :func:`stratified_splits` with one fraction."""
    train, valid = stratified_splits(labels, (valid_fraction,), seed)
    return train, valid


# ------------------------------------------------------------------ decoding the trees


@contextlib.contextmanager
def _member_reader(source: Path, limits: ArchiveLimits) -> Iterator[Callable[[str], bytes | str]]:
    """Yield ``read(path)`` for the paths list_imagefolder returned for ``source``.

    ``read`` gives the bytes, or the reason they were not read (a file that cannot be read, a
    member or file over ``limits``): such images are skipped like undecodable ones.
    """
    if source.is_dir():

        def read_file(path: str) -> bytes | str:
            try:
                problem = limits.size_problem(Path(path).stat().st_size)
                if problem is not None:
                    return f"{problem}; not read"
                return Path(path).read_bytes()
            except OSError as exc:
                return _reason(exc)

        yield read_file
    else:
        with open_zip(source) as zf:
            infos = {info.filename: info for info in zf.infolist()}

            def read_member(name: str) -> bytes | str:
                try:
                    return read_zip_member(zf, infos[name], source, limits)
                except MemberTooLarge as exc:  # checked before anything is inflated
                    return f"{exc.problem}; not read (a decompression bomb?)"

            yield read_member


def _decode_or_reason(data: bytes | str, size: tuple[int, int]) -> np.ndarray | str:
    if isinstance(data, str):
        return data
    if not data:  # Dogs vs Cats ships such files under image names
        return "empty file (0 bytes)"
    try:
        return decode_image(data, size)
    except IMAGE_ERRORS as exc:
        return _reason(exc)


def _remap(
    samples: list[tuple[str, int]], classes: list[str], train_classes: list[str], source: Path, prefix: str
) -> list[tuple[str, int]]:
    index = {c: i for i, c in enumerate(train_classes)}
    unknown = [c for c in classes if c not in index]
    if unknown:
        where = f"{source}:{prefix}/" if prefix else str(source)
        raise DataFormatError(
            f"{where}: class {', '.join(repr(c) for c in unknown)} is not among the training "
            f"classes ({', '.join(train_classes)}); fix the folder names so every class has "
            "training images"
        )
    return [(path, index[classes[label]]) for path, label in samples]


def _list_split(source: Path, prefix: str) -> tuple[list[str], list[tuple[str, int]]]:
    classes, samples = list_imagefolder(source, prefix)
    if not samples:
        where = f"{prefix}/ in {source}" if prefix else str(source)
        raise DataFormatError(
            f"{where}: no images in class folders (<class>/<image> with an image extension); "
            "check the archive's layout"
        )
    return classes, samples


def _prepare_folders(
    name: str,
    parts: dict[str, tuple[Path, str]],
    out_dir: Path,
    *,
    size: tuple[int, int],
    valid_fraction: float,
    split_seed: int,
    workers: int | None,
    log: Log,
    meta: dict[str, Any],
    limits: ArchiveLimits,
) -> None:
    """Prepare an ImageFolder set whose splits come from ``parts``: split → (source, prefix)."""
    classes, train = _list_split(*parts["train"])
    samples: dict[str, list[tuple[str, int]]] = {"train": train, "valid": [], "test": []}
    for split in ("valid", "test"):
        if split in parts:
            split_classes, listed = _list_split(*parts[split])
            samples[split] = _remap(listed, split_classes, classes, *parts[split])
    if "valid" not in parts:
        train_idx, valid_idx = stratified_split([lbl for _, lbl in train], valid_fraction, split_seed)
        samples["train"] = [train[i] for i in train_idx]
        samples["valid"] = [train[i] for i in valid_idx]
        meta = {**meta, "valid_fraction": valid_fraction, "split_seed": split_seed}
    source_of = {split: parts.get(split, parts["train"])[0] for split in samples}
    _write_folders(name, classes, samples, source_of, out_dir, size, workers, log, meta, limits)


def _write_folders(
    name: str,
    classes: list[str],
    samples: dict[str, list[tuple[str, int]]],
    source_of: dict[str, Path],
    out_dir: Path,
    size: tuple[int, int],
    workers: int | None,
    log: Log,
    meta: dict[str, Any],
    limits: ArchiveLimits,
) -> None:
    """Decode every split's listed images (read from ``source_of[split]``) into ``out_dir``."""
    skipped: list[dict[str, str]] = []
    kept: dict[str, list[str]] = {}
    total = sum(map(len, samples.values()))
    expected = prepared_bytes(total, (3, *size))
    with PreparedWriter(out_dir, expected_bytes=expected) as writer, _progress(total, name) as bar:
        for split, listed in samples.items():
            keep = _decode_split(writer, split, source_of[split], listed, size, workers, bar, skipped, limits)
            writer.shrink_split(split, keep)
            kept[split] = [
                _relative(path, source_of[split]) for (path, _), ok in zip(listed, keep, strict=True) if ok
            ]
        if not kept["train"]:
            raise DataFormatError(
                f"{source_of['train']}: none of the {len(samples['train'])} training images could "
                f"be read (first error: {skipped[0]['error']}); download it again"
            )
        writer.set_classes(classes, dataset=name, image_size=list(size), skipped=len(skipped), **meta)
        writer.write_json(SKIPPED_FILE, skipped)
        writer.write_json(FILES_FILE, kept)
    if skipped:
        log(
            f"{name}: skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''} "
            f"(listed in {out_dir / SKIPPED_FILE})"
        )
    _log_counts(log, name, out_dir, *(len(v) for v in kept.values()))


def _relative(path: str, source: Path) -> str:
    """A listed path as recorded in files.json/skipped.json: relative to a source directory."""
    return Path(path).relative_to(source).as_posix() if source.is_dir() else path


def _decode_split(
    writer: PreparedWriter,
    split: str,
    source: Path,
    listed: list[tuple[str, int]],
    size: tuple[int, int],
    workers: int | None,
    bar: tqdm,
    skipped: list[dict[str, str]],
    limits: ArchiveLimits,
) -> np.ndarray:
    """Decode ``listed`` into ``split``'s arrays; return the boolean mask of readable images."""
    arrays = writer.new_split(split, len(listed), (3, *size))
    arrays.labels[:] = [label for _, label in listed]
    keep = np.ones(len(listed), dtype=bool)

    def decode_into(i: int, data: bytes | str) -> str | None:
        result = _decode_or_reason(data, size)
        if isinstance(result, str):
            return result
        arrays.images[i] = result
        return None

    with _member_reader(source, limits) as read:
        jobs = ((i, read(path)) for i, (path, _) in enumerate(listed))
        for i, error in enumerate(_ordered_map(decode_into, jobs, workers)):
            if error is not None:
                keep[i] = False
                path = _relative(listed[i][0], source)
                skipped.append({"path": path, "split": split, "source": source.name, "error": error})
            bar.update()
    arrays.images.flush()
    arrays.labels.flush()
    return keep
