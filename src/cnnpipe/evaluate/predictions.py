"""Batched inference of a trained bundle on prepared uint8 images, through its eval pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm import tqdm

from cnnpipe.device import select_device
from cnnpipe.errors import ParamError
from cnnpipe.models.network import build_network
from cnnpipe.models.trained import TrainedModel
from cnnpipe.models.transfer import TransferNet, head_parameter_names
from cnnpipe.transforms.pipeline import InputPipeline


def resolve_device(name: str | None = "auto", *, key: str = "run.device") -> torch.device:
    """``auto`` (or None) picks CUDA, then Apple MPS, then the CPU (SPEC); ``cpu``/``cuda``/``mps`` force one.

    The same rule as training (:func:`cnnpipe.device.select_device`); an unknown or
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
    vector for a single-logit (binary) model; a network ending in LogSoftmax
    (``trained.log_probs``) gives its ``N×K`` log-probabilities.
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


def _copy_pretrained_parts(initial: TransferNet, trained: nn.Module) -> bool:
    """Give ``initial`` the trained model's frozen parameters and frozen BatchNorm statistics.

    Training never changes them (no gradient; frozen BatchNorm layers of a pretrained backbone
    stay in eval mode), so they are the pretrained weights the train stage loaded. Returns True
    when that makes ``initial`` the exact starting point: every trainable parameter is the new
    head's (random in training too), none a pretrained one that training went on to change.
    """
    trained_params = dict(trained.named_parameters())
    trained_buffers = dict(trained.named_buffers())
    with torch.no_grad():
        for name, param in initial.named_parameters():
            if not param.requires_grad:
                param.copy_(trained_params[name])
        for module_name, module in initial.named_modules():
            params = list(module.parameters(recurse=False))
            if isinstance(module, _BatchNorm) and params and not any(p.requires_grad for p in params):
                for name, buffer in module.named_buffers(recurse=False):
                    buffer.copy_(trained_buffers[f"{module_name}.{name}"])
    head = {f"net.{name}" for name in head_parameter_names(initial.arch, initial.net)}
    return all(name in head for name, p in initial.named_parameters() if p.requires_grad)


def initial_model(trained: TrainedModel) -> tuple[TrainedModel, str]:
    """The bundle's model as it was before training, and a note on how it was rebuilt.

    The train stage seeds torch with ``train.seed`` (kept in the bundle as ``extra["seed"]``)
    and then builds the network; this builds the same architecture on the CPU after the same
    seeding, so a from-scratch model gets exactly its initial weights. The seeding happens
    inside :func:`torch.random.fork_rng`: the global generator is left as it was. A backbone
    with pretrained weights is not downloaded again: its frozen parts are copied from the
    trained model (see :func:`_copy_pretrained_parts`).
    """
    seed = int(trained.extra.get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(trained.arch, key=f"{trained.name}.arch", load_weights=False)
    note = f"initial weights, seed {seed}"
    if isinstance(model, TransferNet) and model.arch.weights is not None:
        exact = _copy_pretrained_parts(model, trained.model)
        note += ", pretrained frozen layers" + ("" if exact else "; other backbone layers at random init")
    model.eval()
    return dataclasses.replace(trained, model=model), note


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
