"""``cnnpipe summary MODEL``: every layer's output shape and parameters, as the sources print them.

The model is built from params.yaml the way the train stage builds it (``models.<name>`` is
validated by :func:`cnnpipe.config.train.parse_config`, the network by
:func:`cnnpipe.models.network.build_network`), on PyTorch's *meta* device: tensors there have
shapes and dtypes but no storage, so even Inception-V3 at 299×299 is built and run in a blink
and no pretrained weights are needed (weights do not change shapes, counts or what is frozen).

`torchinfo <https://github.com/TylerYep/torchinfo>`_ (the maintained successor of torchsummary)
runs one forward pass on a batch of ``arch.input`` and records each module's output shape and
parameters. A model with Inception's auxiliary classifier is run in training mode, where that
head takes part (in eval mode it is skipped); every other model in eval mode.

Per row: the module's qualified name (as ``named_modules()`` calls it; for a transfer model,
within the torchvision backbone, the names ``arch.freeze`` takes), its type, its output shape
with ``N`` for the batch, its parameters (a layer's own; a module shown without its children:
all of theirs) and whether they are trainable or frozen. Then the totals,
the parameters' size in MB (float32: 4 bytes each) and torchinfo's forward/backward pass
estimate per image (the outputs of the layers with parameters, twice: once more for their
gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchinfo
from torch import nn

from cnnpipe.config.train import TrainConfig
from cnnpipe.models.network import build_network
from cnnpipe.models.transfer import TransferArch, TransferNet

BATCH = 2  # a batch of two: BatchNorm in training mode needs more than one value per channel
MB = 1e6


@dataclass(frozen=True)
class LayerRow:
    """One row of a summary."""

    name: str  # qualified module name, e.g. features.conv1
    kind: str  # class name, e.g. Conv2d
    depth: int  # 1 for the model's children
    shape: tuple[int | str, ...]  # output shape, "N" for the batch; () when not recorded
    params: int | None  # None: a container whose children are listed (their rows hold the counts)
    trainable: int

    @property
    def status(self) -> str:
        """``trainable``, ``frozen``, ``partly frozen`` or empty for a row without parameters."""
        if not self.params:
            return ""
        if self.trainable == self.params:
            return "trainable"
        return "frozen" if self.trainable == 0 else "partly frozen"


@dataclass(frozen=True)
class ModelSummary:
    """What ``cnnpipe summary`` prints for one model."""

    name: str
    model_type: str
    input_shape: tuple[int, ...]  # C, H, W
    mode: str  # "eval" or "train": the mode the forward pass ran in
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    param_mb: float  # parameters' bytes / 1e6
    input_mb: float  # one input image's bytes / 1e6
    pass_mb: float  # torchinfo's forward/backward pass size of one image / 1e6

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    def row(self, name: str) -> LayerRow:
        """The row of the module called ``name``; KeyError if it has none."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)


def build_for_summary(config: TrainConfig) -> tuple[nn.Module, tuple[int, int, int], str]:
    """(model on the meta device, its input C×H×W, forward mode) for the model of ``config``."""
    with torch.device("meta"):
        model = build_network(config.arch, key=f"{config.key}.arch", load_weights=False)
    arch = config.arch
    mode = "train" if isinstance(arch, TransferArch) and arch.aux_logits else "eval"
    return model, tuple(arch.input), mode


def summarize(
    model: nn.Module, input_shape: tuple[int, ...], *, name: str = "model", depth: int = 2, mode: str = "eval"
) -> ModelSummary:
    """Run torchinfo on ``model`` (any device; meta is fastest) for inputs of ``input_shape``.

    A transfer model's wrapper is left out: rows are the torchvision backbone's modules, named
    as ``arch.freeze`` names them (``Mixed_7c``, ``fc``), its top-level blocks at depth 1.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    stats = torchinfo.summary(
        model,
        input_data=torch.empty(BATCH, *input_shape, device=device),
        depth=depth + 1,
        mode=mode,
        verbose=0,
    )
    backbone = model.net if isinstance(model, TransferNet) else None
    shift = 1 if backbone is not None else 0
    names = {id(module): qualified for qualified, module in (backbone or model).named_modules()}
    rows = []
    for layer in stats.summary_list:
        level = layer.depth - shift
        if level < 1 or level > depth:
            continue
        shows_children = not layer.is_leaf_layer and level < depth
        if layer.is_recursive:
            params: int | None = 0
        elif shows_children:
            leftover = layer.leftover_params()  # parameters of children that never ran
            params = leftover if leftover > 0 else None
        else:
            params = layer.num_params
        trainable = layer.leftover_trainable_params() if shows_children and params else layer.trainable_params
        shape = tuple(layer.output_size)
        rows.append(
            LayerRow(
                name=names.get(id(layer.module), layer.var_name),
                kind=layer.class_name,
                depth=level,
                shape=("N", *shape[1:]) if shape else (),
                params=params,
                trainable=max(trainable, 0),
            )
        )
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in unique)
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    param_bytes = sum(p.numel() * p.element_size() for p in unique)
    return ModelSummary(
        name=name,
        model_type=type(model).__name__ if backbone is None else f"{type(backbone).__name__} with a new head",
        input_shape=tuple(input_shape),
        mode=mode,
        rows=tuple(rows),
        total_params=total,
        trainable_params=trainable,
        param_mb=param_bytes / MB,
        input_mb=stats.total_input / BATCH / MB,
        pass_mb=stats.total_output_bytes / BATCH / MB,
    )


def model_summary(config: TrainConfig, *, depth: int = 2) -> ModelSummary:
    """The summary of the model of ``config`` (``models.<name>``, parsed; see the module docstring)."""
    model, input_shape, mode = build_for_summary(config)
    return summarize(model, input_shape, name=config.name, depth=depth, mode=mode)


def _shape(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")" if shape else "-"


def format_summary(summary: ModelSummary) -> str:
    """The summary as a plain-text table with totals below it."""
    header = ("layer", "type", "output shape", "params", "trainable")
    body = [
        (
            "  " * (row.depth - 1) + row.name,
            row.kind,
            _shape(row.shape),
            "" if row.params is None else f"{row.params:,}",
            row.status,
        )
        for row in summary.rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        padded = [
            cell.rjust(w) if i == 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    c, h, w = summary.input_shape
    lines = [
        f"{summary.name}: {summary.model_type}, input (N, {c}, {h}, {w})"
        + (" (training mode: the auxiliary head runs)" if summary.mode == "train" else ""),
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
        *(line(cells) for cells in body),
        "",
        f"total params:      {summary.total_params:,}",
        f"trainable params:  {summary.trainable_params:,}",
        f"frozen params:     {summary.frozen_params:,}",
        f"params size:       {summary.param_mb:.2f} MB",
        f"input size:        {summary.input_mb:.3f} MB per image",
        f"forward/backward:  {summary.pass_mb:.2f} MB per image "
        "(outputs of the layers with parameters, ×2 for their gradients)",
    ]
    return "\n".join(lines)
