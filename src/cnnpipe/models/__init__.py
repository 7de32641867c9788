"""Models: from-scratch CNNs and MLPs built from a params mapping, and the SPEC presets."""

from cnnpipe.models.presets import PRESETS, SPEC_PARAM_COUNTS, get_preset
from cnnpipe.models.zoo import (
    ACTIVATIONS,
    Arch,
    ConvBlock,
    build_model,
    count_parameters,
    feature_shapes,
    flat_size,
    parse_arch,
)

__all__ = [
    "ACTIVATIONS",
    "PRESETS",
    "SPEC_PARAM_COUNTS",
    "Arch",
    "ConvBlock",
    "build_model",
    "count_parameters",
    "feature_shapes",
    "flat_size",
    "get_preset",
    "parse_arch",
]
