"""A CPU-friendly dropout for training: the same distribution as ``nn.Dropout``, drawn faster.

On the CPU, ``nn.Dropout`` draws its mask with ``bernoulli_``, which on 2 cores takes about
15 ms for a 32×32×32×32 feature map; comparing ``torch.rand_like`` with ``p`` gives an
equally distributed mask in about 6 ms (smile_cnn spends ~15 % of a training step in
dropout). On CUDA the fused native kernel is faster, so models are only swapped on the CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MaskDropout(nn.Module):
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * (keep * (1.0 / (1.0 - self.p)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_mask_dropout(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` in ``model`` (in place) by :class:`MaskDropout`; returns it.

    Dropout has no parameters, so state dicts are unchanged.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, MaskDropout(child.p))
    return model
