"""Models: from-scratch CNNs and MLPs built from a params mapping."""

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
    "Arch",
    "ConvBlock",
    "build_model",
    "count_parameters",
    "feature_shapes",
    "flat_size",
    "parse_arch",
]
