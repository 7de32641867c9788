"""The trained-model bundle ``models/<model>/model.pt``: weights plus everything to use them.

One file holds the state dict and what evaluation and prediction need to rebuild the exact
input pipeline: the architecture params, class names, normalization and eval transform. It
contains only tensors, lists, dicts, strings and numbers, so ``torch.load(path,
weights_only=True)`` reads it safely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnpipe.errors import DataFormatError
from cnnpipe.fileio import atomic_file
from cnnpipe.models.network import build_network

FORMAT_VERSION = 1


@dataclass
class TrainedModel:
    """A model ready for inference, with the metadata that goes with its weights."""

    name: str
    model: nn.Module
    arch: dict[str, Any]
    classes: list[str]
    normalization: dict[str, list[float]]
    eval_transform: list[dict[str, Any]]
    input_shape: list[int]  # C, H, W of the prepared images the pipeline starts from
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        """True for single-logit models (sigmoid + BCE): the logit scores ``classes[1]``."""
        return int(self.arch["outputs"]) == 1

    @property
    def log_probs(self) -> bool:
        """True when the network ends in LogSoftmax (``arch.log_softmax``): its outputs are
        log-probabilities, and their ``exp`` (not a softmax) is what it predicts."""
        return bool(self.arch.get("log_softmax", False))


def save_trained(
    path: str | Path,
    name: str,
    model: nn.Module,
    *,
    arch: Mapping[str, Any],
    classes: Sequence[str],
    normalization: Mapping[str, Sequence[float]],
    eval_transform: Sequence[Mapping[str, Any]] | None,
    input_shape: Sequence[int],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the bundle atomically; weights are stored on the CPU in float32."""
    bundle = {
        "format": FORMAT_VERSION,
        "name": name,
        "state_dict": {
            k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.cpu()
            for k, v in model.state_dict().items()
        },
        "arch": dict(arch),
        "classes": list(classes),
        "normalization": {k: [float(x) for x in v] for k, v in normalization.items()},
        "eval_transform": [dict(op) for op in (eval_transform or [])],
        "input_shape": [int(s) for s in input_shape],
        "extra": dict(extra or {}),
    }
    save_torch(path, bundle)


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in ``obj`` (nested dicts, lists and tuples): about its saved size."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically.

    It writes through a Python file: torch's own file writer reports a full disk as a
    RuntimeError with no errno; this way the ENOSPC is raised (and chained to torch's
    RuntimeError), and :func:`cnnpipe.fileio.atomic_file` turns it into one line naming ``path``.
    """
    with atomic_file(path, lambda: tensor_bytes(obj)) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Load a bundle with ``weights_only=True`` and rebuild the model in eval mode on ``device``."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path} does not exist: train the model first (`dvc repro`)")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise DataFormatError(
            f"{path}: not a cnnpipe model file ({type(exc).__name__}); retrain it"
        ) from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT_VERSION:
        raise DataFormatError(f"{path}: not a cnnpipe model file of format {FORMAT_VERSION}; retrain it")
    model = build_network(bundle["arch"], key=f"{bundle['name']}.arch", load_weights=False)
    model.load_state_dict(bundle["state_dict"])
    model.to(device).eval()
    return TrainedModel(
        name=bundle["name"],
        model=model,
        arch=bundle["arch"],
        classes=bundle["classes"],
        normalization=bundle["normalization"],
        eval_transform=bundle["eval_transform"],
        input_shape=bundle["input_shape"],
        extra=bundle["extra"],
    )
