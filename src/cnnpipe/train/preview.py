"""Augmentation gallery: a few training images, each op of the pipeline alone, then the whole pipeline.

The sources show each augmentation on its own before combining them; ``plots/<model>/augmentation.png``
does the same for a model's ``augment`` ops (or its ``eval_transform`` when it has none).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cnnpipe.errors import ParamError
from cnnpipe.plotting import new_figure, save_png, show_image
from cnnpipe.transforms.containers import BatchTransform, as_float_images
from cnnpipe.transforms.spec import build_transform

LABEL_WIDTH = 24  # characters per line of a row label


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def describe_op(entry: Mapping[str, Any] | str) -> str:
    """A short label of one op entry: ``rotation degrees=20``, ``random_apply p=0.5 (random_choice)``."""
    if isinstance(entry, str):
        return entry
    args = [f"{k}={_value(v)}" for k, v in entry.items() if k not in ("op", "ops")]
    nested = entry.get("ops")
    if nested:
        inner = ", ".join(e if isinstance(e, str) else str(e.get("op")) for e in nested)
        args.append(f"({inner})")
    return " ".join([str(entry.get("op")), *args])


def single_op_transforms(ops: Sequence[Mapping[str, Any]], key: str) -> list[tuple[str, BatchTransform]]:
    """Each top-level op of a params list on its own: ``(label, transform)`` in order."""
    return [
        (f"{i + 1}. {describe_op(entry)}", build_transform([entry], key=f"{key}[{i}]"))
        for i, entry in enumerate(ops)
    ]


def _row_label(ax, text: str) -> None:
    ax.set_ylabel(textwrap.fill(text, LABEL_WIDTH), rotation=0, ha="right", va="center", fontsize=8)


def save_augmentation_preview(
    images_uint8: np.ndarray | Tensor,
    transform: BatchTransform,
    path: str | os.PathLike,
    *,
    n: int = 8,
    seed: int = 0,
    title: str | None = None,
    draws: int = 2,
    steps: Sequence[tuple[str, BatchTransform]] = (),
) -> Path:
    """Write a PNG grid: the first ``n`` images, each of ``steps`` alone, then ``draws`` of ``transform``.

    ``images_uint8`` is ``N×C×H×W`` (a memory-mapped array is fine: only ``n`` images are
    read). ``steps`` are ``(label, transform)`` pairs (see :func:`single_op_transforms`), one
    row each, the i-th drawn with a CPU generator seeded by ``seed + 1 + i``; an op that cannot take
    the images' size on its own says so in its row. The ``draws`` rows of the whole
    ``transform`` share one generator seeded by ``seed``, so they differ from each other and
    the figure is reproducible. The file is written atomically; returns ``path``.
    """
    if draws < 1:
        raise ValueError(f"draws must be ≥ 1, got {draws}")
    if isinstance(images_uint8, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(images_uint8[:n]))
    else:
        batch = images_uint8[:n].detach().cpu()
    if batch.ndim != 4 or batch.shape[0] == 0:
        raise ValueError(f"expected a non-empty N×C×H×W batch, got shape {tuple(batch.shape)}")
    count = batch.shape[0]
    rows: list[tuple[str, Tensor | str]] = [("original", as_float_images(batch))]
    for i, (label, step) in enumerate(steps):
        try:
            step.output_size(batch.shape[-2:])
        except ParamError:  # e.g. a crop larger than the prepared images, which an earlier op enlarges
            rows.append((label, f"cannot run alone on\n{batch.shape[-2]}×{batch.shape[-1]} images"))
            continue
        rows.append((label, step(batch, torch.Generator().manual_seed(seed + 1 + i)).cpu()))
    generator = torch.Generator().manual_seed(seed)
    for d in range(draws):
        label = f"all ops, draw {d + 1}" if steps else f"draw {d + 1}"
        rows.append((label, transform(batch, generator).cpu()))

    label_room = 1.8 if steps else 0.6
    fig = new_figure(1.5 * count + label_room, 1.6 * len(rows) + (0.4 if title else 0.0))
    axes = fig.subplots(len(rows), count, squeeze=False)
    for r, (label, row) in enumerate(rows):
        if isinstance(row, str):
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_frame_on(False)
            first = axes[r][0]
            first.text(0.5, 0.5, row, fontsize=8, ha="center", va="center", transform=first.transAxes)
        else:
            for i in range(count):
                show_image(axes[r][i], row[i].permute(1, 2, 0).numpy())
        _row_label(axes[r][0], label)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)
