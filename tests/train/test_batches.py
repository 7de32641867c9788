"""Batches from the memory-mapped arrays and their seeded streams."""

from __future__ import annotations

import numpy as np
import torch

from cnnpipe.train.batches import (
    augment_generator,
    batch_indices,
    epoch_permutation,
    eval_batches,
    iterate_batches,
    open_split,
)
from cnnpipe.transforms.pipeline import InputPipeline
from tests.helpers.toydata import write_dataset


def test_epoch_order_depends_on_seed_and_epoch_only():
    first = epoch_permutation(50, seed=3, epoch=1)
    assert torch.equal(first, epoch_permutation(50, seed=3, epoch=1))
    assert sorted(first.tolist()) == list(range(50))
    assert not torch.equal(first, epoch_permutation(50, seed=3, epoch=2))
    assert not torch.equal(first, epoch_permutation(50, seed=4, epoch=1))
    a = torch.rand(5, generator=augment_generator(3, 1))
    assert torch.equal(a, torch.rand(5, generator=augment_generator(3, 1)))
    assert not torch.equal(a, torch.rand(5, generator=augment_generator(3, 2)))


def test_batch_indices_cover_every_row_once():
    order = epoch_permutation(37, seed=0, epoch=1)
    batches = batch_indices(order, 16)
    assert [len(b) for b in batches] == [16, 16, 5]
    assert all((np.diff(b) > 0).all() for b in batches)  # ascending rows within a batch
    assert sorted(np.concatenate(batches).tolist()) == list(range(37))
    assert [b.tolist() for b in eval_batches(open_split_stub(5), 2)] == [[0, 1], [2, 3], [4]]


def open_split_stub(n):
    class _S:
        def __len__(self):
            return n

    return _S()


def test_iterate_batches_transforms_and_keeps_labels_aligned(tmp_path):
    prepared = write_dataset(tmp_path, sizes=(40, 0, 8))
    split = open_split(prepared, "train")
    assert isinstance(split.images, np.memmap)
    pipeline = InputPipeline.build([{"op": "hflip", "p": 0.5}], {"mean": [0.5], "std": [0.25]}, key="k")
    batches = batch_indices(epoch_permutation(len(split), 0, 1), 16)
    seen = []
    for (inputs, labels), rows in zip(
        iterate_batches(split, batches, pipeline, torch.device("cpu"), augment_generator(0, 1)),
        batches,
        strict=True,
    ):
        assert inputs.dtype == torch.float32 and inputs.shape == (len(rows), 1, 12, 12)
        assert labels.dtype == torch.int64 and labels.tolist() == split.labels[rows].tolist()
        raw = torch.from_numpy(np.array(split.images[rows])).float() / 255
        pixels = inputs * 0.25 + 0.5
        for i in range(len(rows)):  # each sample is its image or its mirror image
            assert torch.allclose(pixels[i], raw[i], atol=1e-6) or torch.allclose(
                pixels[i], raw[i].flip(-1), atol=1e-6
            )
        seen.extend(rows.tolist())
    assert sorted(seen) == list(range(40))
    empty = open_split(prepared, "valid")
    assert len(empty) == 0 and list(iterate_batches(empty, [], pipeline, torch.device("cpu"))) == []
