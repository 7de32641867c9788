"""Prepare speed: the CIFAR-10 prepare stage on a full-size archive, by gzip backend; vs the usual recipe.

Every side starts from the same 50,000 + 10,000-image ``cifar-10-python.tar.gz`` (170 MB,
written by the sample generator in the exact upstream format):

* gzip backends: ``prepare_dataset("cifar10", ...)`` with params.yaml's ``datasets.cifar10``,
  as the prepare stage runs it (reads the pickled batches straight from the tar.gz and writes
  uint8 N×3×32×32 ``.npy`` arrays for train, valid and test), end to end, once with each gzip
  reader :func:`cnnpipe.data.gzipstream.open_gzip` can pick: ISA-L (``isal``, where the
  fast-gzip extra is installed) and the standard library's :mod:`gzip`. The time saved by
  each backend is printed against ISA-L and against the standard library (benchmarks/README.md
  has the run that also measured rapidgzip, and why it was dropped);
* baseline: extract the archive with torchvision's ``extract_archive`` (what
  ``CIFAR10(download=True)`` calls), build ``torchvision.datasets.CIFAR10(transform=ToTensor())``
  and ``torch.stack`` every image (its extraction time is also printed on its own), against
  cnnpipe's prepare with the backend ``open_gzip`` picks here (which builds valid and test
  too).

Run:  python benchmarks/prepare.py [--repeat 3] [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torchvision import datasets, transforms
from torchvision.datasets.utils import extract_archive

from cnnpipe.config import load as params
from cnnpipe.cpus import usable_cpus
from cnnpipe.data import gzipstream
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.sample.mirror import write_sample_mirror


class _CIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10; the sample archive's batches differ from upstream's md5s."""

    meta: ClassVar[dict] = {**datasets.CIFAR10.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


# The stage's own parameters, so the prepared layout (valid split included) is the pipeline's.
CIFAR_PARAMS = params.get(params.load_params(Path(__file__).parents[1] / "params.yaml"), "datasets.cifar10")


def cnnpipe_prepare(raw: Path, out: Path) -> tuple[int, float]:
    """Build the prepared arrays as the prepare stage does; return (training images, 0: nothing extracted)."""
    prepare_dataset("cifar10", raw, out, **CIFAR_PARAMS, log=lambda _: None)
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


@contextlib.contextmanager
def gzip_backend(name: str):
    """Make ``open_gzip`` use one backend: "isal" or "stdlib" (hiding isal)."""
    hidden = {"isal": [], "stdlib": ["isal"]}[name]
    saved = {m: sys.modules.get(m) for m in hidden}
    try:
        for module in hidden:
            sys.modules[module] = None  # `import module` now raises ImportError
        yield
    finally:
        for module, value in saved.items():
            if value is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = value


def _available(name: str) -> bool:
    module = {"isal": "isal.igzip_threaded", "stdlib": "gzip"}[name]
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def backend_prepare(name: str):
    """The prepare stage's work with the gzip backend ``name``."""

    def run(raw: Path, out: Path) -> tuple[int, float]:
        with gzip_backend(name):
            return cnnpipe_prepare(raw, out)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (taking turns); best reported")
    parser.add_argument("--train", type=int, default=50000, help="training images in the archive")
    parser.add_argument("--no-baseline", action="store_true", help="skip the torchvision recipe")
    args = parser.parse_args()
    backends = [b for b in ("isal", "stdlib") if _available(b)]
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        write_sample_mirror(
            mirror,
            sizes={"cifar10": {"train": args.train, "test": 10000}},
            datasets=["cifar10"],
            log=lambda _: None,
        )
        raw = mirror / "cifar10"
        archive = raw / "cifar-10-python.tar.gz"
        sides = [(backend_prepare(b), raw) for b in backends]
        if not args.no_baseline:
            sides.append((torchvision_recipe, archive))
        readers = {}
        for name in backends:  # check each side reads through the backend it is named after
            with gzip_backend(name), gzipstream.open_gzip(archive) as reader:
                raw_reader = getattr(reader, "raw", reader)
                readers[name] = f"{type(raw_reader).__module__}.{type(raw_reader).__name__}"
        results = _best_of_alternating(args.repeat, *sides)
        archive_mb = archive.stat().st_size / 1e6
    by_backend = dict(zip(backends, results[: len(backends)], strict=True))
    assert all(count == args.train for _, count, _ in results), results
    print(f"date: {datetime.date.today()}  machine: {platform.machine()}, {usable_cpus()} usable cores")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )
    print(f"CIFAR-10 prepare end to end, {archive_mb:.0f} MB archive, {args.train} train images")
    print(f"(best of {args.repeat}, the sides taking turns):")
    print(f"  {'gzip backend':<12} reader")
    for name, reader in readers.items():
        print(f"  {name:<12} {reader}")
    print(f"  {'gzip backend':<12} {'seconds':>8} {'vs ISA-L':>9} {'vs stdlib':>10}")
    for name, (seconds, _, _) in by_backend.items():
        vs = [
            f"{1 - seconds / by_backend[ref][0]:+.0%}" if ref in by_backend else "n/a"
            for ref in ("isal", "stdlib")
        ]
        print(f"  {name:<12} {seconds:8.2f} {vs[0]:>9} {vs[1]:>10}")
    print("  (vs: the share of the reference backend's time saved; + is faster)")
    if not args.no_baseline:
        (ours, n_ours, _), (base, n_base, base_extract) = results[0], results[-1]
        print(f"CIFAR-10 train array, cnnpipe ({backends[0]}) vs the usual recipe:")
        print(f"  cnnpipe prepare_dataset         {ours:7.2f} s  ({n_ours / ours:9.0f} img/s)")
        print(f"  torchvision CIFAR10+ToTensor    {base:7.2f} s  ({n_base / base:9.0f} img/s)")
        print(f"    of which extract_archive      {base_extract:7.2f} s")
        print(f"  speed-up                        {base / ours:7.1f}×")


if __name__ == "__main__":
    main()
