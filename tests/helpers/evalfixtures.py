"""Builders of a tiny project tree for the evaluation tests: bundles, prepared datasets, dvclive history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnnpipe.data.arrays import PreparedWriter
from tests.helpers.bundles import save_random_bundle

HALF = {"mean": [0.5] * 3, "std": [0.5] * 3}

# name → (dataset, arch, classes, normalization, eval_transform, prepared C×H×W)
MODELS = {
    "tiny": (
        "syn3",
        {
            "input": [3, 16, 16],
            "conv": [{"out": 4, "kernel": 3, "padding": 1, "pool": 2}],
            "hidden": [8],
            "outputs": 3,
        },
        ["cat", "dog", "bird"],
        HALF,
        [],
        (3, 16, 16),
    ),
    "tinybin": (
        "syn2",
        {
            "input": [3, 16, 16],
            "conv": [{"out": 4, "kernel": 3, "padding": 1, "pool": 2}],
            "global_pool": True,
            "outputs": 1,
        },
        ["horses", "humans"],
        HALF,
        [{"op": "resize", "size": [16, 16]}],
        (3, 20, 20),
    ),
    "tinymlp": (
        "gray",
        {"input": [1, 12, 12], "conv": [], "hidden": [6], "hidden_activation": "tanh", "outputs": 3},
        ["zero", "one", "two"],
        {"mean": [0.4], "std": [0.3]},
        [],
        (1, 12, 12),
    ),
}
N_TEST = 40


def make_bundle(root: Path, name: str, seed: int = 0) -> Path:
    _, arch, classes, norm, eval_transform, shape = MODELS[name]
    return save_random_bundle(
        root / "models" / name / "model.pt",
        name,
        arch,
        seed=seed,
        spread=3.0,
        classes=classes,
        normalization=norm,
        eval_transform=eval_transform,
        input_shape=shape,
    )


def make_dataset(root: Path, name: str, classes: list[str], shape: tuple[int, ...], *, n_test: int = N_TEST):
    rng = np.random.default_rng(len(name))
    with PreparedWriter(root / "data" / "prepared" / name) as writer:
        for split, n in (("train", 12), ("valid", 8), ("test", n_test)):
            images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
            labels = np.arange(n) % len(classes)
            writer.write_split(split, images, labels)
        writer.set_classes(classes, dataset=name)


def write_history(root: Path, name: str, epochs: int = 4) -> None:
    for split in ("train", "val"):
        for metric in ("loss", "acc"):
            path = root / "dvclive" / name / "plots" / "metrics" / split / f"{metric}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [f"timestamp\tstep\t{metric}"]
            for step in range(epochs):
                value = 1.0 / (step + 1) if metric == "loss" else 0.5 + 0.1 * step
                rows.append(f"{1700000000000 + step}\t{step}\t{value}")
            path.write_text("\n".join(rows) + "\n")
    last = {"loss": 1.0 / epochs, "acc": 0.5 + 0.1 * (epochs - 1)}
    summary = {"train": last, "val": {"loss": last["loss"] + 0.25, "acc": last["acc"] - 0.05}}
    (root / "dvclive" / name / "metrics.json").write_text(json.dumps(summary))


def make_params(batch_size: int = 16) -> dict:
    return {
        "run": {"device": "cpu"},
        "evaluate": {"batch_size": batch_size, "grid_images": 6, "worst_images": 5},
        "models": {name: {"dataset": spec[0]} for name, spec in MODELS.items()},
    }
