"""The prepared-array store: splits appended block by block read back as whole .npy arrays."""

import numpy as np
import pytest

from cnnpipe.data.arrays import PreparedWriter, load_meta, load_split


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
