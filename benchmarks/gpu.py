"""GPU training throughput: cnnpipe's train step per run.amp / run.compile / run.resident_data vs torchvision.

For mnist_cnn, smile_cnn, cifar_net, horses_cnn and resnet18_horses as params.yaml defines them
(arch, augment, normalize-shaped inputs, optimizer, loss, batch size), on random uint8 images of
the size each model's dataset is stored at, in one run:

* cnnpipe: what the train loop does per batch, through its own batch source
  (:func:`cnnpipe.train.batches.iterate_batches`) over a split of ``8 x batch`` images shuffled
  per epoch. ``data host``: each batch is gathered from the host array, pinned and copied
  non-blocking to the device (the next one on a background thread); ``data resident``
  (``run.resident_data``): the split is copied to the device once and batches are gathered
  there by index. Then augmented on the device by the model's own ``augment`` ops
  (:class:`cnnpipe.transforms.pipeline.InputPipeline`), normalized, and fed to the channels-last
  model under ``run.amp`` autocast (fp16 with a GradScaler), with the fused optimizer step; once
  per amp mode (off, bf16, fp16), with ``run.compile`` off and on, and per data path;
* baseline: the torchvision recipe of the source texts. A ``Dataset`` of PIL images with the
  equivalent per-sample ``torchvision.transforms.v2`` pipeline, a ``DataLoader`` (workers,
  pinned memory), float32 and ``torch.optim`` with its defaults.

Each row is images per second over ``--steps`` timed steps after warm-up steps (compilation
happens there). With two or more GPUs it also times one epoch-sized run of a 2-process NCCL DDP
job (``torchrun``) against one process. ``--dry-run`` runs everything on the CPU at tiny sizes
(amp off and bf16, compile off, DDP over gloo) to check the script's own wiring; it takes
seconds and its figures mean nothing. The real run (on a CUDA machine) takes a few minutes.

Run:  python benchmarks/gpu.py [--steps 30] [--json gpu.json]      python benchmarks/gpu.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from cnnpipe import device as devices
from cnnpipe.config.load import load_params
from cnnpipe.config.train import parse_config
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
from cnnpipe.transforms.pipeline import InputPipeline

REPO = Path(__file__).resolve().parents[1]
MODELS = ("mnist_cnn", "smile_cnn", "cifar_net", "horses_cnn", "resnet18_horses")
#: (channels, height, width) each dataset is stored at (fixed upstream, or datasets.<name>.image_size).
STORED = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar2": (3, 32, 32),
    "celeba_smile": (3, 218, 178),
}
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
    model = build_network(config.arch, key=f"{config.key}.arch", load_weights=False).to(device)
    model = model.to(memory_format=torch.channels_last)
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

    return _time(step, device, steps, batch)


def _time(step, device: torch.device, steps: int, batch: int) -> float:
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
    ops = [TORCHVISION_OPS[op["op"]]({k: v for k, v in op.items() if k != "op"}) for op in config.augment]
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

    return _time(step, device, steps, batch)


def ddp_rates(device: torch.device, *, dry: bool) -> dict[str, float] | str:
    """One process vs a 2-process DDP job (NCCL on GPUs, gloo in the dry run) on mnist_cnn's step."""
    if not dry and torch.cuda.device_count() < 2:
        return "skipped: needs two GPUs"
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, 2):
            out = Path(tmp) / f"ddp{nproc}.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   __file__, "--ddp-worker", str(out)] + (["--dry-run"] if dry else [])  # fmt: skip
            subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            rates[f"{nproc} process{'es' if nproc > 1 else ''}"] = json.loads(out.read_text())["img_per_s"]
    return rates


def ddp_worker(out: Path, dry: bool) -> None:
    """A torchrun worker: time mnist_cnn's train step wrapped in DistributedDataParallel."""
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    cuda = not dry and torch.cuda.is_available()
    tdist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    config = parse_config("mnist_cnn", load_params(REPO / "params.yaml"))
    batch, steps = (8, 3) if dry else (config.train.batch_size, 50)
    model: nn.Module = build_network(config.arch, key="arch").to(device)
    model = DistributedDataParallel(model, device_ids=[local] if cuda else None)
    optimizer = build_optimizer(model.parameters(), config.train)
    loss_fn = build_loss(config.train.loss)
    inputs = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    amp = devices.resolve_amp("auto", device)

    def step() -> None:
        with devices.autocast(device, amp):
            loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()

    rate = _time(step, device, steps, batch) * tdist.get_world_size()
    if rank == 0:
        out.write_text(json.dumps({"img_per_s": rate}))
    tdist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per row (default 30)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU, tiny sizes: check the wiring, not the speed"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args.ddp_worker, args.dry_run)
        return
    dry = args.dry_run
    device = torch.device("cpu") if dry or not torch.cuda.is_available() else torch.device("cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    steps = 2 if dry else args.steps
    amps = ("off", "bf16") if device.type == "cpu" else ("off", "bf16", "fp16")
    compiles = (False,) if dry else (False, True)
    params = load_params(REPO / "params.yaml")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    note = "  [DRY RUN: figures mean nothing]" if dry else ""
    print(f"device {device} ({gpu}), torch {torch.__version__}, CUDA {torch.version.cuda}, ", end="")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs{note}")
    workers = 0 if dry else min(8, os.cpu_count() or 1)
    rows = []
    for name in args.models:
        config = parse_config(name, params)
        shape = stored_shape(config, params)
        batch = 4 if dry else config.train.batch_size
        base = baseline_rate(config, shape, device, steps=steps, batch=batch, workers=workers)
        for amp in amps:
            if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                continue
            for compiled in compiles:
                for data in ("host", "resident"):
                    rate = cnnpipe_rate(config, shape, device, amp=amp, compile_model=compiled,
                                        resident=data == "resident", steps=steps, batch=batch)  # fmt: skip
                    rows.append(
                        {"model": name, "amp": amp, "compile": compiled, "data": data, "batch": batch,
                         "cnnpipe_img_per_s": rate, "baseline_img_per_s": base, "ratio": rate / base}
                    )  # fmt: skip
    header = ("model", "amp", "compile", "data", "batch", "cnnpipe img/s", "torchvision img/s", "ratio")
    print("\n{:<17} {:<5} {:<8} {:<9} {:>5} {:>14} {:>18} {:>7}".format(*header))
    for r in rows:
        cells = (r["model"], r["amp"], str(r["compile"]).lower(), r["data"], r["batch"])
        rates = (r["cnnpipe_img_per_s"], r["baseline_img_per_s"], r["ratio"])
        print("{:<17} {:<5} {:<8} {:<9} {:>5}".format(*cells), "{:>14.0f} {:>18.0f} {:>6.2f}×".format(*rates))
    ddp = ddp_rates(device, dry=dry)
    print(f"\nDDP (mnist_cnn train step, img/s over all processes): {ddp}")
    if args.json:
        report = {"device": str(device), "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
                  "dry_run": dry, "rows": rows, "ddp": ddp}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
