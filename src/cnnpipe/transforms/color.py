"""Colour ops: per-sample brightness, contrast, saturation and hue (color_jitter), batched.

The adjustments follow torchvision's formulas (grayscale weights, blends clamped to [0, 1], hue
shifted in HSV space, in closed form).
"""

from __future__ import annotations

import torch
from torch import Tensor

from cnnpipe.errors import ParamError
from cnnpipe.transforms.containers import _Op, _rand

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def _factors(values: Tensor, x: Tensor) -> Tensor:
    """A CPU vector of per-sample factors as an ``N×1×1×1`` float32 tensor on ``x``'s device."""
    return values.to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- colour


def _gray(x: Tensor) -> Tensor:
    r, g, b = x.unbind(dim=1)
    return (r * _GRAY_WEIGHTS[0] + g * _GRAY_WEIGHTS[1] + b * _GRAY_WEIGHTS[2]).unsqueeze(1)


def _blend(a: Tensor, b: Tensor, ratio: Tensor) -> Tensor:
    return (a * ratio + b * (1.0 - ratio)).clamp(0.0, 1.0)


def _brightness(x: Tensor, f: Tensor) -> Tensor:
    return (x * f).clamp(0.0, 1.0)


def _contrast(x: Tensor, f: Tensor) -> Tensor:
    gray = _gray(x) if x.shape[1] == 3 else x
    return _blend(x, gray.mean(dim=(1, 2, 3), keepdim=True), f)


def _saturation(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, _gray(x), f)


def _hue(x: Tensor, f: Tensor) -> Tensor:
    """Shift each pixel's HSV hue by ``f`` (in turns), keeping its saturation and value.

    torchvision's hue formula (``adjust_hue``) in closed form: v·s is the pixel's max − min, so
    the round trip through S and V and the six-sector table is not needed.
    """
    maxc = x.amax(dim=1, keepdim=True)
    delta = maxc - x.amin(dim=1, keepdim=True)  # 0 for grey pixels, whose hue is 0 and stays unseen
    rc, gc, bc = ((maxc - x) / torch.where(delta > 0, delta, 1.0)).unbind(dim=1)
    r, g, _ = x.unbind(dim=1)
    m = maxc.squeeze(1)
    h6 = torch.where(m == r, bc - gc, torch.where(m == g, 2.0 + rc - bc, 4.0 + gc - rc))  # 6·hue
    # HSV→RGB in closed form: channel = v - v·s·w(k), k = (k0 + 6·hue) mod 6, k0 = 5, 3, 1 for r, g, b
    offsets = torch.arange(5.0, 0.0, -2.0, device=x.device).view(1, 3, 1, 1)
    k = (h6.unsqueeze(1) + 6.0 * f + offsets).remainder(6.0)
    return maxc - delta * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- ops


class _ColorJitter(_Op):
    """Per-sample brightness, contrast, saturation and hue factors, applied in a per-sample random
    order like torchvision's ColorJitter. At each position of the order, every enabled adjustment
    runs once, on the samples whose order puts it there (no per-sample loop: m adjustments of the
    whole batch in all, for m enabled ones)."""

    _FUNCS = (_brightness, _contrast, _saturation, _hue)

    def __init__(self, key: str, *, ranges: tuple[tuple[float, float] | None, ...]):
        super().__init__(key)
        self.ranges = ranges  # brightness, contrast, saturation, hue; None = off

    def draw(self, g, n: int, c: int) -> tuple[list[int], Tensor, Tensor]:
        """One batch's random draws, on the CPU: the enabled adjustments (indices into ``_FUNCS``;
        grayscale images have no saturation or hue to change), their ``N×4`` factors, and the
        ``N×m`` order (position → index into the enabled list)."""
        u = _rand(g, n, 4)
        order_keys = _rand(g, n, 4)
        active = [i for i, r in enumerate(self.ranges) if r is not None and (c == 3 or i < 2)]
        lo = torch.tensor([r[0] if r else 0.0 for r in self.ranges], dtype=torch.float64)
        hi = torch.tensor([r[1] if r else 0.0 for r in self.ranges], dtype=torch.float64)
        return active, lo + (hi - lo) * u, order_keys[:, active].argsort(dim=1)

    def __call__(self, x, g):
        n, c = x.shape[:2]
        if c not in (1, 3):
            raise ParamError(f"{self.key}: color_jitter needs 1- or 3-channel images, got {c} channels")
        active, factors, order = self.draw(g, n, c)
        for step in range(len(active)):
            out = torch.empty_like(x)
            for j, i in enumerate(active):
                rows = (order[:, step] == j).nonzero().squeeze(1)
                if len(rows):
                    index = rows.to(x.device)
                    adjusted = self._FUNCS[i](x.index_select(0, index), _factors(factors[rows, i], x))
                    out.index_copy_(0, index, adjusted)
            x = out
        return x
