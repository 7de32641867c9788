"""One entry point for both kinds of ``models.<name>.arch``: from scratch (zoo) or transfer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from cnnpipe.models.transfer import TransferArch, build_transfer_model, is_transfer_arch, parse_transfer_arch
from cnnpipe.models.zoo import Arch, build_model, parse_arch

AnyArch = Arch | TransferArch


def parse_any_arch(arch: Mapping[str, Any] | AnyArch, *, key: str = "arch") -> AnyArch:
    """Validate an arch mapping: a transfer arch when it names a ``backbone``, else a zoo arch."""
    if is_transfer_arch(arch):
        return parse_transfer_arch(arch, key=key)
    return parse_arch(arch, key=key)


def build_network(
    arch: Mapping[str, Any] | AnyArch, *, key: str = "arch", load_weights: bool = True
) -> nn.Module:
    """Build the model an arch describes.

    ``load_weights`` applies to transfer archs only: False skips fetching pretrained weights
    (the caller loads a full state dict next).
    """
    if is_transfer_arch(arch):
        return build_transfer_model(arch, key=key, load_weights=load_weights)
    return build_model(arch, key=key)
