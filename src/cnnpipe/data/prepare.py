"""The prepare step: turn a raw dataset folder into ``data/prepared/<dataset>/``.

:func:`prepare_dataset` dispatches on the registry's ``kind``:

* ``idx`` (mnist, fashion_mnist) and ``cifar`` (cifar10): the first
  ``datasets.<name>.valid_first`` training images become the valid split, the rest train;
  the upstream test files are the test split.
* ``celeba``: splits from ``list_eval_partition.txt``; full-resolution images decoded
  straight from the zip into memory-mapped arrays; labels are the 40 attributes as 0/1.
* ``imagefolder`` (horse_or_human, rps, and any local tree via :func:`prepare_imagefolder`):
  images resized to ``image_size``; valid is a seeded stratified split of train unless the
  tree has its own val/ folder. Unreadable images are skipped and listed in ``skipped.json``;
  ``files.json`` records which source file each row came from.

Archive members are read within ``limits`` (:class:`~cnnpipe.data.archives.ArchiveLimits`,
params ``data.max_member_mb`` and ``data.max_ratio``), checked before anything is inflated: in
an ImageFolder set a member over them is skipped and listed in ``skipped.json`` like an
unreadable image; in a fixed upstream set (IDX, CIFAR-10, CelebA) it fails the stage in one line.

Everything is written through :class:`~cnnpipe.data.arrays.PreparedWriter`, so a failure
leaves no partial output behind; a full disk is one line naming the dataset.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cnnpipe.cpus import usable_cpus
from cnnpipe.data.archives import ArchiveLimits, MemberTooLarge, open_zip, read_zip_member
from cnnpipe.data.arrays import PreparedWriter, SplitAppender, prepared_bytes
from cnnpipe.data.readers import (
    IMAGE_ERRORS,
    decode_image,
    list_imagefolder,
    list_top_folders,
    read_celeba_attributes,
    read_celeba_partition,
    read_idx,
    stream_cifar10,
)
from cnnpipe.data.sources import (
    CELEBA_ATTR,
    CELEBA_FOLDER,
    CELEBA_PARTITION,
    CELEBA_SPLIT_CODE,
    CELEBA_ZIP,
    CIFAR_FILE,
    IDX_CLASSES,
    IDX_FILES,
    get_source,
)
from cnnpipe.errors import DataFormatError, ParamError

SKIPPED_FILE = "skipped.json"
FILES_FILE = "files.json"

Log = Callable[[str], Any]
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def prepare_dataset(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    params: Mapping[str, Any],
    *,
    workers: int | None = None,
    log: Log = print,
    limits: ArchiveLimits | None = None,
) -> None:
    """Dispatch on ``SOURCES[name].kind`` and write the prepared directory atomically.

    ``raw_dir`` holds the upstream files under their upstream names; ``params`` is
    ``datasets.<name>`` from params.yaml; ``workers`` is the number of image-decoding
    threads (default: one per CPU); ``limits`` bound what archive members may inflate to
    (default :class:`~cnnpipe.data.archives.ArchiveLimits`).
    """
    source = get_source(name)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    limits = limits or ArchiveLimits()
    if source.kind == "idx":
        _prepare_idx(name, raw_dir, out_dir, params, log, limits)
    elif source.kind == "cifar":
        _prepare_cifar(name, raw_dir, out_dir, params, log, limits)
    elif source.kind == "celeba":
        _prepare_celeba(name, raw_dir, out_dir, workers, log, limits)
    elif source.kind == "imagefolder":
        # The registry lists the training zip first and the held-out evaluation zip second.
        train_file, test_file = (f.name for f in source.files)
        where = f"datasets.{name}"
        _prepare_folders(
            name,
            {"train": (_require(raw_dir / train_file), ""), "test": (_require(raw_dir / test_file), "")},
            out_dir,
            size=_image_size(params.get("image_size"), f"{where}.image_size"),
            valid_fraction=_fraction(params.get("valid_fraction"), f"{where}.valid_fraction"),
            split_seed=_seed(params.get("split_seed"), f"{where}.split_seed"),
            workers=workers,
            log=log,
            meta={"source": [train_file, test_file]},
            limits=limits,
        )
    else:  # a registry entry without a reader is a programming error
        raise ValueError(f"no reader for dataset kind {source.kind!r}")


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
    where = f"datasets.{name}"
    size = _image_size(image_size, f"{where}.image_size")
    fraction = _fraction(valid_fraction, f"{where}.valid_fraction")
    seed = _seed(split_seed, f"{where}.split_seed")
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


def stratified_split(labels: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, valid), each class in proportion, both sorted ascending.

    Each class gives ``round(fraction × count)`` images to valid, chosen by a permutation
    from ``numpy.random.default_rng(seed)`` (classes in ascending order), and always keeps
    at least one in train.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = [np.empty(0, dtype=np.int64)]
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = min(int(np.floor(valid_fraction * len(members) + 0.5)), len(members) - 1)
        chosen.append(rng.permutation(members)[:take])
    valid = np.sort(np.concatenate(chosen))
    in_train = np.ones(len(labels), dtype=bool)
    in_train[valid] = False
    return np.flatnonzero(in_train), valid


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


# ------------------------------------------------------------------- IDX and CIFAR


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
    name: str, raw_dir: Path, out_dir: Path, params: Mapping[str, Any], log: Log, limits: ArchiveLimits
) -> None:
    classes = IDX_CLASSES[name]
    train = _read_idx_pair(*(raw_dir / f for f in IDX_FILES["train"]), len(classes), limits)
    test = _read_idx_pair(*(raw_dir / f for f in IDX_FILES["test"]), len(classes), limits)
    n_valid = _valid_first(name, params, len(train[0]), IDX_FILES["train"][0])
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
    name: str, raw_dir: Path, out_dir: Path, params: Mapping[str, Any], log: Log, limits: ArchiveLimits
) -> None:
    archive = _require(raw_dir / CIFAR_FILE)
    n_valid = _valid_first(name, params, None, CIFAR_FILE)
    # The prepared arrays take about what the tar inside the gzip does (pixels and labels).
    with PreparedWriter(out_dir, expected_bytes=_gzip_size(archive)) as writer:
        # Batches are written as the archive is read; the first n_valid images go to valid.
        valid, train, test = (writer.append_split(s, (3, 32, 32)) for s in ("valid", "train", "test"))
        route = {"train": _InOrder(_LeadingRows(n_valid, valid, train)), "test": _InOrder(test.append)}
        classes = stream_cifar10(
            archive, lambda split, i, images, labels: route[split].add(i, images, labels), limits
        )
        n_train = valid.count + train.count
        _valid_first(name, params, n_train, CIFAR_FILE)
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


def _log_counts(log: Log, name: str, out_dir: Path, *counts: int) -> None:
    train, valid, test = counts
    log(f"{name}: prepared train {train}, valid {valid}, test {test} images in {out_dir}")


# --------------------------------------------------------------- threaded decoding


def _ordered_map(fn: Callable[..., Any], jobs: Iterable[tuple], workers: int | None) -> Iterator[Any]:
    """``fn(*job)`` in a thread pool, results in job order, with a bounded number in flight.

    ``jobs`` is consumed lazily in the calling thread (that is where archive members are
    read), so memory stays flat however many images there are.
    """
    workers = workers or usable_cpus()
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(fn, *job))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _progress(total: int, name: str) -> tqdm:
    # disable=None: a bar on a terminal, no carriage-return noise in logs.
    return tqdm(total=total, desc=name, unit="img", disable=None)


# --------------------------------------------------------------------------- CelebA


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


# ---------------------------------------------------------------------- ImageFolder


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


def _reason(exc: Exception) -> str:
    # Pillow names the in-memory buffer ("<_io.BytesIO object at 0x7f…>"): drop it so that
    # skipped.json is the same on every run.
    return f"{type(exc).__name__}: {_OBJECT_REPR.sub('', str(exc)).strip()}"


def _decode_or_reason(data: bytes | str, size: tuple[int, int]) -> np.ndarray | str:
    if isinstance(data, str):
        return data
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
                f"{parts['train'][0]}: none of the {len(samples['train'])} training images could "
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
