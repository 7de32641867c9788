"""The training loop: epochs of shuffled, augmented batches, validation, checkpoints, outputs.

:func:`train_model` is the whole ``train@<model>`` stage. Per epoch it trains on the train
split (a tqdm bar over batches), evaluates the validation split with the eval pipeline, logs
one summary line and the dvclive metrics ``train/loss``, ``train/acc``, ``val/loss``,
``val/acc`` and ``lr`` (the learning curves), and writes ``models/<name>/checkpoint.pt``.
A run that finds a checkpoint with the same fingerprint continues after its last completed
epoch and ends with exactly the weights and history an uninterrupted run would (on the CPU,
bit for bit): everything random is drawn from generators seeded by (seed, epoch).
At the end it writes ``model.pt`` (the trained bundle), ``history.json`` and
``plots/<name>/augmentation.png``.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cnnpipe.fileio import atomic_write_json
from cnnpipe.models.trained import save_trained
from cnnpipe.models.transfer import TransferArch, weights_label
from cnnpipe.train import device as devices
from cnnpipe.train.batches import (
    Split,
    augment_generator,
    batch_indices,
    epoch_permutation,
    eval_batches,
    iterate_batches,
)
from cnnpipe.train.checkpoint import data_identity, fingerprint, load_checkpoint, save_checkpoint
from cnnpipe.train.inputs import InputPipeline
from cnnpipe.train.optim import (
    LossFn,
    Schedule,
    build_schedule,
    current_lr,
    l2_penalty,
    predictions,
    split_aux,
)
from cnnpipe.train.preview import save_augmentation_preview
from cnnpipe.train.runtime import Runtime, build_runtime

DROPOUT_STREAM = 3  # derive_seed(seed, epoch, stream) for the global generator (dropout)
MIN_EVAL_BATCH = 128
LIVE_METRICS = (("train/loss", "train_loss"), ("train/acc", "train_acc"), ("val/loss", "val_loss"),
                ("val/acc", "val_acc"), ("lr", "lr"))  # fmt: skip

Log = Callable[[str], None]


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in an epoch of ``n`` images (the last batch may be smaller)."""
    return math.ceil(n / batch_size)


def train_epoch(rt: Runtime, schedule: Schedule, epoch: int, *, desc: str = "") -> dict[str, float]:
    """Train one epoch (1-based ``epoch``); returns mean data loss (without the L2 penalty) and accuracy."""
    config, data, device, model = rt.config, rt.data, rt.device, rt.model
    seed, loss_name = config.train.seed, config.train.loss
    model.train()
    torch.manual_seed(devices.derive_seed(seed, epoch, DROPOUT_STREAM))
    batches = batch_indices(epoch_permutation(len(data.train), seed, epoch), config.train.batch_size)
    generator = augment_generator(seed, epoch)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with tqdm(total=len(batches), desc=desc, unit="batch", leave=False, disable=None) as bar:
        for i, (inputs, labels) in enumerate(
            iterate_batches(data.train, batches, data.train_pipeline, device, generator)
        ):
            with devices.autocast(device):
                logits, aux_logits = split_aux(model(inputs))
                loss = rt.loss_fn(logits, labels)
                aux_loss = None if aux_logits is None else rt.loss_fn(aux_logits, labels)
            objective = loss.float()
            if aux_loss is not None:  # logged losses stay the main head's, comparable with validation
                objective = objective + rt.aux_weight * aux_loss.float()
            penalty = l2_penalty(model, config.train.l2)
            if penalty is not None:
                objective = objective + penalty
            rt.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            rt.optimizer.step()
            schedule.after_batch()
            loss_sum += loss.detach().float() * len(labels)
            correct += (predictions(logits.detach(), loss_name) == labels).sum()
            bar.update(1)
            if not bar.disable and (i % 20 == 0 or i + 1 == len(batches)):
                bar.set_postfix(loss=f"{loss.item():.4f}")
    n = len(data.train)
    return {"loss": loss_sum.item() / n, "acc": correct.item() / n}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    pipeline: InputPipeline,
    loss_fn: LossFn,
    loss_name: str,
    device: torch.device,
    batch_size: int,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``split`` through the (deterministic) eval pipeline."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for inputs, labels in iterate_batches(split, eval_batches(split, batch_size), pipeline, device):
        with devices.autocast(device):
            logits = model(inputs)
            loss = loss_fn(logits, labels)
        loss_sum += loss.float() * len(labels)
        correct += (predictions(logits, loss_name) == labels).sum()
    return {"loss": loss_sum.item() / len(split), "acc": correct.item() / len(split)}


def _open_live(live_dir: Path, history: list[dict[str, Any]]):
    """A fresh dvclive logger for ``live_dir`` with ``history`` replayed into it.

    Rewriting the logs from the checkpoint's history (instead of appending with dvclive's own
    resume) keeps them equal to the checkpoint even when a run was killed between the two
    writes, so the curves of a resumed run match an uninterrupted one row for row.
    """
    from dvclive import Live  # imports DVC: keep it off the module import path

    shutil.rmtree(live_dir, ignore_errors=True)
    live = Live(dir=str(live_dir), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)
    for entry in history:
        _log_live(live, entry)
    return live


def _log_live(live, entry: Mapping[str, Any]) -> None:
    for metric, field in LIVE_METRICS:
        live.log_metric(metric, float(entry[field]))
    live.next_step()


def _best(history: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(history, key=lambda e: (e["val_acc"], -e["val_loss"], -e["epoch"]))
    return {k: best[k] for k in ("epoch", "val_loss", "val_acc")}


def _resume_point(rt: Runtime, schedule: Schedule, print_: Log, fp: str) -> tuple[int, list[dict[str, Any]]]:
    """Restore a matching checkpoint; returns (completed epochs, history so far)."""
    name, epochs, path = rt.config.name, rt.config.epochs, rt.paths.checkpoint
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    state, why = load_checkpoint(path)
    if state is None:
        if path.exists():
            print_(f"{name}: {why}; starting fresh")
        return 0, []
    if state.get("fingerprint") != fp:
        print_(f"{name}: {path} was made with other params or data; starting fresh")
        return 0, []
    done = int(state["epoch"])
    if done > epochs:
        print_(f"{name}: {path} holds {done} epochs, more than the {epochs} asked for; starting fresh")
        return 0, []
    rt.model.load_state_dict(state["model"])
    rt.optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["scheduler"])
    devices.set_rng_state(state["rng"])
    if done < epochs:
        print_(f"resuming {name} from epoch {done + 1}/{epochs}")
    else:
        print_(f"{name}: all {epochs} epochs are in {path}; exporting the trained model")
    return done, list(state["history"])


def _export(rt: Runtime, history: list[dict[str, Any]]) -> dict[str, Any]:
    config, data, paths = rt.config, rt.data, rt.paths
    best, last = _best(history), dict(history[-1])
    extra = {
        "dataset": config.dataset,
        "epochs": config.epochs,
        "valid_split": data.valid_name,
        "best": best,
        "last": last,
        "seed": config.train.seed,
        "device": rt.device.type,
    }
    if isinstance(config.arch, TransferArch):
        extra["weights"] = weights_label(config.arch)
    atomic_write_json(paths.history_file, history)
    save_trained(
        paths.model_file,
        config.name,
        rt.model,
        arch=config.arch_params,
        classes=data.classes,
        normalization=data.normalization,
        eval_transform=config.eval_transform,
        input_shape=data.input_shape,
        extra=extra,
    )
    if len(data.train_pipeline.transform):
        transform, title, draws = data.train_pipeline.transform, f"{config.name}: augment", 2
    else:  # nothing random: show what the model sees at evaluation instead
        transform, title, draws = data.eval_pipeline.transform, f"{config.name}: eval_transform", 1
    save_augmentation_preview(
        np.array(data.train.images[:8]),  # a writable copy of the few images shown
        transform,
        paths.augmentation_plot,
        seed=config.train.seed,
        title=title,
        draws=draws,
    )
    return extra


def train_model(name: str, params: Mapping[str, Any], *, root: Path = Path("."), log: Log = print) -> dict:
    """Train ``models.<name>`` from ``params`` with files under ``root``; returns a summary.

    Reads ``data/prepared/<dataset>/`` and ``data/stats/<dataset>.json``; writes
    ``models/<name>/{checkpoint.pt,model.pt,history.json}``, ``dvclive/<name>/`` and
    ``plots/<name>/augmentation.png``. The summary holds ``history`` (one dict per epoch:
    epoch, train_loss, train_acc, val_loss, val_acc, lr), ``best`` and ``last`` validation
    metrics, ``resumed_from`` (epochs taken from a checkpoint) and the device.
    """
    rt = build_runtime(name, params, root=Path(root), log=log)
    config, data, paths = rt.config, rt.data, rt.paths
    epochs, batch_size = config.epochs, config.train.batch_size
    schedule = build_schedule(
        rt.optimizer, config.train, epochs, steps_per_epoch(len(data.train), batch_size)
    )
    fp = fingerprint(
        config.model_params, data_identity(paths.prepared, data.meta), data.normalization, epochs=epochs
    )
    done, history = _resume_point(rt, schedule, log, fp)
    if done == 0:
        log(
            f"training {name} on {config.dataset} ({len(data.train)} train / {len(data.valid)} "
            f"{data.valid_name} images) for {epochs} epochs on {rt.device.type}"
        )

    live = _open_live(paths.live_dir, history)
    eval_batch = max(batch_size, MIN_EVAL_BATCH)
    for epoch in range(done + 1, epochs + 1):
        start = time.perf_counter()
        lr = current_lr(rt.optimizer)
        train = train_epoch(rt, schedule, epoch, desc=f"{name} {epoch}/{epochs}")
        val = evaluate(rt.model, data.valid, data.eval_pipeline, rt.loss_fn, config.train.loss, rt.device,
                       eval_batch)  # fmt: skip
        schedule.after_epoch(val["loss"])
        entry = {
            "epoch": epoch,
            "train_loss": train["loss"],
            "train_acc": train["acc"],
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "lr": lr,
        }
        history.append(entry)
        log(
            f"{name} epoch {epoch}/{epochs}: train loss {train['loss']:.4f} acc {train['acc']:.2%} | "
            f"{data.valid_name} loss {val['loss']:.4f} acc {val['acc']:.2%} | lr {lr:.3g} | "
            f"{time.perf_counter() - start:.1f}s"
        )
        _log_live(live, entry)
        save_checkpoint(
            paths.checkpoint,
            {
                "fingerprint": fp,
                "name": name,
                "epoch": epoch,
                "epochs": epochs,
                "model": rt.model.state_dict(),
                "optimizer": rt.optimizer.state_dict(),
                "scheduler": schedule.state_dict(),
                "history": history,
                "rng": devices.rng_state(),
                "device": rt.device.type,
            },
        )
    live.end()
    extra = _export(rt, history)
    best, last = extra["best"], extra["last"]
    log(
        f"{name}: best {data.valid_name} acc {best['val_acc']:.2%} (epoch {best['epoch']}), "
        f"last {last['val_acc']:.2%}; wrote {paths.model_file}"
    )
    return {
        "name": name,
        "dataset": config.dataset,
        "epochs": epochs,
        "resumed_from": done,
        "device": rt.device.type,
        "valid_split": data.valid_name,
        "history": history,
        "best": best,
        "last": last,
    }
