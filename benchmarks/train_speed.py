"""Training speed: cnnpipe's batched pipeline vs the usual torchvision recipe, side by side.

For mnist_cnn and smile_cnn (SPEC models 2 and 3), training on the same sample data (the
fastest of ``--epochs`` epochs per side), with the same model, optimizer, batch size and augmentation:

* cnnpipe: the train stage's own loop (``build_runtime`` + ``train_epoch``) — batches gathered
  from the prepared uint8 arrays, augmented per sample in a few tensor ops, convolutions in
  channels-last layout, fused optimizer steps, faster CPU dropout masks;
* baseline: torchvision's ``MNIST`` / ``CelebA`` dataset objects with per-sample PIL transforms
  (``RandomCrop``, ``RandomHorizontalFlip``, ``Resize``, ``ToTensor``, ``Normalize``) and a plain
  ``DataLoader`` (``shuffle=True``, default workers) and ``torch.optim.Adam`` with its
  defaults, the recipe of the source texts.

Run:  python benchmarks/train_speed.py [--mnist-train 10000] [--celeba-train 2000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
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
from cnnpipe.sample.mirror import write_sample_mirror
from cnnpipe.train.loop import steps_per_epoch, train_epoch
from cnnpipe.train.optim import build_loss, build_schedule
from cnnpipe.train.runtime import build_runtime

# torchvision's CelebA wants three more lists next to the sample mirror's: the tests' helper writes them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.helpers
from tests.helpers.upstream_files import write_celeba_torchvision_extras

REPO = Path(__file__).resolve().parents[1]


def _quiet(_message: str) -> None:
    pass


class _CelebA(datasets.CelebA):
    """torchvision's CelebA; the sample files differ from upstream's md5s."""

    file_list: ClassVar[list] = [(i, None, name) for i, _, name in datasets.CelebA.file_list]

    def _check_integrity(self) -> bool:
        return True


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-train", type=int, default=10000, help="MNIST training images")
    parser.add_argument("--celeba-train", type=int, default=2000, help="CelebA training images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per side; the fastest is reported")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    params["run"] = {"device": "cpu", "max_epochs": None}
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
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(f"{'model':<12} {'cnnpipe img/s':>14} {'torchvision img/s':>18} {'speed-up':>9}")
    for name, ours, base in rows:
        print(f"{name:<12} {ours:14.0f} {base:18.0f} {ours / base:8.2f}×")


if __name__ == "__main__":
    main()
