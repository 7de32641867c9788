"""Training speed on the CPU: cnnpipe's batched pipeline vs the usual torchvision recipe, side by side.

Three measurements in one run:

1. **Every SPEC model, one train step** (each model in params.yaml, or ``--models``): images per
   second of cnnpipe's train step against the torchvision recipe's, on random uint8 images of the
   size the model's dataset is stored at, with its arch, ``augment`` ops, loss and batch size, the
   median of ``--step-repeats`` timings of ``--steps`` steps (benchmarks/step_rates.py says what
   each side does; no pretrained weights are loaded, which changes nothing in the speed).
2. **mnist_cnn and smile_cnn, whole epochs** (SPEC models 2 and 3) on the same sample data (the
   fastest of ``--epochs`` epochs per side), with the same model, optimizer, batch size and
   augmentation:

* cnnpipe: the train stage's own loop (``build_runtime`` + ``train_epoch``) — batches gathered
  from the prepared uint8 arrays, augmented per sample in a few tensor ops, convolutions in
  channels-last layout, fused optimizer steps, faster CPU dropout masks;
* baseline: torchvision's ``MNIST`` / ``CelebA`` dataset objects with per-sample PIL transforms
  (``RandomCrop``, ``RandomHorizontalFlip``, ``Resize``, ``ToTensor``, ``Normalize``) and a plain
  ``DataLoader`` (``shuffle=True``, default workers) and ``torch.optim.Adam`` with its
  defaults, the recipe of the source texts.

3. **mnist_cnn's share of the CPU's fp32 peak**: its epoch rate times its training FLOPs per image
   (forward and backward, counted by ``torch.utils.flop_counter``) over the rate of a large fp32
   matmul measured in the same run, with the same torch threads.

Run:  python benchmarks/train_speed.py [--models mnist_cnn cifar_net …] [--steps 4] [--compile]
                                       [--mnist-train 10000] [--celeba-train 2000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from cnnpipe.config.load import load_params
from cnnpipe.config.train import parse_config, parse_train
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.data.sources import CELEBA_ATTRIBUTES
from cnnpipe.data.stats import compute_stats
from cnnpipe.data.subset import subset_by_attribute
from cnnpipe.models import build_model
from cnnpipe.models.network import build_network
from cnnpipe.sample.mirror import write_sample_mirror
from cnnpipe.train.loop import steps_per_epoch, train_epoch
from cnnpipe.train.optim import build_loss, build_schedule, split_aux
from cnnpipe.train.runtime import build_runtime
from cnnpipe.transforms.pipeline import InputPipeline

# torchvision's CelebA wants three more lists next to the sample mirror's: the tests' helper writes them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.helpers
from step_rates import baseline_rate, cnnpipe_rate, stored_shape  # beside this script

from tests.helpers.upstream_files import write_celeba_torchvision_extras

REPO = Path(__file__).resolve().parents[1]


def _quiet(_message: str) -> None:
    pass


class _CelebA(datasets.CelebA):
    """torchvision's CelebA; the sample files differ from upstream's md5s."""

    file_list: ClassVar[list] = [(i, None, name) for i, _, name in datasets.CelebA.file_list]

    def _check_integrity(self) -> bool:
        return True


def step_rows(
    params: dict, names: list[str], steps: int, repeats: int, *, compile_model: bool = False
) -> list[tuple[str, int, float, float]]:
    """(model, batch, cnnpipe img/s, torchvision img/s) of one train step per model, on the CPU;
    ``compile_model``: cnnpipe's side as ``run.compile: true`` runs it (compiled in the warm-up)."""
    cpu = torch.device("cpu")
    rows = []
    for name in names:
        config = parse_config(name, params)
        shape, batch = stored_shape(config, params), config.train.batch_size
        ours, base = [], []
        for _ in range(repeats):  # alternating sides, so a load change hits both alike
            ours.append(cnnpipe_rate(config, shape, cpu, amp="off", compile_model=compile_model,
                                     resident=False, steps=steps, batch=batch))  # fmt: skip
            base.append(baseline_rate(config, shape, cpu, steps=steps, batch=batch, workers=0))
        rows.append((name, batch, statistics.median(ours), statistics.median(base)))
    return rows


def fp32_peak_gflops(n: int = 2048, repeats: int = 8) -> float:
    """The CPU's fp32 rate on an ``n``×``n`` matmul (GFLOP/s, best of ``repeats``): the practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def train_gflop_per_image(name: str, params: dict, batch: int = 8) -> float:
    """GFLOP of one training image (forward and backward) through the model, as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    config = parse_config(name, params)
    model = build_network(config.arch, key=f"{name}.arch", load_weights=False).train()
    channels, height, width = stored_shape(config, params)
    pipeline = InputPipeline.build(
        config.augment, {"mean": [0.5] * channels, "std": [0.5] * channels}, key=name
    )
    images = pipeline(torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8))
    with FlopCounterMode(display=False) as counter:
        logits, _ = split_aux(model(images))
        build_loss(config.train.loss)(logits, torch.zeros(batch, dtype=torch.int64)).backward()
    return counter.get_total_flops() / batch / 1e9


def build_data(root: Path, mnist_train: int, celeba_train: int) -> None:
    """Sample files, prepared arrays and stats for both models under ``root``."""
    mirror = root / "mirror"
    sizes = {
        "mnist": {"train": mnist_train, "test": 100},
        "celeba": {"train": celeba_train, "valid": 50, "test": 50},
    }
    write_sample_mirror(mirror, sizes=sizes, datasets=["mnist", "celeba"], log=_quiet)
    prepared = root / "data" / "prepared"
    prepare_dataset("mnist", mirror / "mnist", prepared / "mnist", valid_first=100, log=_quiet)
    prepare_dataset("celeba", mirror / "celeba", prepared / "celeba", log=_quiet)
    subset_by_attribute(prepared / "celeba", prepared / "celeba_smile", "Smiling", {}, log=_quiet)
    for name in ("mnist", "celeba_smile"):
        compute_stats(prepared / name, root / "data" / "stats" / f"{name}.json")


def cnnpipe_epochs(name: str, params: dict, root: Path, epochs: int) -> tuple[int, float]:
    """Training images per epoch and the fastest epoch's seconds, with the train stage's loop."""
    rt = build_runtime(parse_config(name, params), root=root, log=_quiet)
    n = len(rt.data.train)
    steps = steps_per_epoch(n, rt.config.train.batch_size)
    schedule = build_schedule(rt.optimizer, rt.config.train, epochs, steps)
    best = float("inf")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_epoch(rt, schedule, epoch)
        best = min(best, time.perf_counter() - start)
    return n, best


def baseline_epochs(model_params: dict, dataset, n: int, epochs: int) -> tuple[int, float]:
    """The same for a plain DataLoader loop over the first ``n`` images of a torchvision dataset."""
    torch.manual_seed(model_params["train"]["seed"])
    model = build_model(model_params["arch"], key="arch")
    train = parse_train(model_params["train"], "train")
    assert train.optimizer == "adam", "the baseline recipe is written for Adam"
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)  # the usual recipe: torch's defaults
    loss_fn = build_loss(train.loss)
    subset = torch.utils.data.Subset(dataset, range(n))
    loader = DataLoader(subset, batch_size=model_params["train"]["batch_size"], shuffle=True)
    model.train()
    best = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        for images, labels in loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        best = min(best, time.perf_counter() - start)
    return n, best


def mnist_baseline(root: Path, stats: dict):
    raw = root / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (root / "mirror" / "mnist").glob("*.gz"):
        (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(stats["mean"], stats["std"])])
    dataset = datasets.MNIST(str(root / "tv"), train=True, download=False, transform=tf)
    return torch.utils.data.Subset(dataset, range(100, len(dataset)))  # the same images as train.*


def smile_baseline(root: Path, stats: dict):
    folder = root / "tv" / "celeba"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(root / "mirror" / "celeba" / "img_align_celeba.zip") as zf:
        zf.extractall(folder)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        shutil.copy(root / "mirror" / "celeba" / name, folder / name)
    write_celeba_torchvision_extras(folder)
    smiling = CELEBA_ATTRIBUTES.index("Smiling")
    tf = transforms.Compose([
        transforms.RandomCrop((178, 178)),
        transforms.RandomHorizontalFlip(),
        transforms.Resize((64, 64)),
        transforms.ToTensor(),
        transforms.Normalize(stats["mean"], stats["std"]),
    ])  # fmt: skip
    return _CelebA(str(root / "tv"), split="train", target_type="attr", transform=tf,
                   target_transform=lambda attr: attr[smiling].float())  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", help="models of the one-step table (default: every model)")
    parser.add_argument("--steps", type=int, default=4, help="timed train steps per side and model")
    parser.add_argument(
        "--step-repeats", type=int, default=3, help="timings per side; the median is reported"
    )
    parser.add_argument(
        "--compile", action="store_true", help="cnnpipe's train step with run.compile: true (torch.compile)"
    )
    parser.add_argument("--mnist-train", type=int, default=10000, help="MNIST training images")
    parser.add_argument("--celeba-train", type=int, default=2000, help="CelebA training images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per side; the fastest is reported")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    params["run"] = {"device": "cpu", "max_epochs": None}
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )

    names = args.models or list(params["models"])
    steps = step_rows(params, names, args.steps, args.step_repeats, compile_model=args.compile)
    compiled = ", cnnpipe's side compiled (run.compile: true)" if args.compile else ""
    print(f"\none train step, random images of the stored size (median of {args.step_repeats}{compiled})")
    print(f"{'model':<20} {'batch':>5} {'cnnpipe img/s':>14} {'torchvision img/s':>18} {'speed-up':>9}")
    for name, batch, ours, base in steps:
        print(f"{name:<20} {batch:>5} {ours:14.1f} {base:18.1f} {ours / base:8.2f}×")
    below = [name for name, _, ours, base in steps if ours / base < 1.5]
    print(f"below 1.5×: {', '.join(below) if below else 'none'}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_data(root, args.mnist_train, args.celeba_train)
        for name, make in (("mnist_cnn", mnist_baseline), ("smile_cnn", smile_baseline)):
            dataset_name = params["models"][name]["dataset"]
            stats = json.loads((root / "data" / "stats" / f"{dataset_name}.json").read_text())
            ours_n, ours_s = cnnpipe_epochs(name, params, root, args.epochs)
            torch.use_deterministic_algorithms(False)  # the train stage turned it on: not the baseline's
            base_n, base_s = baseline_epochs(params["models"][name], make(root, stats), ours_n, args.epochs)
            rows.append((name, ours_n / ours_s, base_n / base_s))
    print(f"\nwhole epochs on sample data (fastest of {args.epochs})")
    print(f"{'model':<12} {'cnnpipe img/s':>14} {'torchvision img/s':>18} {'speed-up':>9}")
    for name, ours, base in rows:
        print(f"{name:<12} {ours:14.0f} {base:18.0f} {ours / base:8.2f}×")

    peak = fp32_peak_gflops()
    per_image = train_gflop_per_image("mnist_cnn", params)
    mnist_rate = rows[0][1]
    print(
        f"\nmnist_cnn: {per_image * 1e3:.2f} MFLOP per training image x {mnist_rate:.0f} img/s = "
        f"{per_image * mnist_rate:.1f} GFLOP/s, {100 * per_image * mnist_rate / peak:.1f}% of the fp32 "
        f"peak ({peak:.0f} GFLOP/s on a 2048² matmul, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
