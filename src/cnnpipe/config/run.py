"""``run`` of params.yaml: the settings every train stage shares, validated into dataclasses.

``run.device`` (auto, cpu, cuda, cuda:N or mps), ``run.amp`` (auto, bf16, fp16 or off),
``run.compile`` (torch.compile the model), ``run.resident_data`` / ``run.resident_max_fraction``
(keep the prepared splits on the training device), ``run.max_epochs`` (a cap on every model's
epochs, null for none) and the launcher settings ``run.distributed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnpipe.checks import choice, flag, integer, mapping, number, param_error, section
from cnnpipe.errors import ParamError

DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
AMP_MODES = ("auto", "bf16", "fp16", "off")
DISTRIBUTED_KEYS = ("nproc_per_node", "nnodes", "rdzv_endpoint")


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


@dataclass(frozen=True)
class RunSettings:
    """``run``: device, mixed precision, compilation, resident data, the epoch cap, the DDP launcher."""

    device: str = "auto"
    amp: str = "auto"
    compile: bool = False
    resident_data: str | bool = "auto"  # "auto", True or False
    resident_max_fraction: float = 0.25  # share of the GPU's total memory auto may fill with data
    max_epochs: int | None = None
    distributed: DistributedSettings = field(default_factory=DistributedSettings)


def _device(value: Any, key: str) -> str:
    """One of :data:`DEVICES`, or ``cuda:N`` (a GPU by index, for runs pinned side by side)."""
    if value in DEVICES or (isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise param_error(key, "expected auto, cpu, cuda, cuda:N or mps", value)


def _resident(value: Any, key: str) -> str | bool:
    """``auto``, ``true`` or ``false``."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise param_error(key, "must be auto, true or false", value)


def _share(value: Any, key: str) -> float:
    """A fraction f with 0 < f <= 1."""
    share = number(value, key)
    if not 0 < share <= 1:
        raise param_error(key, "must be a fraction with 0 < f <= 1", value)
    return share


def _endpoint(value: Any, key: str) -> str:
    """``host:port`` with a port in 1..65535."""
    host, sep, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise param_error(key, "expected host:port of node 0 (e.g. 10.0.0.1:29500)", value)
    return value


def parse_distributed(params: Mapping[str, Any]) -> DistributedSettings:
    """Validate ``run.distributed`` (absent = one process)."""
    raw = section(params, "run").get("distributed")
    if raw is None:
        return DistributedSettings()
    key = "run.distributed"
    values = mapping(raw, key, DISTRIBUTED_KEYS)
    nproc = integer(values.get("nproc_per_node", 1), f"{key}.nproc_per_node", 1)
    nnodes = integer(values.get("nnodes", 1), f"{key}.nnodes", 1)
    endpoint = values.get("rdzv_endpoint")
    if endpoint is None and nnodes > 1:
        raise ParamError(
            f"{key}.rdzv_endpoint: {nnodes} nodes need the host:port of node 0 "
            "(e.g. 10.0.0.1:29500), reachable from every node"
        )
    if endpoint is not None:
        endpoint = _endpoint(endpoint, f"{key}.rdzv_endpoint")
    return DistributedSettings(nproc_per_node=nproc, nnodes=nnodes, rdzv_endpoint=endpoint)


def parse_device(params: Mapping[str, Any]) -> str:
    """Validate ``run.device`` alone (default ``auto``): the evaluate stage reads no other run key."""
    return _device(section(params, "run").get("device", "auto"), "run.device")


def parse_run(params: Mapping[str, Any]) -> RunSettings:
    """Validate the ``run`` section of a params mapping (absent keys take their defaults)."""
    run = section(params, "run")
    max_epochs = run.get("max_epochs")
    return RunSettings(
        device=parse_device(params),
        amp=choice(run.get("amp", "auto"), "run.amp", AMP_MODES),
        compile=flag(run.get("compile", False), "run.compile"),
        resident_data=_resident(run.get("resident_data", "auto"), "run.resident_data"),
        resident_max_fraction=_share(run.get("resident_max_fraction", 0.25), "run.resident_max_fraction"),
        max_epochs=None if max_epochs is None else integer(max_epochs, "run.max_epochs", 1),
        distributed=parse_distributed(params),
    )
