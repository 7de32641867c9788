"""Readers for the upstream dataset formats.

One function per format, each returning plain numpy arrays and failing with a
:class:`~cnnpipe.errors.DataFormatError` (or :class:`~cnnpipe.errors.ArchiveError`) whose
message names the file and says what to do:

* IDX (MNIST, Fashion-MNIST): :func:`read_idx`
* the CIFAR-10 python pickles inside ``cifar-10-python.tar.gz``, streamed batch by batch:
  :func:`stream_cifar10`
* CelebA's attribute and partition lists: :mod:`cnnpipe.data.celeba_lists`
* ImageFolder trees in a directory or a zip: :func:`list_imagefolder`, :func:`decode_image`
  (which ``cnnpipe predict`` uses too, so new images are read as the training ones were)

Archives are read in place through :mod:`cnnpipe.data.archives`, never extracted, and
nothing is inflated past the sizes :class:`~cnnpipe.data.archives.ArchiveLimits` allows.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import posixpath
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from cnnpipe.data.archives import (
    ArchiveLimits,
    MemberTooLarge,
    check_member_name,
    iter_tar_members,
    open_zip,
)
from cnnpipe.data.sources import CIFAR_FOLDER, CIFAR_META, CIFAR_TEST_BATCHES, CIFAR_TRAIN_BATCHES
from cnnpipe.errors import ArchiveError, DataFormatError

# torchvision.datasets.folder.IMG_EXTENSIONS (kept here so reading needs no torch import).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Errors Pillow raises for a file it cannot decode (UnidentifiedImageError is an OSError;
# ImageTooLarge, below, is a ValueError).
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

# --------------------------------------------------------------------------- IDX

# IDX type codes (third magic byte) → big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_KIND = {1: "labels", 3: "images"}


def _too_large(path: Path, problem: str) -> DataFormatError:
    return DataFormatError(
        f"{path}: {problem} (a decompression bomb?); it was not read — the file is not the "
        "upstream one: delete it and download it again (or raise the limit in params.yaml)"
    )


def _read_maybe_gzip(path: Path, limits: ArchiveLimits) -> bytes:
    """The file's bytes, inflated if it is gzip: never more than ``limits`` allow.

    The size gzip records in its last four bytes is checked before inflating, and inflating
    stops one byte past the limit whatever the stream holds.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path} is missing; download it first (`dvc repro`)") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    declared = int.from_bytes(raw[-4:], "little") if len(raw) >= 18 else 0
    problem = limits.size_problem(declared)
    if problem is not None:
        raise _too_large(path, problem)
    chunks, total = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                if total > limits.max_member_bytes:
                    raise _too_large(
                        path, f"inflates past the limit data.max_member_mb: {limits.max_member_mb:g}"
                    )
                chunks.append(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFormatError(
            f"{path}: not a readable gzip file ({exc}); it is truncated or corrupt — delete it "
            "and download it again"
        ) from None
    return b"".join(chunks)


def read_idx(path: Path, *, ndim: int | None = None, limits: ArchiveLimits | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a native-endian numpy array.

    The magic number must be ``0x00 0x00 <type code> <ndim>``; ``ndim=3`` additionally
    requires uint8 images (``0x00000803``) and ``ndim=1`` uint8 labels (``0x00000801``), as
    in the MNIST files. The payload size must match the dimensions exactly. A gzip file is
    inflated within ``limits`` (default :class:`~cnnpipe.data.archives.ArchiveLimits`).
    """
    path = Path(path)
    data = _read_maybe_gzip(path, limits or ArchiveLimits())
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    shown = f"0x{magic:08x}" if magic is not None else f"{len(data)} bytes only"
    if ndim is not None:
        expected = 0x0800 + ndim
        if magic != expected:
            what = _IDX_KIND.get(ndim, f"{ndim}-d uint8 data")
            raise DataFormatError(
                f"{path}: not an IDX file of {what} (magic {shown}, expected 0x{expected:08x}); "
                "the file is corrupt or not what its name says — download it again"
            )
    elif magic is None or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataFormatError(
            f"{path}: not an IDX file (magic {shown}, expected 0x0000TTNN with a type code TT "
            "and a dimension count NN); the file is corrupt — download it again"
        )
    dims_count = data[3]
    header = 4 + 4 * dims_count
    if len(data) < header:
        raise DataFormatError(
            f"{path}: IDX header is cut short ({len(data)} bytes); the file is truncated — download it again"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims_count))
    dtype = _IDX_DTYPES[data[2]]
    expected_bytes = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_bytes:
        raise DataFormatError(
            f"{path}: IDX dimensions {'×'.join(map(str, dims))} need {expected_bytes} bytes but "
            f"the file holds {len(data)}; it is truncated or corrupt — download it again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


# ------------------------------------------------------------------------ CIFAR-10


# Everything the CIFAR pickles (written by Python 2 numpy, or any later numpy) may refer to.
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("__builtin__", "bytes"),  # protocol 2 writes an empty bytes object as bytes()
    ("builtins", "bytes"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _unpickle(stream: BinaryIO, where: str) -> dict[str, object]:
    # encoding="bytes" hands a Python 2 pickle's pixel string to numpy as it is; "latin1"
    # would decode it to text and numpy would encode it back, two extra copies per batch.
    try:
        obj = _ArrayUnpickler(stream, encoding="bytes").load()
    except ArchiveError:
        raise
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise DataFormatError(
            f"{where}: not a CIFAR pickle ({type(exc).__name__}: {exc}); the archive is "
            "corrupt — delete it and download it again"
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a dict in the pickle, found {type(obj).__name__}")
    # Python 2 pickles read with encoding="bytes" have bytes keys; accept both.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(entry: dict[str, object], where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(entry["data"])
        labels = np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"])
    except KeyError:
        raise DataFormatError(
            f"{where}: batch has no 'data'/'labels' entries (keys: {sorted(entry)}); the archive "
            "is not the CIFAR-10 python version"
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFormatError(f"{where}: batch data is {data.dtype} {data.shape}, expected uint8 N×3072")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataFormatError(f"{where}: {len(labels)} labels for {len(data)} images; the archive is corrupt")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_classes(meta: dict[str, object], where: str) -> list[str]:
    classes = meta.get("label_names")
    if not isinstance(classes, list) or not all(isinstance(c, (str, bytes)) for c in classes):
        raise DataFormatError(f"{where}: no list of label_names; the archive is corrupt")
    return [c.decode("latin1") if isinstance(c, bytes) else c for c in classes]


# Where each batch goes: (split, position of the batch within the split).
_CIFAR_BATCHES = {
    **{name: ("train", i) for i, name in enumerate(CIFAR_TRAIN_BATCHES)},
    **{name: ("test", i) for i, name in enumerate(CIFAR_TEST_BATCHES)},
}

# sink(split, position, images, labels), called once per batch in archive order.
CifarSink = Callable[[str, int, np.ndarray, np.ndarray], None]


def stream_cifar10(archive: Path, sink: CifarSink, limits: ArchiveLimits | None = None) -> list[str]:
    """Read ``cifar-10-python.tar.gz`` in one pass, handing each batch to ``sink`` as it is read.

    ``sink(split, position, images, labels)`` gets images uint8 N×3×32×32 and labels int64
    of ``data_batch_<position + 1>`` (split "train") or ``test_batch`` (split "test", position
    0), in the order the archive stores them, which need not be the batch order. Returns the
    class names from ``batches.meta``. Everything is checked, including label ranges, before
    this returns, so a sink that writes output must only publish it after a normal return.
    A batch whose tar header declares more than ``limits`` allow is refused unread.
    """
    archive = Path(archive)
    limits = limits or ArchiveLimits()
    seen: dict[str, tuple[int, int]] = {}  # batch → (lowest, highest) label
    classes = None
    for member in iter_tar_members(archive):
        base = posixpath.basename(member.name)
        if base not in _CIFAR_BATCHES and base != CIFAR_META:
            continue
        if not posixpath.dirname(member.name).rstrip("/").endswith(CIFAR_FOLDER):
            continue
        where = f"{archive}:{base}"
        if base in seen or (base == CIFAR_META and classes is not None):
            raise DataFormatError(f"{where}: found twice in the archive; download it again")
        problem = limits.size_problem(member.size)
        if problem is not None:
            raise MemberTooLarge(archive, member.name, problem)
        entry = _unpickle(member, where)
        if base == CIFAR_META:
            classes = _cifar_classes(entry, where)
            continue
        images, labels = _cifar_batch(entry, where)
        seen[base] = (int(labels.min()), int(labels.max())) if len(labels) else (0, 0)
        sink(*_CIFAR_BATCHES[base], images, labels)
    missing = sorted({*_CIFAR_BATCHES, *([CIFAR_META] if classes is None else [])} - seen.keys())
    if missing:
        raise DataFormatError(
            f"{archive}: no {', '.join(missing)} under {CIFAR_FOLDER}/; this is not the "
            "CIFAR-10 python archive — download cifar-10-python.tar.gz again"
        )
    for split, names in (("train", CIFAR_TRAIN_BATCHES), ("test", CIFAR_TEST_BATCHES)):
        low, high = min(seen[n][0] for n in names), max(seen[n][1] for n in names)
        if low < 0 or high >= len(classes):
            raise DataFormatError(
                f"{archive}: {split} labels range {low}..{high} but there are "
                f"{len(classes)} classes; the archive is corrupt — download it again"
            )
    return classes


# --------------------------------------------------------------------- ImageFolder


def _is_hidden(relpath: str) -> bool:
    parts = relpath.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def _list_files(source: Path) -> list[str]:
    """Relative posix paths of every (non-hidden) file in a directory or zip."""
    if source.is_dir():
        names = [
            Path(root, f).relative_to(source).as_posix()
            for root, _, files in os.walk(source, followlinks=True)
            for f in files
        ]
    elif source.is_file():
        with open_zip(source) as zf:
            names = [
                check_member_name(i.filename, source).as_posix() for i in zf.infolist() if not i.is_dir()
            ]
    else:
        raise DataFormatError(f"{source} is missing; download it first (`dvc repro`)")
    return [n for n in names if not _is_hidden(n)]


def _strip_root(files: list[str], prefix: str) -> str:
    """The single top folder to strip (``"rps/"`` for rps.zip), or ``""``.

    It is stripped only when everything sits under it and, without a prefix, the images lie
    in class folders below it (so a lone class folder is not mistaken for a wrapper), or with
    a prefix, when the prefix is found under it.
    """
    tops = {f.split("/", 1)[0] for f in files if "/" in f}
    if len(tops) != 1 or any("/" not in f for f in files):
        return ""
    top = tops.pop() + "/"
    if prefix:
        inner = f"{top}{prefix}/"
        at_root = any(f.startswith(f"{prefix}/") for f in files)
        return top if not at_root and any(f.startswith(inner) for f in files) else ""
    return top if all(f.count("/") >= 2 for f in files if _is_image(f)) else ""


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def list_imagefolder(source: Path, prefix: str = "") -> tuple[list[str], list[tuple[str, int]]]:
    """List an ImageFolder tree (a directory or a zip) the way torchvision's ImageFolder does.

    Returns ``(classes, samples)``: classes are the folders directly below the root (or
    below ``prefix``) that hold at least one image, sorted alphabetically; samples are
    ``(path, class index)`` ordered by class, then folder, then file name, where path is the
    zip member name or the file path. Images are recognised by torchvision's
    ``IMG_EXTENSIONS`` (any case); ``__MACOSX/`` and dotfiles are ignored, and images lying
    directly in the root belong to no class. A zip (or directory) whose content all sits in
    one top folder, like rps.zip's ``rps/``, is read from inside that folder.
    """
    source = Path(source)
    files = _list_files(source)
    prefix = prefix.strip("/")
    base = _strip_root(files, prefix) + (f"{prefix}/" if prefix else "")
    found = []  # (class, folder, file name, full relative path)
    for rel in files:
        if not rel.startswith(base) or not _is_image(rel):
            continue
        inner = rel[len(base) :]
        if "/" not in inner:
            continue
        folder, name = posixpath.split(inner)
        found.append((inner.split("/", 1)[0], folder, name, rel))
    classes = sorted({c for c, *_ in found})
    index = {c: i for i, c in enumerate(classes)}
    # torchvision walks each class folder with sorted(os.walk(...)) and sorted file names:
    # sub-folders order by their path string, the class folder's own files first.
    found.sort(key=lambda f: (index[f[0]], f[1], f[2]))
    root = "" if source.is_file() else f"{source}/"
    return classes, [(root + rel, index[c]) for c, _, _, rel in found]


def class_folders_root(source: Path) -> str:
    """The wrapper folder of a tree of class folders (``"PetImages"``), or ``""`` if there is none.

    The wrapper is the one top folder holding every image, each at least one folder further
    down (``PetImages/Cat/1.jpg``); files beside it that are no images (a licence, a readme)
    do not count. Without one, the top folders themselves are the classes.
    """
    images = [f for f in _list_files(Path(source)) if _is_image(f)]
    tops = {f.split("/", 1)[0] for f in images}
    if len(tops) == 1 and images and all(f.count("/") >= 2 for f in images):
        return tops.pop()
    return ""


def list_top_folders(source: Path) -> list[str]:
    """Folder names at the top of a directory or zip, inside a single wrapper folder holding train/."""
    files = _list_files(Path(source))
    base = _strip_root(files, "train")
    inner = (f[len(base) :] for f in files if f.startswith(base))
    return sorted({f.split("/", 1)[0] for f in inner if "/" in f})


# Pillow modes of one 16-bit channel, 0..65535 from black to white ("I", 32-bit, is how Pillow
# opens 16-bit PGM and some 16-bit TIFFs; values outside 0..65535 are clipped).
WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# round(v × 255 / 65535) = round(v / 257) for every 16-bit v, as a lookup table.
_WIDE_TO_8BIT = ((np.arange(65536, dtype=np.uint32) + 128) // 257).astype(np.uint8)


class ImageTooLarge(ValueError):
    """An image with more pixels than Pillow's decompression-bomb limit allows."""


def _check_pixels(img: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        raise ImageTooLarge(
            f"{img.width}×{img.height} = {img.width * img.height} pixels, over Pillow's "
            f"decompression-bomb limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS); not decoded"
        )


def to_8bit(img: Image.Image) -> Image.Image:
    """``img`` with 8 bits per channel, scaled (not clipped) from what its mode holds.

    16-bit gray (:data:`WIDE_GRAY_MODES`) becomes ``L`` with ``round(v / 257)``; ``F`` (32-bit
    float) is read as 0.0 = black to 1.0 = white, ``round(255 × f)``, clipped, NaN black.
    Every other mode is returned as it is, for Pillow's own conversions: 8-bit modes (1, L,
    P, RGB, RGBA, LA, PA, CMYK, YCbCr…) convert exactly, and Pillow opens 16-bit RGB(A) PNG,
    TIFF and PPM files as 8-bit RGB(A) already (the high byte; PPM rounds).
    """
    if img.mode in WIDE_GRAY_MODES:
        wide = np.clip(np.asarray(img), 0, 65535)
        return Image.fromarray(_WIDE_TO_8BIT[wide], "L")
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float32)
        gray = np.empty(values.shape, dtype=np.uint8)
        for start in range(0, len(values), 1024):  # float64 a block of rows at a time
            rows = np.nan_to_num(values[start : start + 1024].astype(np.float64), nan=0.0)
            gray[start : start + 1024] = np.rint(np.clip(rows, 0.0, 1.0) * 255.0)
        return Image.fromarray(gray, "L")
    return img


def image_array(img: Image.Image, size: tuple[int, int] | None = None, channels: int = 3) -> np.ndarray:
    """An opened image as uint8 ``channels×H×W``: 8 bits (:func:`to_8bit`), RGB or L, resized.

    The conversion is ``.convert("RGB")`` (what torchvision's ``pil_loader`` does for RGBA,
    L and P images) or ``.convert("L")`` for one channel; with ``size=(H, W)`` the image is
    resized with PIL's bilinear filter, as ``transforms.Resize((H, W))`` does on a PIL image.
    """
    _check_pixels(img)
    converted = to_8bit(img).convert("L" if channels == 1 else "RGB")
    if size is not None:
        height, width = size
        if converted.size != (width, height):
            converted = converted.resize((width, height), Image.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return np.array(array, order="C")  # a writable copy: Pillow's buffer is read-only


def decode_image(
    data: bytes | str | os.PathLike, size: tuple[int, int] | None, *, channels: int = 3
) -> np.ndarray:
    """Decode image bytes (or a file) to uint8 ``C×H×W``, as torchvision's default loader and Resize do.

    See :func:`image_array`: 16-bit and float images are scaled to 8 bits, not clipped, and
    an image over Pillow's decompression-bomb limit raises :class:`ImageTooLarge` before it is
    decoded. Pillow's errors propagate (see :data:`IMAGE_ERRORS`). ``cnnpipe predict`` reads
    new files through this same function.
    """
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    with Image.open(source) as img:
        return image_array(img, size, channels)
