"""Geometric ops: flips, crops, resize, rotation/affine and perspective warps, batched per sample.

Rotation, affine, random_resized_crop build one inverse matrix per sample and resample the
batch with ``affine_grid`` + ``grid_sample``; perspective solves one homography per sample and
samples a projective grid; random_crop gathers per-sample windows by index (exact pixels, no
interpolation); resize and center_crop are deterministic and give the same result as
``torchvision.transforms.v2.functional.resize`` / ``center_crop`` on float input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnpipe.errors import ParamError
from cnnpipe.transforms.containers import _Op, _per_sample, _rand, as_float_images

_PADDING_MODES = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}


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
    if projective:
        grid = _homography_grid(theta, oh, ow)
    else:
        grid = F.affine_grid(theta[:, :2], [n, c, oh, ow], align_corners=False)
    use_fill = fill is not None and any(v != 0 for v in fill)
    src = torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if use_fill else x
    out = F.grid_sample(src, grid, mode=mode, padding_mode="zeros", align_corners=False)
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


# --------------------------------------------------------------------------- ops


class _Flip(_Op):
    def __init__(self, key: str, *, dim: int, p: float):
        super().__init__(key)
        self.dim, self.p = dim, p

    def __call__(self, x, g):
        rows = (_rand(g, x.shape[0]) < self.p).nonzero().squeeze(1).to(x.device)
        # only the drawn samples are flipped: half the work of selecting between two whole batches
        return x.clone().index_copy_(0, rows, x.index_select(0, rows).flip(self.dim))

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

    def inverses(self, g: torch.Generator | None, n: int, h: int, w: int) -> Tensor:
        """Draw the ``n`` samples' matrices: N×3×3 float64, output pixel → input pixel."""
        u = _rand(g, n, 6)

        def between(col: int, lo: float, hi: float) -> Tensor:
            return lo + (hi - lo) * u[:, col]

        angle = self.sign * between(0, *self.degrees)
        tx = between(1, -self.translate[0] * w, self.translate[0] * w)
        ty = between(2, -self.translate[1] * h, self.translate[1] * h)
        scale = between(3, *self.scale)
        shx, shy = between(4, *self.shear[0]), between(5, *self.shear[1])
        return _affine_inverse(h, w, angle, tx, ty, scale, shx, shy)

    def __call__(self, x, g):
        n, _, h, w = x.shape
        inv = self.inverses(g, n, h, w)
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

    def boxes(self, g: torch.Generator | None, n: int, h: int, w: int) -> list[tuple[int, int, int, int]]:
        """Per-sample crop boxes (top, left, height, width) in whole pixels: torchvision's
        ``RandomResizedCrop.get_params``, vectorized over its ten tries.

        Ten candidate (area, aspect) draws per sample; the first whose rounded box fits is used,
        at a uniformly drawn offset, else a centred crop of the whole image clamped to the ratio
        range.
        """
        tries = 10
        u = _rand(g, n, tries, 4)
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[..., 0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
        bw, bh = torch.sqrt(area * aspect).round(), torch.sqrt(area / aspect).round()
        fits = (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h)
        first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting try (0 if none)

        def pick(t: Tensor) -> Tensor:
            return t.gather(1, first).squeeze(1)

        bw, bh = pick(bw), pick(bh)
        top = (pick(u[..., 3]) * (h - bh + 1)).floor().clamp(max=h - bh)
        left = (pick(u[..., 2]) * (w - bw + 1)).floor().clamp(max=w - bw)
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, round(w / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fw, fh = round(h * self.ratio[1]), h
        else:
            fw, fh = w, h
        ok = fits.any(dim=1)
        box = torch.stack(
            [
                torch.where(ok, top, float((h - fh) // 2)),
                torch.where(ok, left, float((w - fw) // 2)),
                torch.where(ok, bh, float(fh)),
                torch.where(ok, bw, float(fw)),
            ],
            dim=1,
        )
        return [tuple(b) for b in box.long().tolist()]

    def __call__(self, x, g):
        n, c, h, w = x.shape
        out = torch.empty((n, c, *self.size), dtype=torch.float32, device=x.device)
        for i, (top, left, bh, bw) in enumerate(self.boxes(g, n, h, w)):
            crop = as_float_images(x[i : i + 1, :, top : top + bh, left : left + bw])
            out[i : i + 1] = _resize(crop, self.size, self.mode, self.antialias)
        return out

    # Each crop is converted to float on its own: the same result as converting the whole image
    # first, with a fraction of the pixels to convert.
    def keeps_uint8(self) -> bool:
        return True


class _WarpedResizedCrop(_Op):
    """rotation or affine, then random_resized_crop: each sample is warped over its crop box only.

    The same draws, in the same order, and the same pixels (up to float rounding of the sampling
    grid) as warping the whole image and then cropping it, since every warped pixel depends on
    its own position alone; horses_cnn_aug's 300 px rotation before its crop costs a third as
    much. :func:`fuse_warps` puts it in place of the pair.
    """

    def __init__(self, warp: _Affine, crop: _RandomResizedCrop):
        super().__init__(warp.key)
        self.warp, self.crop = warp, crop

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.warp.key, self.crop.key)

    def output_size(self, hw):
        return self.crop.output_size(self.warp.output_size(hw))

    def __call__(self, x, g):
        n, c, h, w = x.shape
        inv = self.warp.inverses(g, n, h, w)
        _check_fill(self.warp.fill, x, self.warp.key)
        out = torch.empty((n, c, *self.crop.size), dtype=torch.float32, device=x.device)
        for i, (top, left, bh, bw) in enumerate(self.crop.boxes(g, n, h, w)):
            box_to_image = torch.tensor([[1, 0, left], [0, 1, top], [0, 0, 1]], dtype=torch.float64)
            warped = _warp(
                as_float_images(x[i : i + 1]), inv[i : i + 1] @ box_to_image, (bh, bw),
                mode=self.warp.mode, fill=self.warp.fill,
            )  # fmt: skip
            out[i : i + 1] = _resize(warped, self.crop.size, self.crop.mode, self.crop.antialias)
        return out

    # Each sample is converted to float on its own, as random_resized_crop converts its crops.
    def keeps_uint8(self) -> bool:
        return True


def fuse_warps(ops: Sequence[_Op]) -> list[_Op]:
    """``ops`` with each rotation/affine that is directly followed by a random_resized_crop
    replaced by one :class:`_WarpedResizedCrop` of the two."""
    fused: list[_Op] = []
    for op in ops:
        if isinstance(op, _RandomResizedCrop) and fused and type(fused[-1]) is _Affine:
            fused[-1] = _WarpedResizedCrop(fused[-1], op)
        else:
            fused.append(op)
    return fused


def _resize(x: Tensor, out_hw: tuple[int, int], mode: str, antialias: bool) -> Tensor:
    """``x`` resized to ``out_hw`` as torchvision's ``resize`` does it on tensors."""
    if mode == "nearest":
        return F.interpolate(x, size=out_hw, mode="nearest")
    return F.interpolate(x, size=out_hw, mode=mode, align_corners=False, antialias=antialias)


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
        if x.dtype == torch.uint8 and x.device.type != "cpu" and self.mode != "nearest":
            # no uint8 kernels off the CPU: resized in float and rounded back, as torchvision does
            resized = _resize(x.float(), out_hw, self.mode, self.antialias)
            return resized.round_().clamp_(0, 255).to(torch.uint8)
        return _resize(x, out_hw, self.mode, self.antialias)

    # uint8 images are resized to uint8, rounded to whole levels, as torchvision's resize does
    # them and PIL does: a fraction of the work, and then a smaller image to convert to float.
    def keeps_uint8(self) -> bool:
        return True


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


def _check_fill(fill: tuple[float, ...], x: Tensor, key: str) -> None:
    if len(fill) not in (1, x.shape[1]):
        raise ParamError(f"{key}.fill: has {len(fill)} values but the images have {x.shape[1]} channels")
