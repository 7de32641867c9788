"""Tiny synthetic prepared datasets and params for the training tests (imported by them).

Images are 1×12×12 uint8 noise with a bright 4×4 patch whose position gives the class, so
a small CNN learns them in a few epochs; ``binary=True`` keeps two classes for BCE.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnnpipe.data.arrays import PreparedWriter
from cnnpipe.data.stats import compute_stats

PATCHES = [(1, 1), (1, 7), (7, 4)]  # top-left corner of each class's bright patch
TOY_ARCH = {
    "input": [1, 12, 12],
    "conv": [{"out": 4, "kernel": 3, "padding": 1, "pool": 2}],
    "global_pool": False,
    "hidden": [16],
    "hidden_activation": "relu",
    "dropout": 0.25,
    "activation": "relu",
    "outputs": 3,
}
TOY_TRAIN = {
    "optimizer": "adam",
    "lr": 0.01,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "l2": 0.0,
    "scheduler": "none",
    "plateau_factor": 0.5,
    "plateau_patience": 10,
    "loss": "cross_entropy",
    "batch_size": 16,
    "epochs": 3,
    "seed": 0,
}


def toy_images(n: int, classes: int, seed: int, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    images = rng.integers(0, 70, size=(n, 1, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        r, c = PATCHES[label]
        images[i, 0, r : r + 4, c : c + 4] = rng.integers(190, 256, size=(4, 4), dtype=np.uint8)
    return images, labels.astype(np.int64)


def write_dataset(
    root: Path, dataset: str = "toy", *, sizes=(96, 24, 24), classes: int = 3, size: int = 12, seed: int = 0
) -> Path:
    """Write data/prepared/<dataset>/ and data/stats/<dataset>.json under ``root``."""
    prepared = root / "data" / "prepared" / dataset
    with PreparedWriter(prepared) as writer:
        for i, (split, n) in enumerate(zip(("train", "valid", "test"), sizes, strict=True)):
            writer.write_split(split, *toy_images(n, classes, seed + i, size))
        writer.set_classes([f"c{k}" for k in range(classes)], dataset=dataset)
    compute_stats(prepared, root / "data" / "stats" / f"{dataset}.json")
    return prepared


def toy_params(
    name: str = "toy_cnn", dataset: str = "toy", *, binary: bool = False, train=None, **model: Any
) -> dict[str, Any]:
    """A params mapping with one model (``models.<name>``); keyword args override model keys."""
    arch = copy.deepcopy(TOY_ARCH)
    settings = {**TOY_TRAIN, **(train or {})}
    if binary:
        arch["outputs"] = 1
        settings["loss"] = "bce"
    entry = {
        "dataset": dataset,
        "stats_from": dataset,
        "arch": arch,
        "normalize": "stats",
        "augment": [],
        "eval_transform": [],
        "train": settings,
        **model,
    }
    return {
        "run": {
            "device": "cpu",
            "amp": "auto",
            "compile": False,
            "resident_data": "auto",
            "resident_max_fraction": 0.25,
            "max_epochs": None,
        },
        "models": {name: entry},
    }


def write_params(root: Path, params: dict[str, Any]) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
