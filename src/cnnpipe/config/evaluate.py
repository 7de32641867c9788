"""``evaluate`` of params.yaml, validated into a dataclass: how the evaluate stages batch and draw."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnpipe.checks import integer, mapping, required, section

EVALUATE_KEYS = ("batch_size", "grid_images", "worst_images")


@dataclass(frozen=True)
class EvaluateSettings:
    """``evaluate``: images per inference batch, and test images in the grid and errors figures."""

    batch_size: int
    grid_images: int
    worst_images: int


def parse_evaluate(params: Mapping[str, Any]) -> EvaluateSettings:
    """Validate the ``evaluate`` section (every key required)."""
    values = mapping(section(params, "evaluate"), "evaluate", EVALUATE_KEYS)
    return EvaluateSettings(
        batch_size=integer(required(values, "batch_size", "evaluate"), "evaluate.batch_size", 1),
        grid_images=integer(required(values, "grid_images", "evaluate"), "evaluate.grid_images", 0),
        worst_images=integer(required(values, "worst_images", "evaluate"), "evaluate.worst_images", 0),
    )
