"""Drawing helpers every PNG figure of the pipeline shares: matplotlib's Agg canvas, no pyplot.

A figure is made with :func:`new_figure`, filled with :func:`show_image` tiles laid out by
:func:`grid_shape`, and written with :func:`save_png` (atomically, at :data:`DPI`), so its
pixel size is its size in inches times :data:`DPI`. Images are ``H×W×C`` (C = 1 or 3) or
``H×W`` float arrays in [0, 1]; one-channel images are drawn with a gray colour map.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnnpipe.fileio import atomic_file

DPI = 80


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width``×``height`` inches on an Agg canvas, with constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` to ``path`` atomically; returns ``path``."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def pixel_size(fig: Figure) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`save_png` writes for ``fig``."""
    width, height = fig.get_size_inches()
    return round(width * DPI), round(height * DPI)


def show_image(ax, image: np.ndarray, *, normalize: bool = False) -> None:
    """Draw an ``H×W×C`` image (C = 1 or 3; others: the first channel) without ticks.

    ``normalize`` stretches the image to [0, 1] on its own range first.
    """
    image = np.asarray(image, dtype=np.float32)
    if normalize:
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    if image.ndim == 3 and image.shape[2] == 3:
        ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    else:
        gray = image if image.ndim == 2 else image[..., 0]
        ax.imshow(gray, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def grid_shape(count: int, max_cols: int = 8) -> tuple[int, int]:
    """(rows, columns) of a near-square grid holding ``count`` tiles, at most ``max_cols`` wide."""
    cols = max(1, min(max_cols, math.ceil(math.sqrt(count))))
    return math.ceil(count / cols), cols


def hide_unused(axes: np.ndarray, used: int) -> None:
    """Turn off the axes of a grid after the first ``used``."""
    for ax in axes.flat[used:]:
        ax.axis("off")
