"""Per-epoch checkpoints ``models/<model>/checkpoint.pt`` and the fingerprint that guards resuming.

A checkpoint holds the model, optimizer and scheduler states, the number of completed
epochs, the history so far and every global RNG state. It is written atomically after each
epoch, so a killed run leaves the previous complete one. Its fingerprint (sha256 of the
canonical JSON of what determines the training trajectory) must match for a run to resume
from it; anything else starts fresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnpipe.models.trained import save_torch

FORMAT_VERSION = 1
# Schedules whose shape depends on the total number of epochs; for the others a checkpoint can
# be resumed by a run with more epochs (the first epochs are the same either way).
EPOCH_DEPENDENT_SCHEDULERS = ("cosine", "onecycle")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def data_identity(prepared_dir: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies the prepared data cheaply: classes.json, array shapes, a hash of the labels."""
    identity: dict[str, Any] = {"classes_json": dict(meta)}
    for split in ("train", "valid", "test"):
        images = np.load(Path(prepared_dir) / f"{split}.images.npy", mmap_mode="r")
        labels = np.load(Path(prepared_dir) / f"{split}.labels.npy")
        identity[split] = {
            "images": [str(images.dtype), list(images.shape)],
            "labels": [str(labels.dtype), list(labels.shape)],
            "labels_sha256": hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest(),
        }
    return identity


def fingerprint(
    model_params: Mapping[str, Any],
    data: Mapping[str, Any],
    normalization: Mapping[str, Any],
    *,
    epochs: int,
) -> str:
    """sha256 over the model's params, the data identity and the resolved normalization.

    ``train.epochs`` counts only for schedules that depend on it (cosine, onecycle): with a
    constant or plateau schedule, epoch k of a 20-epoch run equals epoch k of a 5-epoch run,
    so raising the epoch count (or ``run.max_epochs``) continues from the checkpoint.
    """
    params = json.loads(canonical_json(model_params))
    train = params.get("train") or {}
    train.pop("epochs", None)
    if train.get("scheduler") in EPOCH_DEPENDENT_SCHEDULERS:
        train["effective_epochs"] = epochs
    payload = {
        "format": FORMAT_VERSION,
        "model": params,
        "data": data,
        "normalization": normalization,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def checkpoint_state(
    *,
    fingerprint: str,
    name: str,
    epochs: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: list[dict[str, Any]],
    rng: Mapping[str, Any],
    device: str,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """What a checkpoint holds after the last epoch of ``history``: every state needed to resume.

    ``scheduler`` is anything with a ``state_dict()`` (the run's schedule); ``rng`` every global
    RNG state; ``device`` the device type it was trained on; ``scaler`` fp16's loss scaler
    (its scale is part of the training state; absent for bf16 and float32 runs).
    """
    state = {
        "fingerprint": fingerprint,
        "name": name,
        "epoch": int(history[-1]["epoch"]),
        "epochs": epochs,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "rng": rng,
        "device": device,
    }
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` (plus the format version) atomically with ``torch.save``."""
    save_torch(path, {"format": FORMAT_VERSION, **state})


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[dict[str, Any] | None, str]:
    """Read a checkpoint with ``weights_only=True``.

    Returns ``(state, "")``, or ``(None, why)`` when there is none or it cannot be used (a
    damaged file or another format): the caller then starts fresh and says why.
    """
    path = Path(path)
    if not path.exists():
        return None, "no checkpoint"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        return None, f"{path} is unreadable ({type(exc).__name__})"
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        return None, f"{path} is not a checkpoint of format {FORMAT_VERSION}"
    return state, ""
