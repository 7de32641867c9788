"""Pictures of a prepared dataset, the ones the sources teach with: ``explore@<dataset>``.

:func:`explore_dataset` reads ``data/prepared/<dataset>/`` (memory-mapped, only the images it
shows) and writes, each file atomically::

    plots/datasets/<dataset>/gallery.png      the first train images of every class, with its name
                                              (attribute sets: the first faces, with their attributes)
    plots/datasets/<dataset>/filters.png      hand-made filters on the first train image in gray:
                                              vertical / horizontal edges, Sobel Gx, Gy and magnitude,
                                              2×2 max pooling halving it
    plots/datasets/<dataset>/convolution.png  cross-correlation (F.conv2d) beside true convolution
                                              (the kernel flipped), and the sources' worked numbers

The computations are :mod:`cnnpipe.explore.kernels`; :func:`explore_dataset` returns what
was drawn, so tests compare the pictures' data with their own computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnpipe import paths
from cnnpipe.data.arrays import SPLITS, load_meta, load_split
from cnnpipe.errors import DataFormatError
from cnnpipe.explore import figures, kernels

PER_CLASS = 6  # gallery images per class
ATTRIBUTE_IMAGES = 8  # gallery images of an attribute dataset
MAX_CLASSES = 20  # classes drawn in a gallery (rows)
# Attributes worth naming under a CelebA face, in this order, when the dataset has them.
SHOWN_ATTRIBUTES = (
    "Smiling", "Male", "Young", "Eyeglasses", "Wearing_Hat", "Blond_Hair", "Black_Hair", "Bald",
)  # fmt: skip

Log = Callable[[str], None]


@dataclass
class Exploration:
    """What :func:`explore_dataset` drew: files, their pixel sizes and the filter panels' arrays."""

    dataset: str
    split: str  # the split the images come from
    files: dict[str, Path] = field(default_factory=dict)  # figure name → path
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # figure name → (width, height)
    filters: dict[str, np.ndarray] = field(default_factory=dict)  # kernels.filter_panels of the image
    convolution: dict[str, np.ndarray] = field(default_factory=dict)  # kernels.convolution_panels


def _display(images: np.ndarray) -> np.ndarray:
    """uint8 ``N×C×H×W`` → float ``N×H×W×C`` in [0, 1]."""
    return np.asarray(images, dtype=np.float32).transpose(0, 2, 3, 1) / 255.0


def _first_split(root: Path, meta: dict) -> str:
    for split in SPLITS:
        if meta["splits"].get(split, 0) > 0:
            return split
    raise DataFormatError(f"{root}: every split is empty; nothing to draw")


def _class_gallery(images: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[np.ndarray]:
    """The first :data:`PER_CLASS` images of each class, in split order."""
    labels = np.asarray(labels)
    picked = []
    for k in range(len(classes)):
        rows = np.flatnonzero(labels == k)[:PER_CLASS]
        picked.append(_display(images[rows]) if len(rows) else np.zeros((0, 1, 1, 1), np.float32))
    return picked


def _attribute_captions(labels: np.ndarray, names: list[str]) -> tuple[list[str], list[str]]:
    """Per image, the shown attributes it has (one a line); and which attributes are shown."""
    shown = [a for a in SHOWN_ATTRIBUTES if a in names] or names[:6]
    columns = [names.index(a) for a in shown]
    captions = []
    for row in np.asarray(labels):
        present = [a for a, c in zip(shown, columns, strict=True) if row[c] == 1]
        captions.append("\n".join(present) if present else "(none of these)")
    return captions, shown


def explore_dataset(name: str, *, root: str | Path = Path("."), log: Log = print) -> Exploration:
    """Write the gallery, filters and convolution figures of prepared dataset ``name`` under ``root``."""
    root = Path(root)
    data_dir = paths.prepared_dir(name, root)
    out_dir = paths.dataset_plots_dir(name, root)
    meta = load_meta(data_dir)
    split = _first_split(data_dir, meta)
    data = load_split(data_dir, split)
    classes = [str(c) for c in meta["classes"]]
    result = Exploration(dataset=name, split=split)
    shape = "×".join(str(s) for s in data.images.shape[1:])

    gallery = out_dir / paths.GALLERY_PNG
    if meta.get("label_type", "class") == "attributes":
        count = min(ATTRIBUTE_IMAGES, len(data.labels))
        captions, shown = _attribute_captions(data.labels[:count], classes)
        result.sizes[paths.GALLERY_PNG] = figures.attribute_gallery_figure(
            _display(data.images[:count]),
            captions,
            gallery,
            title=f"{name}: first {count} {split} images ({shape}), {len(classes)} binary attributes\n"
            f"under each, those it has of: {', '.join(shown)}",
        )
    else:
        drawn = classes[:MAX_CLASSES]
        more = f", first {len(drawn)} of {len(classes)} classes" if len(drawn) < len(classes) else ""
        result.sizes[paths.GALLERY_PNG] = figures.class_gallery_figure(
            _class_gallery(data.images, data.labels, drawn),
            drawn,
            gallery,
            title=f"{name}: first {split} images of each class ({shape}{more})",
        )
    result.files[paths.GALLERY_PNG] = gallery

    gray = kernels.to_gray(np.array(data.images[0]))
    label = (
        f"{split} image 0, {classes[int(data.labels[0])]}"
        if meta.get("label_type", "class") == "class"
        else f"{split} image 0"
    )
    result.filters = kernels.filter_panels(gray)
    path = out_dir / paths.FILTERS_PNG
    result.sizes[paths.FILTERS_PNG] = figures.filters_figure(
        result.filters,
        {"vertical": kernels.VERTICAL_EDGE, "horizontal": kernels.HORIZONTAL_EDGE},
        path,
        title=f"{name}: hand-made 3×3 filters and 2×2 max pooling ({label}, in gray)",
    )
    result.files[paths.FILTERS_PNG] = path

    result.convolution = kernels.convolution_panels(gray, kernels.SOBEL_X)
    sobel = kernels.SOBEL_EXAMPLE
    by_hand = kernels.BY_HAND
    examples = {
        "sobel": {
            "patch": sobel["patch"],
            "flipped": kernels.flip(sobel["kernel"]).numpy(),
            "correlation": float(kernels.correlate2d(sobel["patch"], sobel["kernel"])),
            "convolution": float(kernels.convolve2d(sobel["patch"], sobel["kernel"])),
        },
        "by_hand": {
            "patch": by_hand["patch"],
            "kernel": by_hand["kernel"],
            "value": float(kernels.correlate2d(by_hand["patch"], by_hand["kernel"])),
        },
    }
    path = out_dir / paths.CONVOLUTION_PNG
    result.sizes[paths.CONVOLUTION_PNG] = figures.convolution_figure(
        result.convolution,
        kernels.SOBEL_X,
        examples,
        path,
        title=f"{name}: cross-correlation vs convolution with Sobel Gx ({label}, in gray)",
    )
    result.files[paths.CONVOLUTION_PNG] = path
    log(f"{name}: {', '.join(paths.DATASET_PLOT_FILES)} written to {out_dir}/")
    return result
