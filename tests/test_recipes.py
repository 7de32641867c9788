"""Each model's default recipe in params.yaml against SPEC (the sources' recipes).

The expected values are copied from SPEC, "Datasets", "Normalization statistics" and "Models",
independently of params.yaml and the code; what the project deliberately does differently is the
README's table "Where cnnpipe differs from the sources", and shows up here as that choice.
The split sizes are those the prepare and subset code produces from the params on samples of the
upstream sizes (the sample mirror with full-size counts), not arithmetic on the params.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cnnpipe.config.data import parse_dataset, parse_subset
from cnnpipe.config.load import load_params
from cnnpipe.config.train import parse_config
from cnnpipe.data.arrays import load_split
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.data.prepare.imagefolder import prepare_imagefolder, stratified_split, stratified_splits
from cnnpipe.data.subset import subset_by_classes
from cnnpipe.models.network import build_network
from cnnpipe.sample.mirror import write_sample_mirror
from tests.helpers.params_archs import PARAMS_FILE

PARAMS = load_params(PARAMS_FILE)

ADAM, SGD, RMSPROP = "adam", "sgd", "rmsprop"
CROP178_FLIP_64 = [
    {"op": "random_crop", "size": [178, 178]},
    {"op": "hflip", "p": 0.5},
    {"op": "resize", "size": [64, 64]},
]
EVAL_178_64 = [{"op": "center_crop", "size": [178, 178]}, {"op": "resize", "size": [64, 64]}]
RESIZE_150 = [{"op": "resize", "size": [150, 150]}]
EVAL_150 = [{"op": "resize", "size": [150, 150]}, {"op": "center_crop", "size": [150, 150]}]
HORSES_AUG = [
    {"op": "hflip", "p": 0.5},
    {"op": "rotation", "degrees": 20},
    {"op": "random_resized_crop", "size": [150, 150]},
]
SEA_AUG = [
    {"op": "hflip", "p": 0.5},
    {"op": "vflip", "p": 0.5},
    {"op": "rotation", "degrees": 15},
    {
        "op": "random_apply",
        "p": 0.5,
        "ops": [  # RandomApply([ColorJitter, RandomPerspective], p=.5): both, as the code does
            {"op": "color_jitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05},
            {"op": "perspective", "distortion": 0.4, "p": 1.0},
        ],
    },
]
RESIZE_299 = [{"op": "resize", "size": [299, 299]}]
SQUEEZE_TRAIN = [{"op": "random_resized_crop", "size": [224, 224]}, {"op": "hflip", "p": 0.5}]
SQUEEZE_EVAL = [{"op": "resize", "size": [256, 256]}, {"op": "center_crop", "size": [224, 224]}]


class Recipe(NamedTuple):
    """A model's recipe as SPEC states it; None where SPEC states nothing (the README's table
    "Where cnnpipe differs from the sources" says what cnnpipe chose there)."""

    normalize: str
    stats_from: str | None
    optimizer: str
    lr: float
    momentum: float
    batch_size: int | None
    epochs: int | None
    loss: str
    augment: list
    eval_transform: list
    params: int | None


SPEC_RECIPES = {
    "fashion_cnn": Recipe(
        "stats", "fashion_mnist", ADAM, 1e-3, 0, None, 50, "cross_entropy", [], [], 333_898
    ),
    "fashion_dnn": Recipe("stats", "fashion_mnist", ADAM, 1e-3, 0, None, None, "nll", [], [], 101_770),
    "mnist_cnn": Recipe("none", "mnist", ADAM, 1e-3, 0, 64, 20, "cross_entropy", [], [], 3_274_634),
    "smile_cnn": Recipe(
        "none", "celeba_smile", ADAM, 1e-3, 0, 32, 30, "bce", CROP178_FLIP_64, EVAL_178_64, 388_673
    ),
    "horses_cnn": Recipe(
        "half", "horse_or_human", ADAM, 1e-3, 0, 32, 15, "bce", RESIZE_150, EVAL_150, 10_641_441
    ),
    "horses_cnn_aug": Recipe(
        "half", "horse_or_human", ADAM, 1e-3, 0, 32, 15, "bce", HORSES_AUG, EVAL_150, 10_641_441
    ),
    "cifar2_fc": Recipe("stats", "cifar10", SGD, 1e-2, 0, 64, 100, "cross_entropy", [], [], 1_574_402),
    "cifar2_fc_deep": Recipe("stats", "cifar10", SGD, 1e-2, 0, 64, 100, "cross_entropy", [], [], 3_737_474),
    "cifar_net": Recipe("none", "cifar10", SGD, 1e-3, 0.9, None, None, "cross_entropy", [], [], 296_130),
    "sea_cnn": Recipe("half", "sea", ADAM, 1e-3, 0, 10, 30, "cross_entropy", SEA_AUG, [], 2_565_861),
    # transfer: ImageNet normalization for pretrained backbones is the project's deliberate fix
    "inception_horses": Recipe(
        "imagenet", None, RMSPROP, 1e-3, 0, None, 3, "cross_entropy", RESIZE_299, RESIZE_299, None
    ),
    "inception_cats_dogs": Recipe(
        "imagenet", None, RMSPROP, 1e-3, 0, None, 3, "cross_entropy", RESIZE_299, RESIZE_299, None
    ),
    "inception_rps": Recipe(
        "imagenet", None, RMSPROP, 1e-3, 0, None, 3, "cross_entropy", RESIZE_299, RESIZE_299, None
    ),
    "squeezenet_horses": Recipe(
        "imagenet", None, SGD, 1e-3, 0.9, 32, None, "cross_entropy", SQUEEZE_TRAIN, SQUEEZE_EVAL, None
    ),
    "squeezenet_rps": Recipe(
        "imagenet", None, SGD, 1e-3, 0.9, 32, None, "cross_entropy", SQUEEZE_TRAIN, SQUEEZE_EVAL, None
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_RECIPES))
def test_default_recipe_is_the_sources(name):
    normalize, stats_from, optimizer, lr, momentum, batch, epochs, loss, augment, eval_ops, count = (
        SPEC_RECIPES[name]
    )
    config = parse_config(name, PARAMS)
    assert config.normalize == normalize
    if stats_from is not None:
        assert config.stats_from == stats_from
    train = config.train
    assert (train.optimizer, train.lr, train.momentum, train.loss) == (optimizer, lr, momentum, loss)
    assert (train.weight_decay, train.l2, train.scheduler) == (0, 0, "none")
    if batch is not None:
        assert train.batch_size == batch
    if epochs is not None:
        assert train.epochs == epochs and config.epochs == epochs
    assert config.augment == augment
    assert config.eval_transform == eval_ops
    if count is not None:
        model = build_network(config.arch, key=f"models.{name}.arch")
        assert sum(p.numel() for p in model.parameters()) == count


def test_mnist_cnn_uses_the_sources_seed():
    assert parse_config("mnist_cnn", PARAMS).train.seed == 1  # SPEC: "seed 1 → 99.14 %"


def test_sea_cnn_dropout_and_squeezenet_classifier_dropout():
    assert parse_config("sea_cnn", PARAMS).arch.dropout == 0.8  # the notebook's final run
    for name in ("squeezenet_horses", "squeezenet_rps"):
        with torch.device("meta"):
            model = build_network(parse_config(name, PARAMS).arch, load_weights=False)
        assert model.net.classifier[0].p == 0.5  # the pretrained classifier's Dropout(0.5) stays


def _source_inception_trainable(n_classes: int) -> int:
    """The source's loop on torchvision's Inception-V3: freeze through the first Mixed_7c param."""
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    model.fc = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, n_classes))
    for name, param in model.named_parameters():
        param.requires_grad = False
        if "Mixed_7c" in name:
            break
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("name", "n_classes"), [("inception_horses", 2), ("inception_rps", 3), ("inception_cats_dogs", 2)]
)
def test_inception_default_freeze_matches_the_sources_loop(name, n_classes):
    with torch.device("meta"):
        expected = _source_inception_trainable(n_classes)
        model = build_network(parse_config(name, PARAMS).arch, load_weights=False)
    trainable = {n for n, p in model.net.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in model.net.parameters() if p.requires_grad) == expected
    assert any(n.startswith("Mixed_7c.") for n in trainable)  # the rest of Mixed_7c trains
    assert not any(n.startswith(("Mixed_7b.", "AuxLogits.")) for n in trainable)
    # torchvision's own dropout before fc stays; the plain head has no dropout of its own
    assert isinstance(model.net.dropout, nn.Dropout) and model.net.dropout.p == 0.5
    assert [type(m).__name__ for m in model.net.fc] == ["Linear", "ReLU", "Linear"]


# ---- split sizes on full-size-shaped samples ------------------------------------------------

# SPEC "Datasets": (train, valid, test) as the sources split them; valid 0 = validated on test.
SPEC_SPLITS = {
    "mnist": (50_000, 10_000, 10_000),
    "fashion_mnist": (60_000, 0, 10_000),
    "cifar10": (50_000, 0, 10_000),
    "cifar2": (10_000, 0, 2_000),
    "horse_or_human": (1_027, 0, 256),
    "sea": (175, 0, 50),
}
FULL_SIZES = {
    "mnist": {"train": 60_000, "test": 10_000},
    "fashion_mnist": {"train": 60_000, "test": 10_000},
    "cifar10": {"train": 50_000, "test": 10_000},
    "horse_or_human": {"train": 1_027, "valid": 256},
    "sea": {"train": 175, "test": 50},
}


@pytest.fixture(scope="module")
def prepared_full_size(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full_size")
    mirror = root / "mirror"
    write_sample_mirror(mirror, sizes=FULL_SIZES, datasets=list(FULL_SIZES), log=lambda _: None)
    prepared = root / "prepared"
    for name in FULL_SIZES:
        settings = parse_dataset(PARAMS, name)
        if name == "sea":  # a local ImageFolder zip (stage prepare_sea)
            zip_path = next((mirror / name).glob("*.zip"))
            prepare_imagefolder(
                zip_path,
                prepared / name,
                image_size=settings.image_size,
                valid_fraction=settings.valid_fraction,
                split_seed=settings.split_seed,
                name=name,
                log=lambda _: None,
            )
        else:
            prepare_dataset(name, mirror / name, prepared / name, **settings.as_mapping(), log=lambda _: None)
    cifar2 = parse_subset(PARAMS, "cifar2")
    subset_by_classes(prepared / cifar2.source, prepared / "cifar2", list(cifar2.classes), log=lambda _: None)
    return prepared


@pytest.mark.parametrize("name", sorted(SPEC_SPLITS))
def test_default_splits_are_the_sources(prepared_full_size, name):
    sizes = tuple(
        len(load_split(prepared_full_size / name, split).labels) for split in ("train", "valid", "test")
    )
    assert sizes == SPEC_SPLITS[name]


def test_default_image_sizes_are_native(prepared_full_size):
    images = load_split(prepared_full_size / "horse_or_human", "train").images
    assert images.shape[1:] == (3, 300, 300)  # the upstream 300×300, resized per model on the device
    for name in ("horse_or_human", "rps"):
        assert parse_dataset(PARAMS, name).image_size == (300, 300)


def test_rps_and_celeba_smile_splits():
    # rps: 2,520 train / 372 test as laid out; valid_fraction 0 holds nothing out of train
    labels = np.repeat(np.arange(3), 840)
    train_idx, valid_idx = stratified_split(labels, parse_dataset(PARAMS, "rps").valid_fraction, 0)
    assert (len(train_idx), len(valid_idx)) == (2_520, 0)
    smile = parse_subset(PARAMS, "celeba_smile")
    assert smile.attribute == "Smiling"  # by name, not the source's column 18 (Heavy_Makeup)
    assert smile.sizes == {"train": 16_000, "valid": 1_000, "test": None}


def test_cats_vs_dogs_splits():
    # 12,500 photos per class, no split folders: seeded stratified validation and test splits
    settings = parse_dataset(PARAMS, "cats_vs_dogs")
    labels = np.repeat(np.arange(2), 12_500)
    parts = stratified_splits(labels, (settings.valid_fraction, settings.test_fraction), settings.split_seed)
    assert [len(p) for p in parts] == [20_000, 2_500, 2_500]
    for part in parts:  # stratified: both classes in equal numbers
        assert np.bincount(labels[part]).tolist() == [len(part) // 2] * 2
    assert settings.image_size == (300, 300)  # the largest input a model needs (Inception, 299)
