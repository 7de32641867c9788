"""The from-scratch architectures of SPEC ("Models" 1, 2, 3, 4, 6, 7, 9) as plain arch mappings.

Each entry is what params.yaml holds under ``models.<name>.arch`` (schema: :mod:`cnnpipe.models.zoo`).
Every knob is written out, even at its default, so each one can be overridden with
``dvc exp run -S``. Models with one output unit are trained with a sigmoid / binary
cross-entropy on the logit; the others with cross-entropy.
"""

from __future__ import annotations

import copy
from typing import Any

from cnnpipe.errors import ParamError

PRESETS: dict[str, dict[str, Any]] = {
    # 1. conv 1->64 k3 pad1, pool 2 -> conv 64->64 k3, pool 2 -> 2304 -> 128 -> 10,
    #    with no activation between the two linears (as in the source).
    "fashion_cnn": {
        "input": [1, 28, 28],
        "conv": [
            {"out": 64, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
            {"out": 64, "kernel": 3, "padding": 0, "pool": 2, "dropout": 0.0},
        ],
        "global_pool": False,
        "hidden": [128],
        "hidden_activation": "none",
        "dropout": 0.0,
        "activation": "relu",
        "outputs": 10,
    },
    # 2. conv 1->32 k5 pad2, pool 2 -> conv 32->64 k5 pad2, pool 2 -> 3136 -> 1024, ReLU, dropout 0.5 -> 10
    "mnist_cnn": {
        "input": [1, 28, 28],
        "conv": [
            {"out": 32, "kernel": 5, "padding": 2, "pool": 2, "dropout": 0.0},
            {"out": 64, "kernel": 5, "padding": 2, "pool": 2, "dropout": 0.0},
        ],
        "global_pool": False,
        "hidden": [1024],
        "hidden_activation": "relu",
        "dropout": 0.5,
        "activation": "relu",
        "outputs": 10,
    },
    # 3. 64x64 faces: two conv/pool blocks with dropout 0.5, conv 64->128 + pool, conv 128->256
    #    without pool, global average pool over 8x8 -> 256 -> 1 logit.
    "smile_cnn": {
        "input": [3, 64, 64],
        "conv": [
            {"out": 32, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.5},
            {"out": 64, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.5},
            {"out": 128, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
            {"out": 256, "kernel": 3, "padding": 1, "pool": 1, "dropout": 0.0},
        ],
        "global_pool": True,
        "hidden": [],
        "hidden_activation": "relu",
        "dropout": 0.0,
        "activation": "relu",
        "outputs": 1,
    },
    # 4. 150x150: three conv k3 pad1 + pool 2 blocks (150 -> 75 -> 37 -> 18), 20736 -> 512, ReLU,
    #    dropout 0.25 -> 1 logit.
    "horses_cnn": {
        "input": [3, 150, 150],
        "conv": [
            {"out": 16, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
            {"out": 32, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
            {"out": 64, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
        ],
        "global_pool": False,
        "hidden": [512],
        "hidden_activation": "relu",
        "dropout": 0.25,
        "activation": "relu",
        "outputs": 1,
    },
    # 6. Fully connected on flattened 3x32x32 airplane/bird images, tanh.
    "cifar2_fc": {
        "input": [3, 32, 32],
        "conv": [],
        "global_pool": False,
        "hidden": [512],
        "hidden_activation": "tanh",
        "dropout": 0.0,
        "activation": "relu",
        "outputs": 2,
    },
    "cifar2_fc_deep": {
        "input": [3, 32, 32],
        "conv": [],
        "global_pool": False,
        "hidden": [1024, 512, 128],
        "hidden_activation": "tanh",
        "dropout": 0.0,
        "activation": "relu",
        "outputs": 2,
    },
    # 7. conv 3->18 k3 pad1, pool 2 -> 4608 -> 64, ReLU -> 10
    "cifar_net": {
        "input": [3, 32, 32],
        "conv": [
            {"out": 18, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
        ],
        "global_pool": False,
        "hidden": [64],
        "hidden_activation": "relu",
        "dropout": 0.0,
        "activation": "relu",
        "outputs": 10,
    },
    # 9. 100x100, 5 classes: two conv k3 pad1 + pool 2 blocks -> 20000 -> 128, ReLU, dropout 0.8 -> 5
    "sea_cnn": {
        "input": [3, 100, 100],
        "conv": [
            {"out": 16, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
            {"out": 32, "kernel": 3, "padding": 1, "pool": 2, "dropout": 0.0},
        ],
        "global_pool": False,
        "hidden": [128],
        "hidden_activation": "relu",
        "dropout": 0.8,
        "activation": "relu",
        "outputs": 5,
    },
}

# Parameter counts SPEC gives for each preset: the acceptance check.
SPEC_PARAM_COUNTS: dict[str, int] = {
    "fashion_cnn": 333_898,
    "mnist_cnn": 3_274_634,
    "smile_cnn": 388_673,
    "horses_cnn": 10_641_441,
    "cifar2_fc": 1_574_402,
    "cifar2_fc_deep": 3_737_474,
    "cifar_net": 296_130,
    "sea_cnn": 2_565_861,
}


def get_preset(name: str) -> dict[str, Any]:
    """A fresh copy of preset ``name``'s arch mapping (safe to modify)."""
    if name not in PRESETS:
        raise ParamError(f"unknown model preset {name!r}; expected one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
