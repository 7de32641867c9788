"""Prepare speed: the CIFAR-10 training array from a full-size archive, cnnpipe vs the usual recipe.

Both sides start from the same 50,000-image ``cifar-10-python.tar.gz`` (written by the sample
generator in the exact upstream format) and end with all training images in memory or on disk:

* cnnpipe: ``prepare_dataset("cifar10", ...)`` with params.yaml's ``datasets.cifar10``, as
  the prepare stage runs it — reads the pickled batches straight from the tar.gz and writes
  uint8 N×3×32×32 ``.npy`` arrays for train, valid *and* test (more work than the baseline,
  which builds the training tensor only);
* baseline: extract the archive with torchvision's ``extract_archive`` (what
  ``CIFAR10(download=True)`` calls), build ``torchvision.datasets.CIFAR10(transform=ToTensor())``
  and ``torch.stack`` every image. Its extraction time is also printed on its own.

Run:  python benchmarks/prepare.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torchvision import datasets, transforms
from torchvision.datasets.utils import extract_archive

from cnnpipe.config import load as params
from cnnpipe.data.prepare import prepare_dataset
from cnnpipe.data.sample import write_sample_mirror


class _CIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10; the sample archive's batches differ from upstream's md5s."""

    meta: ClassVar[dict] = {**datasets.CIFAR10.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


# The stage's own parameters, so the prepared layout (valid split included) is the pipeline's.
CIFAR_PARAMS = params.get(params.load_params(Path(__file__).parents[1] / "params.yaml"), "datasets.cifar10")


def cnnpipe_prepare(raw: Path, out: Path) -> tuple[int, float]:
    """Build the prepared arrays as the prepare stage does; return (training images, 0: nothing extracted)."""
    prepare_dataset("cifar10", raw, out, CIFAR_PARAMS, log=lambda _: None)
    count = sum(len(np.load(out / f"{split}.images.npy", mmap_mode="r")) for split in ("train", "valid"))
    return count, 0.0


def torchvision_recipe(archive: Path, root: Path) -> tuple[int, float]:
    """The usual recipe: extract, dataset with ToTensor(), stack; return (image count, extraction s)."""
    start = time.perf_counter()
    extract_archive(archive, root)
    extracted = time.perf_counter() - start
    dataset = _CIFAR10(str(root), train=True, download=False, transform=transforms.ToTensor())
    images = torch.stack([image for image, _ in dataset])
    return len(images), extracted


def _timed(fn, *args) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        count, extracted = fn(*args, Path(tmp) / "out")
        return time.perf_counter() - start, count, extracted


def _best_of_alternating(repeat: int, *sides) -> list[tuple[float, int, float]]:
    """Best time of each side, the sides taking turns so that both see the same machine load."""
    runs = [[_timed(fn, *args) for fn, *args in sides] for _ in range(repeat)]
    return [min(times) for times in zip(*runs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (taking turns); best reported")
    parser.add_argument("--train", type=int, default=50000, help="training images in the archive")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        write_sample_mirror(
            mirror,
            sizes={"cifar10": {"train": args.train, "test": 10000}},
            datasets=["cifar10"],
            log=lambda _: None,
        )
        raw = mirror / "cifar10"
        (ours, n_ours, _), (base, n_base, base_extract) = _best_of_alternating(
            args.repeat, (cnnpipe_prepare, raw), (torchvision_recipe, raw / "cifar-10-python.tar.gz")
        )
    assert n_ours == n_base == args.train, (n_ours, n_base)
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(f"CIFAR-10 train array from a {args.train}-image archive (best of {args.repeat}):")
    print(f"  cnnpipe prepare_dataset         {ours:7.2f} s  ({n_ours / ours:9.0f} img/s)")
    print(f"  torchvision CIFAR10+ToTensor    {base:7.2f} s  ({n_base / base:9.0f} img/s)")
    print(f"    of which extract_archive      {base_extract:7.2f} s")
    print(f"  speed-up                        {base / ours:7.1f}×")


if __name__ == "__main__":
    main()
