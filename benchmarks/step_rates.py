"""One training step, cnnpipe's and the torchvision recipe's, timed per model: shared by the benchmarks.

:func:`cnnpipe_rate` times what the train loop does per batch: batches from its own batch source
(:func:`cnnpipe.train.batches.iterate_batches`, on the host or resident on the device), the model's
``augment`` ops batched (:class:`cnnpipe.transforms.pipeline.InputPipeline`), a channels-last
model placed as the train stage places it (:func:`cnnpipe.train.runtime.place_model`: channels-last,
the faster CPU dropout) under ``run.amp`` autocast, the fused optimizer step. :func:`baseline_rate` times the
torchvision recipe of the source texts: a ``Dataset`` of PIL images with the equivalent
per-sample ``torchvision.transforms.v2`` pipeline (:data:`TORCHVISION_OPS`), a ``DataLoader``,
float32 and ``torch.optim`` with its defaults. Both run on random uint8 images of the size the
model's dataset is stored at, with the model, loss and batch size params.yaml gives it.
benchmarks/gpu.py and benchmarks/train_speed.py import this module (it sits beside them).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from cnnpipe import device as devices
from cnnpipe.models.network import build_network
from cnnpipe.train.batches import (
    Split,
    augment_generator,
    batch_indices,
    epoch_permutation,
    iterate_batches,
    make_resident,
)
from cnnpipe.train.optim import build_loss, build_optimizer
from cnnpipe.train.runtime import place_model
from cnnpipe.transforms.pipeline import InputPipeline

#: (channels, height, width) each dataset is stored at (fixed upstream, or datasets.<name>.image_size).
STORED = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar2": (3, 32, 32),
    "celeba_smile": (3, 218, 178),
}


def _tv_op(entry) -> v2.Transform:
    """One of cnnpipe's augment ops as the torchvision v2 transform the baseline runs per PIL image."""
    entry = {"op": entry} if isinstance(entry, str) else entry
    return TORCHVISION_OPS[entry["op"]]({k: v for k, v in entry.items() if k != "op"})


#: cnnpipe's augment ops as the torchvision v2 transforms the baseline runs per PIL image.
TORCHVISION_OPS = {
    "hflip": lambda a: v2.RandomHorizontalFlip(a.get("p", 0.5)),
    "vflip": lambda a: v2.RandomVerticalFlip(a.get("p", 0.5)),
    "rotation": lambda a: v2.RandomRotation(a["degrees"]),
    "random_crop": lambda a: v2.RandomCrop(a["size"], padding=a.get("padding")),
    "random_resized_crop": lambda a: v2.RandomResizedCrop(
        a["size"], scale=tuple(a.get("scale", (0.08, 1.0)))
    ),
    "resize": lambda a: v2.Resize(a["size"]),
    "center_crop": lambda a: v2.CenterCrop(a["size"]),
    "affine": lambda a: v2.RandomAffine(
        a.get("degrees", 0), translate=a.get("translate"), scale=a.get("scale"), shear=a.get("shear")
    ),
    "color_jitter": lambda a: v2.ColorJitter(
        a.get("brightness", 0), a.get("contrast", 0), a.get("saturation", 0), a.get("hue", 0)
    ),
    "perspective": lambda a: v2.RandomPerspective(a.get("distortion", 0.5), p=a.get("p", 0.5)),
    "random_apply": lambda a: v2.RandomApply([_tv_op(op) for op in a["ops"]], p=a.get("p", 0.5)),
    "random_choice": lambda a: v2.RandomChoice([_tv_op(op) for op in a["ops"]], p=a.get("p")),
}


def stored_shape(config, params) -> tuple[int, int, int]:
    """The C×H×W a model's prepared images have."""
    if config.dataset in STORED:
        return STORED[config.dataset]
    height, width = params["datasets"][config.dataset]["image_size"]
    return 3, height, width


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cnnpipe_rate(
    config, shape, device, *, amp: str, compile_model: bool, resident: bool, steps: int, batch: int
) -> float:
    """Images/s of cnnpipe's train step (see the module docstring); ``resident``: run.resident_data."""
    torch.manual_seed(0)
    model = place_model(build_network(config.arch, key=f"{config.key}.arch", load_weights=False), device)
    optimizer = build_optimizer(model.parameters(), config.train)
    loss_fn = build_loss(config.train.loss)
    pipeline = InputPipeline.build(
        config.augment, {"mean": [0.5] * shape[0], "std": [0.5] * shape[0]}, key="augment"
    )
    step_model = torch.compile(model) if compile_model else model
    scaler = devices.grad_scaler(device, amp)
    rng = np.random.default_rng(0)
    n = 8 * batch
    split = Split("train", rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 2, n))
    split = make_resident(split, device) if resident else split  # every model has at least 2 classes

    def epochs():
        epoch = 0
        while True:
            epoch += 1
            order = batch_indices(epoch_permutation(n, 0, epoch), batch)
            yield from iterate_batches(split, order, pipeline, device, augment_generator(0, epoch))

    batches = epochs()
    model.train()

    def step() -> None:
        inputs, labels = next(batches)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        with devices.autocast(device, amp):
            logits = step_model(inputs)
            logits = logits[0] if isinstance(logits, tuple) else logits
            loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.float().backward()
            optimizer.step()
        else:
            scaler.scale(loss.float()).backward()
            scaler.step(optimizer)
            scaler.update()

    return time_steps(step, device, steps, batch)


def time_steps(step, device: torch.device, steps: int, batch: int) -> float:
    for _ in range(max(1, steps // 5)):  # warm-up: cuDNN autotuning, torch.compile, allocator
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


class _PILImages(torch.utils.data.Dataset):
    """Random images as PIL, transformed one at a time (the torchvision recipe)."""

    def __init__(self, n: int, shape: tuple[int, int, int], transform):
        rng = np.random.default_rng(0)
        c, h, w = shape
        self.images = [rng.integers(0, 256, (h, w, c), dtype=np.uint8) for _ in range(n)]
        self.mode = "L" if c == 1 else "RGB"
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        array = self.images[i][..., 0] if self.mode == "L" else self.images[i]
        return self.transform(Image.fromarray(array, self.mode)), 0


def baseline_rate(config, shape, device, *, steps: int, batch: int, workers: int) -> float:
    """Images/s of the torchvision recipe: PIL per sample, DataLoader, float32, default optimizer."""
    torch.manual_seed(0)
    model = build_network(config.arch, key=f"{config.key}.arch", load_weights=False).to(device).train()
    ops = [_tv_op(op) for op in config.augment]
    transform = v2.Compose(
        [
            *ops,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5] * shape[0], [0.5] * shape[0]),
        ]
    )
    loader = torch.utils.data.DataLoader(
        _PILImages(batch * 4, shape, transform), batch_size=batch, shuffle=True, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, drop_last=True,
    )  # fmt: skip
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}[
        config.train.optimizer
    ](model.parameters(), lr=config.train.lr)
    loss_fn = build_loss(config.train.loss)
    batches = iter(())

    def step() -> None:
        nonlocal batches
        try:
            inputs, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs, labels = next(batches)
        logits = model(inputs.to(device, non_blocking=True))
        logits = logits[0] if isinstance(logits, tuple) else logits
        loss = loss_fn(logits, labels.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return time_steps(step, device, steps, batch)
