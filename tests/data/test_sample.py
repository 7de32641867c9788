"""The offline sample mirror: every upstream file, in its upstream format, deterministic."""

import gzip
import hashlib
import io
import pickle
import re
import shutil
import tarfile
import zipfile
from collections import Counter
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from torchvision.datasets import CIFAR10, MNIST, CelebA, FashionMNIST, ImageFolder

from cnnpipe.data.sources import CATS_DOGS_FOLDER, CATS_DOGS_ZIP, CELEBA_ATTRIBUTES, LOCAL_SETS, SOURCES
from cnnpipe.errors import ParamError
from cnnpipe.sample.mirror import write_sample_mirror
from cnnpipe.sample.sizes import DEFAULT_SIZES, parse_size_overrides
from tests.helpers.upstream_files import safe_extract, write_celeba_torchvision_extras


def _quiet(_message):
    pass


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _read_md5sums(path):
    lines = path.read_text().splitlines()
    assert lines == sorted(lines, key=lambda line: line[34:])
    sums = {}
    for line in lines:
        match = re.fullmatch(r"([0-9a-f]{32})  (\S+/\S+)", line)
        assert match, line
        sums[match.group(2)] = match.group(1)
    return sums


def _extract_zip(archive, dest):
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


# ---------------------------------------------------------------- layout, checksums


def test_every_registry_file_is_written(mirror):
    assert set(DEFAULT_SIZES) == set(SOURCES) | set(LOCAL_SETS)
    for name, source in SOURCES.items():
        for file in source.files:
            path = mirror / name / file.name
            assert path.is_file() and path.stat().st_size > 0, path
    for name, file in LOCAL_SETS.items():
        assert (mirror / name / file).is_file()


def test_sea_set_is_a_five_class_imagefolder_zip_torchvision_reads(mirror, tmp_path):
    root = safe_extract(mirror / "sea" / LOCAL_SETS["sea"], tmp_path / "sea")
    for split in ("train", "test"):
        folder = ImageFolder(str(root / split))
        assert folder.classes == ["crab", "fish", "jellyfish", "octopus", "starfish"]
        image, _ = folder[0]
        assert image.size == (100, 100)


def test_md5sums_lists_every_file_with_its_md5(mirror):
    sums = _read_md5sums(mirror / "MD5SUMS")
    on_disk = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()}
    assert set(sums) == on_disk - {"MD5SUMS"}
    for rel, md5 in sums.items():
        assert _md5(mirror / rel) == md5, rel


def test_same_arguments_give_identical_bytes_and_another_seed_differs(mirror, tmp_path, sample_sizes):
    again = write_sample_mirror(tmp_path / "again", sizes=sample_sizes, log=_quiet)
    assert (again / "MD5SUMS").read_bytes() == (mirror / "MD5SUMS").read_bytes()

    other = write_sample_mirror(
        tmp_path / "other", sizes=sample_sizes, datasets=["mnist", "rps"], seed=1, log=_quiet
    )
    first, second = _read_md5sums(mirror / "MD5SUMS"), _read_md5sums(other / "MD5SUMS")
    assert set(second) == {k for k in first if k.startswith(("mnist/", "rps/"))}
    assert all(first[k] != second[k] for k in second)


def test_regenerating_some_datasets_merges_md5sums(tmp_path, sample_sizes):
    out = write_sample_mirror(tmp_path, sizes=sample_sizes, datasets=["mnist", "rps"], log=_quiet)
    before = _read_md5sums(out / "MD5SUMS")
    write_sample_mirror(out, sizes={"mnist": {"train": 20}}, datasets=["mnist"], log=_quiet)
    after = _read_md5sums(out / "MD5SUMS")
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in after if k.startswith("rps/"))
    assert after["mnist/train-images-idx3-ubyte.gz"] != before["mnist/train-images-idx3-ubyte.gz"]
    assert after["mnist/t10k-images-idx3-ubyte.gz"] != before["mnist/t10k-images-idx3-ubyte.gz"]
    for rel, md5 in after.items():
        assert _md5(out / rel) == md5, rel


def test_containers_carry_no_time_or_name(mirror):
    header = (mirror / "mnist" / "train-images-idx3-ubyte.gz").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # no FNAME
    assert header[4:8] == b"\0\0\0\0"  # mtime 0
    with tarfile.open(mirror / "cifar10" / "cifar-10-python.tar.gz") as tf:
        members = tf.getmembers()
    assert members[0].isdir() and members[0].name == "cifar-10-batches-py"
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "root")}
    with zipfile.ZipFile(mirror / "rps" / "rps.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


# ---------------------------------------------------------------- torchvision reads the formats


@pytest.mark.parametrize(
    ("dataset", "cls", "folder"),
    [("mnist", MNIST, "MNIST"), ("fashion_mnist", FashionMNIST, "FashionMNIST")],
)
def test_torchvision_reads_idx_files(mirror, tmp_path, sample_sizes, dataset, cls, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for gz in (mirror / dataset).glob("*.gz"):
        (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    for train, split in ((True, "train"), (False, "test")):
        ds = cls(tmp_path, train=train, download=False)
        n = sample_sizes[dataset][split]
        assert ds.data.shape == (n, 28, 28) and ds.data.dtype == torch.uint8
        counts = Counter(ds.targets.tolist())
        assert set(counts) == set(range(10))
        assert max(counts.values()) - min(counts.values()) <= 1
        image, label = ds[0]
        assert image.size == (28, 28) and 0 <= label <= 9


class _SampleCIFAR10(CIFAR10):
    """CIFAR10 without the upstream md5s (the sample batches have their own)."""

    train_list: ClassVar = [[f"data_batch_{i}", None] for i in range(1, 6)]
    test_list: ClassVar = [["test_batch", None]]
    meta: ClassVar = {**CIFAR10.meta, "md5": None}


def test_torchvision_reads_cifar_archive(mirror, tmp_path, sample_sizes):
    with tarfile.open(mirror / "cifar10" / "cifar-10-python.tar.gz") as tf:
        names = {m.name for m in tf.getmembers()}
        tf.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    expected = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    assert {f"cifar-10-batches-py/{n}" for n in expected | {"readme.html"}} <= names

    train = _SampleCIFAR10(tmp_path, train=True, download=False)
    test = _SampleCIFAR10(tmp_path, train=False, download=False)
    assert train.classes[:3] == ["airplane", "automobile", "bird"] and len(train.classes) == 10
    n_train, n_test = sample_sizes["cifar10"]["train"], sample_sizes["cifar10"]["test"]
    assert train.data.shape == (n_train, 32, 32, 3) and test.data.shape == (n_test, 32, 32, 3)
    assert Counter(train.targets) == Counter({c: n_train // 10 for c in range(10)})
    image, label = test[3]
    assert image.size == (32, 32) and image.mode == "RGB" and label == test.targets[3]

    # like the upstream Python 2 pickles: str keys with latin1, bytes keys with encoding="bytes"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    raw = pickle.loads(batch.read_bytes(), encoding="bytes")
    assert list(raw) == [b"batch_label", b"labels", b"data", b"filenames"]
    assert raw[b"data"].shape == (n_train // 5, 3072) and raw[b"data"].dtype == np.uint8
    assert batch.read_bytes()[:2] == b"\x80\x02"


def test_torchvision_reads_celeba_files(mirror, tmp_path, sample_sizes):
    base = tmp_path / "celeba"
    _extract_zip(mirror / "celeba" / "img_align_celeba.zip", base)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        shutil.copy(mirror / "celeba" / name, base / name)
    write_celeba_torchvision_extras(base)

    class SampleCelebA(CelebA):
        def _check_integrity(self):
            return True

    for split, n in sample_sizes["celeba"].items():
        ds = SampleCelebA(tmp_path, split=split, target_type="attr", download=False)
        assert len(ds) == n
        assert ds.attr.shape == (n, 40) and set(ds.attr.unique().tolist()) <= {0, 1}
        assert ds.attr_names == list(CELEBA_ATTRIBUTES)
        image, attr = ds[0]
        assert image.size == (178, 218) and image.format == "JPEG" and attr.shape == (40,)
    lines = (base / "list_attr_celeba.txt").read_text().splitlines()
    total = sum(sample_sizes["celeba"].values())
    assert lines[0] == str(total) and lines[1] == " ".join(CELEBA_ATTRIBUTES)
    assert re.fullmatch(r"000001\.jpg( (-1| 1)){40}", lines[2])
    partition = (base / "list_eval_partition.txt").read_text().split()
    assert partition[:2] == ["000001.jpg", "0"] and partition[-2:] == [f"{total:06d}.jpg", "2"]


def test_torchvision_reads_horse_or_human_folders(mirror, tmp_path, sample_sizes):
    sizes = sample_sizes["horse_or_human"]
    for file, split in (("horse-or-human.zip", "train"), ("validation-horse-or-human.zip", "valid")):
        n = sizes[split]
        root = _extract_zip(mirror / "horse_or_human" / file, tmp_path / file)
        ds = ImageFolder(root)
        assert ds.classes == ["horses", "humans"] and len(ds) == n
        assert Counter(ds.targets) == Counter({0: n // 2, 1: n // 2})
        modes = Counter(Image.open(path).mode for path, _ in ds.samples)
        assert set(modes) <= {"RGBA", "RGB"} and modes["RGBA"] > n // 2
        image, _ = ds[0]
        assert image.size == (300, 300)
        assert ds.samples[0][0].endswith("horses/horse01-0.png")


def test_torchvision_reads_rps_folders(mirror, tmp_path, sample_sizes):
    sizes = sample_sizes["rps"]
    for file, top, split in (("rps.zip", "rps", "train"), ("rps-test-set.zip", "rps-test-set", "test")):
        n = sizes[split]
        root = _extract_zip(mirror / "rps" / file, tmp_path / file) / top
        ds = ImageFolder(root)
        assert ds.classes == ["paper", "rock", "scissors"] and len(ds) == n
        assert Counter(ds.targets) == Counter({c: n // 3 for c in range(3)})
        assert {Image.open(path).mode for path, _ in ds.samples} == {"RGBA"}
        assert Image.open(ds.samples[0][0]).size == (300, 300)


def test_cats_vs_dogs_zip_is_laid_out_as_upstream_with_its_broken_files(mirror, tmp_path, sample_sizes):
    with zipfile.ZipFile(mirror / "cats_vs_dogs" / CATS_DOGS_ZIP) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert {n for n in names if "/" not in n} == {"CDLA-Permissive-2.0.pdf", "readme[1].txt"}
    assert {n.split("/")[0] for n in names if "/" in n} == {CATS_DOGS_FOLDER}
    assert f"{CATS_DOGS_FOLDER}/Cat/Thumbs.db" in names and f"{CATS_DOGS_FOLDER}/Dog/Thumbs.db" in names
    root = safe_extract(mirror / "cats_vs_dogs" / CATS_DOGS_ZIP, tmp_path / "x") / CATS_DOGS_FOLDER
    per_class = sample_sizes["cats_vs_dogs"]["train"] // 2
    assert (root / "Cat" / f"{per_class}.jpg").stat().st_size == 0
    readable, broken, sizes, modes = Counter(), [], set(), Counter()
    for path in sorted(root.glob("*/*.jpg")):
        try:
            with Image.open(path) as image:
                image.load()
                sizes.add(image.size)
                modes[image.mode] += 1
                readable[path.parent.name] += 1
        except OSError:
            broken.append(path.relative_to(root).as_posix())
    assert readable == Counter({"Cat": per_class, "Dog": per_class})
    assert broken == [f"Cat/{per_class}.jpg", f"Dog/{per_class}.jpg", f"Dog/{per_class + 1}.jpg"]
    assert len(sizes) > per_class  # photos of many sizes, as upstream
    assert set(modes) <= {"RGB", "L"} and modes["RGB"] > modes["L"]
    # torchvision's ImageFolder lists the class folders in sorted order and skips Thumbs.db
    folder = ImageFolder(str(root))
    assert folder.classes == ["Cat", "Dog"] and len(folder) == 2 * per_class + 3


# ---------------------------------------------------------------- learnable signal


def _nearest_mean_accuracy(train_x, train_y, test_x, test_y):
    train_x = train_x.reshape(len(train_x), -1).astype(np.float32) / 255
    test_x = test_x.reshape(len(test_x), -1).astype(np.float32) / 255
    classes = np.unique(train_y)
    means = np.stack([train_x[train_y == c].mean(0) for c in classes])
    distances = ((test_x[:, None, :] - means[None]) ** 2).sum(-1)
    return float((classes[distances.argmin(1)] == test_y).mean())


@pytest.fixture(scope="module")
def learn_mirror(tmp_path_factory):
    sizes = {ds: {"train": 500, "test": 200} for ds in ("mnist", "fashion_mnist", "cifar10")}
    sizes["celeba"] = {"train": 160, "valid": 4, "test": 80}
    sizes["cats_vs_dogs"] = {"train": 240}
    return write_sample_mirror(tmp_path_factory.mktemp("learn"), sizes=sizes, datasets=[*sizes], log=_quiet)


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_idx_classes_are_learnable(learn_mirror, dataset):
    def read(name, offset):
        data = gzip.decompress((learn_mirror / dataset / name).read_bytes())
        return np.frombuffer(data[offset:], dtype=np.uint8)

    train_x = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    test_x = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    train_y = read("train-labels-idx1-ubyte.gz", 8)
    test_y = read("t10k-labels-idx1-ubyte.gz", 8)
    assert _nearest_mean_accuracy(train_x, train_y, test_x, test_y) > 0.6
    # no single pixel gives the class away
    best_pixel = max(
        _nearest_mean_accuracy(train_x[:, [p]], train_y, test_x[:, [p]], test_y) for p in range(0, 784, 7)
    )
    assert best_pixel < 0.4


def test_cifar_classes_are_learnable(learn_mirror):
    batches = {}
    with tarfile.open(learn_mirror / "cifar10" / "cifar-10-python.tar.gz") as tf:
        for member in tf.getmembers():
            if member.isfile() and "_batch" in member.name:
                data = tf.extractfile(member).read()
                batches[member.name.rsplit("/", 1)[1]] = pickle.loads(data, encoding="latin1")
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    train_x = np.concatenate([b["data"] for b in train])
    train_y = np.concatenate([b["labels"] for b in train])
    test_x, test_y = batches["test_batch"]["data"], np.array(batches["test_batch"]["labels"])
    assert _nearest_mean_accuracy(train_x, train_y, test_x, test_y) > 0.6


def _smiling_and_faces(mirror):
    """The CelebA sample's Smiling labels (±1) and its face images, in file order."""
    folder = mirror / "celeba"
    rows = (folder / "list_attr_celeba.txt").read_text().splitlines()[2:]
    smiling = np.array([int(r.split()[1 + CELEBA_ATTRIBUTES.index("Smiling")]) for r in rows])
    with zipfile.ZipFile(folder / "img_align_celeba.zip") as zf:
        faces = [Image.open(io.BytesIO(zf.read(f"img_align_celeba/{r[:10]}"))) for r in rows]
    return smiling, faces


def test_celeba_smiling_shows_in_the_mouth(learn_mirror):
    smiling, faces = _smiling_and_faces(learn_mirror)
    mouths = np.stack([np.asarray(f.convert("L"), np.float32)[130:175, 55:125] for f in faces])
    mouths = mouths.reshape(len(mouths), -1)
    mouths = (mouths - mouths.mean(1, keepdims=True)) / (mouths.std(1, keepdims=True) + 1e-3)
    assert 0.3 < (smiling[:160] > 0).mean() < 0.7
    model = LogisticRegression(C=0.1, max_iter=500).fit(mouths[:160], smiling[:160])
    assert model.score(mouths[164:], smiling[164:]) > 0.7


def test_celeba_smiling_shows_at_the_models_input_size(learn_mirror):
    """smile_cnn sees 64×64 resizes of a 178×178 crop: the grin must survive that, across the face."""
    smiling, faces = _smiling_and_faces(learn_mirror)
    small = np.stack([
        np.asarray(f.crop((0, 20, 178, 198)).resize((64, 64), Image.BILINEAR), np.float32) / 255
        for f in faces
    ])  # fmt: skip
    features = small.reshape(len(small), -1)
    model = LogisticRegression(C=0.01, max_iter=1000).fit(features[:160], smiling[:160])
    assert model.score(features[164:], smiling[164:]) > 0.8


def test_cats_and_dogs_are_learnable_but_not_from_their_colour(learn_mirror):
    """The pets differ in shape (ears, muzzle, eyes), not in fur: a small linear model tells them apart."""
    small, labels, colour = [], [], []
    with zipfile.ZipFile(learn_mirror / "cats_vs_dogs" / CATS_DOGS_ZIP) as zf:
        for name in zf.namelist():
            if not name.endswith(".jpg") or not zf.getinfo(name).file_size:
                continue
            try:
                image = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
                image.load()
            except OSError:  # the broken files
                continue
            pixels = np.asarray(image.resize((48, 48), Image.BILINEAR), np.float32) / 255
            small.append(pixels.mean(2).ravel())
            colour.append(pixels.reshape(-1, 3).mean(0))
            labels.append(name.split("/")[1] == "Dog")
    x, y, colour = np.stack(small), np.asarray(labels), np.stack(colour)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:180], order[180:]
    assert len(y) == 240 and y.mean() == 0.5
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x[train], y[train])
    assert model.score(x[test], y[test]) > 0.8
    by_colour = LogisticRegression(max_iter=2000).fit(colour[train], y[train])
    assert by_colour.score(colour[test], y[test]) < 0.75


# ---------------------------------------------------------------- sizes


def test_parse_size_overrides():
    assert parse_size_overrides([]) == {}
    assert parse_size_overrides(["cifar10.train=50000", "cifar10.test=10000", "rps.test= 3"]) == {
        "cifar10": {"train": 50000, "test": 10000},
        "rps": {"test": 3},
    }


@pytest.mark.parametrize(
    "item", ["cifar10.train", "cifar10.valid=5", "cifar.train=5", "mnist.train=0", "mnist.test=x"]
)
def test_parse_size_overrides_rejects_bad_items(item):
    with pytest.raises(ParamError) as exc_info:
        parse_size_overrides(["mnist.train=10", item])
    message = str(exc_info.value)
    assert "\n" not in message
    assert repr(item) in message and "celeba.valid" in message


def test_write_rejects_unknown_names_and_bad_counts(tmp_path):
    with pytest.raises(ParamError, match="imagenet"):
        write_sample_mirror(tmp_path, datasets=["imagenet"], log=_quiet)
    with pytest.raises(ParamError, match=r"rps\.valid"):
        write_sample_mirror(tmp_path, sizes={"rps": {"valid": 3}}, datasets=["rps"], log=_quiet)
    with pytest.raises(ParamError, match=r"mnist\.train"):
        write_sample_mirror(tmp_path, sizes={"mnist": {"train": -1}}, log=_quiet)
    assert not any(tmp_path.iterdir())
