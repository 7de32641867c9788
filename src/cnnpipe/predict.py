"""Prediction on new image files with a trained bundle (``cnnpipe predict MODEL IMAGE...``).

Each file is read as the training images were, by the prepare step's own
:func:`~cnnpipe.data.readers.decode_image`: decoded with Pillow, scaled to 8 bits (16-bit and
float images too), converted to RGB (RGBA, L, P, CMYK ... all become RGB, as torchvision's
loader does; to ``L`` for one-channel models such as the MNIST ones), resized with Pillow's
bilinear filter to the prepared size the model was trained from (the bundle's
``input_shape``), then passed through the bundle's eval transform and normalization and the
model, one image at a time.

A file that cannot be read as an image gives a :class:`PredictionError` with a one-line
reason; the other files are still predicted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnpipe.data.readers import IMAGE_ERRORS, ImageTooLarge, decode_image
from cnnpipe.evaluate.predictions import eval_pipeline, resolve_device
from cnnpipe.models.trained import TrainedModel, load_trained
from cnnpipe.transforms.pipeline import InputPipeline


@dataclass(frozen=True)
class PredictionResult:
    """The predicted class of one file, its probability, the ``top_k`` best classes, and the
    model's raw outputs with the index ``torch.max`` picks among them."""

    path: str
    label: str
    probability: float
    top: list[tuple[str, float]] = field(default_factory=list)  # best first, label included
    outputs: list[float] = field(default_factory=list)  # logits (log-probabilities for arch.log_softmax)
    max_index: int = 0  # torch.max(outputs, 1)'s index: 0 for a single-logit model


@dataclass(frozen=True)
class PredictionError:
    """A file that could not be predicted, with a one-line reason."""

    path: str
    reason: str


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error_reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file Pillow can read (unknown or damaged format)"
    if isinstance(exc, ImageTooLarge):
        return f"image too large to decode safely ({_one_line(exc)})"
    if isinstance(exc, Image.DecompressionBombError):
        return "image too large to decode safely"
    return f"cannot decode image ({type(exc).__name__}: {_one_line(exc) or 'no details'})"


def load_image(path: str | os.PathLike, input_shape: Sequence[int]) -> np.ndarray:
    """Read ``path`` as uint8 ``C×H×W`` for a model whose prepared images are ``input_shape``.

    Pillow errors propagate (see :data:`cnnpipe.data.readers.IMAGE_ERRORS`).
    """
    channels, height, width = (int(s) for s in input_shape)
    array = decode_image(os.fspath(path), (height, width), channels=channels)
    if array.shape[0] != channels:
        raise ValueError(f"the model takes {channels}-channel images")
    return array


@torch.inference_mode()
def _predict_one(
    trained: TrainedModel,
    pipeline: InputPipeline,
    image: np.ndarray,
    device: torch.device,
    top_k: int,
    path: str,
) -> PredictionResult:
    x = pipeline(torch.from_numpy(image).unsqueeze(0).to(device))
    raw = trained.model(x).cpu()
    _, index = torch.max(raw, 1)  # what the sources print beside the raw outputs
    outputs = raw.double()[0]
    if trained.binary:
        p = float(torch.sigmoid(outputs[0]))
        probs = torch.tensor([1.0 - p, p], dtype=torch.float64)
    elif trained.log_probs:  # a network ending in LogSoftmax: its outputs are log-probabilities
        probs = outputs.exp()
    else:
        probs = torch.softmax(outputs, dim=0)
    # the best class first; equal probabilities keep the lower class index first
    order = sorted(range(len(probs)), key=lambda i: (-float(probs[i]), i))
    top = [(trained.classes[i], float(probs[i])) for i in order[: max(1, top_k)]]
    return PredictionResult(
        path, top[0][0], top[0][1], top, outputs=[float(v) for v in raw[0]], max_index=int(index[0])
    )


def predict_files(
    model_path: str | os.PathLike,
    image_paths: Iterable[str | os.PathLike],
    *,
    device: str | torch.device = "cpu",
    top_k: int = 1,
) -> list[PredictionResult | PredictionError]:
    """Predict each image file with the bundle at ``model_path``; one result per path, in order.

    ``device`` may be ``"auto"`` (CUDA, then MPS, then CPU). A binary (single-logit) model
    predicts ``classes[1]`` with probability sigmoid(logit) when the logit is positive, else
    ``classes[0]`` with 1 − sigmoid(logit); a network ending in LogSoftmax (``arch.log_softmax``)
    gives the ``exp`` of its log-probabilities. ``top_k`` > 1 also lists the next best classes.
    Each result also keeps the raw outputs and their ``torch.max`` index (``--logits``).
    An unreadable model file raises :class:`~cnnpipe.errors.DataFormatError`; an unreadable
    image gives a :class:`PredictionError` in its place.
    """
    device = resolve_device(device, key="device") if isinstance(device, str) else torch.device(device)
    trained = load_trained(model_path, device=device)
    pipeline = eval_pipeline(trained)
    results: list[PredictionResult | PredictionError] = []
    for path in image_paths:
        shown = str(path)
        try:
            image = load_image(path, trained.input_shape)
        except (*IMAGE_ERRORS, OSError) as exc:
            results.append(PredictionError(shown, _error_reason(exc)))
            continue
        results.append(_predict_one(trained, pipeline, image, device, int(top_k), shown))
    return results


def format_results(results: Iterable[PredictionResult | PredictionError], *, logits: bool = False) -> str:
    """One line per file: ``path: class (prob 0.97)`` (more classes after it with ``top_k`` > 1),
    or ``path: error: reason``.

    ``logits`` appends the raw model outputs and the index ``torch.max`` picks, as the sources
    print them: ``; outputs [1.2345, -0.5000], max index 0``.
    """
    lines = []
    for result in results:
        if isinstance(result, PredictionError):
            lines.append(f"{result.path}: error: {result.reason}")
            continue
        line = f"{result.path}: {result.label} (prob {result.probability:.2f})"
        others = ", ".join(f"{label} ({prob:.2f})" for label, prob in result.top[1:])
        if others:
            line += f"; next: {others}"
        if logits:
            raw = ", ".join(f"{value:.4f}" for value in result.outputs)
            line += f"; outputs [{raw}], max index {result.max_index}"
        lines.append(line)
    return "\n".join(lines)


__all__ = ["PredictionError", "PredictionResult", "format_results", "load_image", "predict_files"]
