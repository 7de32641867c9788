"""What a convolution layer computes, by hand: hand-made filters, cross-correlation, pooling.

Everything here goes through ``torch.nn.functional.conv1d`` / ``conv2d`` / ``max_pool2d``, the
functions a CNN layer runs, so the pictures of :mod:`cnnpipe.explore` show what a layer does:

* :func:`correlate2d` is ``F.conv2d`` on one single-channel image: a *cross-correlation*, the
  kernel slid over the image as it is (what every deep-learning framework calls convolution);
* :func:`convolve2d` is the true convolution of signal processing: the same with the kernel
  rotated by 180° (:func:`flip`), which is what ``scipy.signal.convolve2d`` computes;
* :func:`conv_output_size` is the output length ⌊(n + 2p − m)/s⌋ + 1 of an input of n with a
  kernel of m, padding p and stride s.

The filters are the sources' own: the first chapter's vertical and horizontal edge filters
(the Sobel kernels, whose output the chapter clips to the pixel range), Sobel's gradients and
their magnitude, and 2×2 max pooling. :data:`BY_HAND` and :data:`SOBEL_EXAMPLE` are the
worked examples the sources compute by hand (a 192 pixel becoming 577; 8 as a
cross-correlation and −8 as a convolution).

Images are ``H×W`` tensors (or arrays); integer input is computed in float64, float input
in its own dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Responds to vertical edges (a change from left to right): Sobel's Gx.
VERTICAL_EDGE = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
# Responds to horizontal edges (a change from top to bottom): Sobel's Gy.
HORIZONTAL_EDGE = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
SOBEL_X = VERTICAL_EDGE
SOBEL_Y = HORIZONTAL_EDGE

# torchvision's rgb_to_grayscale weights (ITU-R 601 luma)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)

# A 3×3 filter applied to one pixel by hand: the pixel 192 and its neighbours, times the
# filter, summed, give the new value 577.
BY_HAND = {
    "patch": ((0.0, 64.0, 128.0), (48.0, 192.0, 144.0), (142.0, 226.0, 168.0)),
    "kernel": ((-1.0, 0.0, -2.0), (0.5, 4.5, -1.5), (1.5, 2.0, -3.0)),
    "value": 577.0,
}
# Sobel Gx on a patch brightening from left to right: 8 as a cross-correlation (F.conv2d),
# −8 as a true convolution (the kernel flipped), because Gx flipped is −Gx.
SOBEL_EXAMPLE = {
    "patch": ((1.0, 2.0, 3.0), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0)),
    "kernel": SOBEL_X,
    "correlation": 8.0,
    "convolution": -8.0,
}


def _tensor(x: Tensor | np.ndarray | Sequence, dtype: torch.dtype | None = None) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if dtype is not None:
        return t.to(dtype)
    return t if t.is_floating_point() else t.to(torch.float64)


def conv_output_size(n: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """Output length ⌊(n + 2p − m)/s⌋ + 1 of a convolution (or pooling) over ``n`` inputs."""
    if stride < 1 or padding < 0 or kernel < 1:
        raise ValueError(f"kernel {kernel}, padding {padding}, stride {stride}: need m ≥ 1, p ≥ 0, s ≥ 1")
    return (n + 2 * padding - kernel) // stride + 1


def flip(kernel: Tensor | np.ndarray | Sequence) -> Tensor:
    """The kernel rotated by 180° (reversed along every axis): what turns correlation into convolution."""
    k = _tensor(kernel)
    return torch.flip(k, dims=tuple(range(k.ndim)))


def correlate1d(
    x: Tensor | np.ndarray | Sequence, w: Tensor | np.ndarray | Sequence, *, padding: int = 0, stride: int = 1
) -> Tensor:
    """Cross-correlation of a 1-D signal with ``w`` (``F.conv1d``), zero ``padding`` on both sides."""
    x = _tensor(x)
    w = _tensor(w, x.dtype)
    return F.conv1d(x.view(1, 1, -1), w.view(1, 1, -1), padding=padding, stride=stride).view(-1)


def convolve1d(
    x: Tensor | np.ndarray | Sequence, w: Tensor | np.ndarray | Sequence, *, padding: int = 0, stride: int = 1
) -> Tensor:
    """True 1-D convolution: :func:`correlate1d` with ``w`` reversed."""
    return correlate1d(x, flip(w), padding=padding, stride=stride)


def correlate2d(
    image: Tensor | np.ndarray | Sequence,
    kernel: Tensor | np.ndarray | Sequence,
    *,
    padding: int = 0,
    stride: int = 1,
) -> Tensor:
    """Cross-correlation of an ``H×W`` image with a 2-D kernel: ``F.conv2d``, zero ``padding``."""
    x = _tensor(image)
    k = _tensor(kernel, x.dtype)
    out = F.conv2d(x[None, None], k[None, None], padding=padding, stride=stride)
    return out[0, 0]


def convolve2d(
    image: Tensor | np.ndarray | Sequence,
    kernel: Tensor | np.ndarray | Sequence,
    *,
    padding: int = 0,
    stride: int = 1,
) -> Tensor:
    """True 2-D convolution: :func:`correlate2d` with the kernel rotated by 180°."""
    return correlate2d(image, flip(kernel), padding=padding, stride=stride)


def max_pool(image: Tensor | np.ndarray | Sequence, size: int = 2) -> Tensor:
    """``size``×``size`` max pooling with stride ``size`` (``F.max_pool2d``): 28×28 → 14×14 for 2."""
    x = _tensor(image)
    return F.max_pool2d(x[None, None], size)[0, 0]


def to_gray(image: np.ndarray | Tensor) -> Tensor:
    """A uint8 ``C×H×W`` image as an ``H×W`` float32 gray image in [0, 1] (luma for RGB)."""
    x = torch.as_tensor(np.asarray(image)).to(torch.float32) / 255.0
    if x.ndim != 3:
        raise ValueError(f"expected a C×H×W image, got shape {tuple(x.shape)}")
    if x.shape[0] >= 3:
        weights = torch.tensor(GRAY_WEIGHTS, dtype=torch.float32).view(3, 1, 1)
        return (x[:3] * weights).sum(0)
    return x[0]


def sobel(gray: Tensor | np.ndarray, *, padding: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Sobel gradients Gx, Gy (cross-correlations) and their magnitude √(Gx² + Gy²).

    Without ``padding`` an H×W image gives (H−2)×(W−2): only where the kernel fits, so no
    made-up edge along a zero-padded border.
    """
    gx = correlate2d(gray, SOBEL_X, padding=padding)
    gy = correlate2d(gray, SOBEL_Y, padding=padding)
    return gx, gy, torch.sqrt(gx * gx + gy * gy)


def filter_panels(gray: Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Every panel of the filters figure for one ``H×W`` gray image in [0, 1], as float32 arrays.

    ``original``; ``vertical`` and ``horizontal``: the edge filters' output clipped to [0, 1] as
    the chapter clips it to the pixel range; ``pooled``: 2×2 max pooling of the original;
    ``sobel_x``, ``sobel_y`` (signed) and ``magnitude``; ``magnitude_pooled``: 2×2 max pooling
    of the magnitude. Filters run without padding, like the chapter's loop that skips the
    border: an H×W image gives (H−2)×(W−2) (:func:`conv_output_size`).
    """
    x = _tensor(gray, torch.float32)
    gx, gy, magnitude = sobel(x)
    panels = {
        "original": x,
        "vertical": correlate2d(x, VERTICAL_EDGE).clamp(0.0, 1.0),
        "horizontal": correlate2d(x, HORIZONTAL_EDGE).clamp(0.0, 1.0),
        "pooled": max_pool(x, 2),
        "sobel_x": gx,
        "sobel_y": gy,
        "magnitude": magnitude,
        "magnitude_pooled": max_pool(magnitude, 2),
    }
    return {name: t.numpy().astype(np.float32) for name, t in panels.items()}


def convolution_panels(gray: Tensor | np.ndarray, kernel=SOBEL_X) -> dict[str, np.ndarray]:
    """Cross-correlation and true convolution of one gray image with ``kernel`` (no padding).

    ``original``, ``correlation`` (``F.conv2d``), ``convolution`` (the kernel flipped) and
    ``difference`` (convolution − correlation), float32.
    """
    x = _tensor(gray, torch.float32)
    k = _tensor(kernel, torch.float32)
    correlation = correlate2d(x, k)
    convolution = convolve2d(x, k)
    panels = {
        "original": x,
        "correlation": correlation,
        "convolution": convolution,
        "difference": convolution - correlation,
    }
    return {name: t.numpy().astype(np.float32) for name, t in panels.items()}
