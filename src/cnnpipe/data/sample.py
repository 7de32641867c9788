"""The offline sample mirror: small, synthetic versions of every upstream file.

:func:`write_sample_mirror` writes ``<out>/<dataset>/<upstream file name>`` for every
dataset of the source registry (:data:`cnnpipe.data.sources.SOURCES`), in the exact
upstream format, so the whole pipeline runs without network and the files go through
the very readers the real downloads go through (and through torchvision's own dataset
classes). ``<out>/MD5SUMS`` lists every file in ``md5sum`` format.

Pointing ``data.mirror`` in params.yaml at the folder makes the download stage copy
from it instead of the internet.

The images are synthetic but learnable: every class has a spatially structured template
(strokes, blobs, shapes and colours drawn from a seeded generator) and each sample is
its template moved, scaled, rotated, re-lit and noised, so a small CNN trained for a few
CPU minutes lands far above chance but not at 100 % from a single pixel. CelebA faces
carry their attributes visibly where it matters (``Smiling`` bends the mouth up,
``Eyeglasses``, hair colours, ``Bald``, ``Wearing_Hat``, ``Wearing_Lipstick``, beards).

Everything is deterministic: one argument set gives byte-identical files (generators
seeded from ``seed`` and a CRC-32 of the dataset and split name; gzip with mtime 0 and
no file name; tar members with mtime 0 and root ownership; zip entries dated
1980-01-01 in a fixed order). Images are rendered with element-wise numpy arithmetic
only (no transcendental ufuncs), which IEEE-754 rounds identically on every CPU.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from cnnpipe.data.md5sums import MD5SUMS, BadMd5Line, file_md5, parse_md5sums, write_md5sums
from cnnpipe.data.sources import (
    CELEBA_ATTR,
    CELEBA_ATTRIBUTES,
    CELEBA_FOLDER,
    CELEBA_IMAGE_SIZE,
    CELEBA_PARTITION,
    CELEBA_SPLIT_CODE,
    CELEBA_ZIP,
    CIFAR10_CLASSES,
    CIFAR_FILE,
    CIFAR_FOLDER,
    CIFAR_META,
    CIFAR_TEST_BATCHES,
    CIFAR_TRAIN_BATCHES,
    IDX_FILES,
    LOCAL_SETS,
    SOURCES,
)
from cnnpipe.errors import DataFormatError, ParamError
from cnnpipe.fileio import atomic_file, atomic_write_bytes

DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "mnist": {"train": 1200, "test": 300},
    "fashion_mnist": {"train": 1200, "test": 300},
    "cifar10": {"train": 1000, "test": 300},
    "celeba": {"train": 1000, "valid": 200, "test": 200},
    "horse_or_human": {"train": 80, "valid": 32},
    "rps": {"train": 90, "test": 30},
    "sea": {"train": 175, "test": 50},
}
"""Images per dataset and split written when no override is given."""

# Approximate prevalence of each attribute in the real CelebA (fraction of +1).
_CELEBA_PREVALENCE = (
    0.11, 0.27, 0.51, 0.20, 0.02, 0.15, 0.24, 0.23, 0.24, 0.15,
    0.05, 0.21, 0.14, 0.06, 0.05, 0.07, 0.06, 0.04, 0.39, 0.45,
    0.42, 0.48, 0.04, 0.12, 0.83, 0.28, 0.04, 0.28, 0.08, 0.07,
    0.06, 0.48, 0.21, 0.32, 0.19, 0.05, 0.47, 0.12, 0.07, 0.77,
)  # fmt: skip

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_GZIP_LEVEL = 6
_F = np.float32
_NIBBLE_STD = math.sqrt(2 * (16**2 - 1) / 12)  # std of the sum of two uniform 0–15

Log = Callable[[str], object]


# ---------------------------------------------------------------------------- sizes


def _size_keys() -> list[str]:
    return [f"{ds}.{split}" for ds, splits in DEFAULT_SIZES.items() for split in splits]


def _check_count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParamError(f"sample size {where}={value!r}: expected a whole number of images >= 1")
    return int(value)


def parse_size_overrides(items: Sequence[str]) -> dict[str, dict[str, int]]:
    """Parse ``["cifar10.train=50000", ...]`` into ``{"cifar10": {"train": 50000}}``.

    Each item is ``<dataset>.<split>=<count>`` with a key of :data:`DEFAULT_SIZES` and a
    count >= 1; anything else raises :class:`~cnnpipe.errors.ParamError` naming the item
    and the valid keys.
    """
    result: dict[str, dict[str, int]] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        dataset, _, split = key.strip().partition(".")
        try:
            count = int(value.strip()) if sep else 0
        except ValueError:
            count = 0
        if split not in DEFAULT_SIZES.get(dataset, {}) or count < 1:
            raise ParamError(
                f"bad sample size {item!r}: expected <dataset>.<split>=<count> with a count >= 1 "
                f"and a key among {', '.join(_size_keys())}"
            )
        result.setdefault(dataset, {})[split] = count
    return result


def _resolve_sizes(
    sizes: Mapping[str, Mapping[str, int]] | None, datasets: Sequence[str]
) -> dict[str, dict[str, int]]:
    resolved = {ds: dict(DEFAULT_SIZES[ds]) for ds in datasets}
    for ds, splits in (sizes or {}).items():
        if ds not in DEFAULT_SIZES:
            raise ParamError(
                f"sample sizes name unknown dataset {ds!r}: valid keys are {', '.join(_size_keys())}"
            )
        for split, count in splits.items():
            if split not in DEFAULT_SIZES[ds]:
                raise ParamError(
                    f"sample size {ds}.{split}: {ds} has no split {split!r}; "
                    f"valid keys are {', '.join(_size_keys())}"
                )
            count = _check_count(count, f"{ds}.{split}")
            if ds in resolved:
                resolved[ds][split] = count
    return resolved


# ---------------------------------------------------------------------------- randomness


def _rng(seed: int, dataset: str, part: str) -> np.random.Generator:
    """A generator that depends only on the seed, the dataset and ``part`` (a split, ...)."""
    return np.random.default_rng([seed, zlib.crc32(f"{dataset}/{part}".encode())])


def _balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """``n`` labels with every class as often as possible (counts differ by at most 1)."""
    labels = np.arange(n) % n_classes
    return labels[rng.permutation(n)]


def _class_counts(n: int, n_classes: int) -> list[int]:
    return [n // n_classes + (c < n % n_classes) for c in range(n_classes)]


def _cos_sin(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin from the C library, value by value.

    numpy's vectorized loops may round the last bit differently from one CPU to another.
    """
    flat = np.asarray(angles, dtype=np.float64).ravel()
    cos = np.array([math.cos(a) for a in flat], dtype=np.float64).reshape(np.shape(angles))
    sin = np.array([math.sin(a) for a in flat], dtype=np.float64).reshape(np.shape(angles))
    return cos, sin


# ---------------------------------------------------------------------------- rendering


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


# ---- 28×28 grey: MNIST-like strokes, Fashion-MNIST-like silhouettes


def _stroke_templates(rng: np.random.Generator, n_classes: int = 10) -> np.ndarray:
    """One 4-point polyline per class (``classes×4×2``), consecutive points >= 6 px apart."""
    templates = np.empty((n_classes, 4, 2))
    for c in range(n_classes):
        points = [rng.uniform(6, 22, 2)]
        while len(points) < 4:
            p = rng.uniform(6, 22, 2)
            if np.sum((p - points[-1]) ** 2) >= 36:
                points.append(p)
        templates[c] = points
    return templates


def _render_strokes(rng, templates, labels) -> np.ndarray:
    n = len(labels)
    scale, cos, sin, shift = _random_pose(rng, n, 2.5, (0.85, 1.1), 12)
    points = templates[labels] + rng.normal(0, 0.8, (n, 4, 2))
    points = _affine_points(points, (13.5, 13.5), scale, cos, sin, shift)
    width = rng.uniform(2.2, 3.4, n)
    canvas = _Canvas(n, 28, 28, 1)
    ink = rng.uniform(190, 255, (n, 1))
    for k in range(3):
        a, b = points[:, k], points[:, k + 1]
        canvas.paint(canvas.segment(a[:, 0], a[:, 1], b[:, 0], b[:, 1], width), ink)
    canvas.img -= 6  # keep most of the background at exactly 0 after the noise
    return canvas.finish(rng, noise=10)[:, 0]


def _blob_templates(rng: np.random.Generator, n_classes: int = 10) -> np.ndarray:
    """Three ellipses per class: ``classes×3×(cx, cy, rx, ry, angle, level)``."""
    t = np.empty((n_classes, 3, 6))
    t[..., 0:2] = rng.uniform(8, 20, (n_classes, 3, 2))
    t[..., 2:4] = rng.uniform(3, 9, (n_classes, 3, 2))
    t[..., 4] = rng.uniform(0, np.pi, (n_classes, 3))
    t[..., 5] = rng.uniform(0.4, 1.0, (n_classes, 3))
    return t


def _render_blobs(rng, templates, labels) -> np.ndarray:
    n = len(labels)
    scale, cos, sin, shift = _random_pose(rng, n, 2.5, (0.85, 1.12), 12)
    t = templates[labels]
    centers = _affine_points(t[..., 0:2], (13.5, 13.5), scale, cos, sin, shift)
    canvas = _Canvas(n, 28, 28, 1)
    gain = rng.uniform(0.8, 1.1, n)
    for k in range(3):
        ck, sk = _cos_sin(t[:, k, 4])
        ck, sk = ck * cos - sk * sin, sk * cos + ck * sin  # template angle + pose rotation
        alpha = canvas.ellipse(
            centers[:, k, 0], centers[:, k, 1], t[:, k, 2] * scale, t[:, k, 3] * scale, ck, sk
        )
        canvas.paint(alpha, (t[:, k, 5] * gain * 230)[:, None])
    canvas.img -= 5
    return canvas.finish(rng, noise=12)[:, 0]


# ---- 32×32 colour: CIFAR-like objects on random backgrounds


def _cifar_templates(rng: np.random.Generator, n_classes: int = 10) -> dict[str, np.ndarray]:
    return {
        "body": np.concatenate(
            [rng.uniform(12, 20, (n_classes, 2)), rng.uniform(5, 11, (n_classes, 2))], axis=1
        ),
        "body_angle": rng.uniform(0, np.pi, n_classes),
        "strokes": rng.uniform(5, 27, (n_classes, 2, 4)),
        "widths": rng.uniform(2.0, 5.0, (n_classes, 2)),
        "colors": rng.uniform(0, 255, (n_classes, 3, 3)),
    }


def _render_cifar(rng, t, labels) -> np.ndarray:
    n = len(labels)
    canvas = _Canvas(n, 32, 32, 3)
    canvas.gradient(rng.uniform(40, 220, (n, 3)), rng.uniform(40, 220, (n, 3)))
    scale, cos, sin, shift = _random_pose(rng, n, 3.5, (0.8, 1.2), 20)
    colors = t["colors"][labels] + rng.normal(0, 28, (n, 3, 3))
    body = t["body"][labels]
    center = _affine_points(body[:, None, 0:2], (15.5, 15.5), scale, cos, sin, shift)[:, 0]
    bc, bs = _cos_sin(t["body_angle"][labels])
    bc, bs = bc * cos - bs * sin, bs * cos + bc * sin
    alpha = canvas.ellipse(center[:, 0], center[:, 1], body[:, 2] * scale, body[:, 3] * scale, bc, bs)
    canvas.paint(alpha, colors[:, 0])
    strokes = t["strokes"][labels].reshape(n, 4, 2) + rng.normal(0, 0.7, (n, 4, 2))
    strokes = _affine_points(strokes, (15.5, 15.5), scale, cos, sin, shift)
    widths = t["widths"][labels] * scale[:, None]
    for k in range(2):
        a, b = strokes[:, 2 * k], strokes[:, 2 * k + 1]
        alpha = canvas.segment(a[:, 0], a[:, 1], b[:, 0], b[:, 1], widths[:, k])
        canvas.paint(alpha, colors[:, k + 1])
    return canvas.finish(rng, noise=10, contrast=rng.uniform(0.75, 1.15, n), brightness=rng.normal(0, 12, n))


# ---- 218×178 colour: CelebA-like faces driven by their attributes


_HAIR_COLORS = {
    "Black_Hair": (28, 22, 20),
    "Blond_Hair": (222, 190, 120),
    "Brown_Hair": (112, 70, 40),
    "Gray_Hair": (172, 170, 168),
}
_SKIN_TONES = np.array([(242, 205, 180), (226, 182, 150), (198, 150, 115), (160, 112, 80), (112, 76, 52)], _F)


def _celeba_attributes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n×40`` attributes in {-1, 1}, roughly as frequent and consistent as upstream."""
    idx = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    on = rng.random((n, 40)) < np.asarray(_CELEBA_PREVALENCE)
    male = on[:, idx["Male"]]
    for name in ("Wearing_Lipstick", "Heavy_Makeup", "Wearing_Earrings", "Wearing_Necklace"):
        on[male, idx[name]] = on[male, idx[name]] & (rng.random(male.sum()) < 0.05)
    for name in ("Goatee", "Mustache", "Sideburns", "5_o_Clock_Shadow", "Bald"):
        on[~male, idx[name]] = False
    on[~male, idx["No_Beard"]] = True
    on[on[:, idx["Goatee"]] | on[:, idx["Mustache"]], idx["No_Beard"]] = False
    hair = [idx[name] for name in _HAIR_COLORS]
    choice = rng.choice(5, size=n, p=[0.26, 0.16, 0.22, 0.05, 0.31])  # last: none named
    on[:, hair] = False
    has_color = choice < 4
    on[np.flatnonzero(has_color), np.asarray(hair)[choice[has_color]]] = True
    on[on[:, idx["Bald"]], idx["Bangs"]] = False
    return np.where(on, 1, -1).astype(np.int8)


def _render_faces(rng: np.random.Generator, attrs: np.ndarray) -> np.ndarray:
    n = len(attrs)
    a = {name: attrs[:, i] > 0 for i, name in enumerate(CELEBA_ATTRIBUTES)}
    h, w = CELEBA_IMAGE_SIZE
    canvas = _Canvas(n, h, w, 3)
    canvas.gradient(rng.uniform(30, 230, (n, 3)), rng.uniform(30, 230, (n, 3)))
    cx = 89 + rng.normal(0, 3, n)
    cy = 122 + rng.normal(0, 3, n)
    rx = rng.uniform(44, 50, n) + 4 * a["Male"] + 5 * a["Chubby"]
    ry = rng.uniform(58, 64, n) + 4 * a["Oval_Face"]
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES), n)] + rng.normal(0, 8, (n, 3))
    skin = np.where(a["Pale_Skin"][:, None], np.minimum(skin + 45, 250), skin)

    # hair behind and above the face, unless bald
    hair = np.tile(np.asarray((70, 48, 32), _F), (n, 1)) + rng.normal(0, 10, (n, 3))
    for name, color in _HAIR_COLORS.items():
        hair[a[name]] = np.asarray(color, _F) + rng.normal(0, 8, (a[name].sum(), 3))
    long_hair = (~a["Male"]).astype(_F) * 30
    alpha = canvas.ellipse(cx, cy - 12 + long_hair / 2, rx + 12, ry + 8 + long_hair / 2)
    canvas.paint(alpha, hair, opacity=np.where(a["Bald"], 0.0, 1.0))

    # neck, shoulders, then the face
    canvas.paint(canvas.segment(cx, cy + 40, cx, h + 20, rx * 0.8), skin * 0.9)
    canvas.paint(canvas.ellipse(cx, h + 30, rx * 1.9, np.full(n, 48.0)), rng.uniform(20, 230, (n, 3)))
    canvas.paint(canvas.ellipse(cx, cy, rx, ry), skin)
    fringe = a["Bangs"] & ~a["Bald"]
    canvas.paint(canvas.ellipse(cx, cy - ry * 0.75, rx * 0.95, ry * 0.32), hair, opacity=fringe)
    canvas.paint(canvas.ellipse(cx, cy - ry * 1.0, rx * 1.05, ry * 0.45), hair, opacity=~a["Bald"] & ~fringe)
    cheeks = np.asarray((220, 90, 90), _F)[None].repeat(n, 0)
    for side in (-1, 1):
        canvas.paint(
            canvas.ellipse(cx + side * rx * 0.55, cy + 12, 10, 7), cheeks, opacity=0.45 * a["Rosy_Cheeks"]
        )

    # beard shade, then the mouth
    beard = ~a["No_Beard"] | a["5_o_Clock_Shadow"]
    canvas.paint(
        canvas.ellipse(cx, cy + ry * 0.55, rx * 0.72, ry * 0.42),
        hair * 0.7,
        opacity=np.where(a["No_Beard"], 0.35, 0.8) * beard,
    )
    my = cy + 28 + rng.normal(0, 1.5, n)
    smile = a["Smiling"]
    half = np.where(smile, rng.uniform(25, 30, n), rng.uniform(13, 18, n))
    sag = np.where(smile, rng.uniform(16, 20, n), rng.uniform(-3, 1, n))
    lips = np.where(a["Wearing_Lipstick"][:, None], (200, 40, 70), (150, 75, 75)).astype(_F)
    thick = 3.5 + 2 * a["Big_Lips"] + 2.5 * a["Mouth_Slightly_Open"]
    # a smile is a wide open crescent (lips around a dark mouth and a broad row of teeth) that
    # lifts the cheeks, creases them beside the mouth and narrows the eyes; large enough to
    # stay visible at 64×64 after the 178×178 crop
    crescent = canvas.arc(cx, my + sag * 0.3, half, sag * 0.7, sag * 0.75 + thick)
    canvas.paint(crescent, lips, opacity=smile)
    mouth = canvas.arc(cx, my + sag * 0.3, half * 0.9, sag * 0.7, sag * 0.65)
    canvas.paint(mouth, np.tile(np.asarray((60, 21, 24), _F), (n, 1)), opacity=smile)
    teeth = canvas.arc(cx, my + sag * 0.2, half * 0.85, sag * 0.55, sag * 0.4)
    canvas.paint(teeth, np.full((n, 3), 240, _F), opacity=smile)
    blush = np.tile(np.asarray((235, 120, 110), _F), (n, 1))
    for side in (-1, 1):
        crease = canvas.segment(cx + side * (half + 3), my + 2, cx + side * (half + 7), my - 14, 2.5)
        canvas.paint(crease, skin * 0.7, opacity=smile)
        apple = canvas.ellipse(cx + side * rx * 0.5, cy + 4, 14, 10)
        canvas.paint(apple, blush, opacity=0.7 * smile)
    canvas.paint(canvas.arc(cx, my, half, sag, thick), lips, opacity=~smile)
    canvas.paint(canvas.segment(cx - 14, my - 9, cx + 14, my - 9, 5), hair * 0.6, opacity=a["Mustache"])

    # nose, eyes, eyebrows, glasses
    nose_w = 5 + 3 * a["Big_Nose"]
    canvas.paint(canvas.segment(cx, cy - 6, cx + 2, cy + 12, nose_w), skin * 0.8)
    ey = cy - 14 + rng.normal(0, 1, n)
    eye_h = np.where(a["Narrow_Eyes"], 2.2, 3.8) * np.where(smile, 0.6, 1.0)  # a smile narrows the eyes
    iris = rng.uniform(20, 120, (n, 3))
    white = np.full((n, 3), 240, _F)
    for side in (-1, 1):
        ex = cx + side * 19
        canvas.paint(canvas.ellipse(ex, ey, 8, eye_h), white)
        canvas.paint(canvas.ellipse(ex, ey, 3.2, np.minimum(eye_h, 3.2)), iris)
        brow_y = ey - 9 - 2 * a["Arched_Eyebrows"]
        canvas.paint(
            canvas.segment(ex - 8, brow_y + 1, ex + 8, brow_y - 1, 2.5 + 2.5 * a["Bushy_Eyebrows"]),
            hair * 0.8,
        )
        canvas.paint(canvas.ring(ex, ey, 12, 9, 2), np.full((n, 3), 25, _F), opacity=a["Eyeglasses"])
    canvas.paint(canvas.segment(cx - 7, ey, cx + 7, ey, 2), np.full((n, 3), 25, _F), opacity=a["Eyeglasses"])

    # hat on top
    hat = rng.uniform(20, 230, (n, 3))
    canvas.paint(canvas.ellipse(cx, cy - ry * 0.95, rx * 1.15, ry * 0.5), hat, opacity=a["Wearing_Hat"])
    canvas.paint(
        canvas.segment(cx - rx * 1.3, cy - ry * 0.6, cx + rx * 1.3, cy - ry * 0.6, 8),
        hat,
        opacity=a["Wearing_Hat"],
    )
    return canvas.finish(
        rng,
        noise=5,
        contrast=rng.uniform(0.85, 1.1, n),
        brightness=rng.normal(0, 10, n),
    )


# ---- 300×300 RGBA: horses or humans, rock/paper/scissors hands


def _outdoor_background(rng, canvas: _Canvas) -> np.ndarray:
    n = canvas.n
    horizon = rng.uniform(150, 215, n)
    sky = np.asarray((120, 170, 230), _F) + rng.normal(0, 15, (n, 3))
    canvas.gradient(sky + 40, sky, 0, horizon)
    ground = np.asarray((80, 140, 60), _F) + rng.normal(0, 18, (n, 3))
    canvas.gradient(ground + 20, ground - 25, horizon, 300)
    return horizon


def _render_horses(rng, n: int) -> np.ndarray:
    canvas = _Canvas(n, 300, 300, 3)
    horizon = _outdoor_background(rng, canvas)
    s = rng.uniform(0.8, 1.15, n)
    facing = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    cx = rng.uniform(120, 180, n)
    cy = np.minimum(horizon + 10, 235) - 70 * s
    coats = np.asarray([(120, 72, 38), (90, 55, 30), (150, 100, 60), (40, 32, 28), (200, 196, 190)])
    coat = coats[rng.choice(5, n, p=[0.35, 0.25, 0.2, 0.1, 0.1])] + rng.normal(0, 10, (n, 3))
    dark = coat * 0.6
    for dx in (-50, -30, 30, 50):  # legs
        x = cx + dx * s
        canvas.paint(canvas.segment(x, cy, x + rng.normal(0, 4, n), cy + 95 * s, 12 * s), dark)
    canvas.paint(
        canvas.segment(cx - facing * 72 * s, cy - 10 * s, cx - facing * 90 * s, cy + 50 * s, 10 * s), dark
    )  # tail
    canvas.paint(canvas.ellipse(cx, cy, 78 * s, 34 * s), coat)  # body
    nx, ny = cx + facing * 62 * s, cy - 15 * s
    hx, hy = cx + facing * 95 * s, cy - 80 * s
    canvas.paint(canvas.segment(nx, ny, hx, hy, 26 * s), coat)  # neck
    c, sn = _cos_sin(np.where(facing > 0, 0.5, np.pi - 0.5))
    canvas.paint(canvas.ellipse(hx + facing * 18 * s, hy + 10 * s, 30 * s, 13 * s, c, sn), coat)
    canvas.paint(
        canvas.segment(nx - facing * 5 * s, ny - 10 * s, hx - facing * 8 * s, hy, 8 * s), dark
    )  # mane
    return canvas.finish(rng, noise=0, contrast=rng.uniform(0.85, 1.1, n), shade=rng.uniform(-0.2, 0.2, n))


def _render_humans(rng, n: int) -> np.ndarray:
    canvas = _Canvas(n, 300, 300, 3)
    horizon = _outdoor_background(rng, canvas)
    s = rng.uniform(0.8, 1.1, n)
    cx = rng.uniform(115, 185, n)
    feet = np.minimum(horizon + rng.uniform(20, 70, n), 292)
    hip = feet - 100 * s
    shoulder = hip - 85 * s
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES), n)] + rng.normal(0, 8, (n, 3))
    shirt = rng.uniform(20, 235, (n, 3))
    trousers = rng.uniform(20, 200, (n, 3))
    for side in (-1, 1):  # legs, arms
        canvas.paint(
            canvas.segment(cx + side * 12 * s, hip, cx + side * rng.uniform(12, 30, n) * s, feet, 20 * s),
            trousers,
        )
        hand_x = cx + side * rng.uniform(30, 70, n) * s
        hand_y = shoulder + rng.uniform(40, 95, n) * s
        canvas.paint(canvas.segment(cx + side * 28 * s, shoulder + 8 * s, hand_x, hand_y, 15 * s), shirt)
        canvas.paint(canvas.ellipse(hand_x, hand_y, 8 * s, 8 * s), skin)
    canvas.paint(canvas.ellipse(cx, (hip + shoulder) / 2, 32 * s, 50 * s), shirt)  # torso
    canvas.paint(canvas.segment(cx, shoulder - 14 * s, cx, shoulder + 4 * s, 14 * s), skin)
    head_y = shoulder - 32 * s
    canvas.paint(canvas.ellipse(cx, head_y - 4 * s, 23 * s, 24 * s), rng.uniform(20, 200, (n, 3)))
    canvas.paint(canvas.ellipse(cx, head_y + 2 * s, 19 * s, 23 * s), skin)
    return canvas.finish(rng, noise=0, contrast=rng.uniform(0.85, 1.1, n), shade=rng.uniform(-0.2, 0.2, n))


def _render_hands(rng, n: int, fingers: int) -> np.ndarray:
    """Hands on a white background: 0 extended fingers (rock), 2 (scissors) or 5 (paper)."""
    canvas = _Canvas(n, 300, 300, 3)
    canvas.img[:] = 250
    s = rng.uniform(0.85, 1.1, n)
    cx, cy = rng.uniform(130, 170, n), rng.uniform(130, 170, n)
    theta = rng.uniform(-0.6, 0.6, n) + np.where(rng.random(n) < 0.5, 0.0, np.pi)
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES), n)] + rng.normal(0, 8, (n, 3))
    edge = skin * 0.75

    def point(along, across):
        """A point ``along`` the pointing direction and ``across`` it (scaled)."""
        c, sn = _cos_sin(theta)
        return cx + s * (along * c - across * sn), cy + s * (along * sn + across * c)

    c, sn = _cos_sin(theta)
    ax, ay = point(-220, 0)
    bx, by = point(-30, 0)
    canvas.paint(canvas.segment(ax, ay, bx, by, 62 * s), skin)  # forearm and wrist
    canvas.paint(canvas.ellipse(cx, cy, 50 * s + 3, 43 * s + 3, c, sn), edge)
    canvas.paint(canvas.ellipse(cx, cy, 50 * s, 43 * s, c, sn), skin)  # palm
    if fingers == 0:
        for across in (-27, -9, 9, 27):  # knuckles of the fist
            kx, ky = point(40, across)
            canvas.paint(canvas.ellipse(kx, ky, 13 * s, 13 * s), edge)
            canvas.paint(canvas.ellipse(kx, ky, 11 * s, 11 * s), skin)
        tx, ty = point(18, -36)
        canvas.paint(canvas.segment(*point(-10, -38), tx, ty, 17 * s), skin)
        return canvas.finish(
            rng, noise=0, contrast=rng.uniform(0.9, 1.05, n), shade=rng.uniform(-0.12, 0.12, n)
        )
    if fingers == 2:
        tips = [(118, -30), (118, 24)]
        for across in (-9, 9, 27):  # folded fingers
            kx, ky = point(42, across)
            canvas.paint(canvas.ellipse(kx, ky, 11 * s, 11 * s), edge)
    else:
        tips = [(105, -42), (125, -15), (122, 12), (100, 36), (20, -95)]
    for k, (along, across) in enumerate(tips):
        along = along + rng.normal(0, 4, n)
        base_across = across * (0.35 if k < 4 else 0.5)
        bx, by = point(30 if k < 4 else -10, base_across)
        tx, ty = point(along, across)
        canvas.paint(canvas.segment(bx, by, tx, ty, 22 * s), edge)
        canvas.paint(canvas.segment(bx, by, tx, ty, 18 * s), skin)
    return canvas.finish(rng, noise=0, contrast=rng.uniform(0.9, 1.05, n), shade=rng.uniform(-0.12, 0.12, n))


def _render_sea(rng, n: int, kind: str) -> np.ndarray:
    """100×100 sea creatures on a blue-green water gradient, one shape family per class."""
    canvas = _Canvas(n, 100, 100, 3)
    water = np.asarray((20, 90, 140), _F) + rng.normal(0, 12, (n, 3))
    canvas.gradient(water + 40, water - 30)
    s = rng.uniform(0.8, 1.15, n)
    cx, cy = rng.uniform(40, 60, n), rng.uniform(40, 60, n)
    body = {
        "crab": (200, 60, 40),
        "fish": (240, 190, 40),
        "jellyfish": (220, 170, 230),
        "octopus": (170, 70, 120),
        "starfish": (240, 120, 50),
    }[kind] + rng.normal(0, 14, (n, 3))
    if kind == "crab":
        for side in (-1, 1):
            for dy in (-6, 0, 6):  # legs
                canvas.paint(
                    canvas.segment(
                        cx + side * 14 * s, cy + dy * s, cx + side * 30 * s, cy + (dy + 8) * s, 3 * s
                    ),
                    body * 0.8,
                )
            canvas.paint(canvas.ellipse(cx + side * 22 * s, cy - 18 * s, 7 * s, 5 * s), body)  # claws
        canvas.paint(canvas.ellipse(cx, cy, 20 * s, 12 * s), body)
    elif kind == "fish":
        canvas.paint(canvas.segment(cx + 18 * s, cy, cx + 32 * s, cy - 10 * s, 7 * s), body * 0.85)
        canvas.paint(canvas.segment(cx + 18 * s, cy, cx + 32 * s, cy + 10 * s, 7 * s), body * 0.85)
        canvas.paint(canvas.ellipse(cx, cy, 22 * s, 10 * s), body)
        canvas.paint(canvas.ellipse(cx - 13 * s, cy - 3 * s, 2.5 * s, 2.5 * s), np.zeros((n, 3)))
    elif kind == "jellyfish":
        for dx in (-10, -4, 2, 8):  # trailing tentacles
            canvas.paint(
                canvas.segment(cx + dx * s, cy, cx + (dx + rng.normal(0, 2, n)) * s, cy + 30 * s, 2 * s),
                body,
                0.7,
            )
        canvas.paint(canvas.ellipse(cx, cy - 4 * s, 18 * s, 12 * s), body, 0.85)
    elif kind == "octopus":
        for k in range(8):  # tentacles curling downwards
            angle = np.pi * (0.15 + 0.7 * k / 7) + rng.normal(0, 0.08, n)
            c, sn = _cos_sin(angle)
            canvas.paint(
                canvas.segment(cx, cy + 6 * s, cx + 28 * s * c, cy + 6 * s + 28 * s * sn, 4 * s), body * 0.9
            )
        canvas.paint(canvas.ellipse(cx, cy - 6 * s, 15 * s, 17 * s), body)
    else:  # starfish: five arms
        turn = rng.uniform(0, 2 * np.pi / 5, n)
        for k in range(5):
            c, sn = _cos_sin(turn + 2 * np.pi * k / 5)
            canvas.paint(canvas.segment(cx, cy, cx + 26 * s * c, cy + 26 * s * sn, 9 * s), body)
        canvas.paint(canvas.ellipse(cx, cy, 9 * s, 9 * s), body)
    return canvas.finish(rng, noise=6, contrast=rng.uniform(0.85, 1.1, n), shade=rng.uniform(-0.2, 0.2, n))


# ---------------------------------------------------------------------------- file formats


def _gzip_file(path: Path, chunks: Iterator[bytes] | Sequence[bytes]) -> None:
    """Write a gzip file with no name and mtime 0 (byte-identical on every run)."""
    with (
        atomic_file(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz,
    ):
        for chunk in chunks:
            gz.write(chunk)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3  # unix, whatever platform writes it
    if name.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10
    else:
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


class _Py2Pickler(pickle._Pickler):
    """Pickle as Python 2's cPickle did for the real CIFAR batches (protocol 2).

    Strings and bytes become Python 2 ``str`` (``SHORT_BINSTRING``/``BINSTRING``), and
    numpy's array reconstructor is named ``numpy.core.multiarray`` as in the originals;
    so ``pickle.load(f, encoding="latin1")`` gives ``str`` keys and ``encoding="bytes"``
    gives ``bytes`` keys, exactly as with the upstream files.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)))
            self.write(data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if obj is _NUMPY_RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


_NUMPY_RECONSTRUCT = np.zeros(1, np.uint8).__reduce__()[0]


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# ---------------------------------------------------------------------------- datasets


def _render_in_chunks(render, rng, labels, chunk, bar) -> np.ndarray:
    parts = []
    for start in range(0, len(labels), chunk):
        part = render(rng, labels[start : start + chunk])
        parts.append(part)
        bar.update(len(part))
    return np.concatenate(parts) if parts else np.zeros((0,), np.uint8)


def _write_idx(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    if name == "mnist":
        templates = _stroke_templates(_rng(seed, name, "templates"))
        render = _render_strokes
    else:
        templates = _blob_templates(_rng(seed, name, "templates"))
        render = _render_blobs
    written = []
    for split, (images_file, labels_file) in IDX_FILES.items():
        n = sizes[split]
        rng = _rng(seed, name, split)
        labels = _balanced_labels(rng, n, 10)
        images = _render_in_chunks(lambda r, lab: render(r, templates, lab), rng, labels, 2000, bar).reshape(
            n, 28, 28
        )
        _gzip_file(ds_dir / images_file, [struct.pack(">IIII", 0x803, n, 28, 28), images.data])
        _gzip_file(ds_dir / labels_file, [struct.pack(">II", 0x801, n), labels.astype(np.uint8)])
        written += [images_file, labels_file]
    return written


def _write_cifar(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    templates = _cifar_templates(_rng(seed, name, "templates"))
    counter = iter(range(1, 10**9))

    def batch(rng, labels, label: str) -> bytes:
        images = _render_in_chunks(lambda r, lab: _render_cifar(r, templates, lab), rng, labels, 2000, bar)
        filenames = [f"synthetic_{CIFAR10_CLASSES[c]}_s_{next(counter):06d}.png" for c in labels]
        return _py2_pickle(
            {
                "batch_label": label,
                "labels": [int(c) for c in labels],
                "data": np.ascontiguousarray(images.reshape(len(labels), 3072)),
                "filenames": filenames,
            }
        )

    def members() -> Iterator[tuple[str, bytes]]:
        yield (
            CIFAR_META,
            _py2_pickle(
                {
                    "num_cases_per_batch": -(-sizes["train"] // 5),
                    "label_names": list(CIFAR10_CLASSES),
                    "num_vis": 3072,
                }
            ),
        )
        rng = _rng(seed, name, "train")
        labels = _balanced_labels(rng, sizes["train"], 10)
        parts = np.array_split(labels, len(CIFAR_TRAIN_BATCHES))
        for i, (member, part) in enumerate(zip(CIFAR_TRAIN_BATCHES, parts, strict=True), start=1):
            yield member, batch(rng, part, f"training batch {i} of {len(parts)}")
        rng = _rng(seed, name, "test")
        labels = _balanced_labels(rng, sizes["test"], 10)
        (test_member,) = CIFAR_TEST_BATCHES
        yield test_member, batch(rng, labels, "testing batch 1 of 1")
        yield (
            "readme.html",
            (b'<meta HTTP-EQUIV="REFRESH" content="0; url=http://www.cs.toronto.edu/~kriz/cifar.html">\n'),
        )

    def tar_info(member: str, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(member)
        info.size, info.mtime, info.uid, info.gid = size, 0, 0, 0
        info.uname = info.gname = "root"
        if member.endswith("/"):
            info.name, info.type, info.mode = member.rstrip("/"), tarfile.DIRTYPE, 0o755
        else:
            info.mode = 0o644
        return info

    with (
        atomic_file(ds_dir / CIFAR_FILE) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(tar_info(CIFAR_FOLDER + "/"))
        for member, data in members():
            tar.addfile(tar_info(f"{CIFAR_FOLDER}/{member}", len(data)), io.BytesIO(data))
    return [CIFAR_FILE]


def _celeba_rows(count: int) -> list[str]:
    return [f"{i:06d}.jpg" for i in range(1, count + 1)]


def _write_celeba(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    splits = list(CELEBA_SPLIT_CODE)
    total = sum(sizes[s] for s in splits)
    files = _celeba_rows(total)
    attrs, partition = [], []
    with atomic_file(ds_dir / CELEBA_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(_zip_info(f"{CELEBA_FOLDER}/"), b"")
        index = 0
        for split in splits:
            rng = _rng(seed, name, split)
            split_attrs = _celeba_attributes(rng, sizes[split])
            attrs.append(split_attrs)
            partition += [CELEBA_SPLIT_CODE[split]] * sizes[split]
            for start in range(0, sizes[split], 32):
                faces = _render_faces(rng, split_attrs[start : start + 32])
                for face in faces:
                    buf = io.BytesIO()
                    Image.fromarray(face.transpose(1, 2, 0)).save(buf, "JPEG", quality=90)
                    zf.writestr(_zip_info(f"{CELEBA_FOLDER}/{files[index]}"), buf.getvalue())
                    index += 1
                bar.update(len(faces))
    all_attrs = np.concatenate(attrs)
    lines = [str(total), " ".join(CELEBA_ATTRIBUTES)]
    lines += [f + "".join(f" {v:>2d}" for v in row) for f, row in zip(files, all_attrs.tolist(), strict=True)]
    atomic_write_bytes(ds_dir / CELEBA_ATTR, ("\n".join(lines) + "\n").encode())
    rows = [f"{f} {p}" for f, p in zip(files, partition, strict=True)]
    atomic_write_bytes(ds_dir / CELEBA_PARTITION, ("\n".join(rows) + "\n").encode())
    return [CELEBA_ZIP, CELEBA_ATTR, CELEBA_PARTITION]


def write_celeba_torchvision_extras(folder: Path) -> None:
    """Write the three other files torchvision's ``CelebA`` loads next to the sample ones.

    ``identity_CelebA.txt``, ``list_bbox_celeba.txt`` and
    ``list_landmarks_align_celeba.txt`` (each with upstream's header lines), one row per
    image of ``folder/list_eval_partition.txt`` in the same order, with plausible values.
    """
    folder = Path(folder)
    names = [line.split()[0] for line in (folder / CELEBA_PARTITION).read_text().splitlines() if line.strip()]
    identity = [f"{f} {1 + i // 20}" for i, f in enumerate(names)]
    bbox = [str(len(names)), "image_id x_1 y_1 width height"]
    bbox += [f"{f} {95 + i % 7:>5d} {71 + i % 5:>3d} {226:>3d} {313:>3d}" for i, f in enumerate(names)]
    landmarks = [
        str(len(names)),
        "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
        "leftmouth_x leftmouth_y rightmouth_x rightmouth_y",
    ]
    landmarks += [
        f"{f} {70:>4d} {108:>4d} {108:>4d} {108:>4d} {89:>4d} {128:>4d} "
        f"{72:>4d} {150:>4d} {106:>4d} {150:>4d}"
        for f in names
    ]
    for file, lines in (
        ("identity_CelebA.txt", identity),
        ("list_bbox_celeba.txt", bbox),
        ("list_landmarks_align_celeba.txt", landmarks),
    ):
        atomic_write_bytes(folder / file, ("\n".join(lines) + "\n").encode())


def _png(image: np.ndarray, rgba: bool) -> bytes:
    """Encode a ``3×H×W`` uint8 image as PNG, with an opaque alpha channel if ``rgba``."""
    hwc = image.transpose(1, 2, 0)
    if rgba:
        hwc = np.concatenate([hwc, np.full((*hwc.shape[:2], 1), 255, np.uint8)], axis=2)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc), "RGBA" if rgba else "RGB").save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _add_folder_images(zf: zipfile.ZipFile, root: str, classes, n: int, rng, bar, file_name, rgb_share):
    """Add ``<root><class>/<file>.png`` members; ``classes`` maps class folder to renderer."""
    if root:
        zf.writestr(_zip_info(root), b"")
    for (folder, render), count in zip(classes.items(), _class_counts(n, len(classes)), strict=True):
        zf.writestr(_zip_info(f"{root}{folder}/"), b"")
        for start in range(0, count, 8):
            images = render(rng, min(8, count - start))
            rgb = rng.random(len(images)) < rgb_share
            for k, image in enumerate(images):
                member = f"{root}{folder}/{file_name(folder, start + k)}"
                zf.writestr(_zip_info(member), _png(image, rgba=not rgb[k]))
            bar.update(len(images))


def _write_folder_zip(path: Path, root: str, classes, n: int, rng, bar, file_name, rgb_share):
    """A zip holding one ImageFolder tree (see :func:`_add_folder_images`)."""
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        _add_folder_images(zf, root, classes, n, rng, bar, file_name, rgb_share)


def _write_horse_or_human(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    classes = {"horses": _render_horses, "humans": _render_humans}

    def file_name(folder: str, i: int) -> str:
        if folder == "horses":
            return f"horse{i // 10 + 1:02d}-{i % 10}.png"
        return f"human{i // 100 + 1:02d}-{i % 100:02d}.png"

    files = [f.name for f in SOURCES[name].files]  # the training zip, then the validation one
    for split, file in zip(("train", "valid"), files, strict=True):
        rng = _rng(seed, name, split)
        _write_folder_zip(ds_dir / file, "", classes, sizes[split], rng, bar, file_name, 0.15)
    return files


def _write_rps(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    classes = {
        "paper": lambda rng, n: _render_hands(rng, n, 5),
        "rock": lambda rng, n: _render_hands(rng, n, 0),
        "scissors": lambda rng, n: _render_hands(rng, n, 2),
    }
    files = [f.name for f in SOURCES[name].files]  # the training zip, then the test one
    # Each zip holds one folder named after it (rps.zip: rps/<class>/…).
    for split, file, prefix in zip(("train", "test"), files, ("", "test"), strict=True):
        root = file.removesuffix(".zip") + "/"

        def file_name(folder: str, i: int, prefix=prefix) -> str:
            return f"{prefix}{folder}{i // 100 + 1:02d}-{i % 100:03d}.png"

        rng = _rng(seed, name, split)
        _write_folder_zip(ds_dir / file, root, classes, sizes[split], rng, bar, file_name, 0.0)
    return files


def _write_sea(ds_dir: Path, name: str, sizes, seed: int, bar) -> list[str]:
    """A user-style ImageFolder zip: ``train/<class>/…`` and ``test/<class>/…`` in one archive."""
    kinds = ("crab", "fish", "jellyfish", "octopus", "starfish")
    classes = {kind: (lambda rng, n, kind=kind: _render_sea(rng, n, kind)) for kind in kinds}
    path = ds_dir / LOCAL_SETS[name]
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for split in ("train", "test"):
            rng = _rng(seed, name, split)
            _add_folder_images(
                zf,
                f"{split}/",
                classes,
                sizes[split],
                rng,
                bar,
                lambda folder, i: f"{folder}_{i:03d}.png",
                rgb_share=1.0,
            )
    return [LOCAL_SETS[name]]


_WRITERS = {
    "mnist": _write_idx,
    "fashion_mnist": _write_idx,
    "cifar10": _write_cifar,
    "celeba": _write_celeba,
    "horse_or_human": _write_horse_or_human,
    "rps": _write_rps,
    "sea": _write_sea,
}


# ---------------------------------------------------------------------------- MD5SUMS


def _read_md5sums(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        return parse_md5sums(path.read_text())
    except BadMd5Line as exc:
        raise DataFormatError(
            f"{path}:{exc.number}: not an md5sum line ({exc.line[:60]!r}); delete {path} and "
            "regenerate the whole sample mirror"
        ) from None


# ---------------------------------------------------------------------------- entry point


def write_sample_mirror(
    out: Path,
    sizes: Mapping[str, Mapping[str, int]] | None = None,
    datasets: Sequence[str] | None = None,
    seed: int = 0,
    log: Log = print,
) -> Path:
    """Write the sample mirror (all datasets or the named ones) under out; returns out.

    ``sizes`` overrides :data:`DEFAULT_SIZES` per dataset and split (e.g.
    ``{"cifar10": {"train": 50000, "test": 10000}}``); ``seed`` selects another, equally
    deterministic, draw. Each file is written atomically and ``out/MD5SUMS`` last; when
    only some datasets are regenerated the existing MD5SUMS lines of the others are kept.
    Unknown datasets, splits or bad counts raise :class:`~cnnpipe.errors.ParamError`.
    """
    out = Path(out)
    names = list(DEFAULT_SIZES) if datasets is None else list(dict.fromkeys(datasets))
    for ds in names:
        if ds not in DEFAULT_SIZES or (ds not in SOURCES and ds not in LOCAL_SETS):
            raise ParamError(
                f"no sample generator for dataset {ds!r}: choose among {', '.join(DEFAULT_SIZES)}"
            )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParamError(f"sample seed {seed!r}: expected a whole number >= 0")
    resolved = _resolve_sizes(sizes, names)

    sums = {} if datasets is None else _read_md5sums(out / MD5SUMS)
    sums = {k: v for k, v in sums.items() if k.split("/", 1)[0] not in names}
    for ds in names:
        ds_dir = out / ds
        ds_dir.mkdir(parents=True, exist_ok=True)
        split_sizes = resolved[ds]
        with tqdm(total=sum(split_sizes.values()), desc=f"sample {ds}", unit="img") as bar:
            files = _WRITERS[ds](ds_dir, ds, split_sizes, int(seed), bar)
        expected = [LOCAL_SETS[ds]] if ds in LOCAL_SETS else [f.name for f in SOURCES[ds].files]
        assert sorted(files) == sorted(expected), (ds, files, expected)
        total = 0
        for file in files:
            sums[f"{ds}/{file}"] = file_md5(ds_dir / file)
            total += (ds_dir / file).stat().st_size
        counts = ", ".join(f"{split} {n}" for split, n in split_sizes.items())
        log(f"sample {ds}: {counts} images, {len(files)} files, {total / 1e6:.1f} MB")
    write_md5sums(out / MD5SUMS, sums)
    log(f"sample mirror written to {out} ({len(sums)} files listed in {MD5SUMS})")
    return out
