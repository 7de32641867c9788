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
from pathlib import Path

import torch
from step_rates import baseline_rate, cnnpipe_rate, stored_shape, time_steps  # beside this script
from torch import nn

from cnnpipe import device as devices
from cnnpipe.config.load import load_params
from cnnpipe.config.train import parse_config
from cnnpipe.models.network import build_network
from cnnpipe.train.optim import build_loss, build_optimizer

REPO = Path(__file__).resolve().parents[1]
MODELS = ("mnist_cnn", "smile_cnn", "cifar_net", "horses_cnn", "resnet18_horses")


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

    rate = time_steps(step, device, steps, batch) * tdist.get_world_size()
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
