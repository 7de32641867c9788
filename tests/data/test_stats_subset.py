"""Normalization statistics and filtered subsets on small synthetic prepared datasets."""

import json

import numpy as np
import pytest

from cnnpipe.data.arrays import PreparedWriter, load_meta, load_split
from cnnpipe.data.stats import compute_stats, mean_std
from cnnpipe.data.subset import subset_by_attribute, subset_by_classes
from cnnpipe.errors import ParamError

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _prepared_classes(root, rng, counts=(300, 50, 100)):
    with PreparedWriter(root) as w:
        for split, n in zip(("train", "valid", "test"), counts, strict=True):
            w.write_split(split, rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, n))
        w.set_classes(CIFAR_NAMES)
    return root


def _prepared_attributes(root, rng, counts=(40, 10, 12)):
    with PreparedWriter(root) as w:
        for split, n in zip(("train", "valid", "test"), counts, strict=True):
            w.write_split(
                split, rng.integers(0, 256, (n, 3, 6, 5), dtype=np.uint8), rng.integers(0, 2, (n, 4))
            )
        w.set_classes(["Bald", "Male", "Smiling", "Young"], label_type="attributes")
    return root


def test_stats_match_float64_numpy_on_train_split_only(tmp_path):
    rng = np.random.default_rng(0)
    root = _prepared_classes(tmp_path / "cifar10", rng)
    stats = compute_stats(root, tmp_path / "stats" / "cifar10.json")
    train = np.asarray(load_split(root, "train").images).astype(np.float64) / 255.0
    np.testing.assert_allclose(stats["mean"], train.mean(axis=(0, 2, 3)), atol=1e-6, rtol=0)
    np.testing.assert_allclose(stats["std"], train.std(axis=(0, 2, 3)), atol=1e-6, rtol=0)
    on_disk = json.loads((tmp_path / "stats" / "cifar10.json").read_text())
    assert on_disk["count"] == 300 and on_disk["split"] == "train"
    assert on_disk["mean"] == stats["mean"]


def test_stats_do_not_depend_on_chunking():
    rng = np.random.default_rng(1)
    images = (rng.normal(120, 50, (999, 1, 7, 7)).clip(0, 255)).astype(np.uint8)
    assert mean_std(images, chunk=10) == mean_std(images, chunk=5000)
    reference = images.astype(np.float64) / 255
    assert abs(mean_std(images)[1][0] - reference.std()) < 1e-6


def test_cifar2_keeps_named_classes_relabelled_in_order(tmp_path):
    rng = np.random.default_rng(2)
    src = _prepared_classes(tmp_path / "cifar10", rng)
    subset_by_classes(src, tmp_path / "cifar2", ["airplane", "bird"], log=lambda _: None)
    meta = load_meta(tmp_path / "cifar2")
    assert meta["classes"] == ["airplane", "bird"]
    for split in ("train", "valid", "test"):
        full, sub = load_split(src, split), load_split(tmp_path / "cifar2", split)
        keep = np.isin(full.labels, [0, 2])
        np.testing.assert_array_equal(sub.images, full.images[keep])
        np.testing.assert_array_equal(sub.labels, np.where(full.labels[keep] == 0, 0, 1))
        assert meta["splits"][split] == keep.sum()


def test_unknown_class_lists_valid_names_and_writes_nothing(tmp_path):
    src = _prepared_classes(tmp_path / "cifar10", np.random.default_rng(3))
    with pytest.raises(ParamError) as exc:
        subset_by_classes(src, tmp_path / "cifar2", ["airplane", "dragon"], param="subsets.cifar2.classes")
    message = str(exc.value)
    assert "\n" not in message and "subsets.cifar2.classes" in message and "'dragon'" in message
    assert "automobile" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar10"]


def test_attribute_subset_by_name_with_first_n(tmp_path):
    rng = np.random.default_rng(4)
    src = _prepared_attributes(tmp_path / "celeba", rng)
    messages = []
    subset_by_attribute(
        src, tmp_path / "smile", "Smiling", {"train": 16, "valid": 100, "test": None}, log=messages.append
    )
    meta = load_meta(tmp_path / "smile")
    assert meta["classes"] == ["not Smiling", "Smiling"] and meta["attribute_index"] == 2
    assert meta["splits"] == {"train": 16, "valid": 10, "test": 12}
    assert any("valid size 100 asked" in m for m in messages)
    full, sub = load_split(src, "train"), load_split(tmp_path / "smile", "train")
    np.testing.assert_array_equal(sub.images, full.images[:16])
    np.testing.assert_array_equal(sub.labels, full.labels[:16, 2])


def test_unknown_attribute_lists_valid_names(tmp_path):
    src = _prepared_attributes(tmp_path / "celeba", np.random.default_rng(5))
    with pytest.raises(ParamError) as exc:
        subset_by_attribute(src, tmp_path / "smile", "Smiles", {}, param="subsets.celeba_smile.attribute")
    message = str(exc.value)
    assert "\n" not in message and "'Smiles'" in message
    assert "valid names: Bald, Male, Smiling, Young" in message
    assert not (tmp_path / "smile").exists()
