"""The dataset figures of ``explore@<dataset>``: a gallery, hand-made filters, correlation vs convolution.

Each function draws one figure (helpers from :mod:`cnnpipe.plotting`) from arrays computed
beforehand (:mod:`cnnpipe.explore.kernels`), writes it atomically and returns its pixel size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.patches import Rectangle

from cnnpipe.plotting import hide_unused, new_figure, pixel_size, save_png, show_image

TILE = 1.3  # inches per gallery image
PANEL = 2.4  # inches per filter panel


def _hw(image: np.ndarray) -> str:
    return "×".join(str(s) for s in image.shape[:2])


def _kernel_text(kernel: Sequence[Sequence[float]]) -> str:
    return "\n".join(" ".join(f"{v:g}".rjust(3) for v in row) for row in kernel)


def _signed(fig, ax, image: np.ndarray) -> None:
    """A signed map on a blue–white–red scale centred on 0, with its colour bar."""
    bound = float(np.abs(image).max()) or 1.0
    shown = ax.imshow(image, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.colorbar(shown, ax=ax, shrink=0.75)
    ax.set_xticks([])
    ax.set_yticks([])


def _number_grid(ax, values: np.ndarray, title: str, *, highlight: bool = False) -> None:
    """A small matrix drawn as a table of its numbers (the centre cell framed when ``highlight``)."""
    values = np.asarray(values, dtype=np.float64)
    rows, cols = values.shape
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_aspect("equal")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=10)
    for edge in range(1, cols):
        ax.axvline(edge - 0.5, color="0.6", linewidth=0.8)
    for edge in range(1, rows):
        ax.axhline(edge - 0.5, color="0.6", linewidth=0.8)
    if highlight:
        centre = (cols // 2 - 0.5, rows // 2 - 0.5)
        ax.add_patch(Rectangle(centre, 1, 1, fill=False, edgecolor="tab:red", linewidth=2))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


# --------------------------------------------------------------------------- gallery


def class_gallery_figure(
    images_by_class: Sequence[np.ndarray],
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str,
) -> tuple[int, int]:
    """One row per class: its images (``K×H×W×C`` in [0, 1], possibly none) with the class name.

    Returns the PNG's (width, height) in pixels.
    """
    per_row = max([len(images) for images in images_by_class] + [1])
    rows = len(classes)
    fig = new_figure(1.6 + TILE * per_row, TILE * rows + 0.5)
    axes = np.atleast_2d(fig.subplots(rows, per_row, squeeze=False))
    for r, (name, images) in enumerate(zip(classes, images_by_class, strict=True)):
        for c in range(per_row):
            ax = axes[r][c]
            if c < len(images):
                show_image(ax, images[c])
            else:
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if c == 0:
                    ax.text(0.5, 0.5, "no images", ha="center", va="center", fontsize=8)
        axes[r][0].set_ylabel(str(name), rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title)
    save_png(fig, path)
    return pixel_size(fig)


def attribute_gallery_figure(
    images: np.ndarray,
    captions: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str,
) -> tuple[int, int]:
    """Images (``N×H×W×C`` in [0, 1]) each captioned with its attributes; returns the pixel size."""
    cols = min(max(len(images), 1), 4)
    rows = -(-max(len(images), 1) // cols)
    fig = new_figure(2.4 * cols, 2.9 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    for i in range(len(images)):
        show_image(axes.flat[i], images[i])
        axes.flat[i].set_title(captions[i], fontsize=8)
    hide_unused(axes, len(images))
    fig.suptitle(title)
    save_png(fig, path)
    return pixel_size(fig)


# --------------------------------------------------------------------------- filters


def filters_figure(
    panels: Mapping[str, np.ndarray],
    kernels: Mapping[str, Sequence[Sequence[float]]],
    path: str | os.PathLike,
    *,
    title: str,
) -> tuple[int, int]:
    """The hand-made filters on one gray image (the panels of :func:`~cnnpipe.explore.kernels.filter_panels`).

    Top row, the chapter's way: original, vertical and horizontal edge filter (clipped to the
    pixel range), 2×2 max pooling. Bottom row: Sobel Gx and Gy (signed), the gradient
    magnitude and its 2×2 max pooling. ``kernels`` holds ``vertical`` and ``horizontal``.
    """
    fig = new_figure(4 * PANEL, 2 * PANEL + 0.9)
    axes = fig.subplots(2, 4, squeeze=False)
    original = panels["original"]
    show_image(axes[0][0], original)
    axes[0][0].set_title(f"original {_hw(original)}", fontsize=9)
    for ax, name, label in (
        (axes[0][1], "vertical", "vertical edges"),
        (axes[0][2], "horizontal", "horizontal edges"),
    ):
        show_image(ax, panels[name])
        ax.set_title(
            f"{label} {_hw(panels[name])}\n{_kernel_text(kernels[name])}",
            fontsize=8,
            family="monospace",
        )
    for ax, name, source in ((axes[0][3], "pooled", original), (axes[1][3], "magnitude_pooled", None)):
        show_image(ax, panels[name], normalize=name == "magnitude_pooled")
        what = "original" if source is not None else "magnitude"
        src_hw = _hw(original if source is not None else panels["magnitude"])
        ax.set_title(f"2×2 max pool of the {what}\n{src_hw} → {_hw(panels[name])}", fontsize=9)
    _signed(fig, axes[1][0], panels["sobel_x"])
    axes[1][0].set_title(f"Sobel Gx (left → right) {_hw(panels['sobel_x'])}", fontsize=9)
    _signed(fig, axes[1][1], panels["sobel_y"])
    axes[1][1].set_title(f"Sobel Gy (top → bottom) {_hw(panels['sobel_y'])}", fontsize=9)
    show_image(axes[1][2], panels["magnitude"], normalize=True)
    axes[1][2].set_title("gradient magnitude √(Gx² + Gy²)", fontsize=9)
    fig.suptitle(f"{title}\nedge outputs clipped to 0–1, as the chapter clips them to the pixel range 0–255")
    save_png(fig, path)
    return pixel_size(fig)


def convolution_figure(
    panels: Mapping[str, np.ndarray],
    kernel: Sequence[Sequence[float]],
    examples: Mapping[str, Mapping[str, object]],
    path: str | os.PathLike,
    *,
    title: str,
) -> tuple[int, int]:
    """Cross-correlation beside true convolution (the panels of ``convolution_panels``), then worked numbers.

    Top row: the image, its cross-correlation with ``kernel`` (``F.conv2d``), its convolution
    (the kernel flipped) and their difference. Bottom row: the Sobel example (a patch, the
    kernel, the flipped kernel: 8 vs −8) and the by-hand 3×3 filter (the 192 pixel → 577).
    ``examples`` holds ``sobel`` and ``by_hand`` with their patch, kernel and computed values.
    """
    fig = new_figure(4 * PANEL + 1.0, 2 * PANEL + 1.8)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1.0])
    axes = top.subplots(1, 4)
    show_image(axes[0], panels["original"])
    axes[0].set_title(f"original {_hw(panels['original'])}", fontsize=9)
    _signed(top, axes[1], panels["correlation"])
    axes[1].set_title("cross-correlation: F.conv2d(x, K)", fontsize=9)
    _signed(top, axes[2], panels["convolution"])
    axes[2].set_title("convolution: F.conv2d(x, flip(K))", fontsize=9)
    _signed(top, axes[3], panels["difference"])
    axes[3].set_title("convolution − cross-correlation", fontsize=9)

    sobel, by_hand = examples["sobel"], examples["by_hand"]
    cells = bottom.subplots(1, 5)
    _number_grid(cells[0], np.asarray(sobel["patch"]), "patch, brighter to the right")
    _number_grid(cells[1], np.asarray(kernel), f"K = Sobel Gx\ncross-correlation: {sobel['correlation']:g}")
    flipped_title = f"flip(K), K rotated 180°\nconvolution: {sobel['convolution']:g}"
    _number_grid(cells[2], np.asarray(sobel["flipped"]), flipped_title)
    _number_grid(cells[3], np.asarray(by_hand["patch"]), "a pixel and its neighbours", highlight=True)
    _number_grid(
        cells[4], np.asarray(by_hand["kernel"]), f"3×3 filter: Σ pixel × filter\n192 → {by_hand['value']:g}"
    )
    bottom.suptitle("worked by hand, with the same functions", fontsize=10)
    difference = float(np.abs(panels["difference"]).max())
    same_up_to_sign = bool(np.allclose(panels["convolution"], -panels["correlation"]))
    note = (
        "Frameworks compute cross-correlation; a true convolution flips the kernel by 180° first.\n"
        + (
            "For Sobel Gx, flip(K) = −K: the convolution is the cross-correlation with its sign changed"
            if same_up_to_sign
            else "The two differ wherever the kernel is not symmetric"
        )
        + f" (largest |difference| here: {difference:.3g})."
    )
    fig.suptitle(f"{title}\n{note}", fontsize=10)
    save_png(fig, path)
    return pixel_size(fig)
