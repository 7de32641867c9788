"""Batched inference of a trained bundle on prepared uint8 images, through its eval pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from cnnpipe.errors import ParamError
from cnnpipe.models.trained import TrainedModel
from cnnpipe.train.device import select_device
from cnnpipe.train.inputs import InputPipeline


def resolve_device(name: str | None = "auto", *, key: str = "run.device") -> torch.device:
    """``auto`` (or None) picks CUDA, then Apple MPS, then the CPU (SPEC); ``cpu``/``cuda``/``mps`` force one.

    The same rule as training (:func:`cnnpipe.train.device.select_device`); an unknown or
    unavailable device raises a ParamError naming ``key``.
    """
    return select_device("auto" if name is None else str(name), key=key)


def eval_pipeline(trained: TrainedModel) -> InputPipeline:
    """The bundle's eval transform and normalization: what the model saw at validation time."""
    return InputPipeline.build(
        trained.eval_transform, trained.normalization, key=f"{trained.name}.eval_transform"
    )


def _batch(images: np.ndarray | Tensor, start: int, stop: int, device: torch.device) -> Tensor:
    chunk = images[start:stop]
    if isinstance(chunk, np.ndarray):
        chunk = torch.from_numpy(np.array(chunk))  # a writable copy: memory maps are read-only
    return chunk.to(device)


@torch.inference_mode()
def predict_split(
    trained: TrainedModel,
    images: np.ndarray | Tensor,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    *,
    progress: bool = False,
) -> Tensor:
    """Logits of ``trained`` for uint8 ``N×C×H×W`` ``images`` (a memory map is read batch by batch).

    Images go through the bundle's eval transform and normalization on ``device`` in order,
    ``batch_size`` at a time. Returns float32 logits on the CPU: ``N×K``, or a length-``N``
    vector for a single-logit (binary) model.
    """
    if batch_size < 1:
        raise ParamError(f"evaluate.batch_size: must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    model = trained.model.to(device).eval()
    pipeline = eval_pipeline(trained)
    n = len(images)
    outputs = int(trained.arch["outputs"])
    chunks = []
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=f"evaluate {trained.name}", unit="batch", disable=not progress):
        x = pipeline(_batch(images, start, start + batch_size, device))
        chunks.append(model(x).float().cpu())
    logits = torch.cat(chunks) if chunks else torch.zeros((0, outputs))
    return logits[:, 0] if trained.binary else logits


@torch.inference_mode()
def display_images(trained: TrainedModel, images: np.ndarray | Tensor) -> np.ndarray:
    """Eval-transformed images in [0, 1] as float32 ``N×H×W×C`` (before normalization), for figures."""
    pipeline = eval_pipeline(trained)
    batch = _batch(images, 0, len(images), torch.device("cpu"))
    if len(batch) == 0:
        c = trained.input_shape[0]
        h, w = pipeline.output_size(trained.input_shape[1:])
        return np.zeros((0, h, w, c), np.float32)
    return pipeline.transform(batch).permute(0, 2, 3, 1).numpy()


def spread_indices(n: int, count: int) -> np.ndarray:
    """``count`` indices spread evenly over ``range(n)`` (first and last included), without repeats.

    Splits written class by class (ImageFolder sets) would otherwise show one class only.
    """
    count = max(0, min(int(count), n))
    if count == 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, n - 1, count).round().astype(np.int64))


def most_confident_errors(
    labels: Sequence[int] | np.ndarray, predicted: np.ndarray, confidence: np.ndarray, count: int
) -> np.ndarray:
    """Indices of the ``count`` wrong predictions with the highest confidence (ties: lower index first)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    wrong = np.flatnonzero(predicted != labels)
    order = np.argsort(-np.asarray(confidence, dtype=np.float64)[wrong], kind="stable")
    return wrong[order[: max(0, int(count))]]
