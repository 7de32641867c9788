"""Mini-batches straight from the memory-mapped prepared arrays: no DataLoader, no PIL.

Each epoch shuffles with a permutation drawn from a ``torch.Generator`` seeded by (seed,
epoch), so the order depends on nothing but the params and the epoch number (which is what
makes a resumed run identical to an uninterrupted one). A batch is gathered with one NumPy
fancy index on the memory map (rows read in ascending order), wrapped with
``torch.from_numpy``, pinned and copied asynchronously when training on CUDA, and turned
into model inputs on the device by the model's :class:`~cnnpipe.transforms.pipeline.InputPipeline`.
The next batch is gathered on a background thread while the current one trains.

A split small enough for the device (``run.resident_data``, decided by :func:`resident_plan`)
is instead copied there once by :func:`make_resident`, still uint8, and kept beside the memory
map as :attr:`Split.resident`. Its batches are the same rows in the same order, gathered by
index on the device: per pass over the split the rows of every batch go to the device in one
small int64 copy, and no image or label crosses from the host per batch. The augmentation and
normalization ops are the same, so on the CPU both paths give bit-identical batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cnnpipe.data.arrays import load_split
from cnnpipe.device import derive_seed
from cnnpipe.errors import DataFormatError
from cnnpipe.transforms.pipeline import InputPipeline

SHUFFLE_STREAM = 1  # stream ids for derive_seed(seed, epoch, stream)
AUGMENT_STREAM = 2


RESIDENT_CHUNK_BYTES = 64 * 2**20  # the memory map is copied to the device this much at a time


@dataclass
class DeviceArrays:
    """A split held on the training device: images uint8 N×C×H×W, labels int64 N."""

    images: Tensor
    labels: Tensor


@dataclass
class Split:
    """One prepared split: images memory-mapped (uint8 N×C×H×W), labels in memory (int64 N).

    ``resident`` holds a copy on the training device when the split is kept there
    (:func:`make_resident`); batches are then gathered from it instead of the memory map.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    resident: DeviceArrays | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        """Bytes the split takes on a device (images and labels)."""
        return int(self.images.nbytes) + int(self.labels.nbytes)


def open_split(prepared_dir: str | Path, split: str) -> Split:
    """Memory-map ``split`` of a prepared dataset; labels must be class indices."""
    arrays = load_split(prepared_dir, split, mmap=True)
    images, labels = arrays.images, np.asarray(arrays.labels)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataFormatError(
            f"{prepared_dir}/{split}: expected uint8 N×C×H×W images, got {images.dtype} "
            f"{images.shape}; re-run the prepare stage"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(
            f"{prepared_dir}/{split}: expected {len(images)} class labels, got shape "
            f"{labels.shape}; a model trains on class labels, not attributes"
        )
    return Split(split, images, labels.astype(np.int64, copy=False))


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffling order of epoch ``epoch`` (1-based) for a training run seeded ``seed``."""
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch, SHUFFLE_STREAM))
    return torch.randperm(n, generator=generator)


def rank_stream(stream: int, rank: int = 0) -> tuple[int, ...]:
    """The ``derive_seed`` parts after (seed, epoch) for ``stream`` on DDP rank ``rank``.

    Rank 0 (and a single-process run) keeps the plain stream; other ranks get their own, so
    their shards do not repeat rank 0's random draws.
    """
    return (stream,) if rank == 0 else (stream, rank)


def augment_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The generator behind every random augmentation draw of one epoch (on DDP rank ``rank``).

    It lives on the CPU whatever the training device: the batched transforms draw their few
    per-sample parameters there anyway, and the same seed then gives the same augmentations
    on every device.
    """
    return torch.Generator().manual_seed(derive_seed(seed, epoch, *rank_stream(AUGMENT_STREAM, rank)))


def batch_indices(order: Tensor | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split an order into batches (the last may be smaller); rows sorted within each batch."""
    order = np.asarray(order, dtype=np.int64)
    return [np.sort(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def to_device(tensor: Tensor, device: torch.device, non_blocking: bool = False) -> Tensor:
    """The one place batch data crosses from the host to ``device`` (the tests count the calls)."""
    return tensor.to(device, non_blocking=non_blocking)


def resident_plan(
    setting: str | bool, device_type: str, sizes: list[int], total_memory: int, max_fraction: float
) -> list[bool]:
    """Which splits (of ``sizes`` bytes, in order) to keep on the device (``run.resident_data``).

    ``True`` keeps all of them, ``False`` none. ``"auto"`` keeps splits only on CUDA, taking
    them in order (train first) while their sum stays within ``max_fraction`` of the device's
    ``total_memory`` (``run.resident_max_fraction``); a split that does not fit in what is left
    stays on the host path.
    """
    if setting is True or setting is False:
        return [setting] * len(sizes)
    if device_type != "cuda":
        return [False] * len(sizes)
    budget, plan = max_fraction * total_memory, []
    for size in sizes:
        fits = size <= budget
        budget -= size if fits else 0
        plan.append(fits)
    return plan


def make_resident(split: Split, device: torch.device) -> Split:
    """``split`` with its images (still uint8) and labels copied to ``device`` once.

    The copy goes chunk by chunk from the memory map, so the host never holds a second
    copy of the whole split.
    """
    n = len(split)
    images = torch.empty(split.images.shape, dtype=torch.uint8, device=device)
    step = max(1, RESIDENT_CHUNK_BYTES // max(1, split.images[:1].nbytes))
    for start in range(0, n, step):
        images[start : start + step].copy_(torch.from_numpy(np.array(split.images[start : start + step])))
    labels = to_device(torch.from_numpy(np.array(split.labels, dtype=np.int64)), device)
    return Split(split.name, split.images, split.labels, DeviceArrays(images, labels))


def _resident_batches(
    arrays: DeviceArrays,
    batches: list[np.ndarray],
    pipeline: InputPipeline,
    generator: torch.Generator | None,
) -> Iterator[tuple[Tensor, Tensor]]:
    sizes = [len(rows) for rows in batches]
    rows = torch.from_numpy(np.concatenate(batches).astype(np.int64, copy=False))
    device_rows = to_device(rows, arrays.images.device)  # one copy for the whole pass
    for index in torch.split(device_rows, sizes):
        yield pipeline(arrays.images[index], generator), arrays.labels[index]


def _gather(split: Split, rows: np.ndarray, pin: bool) -> tuple[Tensor, Tensor]:
    images = torch.from_numpy(np.ascontiguousarray(split.images[rows]))
    labels = torch.from_numpy(split.labels[rows])
    if pin:
        images, labels = images.pin_memory(), labels.pin_memory()
    return images, labels


def iterate_batches(
    split: Split,
    batches: list[np.ndarray],
    pipeline: InputPipeline,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(inputs, labels)`` on ``device``: inputs float32 transformed + normalized, labels int64.

    ``generator`` feeds the pipeline's random ops (None for a deterministic eval pipeline).
    A resident split (:attr:`Split.resident`) is batched on the device it is held on.
    """
    cuda = device.type == "cuda"
    if not batches:
        return
    if split.resident is not None:
        yield from _resident_batches(split.resident, batches, pipeline, generator)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gather") as pool:
        pending = pool.submit(_gather, split, batches[0], cuda)
        for i in range(len(batches)):
            images, labels = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(_gather, split, batches[i + 1], cuda)
            images = to_device(images, device, non_blocking=cuda)
            labels = to_device(labels, device, non_blocking=cuda)
            yield pipeline(images, generator), labels


def eval_batches(split: Split, batch_size: int) -> list[np.ndarray]:
    """Batches of a split in stored order (evaluation needs no shuffling)."""
    return batch_indices(np.arange(len(split)), batch_size)
