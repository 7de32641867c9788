"""Multi-process training (PyTorch DDP): launching the train stage under torchrun, and each worker's group.

``run.distributed`` asks for ``nproc_per_node`` processes on each of ``nnodes`` machines. The
train stage then does not train itself: :func:`launch` runs torchrun's launcher
(``torch.distributed.run``) in the stage's process, which starts the workers, each one
``python stages/train.py <model>`` again with torchrun's ``RANK`` / ``LOCAL_RANK`` /
``WORLD_SIZE`` in its environment. A worker (:func:`is_worker`) joins the process group in
:func:`run_worker` (NCCL on CUDA with one GPU per process, ``cuda:LOCAL_RANK``; gloo on the
CPU) and trains with a :class:`Distributed` handle that the training loop uses to shard the
global batches, sum its metrics and leave every output to rank 0.

On one node the rendezvous is local on a free port (torchrun's ``--standalone``). With several
nodes it is static: node 0 listens on ``run.distributed.rdzv_endpoint`` and every node says
which it is in the ``NODE_RANK`` environment variable, so global rank 0 (the one that writes
the outputs) always runs on node 0, where ``dvc repro`` runs.

A failure on any worker ends the whole run; the launcher then raises one
:class:`~cnnpipe.errors.CnnpipeError` with the failing rank's one-line message, so the stage
fails with the usual single ``error:`` line instead of one per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import Tensor, nn

from cnnpipe import device as devices
from cnnpipe.config.run import DistributedSettings
from cnnpipe.cpus import usable_cpus
from cnnpipe.errors import CnnpipeError, ParamError

WORKER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")  # set by torchrun for every worker
NODE_RANK_ENV = "NODE_RANK"  # which node this is, 0..nnodes-1 (multi-node runs only)
ERROR_DIR_ENV = "CNNPIPE_DDP_ERROR_DIR"  # where workers leave their one-line error for the launcher
LAUNCHER_PID_ENV = "CNNPIPE_DDP_LAUNCHER_PID"  # workers end themselves when this process is gone
KEY = "run.distributed"


@dataclass(frozen=True)
class Distributed:
    """This worker's place in the process group, and the few collectives training needs."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes outputs."""
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's part of a global batch: every ``world_size``-th row from ``rank`` on."""
        return rows[self.rank :: self.world_size]

    def sum(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over all ranks, in place; every rank gets the same result."""
        tdist.all_reduce(tensor, op=tdist.ReduceOp.SUM)
        return tensor

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (any picklable value) on every rank."""
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (e.g. BatchNorm running statistics).

        DDP broadcasts them before each forward pass, but the last training batch updates
        them on every rank from its own shard; this makes validation and the checkpoint see
        rank 0's values everywhere.
        """
        for buffer in model.buffers():
            tdist.broadcast(buffer, src=0)


def is_worker(environ: Mapping[str, str] = os.environ) -> bool:
    """True inside a process that torchrun started (it sets RANK, LOCAL_RANK and WORLD_SIZE)."""
    return all(name in environ for name in WORKER_ENV)


def _device_for(request: str, nproc_per_node: int) -> torch.device:
    """The device kind the workers will use, checked against ``nproc_per_node``."""
    device = devices.select_device(request)
    if device.index is not None and nproc_per_node > 1:
        raise ParamError(
            f"run.device: {request!r} pins one GPU, but {nproc_per_node} processes use one GPU each; "
            "set run.device: cuda (or auto)"
        )
    if device.type == "mps":
        raise ParamError(
            f"{KEY}: several processes need CUDA (NCCL) or the CPU (gloo), not Apple MPS; "
            "set run.device: cpu or use one process"
        )
    if device.type == "cuda" and nproc_per_node > torch.cuda.device_count():
        raise ParamError(
            f"{KEY}.nproc_per_node: {nproc_per_node} processes but only {torch.cuda.device_count()} "
            f"CUDA device(s) visible on this node; one process per GPU, so set it to at most "
            f"{torch.cuda.device_count()} (or run.device: cpu)"
        )
    return device


def node_rank(settings: DistributedSettings, environ: Mapping[str, str] = os.environ) -> int:
    """This node's rank: 0 on a single node, otherwise ``NODE_RANK`` from the environment."""
    if settings.nnodes == 1:
        return 0
    value = environ.get(NODE_RANK_ENV, "")
    if not value.isdigit() or int(value) >= settings.nnodes:
        got = f"got {value!r}" if value else "it is not set"
        raise ParamError(
            f"{KEY}.nnodes: {settings.nnodes} nodes need {NODE_RANK_ENV}=0..{settings.nnodes - 1} in each "
            f"node's environment (0 on the node that runs dvc and writes the outputs); {got}"
        )
    return int(value)


def launcher_args(
    settings: DistributedSettings, rank_of_node: int, script: str, args: list[str]
) -> list[str]:
    """torchrun's command line (without the program name) for ``python script *args`` on this node."""
    argv = ["--nproc-per-node", str(settings.nproc_per_node), "--nnodes", str(settings.nnodes)]
    if settings.nnodes == 1:
        argv.append("--standalone")  # a local rendezvous on a free port: parallel runs do not clash
    else:
        host, _, port = str(settings.rdzv_endpoint).rpartition(":")
        argv += ["--node-rank", str(rank_of_node), "--master-addr", host, "--master-port", port]
    return [*argv, "--max-restarts", "0", script, *args]


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the workers) for the duration of the block."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _threads_per_process(nproc_per_node: int) -> str:
    """CPU threads for each worker: this machine's share, unless OMP_NUM_THREADS says otherwise."""
    if "OMP_NUM_THREADS" in os.environ:
        return os.environ["OMP_NUM_THREADS"]
    return str(max(1, usable_cpus() // nproc_per_node))


def _failure_message(error_dir: Path, failure) -> str:
    """The one line to show for a failed run: the lowest rank's own message if it left one."""
    reports = sorted(error_dir.glob("rank*.txt"), key=lambda p: int(p.stem[4:]))
    if reports:
        return reports[0].read_text().strip()
    rank, first = failure.get_first_failure()
    how = f"was killed by signal {-first.exitcode}" if first.exitcode < 0 else f"exited with {first.exitcode}"
    return f"training process rank {rank} {how}; its output is above"


def launch(settings: DistributedSettings, device_request: str, script: str | Path, args: list[str]) -> None:
    """Run ``python script *args`` as this node's ``nproc_per_node`` DDP workers and wait for them.

    Checks up front what can be checked here (device kind, GPU count, NODE_RANK). Raises a
    CnnpipeError with the failing worker's one-line message when any worker fails, and
    KeyboardInterrupt when the run is interrupted (the workers are stopped either way).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    _device_for(device_request, settings.nproc_per_node)
    argv = launcher_args(settings, node_rank(settings), str(script), list(args))
    launcher_log = logging.getLogger("torch.distributed.elastic")
    with tempfile.TemporaryDirectory(prefix="cnnpipe-ddp-") as error_dir:
        env = {
            ERROR_DIR_ENV: error_dir,
            LAUNCHER_PID_ENV: str(os.getpid()),
            "OMP_NUM_THREADS": _threads_per_process(settings.nproc_per_node),
        }
        level = launcher_log.level
        launcher_log.setLevel(logging.CRITICAL)  # its failure report repeats what the line below says
        try:
            with _environment(**env):
                torchrun(get_args_parser().parse_args(argv))
        except ChildFailedError as exc:
            raise CnnpipeError(_failure_message(Path(error_dir), exc)) from None
        except SignalException:
            raise KeyboardInterrupt from None
        finally:
            launcher_log.setLevel(level)


def _end_with_launcher() -> None:
    """End this worker (SIGKILL) when the launcher that started it is gone.

    torchrun starts workers in their own sessions, so a launcher killed outright (SIGKILL,
    the OOM killer) would otherwise leave them training and writing checkpoints.
    """
    launcher = os.environ.get(LAUNCHER_PID_ENV)
    if launcher is None or str(os.getppid()) != launcher:
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def init_worker(settings: DistributedSettings, device_request: str) -> Distributed:
    """Join the process group torchrun set up: NCCL on ``cuda:LOCAL_RANK``, gloo on the CPU."""
    rank, local_rank, world = (int(os.environ[name]) for name in WORKER_ENV)
    if world != settings.world_size:
        raise ParamError(
            f"{KEY}: this process is one of {world} started by torchrun, but {KEY} asks for "
            f"{settings.nproc_per_node} per node x {settings.nnodes} node(s) = {settings.world_size}"
        )
    device = _device_for(device_request, settings.nproc_per_node)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        tdist.init_process_group("nccl", device_id=device)
    else:
        tdist.init_process_group("gloo")
    return Distributed(rank=rank, local_rank=local_rank, world_size=world, device=device)


def run_worker(
    settings: DistributedSettings, device_request: str, work: Callable[[Distributed], Any]
) -> None:
    """Run ``work`` in this torchrun worker inside the process group, then leave the group.

    Under :func:`launch`, a CnnpipeError is handed to the launcher (which shows it once)
    instead of being printed by every rank.
    """
    _end_with_launcher()
    error_dir = os.environ.get(ERROR_DIR_ENV)
    rank = os.environ.get("RANK", "0")
    try:
        dist = init_worker(settings, device_request)
        try:
            work(dist)
        finally:
            tdist.destroy_process_group()
    except CnnpipeError as exc:
        if error_dir is None:
            raise
        (Path(error_dir) / f"rank{rank}.txt").write_text(f"{exc}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        if error_dir is None:
            raise
        sys.exit(130)  # the launcher reports the interruption
