"""The prepared-array store: splits appended block by block read back as whole .npy arrays."""

from pathlib import Path

import numpy as np
import pytest

from cnnpipe.data.arrays import PreparedWriter, load_meta, load_split, save_npy


def test_appended_splits_load_like_saved_ones(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 256, (n, 3, 4, 5), dtype=np.uint8) for n in (3, 0, 1200, 7)]
    labels = [rng.integers(0, 2, (len(b), 6)) for b in blocks]
    root = tmp_path / "set"
    with PreparedWriter(root) as writer:
        train = writer.append_split("train", (3, 4, 5), (6,))
        for images, attrs in zip(blocks, labels, strict=True):
            train.append(images, attrs)
        writer.append_split("test", (3, 4, 5), (6,))  # stays empty
        writer.set_classes([f"a{i}" for i in range(6)], label_type="attributes")
    train_split = load_split(root, "train", mmap=False)
    np.testing.assert_array_equal(train_split.images, np.concatenate(blocks))
    np.testing.assert_array_equal(train_split.labels, np.concatenate(labels))
    assert train_split.labels.dtype == np.int64
    assert load_split(root, "test", mmap=False).images.shape == (0, 3, 4, 5)
    assert load_split(root, "valid", mmap=False).labels.shape == (0, 6)
    assert load_meta(root)["splits"] == {"train": 1210, "valid": 0, "test": 0}


def test_a_failure_while_appending_leaves_nothing(tmp_path):
    root = tmp_path / "set"
    with pytest.raises(ValueError, match="2 images but 1 labels"), PreparedWriter(root) as writer:
        writer.append_split("train", (1, 2, 2)).append(np.zeros((2, 1, 2, 2), np.uint8), np.zeros(1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5),
        np.zeros((0, 3, 8, 8), np.uint8),
        np.arange(7, dtype=np.int64),
        np.ones((4, 40), np.int64),
    ],
)
def test_save_npy_writes_what_np_save_writes(tmp_path, array):
    # Python's file writes (so a full disk is an ENOSPC, not numpy's errno-less OSError), same bytes.
    np.save(tmp_path / "numpy.npy", array)
    save_npy(tmp_path / "ours.npy", array)
    assert (tmp_path / "ours.npy").read_bytes() == (tmp_path / "numpy.npy").read_bytes()


def test_memory_mapped_splits_reserve_their_blocks_before_anything_is_written(tmp_path):
    with PreparedWriter(tmp_path / "set") as writer:
        arrays = writer.new_split("train", 64, (3, 32, 32))
        images = Path(arrays.images.filename)
        # posix_fallocate: the blocks exist now, not when a page is first touched (SIGBUS on a full disk)
        assert images.stat().st_blocks * 512 >= images.stat().st_size == 128 + 64 * 3 * 32 * 32
        arrays.images[:] = 1
        writer.set_classes(["a"])
    assert load_split(tmp_path / "set", "train").images.sum() == 64 * 3 * 32 * 32


@pytest.mark.parametrize("dropped", [[0], [5, 6, 7, 19], list(range(1, 20, 2)), list(range(20))])
def test_shrinking_a_split_in_place_keeps_the_rows_in_order_and_writes_what_np_save_writes(tmp_path, dropped):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (20, 3, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 3, 20)
    keep = np.ones(20, dtype=bool)
    keep[dropped] = False
    root = tmp_path / "set"
    with PreparedWriter(root) as writer:
        arrays = writer.new_split("train", 20, (3, 5, 4))
        arrays.images[:], arrays.labels[:] = images, labels
        arrays.images.flush()
        arrays.labels.flush()
        del arrays
        writer.shrink_split("train", keep, block=3)  # blocks smaller than the gaps between kept rows
        writer.write_split("test", images[:1], labels[:1])
        writer.set_classes(["a", "b", "c"])
    np.save(tmp_path / "images.npy", images[keep])
    np.save(tmp_path / "labels.npy", labels[keep].astype(np.int64))
    assert (root / "train.images.npy").read_bytes() == (tmp_path / "images.npy").read_bytes()
    assert (root / "train.labels.npy").read_bytes() == (tmp_path / "labels.npy").read_bytes()
    assert load_meta(root)["splits"] == {"train": int(keep.sum()), "valid": 0, "test": 1}
