"""A model's training recipe from params.yaml, validated into dataclasses.

Reads ``models.<name>`` (dataset, arch, normalize, augment, eval_transform, train.*), the
shared ``run.device`` / ``run.max_epochs`` and the launcher settings ``run.distributed``.
Every bad value raises a one-line ParamError naming its full key, e.g.
``models.mnist_cnn.train.optimizer: expected adam, sgd or rmsprop, got 'adamw'``.
Checks that need the prepared data (input size, number of classes) live in
:mod:`cnnpipe.train.runtime`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnpipe.errors import ParamError
from cnnpipe.models.network import AnyArch, parse_any_arch

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULERS = ("none", "plateau", "cosine", "onecycle")
LOSSES = ("cross_entropy", "nll", "bce")
DEVICES = ("auto", "cpu", "cuda", "mps")
DISTRIBUTED_KEYS = ("nproc_per_node", "nnodes", "rdzv_endpoint")
MODEL_KEYS = ("dataset", "arch", "normalize", "augment", "eval_transform", "train")
TRAIN_KEYS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "l2",
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


@dataclass(frozen=True)
class TrainConfig:
    """Everything params.yaml says about training one model."""

    name: str
    dataset: str
    arch: AnyArch  # a from-scratch Arch or a TransferArch (backbone)
    arch_params: dict[str, Any]  # as written in params.yaml (stored in model.pt)
    normalize: Any
    augment: list[dict[str, Any]]
    eval_transform: list[dict[str, Any]]
    train: TrainSettings
    epochs: int  # train.epochs capped by run.max_epochs
    device: str  # run.device
    model_params: dict[str, Any]  # the raw models.<name> mapping (part of the checkpoint fingerprint)

    @property
    def key(self) -> str:
        """Params prefix of this model, for messages."""
        return f"models.{self.name}"


@dataclass(frozen=True)
class DistributedSettings:
    """``run.distributed``: how many training processes the train stage launches.

    ``nproc_per_node`` processes on each of ``nnodes`` machines; 1 × 1 (the default) is the
    plain single-process run. ``rdzv_endpoint`` (``host:port`` of node 0) is needed only when
    ``nnodes`` > 1.
    """

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None

    @property
    def world_size(self) -> int:
        """Training processes in all."""
        return self.nproc_per_node * self.nnodes


# --- value checks -------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, key: str) -> float:
    """A finite number; a numeric string is accepted (YAML 1.1 reads ``1e-3`` as a string)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ParamError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _positive(value: Any, key: str) -> float:
    number = _number(value, key)
    if number <= 0:
        raise ParamError(f"{key}: must be > 0, got {value!r}")
    return number


def _non_negative(value: Any, key: str) -> float:
    number = _number(value, key)
    if number < 0:
        raise ParamError(f"{key}: must be >= 0, got {value!r}")
    return number


def _int(value: Any, key: str, low: int) -> int:
    if not _is_int(value) or value < low:
        raise ParamError(f"{key}: must be an integer >= {low}, got {value!r}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
        raise ParamError(f"{key}: expected {listed}, got {value!r}")
    return value


def _mapping(value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParamError(f"{key}: must be a mapping, got {value!r}")
    for name in value:
        if name not in allowed:
            raise ParamError(f"{key}.{name}: unknown key; expected one of {', '.join(allowed)}")
    return value


def _ops(value: Any, key: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParamError(f"{key}: must be a list of ops, got {value!r}")
    return copy.deepcopy(value)


# --- parsing ------------------------------------------------------------------------------


def parse_train(raw: Any, key: str) -> TrainSettings:
    """Validate ``models.<name>.train`` (``key`` is that prefix)."""
    train = _mapping(raw, key, TRAIN_KEYS)
    for name in _TRAIN_REQUIRED:
        if name not in train:
            raise ParamError(f"{key}.{name}: missing; add it (see params.yaml for the other models)")
    values = {**_TRAIN_DEFAULTS, **train}
    optimizer = _choice(values["optimizer"], f"{key}.optimizer", OPTIMIZERS)
    momentum = _non_negative(values["momentum"], f"{key}.momentum")
    if momentum >= 1:
        raise ParamError(f"{key}.momentum: must be in [0, 1), got {values['momentum']!r}")
    if optimizer == "adam" and momentum != 0:
        raise ParamError(
            f"{key}.momentum: adam has no momentum setting (its betas are fixed); "
            f"set it to 0 or use sgd or rmsprop, got {values['momentum']!r}"
        )
    factor = _positive(values["plateau_factor"], f"{key}.plateau_factor")
    if factor >= 1:
        raise ParamError(f"{key}.plateau_factor: must be in (0, 1), got {values['plateau_factor']!r}")
    return TrainSettings(
        optimizer=optimizer,
        lr=_positive(values["lr"], f"{key}.lr"),
        momentum=momentum,
        weight_decay=_non_negative(values["weight_decay"], f"{key}.weight_decay"),
        l2=_non_negative(values["l2"], f"{key}.l2"),
        scheduler=_choice(values["scheduler"], f"{key}.scheduler", SCHEDULERS),
        plateau_factor=factor,
        plateau_patience=_int(values["plateau_patience"], f"{key}.plateau_patience", 0),
        loss=_choice(values["loss"], f"{key}.loss", LOSSES),
        batch_size=_int(values["batch_size"], f"{key}.batch_size", 1),
        epochs=_int(values["epochs"], f"{key}.epochs", 1),
        seed=_int(values["seed"], f"{key}.seed", 0),
    )


def _endpoint(value: Any, key: str) -> str:
    """``host:port`` with a port in 1..65535."""
    host, sep, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParamError(f"{key}: expected host:port of node 0 (e.g. 10.0.0.1:29500), got {value!r}")
    return value


def parse_distributed(params: Mapping[str, Any]) -> DistributedSettings:
    """Validate ``run.distributed`` (absent = one process)."""
    run = params.get("run") or {}
    if not isinstance(run, Mapping):
        raise ParamError(f"run: must be a mapping, got {run!r}")
    raw = run.get("distributed")
    if raw is None:
        return DistributedSettings()
    key = "run.distributed"
    values = _mapping(raw, key, DISTRIBUTED_KEYS)
    nproc = _int(values.get("nproc_per_node", 1), f"{key}.nproc_per_node", 1)
    nnodes = _int(values.get("nnodes", 1), f"{key}.nnodes", 1)
    endpoint = values.get("rdzv_endpoint")
    if endpoint is None and nnodes > 1:
        raise ParamError(
            f"{key}.rdzv_endpoint: {nnodes} nodes need the host:port of node 0 "
            "(e.g. 10.0.0.1:29500), reachable from every node"
        )
    if endpoint is not None:
        endpoint = _endpoint(endpoint, f"{key}.rdzv_endpoint")
    return DistributedSettings(nproc_per_node=nproc, nnodes=nnodes, rdzv_endpoint=endpoint)


def parse_config(name: str, params: Mapping[str, Any]) -> TrainConfig:
    """Validate ``models.<name>`` plus ``run.device`` / ``run.max_epochs`` from a params mapping."""
    models = params.get("models")
    if not isinstance(models, Mapping) or name not in models:
        known = ", ".join(models) if isinstance(models, Mapping) else "none"
        raise ParamError(f"models.{name}: no such model in params.yaml (models: {known})")
    key = f"models.{name}"
    model = _mapping(models[name], key, MODEL_KEYS)
    for required in ("dataset", "arch"):
        if required not in model:
            raise ParamError(f"{key}.{required}: missing; add it (see params.yaml for the other models)")
    dataset = model["dataset"]
    if not isinstance(dataset, str) or not dataset or "/" in dataset or "\\" in dataset or dataset[0] == ".":
        raise ParamError(f"{key}.dataset: expected a prepared dataset name like mnist, got {dataset!r}")

    run = params.get("run") or {}
    if not isinstance(run, Mapping):
        raise ParamError(f"run: must be a mapping, got {run!r}")
    device = _choice(run.get("device", "auto"), "run.device", DEVICES)
    max_epochs = run.get("max_epochs")
    if max_epochs is not None:
        max_epochs = _int(max_epochs, "run.max_epochs", 1)

    train = parse_train(model.get("train"), f"{key}.train")
    arch = parse_any_arch(model["arch"], key=f"{key}.arch")  # checks it is a mapping, names bad keys
    return TrainConfig(
        name=name,
        dataset=dataset,
        arch=arch,
        arch_params=copy.deepcopy(dict(model["arch"])),
        normalize=copy.deepcopy(model.get("normalize", "stats")),
        augment=_ops(model.get("augment"), f"{key}.augment"),
        eval_transform=_ops(model.get("eval_transform"), f"{key}.eval_transform"),
        train=train,
        epochs=min(train.epochs, max_epochs) if max_epochs is not None else train.epochs,
        device=device,
        model_params=copy.deepcopy(dict(model)),
    )
