"""The op base class and the containers that combine ops: pipeline, random_apply, random_choice.

:class:`BatchTransform` is the top-level pipeline :func:`cnnpipe.transforms.spec.build_transform`
returns. Every op takes an ``N×C×H×W`` batch and a ``torch.Generator`` and draws its random
parameters per sample with :func:`_rand` (CPU float64, whatever the generator's device).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cnnpipe.errors import ParamError

__all__ = ["BatchTransform", "as_float_images"]


def _rand(g: torch.Generator | None, *shape: int) -> Tensor:
    """Uniform [0, 1) draws from ``g`` (on whatever device it lives), returned as CPU float64."""
    device = g.device if g is not None else torch.device("cpu")
    return torch.rand(shape, generator=g, device=device).to("cpu", torch.float64)


def _per_sample(mask: Tensor, x: Tensor) -> Tensor:
    """A CPU bool vector of length N as an ``N×1×1×1`` mask on ``x``'s device."""
    return mask.to(x.device).view(-1, 1, 1, 1)


class _Op:
    """One step of a pipeline; ``key`` is its params key, used in error messages."""

    def __init__(self, key: str):
        self.key = key

    @property
    def keys(self) -> tuple[str, ...]:
        """The params keys of the ops this one runs (more than one for a fused pair)."""
        return (self.key,)

    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        return hw

    def __call__(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    # Ops that take uint8 input run before the float conversion when they lead the pipeline,
    # touching a quarter of the bytes: those that only move pixels (flips, unpadded crops) give
    # the same result, random_resized_crop converts each crop, resize rounds to uint8.
    def keeps_uint8(self) -> bool:
        return False


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


def _on_rows(op: _Op, x: Tensor, rows: Tensor, g: torch.Generator | None, *, out: Tensor) -> Tensor:
    """``out`` with ``op`` applied to the samples of ``x`` that the CPU bool vector ``rows`` picks.

    The op runs on those samples alone (its random draws are theirs); ``out`` is float32, shaped
    like the op's output, and written in place.
    """
    index = rows.nonzero().squeeze(1)
    if len(index):
        index = index.to(x.device)
        out.index_copy_(0, index, op(x.index_select(0, index), g))
    return out


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
        # the coin first, then the ops' draws for the samples it picked, as torchvision per image
        return _on_rows(self.ops, x, _rand(g, x.shape[0]) < self.p, g, out=as_float_images(x).clone())


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
        n, c = x.shape[:2]
        hw = self.output_size(tuple(x.shape[-2:]))
        pick = torch.searchsorted(self.cumulative, _rand(g, n), right=True)
        pick = pick.clamp_(max=len(self.ops) - 1)
        out = torch.empty((n, c, *hw), dtype=torch.float32, device=x.device)
        for i, op in enumerate(self.ops):  # each choice runs once, on the samples that drew it
            out = _on_rows(op, x, pick == i, g, out=out)
        return out


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
        return tuple(key for op in self._pipeline.ops for key in op.keys)

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
