"""Augmentation preview: a few training images next to several random draws of their augmentation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from cnnpipe.fileio import atomic_file
from cnnpipe.train.augment import BatchTransform, as_float_images


def save_augmentation_preview(
    images_uint8: np.ndarray | Tensor,
    transform: BatchTransform,
    path: str | os.PathLike,
    *,
    n: int = 8,
    seed: int = 0,
    title: str | None = None,
    draws: int = 2,
) -> Path:
    """Write a PNG grid: the first ``n`` images on top, ``draws`` augmented versions below.

    ``images_uint8`` is ``N×C×H×W`` (a memory-mapped array is fine: only ``n`` images are
    read). Each row below the originals is one call of ``transform`` with a CPU generator
    seeded by ``seed``, so rows differ from each other and the figure is reproducible.
    The file is written atomically; returns ``path``.
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
    generator = torch.Generator().manual_seed(seed)
    rows = [as_float_images(batch)] + [transform(batch, generator).cpu() for _ in range(draws)]

    fig = Figure(figsize=(1.5 * count + 0.6, 1.6 * len(rows) + (0.4 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), count, squeeze=False)
    for r, row in enumerate(rows):
        for i in range(count):
            ax = axes[r][i]
            img = row[i]
            if img.shape[0] >= 3:
                ax.imshow(img[:3].permute(1, 2, 0).numpy(), vmin=0.0, vmax=1.0)
            else:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel("original" if r == 0 else f"draw {r}")
    if title:
        fig.suptitle(title)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return Path(path)
