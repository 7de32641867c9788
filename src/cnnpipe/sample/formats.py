"""The sample mirror's files, in the upstream formats, written byte for byte reproducibly.

gzip with no name and mtime 0, tar members with mtime 0 and root ownership, zip entries
dated 1980-01-01 in a fixed order, CIFAR batches pickled as Python 2's cPickle did; one
writer per dataset (:data:`_WRITERS`), each returning the file names it wrote.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnnpipe.data.sources import (
    CATS_DOGS_FOLDER,
    CATS_DOGS_ZIP,
    CELEBA_ATTR,
    CELEBA_ATTRIBUTES,
    CELEBA_FOLDER,
    CELEBA_PARTITION,
    CELEBA_SPLIT_CODE,
    CELEBA_ZIP,
    CIFAR10_CLASSES,
    CIFAR_FILE,
    CIFAR_FOLDER,
    CIFAR_META,
    CIFAR_TEST_BATCHES,
    CIFAR_TRAIN_BATCHES,
    IDX_FILES,
    LOCAL_SETS,
    SOURCES,
)
from cnnpipe.fileio import atomic_file, atomic_write_bytes
from cnnpipe.sample.render_faces import _celeba_attributes, _render_faces
from cnnpipe.sample.render_scenes import (
    _render_hands,
    _render_horses,
    _render_humans,
    _render_pet,
    _render_sea,
)
from cnnpipe.sample.render_small import (
    _blob_templates,
    _cifar_templates,
    _render_blobs,
    _render_cifar,
    _render_strokes,
    _stroke_templates,
)
from cnnpipe.sample.sizes import _balanced_labels, _class_counts, _rng

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_GZIP_LEVEL = 6

# ---------------------------------------------------------------------------- file formats


def _gzip_file(path: Path, chunks: Iterator[bytes] | Sequence[bytes]) -> None:
    """Write a gzip file with no name and mtime 0 (byte-identical on every run)."""
    with (
        atomic_file(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz,
    ):
        for chunk in chunks:
            gz.write(chunk)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3  # unix, whatever platform writes it
    if name.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10
    else:
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


class _Py2Pickler(pickle._Pickler):
    """Pickle as Python 2's cPickle did for the real CIFAR batches (protocol 2).

    Strings and bytes become Python 2 ``str`` (``SHORT_BINSTRING``/``BINSTRING``), and
    numpy's array reconstructor is named ``numpy.core.multiarray`` as in the originals;
    so ``pickle.load(f, encoding="latin1")`` gives ``str`` keys and ``encoding="bytes"``
    gives ``bytes`` keys, exactly as with the upstream files.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)))
            self.write(data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if obj is _NUMPY_RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


_NUMPY_RECONSTRUCT = np.zeros(1, np.uint8).__reduce__()[0]


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# ---------------------------------------------------------------------------- datasets


def _render_in_chunks(render, rng, labels, chunk, bar) -> np.ndarray:
    parts = []
    for start in range(0, len(labels), chunk):
        part = render(rng, labels[start : start + chunk])
        parts.append(part)
        bar.update(len(part))
    return np.concatenate(parts) if parts else np.zeros((0,), np.uint8)


def _write_idx(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    if name == "mnist":
        templates = _stroke_templates(_rng(seed, name, "templates"))
        render = _render_strokes
    else:
        templates = _blob_templates(_rng(seed, name, "templates"))
        render = _render_blobs
    written = []
    for split, (images_file, labels_file) in IDX_FILES.items():
        n = sizes[split]
        rng = _rng(seed, name, split)
        labels = _balanced_labels(rng, n, 10)
        images = _render_in_chunks(lambda r, lab: render(r, templates, lab), rng, labels, 2000, bar).reshape(
            n, 28, 28
        )
        _gzip_file(ds_dir / images_file, [struct.pack(">IIII", 0x803, n, 28, 28), images.data])
        _gzip_file(ds_dir / labels_file, [struct.pack(">II", 0x801, n), labels.astype(np.uint8)])
        written += [images_file, labels_file]
    return written


def _write_cifar(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    templates = _cifar_templates(_rng(seed, name, "templates"))
    counter = iter(range(1, 10**9))

    def batch(rng, labels, label: str) -> bytes:
        images = _render_in_chunks(lambda r, lab: _render_cifar(r, templates, lab), rng, labels, 2000, bar)
        filenames = [f"synthetic_{CIFAR10_CLASSES[c]}_s_{next(counter):06d}.png" for c in labels]
        return _py2_pickle(
            {
                "batch_label": label,
                "labels": [int(c) for c in labels],
                "data": np.ascontiguousarray(images.reshape(len(labels), 3072)),
                "filenames": filenames,
            }
        )

    def members() -> Iterator[tuple[str, bytes]]:
        yield (
            CIFAR_META,
            _py2_pickle(
                {
                    "num_cases_per_batch": -(-sizes["train"] // 5),
                    "label_names": list(CIFAR10_CLASSES),
                    "num_vis": 3072,
                }
            ),
        )
        rng = _rng(seed, name, "train")
        labels = _balanced_labels(rng, sizes["train"], 10)
        parts = np.array_split(labels, len(CIFAR_TRAIN_BATCHES))
        for i, (member, part) in enumerate(zip(CIFAR_TRAIN_BATCHES, parts, strict=True), start=1):
            yield member, batch(rng, part, f"training batch {i} of {len(parts)}")
        rng = _rng(seed, name, "test")
        labels = _balanced_labels(rng, sizes["test"], 10)
        (test_member,) = CIFAR_TEST_BATCHES
        yield test_member, batch(rng, labels, "testing batch 1 of 1")
        yield (
            "readme.html",
            (b'<meta HTTP-EQUIV="REFRESH" content="0; url=http://www.cs.toronto.edu/~kriz/cifar.html">\n'),
        )

    def tar_info(member: str, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(member)
        info.size, info.mtime, info.uid, info.gid = size, 0, 0, 0
        info.uname = info.gname = "root"
        if member.endswith("/"):
            info.name, info.type, info.mode = member.rstrip("/"), tarfile.DIRTYPE, 0o755
        else:
            info.mode = 0o644
        return info

    with (
        atomic_file(ds_dir / CIFAR_FILE) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(tar_info(CIFAR_FOLDER + "/"))
        for member, data in members():
            tar.addfile(tar_info(f"{CIFAR_FOLDER}/{member}", len(data)), io.BytesIO(data))
    return [CIFAR_FILE]


def _celeba_rows(count: int) -> list[str]:
    return [f"{i:06d}.jpg" for i in range(1, count + 1)]


def _write_celeba(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    splits = list(CELEBA_SPLIT_CODE)
    total = sum(sizes[s] for s in splits)
    files = _celeba_rows(total)
    attrs, partition = [], []
    with atomic_file(ds_dir / CELEBA_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(_zip_info(f"{CELEBA_FOLDER}/"), b"")
        index = 0
        for split in splits:
            rng = _rng(seed, name, split)
            split_attrs = _celeba_attributes(rng, sizes[split])
            attrs.append(split_attrs)
            partition += [CELEBA_SPLIT_CODE[split]] * sizes[split]
            for start in range(0, sizes[split], 32):
                faces = _render_faces(rng, split_attrs[start : start + 32])
                for face in faces:
                    buf = io.BytesIO()
                    Image.fromarray(face.transpose(1, 2, 0)).save(buf, "JPEG", quality=90)
                    zf.writestr(_zip_info(f"{CELEBA_FOLDER}/{files[index]}"), buf.getvalue())
                    index += 1
                bar.update(len(faces))
    all_attrs = np.concatenate(attrs)
    lines = [str(total), " ".join(CELEBA_ATTRIBUTES)]
    lines += [f + "".join(f" {v:>2d}" for v in row) for f, row in zip(files, all_attrs.tolist(), strict=True)]
    atomic_write_bytes(ds_dir / CELEBA_ATTR, ("\n".join(lines) + "\n").encode())
    rows = [f"{f} {p}" for f, p in zip(files, partition, strict=True)]
    atomic_write_bytes(ds_dir / CELEBA_PARTITION, ("\n".join(rows) + "\n").encode())
    return [CELEBA_ZIP, CELEBA_ATTR, CELEBA_PARTITION]


def _png(image: np.ndarray, rgba: bool) -> bytes:
    """Encode a ``3×H×W`` uint8 image as PNG, with an opaque alpha channel if ``rgba``."""
    hwc = image.transpose(1, 2, 0)
    if rgba:
        hwc = np.concatenate([hwc, np.full((*hwc.shape[:2], 1), 255, np.uint8)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc), "RGBA" if rgba else "RGB").save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _add_folder_images(zf: zipfile.ZipFile, root: str, classes, n: int, rng, bar, file_name, rgb_share):
    """Add ``<root><class>/<file>.png`` members; ``classes`` maps class folder to renderer."""
    if root:
        zf.writestr(_zip_info(root), b"")
    for (folder, render), count in zip(classes.items(), _class_counts(n, len(classes)), strict=True):
        zf.writestr(_zip_info(f"{root}{folder}/"), b"")
        for start in range(0, count, 8):
            images = render(rng, min(8, count - start))
            rgb = rng.random(len(images)) < rgb_share
            for k, image in enumerate(images):
                member = f"{root}{folder}/{file_name(folder, start + k)}"
                zf.writestr(_zip_info(member), _png(image, rgba=not rgb[k]))
            bar.update(len(images))


def _write_folder_zip(path: Path, root: str, classes, n: int, rng, bar, file_name, rgb_share):
    """A zip holding one ImageFolder tree (see :func:`_add_folder_images`)."""
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        _add_folder_images(zf, root, classes, n, rng, bar, file_name, rgb_share)


def _write_horse_or_human(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    classes = {"horses": _render_horses, "humans": _render_humans}

    def file_name(folder: str, i: int) -> str:
        if folder == "horses":
            return f"horse{i // 10 + 1:02d}-{i % 10}.png"
        return f"human{i // 100 + 1:02d}-{i % 100:02d}.png"

    files = [f.name for f in SOURCES[name].files]  # the training zip, then the validation one
    for split, file in zip(("train", "valid"), files, strict=True):
        rng = _rng(seed, name, split)
        _write_folder_zip(ds_dir / file, "", classes, sizes[split], rng, bar, file_name, 0.15)
    return files


def _write_rps(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    classes = {
        "paper": lambda rng, n: _render_hands(rng, n, 5),
        "rock": lambda rng, n: _render_hands(rng, n, 0),
        "scissors": lambda rng, n: _render_hands(rng, n, 2),
    }
    files = [f.name for f in SOURCES[name].files]  # the training zip, then the test one
    # Each zip holds one folder named after it (rps.zip: rps/<class>/…).
    for split, file, prefix in zip(("train", "test"), files, ("", "test"), strict=True):
        root = file.removesuffix(".zip") + "/"

        def file_name(folder: str, i: int, prefix=prefix) -> str:
            return f"{prefix}{folder}{i // 100 + 1:02d}-{i % 100:03d}.png"

        rng = _rng(seed, name, split)
        _write_folder_zip(ds_dir / file, root, classes, sizes[split], rng, bar, file_name, 0.0)
    return files


def _write_sea(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    """A user-style ImageFolder zip: ``train/<class>/…`` and ``test/<class>/…`` in one archive."""
    kinds = ("crab", "fish", "jellyfish", "octopus", "starfish")
    classes = {kind: (lambda rng, n, kind=kind: _render_sea(rng, n, kind)) for kind in kinds}
    path = ds_dir / LOCAL_SETS[name]
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for split in ("train", "test"):
            rng = _rng(seed, name, split)
            _add_folder_images(
                zf,
                f"{split}/",
                classes,
                sizes[split],
                rng,
                bar,
                lambda folder, i: f"{folder}_{i:03d}.png",
                rgb_share=1.0,
            )
    return [LOCAL_SETS[name]]


def _jpeg(image: np.ndarray, gray: bool) -> bytes:
    """Encode a ``3×H×W`` uint8 image as JPEG (one grey channel if ``gray``)."""
    picture = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB")
    buf = io.BytesIO()
    (picture.convert("L") if gray else picture).save(buf, "JPEG", quality=85)
    return buf.getvalue()


# What the real zip holds besides the photos: a licence and a readme beside PetImages/, a Windows
# thumbnail cache in each class folder, and files that are no readable JPEG although named one.
_CATS_DOGS_EXTRAS = ("CDLA-Permissive-2.0.pdf", "readme[1].txt")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Thumbs.db is an OLE compound file


def _write_cats_vs_dogs(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    """``PetImages/{Cat,Dog}/<n>.jpg`` photos of varying sizes, with the upstream's broken files.

    Each class folder also holds ``Thumbs.db`` and, numbered after its photos, files that no
    reader can decode: an empty ``Cat/<n>.jpg``, a truncated ``Dog/<n>.jpg`` and a
    ``Dog/<n + 1>.jpg`` of random bytes.
    """
    rng = _rng(seed, name, "train")
    root = f"{CATS_DOGS_FOLDER}/"
    with atomic_file(ds_dir / CATS_DOGS_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(_zip_info(_CATS_DOGS_EXTRAS[0]), b"%PDF-1.4\n% CDLA-Permissive-2.0\n%%EOF\n")
        zf.writestr(_zip_info(_CATS_DOGS_EXTRAS[1]), b"Dogs vs Cats: photos of cats and dogs.\n")
        zf.writestr(_zip_info(root), b"")
        last = {}
        for folder, count in zip(("Cat", "Dog"), _class_counts(sizes["train"], 2), strict=True):
            zf.writestr(_zip_info(f"{root}{folder}/"), b"")
            for i in range(count):
                height, width = int(rng.integers(180, 376)), int(rng.integers(180, 501))
                image = _render_pet(rng, folder.lower(), height, width)
                last[folder] = _jpeg(image, gray=bool(rng.random() < 0.1))
                zf.writestr(_zip_info(f"{root}{folder}/{i}.jpg"), last[folder])
                bar.update(1)
            thumbs = _OLE_MAGIC + rng.bytes(504)
            zf.writestr(_zip_info(f"{root}{folder}/Thumbs.db"), thumbs)
            if folder == "Cat":
                zf.writestr(_zip_info(f"{root}Cat/{count}.jpg"), b"")
            else:
                zf.writestr(_zip_info(f"{root}Dog/{count}.jpg"), last["Dog"][: len(last["Dog"]) // 2])
                zf.writestr(_zip_info(f"{root}Dog/{count + 1}.jpg"), rng.bytes(700))
    return [CATS_DOGS_ZIP]


_WRITERS = {
    "mnist": _write_idx,
    "fashion_mnist": _write_idx,
    "cifar10": _write_cifar,
    "celeba": _write_celeba,
    "horse_or_human": _write_horse_or_human,
    "rps": _write_rps,
    "sea": _write_sea,
    "cats_vs_dogs": _write_cats_vs_dogs,
}
