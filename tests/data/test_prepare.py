"""The prepare step on the sample mirror, compared element for element with torchvision."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import pickle
import shutil
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets as tvd
from torchvision.datasets.utils import extract_archive
from torchvision.transforms import Compose, PILToTensor, Resize

from cnnpipe.data.arrays import SPLITS, load_meta, load_split
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.data.prepare.imagefolder import (
    prepare_class_folders,
    prepare_imagefolder,
    stratified_split,
    stratified_splits,
)
from cnnpipe.data.sources import CATS_DOGS_FOLDER, CATS_DOGS_ZIP
from cnnpipe.errors import ArchiveError, DataFormatError, ParamError
from cnnpipe.sample.formats import _py2_pickle
from tests.helpers.upstream_files import safe_extract, write_celeba_torchvision_extras

IMAGEFOLDER_PARAMS = {"image_size": [40, 30], "valid_fraction": 0.25, "split_seed": 3}


def _quiet(_: str) -> None:
    pass


def _prepare(name, raw_dir, out_dir, params, **kwargs):
    lines: list[str] = []
    prepare_dataset(name, raw_dir, out_dir, **params, log=lines.append, **kwargs)
    return lines


def _splits(out_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    loaded = {s: load_split(out_dir, s, mmap=False) for s in SPLITS}
    return {s: (a.images, a.labels) for s, a in loaded.items()}


def _copy_raw(mirror: Path, name: str, dest: Path) -> Path:
    return Path(shutil.copytree(mirror / name, dest / name))


def _assert_clean_failure(exc_info, out_dir: Path) -> str:
    """One-line message, and nothing at out_dir nor any temporary left beside it."""
    message = str(exc_info.value)
    assert "\n" not in message
    assert not out_dir.exists()
    parent = out_dir.parent
    assert not parent.exists() or list(parent.iterdir()) == []
    return message


def _tv_folder(root: Path, size: tuple[int, int]) -> tuple[list[str], torch.Tensor, list[int], list[str]]:
    """torchvision's ImageFolder + Resize + PILToTensor: (classes, N×C×H×W, targets, paths)."""
    folder = tvd.ImageFolder(str(root), transform=Compose([Resize(size), PILToTensor()]))
    images = torch.stack([folder[i][0] for i in range(len(folder))])
    paths = [Path(p).relative_to(root).as_posix() for p, _ in folder.samples]
    return folder.classes, images, list(folder.targets), paths


# ----------------------------------------------------------------- IDX and CIFAR


@pytest.mark.parametrize(("name", "tv_class"), [("mnist", tvd.MNIST), ("fashion_mnist", tvd.FashionMNIST)])
def test_idx_sets_equal_torchvision(mirror, sample_sizes, tmp_path, name, tv_class):
    out = tmp_path / "prepared" / name
    lines = _prepare(name, mirror / name, out, {"valid_first": 30})
    raw = tmp_path / "tv" / tv_class.__name__ / "raw"
    raw.mkdir(parents=True)
    for gz in (mirror / name).glob("*.gz"):
        (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    tv_train = tv_class(str(tmp_path / "tv"), train=True, download=False)
    tv_test = tv_class(str(tmp_path / "tv"), train=False, download=False)

    splits = _splits(out)
    assert len(splits["valid"][0]) == 30 and len(splits["train"][0]) == sample_sizes[name]["train"] - 30
    # The first 30 training images are the valid split; train is the rest, in order.
    images = np.concatenate([splits["valid"][0], splits["train"][0]])
    labels = np.concatenate([splits["valid"][1], splits["train"][1]])
    np.testing.assert_array_equal(images[:, 0], tv_train.data.numpy())
    np.testing.assert_array_equal(labels, tv_train.targets.numpy())
    np.testing.assert_array_equal(splits["test"][0][:, 0], tv_test.data.numpy())
    np.testing.assert_array_equal(splits["test"][1], tv_test.targets.numpy())
    assert images.dtype == np.uint8 and labels.dtype == np.int64 and images.shape[1:] == (1, 28, 28)

    meta = load_meta(out)
    assert meta["classes"] == tv_class.classes
    assert meta["dataset"] == name and meta["valid_first"] == 30 and meta["label_type"] == "class"
    assert "train-images-idx3-ubyte.gz" in meta["source"]
    assert lines == [f"{name}: prepared train 90, valid 30, test 40 images in {out}"]


def test_cifar10_equals_torchvision(mirror, tmp_path, gzip_backend):
    out = tmp_path / "prepared" / "cifar10"
    _prepare("cifar10", mirror / "cifar10", out, {"valid_first": 20})
    extract_archive(mirror / "cifar10" / "cifar-10-python.tar.gz", tmp_path / "tv")  # torchvision's own

    class SampleCIFAR10(tvd.CIFAR10):
        meta: ClassVar = {**tvd.CIFAR10.meta, "md5": None}  # the sample's checksum is not upstream's

        def _check_integrity(self) -> bool:
            return True

    tv_train = SampleCIFAR10(str(tmp_path / "tv"), train=True)
    tv_test = SampleCIFAR10(str(tmp_path / "tv"), train=False)
    splits = _splits(out)
    train_images = np.concatenate([splits["valid"][0], splits["train"][0]])
    train_labels = np.concatenate([splits["valid"][1], splits["train"][1]])
    assert len(splits["valid"][0]) == 20
    np.testing.assert_array_equal(train_images, tv_train.data.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(train_labels, tv_train.targets)
    np.testing.assert_array_equal(splits["test"][0], tv_test.data.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(splits["test"][1], tv_test.targets)
    meta = load_meta(out)
    assert meta["classes"] == tv_train.classes and meta["image_shape"] == [3, 32, 32]


def _cifar_archive(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("py2", [True, False])
def test_cifar10_batches_in_any_order_and_size(tmp_path, py2):
    """The real archive does not store data_batch_1 … 5 in order; batch sizes may differ."""
    rng = np.random.default_rng(7)
    dump = _py2_pickle if py2 else lambda obj: pickle.dumps(obj, protocol=2)
    sizes = {"data_batch_1": 7, "data_batch_2": 3, "data_batch_3": 0, "data_batch_4": 11, "data_batch_5": 5}
    batches = {
        name: {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, n).tolist(),
        }
        for name, n in {**sizes, "test_batch": 4}.items()
    }
    order = ["data_batch_4", "test_batch", "data_batch_3", "batches.meta", "data_batch_2", "data_batch_5"]
    classes = [f"class {i}" for i in range(10)]
    members = [(n, dump(batches[n]) if n in batches else dump({"label_names": classes})) for n in order]
    raw = tmp_path / "raw"
    raw.mkdir()
    _cifar_archive(
        raw / "cifar-10-python.tar.gz", [*members, ("data_batch_1", dump(batches["data_batch_1"]))]
    )
    out = tmp_path / "out"
    prepare_dataset("cifar10", raw, out, valid_first=9, log=_quiet)  # 7 + 2 of data_batch_2
    images = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)])
    splits = _splits(out)
    np.testing.assert_array_equal(splits["valid"][0], images[:9])
    np.testing.assert_array_equal(splits["valid"][1], labels[:9])
    np.testing.assert_array_equal(splits["train"][0], images[9:])
    np.testing.assert_array_equal(splits["train"][1], labels[9:])
    np.testing.assert_array_equal(splits["test"][0].reshape(4, -1), batches["test_batch"]["data"])
    assert splits["train"][1].dtype == np.int64 and splits["test"][1].shape == (4,)
    assert load_meta(out)["splits"] == {"train": 17, "valid": 9, "test": 4}
    assert load_meta(out)["classes"] == classes


def test_cifar10_duplicate_batch_or_too_large_valid_first_leaves_nothing(mirror, tmp_path):
    raw = _copy_raw(mirror, "cifar10", tmp_path / "raw")
    out = tmp_path / "prepared" / "cifar10"
    with pytest.raises(ParamError) as exc:
        prepare_dataset("cifar10", raw, out, valid_first=100, log=_quiet)
    assert "must be below 100, the training images in" in _assert_clean_failure(exc, out)
    archive = raw / "cifar-10-python.tar.gz"
    with tarfile.open(archive) as tf:
        members = [(Path(m.name).name, tf.extractfile(m).read()) for m in tf if m.isfile()]
    _cifar_archive(archive, [*members, members[1]])
    with pytest.raises(DataFormatError) as exc:
        prepare_dataset("cifar10", raw, out, valid_first=10, log=_quiet)
    assert f"{members[1][0]}: found twice" in _assert_clean_failure(exc, out)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "mnist",
            120,
            "datasets.mnist.valid_first: must be below 120, the training images in "
            "train-images-idx3-ubyte.gz, got 120",
        ),
        (
            "cifar10",
            500,
            "datasets.cifar10.valid_first: must be below 100, the training images in "
            "cifar-10-python.tar.gz, got 500",
        ),
        ("mnist", -1, "datasets.mnist.valid_first: must be an integer >= 0, got -1"),
        ("mnist", None, "datasets.mnist.valid_first: must be an integer >= 0, got None"),
        ("cifar10", True, "datasets.cifar10.valid_first: must be an integer >= 0, got True"),
    ],
)
def test_valid_first_out_of_range(mirror, tmp_path, name, value, message):
    out = tmp_path / "prepared" / name
    with pytest.raises(ParamError) as exc:
        prepare_dataset(name, mirror / name, out, valid_first=value, log=_quiet)
    assert _assert_clean_failure(exc, out).startswith(message)


def _idx(array: np.ndarray, magic: int, cut: int = 0) -> bytes:
    """A gzipped IDX file; ``cut`` drops that many bytes from the end of the payload.

    ``mtime=0`` keeps the bytes the same on every pytest-xdist worker, which must collect the same tests.
    """
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    return gzip.compress(payload[: len(payload) - cut], mtime=0)


@pytest.mark.parametrize(
    ("file", "content", "error", "expected"),
    [
        ("train-images-idx3-ubyte.gz", gzip.compress(b"<!DOCTYPE html><p>quota</p>", mtime=0),
         DataFormatError, "expected 0x00000803"),
        ("train-labels-idx1-ubyte.gz", _idx(np.zeros((120, 28, 28), np.uint8), 0x803), DataFormatError,
         "magic 0x00000803, expected 0x00000801"),
        ("t10k-images-idx3-ubyte.gz", _idx(np.zeros((40, 28, 28), np.uint8), 0x803)[:-40], DataFormatError,
         "gzip"),
        ("t10k-images-idx3-ubyte.gz", _idx(np.zeros((40, 28, 28), np.uint8), 0x803, cut=5), DataFormatError,
         "40×28×28 need"),
        ("t10k-labels-idx1-ubyte.gz", _idx(np.zeros(39, np.uint8), 0x801), DataFormatError,
         "holds 40 images but"),
        ("t10k-labels-idx1-ubyte.gz", _idx(np.full(40, 10, np.uint8), 0x801), DataFormatError,
         "label values 10..10 fall outside the 10 classes"),
    ],
    ids=["html-page", "labels-magic", "truncated-gzip", "short-payload", "label-count", "label-range"],
)  # fmt: skip
def test_bad_idx_files_fail_cleanly(mirror, tmp_path, file, content, error, expected):
    raw = _copy_raw(mirror, "mnist", tmp_path / "raw")
    (raw / file).write_bytes(content)
    out = tmp_path / "prepared" / "mnist"
    with pytest.raises(error) as exc:
        prepare_dataset("mnist", raw, out, valid_first=10, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert expected in message and file in message


def test_count_mismatch_names_both_files(mirror, tmp_path):
    raw = _copy_raw(mirror, "mnist", tmp_path / "raw")
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx(np.zeros(39, np.uint8), 0x801))
    out = tmp_path / "prepared" / "mnist"
    with pytest.raises(DataFormatError) as exc:
        prepare_dataset("mnist", raw, out, valid_first=10, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert "t10k-images-idx3-ubyte.gz holds 40 images" in message
    assert "t10k-labels-idx1-ubyte.gz holds 39 labels" in message


def test_missing_raw_file(mirror, tmp_path):
    raw = _copy_raw(mirror, "fashion_mnist", tmp_path / "raw")
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    out = tmp_path / "prepared" / "fashion_mnist"
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte\.gz is missing") as exc:
        prepare_dataset("fashion_mnist", raw, out, valid_first=10, log=_quiet)
    _assert_clean_failure(exc, out)


def test_truncated_cifar_archive_fails_cleanly_and_keeps_previous_output(mirror, tmp_path):
    raw = _copy_raw(mirror, "cifar10", tmp_path / "raw")
    out = tmp_path / "prepared" / "cifar10"
    prepare_dataset("cifar10", raw, out, valid_first=10, log=_quiet)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    archive = raw / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    with pytest.raises(ArchiveError) as exc:
        prepare_dataset("cifar10", raw, out, valid_first=10, log=_quiet)
    assert "\n" not in str(exc.value) and str(archive) in str(exc.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert [p.name for p in out.parent.iterdir()] == ["cifar10"]  # no temporaries beside it


# -------------------------------------------------------------------------- CelebA


@pytest.fixture(scope="module")
def celeba_prepared(mirror, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("celeba") / "celeba"
    prepare_dataset("celeba", mirror / "celeba", out, workers=3, log=_quiet)
    return out


def test_celeba_equals_torchvision(mirror, sample_sizes, celeba_prepared, tmp_path):
    folder = tmp_path / "celeba"
    safe_extract(mirror / "celeba" / "img_align_celeba.zip", folder)
    for txt in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        shutil.copy(mirror / "celeba" / txt, folder / txt)
    write_celeba_torchvision_extras(folder)

    class SampleCelebA(tvd.CelebA):
        def _check_integrity(self) -> bool:
            return True

    meta = load_meta(celeba_prepared)
    assert meta["label_type"] == "attributes" and meta["image_shape"] == [3, 218, 178]
    assert meta["splits"] == sample_sizes["celeba"]
    for split in SPLITS:
        tv = SampleCelebA(str(tmp_path), split=split, target_type="attr", transform=PILToTensor())
        ours = load_split(celeba_prepared, split)
        assert meta["classes"] == [n for n in tv.attr_names if n]
        assert ours.labels.dtype == np.int64 and ours.labels.shape == (len(tv), 40)
        np.testing.assert_array_equal(ours.labels, tv.attr.numpy())
        for i in range(len(tv)):
            image, _ = tv[i]
            np.testing.assert_array_equal(ours.images[i], image.numpy())


def test_celeba_is_the_same_with_one_worker(mirror, celeba_prepared, tmp_path):
    out = tmp_path / "celeba"
    prepare_dataset("celeba", mirror / "celeba", out, workers=1, log=_quiet)
    for split in SPLITS:
        assert (out / f"{split}.images.npy").read_bytes() == (
            celeba_prepared / f"{split}.images.npy"
        ).read_bytes()
        assert (out / f"{split}.labels.npy").read_bytes() == (
            celeba_prepared / f"{split}.labels.npy"
        ).read_bytes()


def _rewrite_zip(
    src: Path, dest: Path, drop: str | None = None, replace: dict[str, bytes] | None = None
) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename != drop:
                zout.writestr(info, (replace or {}).get(info.filename, zin.read(info)))


def test_celeba_missing_member_attribute_row_and_corrupt_jpeg(mirror, tmp_path):
    raw = _copy_raw(mirror, "celeba", tmp_path / "raw")
    out = tmp_path / "prepared" / "celeba"
    original = mirror / "celeba" / "img_align_celeba.zip"
    zip_path = raw / "img_align_celeba.zip"

    _rewrite_zip(original, zip_path, drop="img_align_celeba/000033.jpg")
    with pytest.raises(DataFormatError) as exc:
        prepare_dataset("celeba", raw, out, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert str(zip_path) in message and "img_align_celeba/000033.jpg" in message

    jpeg = zipfile.ZipFile(original).read("img_align_celeba/000041.jpg")
    _rewrite_zip(original, zip_path, replace={"img_align_celeba/000041.jpg": jpeg[: len(jpeg) // 3]})
    with pytest.raises(DataFormatError) as exc:
        prepare_dataset("celeba", raw, out, workers=2, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert "img_align_celeba/000041.jpg is not a readable image" in message

    shutil.copy(original, zip_path)
    attr = raw / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join([str(int(lines[0]) - 1), lines[1], *lines[2:6], *lines[7:]]) + "\n")
    with pytest.raises(DataFormatError) as exc:
        prepare_dataset("celeba", raw, out, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert "list_attr_celeba.txt: no attribute row for 000005.jpg" in message


# --------------------------------------------------------------------- ImageFolder


@pytest.fixture(scope="module")
def horses_prepared(mirror, tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("hoh") / "horse_or_human"
    lines: list[str] = []
    prepare_dataset("horse_or_human", mirror / "horse_or_human", out, **IMAGEFOLDER_PARAMS, log=lines.append)
    return out, lines


def test_horse_or_human_equals_torchvision_with_split(mirror, horses_prepared, tmp_path):
    out, lines = horses_prepared
    size = tuple(IMAGEFOLDER_PARAMS["image_size"])
    classes, tv_images, tv_targets, tv_paths = _tv_folder(
        safe_extract(mirror / "horse_or_human" / "horse-or-human.zip", tmp_path / "train"), size
    )
    meta = load_meta(out)
    assert meta["classes"] == classes == ["horses", "humans"]
    assert meta["source"] == ["horse-or-human.zip", "validation-horse-or-human.zip"]
    assert meta["image_shape"] == [3, 40, 30] and meta["split_seed"] == 3
    splits = _splits(out)
    files = json.loads((out / "files.json").read_text())
    assert json.loads((out / "skipped.json").read_text()) == []

    # train + valid reassembled in torchvision's order is torchvision's whole training folder.
    row_of = {path: i for i, path in enumerate(tv_paths)}
    assert sorted(files["train"] + files["valid"], key=row_of.__getitem__) == tv_paths
    for split in ("train", "valid"):
        rows = [row_of[p] for p in files[split]]
        assert rows == sorted(rows)  # listing order kept inside each split
        np.testing.assert_array_equal(splits[split][0], tv_images[rows].numpy())
        np.testing.assert_array_equal(splits[split][1], np.asarray(tv_targets)[rows])
    # Stratified: 25 % of each 12-image class.
    assert np.bincount(splits["valid"][1]).tolist() == [3, 3]

    classes_t, test_images, test_targets, test_paths = _tv_folder(
        safe_extract(mirror / "horse_or_human" / "validation-horse-or-human.zip", tmp_path / "test"), size
    )
    assert files["test"] == test_paths and classes_t == classes
    np.testing.assert_array_equal(splits["test"][0], test_images.numpy())
    np.testing.assert_array_equal(splits["test"][1], test_targets)
    assert lines == [f"horse_or_human: prepared train 18, valid 6, test 8 images in {out}"]


def test_rps_wrapper_folder_square_size_and_no_valid(mirror, tmp_path):
    out = tmp_path / "rps"
    params = {"image_size": 24, "valid_fraction": 0, "split_seed": 0}
    prepare_dataset("rps", mirror / "rps", out, **params, workers=2, log=_quiet)
    splits = _splits(out)
    for split, zip_name, top in (("train", "rps.zip", "rps"), ("test", "rps-test-set.zip", "rps-test-set")):
        root = safe_extract(mirror / "rps" / zip_name, tmp_path / split) / top
        classes, images, targets, _ = _tv_folder(root, (24, 24))
        assert classes == load_meta(out)["classes"] == ["paper", "rock", "scissors"]
        np.testing.assert_array_equal(splits[split][0], images.numpy())
        np.testing.assert_array_equal(splits[split][1], targets)
    assert len(splits["valid"][0]) == 0 and splits["valid"][0].shape[1:] == (3, 24, 24)


def _png_bytes(rng, mode: str, size=(23, 31)) -> bytes:
    image = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    if mode != "RGB":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes(rng, size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_corrupt_images_are_skipped_and_listed(mirror, tmp_path):
    rng = np.random.default_rng(0)
    raw = _copy_raw(mirror, "horse_or_human", tmp_path / "raw")
    png, jpeg = _png_bytes(rng, "RGB"), _jpeg_bytes(rng)
    broken = {
        "horses/broken.png": png[: len(png) // 2],
        "humans/broken.jpg": jpeg[: len(jpeg) // 2],
        "humans/noise.png": rng.integers(0, 256, 500, dtype=np.uint8).tobytes(),
    }
    with zipfile.ZipFile(raw / "horse-or-human.zip", "a") as zf:
        for name, data in broken.items():
            zf.writestr(name, data)
    with zipfile.ZipFile(raw / "validation-horse-or-human.zip", "a") as zf:
        zf.writestr("horses/empty.png", b"")
    out = tmp_path / "prepared" / "horse_or_human"
    params = {**IMAGEFOLDER_PARAMS, "valid_fraction": 0}
    lines = _prepare("horse_or_human", raw, out, params, workers=2)

    skipped = json.loads((out / "skipped.json").read_text())
    assert sorted((s["path"], s["split"], s["source"]) for s in skipped) == [
        ("horses/broken.png", "train", "horse-or-human.zip"),
        ("horses/empty.png", "test", "validation-horse-or-human.zip"),
        ("humans/broken.jpg", "train", "horse-or-human.zip"),
        ("humans/noise.png", "train", "horse-or-human.zip"),
    ]
    assert all(s["error"] and "0x" not in s["error"] for s in skipped)
    assert lines[0] == f"horse_or_human: skipped 4 unreadable images (listed in {out / 'skipped.json'})"
    meta = load_meta(out)
    assert meta["splits"] == {"train": 24, "valid": 0, "test": 8} and meta["skipped"] == 4
    files = json.loads((out / "files.json").read_text())
    assert not set(broken) & set(files["train"])
    # The readable rest is exactly what the untouched archive gives.
    reference = tmp_path / "reference"
    prepare_dataset("horse_or_human", mirror / "horse_or_human", reference, **params, log=_quiet)
    expected = _splits(reference)
    for split, (images, labels) in _splits(out).items():
        np.testing.assert_array_equal(images, expected[split][0])
        np.testing.assert_array_equal(labels, expected[split][1])


def test_generic_imagefolder_directory_converts_modes_like_torchvision(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "sea"
    layout = {
        "train/crab": ["RGBA", "L", "P", "RGB"],
        "train/eel": ["P", "RGBA", "L"],
        "validate/crab": ["L"],
        "validate/eel": ["RGBA"],
        "test/eel": ["P", "RGB"],
    }
    for folder, modes in layout.items():
        (src / folder).mkdir(parents=True)
        for i, mode in enumerate(modes):
            (src / folder / f"{mode.lower()}_{i}.png").write_bytes(_png_bytes(rng, mode))
    (src / "train" / "eel" / "photo.JPG").write_bytes(_jpeg_bytes(rng))
    (src / "train" / "eel" / ".DS_Store").write_bytes(b"junk")
    out = tmp_path / "prepared"
    prepare_imagefolder(src, out, image_size=[17, 19], valid_fraction=0.5, split_seed=0, log=_quiet)

    splits = _splits(out)
    files = json.loads((out / "files.json").read_text())
    for split, folder in (("train", "train"), ("valid", "validate"), ("test", "test")):
        classes, images, targets, paths = _tv_folder(src / folder, (17, 19))
        np.testing.assert_array_equal(splits[split][0], images.numpy())
        expected_targets = [["crab", "eel"].index(classes[t]) for t in targets]
        np.testing.assert_array_equal(splits[split][1], expected_targets)
        assert files[split] == [f"{folder}/{p}" for p in paths]
    meta = load_meta(out)
    assert meta["classes"] == ["crab", "eel"] and meta["dataset"] == "imagefolder"
    assert "valid_fraction" not in meta  # valid came from validate/, not from a split


def test_generic_imagefolder_zip_with_wrapper_and_split(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "sea.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for cls, n in (("crab", 10), ("eel", 6), ("fish", 4)):
            for i in range(n):
                zf.writestr(f"sea/train/{cls}/{i:02d}.png", _png_bytes(rng, "RGB", (8, 8)))
    outs = []
    for seed in (5, 5, 6):
        outs.append(tmp_path / f"out{len(outs)}")
        prepare_imagefolder(path, outs[-1], image_size=8, valid_fraction=0.5, split_seed=seed, log=_quiet)
    files = [json.loads((o / "files.json").read_text()) for o in outs]
    assert files[0] == files[1] and files[0]["valid"] != files[2]["valid"]
    valid_labels = load_split(outs[0], "valid").labels
    assert np.bincount(valid_labels).tolist() == [5, 3, 2]
    assert load_meta(outs[0])["splits"] == {"train": 10, "valid": 10, "test": 0}


def test_generic_imagefolder_without_train_lists_what_it_found(tmp_path):
    src = tmp_path / "flat"
    for folder in ("cats", "dogs"):
        (src / folder).mkdir(parents=True)
        (src / folder / "1.png").write_bytes(_png_bytes(np.random.default_rng(3), "RGB"))
    out = tmp_path / "prepared" / "x"
    with pytest.raises(DataFormatError) as exc:
        prepare_imagefolder(src, out, image_size=8, valid_fraction=0.2, split_seed=0, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert "no train/ folder (found cats/, dogs/)" in message


def test_class_in_test_but_not_in_train(mirror, tmp_path):
    raw = _copy_raw(mirror, "rps", tmp_path / "raw")
    with zipfile.ZipFile(raw / "rps-test-set.zip", "a") as zf:
        zf.writestr("rps-test-set/lizard/l1.png", _png_bytes(np.random.default_rng(4), "RGB"))
    out = tmp_path / "prepared" / "rps"
    with pytest.raises(DataFormatError) as exc:
        prepare_dataset("rps", raw, out, image_size=8, valid_fraction=0.2, split_seed=1, log=_quiet)
    message = _assert_clean_failure(exc, out)
    assert "rps-test-set.zip" in message and "'lizard'" in message
    assert "(paper, rock, scissors)" in message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"image_size": [0, 8], "valid_fraction": 0.2, "split_seed": 1},
            "datasets.rps.image_size: must be [height, width] or a single size in pixels, got [0, 8]",
        ),
        (
            {"image_size": "big", "valid_fraction": 0.2, "split_seed": 1},
            "datasets.rps.image_size: must be [height, width] or a single size in pixels, got 'big'",
        ),
        (
            {"image_size": 8, "valid_fraction": 1.0, "split_seed": 1},
            "datasets.rps.valid_fraction: must be a fraction with 0 <= f < 1, got 1.0",
        ),
        (
            {"image_size": 8, "split_seed": 1},
            "datasets.rps.valid_fraction: must be a fraction with 0 <= f < 1, got None",
        ),
        (
            {"image_size": 8, "valid_fraction": 0.2, "split_seed": 1.5},
            "datasets.rps.split_seed: must be an integer >= 0, got 1.5",
        ),
    ],
)
def test_imagefolder_param_errors(mirror, tmp_path, params, message):
    out = tmp_path / "prepared" / "rps"
    with pytest.raises(ParamError) as exc:
        prepare_dataset("rps", mirror / "rps", out, **params, log=_quiet)
    assert _assert_clean_failure(exc, out).startswith(message)


def test_unknown_dataset(tmp_path):
    with pytest.raises(ParamError, match="unknown dataset 'svhn'"):
        prepare_dataset("svhn", tmp_path, tmp_path / "out", log=_quiet)


# ------------------------------------------------------------- class folders (Dogs vs Cats)

CATS_DOGS_PARAMS = {"image_size": [40, 30], "valid_fraction": 0.2, "test_fraction": 0.3, "split_seed": 3}
# What the sample zip holds besides its photos, as the upstream zip does (sample/formats.py).
CATS_DOGS_BROKEN = {  # path → why it cannot be read
    "PetImages/Cat/10.jpg": "empty file (0 bytes)",
    "PetImages/Dog/10.jpg": "image file is truncated",
    "PetImages/Dog/11.jpg": "UnidentifiedImageError",  # random bytes
}


@pytest.fixture(scope="module")
def cats_dogs_prepared(mirror, tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("cvd") / "cats_vs_dogs"
    lines: list[str] = []
    prepare_dataset("cats_vs_dogs", mirror / "cats_vs_dogs", out, **CATS_DOGS_PARAMS, log=lines.append)
    return out, lines


def test_cats_vs_dogs_equals_torchvision_on_the_readable_files(mirror, cats_dogs_prepared, tmp_path):
    out, lines = cats_dogs_prepared
    skipped = json.loads((out / "skipped.json").read_text())
    assert {s["path"] for s in skipped} == set(CATS_DOGS_BROKEN)
    for s in skipped:
        assert CATS_DOGS_BROKEN[s["path"]] in s["error"] and s["source"] == CATS_DOGS_ZIP
    assert lines[0] == f"cats_vs_dogs: skipped 3 unreadable images (listed in {out / 'skipped.json'})"

    # torchvision's ImageFolder over the extracted zip, once the broken files are gone (it would
    # fail on them): the same classes, labels and pixels, Thumbs.db and the licence ignored.
    root = safe_extract(mirror / "cats_vs_dogs" / CATS_DOGS_ZIP, tmp_path / "x")
    assert (root / CATS_DOGS_FOLDER / "Cat" / "Thumbs.db").is_file() and (root / "readme[1].txt").is_file()
    for path in CATS_DOGS_BROKEN:
        (root / path).unlink()
    size = tuple(CATS_DOGS_PARAMS["image_size"])
    classes, tv_images, tv_targets, tv_paths = _tv_folder(root / CATS_DOGS_FOLDER, size)
    meta = load_meta(out)
    assert meta["classes"] == classes == ["Cat", "Dog"]
    assert meta["root"] == CATS_DOGS_FOLDER and meta["source"] == [CATS_DOGS_ZIP]
    assert meta["image_shape"] == [3, 40, 30] and meta["skipped"] == 3
    assert (meta["valid_fraction"], meta["test_fraction"], meta["split_seed"]) == (0.2, 0.3, 3)
    files = json.loads((out / "files.json").read_text())
    row_of = {f"{CATS_DOGS_FOLDER}/{path}": i for i, path in enumerate(tv_paths)}
    assert sorted(files["train"] + files["valid"] + files["test"], key=row_of.__getitem__) == list(row_of)
    splits = _splits(out)
    for split in SPLITS:
        rows = [row_of[p] for p in files[split]]
        assert rows == sorted(rows)  # listing order kept inside each split
        np.testing.assert_array_equal(splits[split][0], tv_images[rows].numpy())
        np.testing.assert_array_equal(splits[split][1], np.asarray(tv_targets)[rows])

    # Stratified over what was listed (11 cats, 12 dogs), before any file was found unreadable:
    # round(0.2 × n) of each class to valid, round(0.3 × n) to test.
    listed = {split: Counter(p.split("/")[1] for p in files[split]) for split in SPLITS}
    for s in skipped:
        listed[s["split"]][s["path"].split("/")[1]] += 1
    assert listed["valid"] == Counter({"Cat": 2, "Dog": 2})
    assert listed["test"] == Counter({"Cat": 3, "Dog": 4})
    assert listed["train"] == Counter({"Cat": 6, "Dog": 6})
    assert lines[1] == (
        f"cats_vs_dogs: prepared train {len(files['train'])}, valid {len(files['valid'])}, "
        f"test {len(files['test'])} images in {out}"
    )


def test_cats_vs_dogs_splits_are_seeded(mirror, cats_dogs_prepared, tmp_path):
    out, _ = cats_dogs_prepared
    first = json.loads((out / "files.json").read_text())
    runs = {}
    for seed in (3, 4):
        runs[seed] = tmp_path / str(seed)
        params = {**CATS_DOGS_PARAMS, "split_seed": seed}
        prepare_dataset("cats_vs_dogs", mirror / "cats_vs_dogs", runs[seed], **params, workers=1, log=_quiet)
    assert json.loads((runs[3] / "files.json").read_text()) == first
    for split, (images, labels) in _splits(runs[3]).items():  # one worker or many: the same arrays
        np.testing.assert_array_equal(images, load_split(out, split).images)
        np.testing.assert_array_equal(labels, load_split(out, split).labels)
    other = json.loads((runs[4] / "files.json").read_text())
    assert other["test"] != first["test"]
    assert sorted(itertools.chain(*other.values())) == sorted(itertools.chain(*first.values()))


def test_class_folders_at_the_top_of_a_directory(tmp_path):
    rng = np.random.default_rng(5)
    src = tmp_path / "pets"
    for cls, n in (("dog", 6), ("cat", 4)):
        (src / cls).mkdir(parents=True)
        for i in range(n):
            (src / cls / f"{i}.jpg").write_bytes(_jpeg_bytes(rng, (20 + i, 30)))
        (src / cls / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0junk")
    (src / "cat" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "prepared"
    prepare_class_folders(
        src, out, image_size=8, valid_fraction=0.25, test_fraction=0.25, split_seed=0, log=_quiet
    )
    meta = load_meta(out)
    assert meta["classes"] == ["cat", "dog"] and meta["root"] == ""
    (skipped,) = json.loads((out / "skipped.json").read_text())
    assert skipped["path"] == "cat/empty.jpg" and skipped["error"] == "empty file (0 bytes)"
    # listed: 5 cats (one empty) → 1 valid, 1 test; 6 dogs → 2 valid, 2 test
    listed = Counter(meta["splits"]) + Counter({skipped["split"]: 1})
    assert listed == Counter({"train": 5, "valid": 3, "test": 3})
    files = json.loads((out / "files.json").read_text())
    assert not any("Thumbs.db" in f for f in itertools.chain(*files.values()))


def test_class_folders_need_two_classes_and_room_to_train(tmp_path):
    src = tmp_path / "one"
    (src / "PetImages" / "Cat").mkdir(parents=True)
    (src / "PetImages" / "Cat" / "1.jpg").write_bytes(_jpeg_bytes(np.random.default_rng(6)))
    out = tmp_path / "prepared" / "x"
    with pytest.raises(DataFormatError) as exc:
        prepare_class_folders(src, out, image_size=8, valid_fraction=0.1, test_fraction=0.1, split_seed=0)
    assert "found only the class folder 'Cat'" in _assert_clean_failure(exc, out)
    with pytest.raises(ParamError) as exc:
        prepare_class_folders(src, out, image_size=8, valid_fraction=0.6, test_fraction=0.4, split_seed=0)
    assert _assert_clean_failure(exc, out) == (
        "datasets.imagefolder.test_fraction: must be below 1 - valid_fraction = 0.4, "
        "to leave images to train on, got 0.4"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"test_fraction": None},
            "datasets.cats_vs_dogs.test_fraction: must be a fraction with 0 <= f < 1, got None",
        ),
        (
            {"test_fraction": 1},
            "datasets.cats_vs_dogs.test_fraction: must be a fraction with 0 <= f < 1, got 1",
        ),
        ({"image_size": [300]}, "datasets.cats_vs_dogs.image_size: must be [height, width]"),
    ],
)
def test_cats_vs_dogs_param_errors(mirror, tmp_path, params, message):
    out = tmp_path / "prepared" / "cats_vs_dogs"
    with pytest.raises(ParamError) as exc:
        prepare_dataset("cats_vs_dogs", mirror / "cats_vs_dogs", out, **{**CATS_DOGS_PARAMS, **params})
    assert _assert_clean_failure(exc, out).startswith(message)


# ------------------------------------------------------------------ stratified split


def test_stratified_split_proportions_and_determinism():
    labels = np.repeat(np.arange(4), [100, 40, 10, 1])
    np.random.default_rng(0).shuffle(labels)
    train, valid = stratified_split(labels, 0.2, seed=7)
    assert np.bincount(labels[valid], minlength=4).tolist() == [20, 8, 2, 0]
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(len(labels)))
    assert (np.diff(train) > 0).all() and (np.diff(valid) > 0).all()
    again_train, again_valid = stratified_split(labels, 0.2, seed=7)
    np.testing.assert_array_equal(valid, again_valid)
    np.testing.assert_array_equal(train, again_train)
    assert not np.array_equal(valid, stratified_split(labels, 0.2, seed=8)[1])
    assert len(stratified_split(labels, 0.0, seed=7)[1]) == 0
    # A class is never emptied out of train, even at a high fraction.
    assert np.bincount(labels[stratified_split(labels, 0.9, seed=1)[0]], minlength=4).min() >= 1


def _stratified_split_before_test_fractions(labels, valid_fraction, seed):
    """stratified_split as it was before it took several fractions: the splits it made must stay."""
    rng = np.random.default_rng(seed)
    chosen = [np.empty(0, dtype=np.int64)]
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = min(int(np.floor(valid_fraction * len(members) + 0.5)), len(members) - 1)
        chosen.append(rng.permutation(members)[:take])
    valid = np.sort(np.concatenate(chosen))
    return np.setdiff1d(np.arange(len(labels)), valid), valid


def test_stratified_splits_three_ways():
    labels = np.repeat(np.arange(3), [50, 21, 2])
    np.random.default_rng(1).shuffle(labels)
    for fraction, seed in ((0.1, 0), (0.25, 3), (0.9, 1)):
        for got, old in zip(
            stratified_split(labels, fraction, seed),
            _stratified_split_before_test_fractions(labels, fraction, seed),
            strict=True,
        ):
            np.testing.assert_array_equal(got, old)
    train, valid, test = stratified_splits(labels, (0.2, 0.1), seed=4)
    assert np.bincount(labels[valid], minlength=3).tolist() == [10, 4, 0]
    assert np.bincount(labels[test], minlength=3).tolist() == [5, 2, 0]
    assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(len(labels)))
    # valid is drawn as if there were no test split; test comes after it in the same permutation
    np.testing.assert_array_equal(valid, stratified_split(labels, 0.2, seed=4)[1])
    again = stratified_splits(labels, (0.2, 0.1), seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, valid, test), strict=True))
    # never a class emptied out of train
    train, *_ = stratified_splits(labels, (0.5, 0.45), seed=2)
    assert np.bincount(labels[train], minlength=3).min() >= 1
