"""Drawing for the sample mirror: a batch of float images and anti-aliased shape masks.

Rendering uses element-wise numpy arithmetic only, and cos/sin from the C library value
by value (:func:`_cos_sin`), so every CPU rounds the pixels identically.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_F = np.float32

# Skin colours of the faces (CelebA) and of the humans and hands (ImageFolder sets).
_SKIN_TONES = np.array([(242, 205, 180), (226, 182, 150), (198, 150, 115), (160, 112, 80), (112, 76, 52)], _F)
_NIBBLE_STD = math.sqrt(2 * (16**2 - 1) / 12)  # std of the sum of two uniform 0–15


def _cos_sin(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin from the C library, value by value.

    numpy's vectorized loops may round the last bit differently from one CPU to another.
    """
    flat = np.asarray(angles, dtype=np.float64).ravel()
    cos = np.array([math.cos(a) for a in flat], dtype=np.float64).reshape(np.shape(angles))
    sin = np.array([math.sin(a) for a in flat], dtype=np.float64).reshape(np.shape(angles))
    return cos, sin


def _col(values) -> np.ndarray:
    """Per-sample values as an ``N×1×1`` float32 column, to broadcast against ``H×W``."""
    return np.asarray(values, dtype=_F).reshape(-1, 1, 1)


class _Mask(NamedTuple):
    """Coverage (0–1, ``N×h×w``) of a shape inside the window ``rows × cols`` of the canvas."""

    alpha: np.ndarray
    rows: slice
    cols: slice


class _Canvas:
    """A batch of ``N`` images (float32, 0–255, ``N×C×H×W``) and anti-aliased shape masks.

    Shapes are evaluated only inside the window that holds them in every image of the
    batch, which keeps small features (eyes, fingers) cheap on large images.
    """

    def __init__(self, n: int, height: int, width: int, channels: int = 3):
        self.n, self.height, self.width = n, height, width
        self.yy = np.arange(height, dtype=_F).reshape(1, height, 1)
        self.xx = np.arange(width, dtype=_F).reshape(1, 1, width)
        self.img = np.zeros((n, channels, height, width), dtype=_F)

    def _cols(self, *values) -> list[np.ndarray]:
        return [_col(np.broadcast_to(np.asarray(v, np.float64), (self.n,))) for v in values]

    def _window(self, y_lo, y_hi, x_lo, x_hi) -> tuple[slice, slice]:
        """Rows and columns covering ``[y_lo, y_hi] × [x_lo, x_hi]`` of every image, clipped."""
        y0 = max(int(np.floor(np.min(y_lo))) - 2, 0)
        y1 = max(min(int(np.ceil(np.max(y_hi))) + 3, self.height), y0)
        x0 = max(int(np.floor(np.min(x_lo))) - 2, 0)
        x1 = max(min(int(np.ceil(np.max(x_hi))) + 3, self.width), x0)
        return slice(y0, y1), slice(x0, x1)

    def gradient(self, top: np.ndarray, bottom: np.ndarray, start=0.0, stop=None) -> None:
        """Fill rows from ``start`` to ``stop`` (per sample) with a vertical colour ramp."""
        stop = self.height if stop is None else stop
        t = np.clip((self.yy - _col(start)) / np.maximum(_col(stop) - _col(start), 1), 0, 1)
        ramp = _col_c(top) + (_col_c(bottom) - _col_c(top)) * t[:, None]
        inside = ((self.yy >= _col(start)) & (self.yy < _col(stop)))[:, None]
        np.copyto(self.img, np.broadcast_to(ramp, self.img.shape), where=inside)

    def paint(self, mask: _Mask, color: np.ndarray, opacity=1.0) -> None:
        """Blend ``color`` (``N×C``) into the images where ``mask`` covers them."""
        opacity = np.broadcast_to(np.asarray(opacity, _F), (self.n,))
        if mask.alpha.size == 0 or not opacity.any():
            return
        a = (mask.alpha * _col(opacity))[:, None]
        region = self.img[:, :, mask.rows, mask.cols]
        region += (_col_c(color) - region) * a

    def ellipse(self, cx, cy, rx, ry, cos=1.0, sin=0.0, edge=1.0, window=None) -> _Mask:
        """Filled ellipse with half-axes ``rx``/``ry`` turned by the angle of (cos, sin)."""
        cx, cy, rx, ry, cos, sin = self._cols(cx, cy, rx, ry, cos, sin)
        if window is None:
            reach = np.maximum(rx, ry)
            window = self._window(cy - reach, cy + reach, cx - reach, cx + reach)
        rows, cols = window
        dx, dy = self.xx[..., cols] - cx, self.yy[:, rows] - cy
        u = (dx * cos + dy * sin) / rx
        v = (dy * cos - dx * sin) / ry
        r = np.sqrt(u * u + v * v)
        return _Mask(np.clip(0.5 + (1 - r) * np.minimum(rx, ry) / edge, 0, 1), rows, cols)

    def ring(self, cx, cy, rx, ry, thickness, edge=1.0) -> _Mask:
        """Outline of an axis-aligned ellipse."""
        outer = self.ellipse(cx, cy, rx, ry, edge=edge)
        window = (outer.rows, outer.cols)
        inner = self.ellipse(cx, cy, np.asarray(rx) - thickness, np.asarray(ry) - thickness, window=window)
        return _Mask(np.clip(outer.alpha - inner.alpha, 0, 1), *window)

    def segment(self, x0, y0, x1, y1, width, edge=1.0) -> _Mask:
        """Stroke with round caps from (x0, y0) to (x1, y1)."""
        x0, y0, x1, y1, width = self._cols(x0, y0, x1, y1, width)
        half = width / 2
        rows, cols = self._window(
            np.minimum(y0, y1) - half,
            np.maximum(y0, y1) + half,
            np.minimum(x0, x1) - half,
            np.maximum(x0, x1) + half,
        )
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy + _F(1e-6)
        px, py = self.xx[..., cols] - x0, self.yy[:, rows] - y0
        t = np.clip((px * dx + py * dy) / length2, 0, 1)
        ex, ey = px - t * dx, py - t * dy
        alpha = np.clip(0.5 + (half - np.sqrt(ex * ex + ey * ey)) / edge, 0, 1)
        return _Mask(alpha, rows, cols)

    def arc(self, cx, cy, half_width, sag, thickness, edge=1.0) -> _Mask:
        """Parabolic stroke through (cx ± half_width, cy) whose middle sits ``sag`` lower."""
        cx, cy, hw, sag, th = self._cols(cx, cy, half_width, sag, thickness)
        rows, cols = self._window(
            cy + np.minimum(sag, 0) - th, cy + np.maximum(sag, 0) + th, cx - hw, cx + hw
        )
        u = (self.xx[..., cols] - cx) / hw
        curve = cy + sag * (1 - u * u)
        along = np.clip(0.5 + (1 - np.abs(u)) * hw / edge, 0, 1)
        across = np.clip(0.5 + (th / 2 - np.abs(self.yy[:, rows] - curve)) / edge, 0, 1)
        return _Mask(across * along, rows, cols)

    def finish(self, rng: np.random.Generator, noise: float, contrast=None, brightness=None, shade=None):
        """Apply per-image contrast, brightness, left-to-right shading and pixel noise.

        Returns the batch as uint8 ``N×C×H×W``.
        """
        img = self.img
        if shade is not None:
            ramp = self.xx / _F(max(self.width - 1, 1)) - _F(0.5)
            img = img * (1 + _col(shade) * ramp)[:, None]
        if contrast is not None:
            img = (img - 128) * _col(contrast)[:, None] + 128
        if brightness is not None:
            img = img + _col(brightness)[:, None]
        if noise:
            # triangular noise from the two nibbles of one random byte per value (cheap)
            u = np.frombuffer(rng.bytes(img.size), dtype=np.uint8).reshape(img.shape)
            tri = (u & 15).astype(_F) + (u >> 4).astype(_F) - _F(15)
            img = img + tri * _F(noise / _NIBBLE_STD)
        return np.clip(img + _F(0.5), 0, 255).astype(np.uint8)


def _col_c(color) -> np.ndarray:
    """Per-sample colours ``N×C`` as ``N×C×1×1``."""
    color = np.asarray(color, dtype=_F)
    return color.reshape(color.shape[0], -1, 1, 1)


def _affine_points(points: np.ndarray, center, scale, cos, sin, shift) -> np.ndarray:
    """Move ``N×K×2`` points: rotate and scale about ``center``, then shift (``N×2``)."""
    dx = points[..., 0] - center[0]
    dy = points[..., 1] - center[1]
    s, c, n = scale[:, None], cos[:, None], sin[:, None]
    x = center[0] + s * (c * dx - n * dy) + shift[:, 0:1]
    y = center[1] + s * (n * dx + c * dy) + shift[:, 1:2]
    return np.stack([x, y], axis=-1)


def _random_pose(rng, n, shift, scale, degrees):
    scales = rng.uniform(*scale, n)
    cos, sin = _cos_sin(np.deg2rad(rng.uniform(-degrees, degrees, n)))
    shifts = rng.uniform(-shift, shift, (n, 2))
    return scales, cos, sin, shifts
