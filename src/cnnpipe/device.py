"""The training device (``run.device``), mixed precision and determinism settings."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch

from cnnpipe.errors import ParamError


def mps_available() -> bool:
    """True when PyTorch can use Apple's Metal backend."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(request: str = "auto", *, key: str = "run.device") -> torch.device:
    """``auto``: CUDA, then MPS, then CPU (SPEC). ``cpu`` / ``cuda`` / ``mps`` force one.

    Forcing a backend this machine lacks raises a ParamError naming ``key``.
    """
    if request == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if request == "cuda" and not torch.cuda.is_available():
        raise ParamError(f"{key}: 'cuda' requested but PyTorch sees no CUDA device here; use auto or cpu")
    if request == "mps" and not mps_available():
        raise ParamError(f"{key}: 'mps' requested but the Apple MPS backend is unavailable; use auto or cpu")
    if request not in ("cpu", "cuda", "mps"):
        raise ParamError(f"{key}: expected auto, cpu, cuda or mps, got {request!r}")
    return torch.device(request)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA for forward and loss; float32 everywhere else."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure(device: torch.device) -> None:
    """Backend switches: deterministic algorithms on the CPU, cuDNN autotuning on CUDA.

    CPU runs are bitwise reproducible; CUDA runs trade that for speed (bf16 autocast,
    autotuned kernels).
    """
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers, e.g. (seed, epoch, stream): independent, reproducible streams."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def rng_state() -> dict[str, Any]:
    """Every global generator's state as tensors and plain values (safe for ``weights_only`` loading)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only when CUDA is present)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
