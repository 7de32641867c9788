"""The source registry: every upstream file the pipeline downloads, in one place.

Each dataset lists its files under their upstream names, the URLs to try in order
(fallback mirrors where upstream has several, as torchvision does for MNIST) and the
published MD5 checksum where one exists. The checksums are the ones torchvision's own
dataset classes verify.

The Google-storage zips (horse-or-human, rock-paper-scissors) have **no published
checksum**: their ``md5`` is ``None``, the download says so, and the pipeline relies on
``dvc.lock`` to pin what the first successful download produced.

A mirror (``data.mirror`` in params.yaml) replaces every URL: files are looked up as
``<mirror>/<dataset>/<file name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnpipe.errors import ParamError

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
    kind: str  # "idx" | "cifar" | "celeba" | "imagefolder": which reader prepares it
    files: tuple[SourceFile, ...]
    homepage: str


def _on_hosts(name: str, hosts: tuple[str, ...], md5: str | None) -> SourceFile:
    return SourceFile(name, tuple(h + name for h in hosts), md5)


SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        "mnist",
        "idx",
        (
            _on_hosts("train-images-idx3-ubyte.gz", _MNIST_HOSTS, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            _on_hosts("train-labels-idx1-ubyte.gz", _MNIST_HOSTS, "d53e105ee54ea40749a09fcbcd1e9432"),
            _on_hosts("t10k-images-idx3-ubyte.gz", _MNIST_HOSTS, "9fb629c4189551a2d022fa330f9573f3"),
            _on_hosts("t10k-labels-idx1-ubyte.gz", _MNIST_HOSTS, "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": DatasetSource(
        "fashion_mnist",
        "idx",
        (
            _on_hosts("train-images-idx3-ubyte.gz", _FASHION_HOSTS, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            _on_hosts("train-labels-idx1-ubyte.gz", _FASHION_HOSTS, "25c81989df183df01b3e8a0aad5dffbe"),
            _on_hosts("t10k-images-idx3-ubyte.gz", _FASHION_HOSTS, "bef4ecab320f06d8554ea6380940ec79"),
            _on_hosts("t10k-labels-idx1-ubyte.gz", _FASHION_HOSTS, "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": DatasetSource(
        "cifar10",
        "cifar",
        (
            SourceFile(
                "cifar-10-python.tar.gz",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
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
                "img_align_celeba.zip",
                _gdrive("0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
                "00d2c5bc6d35e252742224ab0c1e8fcb",
            ),
            SourceFile(
                "list_attr_celeba.txt",
                _gdrive("0B7EVK8r0v71pblRyaVFSWGxPY0U"),
                "75e246fa4810816ffd6ee81facbd244c",
            ),
            SourceFile(
                "list_eval_partition.txt",
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
