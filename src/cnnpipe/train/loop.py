"""The training loop: epochs of shuffled, augmented batches, validation, checkpoints, outputs.

:func:`train_model` is the whole ``train@<model>`` stage. Per epoch it trains on the train
split (a tqdm bar over batches), evaluates the validation split with the eval pipeline, logs
one summary line and the dvclive metrics ``train/loss``, ``train/acc``, ``val/loss``,
``val/acc`` and ``lr`` (the learning curves), and writes ``models/<name>/checkpoint.pt``.
A run that finds a checkpoint with the same fingerprint continues after its last completed
epoch and ends with exactly the weights and history an uninterrupted run would (on the CPU,
bit for bit): everything random is drawn from generators seeded by (seed, epoch).
At the end it writes ``model.pt`` (the trained bundle), ``history.json`` and
``plots/<name>/augmentation.png``. At start it removes the temporaries a crashed run left
beside those outputs; a full disk is one line naming the output it could not write.

The stage passes a check that params.yaml still holds what the run started with; it runs at
every epoch's end, before anything of that epoch is written, and before the final outputs.
If another ``dvc exp run`` in the same workspace has rewritten the model's params meanwhile,
the run stops with one line and writes nothing more (the checkpoints already written were
made with the params it started with).

In a DDP worker (``dist``, see :mod:`cnnpipe.train.distributed`) ``train.batch_size`` stays the
global batch: every rank draws the same epoch order and global batches, trains on its shard
of each (rows ``rank::world``) with its loss scaled so that DDP's gradient average is exactly
the mean over the global batch, and the logged loss and accuracy are summed over the ranks.
Validation is sharded by batches and summed the same way. Only rank 0 logs, shows progress
bars and writes files; a resumed run reads rank 0's checkpoint on every rank.
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
from torch import Tensor, nn
from tqdm import tqdm

from cnnpipe import device as devices
from cnnpipe import paths
from cnnpipe.config.train import TrainConfig
from cnnpipe.errors import ParamError, ParamsChangedError
from cnnpipe.fileio import atomic_write_json, no_space_as_error, remove_stale_temps
from cnnpipe.models.trained import save_trained
from cnnpipe.models.transfer import TransferArch, weights_label
from cnnpipe.train.batches import (
    Split,
    augment_generator,
    batch_indices,
    epoch_permutation,
    eval_batches,
    iterate_batches,
    rank_stream,
)
from cnnpipe.train.checkpoint import (
    checkpoint_state,
    data_identity,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from cnnpipe.train.distributed import Distributed
from cnnpipe.train.optim import (
    LossFn,
    Schedule,
    build_schedule,
    current_lr,
    l2_penalty,
    predictions,
    split_aux,
)
from cnnpipe.train.preview import save_augmentation_preview, single_op_transforms
from cnnpipe.train.runtime import Runtime, build_runtime
from cnnpipe.transforms.pipeline import InputPipeline

DROPOUT_STREAM = 3  # derive_seed(seed, epoch, stream) for the global generator (dropout)
MIN_EVAL_BATCH = 128
LIVE_METRICS = (("train/loss", "train_loss"), ("train/acc", "train_acc"), ("val/loss", "val_loss"),
                ("val/acc", "val_acc"), ("lr", "lr"))  # fmt: skip

Log = Callable[[str], None]


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in an epoch of ``n`` images (the last batch may be smaller)."""
    return math.ceil(n / batch_size)


def _totals(loss_sum: Tensor, correct: Tensor, dist: Distributed | None) -> tuple[float, float]:
    """(loss sum, correct count) of this process, summed over all ranks under DDP."""
    totals = torch.stack([loss_sum.double(), correct.double()])
    if dist is not None:
        dist.sum(totals)
    loss, right = totals.tolist()
    return loss, right


def train_epoch(rt: Runtime, schedule: Schedule, epoch: int, *, desc: str = "") -> dict[str, float]:
    """Train one epoch (1-based ``epoch``); returns mean data loss (without the L2 penalty) and accuracy.

    Under DDP this rank trains on its shard of every global batch. DDP averages the ranks'
    gradients, so a shard's mean loss is weighted by ``world × shard / global batch``: the
    average then equals the gradient of the global batch's mean loss, whatever the shard
    sizes. The L2 penalty is the same on every rank and stays unweighted.
    """
    config, data, device, model, dist = rt.config, rt.data, rt.device, rt.model, rt.dist
    seed, loss_name = config.train.seed, config.train.loss
    rank, world = (0, 1) if dist is None else (dist.rank, dist.world_size)
    step_model = rt.step_model
    step_model.train()
    torch.manual_seed(devices.derive_seed(seed, epoch, *rank_stream(DROPOUT_STREAM, rank)))
    batches = batch_indices(epoch_permutation(len(data.train), seed, epoch), config.train.batch_size)
    shards = batches if dist is None else [dist.shard(rows) for rows in batches]
    generator = augment_generator(seed, epoch, rank)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    disable = None if rt.is_main else True
    with tqdm(total=len(batches), desc=desc, unit="batch", leave=False, disable=disable) as bar:
        for i, (inputs, labels) in enumerate(
            iterate_batches(data.train, shards, data.train_pipeline, device, generator)
        ):
            with devices.autocast(device, rt.amp):
                logits, aux_logits = split_aux(step_model(inputs))
                if len(labels):
                    loss = rt.loss_fn(logits, labels)
                    aux_loss = None if aux_logits is None else rt.loss_fn(aux_logits, labels)
            if len(labels):
                objective = loss.float()
                if aux_loss is not None:  # logged losses stay the main head's, comparable with validation
                    objective = objective + rt.aux_weight * aux_loss.float()
                if world > 1:
                    objective = objective * (world * len(labels) / len(batches[i]))
            else:
                # An empty shard (a last batch with fewer rows than ranks): zero gradients, but
                # through the model's outputs, so DDP sees every parameter take part as usual.
                objective = sum(out.float().sum() * 0.0 for out in (logits, aux_logits) if out is not None)
            penalty = l2_penalty(model, config.train.l2, config.train.l2_layers)
            if penalty is not None:
                objective = objective + penalty
            rt.optimizer.zero_grad(set_to_none=True)
            if rt.scaler is None:
                objective.backward()
                rt.optimizer.step()
            else:  # fp16: scale the loss against underflow, skip steps whose gradients overflowed
                rt.scaler.scale(objective).backward()
                rt.scaler.step(rt.optimizer)
                rt.scaler.update()
            schedule.after_batch()
            if len(labels):
                loss_sum += loss.detach().float() * len(labels)
                correct += (predictions(logits.detach(), loss_name) == labels).sum()
            bar.update(1)
            if not bar.disable and (i % 20 == 0 or i + 1 == len(batches)):
                bar.set_postfix(loss=f"{loss.item():.4f}")
    if dist is not None:
        dist.sync_buffers(model)
    n = len(data.train)
    loss_total, right = _totals(loss_sum, correct, dist)
    return {"loss": loss_total / n, "acc": right / n}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    pipeline: InputPipeline,
    loss_fn: LossFn,
    loss_name: str,
    device: torch.device,
    batch_size: int,
    dist: Distributed | None = None,
    amp: str = "off",
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``split`` through the (deterministic) eval pipeline.

    With ``dist`` each rank evaluates every ``world``-th batch and the sums are combined.
    """
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    batches = eval_batches(split, batch_size)
    if dist is not None:
        batches = batches[dist.rank :: dist.world_size]
    for inputs, labels in iterate_batches(split, batches, pipeline, device):
        with devices.autocast(device, amp):
            logits = model(inputs)
            loss = loss_fn(logits, labels)
        loss_sum += loss.float() * len(labels)
        correct += (predictions(logits, loss_name) == labels).sum()
    loss_total, right = _totals(loss_sum, correct, dist)
    return {"loss": loss_total / len(split), "acc": right / len(split)}


def _open_live(live_dir: Path, history: list[dict[str, Any]]):
    """A fresh dvclive logger for ``live_dir`` with ``history`` replayed into it.

    Rewriting the logs from the checkpoint's history (instead of appending with dvclive's own
    resume) keeps them equal to the checkpoint even when a run was killed between the two
    writes, so the curves of a resumed run match an uninterrupted one row for row.
    """
    from dvclive import Live  # imports DVC: keep it off the module import path
    from dvclive.plots import NumpyEncoder
    from dvclive.serialize import dump_json

    class EpochLive(Live):
        """dvclive whose step is the epoch (from 1) and whose summary is the last epoch's
        train and validation loss and accuracy alone.

        dvclive counts steps from 0 and puts ``step`` and every logged value (``lr`` too) in
        ``metrics.json``; here the curves' x axis reads as epochs and `dvc exp show` gets
        four columns per model from this file. The ``lr`` history stays in ``plots/``.
        """

        def make_summary(self):
            summary = {key: self.summary[key] for key in ("train", "val") if key in self.summary}
            dump_json(summary, self.metrics_file, cls=NumpyEncoder)

    shutil.rmtree(live_dir, ignore_errors=True)
    live = EpochLive(dir=str(live_dir), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)
    live.step = 1
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
    """Restore a matching checkpoint; returns (completed epochs, history so far).

    Under DDP rank 0 reads the checkpoint and hands it to the other ranks (which may run on
    machines without the file), so every rank continues from the same state.
    """
    name, epochs, path = rt.config.name, rt.config.epochs, rt.paths.checkpoint
    state, why, existed = None, "", False
    if rt.is_main:
        state, why = load_checkpoint(path)
        existed = path.exists()
    if rt.dist is not None:
        state, why, existed = rt.dist.broadcast((state, why, existed))
    if state is None:
        if existed:
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
    if rt.scaler is not None and "scaler" in state:
        rt.scaler.load_state_dict(state["scaler"])
    devices.set_rng_state(state["rng"])
    if done < epochs:
        print_(f"resuming {name} from epoch {done + 1}/{epochs}")
    else:
        print_(f"{name}: all {epochs} epochs are in {path}; exporting the trained model")
    return done, list(state["history"])


def _outcome(rt: Runtime, history: list[dict[str, Any]]) -> dict[str, Any]:
    """What a finished run amounts to: stored in model.pt (``extra``) and returned by train_model."""
    config = rt.config
    outcome = {
        "dataset": config.dataset,
        "epochs": config.epochs,
        "valid_split": rt.data.valid_name,
        "best": _best(history),
        "last": dict(history[-1]),
        "seed": config.train.seed,
        "device": rt.device.type,
        "amp": rt.amp,
    }
    if rt.device_warning:
        outcome["device_warning"] = rt.device_warning
    if isinstance(config.arch, TransferArch):
        outcome["weights"] = weights_label(config.arch)
    return outcome


def _export(rt: Runtime, history: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
    """Write model.pt (with ``outcome`` as its extra), history.json and the augmentation preview."""
    config, data, files = rt.config, rt.data, rt.paths
    atomic_write_json(files.history_file, history)
    save_trained(
        files.model_file,
        config.name,
        rt.model,
        arch=config.arch_params,
        classes=data.classes,
        normalization=data.normalization,
        eval_transform=config.eval_transform,
        input_shape=data.input_shape,
        extra=outcome,
    )
    if len(data.train_pipeline.transform):
        transform, ops, part, draws = data.train_pipeline.transform, config.augment, "augment", 2
    else:  # nothing random: show what the model sees at evaluation instead
        transform, ops, part, draws = data.eval_pipeline.transform, config.eval_transform, "eval_transform", 1
    steps = single_op_transforms(ops, f"{config.key}.{part}") if len(ops) > 1 else []
    save_augmentation_preview(
        np.array(data.train.images[:8]),  # a writable copy of the few images shown
        transform,
        files.augmentation_plot,
        seed=config.train.seed,
        title=f"{config.name}: {part}" + (", each op alone, then all of them" if steps else ""),
        draws=draws,
        steps=steps,
    )


def _check_same_run(dist: Distributed, fp: str, dataset: str) -> None:
    """Fail on every rank alike when some rank sees other params or data than rank 0."""
    fingerprints = dist.gather(fp)
    odd = [rank for rank, other in enumerate(fingerprints) if other != fingerprints[0]]
    if odd:
        raise ParamError(
            f"run.distributed: rank {odd[0]} sees other params or data than rank 0; every node needs "
            f"the same params.yaml and {paths.prepared_dir(dataset).as_posix()}"
        )


def _silent(_: str) -> None:
    pass


def _stop_if_params_changed(rt: Runtime, changed: Callable[[], bool] | None) -> None:
    """Raise on every rank alike when rank 0 finds params.yaml changed under the run."""
    if changed is None:
        return
    verdict = bool(changed()) if rt.is_main else False
    if rt.dist is not None:
        verdict = rt.dist.broadcast(verdict)
    if verdict:
        raise ParamsChangedError(
            f"params.yaml changed while train@{rt.config.name} was running (another dvc exp run in "
            "this workspace?); nothing more was written — queue experiments instead: "
            "dvc exp run --queue -S …, then dvc queue start"
        )


def _start(rt: Runtime) -> tuple[Schedule, str]:
    """Clear a crashed run's temporaries, build the schedule and the checkpoint fingerprint."""
    config, data, files = rt.config, rt.data, rt.paths
    if rt.is_main:  # what a run killed mid-write left beside the outputs
        remove_stale_temps(files.checkpoint, files.model_file, files.history_file, files.augmentation_plot)
    schedule = build_schedule(
        rt.optimizer, config.train, config.epochs, steps_per_epoch(len(data.train), config.train.batch_size)
    )
    fp = fingerprint(
        config.model_params,
        data_identity(files.prepared, data.meta),
        data.normalization,
        epochs=config.epochs,
    )
    if rt.dist is not None:
        _check_same_run(rt.dist, fp, config.dataset)
    return schedule, fp


def validate(rt: Runtime) -> dict[str, float]:
    """Mean loss and accuracy of the model on the validation split (see :func:`evaluate`)."""
    config, data = rt.config, rt.data
    eval_batch = max(config.train.batch_size, MIN_EVAL_BATCH)
    return evaluate(rt.model, data.valid, data.eval_pipeline, rt.loss_fn, config.train.loss, rt.device,
                    eval_batch, rt.dist, amp=rt.amp)  # fmt: skip


def checkpoint_epoch(rt: Runtime, live, schedule: Schedule, fp: str, history: list[dict[str, Any]]) -> None:
    """Log the last epoch of ``history`` to dvclive and write its checkpoint (rank 0 only)."""
    if not rt.is_main:
        return
    with no_space_as_error(rt.paths.live_dir):
        _log_live(live, history[-1])
    state = checkpoint_state(
        fingerprint=fp,
        name=rt.config.name,
        epochs=rt.config.epochs,
        model=rt.model,
        optimizer=rt.optimizer,
        scheduler=schedule,
        history=history,
        rng=devices.rng_state(),
        device=rt.device.type,
        scaler=rt.scaler,
    )
    save_checkpoint(rt.paths.checkpoint, state)


def _epoch_line(rt: Runtime, entry: Mapping[str, Any], seconds: float) -> str:
    name, epochs, valid = rt.config.name, rt.config.epochs, rt.data.valid_name
    return (
        f"{name} epoch {entry['epoch']}/{epochs}: train loss {entry['train_loss']:.4f} acc "
        f"{entry['train_acc']:.2%} | {valid} loss {entry['val_loss']:.4f} acc {entry['val_acc']:.2%} | "
        f"lr {entry['lr']:.3g} | {seconds:.1f}s"
    )


def train_model(
    config: TrainConfig,
    *,
    root: Path = Path("."),
    log: Log = print,
    dist: Distributed | None = None,
    params_changed: Callable[[], bool] | None = None,
) -> dict:
    """Train the model of ``config`` (``models.<name>``, parsed) with files under ``root``; returns a summary.

    Reads ``data/prepared/<dataset>/`` and ``data/stats/<dataset>.json``; writes
    ``models/<name>/{checkpoint.pt,model.pt,history.json}``, ``dvclive/<name>/`` and
    ``plots/<name>/augmentation.png``. The summary holds ``name``, ``history`` (one dict per
    epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr), ``resumed_from`` (epochs taken
    from a checkpoint) and what model.pt's ``extra`` holds: ``best`` and ``last`` validation
    metrics, dataset, epochs, valid_split, seed, device (and a transfer model's weights).

    ``dist`` makes this one DDP worker of several (see the module docstring); only rank 0
    logs and writes, every rank returns the same summary. ``params_changed`` (see
    :func:`cnnpipe.config.load.watch`) returning True stops the run with a ParamsChangedError
    before the next write.
    """
    if dist is not None and not dist.is_main:
        log = _silent
    rt = build_runtime(config, root=Path(root), log=log, dist=dist)
    name, epochs, data = config.name, config.epochs, rt.data
    schedule, fp = _start(rt)
    done, history = _resume_point(rt, schedule, log, fp)
    if done == 0:
        log(
            f"training {name} on {config.dataset} ({len(data.train)} train / {len(data.valid)} "
            f"{data.valid_name} images) for {epochs} epochs on {rt.device.type}"
            + ("" if dist is None else f" x {dist.world_size} processes (DDP)")
        )
    live = None
    if rt.is_main:
        with no_space_as_error(rt.paths.live_dir):
            live = _open_live(rt.paths.live_dir, history)

    for epoch in range(done + 1, epochs + 1):
        start, lr = time.perf_counter(), current_lr(rt.optimizer)
        train = train_epoch(rt, schedule, epoch, desc=f"{name} {epoch}/{epochs}")
        val = validate(rt)
        schedule.after_epoch(val["loss"])
        history.append({"epoch": epoch, "train_loss": train["loss"], "train_acc": train["acc"],
                        "val_loss": val["loss"], "val_acc": val["acc"], "lr": lr})  # fmt: skip
        _stop_if_params_changed(rt, params_changed)
        log(_epoch_line(rt, history[-1], time.perf_counter() - start))
        checkpoint_epoch(rt, live, schedule, fp, history)

    _stop_if_params_changed(rt, params_changed)
    outcome = _outcome(rt, history)
    if rt.is_main:
        with no_space_as_error(rt.paths.live_dir):
            live.end()
        _export(rt, history, outcome)
        best, last = outcome["best"], outcome["last"]
        log(
            f"{name}: best {data.valid_name} acc {best['val_acc']:.2%} (epoch {best['epoch']}), "
            f"last {last['val_acc']:.2%}; wrote {rt.paths.model_file}"
        )
    return {"name": name, **outcome, "resumed_from": done, "history": history}
