"""Format readers, checked against torchvision's own readers on the same bytes."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import folder as tv_folder
from torchvision.datasets import mnist as tv_mnist
from torchvision.transforms import Compose, PILToTensor, Resize

from cnnpipe.data.celeba_lists import read_celeba_attributes, read_celeba_partition
from cnnpipe.data.readers import (
    IMG_EXTENSIONS,
    decode_image,
    list_imagefolder,
    list_top_folders,
    read_idx,
)
from cnnpipe.errors import ArchiveError, DataFormatError
from tests.helpers.upstream_files import read_cifar10


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def _idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- IDX


def test_read_idx_matches_torchvision_on_raw_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    (tmp_path / "img-idx3-ubyte").write_bytes(_idx_bytes(images, 0x08))
    (tmp_path / "lbl-idx1-ubyte").write_bytes(_idx_bytes(labels, 0x08))
    (tmp_path / "img-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images, 0x08)))

    expected_images = tv_mnist.read_image_file(str(tmp_path / "img-idx3-ubyte")).numpy()
    expected_labels = tv_mnist.read_label_file(str(tmp_path / "lbl-idx1-ubyte")).numpy()
    np.testing.assert_array_equal(read_idx(tmp_path / "img-idx3-ubyte", ndim=3), expected_images)
    np.testing.assert_array_equal(read_idx(tmp_path / "img-idx3-ubyte.gz"), expected_images)
    np.testing.assert_array_equal(read_idx(tmp_path / "lbl-idx1-ubyte", ndim=1), expected_labels)
    assert read_idx(tmp_path / "img-idx3-ubyte.gz").dtype == np.uint8


@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)],
)
def test_read_idx_generic_types_are_big_endian(tmp_path, code, dtype):
    values = (np.arange(24).reshape(2, 3, 4) * 3 - 20).astype(dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(_idx_bytes(values, code))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(out, tv_mnist.read_sn3_pascalvincent_tensor(str(path)).numpy())


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"<html>quota exceeded</html>"))
    with pytest.raises(DataFormatError) as exc:
        read_idx(path, ndim=3)
    message = _one_line(exc)
    assert str(path) in message and "0x3c68746d" in message and "0x00000803" in message
    with pytest.raises(DataFormatError, match="not an IDX file"):
        read_idx(path)


def test_read_idx_rejects_labels_read_as_images(tmp_path):
    path = tmp_path / "labels.idx"
    path.write_bytes(_idx_bytes(np.zeros(5, np.uint8), 0x08))
    with pytest.raises(DataFormatError, match=r"magic 0x00000801, expected 0x00000803"):
        read_idx(path, ndim=3)


@pytest.mark.parametrize("cut", [1, 3, 100])
def test_read_idx_rejects_truncated_payload(tmp_path, cut):
    data = _idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08)
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(data[:-cut]))
    with pytest.raises(DataFormatError) as exc:
        read_idx(path, ndim=3)
    assert "4×28×28" in _one_line(exc) and "truncated" in str(exc.value)


def test_read_idx_rejects_truncated_header_and_gzip(tmp_path):
    path = tmp_path / "h.idx"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataFormatError, match="header is cut short"):
        read_idx(path, ndim=3)
    packed = gzip.compress(_idx_bytes(np.zeros((40, 28, 28), np.uint8), 0x08))
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataFormatError) as exc:
        read_idx(path)
    assert "gzip" in _one_line(exc) and str(path) in str(exc.value)


# ------------------------------------------------------------------------ CIFAR-10


def _cifar_tar(path: Path, batches: dict[str, object], folder: str = "cifar-10-batches-py") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, obj in batches.items():
            data = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _cifar_batches(rng, n=3, key=str) -> dict[str, object]:
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batches[name] = {
            key("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            key("labels"): rng.integers(0, 10, n).tolist(),
        }
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    batches["batches.meta"] = {key("label_names"): [key(c) for c in names]}
    return batches


def test_read_cifar10_accepts_bytes_keys_and_keeps_batch_order(tmp_path):
    rng = np.random.default_rng(1)
    batches = _cifar_batches(rng, key=lambda s: s.encode())
    splits, classes = read_cifar10(_cifar_tar(tmp_path / "c.tar.gz", batches))
    assert classes[0] == "airplane" and len(classes) == 10
    train_images, train_labels = splits["train"]
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    np.testing.assert_array_equal(train_images, expected.reshape(-1, 3, 32, 32))
    assert train_labels.dtype == np.int64
    assert train_labels.tolist() == [
        label for i in range(1, 6) for label in batches[f"data_batch_{i}"][b"labels"]
    ]
    np.testing.assert_array_equal(splits["test"][0].reshape(3, -1), batches["test_batch"][b"data"])


def test_read_cifar10_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    batches = _cifar_batches(np.random.default_rng(2))
    batches["data_batch_3"] = pickle.dumps({"data": Evil()}, protocol=2)
    with pytest.raises(DataFormatError) as exc:
        read_cifar10(_cifar_tar(tmp_path / "c.tar.gz", batches))
    assert "data_batch_3" in _one_line(exc) and "print" in str(exc.value)


def test_read_cifar10_names_missing_batches_and_truncation(tmp_path):
    rng = np.random.default_rng(3)
    batches = _cifar_batches(rng)
    del batches["test_batch"]
    with pytest.raises(DataFormatError) as exc:
        read_cifar10(_cifar_tar(tmp_path / "c.tar.gz", batches))
    assert "test_batch" in _one_line(exc)

    full = _cifar_tar(tmp_path / "full.tar.gz", _cifar_batches(rng, n=50)).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(ArchiveError) as exc:
        read_cifar10(cut)
    assert str(cut) in _one_line(exc)


def test_read_cifar10_rejects_wrong_shapes(tmp_path):
    batches = _cifar_batches(np.random.default_rng(4))
    batches["data_batch_2"]["labels"] = [1]
    with pytest.raises(DataFormatError, match=r"data_batch_2: 1 labels for 3 images"):
        read_cifar10(_cifar_tar(tmp_path / "c.tar.gz", batches))


# -------------------------------------------------------------------------- CelebA


def test_celeba_attributes_with_trailing_space_header(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("2\nBald Smiling Young \n000001.jpg -1  1  1\n000002.jpg  1 -1 -1\n")
    names, files, values = read_celeba_attributes(path)
    assert names == ["Bald", "Smiling", "Young"]
    assert files == ["000001.jpg", "000002.jpg"]
    assert values.tolist() == [[-1, 1, 1], [1, -1, -1]]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("3\nA B\nx.jpg 1 1\n", "header says 3 images but 1 rows follow"),
        ("1\nA B\nx.jpg 1\n", "line 3 is malformed"),
        ("2\nA B\nx.jpg 1 1\ny.jpg 1 1 1\n", r"line 4 is malformed \(3 values for 2 attributes\)"),
        ("1\nA B\nx.jpg 1 1.0\n", r"line 3 is malformed \(invalid literal for int\(\) with base 10: '1.0'\)"),
        ("1\nA B\nx.jpg 1 one\n", r"line 3 is malformed \(invalid literal for int\(\) with base 10: 'one'\)"),
        ("1\nA B\nx.jpg 1 0\n", r"line 3 \(x.jpg\) has values other than -1/1"),
        ("<html>\n", "does not start with an image count"),
    ],
)
def test_celeba_attributes_reject_bad_files(tmp_path, text, match):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=match) as exc:
        read_celeba_attributes(path)
    assert str(path) in _one_line(exc)


def test_celeba_partition_keeps_file_order_and_rejects_bad_codes(tmp_path):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000003.jpg 2\n000001.jpg 0\n\n000002.jpg 1\n")
    assert list(read_celeba_partition(path).items()) == [
        ("000003.jpg", 2),
        ("000001.jpg", 0),
        ("000002.jpg", 1),
    ]
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(DataFormatError, match="line 2") as exc:
        read_celeba_partition(path)
    _one_line(exc)


# --------------------------------------------------------------------- ImageFolder


def test_image_extensions_are_torchvisions():
    assert IMG_EXTENSIONS == tv_folder.IMG_EXTENSIONS


def _tree_files() -> dict[str, bytes]:
    """An awkward ImageFolder tree: nested folders, odd names, non-images, mixed case."""
    png = _png(np.zeros((2, 2, 3), np.uint8))
    return {
        "b_class/z.png": png,
        "b_class/A.PNG": png,
        "b_class/sub/a.jpg": png,
        "b_class/sub-x/a.jpg": png,
        "b_class/sub/deeper/0.bmp": png,
        "b_class/notes.txt": b"x",
        "a_class/10.png": png,
        "a_class/9.png": png,
        "a_class/img.webp": png,
        "B_upper/x.tif": png,
        "loose.png": png,
    }


def test_list_imagefolder_matches_torchvision_order(tmp_path):
    files = _tree_files()
    root = tmp_path / "tree"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    with zipfile.ZipFile(tmp_path / "tree.zip", "w") as zf:
        for rel, data in reversed(files.items()):  # zip order must not matter
            zf.writestr(rel, data)

    tv = tv_folder.ImageFolder(str(root))
    classes, samples = list_imagefolder(root)
    assert classes == tv.classes == ["B_upper", "a_class", "b_class"]
    assert samples == [(p, t) for p, t in tv.samples]
    zclasses, zsamples = list_imagefolder(tmp_path / "tree.zip")
    assert zclasses == tv.classes
    assert zsamples == [(str(Path(p).relative_to(root).as_posix()), t) for p, t in tv.samples]


def test_list_imagefolder_skips_macosx_and_dotfiles_and_strips_wrapper(tmp_path):
    png = _png(np.zeros((2, 2, 3), np.uint8))
    path = tmp_path / "rps.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("rps/", b"")
        for name in ("rps/rock/r1.png", "rps/paper/p1.png", "rps/paper/.hidden.png"):
            zf.writestr(name, png)
        zf.writestr("rps/.ipynb_checkpoints/x.png", png)
        zf.writestr("__MACOSX/rps/rock/._r1.png", b"\0resource fork")
    classes, samples = list_imagefolder(path)
    assert classes == ["paper", "rock"]
    assert samples == [("rps/paper/p1.png", 0), ("rps/rock/r1.png", 1)]


def test_list_imagefolder_keeps_a_single_class_folder_and_selects_prefix(tmp_path):
    png = _png(np.zeros((2, 2, 3), np.uint8))
    single = tmp_path / "single.zip"
    with zipfile.ZipFile(single, "w") as zf:
        zf.writestr("horses/h1.png", png)
        zf.writestr("horses/h2.png", png)
    assert list_imagefolder(single) == (["horses"], [("horses/h1.png", 0), ("horses/h2.png", 0)])

    wrapped = tmp_path / "sea.zip"
    with zipfile.ZipFile(wrapped, "w") as zf:
        for name in (
            "sea/train/crab/1.png",
            "sea/train/eel/1.png",
            "sea/test/eel/2.png",
            "sea/val/crab/3.png",
        ):
            zf.writestr(name, png)
    assert list_top_folders(wrapped) == ["test", "train", "val"]
    assert list_imagefolder(wrapped, "train") == (
        ["crab", "eel"],
        [("sea/train/crab/1.png", 0), ("sea/train/eel/1.png", 1)],
    )
    assert list_imagefolder(wrapped, "test") == (["eel"], [("sea/test/eel/2.png", 0)])
    assert list_imagefolder(wrapped, "nothing") == ([], [])


def test_list_imagefolder_missing_source(tmp_path):
    with pytest.raises(DataFormatError, match="is missing"):
        list_imagefolder(tmp_path / "nope.zip")


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
# 16-bit images are not here: torchvision's loader clips them, decode_image scales them
# (tests/data/test_image_modes.py).
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "LA", "1", "CMYK"])
@pytest.mark.parametrize("size", [None, (13, 29)])
def test_decode_image_matches_torchvision_loader_and_resize(tmp_path, mode, size):
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 256, (21, 17, 4), dtype=np.uint8), "RGBA")
    if mode != "RGBA":
        image = image.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    image.save(path)

    transform = PILToTensor() if size is None else Compose([Resize(size), PILToTensor()])
    expected = transform(tv_folder.pil_loader(str(path)))
    ours = decode_image(path.read_bytes(), size)
    assert ours.dtype == np.uint8 and ours.shape == tuple(expected.shape)
    assert torch.equal(torch.from_numpy(ours), expected)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decode_image_raises_on_truncated_data(fmt):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    with pytest.raises(OSError):
        decode_image(data[: len(data) // 2], (8, 8))
    with pytest.raises(OSError):
        decode_image(b"\x89PNG\r\n\x1a\n garbage", None)
