"""The from-scratch architectures as params.yaml trains them, and SPEC's parameter counts."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"

# Copied from SPEC, "Models": the acceptance check, independent of the code and of params.yaml.
SPEC_COUNTS = {
    "fashion_cnn": 333_898,
    "fashion_dnn": 101_770,  # SPEC 10: the MLP baseline fashion_cnn is compared with
    "mnist_cnn": 3_274_634,
    "smile_cnn": 388_673,
    "horses_cnn": 10_641_441,
    "horses_cnn_aug": 10_641_441,  # horses_cnn's network, trained with augmentation
    "cifar2_fc": 1_574_402,
    "cifar2_fc_deep": 3_737_474,
    "cifar_net": 296_130,
    "sea_cnn": 2_565_861,
}


@cache
def _models() -> dict[str, Any]:
    return yaml.safe_load(PARAMS_FILE.read_text())["models"]


def from_scratch_models() -> list[str]:
    """Models of params.yaml whose arch is built by the zoo (no pretrained backbone)."""
    return sorted(name for name, model in _models().items() if "backbone" not in model["arch"])


def params_arch(name: str) -> dict[str, Any]:
    """A fresh copy of ``models.<name>.arch`` from params.yaml (safe to modify)."""
    return copy.deepcopy(_models()[name]["arch"])
