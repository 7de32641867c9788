"""Trained-model bundles with random weights, for tests that need a model file but no training."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnpipe.models.trained import save_trained
from cnnpipe.models.zoo import build_model


def save_random_bundle(path: Path, name: str, arch: dict, *, seed: int, spread: float, **fields) -> Path:
    """Save a freshly initialised ``arch`` as the bundle ``path`` and return ``path``.

    ``spread`` scales every weight so that the predictions are not all one class; ``fields``
    are the rest of :func:`~cnnpipe.models.trained.save_trained`'s keywords (classes,
    normalization, eval_transform, input_shape).
    """
    torch.manual_seed(seed)
    model = build_model(arch)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(spread)
    save_trained(path, name, model, arch=arch, **fields)
    return path
