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
* ``classfolders`` (cats_vs_dogs): one archive of class folders (inside a wrapper folder like
  ``PetImages/``), no split folders: valid and test are seeded stratified shares of it
  (``valid_fraction``, ``test_fraction``, ``split_seed``); resized and skipped as above.

Archive members are read within ``limits`` (:class:`~cnnpipe.data.archives.ArchiveLimits`,
params ``data.max_member_mb`` and ``data.max_ratio``), checked before anything is inflated: in
an ImageFolder set a member over them is skipped and listed in ``skipped.json`` like an
unreadable image; in a fixed upstream set (IDX, CIFAR-10, CelebA) it fails the stage in one line.

Everything is written through :class:`~cnnpipe.data.arrays.PreparedWriter`, so a failure
leaves no partial output behind; a full disk is one line naming the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnpipe.data.archives import ArchiveLimits
from cnnpipe.data.prepare.celeba import _prepare_celeba
from cnnpipe.data.prepare.common import Log, _require
from cnnpipe.data.prepare.idx_cifar import _prepare_cifar, _prepare_idx
from cnnpipe.data.prepare.imagefolder import _prepare_folders, folder_params, prepare_class_folders
from cnnpipe.data.sources import get_source


def prepare_dataset(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    *,
    valid_first: int | None = None,
    image_size: int | Sequence[int] | None = None,
    valid_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    workers: int | None = None,
    log: Log = print,
    limits: ArchiveLimits | None = None,
) -> None:
    """Dispatch on ``SOURCES[name].kind`` and write the prepared directory atomically.

    ``raw_dir`` holds the upstream files under their upstream names. The settings are the keys
    of ``datasets.<name>`` in params.yaml: ``valid_first`` for the IDX and CIFAR sets,
    ``image_size``, ``valid_fraction`` and ``split_seed`` for the ImageFolder sets, and
    ``test_fraction`` too for the class-folder sets. ``workers`` is
    the number of image-decoding threads (default: one per CPU); ``limits`` bound what archive
    members may inflate to (default :class:`~cnnpipe.data.archives.ArchiveLimits`).
    """
    source = get_source(name)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    limits = limits or ArchiveLimits()
    if source.kind == "idx":
        _prepare_idx(name, raw_dir, out_dir, valid_first, log, limits)
    elif source.kind == "cifar":
        _prepare_cifar(name, raw_dir, out_dir, valid_first, log, limits)
    elif source.kind == "celeba":
        _prepare_celeba(name, raw_dir, out_dir, workers, log, limits)
    elif source.kind == "imagefolder":
        # The registry lists the training zip first and the held-out evaluation zip second.
        train_file, test_file = (f.name for f in source.files)
        size, fraction, seed = folder_params(name, image_size, valid_fraction, split_seed)
        _prepare_folders(
            name,
            {"train": (_require(raw_dir / train_file), ""), "test": (_require(raw_dir / test_file), "")},
            out_dir,
            size=size,
            valid_fraction=fraction,
            split_seed=seed,
            workers=workers,
            log=log,
            meta={"source": [train_file, test_file]},
            limits=limits,
        )
    elif source.kind == "classfolders":
        (archive,) = (f.name for f in source.files)
        prepare_class_folders(
            _require(raw_dir / archive),
            out_dir,
            image_size=image_size,
            valid_fraction=valid_fraction,
            test_fraction=test_fraction,
            split_seed=split_seed,
            workers=workers,
            log=log,
            name=name,
            limits=limits,
        )
    else:  # a registry entry without a reader is a programming error
        raise ValueError(f"no reader for dataset kind {source.kind!r}")
