"""``models.<name>`` of params.yaml, validated into dataclasses: a model's training recipe.

Reads ``models.<name>`` (dataset, arch, normalize, augment, eval_transform, train.*) and the
shared ``run.device`` / ``run.max_epochs`` (:mod:`cnnpipe.config.run`). Every bad value raises
a one-line ParamError naming its full key (:mod:`cnnpipe.checks`), e.g.
``models.mnist_cnn.train.optimizer: expected adam, sgd or rmsprop, got 'adamw'``; ``augment``
and ``eval_transform`` are parsed op by op here, so a misspelt op fails before anything runs.
Checks that need the prepared data (input size, number of classes) live in
:mod:`cnnpipe.train.runtime`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnpipe.checks import (
    as_list,
    choice,
    integer,
    mapping,
    name_like,
    non_negative,
    param_error,
    positive,
    required,
)
from cnnpipe.config.run import RunSettings, parse_run
from cnnpipe.errors import ParamError
from cnnpipe.models.network import AnyArch, parse_any_arch
from cnnpipe.models.zoo import Arch
from cnnpipe.transforms.spec import build_transform

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULERS = ("none", "plateau", "cosine", "onecycle")
LOSSES = ("cross_entropy", "nll", "bce", "mse")
MODEL_KEYS = ("dataset", "stats_from", "arch", "normalize", "augment", "eval_transform", "train")
TRAIN_KEYS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "l2",
    "l2_layers",
    "scheduler",
    "plateau_factor",
    "plateau_patience",
    "loss",
    "batch_size",
    "epochs",
    "seed",
)
_TRAIN_REQUIRED = ("optimizer", "lr", "loss", "batch_size", "epochs")
_TRAIN_DEFAULTS: dict[str, Any] = {
    "momentum": 0.0,
    "weight_decay": 0.0,
    "l2": 0.0,
    "l2_layers": None,
    "scheduler": "none",
    "plateau_factor": 0.5,
    "plateau_patience": 10,
    "seed": 0,
}


@dataclass(frozen=True)
class TrainSettings:
    """``models.<name>.train``: the optimization recipe."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    l2: float
    scheduler: str
    plateau_factor: float
    plateau_patience: int
    loss: str
    batch_size: int
    epochs: int
    seed: int
    # named_modules() names whose parameters (biases too) the l2 penalty covers; () = every
    # weight matrix and kernel of the model, no biases
    l2_layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """Everything params.yaml says about training one model."""

    name: str
    dataset: str
    stats_from: str  # whose data/stats/<dataset>.json ``normalize: stats`` reads (default: dataset)
    arch: AnyArch  # a from-scratch Arch or a TransferArch (backbone)
    arch_params: dict[str, Any]  # as written in params.yaml (stored in model.pt)
    normalize: Any
    augment: list[dict[str, Any]]
    eval_transform: list[dict[str, Any]]
    train: TrainSettings
    epochs: int  # train.epochs capped by run.max_epochs
    device: str  # run.device
    amp: str  # run.amp
    compile: bool  # run.compile
    model_params: dict[str, Any]  # the raw models.<name> mapping (part of the checkpoint fingerprint)
    resident_data: str | bool = RunSettings.resident_data  # run.resident_data: auto, True or False
    resident_max_fraction: float = RunSettings.resident_max_fraction  # run.resident_max_fraction

    @property
    def key(self) -> str:
        """Params prefix of this model, for messages."""
        return f"models.{self.name}"


# --- parsing ------------------------------------------------------------------------------


def parse_ops(value: Any, key: str) -> list[dict[str, Any]]:
    """Validate an ``augment`` / ``eval_transform`` list op by op; returns a copy as written.

    The ops are built once here (and thrown away), so a misspelt op or argument raises its
    ParamError naming ``key[i]…`` when the params are parsed, not when training starts.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise param_error(key, "must be a list of ops", value)
    build_transform(value, key=key)
    return copy.deepcopy(value)


def parse_train(raw: Any, key: str) -> TrainSettings:
    """Validate ``models.<name>.train`` (``key`` is that prefix)."""
    train = mapping(raw, key, TRAIN_KEYS)
    for name in _TRAIN_REQUIRED:
        required(train, name, key)
    values = {**_TRAIN_DEFAULTS, **train}
    optimizer = choice(values["optimizer"], f"{key}.optimizer", OPTIMIZERS)
    momentum = non_negative(values["momentum"], f"{key}.momentum")
    if momentum >= 1:
        raise param_error(f"{key}.momentum", "must be in [0, 1)", values["momentum"])
    if optimizer == "adam" and momentum != 0:
        raise ParamError(
            f"{key}.momentum: adam has no momentum setting (its betas are fixed); "
            f"set it to 0 or use sgd or rmsprop, got {values['momentum']!r}"
        )
    factor = positive(values["plateau_factor"], f"{key}.plateau_factor")
    if factor >= 1:
        raise param_error(f"{key}.plateau_factor", "must be in (0, 1)", values["plateau_factor"])
    return TrainSettings(
        optimizer=optimizer,
        lr=positive(values["lr"], f"{key}.lr"),
        momentum=momentum,
        weight_decay=non_negative(values["weight_decay"], f"{key}.weight_decay"),
        l2=non_negative(values["l2"], f"{key}.l2"),
        scheduler=choice(values["scheduler"], f"{key}.scheduler", SCHEDULERS),
        plateau_factor=factor,
        plateau_patience=integer(values["plateau_patience"], f"{key}.plateau_patience", 0),
        loss=choice(values["loss"], f"{key}.loss", LOSSES),
        batch_size=integer(values["batch_size"], f"{key}.batch_size", 1),
        epochs=integer(values["epochs"], f"{key}.epochs", 1),
        seed=integer(values["seed"], f"{key}.seed", 0),
        l2_layers=_layer_names(values["l2_layers"], f"{key}.l2_layers"),
    )


def _layer_names(value: Any, key: str) -> tuple[str, ...]:
    """``train.l2_layers``: a list of module names (``null`` or ``[]``: none)."""
    names = as_list(value, key)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise param_error(f"{key}[{i}]", "must be a layer name like classifier.fc1", name)
    return tuple(names)


def check_loss_output(arch: AnyArch, loss: str, key: str) -> None:
    """The loss and what the network returns go together: ``nll`` takes the log-probabilities
    of a network ending in LogSoftmax (``arch.log_softmax: true``), every other loss logits.

    ``key`` is the model's prefix (``models.<name>``). Checks that need the number of classes
    are :mod:`cnnpipe.train.runtime`'s.
    """
    log_softmax = isinstance(arch, Arch) and arch.log_softmax
    if loss == "nll" and not log_softmax:
        if not isinstance(arch, Arch):
            raise ParamError(
                f"{key}.train.loss: nll takes log-probabilities, which only a from-scratch arch with "
                "log_softmax: true returns; use cross_entropy for a transfer model, got 'nll'"
            )
        raise ParamError(
            f"{key}.train.loss: nll takes log-probabilities; set {key}.arch.log_softmax: true (the network "
            "then ends in LogSoftmax) or use cross_entropy on the logits, got 'nll'"
        )
    if log_softmax and loss != "nll":
        raise ParamError(
            f"{key}.arch.log_softmax: the network then returns log-probabilities, which only "
            f"{key}.train.loss nll takes; set loss: nll or log_softmax: false, got loss {loss!r}"
        )


def _model_entry(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    models = params.get("models")
    if not isinstance(models, Mapping) or name not in models:
        known = ", ".join(models) if isinstance(models, Mapping) else "none"
        raise ParamError(f"models.{name}: no such model in params.yaml (models: {known})")
    return mapping(models[name], f"models.{name}", MODEL_KEYS)


def parse_dataset_name(params: Mapping[str, Any], name: str) -> str:
    """``models.<name>.dataset`` alone (what the evaluate stage needs of a model's entry)."""
    key = f"models.{name}"
    model = _model_entry(params, name)
    return name_like(
        required(model, "dataset", key), f"{key}.dataset", "expected a prepared dataset name like mnist"
    )


def parse_config(name: str, params: Mapping[str, Any]) -> TrainConfig:
    """Validate ``models.<name>`` plus ``run.device`` / ``amp`` / ``compile`` / ``resident_data`` /
    ``resident_max_fraction`` / ``max_epochs`` of params."""
    key = f"models.{name}"
    model = _model_entry(params, name)
    dataset = parse_dataset_name(params, name)
    required(model, "arch", key)
    run = parse_run(params)

    train = parse_train(model.get("train"), f"{key}.train")
    arch = parse_any_arch(model["arch"], key=f"{key}.arch")  # checks it is a mapping, names bad keys
    check_loss_output(arch, train.loss, key)
    return TrainConfig(
        name=name,
        dataset=dataset,
        stats_from=name_like(
            model.get("stats_from", dataset), f"{key}.stats_from", "expected a dataset name like cifar10"
        ),
        arch=arch,
        arch_params=copy.deepcopy(dict(model["arch"])),
        normalize=copy.deepcopy(model.get("normalize", "stats")),
        augment=parse_ops(model.get("augment"), f"{key}.augment"),
        eval_transform=parse_ops(model.get("eval_transform"), f"{key}.eval_transform"),
        train=train,
        epochs=min(train.epochs, run.max_epochs) if run.max_epochs is not None else train.epochs,
        device=run.device,
        amp=run.amp,
        compile=run.compile,
        model_params=copy.deepcopy(dict(model)),
        resident_data=run.resident_data,
        resident_max_fraction=run.resident_max_fraction,
    )
