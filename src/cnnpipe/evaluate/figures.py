"""PNG figures of an evaluated model, the pictures the sources show.

Each function draws one figure with matplotlib's Agg canvas (no pyplot, no display needed)
and writes it atomically to ``path``. Images are passed as float ``N×H×W×C`` arrays in
[0, 1]: what enters the model after its eval transform, before normalization; one-channel
images are drawn with a gray colour map.

Functions that may have nothing to draw (no dvclive history, an MLP without convolutions)
return False after one log line and write nothing.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import confusion_matrix
from torch import Tensor, nn

from cnnpipe.plotting import grid_shape, hide_unused, new_figure, save_png, show_image

Log = Callable[[str], None]

RIGHT, WRONG = "tab:green", "tab:red"
MAX_FILTERS = 64
MAX_MAPS = 32


# --------------------------------------------------------------------------- confusion


def confusion_matrix_figure(
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Counts of (true, predicted) class pairs (scikit-learn's confusion_matrix), names on both axes."""
    k = len(classes)
    cm = confusion_matrix(labels, predicted, labels=list(range(k)))
    size = min(16.0, 2.5 + 0.6 * k)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    high = cm.max() / 2 if cm.size and cm.max() > 0 else 0
    for (i, j), count in np.ndenumerate(cm):
        color = "white" if count > high else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8 if k > 10 else 10)
    correct = int(np.trace(cm))
    total = int(cm.sum())
    ax.set_title(f"{title + ': ' if title else ''}{correct}/{total} correct")
    return save_png(fig, path)


# --------------------------------------------------------------------------- learning curves


def read_dvclive_tsv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of a dvclive metric history ``timestamp<TAB>step<TAB><name>``; None if absent."""
    path = Path(path)
    if not path.is_file():
        return None
    steps, values = [], []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if not header or "step" not in header:
            return None
        step_col = header.index("step")
        value_col = len(header) - 1
        for row in reader:
            if len(row) != len(header):
                continue
            try:
                steps.append(float(row[step_col]))
                values.append(float(row[value_col]))
            except ValueError:
                continue
    if not steps:
        return None
    return np.asarray(steps), np.asarray(values)


def learning_curves_figure(
    curves_dir: str | os.PathLike,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    log: Log = print,
) -> bool:
    """Loss and accuracy per epoch, train vs validation, from dvclive's ``curves_dir``
    (``dvclive/<model>/plots/metrics/``, see :func:`cnnpipe.paths.live_curves_dir`).

    Reads ``{train,val}/{loss,acc}.tsv``; draws whichever exist, and returns False (writing
    nothing) when none does.
    """
    base = Path(curves_dir)
    panels = (("loss", "loss"), ("acc", "accuracy"))
    series = {
        (metric, split): read_dvclive_tsv(base / split / f"{metric}.tsv")
        for metric, _ in panels
        for split in ("train", "val")
    }
    if all(s is None for s in series.values()):
        log(f"no training history in {base}/{{train,val}}/{{loss,acc}}.tsv: skipping learning curves")
        return False
    fig = new_figure(10.0, 4.0)
    axes = fig.subplots(1, 2)
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for split, name in (("train", "train"), ("val", "validation")):
            data = series[(metric, split)]
            if data is not None:
                ax.plot(data[0], data[1], marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    save_png(fig, path)
    return True


# --------------------------------------------------------------------------- image grids


def prediction_grid_figure(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    confidence: Sequence[float] | np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    empty_message: str = "no images to show",
) -> Path:
    """Images with their true label, predicted label and its probability; green if right, red if wrong.

    With no images, the figure says ``empty_message`` instead.
    """
    count = len(images)
    if count == 0:
        fig = new_figure(5.0, 2.0)
        ax = fig.subplots()
        ax.text(0.5, 0.5, empty_message, ha="center", va="center", fontsize=12)
        ax.axis("off")
        if title:
            fig.suptitle(title)
        return save_png(fig, path)
    captions = [
        f"true: {classes[int(labels[i])]}\npred: {classes[int(predicted[i])]} ({float(confidence[i]):.2f})"
        for i in range(count)
    ]
    right = [int(labels[i]) == int(predicted[i]) for i in range(count)]
    return _captioned_grid(images, captions, right, path, title=title)


def _captioned_grid(
    images: np.ndarray,
    captions: Sequence[str],
    right: Sequence[bool],
    path: str | os.PathLike,
    *,
    title: str | None,
) -> Path:
    """Images in a grid, each titled with its caption in green (right) or red (wrong)."""
    count = len(images)
    rows, cols = grid_shape(count)
    fig = new_figure(2.0 * cols, 2.3 * rows + (0.4 if title else 0.0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    for i in range(count):
        ax = axes.flat[i]
        show_image(ax, images[i])
        ax.set_title(captions[i], color=RIGHT if right[i] else WRONG, fontsize=8)
    hide_unused(axes, count)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def before_after_figure(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    rows: Sequence[tuple[str, np.ndarray, np.ndarray]],
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """The same images in every row, each row one model's predictions: ``(row label, predicted, confidence)``.

    The true class is written under the last row; each prediction is green when right, red
    when wrong; a row label counts its right predictions.
    """
    count = len(images)
    if count == 0:
        return prediction_grid_figure(images, labels, [], [], classes, path, title=title)
    fig = new_figure(1.8 * count + 1.6, 2.1 * len(rows) + (0.5 if title else 0.0))
    axes = fig.subplots(len(rows), count, squeeze=False)
    for r, (name, predicted, confidence) in enumerate(rows):
        right = 0
        for i in range(count):
            ax = axes[r][i]
            show_image(ax, images[i])
            ok = int(predicted[i]) == int(labels[i])
            right += ok
            ax.set_title(
                f"pred: {classes[int(predicted[i])]} ({float(confidence[i]):.2f})",
                color=RIGHT if ok else WRONG,
                fontsize=8,
            )
            if r == len(rows) - 1:
                ax.set_xlabel(f"true: {classes[int(labels[i])]}", fontsize=8)
        axes[r][0].set_ylabel(
            f"{name}\n{right}/{count} right", rotation=0, ha="right", va="center", fontsize=9
        )
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def positive_class_figure(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    positive: Sequence[float] | np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """A binary model's view: each image with its ground truth and the probability of ``classes[1]``.

    Captions read ``GT: <class>`` and ``Pr(<positive class>)=<p>%``, green when the prediction
    (p > 50 %) is right, red when wrong.
    """
    count = len(images)
    if count == 0:
        return prediction_grid_figure(images, labels, [], [], classes, path, title=title)
    captions = [
        f"GT: {classes[int(labels[i])]}\nPr({classes[1]})={100 * float(positive[i]):.0f}%"
        for i in range(count)
    ]
    right = [(float(positive[i]) > 0.5) == (int(labels[i]) == 1) for i in range(count)]
    return _captioned_grid(images, captions, right, path, title=title)


# --------------------------------------------------------------------------- filters / maps


def first_conv(model: nn.Module) -> nn.Conv2d | None:
    """The model's first 2-d convolution in module order (``features.conv1`` in the zoo), or None."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def filters_figure(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    log: Log = print,
) -> bool:
    """The first convolution's learned kernels as small images, each stretched to [0, 1] on its own.

    Three-input-channel kernels are drawn in colour, others channel 0 in gray (up to 64
    kernels). Returns False for a model without convolutions.
    """
    conv = first_conv(model)
    if conv is None:
        log("no convolution layer (an MLP): skipping the filters figure")
        return False
    weights = conv.weight.detach().float().cpu().numpy()  # out × in × kh × kw
    count = min(len(weights), MAX_FILTERS)
    rows, cols = grid_shape(count)
    fig = new_figure(max(4.5, 1.1 * cols), 1.1 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    for i in range(count):
        kernel = weights[i].transpose(1, 2, 0)
        show_image(axes.flat[i], kernel if kernel.shape[2] == 3 else kernel[..., :1], normalize=True)
    hide_unused(axes, count)
    shown = f"{count} of {len(weights)}" if count < len(weights) else f"{count}"
    k = "×".join(str(s) for s in weights.shape[2:])
    fig.suptitle(f"{title + ': ' if title else ''}first-layer filters ({shown}, {k})")
    save_png(fig, path)
    return True


def _block_output_module(model: nn.Module, conv: nn.Conv2d) -> nn.Module:
    """The activation right after ``conv`` in its container (the block's non-linearity), else conv."""
    for parent in model.modules():
        children = list(parent.children())
        for i, child in enumerate(children):
            if child is conv:
                following = children[i + 1] if i + 1 < len(children) else None
                activations = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.GELU)
                return following if isinstance(following, activations) else conv
    return conv


@torch.inference_mode()
def feature_maps(model: nn.Module, x: Tensor) -> Tensor | None:
    """Activations of the first conv block (after its non-linearity, before pooling) for batch ``x``."""
    conv = first_conv(model)
    if conv is None:
        return None
    captured: list[Tensor] = []
    handle = _block_output_module(model, conv).register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach())
    )
    try:
        model.eval()(x)
    finally:
        handle.remove()
    return captured[0].float().cpu()


def feature_maps_figure(
    model: nn.Module,
    display_image: np.ndarray,
    model_input: Tensor,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    log: Log = print,
) -> bool:
    """One image as the model sees it, then its first-conv-block activation maps (up to 32).

    ``display_image`` is ``H×W×C`` in [0, 1]; ``model_input`` is the same image normalized,
    ``1×C×H×W`` on the model's device. Each map is stretched to [0, 1] on its own range.
    Returns False for a model without convolutions.
    """
    maps = feature_maps(model, model_input)
    if maps is None:
        log("no convolution layer (an MLP): skipping the feature-maps figure")
        return False
    maps = maps[0].numpy()  # C × H × W
    count = min(len(maps), MAX_MAPS)
    rows, cols = grid_shape(count + 1)
    fig = new_figure(max(4.5, 1.5 * cols), 1.6 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False))
    show_image(axes.flat[0], display_image)
    axes.flat[0].set_title("input", fontsize=8)
    for i in range(count):
        ax = axes.flat[i + 1]
        show_image(ax, maps[i], normalize=True)
        ax.set_title(f"map {i}", fontsize=8)
    hide_unused(axes, count + 1)
    shown = f"{count} of {len(maps)}" if count < len(maps) else f"{count}"
    fig.suptitle(f"{title + ': ' if title else ''}first conv block activations ({shown} maps)")
    save_png(fig, path)
    return True
