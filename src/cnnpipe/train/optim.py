"""Optimizer, learning-rate schedule, loss and the explicit L2 penalty of a training recipe."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnpipe.config.train import TrainSettings
from cnnpipe.errors import ParamError


def build_optimizer(parameters: Iterable[nn.Parameter], train: TrainSettings) -> torch.optim.Optimizer:
    """adam | sgd | rmsprop with ``lr`` and ``weight_decay`` (momentum for sgd and rmsprop).

    Only parameters with ``requires_grad`` are handed over (frozen backbones stay out).
    """
    params = [p for p in parameters if p.requires_grad]
    # Fused kernels update every tensor in one pass (about 15 % faster steps on CPU for
    # mnist_cnn); they exist for Adam and SGD on CPU and CUDA.
    fused = bool(params) and params[0].device.type in ("cpu", "cuda")
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused or None)
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay, fused=fused or None
        )
    if train.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay, foreach=True
        )
    raise ValueError(f"unknown optimizer {train.optimizer!r}")


@dataclass
class Schedule:
    """A learning-rate scheduler and when it steps: after every batch, or after every epoch."""

    kind: str  # none | plateau | cosine | onecycle
    scheduler: Any | None

    def after_batch(self) -> None:
        if self.kind == "onecycle":
            self.scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        if self.kind == "plateau":
            self.scheduler.step(val_loss)
        elif self.kind == "cosine":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)


def build_schedule(
    optimizer: torch.optim.Optimizer, train: TrainSettings, epochs: int, steps_per_epoch: int
) -> Schedule:
    """The ``scheduler`` of the recipe.

    plateau: ReduceLROnPlateau(factor, patience) on the validation loss, once per epoch;
    cosine: CosineAnnealingLR over all ``epochs``, once per epoch; onecycle: OneCycleLR
    peaking at ``lr`` over ``epochs × steps_per_epoch`` batches, once per batch (momentum is
    left as configured: no momentum cycling).
    """
    if train.scheduler == "none":
        return Schedule("none", None)
    if train.scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=train.plateau_factor, patience=train.plateau_patience
        )
    elif train.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    elif train.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=train.lr, total_steps=epochs * max(steps_per_epoch, 1), cycle_momentum=False
        )
    else:
        raise ValueError(f"unknown scheduler {train.scheduler!r}")
    return Schedule(train.scheduler, sched)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """Learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


LossFn = Callable[[Tensor, Tensor], Tensor]


def mse_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean squared error between the model's probabilities and the targets, as ``nn.MSELoss``
    averages it (over every element).

    ``N×K`` logits (K > 1): softmax against the one-hot labels; a single logit (``N×1`` or
    ``N``): its sigmoid against the 0/1 label. Computed in float32 (also under autocast).
    """
    logits = logits.float()
    if logits.ndim == 1 or logits.shape[1] == 1:
        probs = torch.sigmoid(logits.reshape(-1))
        return F.mse_loss(probs, labels.to(probs.dtype))
    probs = torch.softmax(logits, dim=1)
    return F.mse_loss(probs, F.one_hot(labels, probs.shape[1]).to(probs.dtype))


def build_loss(name: str) -> LossFn:
    """``loss(outputs, labels)`` → mean loss; labels are int64 class indices.

    cross_entropy: on the logits; nll: NLL of the log-probabilities of a network ending in
    LogSoftmax (``arch.log_softmax``; :mod:`cnnpipe.config.train` checks the two go together);
    bce: BCE-with-logits on the single logit, labels as float; mse: :func:`mse_loss`.
    """
    if name == "cross_entropy":
        return lambda logits, labels: F.cross_entropy(logits, labels)
    if name == "nll":
        return lambda log_probs, labels: F.nll_loss(log_probs, labels)
    if name == "bce":
        return lambda logits, labels: F.binary_cross_entropy_with_logits(
            logits.reshape(-1), labels.to(logits.dtype)
        )
    if name == "mse":
        return mse_loss
    raise ValueError(f"unknown loss {name!r}")


def split_aux(output: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None]:
    """Main logits and auxiliary logits from a forward pass.

    Inception-V3 with ``aux_logits`` returns ``InceptionOutputs(logits, aux_logits)`` in
    training mode; every other model (and Inception in eval mode) returns plain logits.
    """
    if isinstance(output, Tensor):
        return output, None
    return output[0], output[1]


def predictions(logits: Tensor, loss: str) -> Tensor:
    """Predicted class index per row: ``logit > 0`` for a single logit (bce, or mse with one
    output: sigmoid > 0.5), otherwise the arg-max (of logits or log-probabilities alike)."""
    if loss == "bce" or logits.ndim == 1 or logits.shape[1] == 1:
        return (logits.reshape(-1) > 0).long()
    return logits.argmax(dim=1)


def layer_names(model: nn.Module) -> list[str]:
    """``named_modules()`` names that own parameters: what ``train.l2_layers`` lists."""
    return [
        name
        for name, module in model.named_modules()
        if name and any(True for _ in module.parameters(recurse=False))
    ]


LISTED_LAYERS = 30  # a backbone has hundreds: the message names this many, then points at summary


def _valid_layers(model: nn.Module) -> str:
    names = layer_names(model)
    listed = ", ".join(names[:LISTED_LAYERS])
    more = len(names) - LISTED_LAYERS
    return listed if more <= 0 else f"{listed}, … ({more} more: `cnnpipe summary <model>` lists every layer)"


def check_l2_layers(model: nn.Module, layers: Sequence[str], key: str) -> None:
    """Raise a one-line ParamError naming ``key`` when a name of ``layers`` is no module of
    ``model``, or one without trainable parameters.

    Any ``named_modules()`` name holding trainable parameters is accepted (a container such
    as ``classifier`` covers its layers); the message lists the layers that hold parameters.
    """
    modules = dict(model.named_modules())
    unknown = [name for name in layers if not name or name not in modules]
    if unknown:
        raise ParamError(
            f"{key}: no layer named {', '.join(map(repr, unknown))}; valid layers (or a container of "
            f"them): {_valid_layers(model)}"
        )
    empty = [name for name in layers if not any(p.requires_grad for p in modules[name].parameters())]
    if empty:
        raise ParamError(
            f"{key}: {', '.join(map(repr, empty))} holds no trainable parameters (an activation, pooling "
            f"or frozen layer); valid layers: {_valid_layers(model)}"
        )


def penalized_parameters(model: nn.Module, layers: Sequence[str] = ()) -> list[nn.Parameter]:
    """Trainable parameters the L2 penalty covers.

    No ``layers``: matrices and kernels of the whole model, not biases (``train.l2`` alone).
    ``layers`` (``train.l2_layers``, ``named_modules()`` names): every parameter of those
    modules, biases included, each once, as the book's ``l2 · Σ‖w‖²`` over chosen layers does.
    """
    if not layers:
        return [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    modules = dict(model.named_modules())
    chosen: dict[int, nn.Parameter] = {}
    for name in layers:
        if not name or name not in modules:
            raise ValueError(f"no module named {name!r} in the model")
        for p in modules[name].parameters():
            if p.requires_grad:
                chosen.setdefault(id(p), p)
    return list(chosen.values())


def l2_penalty(model: nn.Module, l2: float, layers: Sequence[str] = ()) -> Tensor | None:
    """``l2 · Σ‖w‖²`` over :func:`penalized_parameters` (of ``layers``), in float32; None when ``l2`` is 0."""
    if l2 == 0:
        return None
    return l2 * sum(p.float().pow(2).sum() for p in penalized_parameters(model, layers))
