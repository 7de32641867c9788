"""Params lists of batched image ops: the op registry, argument parsing and validation, build_transform.

The ops run on the training device with independent random parameters per sample.

A pipeline is a list of ops from params.yaml, applied in order::

    augment:
      - {op: random_crop, size: [178, 178]}
      - {op: hflip, p: 0.5}
      - {op: resize, size: [64, 64]}

:func:`build_transform` turns such a list into a
:class:`~cnnpipe.transforms.containers.BatchTransform`: a callable taking a
uint8 (or float in [0, 1]) ``N×C×H×W`` tensor on any device and returning float32 in [0, 1] on
the same device. Unlike torchvision's v2 transforms, which draw one set of random parameters
per call and so apply the same flip or rotation to a whole batch tensor, every sample here
gets its own draw, and the whole batch is still processed in a handful of tensor operations:

* flips select per sample between the image and its mirror (``torch.where``);
* rotation and affine build one inverse matrix per sample and resample the batch with
  ``affine_grid`` + ``grid_sample``; perspective solves one homography per sample and samples
  a projective grid;
* random_resized_crop draws torchvision's whole-pixel boxes for the batch at once, then
  crops and resizes each sample as torchvision's ``resized_crop`` does (antialiased): a loop
  over the batch, which is cheaper than resampling it at several times the output resolution
  to antialias; a rotation or affine right before it is resampled over each crop box only
  (the same pixels as warping the whole image first);
* random_crop gathers per-sample windows by index (exact pixels, no interpolation);
* color_jitter applies per-sample factors, in a per-sample random order; hue is shifted
  in HSV space, torchvision's formulas in closed form;
* resize and center_crop are deterministic and give the same result as
  ``torchvision.transforms.v2.functional.resize`` / ``center_crop``; leading the pipeline
  they work on the uint8 images, and resize then rounds to uint8 as torchvision and PIL do.

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
* random parameters are continuous, except random_resized_crop's boxes (torchvision rounds
  crop boxes, translations and perspective corners to whole pixels);
* ``fill`` values are in pixel units 0–255, like torchvision's fill on uint8 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cnnpipe.checks import is_int, is_number, param_error
from cnnpipe.errors import ParamError
from cnnpipe.transforms.color import _ColorJitter
from cnnpipe.transforms.containers import BatchTransform, _Op, _Pipeline, _RandomApply, _RandomChoice
from cnnpipe.transforms.geometry import (
    _PADDING_MODES,
    _Affine,
    _CenterCrop,
    _Flip,
    _Perspective,
    _RandomCrop,
    _RandomResizedCrop,
    _Resize,
    fuse_warps,
)

__all__ = ["OPS", "build_transform"]

_REQUIRED = object()
_GRID_MODES = ("bilinear", "nearest")
_RESIZE_MODES = ("bilinear", "bicubic", "nearest")


# --------------------------------------------------------------------------- params parsing


def _is_list(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes))


def _bounds(lo: float, hi: float, open_lo: bool = False) -> str:
    if math.isinf(hi):
        return f"with min {'>' if open_lo else '>='} {lo:g}"
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
        return param_error(f"{self.key}.{name}", f"must be {what}", self.entry[name])

    def number(self, name: str, default: Any, *, lo: float, hi: float | None = None) -> float:
        v = self._value(name, default)
        if not is_number(v) or v < lo or (hi is not None and v > hi):
            what = f"a number >= {lo:g}" if hi is None else f"a number in [{lo:g}, {hi:g}]"
            raise self._bad(name, what)
        return float(v)

    def prob(self, name: str, default: Any = 0.5) -> float:
        v = self._value(name, default)
        if not is_number(v) or not 0 <= v <= 1:
            raise self._bad(name, "a probability in [0, 1]")
        return float(v)

    def size(self, name: str, *, smaller_edge: bool = False) -> int | tuple[int, int]:
        v = self._value(name, _REQUIRED)
        if is_int(v) and v > 0:
            return int(v) if smaller_edge else (int(v), int(v))
        if _is_list(v) and len(v) == 2 and all(is_int(s) and s > 0 for s in v):
            return int(v[0]), int(v[1])
        first = "a positive integer (the smaller edge)" if smaller_edge else "a positive integer"
        raise self._bad(name, f"{first} or [height, width]")

    def pair(
        self, name: str, default: Any, *, lo: float, hi: float, open_lo: bool = False
    ) -> tuple[float, float]:
        """``[min, max]`` with ``lo ≤ min ≤ max ≤ hi`` (``lo < min`` when ``open_lo``)."""
        v = self._value(name, default)
        if _is_list(v) and len(v) == 2 and all(map(is_number, v)):
            a, b = float(v[0]), float(v[1])
            if (a > lo if open_lo else a >= lo) and a <= b <= hi:
                return a, b
        raise self._bad(name, f"a [min, max] pair {_bounds(lo, hi, open_lo)}")

    def spread(
        self, name: str, default: Any, *, center: float, lo: float, hi: float, max_spread: float | None = None
    ) -> tuple[float, float] | None:
        """A number d >= 0 meaning ``[center − d, center + d]`` (clipped to ``lo``), or ``[min, max]``
        within ``[lo, hi]``. Returns None when the range is the single point ``center`` (op off)."""
        v = self._value(name, default)
        first = "a number >= 0" if max_spread is None else f"a number in [0, {max_spread:g}]"
        what = f"{first} or a [min, max] pair {_bounds(lo, hi)}"
        if is_number(v):
            if v < 0 or (max_spread is not None and v > max_spread):
                raise self._bad(name, what)
            rng = (max(lo, center - float(v)), min(hi, center + float(v)))
        elif _is_list(v) and len(v) == 2 and all(map(is_number, v)):
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
        if not values or not all(is_number(f) and 0 <= f <= 255 for f in values):
            raise self._bad(name, "a pixel value in [0, 255] or a list of one per channel")
        return tuple(float(f) / 255.0 for f in values)

    def padding(self, name: str) -> tuple[int, int, int, int]:
        v = self._value(name, 0)
        values = list(v) if _is_list(v) else [v]
        if len(values) in (1, 2, 4) and all(is_int(p) and p >= 0 for p in values):
            if len(values) == 1:
                return (values[0],) * 4
            if len(values) == 2:
                return values[0], values[1], values[0], values[1]
            return tuple(values)
        raise self._bad(name, "an integer >= 0, [left/right, top/bottom] or [left, top, right, bottom]")

    def shear(self, name: str) -> tuple[tuple[float, float], tuple[float, float]]:
        v = self._value(name, 0)
        what = "a number in [0, 89], [min, max] or [x_min, x_max, y_min, y_max] degrees within [-89, 89]"
        if is_number(v):
            if not 0 <= v <= 89:
                raise self._bad(name, what)
            return (-float(v), float(v)), (0.0, 0.0)
        if _is_list(v) and len(v) in (2, 4) and all(map(is_number, v)):
            vals = [float(s) for s in v] + [0.0, 0.0][: 4 - len(v)]
            if all(-89 <= s <= 89 for s in vals) and vals[0] <= vals[1] and vals[2] <= vals[3]:
                return (vals[0], vals[1]), (vals[2], vals[3])
        raise self._bad(name, what)

    def weights(self, name: str, n: int) -> tuple[float, ...]:
        v = self._value(name, [1.0] * n)
        if _is_list(v) and len(v) == n and all(is_number(w) and w >= 0 for w in v) and sum(v) > 0:
            return tuple(float(w) for w in v)
        raise self._bad(name, f"a list of {n} weights >= 0, one per op, not all 0")

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
    return _RandomApply(a.key, p=a.prob("p"), ops=_Pipeline(f"{a.key}.ops", fuse_warps(a.ops())))


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


def build_transform(spec: Sequence[Mapping[str, Any]] | None, *, key: str) -> BatchTransform:
    """Build a :class:`BatchTransform` from a params list of ops (``None`` or ``[]``: identity).

    ``key`` is the params key the list came from (e.g. ``"models.horses_aug.augment"``);
    invalid entries raise ParamError naming the exact element, e.g.
    ``models.horses_aug.augment[1].degrees: must be a number >= 0 ..., got 'lots'``.
    The ops and their arguments are listed in this module's docstring.
    """
    return BatchTransform(fuse_warps(_parse_list(spec, key)), key)
