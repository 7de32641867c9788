"""The training device (``run.device``), mixed precision (``run.amp``) and determinism settings."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any

import numpy as np
import torch

from cnnpipe.errors import ParamError


def mps_available() -> bool:
    """True when PyTorch can use Apple's Metal backend."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


AMP_MODES = ("auto", "bf16", "fp16", "off")
#: Files that exist where an NVIDIA driver is loaded, whether or not this PyTorch build can use it.
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidia0")


def select_device(request: str = "auto", *, key: str = "run.device") -> torch.device:
    """``auto``: CUDA, then MPS, then CPU (SPEC). ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` force one.

    Forcing a backend this machine lacks raises a ParamError naming ``key``.
    """
    if request == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = request.partition(":")
    if kind == "cuda" and (index == "" or index.isdigit()):
        if not torch.cuda.is_available():
            raise ParamError(
                f"{key}: {request!r} requested but PyTorch sees no CUDA device here; use auto or cpu"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ParamError(
                f"{key}: {request!r} requested but only {torch.cuda.device_count()} CUDA device(s) "
                f"are visible (cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device(request)
    if request == "mps" and not mps_available():
        raise ParamError(f"{key}: 'mps' requested but the Apple MPS backend is unavailable; use auto or cpu")
    if request not in ("cpu", "mps"):
        raise ParamError(f"{key}: expected auto, cpu, cuda, cuda:N or mps, got {request!r}")
    return torch.device(request)


def cpu_fallback_warning(request: str, device: torch.device) -> str | None:
    """Why ``auto`` chose the CPU although an NVIDIA driver is loaded here; None otherwise.

    A CUDA wheel built for a newer driver than the machine's makes ``torch.cuda.is_available()``
    False, and ``auto`` would then train on the CPU without a word.
    """
    if request != "auto" or device.type != "cpu" or torch.cuda.is_available():
        return None
    if not any(os.path.exists(path) for path in NVIDIA_DRIVER_FILES):
        return None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (
        f"run.device auto: an NVIDIA driver is loaded but PyTorch {torch.__version__} ({build}) "
        "cannot use it, so this run trains on the CPU; install the torch build that matches the "
        "driver (docs/gpu.md) or set run.device: cpu to silence this"
    )


def resolve_amp(request: str, device: torch.device, *, key: str = "run.amp") -> str:
    """The autocast mode a run uses: ``bf16``, ``fp16`` (with a GradScaler) or ``off``.

    ``auto`` is bf16 on CUDA devices that support it, fp16 on older CUDA devices, off on the CPU
    and MPS (so CPU runs stay bitwise reproducible). ``bf16`` on the CPU uses CPU autocast.
    """
    if request not in AMP_MODES:
        raise ParamError(f"{key}: expected {', '.join(AMP_MODES[:-1])} or off, got {request!r}")
    cuda = device.type == "cuda"
    if request == "auto":
        if not cuda:
            return "off"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if request == "fp16" and not cuda:
        raise ParamError(f"{key}: fp16 (with a GradScaler) needs a CUDA device, this run uses {device.type}")
    if request == "bf16" and device.type == "mps":
        raise ParamError(f"{key}: bf16 autocast is not offered on Apple MPS here; use off")
    if request == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ParamError(f"{key}: this GPU has no fast bf16; use fp16 (or auto)")
    return request


def autocast(device: torch.device, amp: str = "off") -> contextlib.AbstractContextManager[Any]:
    """Autocast for forward and loss in mode ``amp`` (see :func:`resolve_amp`); float32 when off."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler | None:
    """The loss scaler fp16 needs against gradient underflow; None for bf16 and float32."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


def configure(device: torch.device) -> None:
    """Backend switches: deterministic algorithms on the CPU, cuDNN autotuning on CUDA.

    CPU runs are bitwise reproducible; CUDA runs trade that for speed (autocast, autotuned
    kernels).
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
