"""Everything one training run needs, built from params and the prepared data, checked up front.

:func:`build_runtime` takes the validated params (:mod:`cnnpipe.config.train`), opens the prepared
splits, resolves normalization, builds the train and eval input pipelines and checks that
they deliver what ``arch.input`` expects and that the loss fits the number of classes, then
seeds the global generators and builds the model (checking ``train.l2_layers`` names its
layers), optimizer and loss on the chosen device. Splits that ``run.resident_data`` keeps on
the device are copied there once, here.
The training loop and the learning-rate range test both start from it. In a DDP worker
(:mod:`cnnpipe.train.distributed`) the device is the worker's and the model is also wrapped
in ``DistributedDataParallel`` for the training steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnpipe import device as devices
from cnnpipe.config.train import TrainConfig
from cnnpipe.data.arrays import load_meta
from cnnpipe.errors import DataFormatError, ParamError
from cnnpipe.models.network import build_network
from cnnpipe.models.transfer import TransferArch, TransferNet
from cnnpipe.paths import RunPaths
from cnnpipe.train.batches import Split, make_resident, open_split, resident_plan
from cnnpipe.train.distributed import Distributed
from cnnpipe.train.dropout import use_mask_dropout
from cnnpipe.train.optim import LossFn, build_loss, build_optimizer, check_l2_layers
from cnnpipe.train.relu_pool import pool_before_relu
from cnnpipe.transforms.pipeline import InputPipeline, resolve_normalization


@dataclass
class DataSetup:
    """The prepared data of a run and the input pipelines that feed it to the model."""

    meta: dict[str, Any]
    classes: list[str]
    train: Split
    valid: Split  # the valid split, or the test split when valid is empty
    valid_name: str  # "valid" or "test"
    normalization: dict[str, list[float]]
    train_pipeline: InputPipeline
    eval_pipeline: InputPipeline
    input_shape: list[int]  # C, H, W of the prepared images


@dataclass
class Runtime:
    """A ready-to-train run: config, data, device, model, optimizer, loss (and DDP, in a worker)."""

    config: TrainConfig
    paths: RunPaths
    data: DataSetup
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    dist: Distributed | None = None  # this worker's process group; None in a single-process run
    ddp: nn.Module | None = None  # ``model`` wrapped in DistributedDataParallel when ``dist`` is set
    amp: str = "off"  # the autocast mode run.amp resolved to on this device: bf16, fp16 or off
    scaler: torch.amp.GradScaler | None = None  # fp16's loss scaler
    compiled: nn.Module | None = None  # torch.compile of the step model (run.compile: true)
    device_warning: str | None = None  # why run.device auto fell back to the CPU, if it did

    @property
    def step_model(self) -> nn.Module:
        """What a training step calls: compiled (run.compile), else the DDP wrapper, else ``model``."""
        if self.compiled is not None:
            return self.compiled
        return self.model if self.ddp is None else self.ddp

    @property
    def is_main(self) -> bool:
        """True in the process that logs and writes outputs (rank 0, or the only process)."""
        return self.dist is None or self.dist.is_main

    @property
    def aux_weight(self) -> float:
        """Weight of Inception-V3's auxiliary loss (``arch.aux_weight``); 0 for other models."""
        arch = self.config.arch
        return arch.aux_weight if isinstance(arch, TransferArch) and arch.aux_logits else 0.0


def _check_size(pipeline: InputPipeline, hw: list[int], expected: tuple[int, int], key: str, arch_key: str):
    out = pipeline.output_size(hw)  # raises a ParamError naming the op that cannot take this size
    if tuple(out) != tuple(expected):
        raise ParamError(
            f"{key}: turns the prepared {hw[0]}x{hw[1]} images into {out[0]}x{out[1]} but {arch_key} "
            f"expects {expected[0]}x{expected[1]}; add or fix a resize / crop op, or change {arch_key}"
        )


def open_data(config: TrainConfig, paths: RunPaths, log: Callable[[str], None] = print) -> DataSetup:
    """Open the prepared splits and check them against the config (sizes, channels, classes)."""
    key = config.key
    meta = load_meta(paths.prepared)
    if meta.get("label_type", "class") != "class":
        raise ParamError(
            f"{key}.dataset: {config.dataset} has attribute labels, not classes; train on a subset "
            "with one label (e.g. celeba_smile)"
        )
    classes = [str(c) for c in meta["classes"]]
    train = open_split(paths.prepared, "train")
    if len(train) == 0:
        raise DataFormatError(
            f"{paths.prepared}: the train split is empty; nothing to train {config.name} on"
        )
    valid = open_split(paths.prepared, "valid")
    valid_name = "valid"
    if len(valid) == 0:
        valid = open_split(paths.prepared, "test")
        valid_name = "test"
        if len(valid) == 0:
            raise DataFormatError(
                f"{paths.prepared}: valid and test splits are both empty; nothing to validate on"
            )
        # valid_first / valid_fraction 0: the sources train on the whole training split and
        # validate on the test split, so the curves are not held out from the test metrics.
        log(f"{config.name}: {config.dataset} has no valid split; validating on the test split")

    channels, height, width = (int(s) for s in train.images.shape[1:])
    arch_key = f"{key}.arch.input"
    want_c, want_h, want_w = config.arch.input
    if channels != want_c:
        raise ParamError(
            f"{arch_key}: expects {want_c} channel(s) but {config.dataset} images have {channels}; "
            f"set {arch_key} to [{channels}, {want_h}, {want_w}]"
        )
    normalization = resolve_normalization(config.normalize, paths.stats, channels, key=f"{key}.normalize")
    train_pipeline = InputPipeline.build(config.augment, normalization, key=f"{key}.augment")
    eval_pipeline = InputPipeline.build(config.eval_transform, normalization, key=f"{key}.eval_transform")
    _check_size(train_pipeline, [height, width], (want_h, want_w), f"{key}.augment", arch_key)
    _check_size(eval_pipeline, [height, width], (want_h, want_w), f"{key}.eval_transform", arch_key)

    outputs, loss = config.arch.outputs, config.train.loss
    if loss == "bce" and (outputs != 1 or len(classes) != 2):
        raise ParamError(
            f"{key}.train.loss: bce needs {key}.arch.outputs: 1 and a 2-class dataset, got outputs "
            f"{outputs} and {len(classes)} classes; use cross_entropy for more classes"
        )
    if loss == "mse" and outputs == 1 and len(classes) != 2:
        raise ParamError(
            f"{key}.arch.outputs: mse with one output scores its sigmoid against 0/1 labels and needs a "
            f"2-class dataset ({len(classes)} classes in {config.dataset}); set it to {len(classes)} "
            "(softmax against one-hot labels), got 1"
        )
    single_logit = loss == "bce" or (loss == "mse" and outputs == 1)
    if not single_logit and outputs != len(classes):
        raise ParamError(
            f"{key}.arch.outputs: {loss} needs one output per class ({len(classes)} in {config.dataset}), "
            f"got {outputs}"
        )
    labels_max = max(int(train.labels.max()), int(valid.labels.max()))
    if int(min(train.labels.min(), valid.labels.min())) < 0 or labels_max >= len(classes):
        raise DataFormatError(f"{paths.prepared}: labels fall outside 0..{len(classes) - 1}; re-run prepare")
    return DataSetup(
        meta=meta,
        classes=classes,
        train=train,
        valid=valid,
        valid_name=valid_name,
        normalization=normalization,
        train_pipeline=train_pipeline,
        eval_pipeline=eval_pipeline,
        input_shape=[channels, height, width],
    )


def _device_memory(device: torch.device) -> int:
    """Total memory of a CUDA device in bytes (0 elsewhere: auto keeps nothing resident there)."""
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 0


def keep_resident(
    config: TrainConfig, data: DataSetup, device: torch.device, log: Callable[[str], None]
) -> None:
    """Copy the train and validation splits to ``device`` where ``run.resident_data`` says so."""
    names = ["train", data.valid_name]
    splits = [data.train, data.valid]
    total = _device_memory(device) if config.resident_data == "auto" else 0  # only auto budgets
    plan = resident_plan(config.resident_data, device.type, [s.nbytes for s in splits], total,
                         config.resident_max_fraction)  # fmt: skip
    if not any(plan):
        return
    kept = [name for name, keep in zip(names, plan, strict=True) if keep]
    mib = sum(s.nbytes for s, keep in zip(splits, plan, strict=True) if keep) / 2**20
    try:
        data.train, data.valid = (
            make_resident(s, device) if keep else s for s, keep in zip(splits, plan, strict=True)
        )
    except torch.OutOfMemoryError:
        raise ParamError(
            f"run.resident_data: {str(config.resident_data).lower()}, but the {' and '.join(kept)} split(s) "
            f"({mib:.0f} MiB) do not fit on {device}; set run.resident_data: false to keep them on the host"
        ) from None
    log(f"run.resident_data: {' and '.join(kept)} split(s) kept on {device} ({mib:.1f} MiB)")


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device`` as training runs it: channels-last convolutions, max-pooling before
    the ReLU in front of it (:mod:`cnnpipe.train.relu_pool`: the same numbers), on the CPU the
    faster dropout masks (:func:`cnnpipe.train.dropout.use_mask_dropout`), and a frozen
    pretrained backbone's BatchNorm layers folded into its convolutions for the training forward
    (:mod:`cnnpipe.models.frozen_bn`)."""
    model = model.to(device)
    pool_before_relu(model)
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        # oneDNN (CPU) and cuDNN (tensor cores) run convolutions faster on NHWC weights
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cpu":
        use_mask_dropout(model)
    if isinstance(model, TransferNet):
        model.fold_batchnorm = True
    return model


def build_runtime(
    config: TrainConfig,
    *,
    root: Path = Path("."),
    log: Callable[[str], None] = print,
    dist: Distributed | None = None,
) -> Runtime:
    """Open the data of ``config``, choose the device, seed, and build model, optimizer and loss.

    With ``dist`` the device is the worker's and the model is wrapped in DDP (which gives
    every rank rank 0's initial weights; they are equal anyway, all ranks seed alike).
    """
    paths = RunPaths.of(Path(root), config.name, config.dataset, config.stats_from)
    data = open_data(config, paths, log)
    device = devices.select_device(config.device) if dist is None else dist.device
    device_warning = devices.cpu_fallback_warning(config.device, device)
    if device_warning:
        log(f"warning: {device_warning}")
    amp = devices.resolve_amp(config.amp, device)
    keep_resident(config, data, device, log)
    devices.configure(device)
    devices.seed_everything(config.train.seed)
    model = place_model(build_network(config.arch, key=f"{config.key}.arch"), device)
    check_l2_layers(model, config.train.l2_layers, f"{config.key}.train.l2_layers")
    optimizer = build_optimizer(model.parameters(), config.train)
    ddp = None
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # The state dict stays the plain module's: only the step calls go through the compiled graph.
    compiled = torch.compile(model if ddp is None else ddp) if config.compile else None
    return Runtime(
        config=config,
        paths=paths,
        data=data,
        device=device,
        model=model,
        optimizer=optimizer,
        loss_fn=build_loss(config.train.loss),
        dist=dist,
        ddp=ddp,
        amp=amp,
        scaler=devices.grad_scaler(device, amp),
        compiled=compiled,
        device_warning=device_warning,
    )
