"""Batched image transforms with independent random parameters per sample, run on the training device.

A pipeline is a list of ops from params.yaml, applied in order::

    augment:
      - {op: random_crop, size: [178, 178]}
      - {op: hflip, p: 0.5}
      - {op: resize, size: [64, 64]}

:func:`build_transform` turns such a list into a :class:`BatchTransform`: a callable taking a
uint8 (or float in [0, 1]) ``N×C×H×W`` tensor on any device and returning float32 in [0, 1] on
the same device. Unlike torchvision's v2 transforms, which draw one set of random parameters
per call and so apply the same flip or rotation to a whole batch tensor, every sample here
gets its own draw, and the whole batch is still processed in a handful of tensor operations:

* flips select per sample between the image and its mirror (``torch.where``);
* rotation, affine, random_resized_crop build one inverse matrix per sample and resample
  the batch with ``affine_grid`` + ``grid_sample``; perspective solves one homography per
  sample and samples a projective grid;
* random_crop gathers per-sample windows by index (exact pixels, no interpolation);
* color_jitter applies per-sample factors, in a per-sample random order; hue is shifted
  in HSV space with the same vectorized RGB↔HSV formulas torchvision uses;
* resize and center_crop are deterministic and give the same result as
  ``torchvision.transforms.v2.functional.resize`` / ``center_crop`` on float input.

Ops and their arguments (defaults after ``=``; a "range" is a number d meaning [-d, d] —
[max(0, 1-d), 1+d] for the colour factors — or an explicit ``[min, max]``; a "size" is an
int for a square or ``[height, width]``)::

    hflip               p=0.5
    vflip               p=0.5
    rotation            degrees (range, required), interpolation=bilinear|nearest, fill=0
    affine              degrees=0 (range), translate=[0, 0] (max |shift| as a fraction of
                        width, height), scale=[1, 1], shear=0 (number s: x in [-s, s];
                        [min, max]: x; [xmin, xmax, ymin, ymax]), interpolation, fill
    random_crop         size (required), padding=0 (int, [left/right, top/bottom] or
                        [left, top, right, bottom]), pad_if_needed=false,
                        padding_mode=constant|edge|reflect, fill=0
    random_resized_crop size (required), scale=[0.08, 1], ratio=[3/4, 4/3],
                        interpolation=bilinear|nearest, antialias=true
    resize              size (required; an int sets the smaller edge, keeping the aspect),
                        interpolation=bilinear|bicubic|nearest, antialias=true
    center_crop         size (required; zero-padded when larger than the image)
    color_jitter        brightness=0, contrast=0, saturation=0 (ranges of factors),
                        hue=0 (range within [-0.5, 0.5]); grayscale images skip
                        saturation and hue
    perspective         distortion=0.5 (0–1), p=0.5, interpolation, fill
    random_apply        p=0.5, ops (required): the whole group, for a random subset of samples;
                        the group must keep the image size
    random_choice       ops (required): one of them per sample; p=[1, 1, ...] relative weights;
                        every choice must give the same size

An entry may also be just the op's name (``- hflip``) to take all defaults.

Random parameters are drawn from the ``torch.Generator`` passed to the call (a CPU generator
is the natural choice; one on another device also works), turned into matrices on the CPU
in float64 and moved to the images' device, so a seed gives the same draws whatever the
training device. Image arithmetic is float32.

Conventions that differ from torchvision's defaults, on purpose:

* geometric ops interpolate bilinearly by default (torchvision's RandomRotation and
  RandomAffine default to nearest); set ``interpolation: nearest`` to get that back;
* random parameters are continuous (torchvision rounds crop boxes, translations and
  perspective corners to whole pixels);
* random_resized_crop antialiases by supersampling: the grid is sampled at k× the output
  resolution (k = the largest possible downscale factor, at most 8) and box-averaged, so
  large crops shrunk to a small input do not alias;
* ``fill`` values are in pixel units 0–255, like torchvision's fill on uint8 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnpipe.errors import ParamError

__all__ = ["OPS", "BatchTransform", "as_float_images", "build_transform"]

_REQUIRED = object()
_GRID_MODES = ("bilinear", "nearest")
_RESIZE_MODES = ("bilinear", "bicubic", "nearest")
_PADDING_MODES = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
_MAX_SUPERSAMPLE = 8


# --------------------------------------------------------------------------- random draws


def _rand(g: torch.Generator | None, *shape: int) -> Tensor:
    """Uniform [0, 1) draws from ``g`` (on whatever device it lives), returned as CPU float64."""
    device = g.device if g is not None else torch.device("cpu")
    return torch.rand(shape, generator=g, device=device).to("cpu", torch.float64)


def _per_sample(mask: Tensor, x: Tensor) -> Tensor:
    """A CPU bool vector of length N as an ``N×1×1×1`` mask on ``x``'s device."""
    return mask.to(x.device).view(-1, 1, 1, 1)


def _factors(values: Tensor, x: Tensor) -> Tensor:
    """A CPU vector of per-sample factors as an ``N×1×1×1`` float32 tensor on ``x``'s device."""
    return values.to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- resampling


def _norm_matrix(h: int, w: int) -> Tensor:
    """Map pixel-index coordinates (pixel i at i) to grid_sample's [-1, 1] (align_corners=False)."""
    return torch.tensor(
        [[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )


def _warp(
    x: Tensor,
    inv: Tensor,
    out_hw: tuple[int, int],
    *,
    mode: str,
    fill: tuple[float, ...] | None,
    supersample: int = 1,
    projective: bool = False,
) -> Tensor:
    """Resample ``x`` so output pixel (u, v) reads input point ``inv[n] @ (u, v, 1)``.

    ``inv`` is a CPU ``N×3×3`` matrix in pixel-index coordinates, from output to input.
    Points outside the input read ``fill`` (0–1 units, per channel or one value).
    """
    n, c, h, w = x.shape
    oh, ow = out_hw
    theta = _norm_matrix(h, w) @ inv @ torch.linalg.inv(_norm_matrix(oh, ow))
    theta = theta.to(device=x.device, dtype=torch.float32)
    gh, gw = oh * supersample, ow * supersample
    if projective:
        grid = _homography_grid(theta, gh, gw)
    else:
        # At k× resolution affine_grid's sample points are the centres of a k×k subdivision of
        # each output pixel, so the same theta serves for supersampling.
        grid = F.affine_grid(theta[:, :2], [n, c, gh, gw], align_corners=False)
    use_fill = fill is not None and any(v != 0 for v in fill)
    src = torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if use_fill else x
    out = F.grid_sample(src, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if supersample > 1:
        out = F.avg_pool2d(out, supersample)
    if use_fill:
        out, coverage = out[:, :c], out[:, c:]
        out = out + (1.0 - coverage) * _fill_tensor(fill, c, x)
    return out


def _homography_grid(theta: Tensor, gh: int, gw: int) -> Tensor:
    """Sampling grid for per-sample 3×3 homographies given in normalized coordinates."""
    kw = {"device": theta.device, "dtype": theta.dtype}
    xs = (torch.arange(gw, **kw) * 2 + 1) / gw - 1
    ys = (torch.arange(gh, **kw) * 2 + 1) / gh - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).view(1, gh * gw, 3)
    pts = base @ theta.transpose(1, 2)
    return (pts[..., :2] / pts[..., 2:]).view(-1, gh, gw, 2)


def _fill_tensor(fill: tuple[float, ...], c: int, x: Tensor) -> Tensor:
    return torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).expand(1, c, 1, 1)


def _affine_inverse(
    h: int, w: int, angle: Tensor, tx: Tensor, ty: Tensor, scale: Tensor, shx: Tensor, shy: Tensor
) -> Tensor:
    """Per-sample output→input matrices about the image centre, as torchvision's affine builds them.

    Angles and shears in degrees (positive angle turns the content clockwise on screen),
    translations in pixels; all arguments are CPU float64 vectors of length N.
    """
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shx), torch.deg2rad(shy)
    cx, cy = (w - 1) * 0.5, (h - 1) * 0.5
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m00, m01, m10, m11 = d / scale, -b / scale, -c / scale, a / scale
    m02 = cx - m00 * (cx + tx) - m01 * (cy + ty)
    m12 = cy - m10 * (cx + tx) - m11 * (cy + ty)
    zeros, ones = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([m00, m01, m02, m10, m11, m12, zeros, zeros, ones], dim=-1).view(-1, 3, 3)


def _homographies(src: Tensor, dst: Tensor) -> Tensor:
    """Per-sample 3×3 matrices taking each of the 4 points ``src[n]`` to ``dst[n]`` (both N×4×2)."""
    n = src.shape[0]
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # N×8×8
    coeffs = torch.linalg.solve(a, torch.cat([u, v], dim=1))
    return torch.cat([coeffs, torch.ones(n, 1, dtype=coeffs.dtype)], dim=1).view(n, 3, 3)


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
    hsv = _rgb_to_hsv(x)
    h = (hsv[:, :1] + f).remainder(1.0)
    return _hsv_to_rgb(torch.cat([h, hsv[:, 1:]], dim=1))


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, _ = x.unbind(dim=1)
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    flat = maxc == minc  # grey pixels: hue and saturation are 0, avoid dividing by 0
    delta = maxc - minc
    s = delta / torch.where(flat, torch.ones_like(maxc), maxc)
    divisor = torch.where(flat, torch.ones_like(delta), delta).unsqueeze(1)
    rc, gc, bc = ((maxc.unsqueeze(1) - x) / divisor).unbind(dim=1)
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(flat, torch.zeros_like(h), (h / 6.0 + 1.0).remainder(1.0))
    return torch.stack([h, s, maxc], dim=1)


# For sector i = floor(6h), which of (v, p, q, t) goes to r, g and b.
_HSV_SELECT = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(dim=1)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    vpqt = torch.stack([v, p, q, t], dim=1)
    select = torch.tensor(_HSV_SELECT, dtype=torch.long, device=hsv.device)
    index = select[:, i.long().remainder(6)].movedim(0, 1)  # N×3×H×W
    return vpqt.gather(1, index)


# --------------------------------------------------------------------------- ops


class _Op:
    """One step of a pipeline; ``key`` is its params key, used in error messages."""

    def __init__(self, key: str):
        self.key = key

    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        return hw

    def __call__(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    # Ops that only move pixels (flips, unpadded crops) give the same result on uint8 input,
    # where they touch a quarter of the bytes; leading ones run before the float conversion.
    def keeps_uint8(self) -> bool:
        return False


class _Flip(_Op):
    def __init__(self, key: str, *, dim: int, p: float):
        super().__init__(key)
        self.dim, self.p = dim, p

    def __call__(self, x, g):
        flip = _rand(g, x.shape[0]) < self.p
        return torch.where(_per_sample(flip, x), x.flip(self.dim), x)

    def keeps_uint8(self) -> bool:
        return True


class _Affine(_Op):
    """rotation and affine: one random matrix per sample, resampled at the input size."""

    def __init__(
        self,
        key: str,
        *,
        degrees: tuple[float, float],
        translate: tuple[float, float] = (0.0, 0.0),
        scale: tuple[float, float] = (1.0, 1.0),
        shear: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0)),
        counter_clockwise: bool,
        mode: str,
        fill: tuple[float, ...],
    ):
        super().__init__(key)
        self.degrees, self.translate, self.scale, self.shear = degrees, translate, scale, shear
        self.sign = -1.0 if counter_clockwise else 1.0
        self.mode, self.fill = mode, fill

    def __call__(self, x, g):
        n, _, h, w = x.shape
        u = _rand(g, n, 6)

        def between(col: int, lo: float, hi: float) -> Tensor:
            return lo + (hi - lo) * u[:, col]

        angle = self.sign * between(0, *self.degrees)
        tx = between(1, -self.translate[0] * w, self.translate[0] * w)
        ty = between(2, -self.translate[1] * h, self.translate[1] * h)
        scale = between(3, *self.scale)
        shx, shy = between(4, *self.shear[0]), between(5, *self.shear[1])
        inv = _affine_inverse(h, w, angle, tx, ty, scale, shx, shy)
        _check_fill(self.fill, x, self.key)
        return _warp(x, inv, (h, w), mode=self.mode, fill=self.fill)


class _RandomCrop(_Op):
    def __init__(
        self,
        key: str,
        *,
        size: tuple[int, int],
        padding: tuple[int, int, int, int],
        pad_if_needed: bool,
        padding_mode: str,
        fill: tuple[float, ...],
    ):
        super().__init__(key)
        self.size, self.padding, self.pad_if_needed = size, padding, pad_if_needed
        self.padding_mode, self.fill = padding_mode, fill

    def _padding(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        left, top, right, bottom = self.padding
        h, w = hw[0] + top + bottom, hw[1] + left + right
        if self.pad_if_needed:
            # like torchvision: the shortfall is added on both sides
            if h < self.size[0]:
                top, bottom = top + self.size[0] - h, bottom + self.size[0] - h
            if w < self.size[1]:
                left, right = left + self.size[1] - w, right + self.size[1] - w
        return left, top, right, bottom

    def output_size(self, hw):
        left, top, right, bottom = self._padding(hw)
        h, w = hw[0] + top + bottom, hw[1] + left + right
        if self.size[0] > h or self.size[1] > w:
            raise ParamError(
                f"{self.key}.size: a {self.size[0]}×{self.size[1]} crop does not fit the {h}×{w} "
                "(padded) input; make it smaller, add padding or set pad_if_needed: true"
            )
        return self.size

    def __call__(self, x, g):
        self.output_size(tuple(x.shape[-2:]))
        x = _pad(x, self._padding(tuple(x.shape[-2:])), self.padding_mode, self.fill, self.key)
        n, _, h, w = x.shape
        ch, cw = self.size
        u = _rand(g, n, 2)
        top = (u[:, 0] * (h - ch + 1)).long().clamp_(max=h - ch).to(x.device)
        left = (u[:, 1] * (w - cw + 1)).long().clamp_(max=w - cw).to(x.device)
        rows = top[:, None] + torch.arange(ch, device=x.device)  # N×ch
        cols = left[:, None] + torch.arange(cw, device=x.device)  # N×cw
        # one gather over the flattened pixels: each sample reads its own window
        flat = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, ch * cw).expand(n, x.shape[1], -1)
        return x.reshape(n, x.shape[1], h * w).gather(2, flat).view(n, x.shape[1], ch, cw)

    def keeps_uint8(self) -> bool:
        return not any(self.padding) and not self.pad_if_needed


def _pad(x: Tensor, ltrb: tuple[int, int, int, int], mode: str, fill: tuple[float, ...], key: str) -> Tensor:
    left, top, right, bottom = ltrb
    if not any(ltrb):
        return x
    n, c, h, w = x.shape
    if mode == "constant":
        _check_fill(fill, x, key)
        out = _fill_tensor(fill, c, x).expand(n, c, h + top + bottom, w + left + right).clone()
        out[:, :, top : top + h, left : left + w] = x
        return out
    if mode == "reflect" and (max(left, right) >= w or max(top, bottom) >= h):
        raise ParamError(f"{key}.padding: reflect padding must be smaller than the {h}×{w} input")
    return F.pad(x, (left, right, top, bottom), mode=_PADDING_MODES[mode])


class _RandomResizedCrop(_Op):
    def __init__(
        self,
        key: str,
        *,
        size: tuple[int, int],
        scale: tuple[float, float],
        ratio: tuple[float, float],
        mode: str,
        antialias: bool,
    ):
        super().__init__(key)
        self.size, self.scale, self.ratio, self.mode, self.antialias = size, scale, ratio, mode, antialias

    def output_size(self, hw):
        return self.size

    def _boxes(self, g: torch.Generator | None, n: int, h: int, w: int) -> Tensor:
        """Per-sample crop boxes (x0, y0, width, height), torchvision's sampling scheme, vectorized.

        Ten candidate (area, aspect) draws per sample; the first that fits is used, else a
        centred crop of the whole image clamped to the ratio range.
        """
        tries = 10
        u = _rand(g, n, tries, 4)
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[..., 0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
        bw, bh = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
        fits = (bw <= w) & (bh <= h)
        first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting try (0 if none)

        def pick(t: Tensor) -> Tensor:
            return t.gather(1, first).squeeze(1)

        bw, bh = pick(bw), pick(bh)
        x0, y0 = pick(u[..., 2]) * (w - bw), pick(u[..., 3]) * (h - bh)
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = float(w), w / self.ratio[0]
        elif in_ratio > self.ratio[1]:
            fw, fh = h * self.ratio[1], float(h)
        else:
            fw, fh = float(w), float(h)
        ok = fits.any(dim=1)
        bw, bh = torch.where(ok, bw, fw), torch.where(ok, bh, fh)
        x0, y0 = torch.where(ok, x0, (w - fw) / 2), torch.where(ok, y0, (h - fh) / 2)
        return torch.stack([x0, y0, bw, bh], dim=1)

    def __call__(self, x, g):
        n, _, h, w = x.shape
        oh, ow = self.size
        x0, y0, bw, bh = self._boxes(g, n, h, w).unbind(dim=1)
        sx, sy = bw / ow, bh / oh
        zeros, ones = torch.zeros_like(sx), torch.ones_like(sx)
        # output pixel u covers [u, u+1) of the output, i.e. [x0 + u·sx, x0 + (u+1)·sx) of the
        # input, whose centre is at pixel index x0 + (u + ½)·sx − ½
        inv = torch.stack(
            [sx, zeros, x0 + 0.5 * sx - 0.5, zeros, sy, y0 + 0.5 * sy - 0.5, zeros, zeros, ones], dim=-1
        ).view(n, 3, 3)
        k = 1
        if self.antialias and self.mode != "nearest":
            # largest possible shrink for this input size, so a sample's result does not
            # depend on the other samples in its batch
            k = min(_MAX_SUPERSAMPLE, max(1, math.ceil(max(h / oh, w / ow) - 1e-9)))
        return _warp(x, inv, self.size, mode=self.mode, fill=None, supersample=k)


class _Resize(_Op):
    def __init__(self, key: str, *, size: int | tuple[int, int], mode: str, antialias: bool):
        super().__init__(key)
        self.size, self.mode, self.antialias = size, mode, antialias

    def output_size(self, hw):
        if isinstance(self.size, tuple):
            return self.size
        # torchvision's rule for a single size: the smaller edge becomes `size`
        h, w = hw
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)

    def __call__(self, x, g):
        out_hw = self.output_size(tuple(x.shape[-2:]))
        if out_hw == tuple(x.shape[-2:]):
            return x
        if self.mode == "nearest":
            return F.interpolate(x, size=out_hw, mode="nearest")
        return F.interpolate(x, size=out_hw, mode=self.mode, align_corners=False, antialias=self.antialias)


class _CenterCrop(_Op):
    def __init__(self, key: str, *, size: tuple[int, int]):
        super().__init__(key)
        self.size = size

    def output_size(self, hw):
        return self.size

    def keeps_uint8(self) -> bool:
        return True

    def __call__(self, x, g):
        ch, cw = self.size
        h, w = x.shape[-2:]
        if ch > h or cw > w:
            # torchvision pads a too-small image with zeros, the extra pixel (odd shortfall) going
            # to the right / bottom
            pad_l, pad_t = (cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0
            pad_r, pad_b = (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0
            x = F.pad(x, (pad_l, pad_r, pad_t, pad_b), value=0.0)
            h, w = x.shape[-2:]
        top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
        return x[..., top : top + ch, left : left + cw]


class _ColorJitter(_Op):
    """Per-sample brightness, contrast, saturation and hue factors, applied in a per-sample random
    order like torchvision's ColorJitter. Each step evaluates every enabled adjustment on the
    whole batch and keeps, per sample, the one that sample's order puts there (no per-sample
    loop; costs m² adjustments for m enabled ones)."""

    _FUNCS = (_brightness, _contrast, _saturation, _hue)

    def __init__(self, key: str, *, ranges: tuple[tuple[float, float] | None, ...]):
        super().__init__(key)
        self.ranges = ranges  # brightness, contrast, saturation, hue; None = off

    def __call__(self, x, g):
        n, c = x.shape[:2]
        if c not in (1, 3):
            raise ParamError(f"{self.key}: color_jitter needs 1- or 3-channel images, got {c} channels")
        u = _rand(g, n, 4)
        order_keys = _rand(g, n, 4)
        # grayscale images have no saturation or hue to change
        active = [i for i, r in enumerate(self.ranges) if r is not None and (c == 3 or i < 2)]
        if not active:
            return x
        factors = {}
        for i in active:
            lo, hi = self.ranges[i]
            factors[i] = _factors(lo + (hi - lo) * u[:, i], x)
        order = order_keys[:, active].argsort(dim=1).to(x.device)  # N×m: position → index into active
        for step in range(len(active)):
            out = x
            for j, i in enumerate(active):
                chosen = (order[:, step] == j).view(-1, 1, 1, 1)
                out = torch.where(chosen, self._FUNCS[i](x, factors[i]), out)
            x = out
        return x


class _Perspective(_Op):
    def __init__(self, key: str, *, distortion: float, p: float, mode: str, fill: tuple[float, ...]):
        super().__init__(key)
        self.distortion, self.p, self.mode, self.fill = distortion, p, mode, fill

    def __call__(self, x, g):
        n, _, h, w = x.shape
        u = _rand(g, n, 9)
        # torchvision's scheme: each corner moves inwards by up to distortion × half the size
        dx, dy = self.distortion * (w // 2) * u[:, 0:4], self.distortion * (h // 2) * u[:, 4:8]
        right, bottom = w - 1.0, h - 1.0
        start = torch.tensor([[0.0, 0.0], [right, 0.0], [right, bottom], [0.0, bottom]], dtype=torch.float64)
        sign = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=torch.float64)
        end = start + sign * torch.stack([dx, dy], dim=-1)  # N×4×2
        inv = _homographies(end, start.expand(n, 4, 2))  # output corners → input corners
        _check_fill(self.fill, x, self.key)
        warped = _warp(x, inv, (h, w), mode=self.mode, fill=self.fill, projective=True)
        return torch.where(_per_sample(u[:, 8] < self.p, x), warped, x)


class _Pipeline(_Op):
    def __init__(self, key: str, ops: Sequence[_Op]):
        super().__init__(key)
        self.ops = tuple(ops)

    def output_size(self, hw):
        for op in self.ops:
            hw = op.output_size(hw)
        return hw

    def __call__(self, x, g):
        for op in self.ops:
            x = op(x, g)
        return x


class _RandomApply(_Op):
    def __init__(self, key: str, *, p: float, ops: _Pipeline):
        super().__init__(key)
        self.p, self.ops = p, ops

    def output_size(self, hw):
        out = self.ops.output_size(hw)
        if out != hw:
            raise ParamError(
                f"{self.key}.ops: must keep the image size, but turn {hw[0]}×{hw[1]} into {out[0]}×{out[1]}"
            )
        return hw

    def __call__(self, x, g):
        self.output_size(tuple(x.shape[-2:]))
        y = self.ops(x, g)
        return torch.where(_per_sample(_rand(g, x.shape[0]) < self.p, x), y, x)


class _RandomChoice(_Op):
    def __init__(self, key: str, *, ops: Sequence[_Op], weights: tuple[float, ...]):
        super().__init__(key)
        self.ops = tuple(ops)
        total = sum(weights)
        self.cumulative = torch.tensor(weights, dtype=torch.float64).cumsum(0) / total

    def output_size(self, hw):
        sizes = [op.output_size(hw) for op in self.ops]
        if len(set(sizes)) > 1:
            listed = ", ".join(f"{h}×{w}" for h, w in sizes)
            raise ParamError(f"{self.key}.ops: every choice must give the same image size, got {listed}")
        return sizes[0]

    def __call__(self, x, g):
        self.output_size(tuple(x.shape[-2:]))
        outs = [op(x, g) for op in self.ops]
        pick = torch.searchsorted(self.cumulative, _rand(g, x.shape[0]), right=True)
        pick = pick.clamp_(max=len(outs) - 1).to(x.device).view(-1, 1, 1, 1)
        out = outs[0]
        for i, y in enumerate(outs[1:], start=1):
            out = torch.where(pick == i, y, out)
        return out


def _check_fill(fill: tuple[float, ...], x: Tensor, key: str) -> None:
    if len(fill) not in (1, x.shape[1]):
        raise ParamError(f"{key}.fill: has {len(fill)} values but the images have {x.shape[1]} channels")


# --------------------------------------------------------------------------- params parsing


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_list(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes))


def _bounds(lo: float, hi: float, open_lo: bool = False) -> str:
    if math.isinf(hi):
        return f"with min {'>' if open_lo else '≥'} {lo:g}"
    return f"within {'(' if open_lo else '['}{lo:g}, {hi:g}]"


class _Args:
    """Typed, validated access to one op entry; every error names the full params key."""

    def __init__(self, entry: Mapping[str, Any], key: str, op: str, allowed: Sequence[str]):
        self.entry, self.key, self.op = entry, key, op
        for name in entry:
            if name != "op" and name not in allowed:
                valid = ", ".join(allowed) if allowed else "none"
                raise ParamError(f"{key}.{name}: not an argument of op {op!r} (valid: {valid})")

    def _value(self, name: str, default: Any) -> Any:
        if name in self.entry:
            return self.entry[name]
        if default is _REQUIRED:
            raise ParamError(f"{self.key}.{name}: required by op {self.op!r}")
        return default

    def _bad(self, name: str, what: str) -> ParamError:
        return ParamError(f"{self.key}.{name}: must be {what}, got {self.entry[name]!r}")

    def number(self, name: str, default: Any, *, lo: float, hi: float | None = None) -> float:
        v = self._value(name, default)
        if not _is_number(v) or v < lo or (hi is not None and v > hi):
            what = f"a number ≥ {lo:g}" if hi is None else f"a number in [{lo:g}, {hi:g}]"
            raise self._bad(name, what)
        return float(v)

    def prob(self, name: str, default: Any = 0.5) -> float:
        v = self._value(name, default)
        if not _is_number(v) or not 0 <= v <= 1:
            raise self._bad(name, "a probability in [0, 1]")
        return float(v)

    def size(self, name: str, *, smaller_edge: bool = False) -> int | tuple[int, int]:
        v = self._value(name, _REQUIRED)
        if _is_int(v) and v > 0:
            return int(v) if smaller_edge else (int(v), int(v))
        if _is_list(v) and len(v) == 2 and all(_is_int(s) and s > 0 for s in v):
            return int(v[0]), int(v[1])
        first = "a positive integer (the smaller edge)" if smaller_edge else "a positive integer"
        raise self._bad(name, f"{first} or [height, width]")

    def pair(
        self, name: str, default: Any, *, lo: float, hi: float, open_lo: bool = False
    ) -> tuple[float, float]:
        """``[min, max]`` with ``lo ≤ min ≤ max ≤ hi`` (``lo < min`` when ``open_lo``)."""
        v = self._value(name, default)
        if _is_list(v) and len(v) == 2 and all(map(_is_number, v)):
            a, b = float(v[0]), float(v[1])
            if (a > lo if open_lo else a >= lo) and a <= b <= hi:
                return a, b
        raise self._bad(name, f"a [min, max] pair {_bounds(lo, hi, open_lo)}")

    def spread(
        self, name: str, default: Any, *, center: float, lo: float, hi: float, max_spread: float | None = None
    ) -> tuple[float, float] | None:
        """A number d ≥ 0 meaning ``[center − d, center + d]`` (clipped to ``lo``), or ``[min, max]``
        within ``[lo, hi]``. Returns None when the range is the single point ``center`` (op off)."""
        v = self._value(name, default)
        first = "a number ≥ 0" if max_spread is None else f"a number in [0, {max_spread:g}]"
        what = f"{first} or a [min, max] pair {_bounds(lo, hi)}"
        if _is_number(v):
            if v < 0 or (max_spread is not None and v > max_spread):
                raise self._bad(name, what)
            rng = (max(lo, center - float(v)), min(hi, center + float(v)))
        elif _is_list(v) and len(v) == 2 and all(map(_is_number, v)):
            rng = (float(v[0]), float(v[1]))
            if not lo <= rng[0] <= rng[1] <= hi:
                raise self._bad(name, what)
        else:
            raise self._bad(name, what)
        return None if rng == (center, center) else rng

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        v = self._value(name, default)
        if v not in choices:
            raise self._bad(name, "one of " + ", ".join(choices))
        return v

    def flag(self, name: str, default: bool) -> bool:
        v = self._value(name, default)
        if not isinstance(v, bool):
            raise self._bad(name, "true or false")
        return v

    def fill(self, name: str = "fill") -> tuple[float, ...]:
        v = self._value(name, 0)
        values = list(v) if _is_list(v) else [v]
        if not values or not all(_is_number(f) and 0 <= f <= 255 for f in values):
            raise self._bad(name, "a pixel value in [0, 255] or a list of one per channel")
        return tuple(float(f) / 255.0 for f in values)

    def padding(self, name: str) -> tuple[int, int, int, int]:
        v = self._value(name, 0)
        values = list(v) if _is_list(v) else [v]
        if len(values) in (1, 2, 4) and all(_is_int(p) and p >= 0 for p in values):
            if len(values) == 1:
                return (values[0],) * 4
            if len(values) == 2:
                return values[0], values[1], values[0], values[1]
            return tuple(values)
        raise self._bad(name, "an integer ≥ 0, [left/right, top/bottom] or [left, top, right, bottom]")

    def shear(self, name: str) -> tuple[tuple[float, float], tuple[float, float]]:
        v = self._value(name, 0)
        what = "a number in [0, 89], [min, max] or [x_min, x_max, y_min, y_max] degrees within [-89, 89]"
        if _is_number(v):
            if not 0 <= v <= 89:
                raise self._bad(name, what)
            return (-float(v), float(v)), (0.0, 0.0)
        if _is_list(v) and len(v) in (2, 4) and all(map(_is_number, v)):
            vals = [float(s) for s in v] + [0.0, 0.0][: 4 - len(v)]
            if all(-89 <= s <= 89 for s in vals) and vals[0] <= vals[1] and vals[2] <= vals[3]:
                return (vals[0], vals[1]), (vals[2], vals[3])
        raise self._bad(name, what)

    def weights(self, name: str, n: int) -> tuple[float, ...]:
        v = self._value(name, [1.0] * n)
        if _is_list(v) and len(v) == n and all(_is_number(w) and w >= 0 for w in v) and sum(v) > 0:
            return tuple(float(w) for w in v)
        raise self._bad(name, f"a list of {n} weights ≥ 0, one per op, not all 0")

    def ops(self, name: str = "ops") -> list[_Op]:
        v = self._value(name, _REQUIRED)
        ops = _parse_list(v, f"{self.key}.{name}")
        if not ops:
            raise self._bad(name, "a non-empty list of ops")
        return ops


OpFactory = Callable[[_Args], _Op]
_FACTORIES: dict[str, tuple[tuple[str, ...], OpFactory]] = {}


def _op(name: str, *args: str) -> Callable[[OpFactory], OpFactory]:
    def register(factory: OpFactory) -> OpFactory:
        _FACTORIES[name] = (args, factory)
        return factory

    return register


@_op("hflip", "p")
def _make_hflip(a: _Args) -> _Op:
    return _Flip(a.key, dim=-1, p=a.prob("p"))


@_op("vflip", "p")
def _make_vflip(a: _Args) -> _Op:
    return _Flip(a.key, dim=-2, p=a.prob("p"))


@_op("rotation", "degrees", "interpolation", "fill")
def _make_rotation(a: _Args) -> _Op:
    degrees = a.spread("degrees", _REQUIRED, center=0.0, lo=-360.0, hi=360.0) or (0.0, 0.0)
    return _Affine(
        a.key,
        degrees=degrees,
        counter_clockwise=True,
        mode=a.choice("interpolation", "bilinear", _GRID_MODES),
        fill=a.fill(),
    )


@_op("affine", "degrees", "translate", "scale", "shear", "interpolation", "fill")
def _make_affine(a: _Args) -> _Op:
    return _Affine(
        a.key,
        degrees=a.spread("degrees", 0, center=0.0, lo=-360.0, hi=360.0) or (0.0, 0.0),
        translate=a.pair("translate", [0, 0], lo=0.0, hi=1.0),
        scale=a.pair("scale", [1, 1], lo=0.0, hi=math.inf, open_lo=True),
        shear=a.shear("shear"),
        counter_clockwise=False,
        mode=a.choice("interpolation", "bilinear", _GRID_MODES),
        fill=a.fill(),
    )


@_op("random_crop", "size", "padding", "pad_if_needed", "padding_mode", "fill")
def _make_random_crop(a: _Args) -> _Op:
    return _RandomCrop(
        a.key,
        size=a.size("size"),
        padding=a.padding("padding"),
        pad_if_needed=a.flag("pad_if_needed", False),
        padding_mode=a.choice("padding_mode", "constant", tuple(_PADDING_MODES)),
        fill=a.fill(),
    )


@_op("random_resized_crop", "size", "scale", "ratio", "interpolation", "antialias")
def _make_random_resized_crop(a: _Args) -> _Op:
    return _RandomResizedCrop(
        a.key,
        size=a.size("size"),
        scale=a.pair("scale", [0.08, 1.0], lo=0.0, hi=1.0, open_lo=True),
        ratio=a.pair("ratio", [3 / 4, 4 / 3], lo=0.0, hi=math.inf, open_lo=True),
        mode=a.choice("interpolation", "bilinear", _GRID_MODES),
        antialias=a.flag("antialias", True),
    )


@_op("resize", "size", "interpolation", "antialias")
def _make_resize(a: _Args) -> _Op:
    return _Resize(
        a.key,
        size=a.size("size", smaller_edge=True),
        mode=a.choice("interpolation", "bilinear", _RESIZE_MODES),
        antialias=a.flag("antialias", True),
    )


@_op("center_crop", "size")
def _make_center_crop(a: _Args) -> _Op:
    return _CenterCrop(a.key, size=a.size("size"))


@_op("color_jitter", "brightness", "contrast", "saturation", "hue")
def _make_color_jitter(a: _Args) -> _Op:
    ranges = (
        a.spread("brightness", 0, center=1.0, lo=0.0, hi=math.inf),
        a.spread("contrast", 0, center=1.0, lo=0.0, hi=math.inf),
        a.spread("saturation", 0, center=1.0, lo=0.0, hi=math.inf),
        a.spread("hue", 0, center=0.0, lo=-0.5, hi=0.5, max_spread=0.5),
    )
    return _ColorJitter(a.key, ranges=ranges)


@_op("perspective", "distortion", "p", "interpolation", "fill")
def _make_perspective(a: _Args) -> _Op:
    return _Perspective(
        a.key,
        distortion=a.number("distortion", 0.5, lo=0.0, hi=1.0),
        p=a.prob("p"),
        mode=a.choice("interpolation", "bilinear", _GRID_MODES),
        fill=a.fill(),
    )


@_op("random_apply", "p", "ops")
def _make_random_apply(a: _Args) -> _Op:
    return _RandomApply(a.key, p=a.prob("p"), ops=_Pipeline(f"{a.key}.ops", a.ops()))


@_op("random_choice", "ops", "p")
def _make_random_choice(a: _Args) -> _Op:
    ops = a.ops()
    return _RandomChoice(a.key, ops=ops, weights=a.weights("p", len(ops)))


OPS: tuple[str, ...] = tuple(sorted(_FACTORIES))
"""Every op name a pipeline may use."""


def _parse_op(entry: Any, key: str) -> _Op:
    if isinstance(entry, str):
        entry = {"op": entry}
    if not isinstance(entry, Mapping):
        raise ParamError(f"{key}: must be a mapping like {{op: hflip, p: 0.5}}, got {entry!r}")
    if "op" not in entry:
        raise ParamError(f"{key}.op: missing; each entry names its op, one of: {', '.join(OPS)}")
    name = entry["op"]
    if name not in _FACTORIES:
        raise ParamError(f"{key}.op: unknown op {name!r}; valid ops: {', '.join(OPS)}")
    allowed, factory = _FACTORIES[name]
    return factory(_Args(entry, key, name, allowed))


def _parse_list(spec: Any, key: str) -> list[_Op]:
    if spec is None:
        return []
    if isinstance(spec, (str, bytes, Mapping)) or not isinstance(spec, Sequence):
        raise ParamError(f"{key}: must be a list of ops like [{{op: hflip, p: 0.5}}], got {spec!r}")
    return [_parse_op(entry, f"{key}[{i}]") for i, entry in enumerate(spec)]


# --------------------------------------------------------------------------- public API


def as_float_images(images: Tensor) -> Tensor:
    """uint8 images (0–255) as float32 in [0, 1]; float images as float32, values unchanged."""
    if not isinstance(images, Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")


class BatchTransform:
    """A pipeline of image ops applied to whole batches, with independent random draws per sample.

    Call it as ``transform(images, generator)``: ``images`` is a uint8 tensor (0–255) or a
    float tensor in [0, 1], shaped ``N×C×H×W`` (or one ``C×H×W`` image), on any device; the
    result is float32 in [0, 1] on the same device, shaped ``N×C×H'×W'`` with
    ``(H', W') == transform.output_size((H, W))``. ``generator`` (``None``: torch's default
    CPU generator) supplies every random draw, so a seeded generator reproduces a batch.
    The input tensor is never modified.
    """

    def __init__(self, ops: Sequence[_Op], key: str):
        self._pipeline = _Pipeline(key, ops)
        self.key = key

    @property
    def ops(self) -> tuple[str, ...]:
        """Params keys of the top-level ops, in order (for logs)."""
        return tuple(op.key for op in self._pipeline.ops)

    def output_size(self, input_hw: Sequence[int]) -> tuple[int, int]:
        """Height and width of the output for inputs of ``input_hw``.

        Raises ParamError, naming the op's key, when an op cannot take that size (a crop
        larger than its input, choices of different sizes, ...).
        """
        h, w = self._pipeline.output_size((int(input_hw[0]), int(input_hw[1])))
        return int(h), int(w)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Apply the pipeline to a batch; see the class docstring."""
        single = images.ndim == 3
        if single:
            images = images.unsqueeze(0)
        if images.ndim != 4:
            raise ValueError(f"expected images shaped N×C×H×W or C×H×W, got {tuple(images.shape)}")
        oh, ow = self.output_size(images.shape[-2:])
        if images.shape[0] == 0:
            return torch.zeros((0, images.shape[1], oh, ow), device=images.device)
        ops = self._pipeline.ops
        lead = 0
        if images.dtype == torch.uint8:
            while lead < len(ops) and ops[lead].keeps_uint8():
                lead += 1
        x = images
        for op in ops[:lead]:
            x = op(x, generator)
        x = as_float_images(x)
        for op in ops[lead:]:
            x = op(x, generator)
        # bicubic resizing can overshoot; clamp out of place so a float input is never modified
        x = x.clamp(0.0, 1.0)
        return x[0] if single else x

    def __len__(self) -> int:
        return len(self._pipeline.ops)

    def __repr__(self) -> str:
        return f"BatchTransform({self.key!r}, {len(self)} ops)"


def build_transform(spec: Sequence[Mapping[str, Any]] | None, *, key: str) -> BatchTransform:
    """Build a :class:`BatchTransform` from a params list of ops (``None`` or ``[]``: identity).

    ``key`` is the params key the list came from (e.g. ``"models.horses_aug.augment"``);
    invalid entries raise ParamError naming the exact element, e.g.
    ``models.horses_aug.augment[1].degrees: must be a number ≥ 0 ..., got 'lots'``.
    The ops and their arguments are listed in this module's docstring.
    """
    return BatchTransform(_parse_list(spec, key), key)
