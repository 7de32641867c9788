"""From prepared uint8 batches to model inputs: transform, scale to [0, 1], normalize.

The same :class:`InputPipeline` serves training (with the model's ``augment`` ops),
evaluation and prediction (with its ``eval_transform`` ops), so what the model sees at test
time is exactly what it was trained on, minus the randomness.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cnnpipe.errors import ParamError
from cnnpipe.models.transfer import IMAGENET_MEAN, IMAGENET_STD
from cnnpipe.transforms.containers import BatchTransform
from cnnpipe.transforms.spec import build_transform


def resolve_normalization(
    value: Any, stats_file: str | Path, channels: int, *, key: str
) -> dict[str, list[float]]:
    """Turn a ``normalize`` param into explicit per-channel ``{"mean": [...], "std": [...]}``.

    ``"stats"`` reads the computed train-split statistics (the default, SPEC), ``"half"`` is the
    fixed 0.5/0.5 the horses and notebook sources used, ``"imagenet"`` the ImageNet statistics
    torchvision's pretrained weights expect (transfer models), ``"none"`` leaves pixels in [0, 1], and
    a mapping with ``mean`` and ``std`` lists is taken as given.
    """
    if value == "stats":
        path = Path(stats_file)
        if not path.exists():
            raise ParamError(f"{key}: 'stats' needs {path}; run `dvc repro` to compute it")
        stats = json.loads(path.read_text())
        mean, std = stats["mean"], stats["std"]
    elif value == "imagenet":
        if channels != len(IMAGENET_MEAN):
            raise ParamError(f"{key}: 'imagenet' statistics are for RGB images, got {channels} channel(s)")
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    elif value == "half":
        mean, std = [0.5] * channels, [0.5] * channels
    elif value in ("none", None):
        mean, std = [0.0] * channels, [1.0] * channels
    elif isinstance(value, Mapping) and {"mean", "std"} <= value.keys():
        mean, std = list(value["mean"]), list(value["std"])
    else:
        raise ParamError(
            f"{key}: expected 'stats', 'half', 'imagenet', 'none' or {{mean: [...], std: [...]}}, "
            f"got {value!r}"
        )
    if len(mean) != channels or len(std) != channels or any(float(s) <= 0 for s in std):
        raise ParamError(f"{key}: need {channels} means and {channels} positive stds, got {mean} / {std}")
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


@dataclass
class InputPipeline:
    """uint8 N×C×H×W batch → transformed, normalized float32 batch on the batch's device."""

    transform: BatchTransform
    mean: Sequence[float]
    std: Sequence[float]

    @classmethod
    def build(
        cls,
        ops: Sequence[Mapping[str, Any]] | None,
        normalization: Mapping[str, Sequence[float]],
        *,
        key: str,
    ) -> InputPipeline:
        """Pipeline from a params list of ops and resolved normalization (see resolve_normalization)."""
        return cls(build_transform(ops, key=key), list(normalization["mean"]), list(normalization["std"]))

    def output_size(self, input_hw: Sequence[int]) -> tuple[int, int]:
        """Spatial size the model receives for prepared images of ``input_hw``."""
        return self.transform.output_size(input_hw)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Transform ``images`` (draws from ``generator``), then normalize per channel."""
        x = self.transform(images, generator)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std
