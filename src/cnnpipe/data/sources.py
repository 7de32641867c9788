"""The source registry: every upstream file the pipeline downloads, in one place.

It also owns what is known about those files: their names, the names inside the archives
and the class lists (IDX, CIFAR-10 and CelebA), read by the prepare step and written by the
sample mirror (:mod:`cnnpipe.sample`).

Each dataset lists its files under their upstream names, the URLs to try in order
(fallback mirrors where upstream has several, as torchvision does for MNIST) and the
published MD5 checksum where one exists. The checksums are the ones torchvision's own
dataset classes verify.

The Google-storage zips (horse-or-human, rock-paper-scissors) and Microsoft's Dogs vs Cats zip
have **no published checksum**: their ``md5`` is ``None``, the download says so, and the
pipeline relies on ``dvc.lock`` to pin what the first successful download produced.

A mirror (``data.mirror`` in params.yaml) replaces every URL: files are looked up as
``<mirror>/<dataset>/<file name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnpipe.errors import ParamError

# ----------------------------------------------------------- upstream names and classes
# The names of the upstream files and of what they hold, as the real downloads have them:
# the prepare step reads them, the sample mirror writes them.

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""Per split, the (images, labels) file names of an IDX set (MNIST, Fashion-MNIST)."""

# torchvision's MNIST.classes and FashionMNIST.classes.
IDX_CLASSES = {
    "mnist": [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}

CIFAR_FILE = "cifar-10-python.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-py"
"""The folder of the CIFAR-10 archive holding its pickled batches."""
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)
CIFAR_META = "batches.meta"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


CELEBA_ZIP = "img_align_celeba.zip"
CELEBA_FOLDER = "img_align_celeba"
"""The folder of :data:`CELEBA_ZIP` holding the images."""
CELEBA_ATTR = "list_attr_celeba.txt"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}
"""The split codes of :data:`CELEBA_PARTITION`."""
CELEBA_IMAGE_SIZE = (218, 178)
"""Height and width of an aligned CelebA image."""

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
"""The 40 CelebA attribute names, in the order of ``list_attr_celeba.txt``."""

CATS_DOGS_ZIP = "kagglecatsanddogs_5340.zip"
CATS_DOGS_FOLDER = "PetImages"
"""The folder of :data:`CATS_DOGS_ZIP` holding the class folders ``Cat/`` and ``Dog/``."""


# ---------------------------------------------------------------------- the registry

_MNIST_HOSTS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_HOSTS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_LEARNING_DATASETS = (
    "https://storage.googleapis.com/learning-datasets/",
    "https://storage.googleapis.com/laurencemoroney-blog.appspot.com/",
)


def _gdrive(file_id: str) -> tuple[str, ...]:
    """Google Drive URLs for one file id; large files may answer with an HTML page."""
    return (
        f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t",
        f"https://drive.google.com/uc?export=download&id={file_id}",
    )


@dataclass(frozen=True)
class SourceFile:
    """One upstream file: its name on disk, the URLs to try in order, its MD5 if published."""

    name: str
    urls: tuple[str, ...]
    md5: str | None


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset: its reader kind and upstream files."""

    name: str
    # "idx" | "cifar" | "celeba" | "imagefolder" (a training and a test zip of class folders) |
    # "classfolders" (one archive of class folders, split at prepare time): which reader prepares it
    kind: str
    files: tuple[SourceFile, ...]
    homepage: str


def _on_hosts(name: str, hosts: tuple[str, ...], md5: str | None) -> SourceFile:
    return SourceFile(name, tuple(h + name for h in hosts), md5)


SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        "mnist",
        "idx",
        (
            _on_hosts(IDX_FILES["train"][0], _MNIST_HOSTS, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            _on_hosts(IDX_FILES["train"][1], _MNIST_HOSTS, "d53e105ee54ea40749a09fcbcd1e9432"),
            _on_hosts(IDX_FILES["test"][0], _MNIST_HOSTS, "9fb629c4189551a2d022fa330f9573f3"),
            _on_hosts(IDX_FILES["test"][1], _MNIST_HOSTS, "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": DatasetSource(
        "fashion_mnist",
        "idx",
        (
            _on_hosts(IDX_FILES["train"][0], _FASHION_HOSTS, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            _on_hosts(IDX_FILES["train"][1], _FASHION_HOSTS, "25c81989df183df01b3e8a0aad5dffbe"),
            _on_hosts(IDX_FILES["test"][0], _FASHION_HOSTS, "bef4ecab320f06d8554ea6380940ec79"),
            _on_hosts(IDX_FILES["test"][1], _FASHION_HOSTS, "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": DatasetSource(
        "cifar10",
        "cifar",
        (
            SourceFile(
                CIFAR_FILE,
                ("https://www.cs.toronto.edu/~kriz/" + CIFAR_FILE,),
                "c58f30108f718f92721af3b95e74349a",
            ),
        ),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "celeba": DatasetSource(
        "celeba",
        "celeba",
        (
            SourceFile(
                CELEBA_ZIP,
                _gdrive("0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
                "00d2c5bc6d35e252742224ab0c1e8fcb",
            ),
            SourceFile(
                CELEBA_ATTR,
                _gdrive("0B7EVK8r0v71pblRyaVFSWGxPY0U"),
                "75e246fa4810816ffd6ee81facbd244c",
            ),
            SourceFile(
                CELEBA_PARTITION,
                _gdrive("0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
                "d32c9cbf5e040fd4025c592c306e6668",
            ),
        ),
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    ),
    "horse_or_human": DatasetSource(
        "horse_or_human",
        "imagefolder",
        (
            _on_hosts("horse-or-human.zip", _LEARNING_DATASETS, None),
            _on_hosts("validation-horse-or-human.zip", _LEARNING_DATASETS, None),
        ),
        "https://laurencemoroney.com/datasets.html",
    ),
    "rps": DatasetSource(
        "rps",
        "imagefolder",
        (
            _on_hosts("rps.zip", _LEARNING_DATASETS, None),
            _on_hosts("rps-test-set.zip", _LEARNING_DATASETS, None),
        ),
        "https://laurencemoroney.com/datasets.html",
    ),
    "cats_vs_dogs": DatasetSource(
        "cats_vs_dogs",
        "classfolders",
        (
            SourceFile(
                CATS_DOGS_ZIP,
                (
                    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
                    + CATS_DOGS_ZIP,
                ),
                None,
            ),
        ),
        "https://www.microsoft.com/en-us/download/details.aspx?id=54765",
    ),
}


#: Sets with no public download, by the file name a mirror holds them under
#: (``<mirror>/<name>/<file>``): the notebook's 5-class sea-creature set. Its files come from
#: ``data.mirror`` (the sample mirror has one) or from the user's copy at ``datasets.<name>.path``.
LOCAL_SETS: dict[str, str] = {"sea": "sea_creatures.zip"}


def get_source(name: str) -> DatasetSource:
    """Return the registry entry for ``name`` or fail naming the known datasets."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise ParamError(f"unknown dataset {name!r}: the source registry knows {known}") from None
