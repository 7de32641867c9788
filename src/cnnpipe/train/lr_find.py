"""Learning-rate range test: sweep log-spaced rates, record the loss, suggest one, restore the model.

As in the sources: starting from the initial weights, train a few batches at each of
``num_lrs`` rates spaced evenly in log scale from ``start_lr`` to ``end_lr``, record the mean
loss at each rate, and suggest the rate where the (smoothed) loss falls fastest, i.e. the
steepest negative slope of loss against log(lr). The sweep stops early once the loss blows
up. Afterwards the initial weights, optimizer state and global RNG state are restored, so
the test leaves the model exactly as it found it.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from cnnpipe import device as devices
from cnnpipe.config.train import TrainConfig
from cnnpipe.fileio import atomic_file
from cnnpipe.train.batches import augment_generator, batch_indices, epoch_permutation, iterate_batches
from cnnpipe.train.optim import LossFn, l2_penalty, split_aux
from cnnpipe.train.runtime import build_runtime

DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum


@dataclass
class LRFindResult:
    """Rates tried, the mean loss at each, its smoothed curve and the suggested rate."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    suggestion_index: int


def smooth(values: Iterable[float], beta: float = 0.6) -> list[float]:
    """Bias-corrected exponential moving average (``beta`` = weight of the past)."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> int:
    """Index of the steepest descent of ``smoothed`` against log10(lr) (the first point if < 2 points)."""
    if len(lrs) < 2:
        return 0
    slopes = np.gradient(np.asarray(smoothed, dtype=np.float64), np.log10(np.asarray(lrs, dtype=np.float64)))
    slopes = np.where(np.isfinite(slopes), slopes, np.inf)
    return int(np.argmin(slopes))


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_lrs: int = 50,
    batches_per_lr: int = 2,
    l2: float = 0.0,
    l2_layers: Sequence[str] = (),
    device: torch.device | None = None,
    amp: str = "off",
) -> LRFindResult:
    """Run the sweep on ``model`` with ``optimizer``; ``batches`` must yield enough (inputs, labels).

    The model's and optimizer's states (and the global RNG) are restored before returning.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_lrs < 2 or batches_per_lr < 1:
        raise ValueError(f"need num_lrs >= 2 and batches_per_lr >= 1, got {num_lrs} and {batches_per_lr}")
    device = device or next(model.parameters()).device
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rng = devices.rng_state()
    was_training = model.training
    rates = np.logspace(math.log10(start_lr), math.log10(end_lr), num_lrs).tolist()
    lrs: list[float] = []
    losses: list[float] = []
    stream = iter(batches)
    try:
        model.train()
        for lr in rates:
            for group in optimizer.param_groups:
                group["lr"] = lr
            total, count = 0.0, 0
            for _ in range(batches_per_lr):
                batch = next(stream, None)
                if batch is None:
                    break
                inputs, labels = batch
                with devices.autocast(device, amp):
                    loss = loss_fn(split_aux(model(inputs))[0], labels)  # Inception's aux head aside
                objective = loss.float()
                penalty = l2_penalty(model, l2, l2_layers)
                if penalty is not None:
                    objective = objective + penalty
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                total += objective.item()
                count += 1
            if count == 0:  # ran out of batches
                break
            lrs.append(lr)
            losses.append(total / count)
            smoothed_now = smooth(losses)
            if not math.isfinite(losses[-1]) or smoothed_now[-1] > DIVERGE_FACTOR * min(smoothed_now):
                break
    finally:
        if hasattr(stream, "close"):
            stream.close()
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        devices.set_rng_state(saved_rng)
        model.train(was_training)
        optimizer.zero_grad(set_to_none=True)
    if not lrs:
        raise ValueError("the range test got no batches")
    smoothed = smooth(losses)
    index = suggest(lrs, smoothed)
    return LRFindResult(lrs, losses, smoothed, lrs[index], index)


def _cycle_batches(rt, total: int):
    """``total`` training batches through the augment pipeline, reshuffled each pass over the data."""
    config, data = rt.config, rt.data
    seed, produced, epoch = config.train.seed, 0, 0
    while produced < total:
        epoch += 1
        order = batch_indices(epoch_permutation(len(data.train), seed, epoch), config.train.batch_size)
        order = order[: total - produced]
        generator = augment_generator(seed, epoch)
        yield from iterate_batches(data.train, order, data.train_pipeline, rt.device, generator)
        produced += len(order)


def lr_find(
    config: TrainConfig,
    *,
    root: Path = Path("."),
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_lrs: int = 50,
    batches_per_lr: int = 2,
    log: Callable[[str], None] = print,
) -> LRFindResult:
    """Range test for the model of ``config``: its initial weights, optimizer, loss, data and augmentation.

    The optimizer's other settings (momentum, weight decay) and the L2 penalty apply; the
    scheduler does not. Returns the sweep with the suggested rate.
    """
    rt = build_runtime(config, root=Path(root), log=log)
    name = config.name
    result = lr_range_test(
        rt.model,
        rt.optimizer,
        rt.loss_fn,
        _cycle_batches(rt, num_lrs * batches_per_lr),
        start_lr=start_lr,
        end_lr=end_lr,
        num_lrs=num_lrs,
        batches_per_lr=batches_per_lr,
        l2=rt.config.train.l2,
        l2_layers=rt.config.train.l2_layers,
        device=rt.device,
        amp="off" if rt.amp == "fp16" else rt.amp,  # fp16 needs the loss scaler a sweep has no use for
    )
    log(
        f"{name}: lr range test over {len(result.lrs)} rates ({result.lrs[0]:.1e}..{result.lrs[-1]:.1e}); "
        f"steepest descent at lr {result.suggestion:.2e} (params: {rt.config.train.lr:g})"
    )
    return result


def save_lr_plot(result: LRFindResult, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """PNG of loss against learning rate (log x), the suggestion marked; written atomically."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="0.7", linewidth=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed")
    ax.axvline(result.suggestion, color="C3", linestyle="--", linewidth=1)
    ax.plot([result.suggestion], [result.smoothed[result.suggestion_index]], "o", color="C3",
            label=f"steepest descent: {result.suggestion:.2e}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [(i, v) for i, v in enumerate(result.smoothed) if math.isfinite(v)]
    if finite:  # from the lowest loss up to the highest one before it: a final blow-up stays off the scale
        lowest = min(finite, key=lambda iv: iv[1])
        low = min(v for v in [lowest[1], *result.losses] if math.isfinite(v))
        high = max(v for i, v in finite if i <= lowest[0])
        pad = 0.08 * (high - low) or 0.05 * abs(high) or 0.05
        ax.set_ylim(low - pad, high + pad)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)
