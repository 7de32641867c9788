"""Build a from-scratch CNN or MLP from a plain, YAML-friendly architecture mapping.

The mapping lives in params.yaml under ``models.<name>.arch``; every knob is its own key so
a single value can be overridden (``dvc exp run -S models.mnist_cnn.arch.dropout=0.3``)::

    input: [1, 28, 28]          # C, H, W the network expects
    conv:                       # conv blocks in order; empty or omitted for an MLP
      - {out: 32, kernel: 5, padding: 2, pool: 2, dropout: 0.0}
      - {out: 64, kernel: 5, padding: 2, pool: 2, dropout: 0.0}
    global_pool: false          # true: adaptive average pool to 1x1 after the last block
    hidden: [1024]              # linear layers after flatten
    hidden_activation: relu     # after each hidden linear: relu | tanh | ... | none
    dropout: 0.5                # after each hidden linear (0: no Dropout module)
    activation: relu            # after each conv, unless the block sets its own
    outputs: 10                 # units of the final linear layer (logits; 1 for BCE)
    log_softmax: false          # true: end in LogSoftmax (log-probabilities, for train.loss nll)

A conv block is conv -> activation -> pool(pool) -> dropout; block keys ``padding``
(default 0), ``stride`` (1), ``pool`` (1 = no pooling), ``pool_type`` (``max``, or ``avg``
for average pooling), ``dropout`` (0) and ``activation`` (the top-level one) are optional.
The model returns logits: sigmoid / softmax belong to the loss. With ``log_softmax: true``
it returns log-probabilities instead (the source's LogSoftmax + NLLLoss form): their ``exp``
is the class probabilities.

The model is an ``nn.Sequential`` with two named parts, ``features`` (conv blocks, then
the global pool) and ``classifier`` (flatten, hidden linears, output linear, then the
LogSoftmax if any), whose layers carry stable names (``conv1``, ``conv1_act``, ``fc1``,
``out``, ``log_softmax``...). So
``model.features[0]`` is the first convolution, and state-dict keys do not shift when a
dropout or activation is switched on or off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from cnnpipe.checks import as_list, choice, dropout_probability, flag, integer, is_int, mapping, required
from cnnpipe.errors import ParamError

ACTIVATIONS: dict[str, Callable[[], nn.Module] | None] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "none": None,
}

ARCH_KEYS = (
    "input",
    "conv",
    "global_pool",
    "hidden",
    "hidden_activation",
    "dropout",
    "activation",
    "outputs",
    "log_softmax",
)
BLOCK_KEYS = ("out", "kernel", "padding", "stride", "pool", "pool_type", "dropout", "activation")
POOL_TYPES: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass(frozen=True)
class ConvBlock:
    """One validated conv block: conv -> activation -> max- or average-pool -> dropout."""

    out: int
    kernel: int
    padding: int = 0
    stride: int = 1
    pool: int = 1
    pool_type: str = "max"  # max | avg (a no-op when pool is 1)
    dropout: float = 0.0
    activation: str = "relu"


@dataclass(frozen=True)
class Arch:
    """A validated architecture with every default filled in."""

    input: tuple[int, int, int]
    conv: tuple[ConvBlock, ...] = ()
    global_pool: bool = False
    hidden: tuple[int, ...] = ()
    hidden_activation: str = "relu"
    dropout: float = 0.0
    activation: str = "relu"
    outputs: int = 1
    log_softmax: bool = False  # end in LogSoftmax: the network returns log-probabilities


# --- validation ---------------------------------------------------------------------------


def _activation(value: Any, where: str) -> str:
    return choice(value, where, tuple(ACTIVATIONS))


def _parse_block(raw: Any, where: str, default_activation: str) -> ConvBlock:
    block = mapping(raw, where, BLOCK_KEYS)
    pool = block.get("pool", 1)
    if pool is None:
        pool = 1
    elif is_int(pool) and pool == 0:
        raise ParamError(f"{where}.pool: must be a positive integer (1 or omitted for no pooling), got 0")
    return ConvBlock(
        out=integer(required(block, "out", where), f"{where}.out", 1),
        kernel=integer(required(block, "kernel", where), f"{where}.kernel", 1),
        padding=integer(block.get("padding", 0), f"{where}.padding", 0),
        stride=integer(block.get("stride", 1), f"{where}.stride", 1),
        pool=integer(pool, f"{where}.pool", 1),
        pool_type=choice(block.get("pool_type", "max"), f"{where}.pool_type", tuple(POOL_TYPES)),
        dropout=dropout_probability(block.get("dropout", 0.0), f"{where}.dropout"),
        activation=_activation(block.get("activation", default_activation), f"{where}.activation"),
    )


def parse_arch(arch: Mapping[str, Any] | Arch, *, key: str = "arch") -> Arch:
    """Validate an architecture mapping and return it as an :class:`Arch` with defaults filled.

    Raises ParamError naming the offending key under the prefix ``key`` (e.g.
    ``models.mnist_cnn.arch.conv[1].kernel``), including when the feature map would shrink
    to nothing.
    """
    if isinstance(arch, Arch):
        return arch
    arch = mapping(arch, key, ARCH_KEYS)

    raw_input = required(arch, "input", key)
    if not isinstance(raw_input, (list, tuple)) or len(raw_input) != 3:
        raise ParamError(f"{key}.input: must be [channels, height, width], got {raw_input!r}")
    input_shape = tuple(integer(v, f"{key}.input[{i}]", 1) for i, v in enumerate(raw_input))

    activation = _activation(arch.get("activation", "relu"), f"{key}.activation")
    blocks = tuple(
        _parse_block(raw, f"{key}.conv[{i}]", activation)
        for i, raw in enumerate(as_list(arch.get("conv"), f"{key}.conv"))
    )
    global_pool = flag(arch.get("global_pool", False), f"{key}.global_pool")
    hidden = tuple(
        integer(v, f"{key}.hidden[{i}]", 1)
        for i, v in enumerate(as_list(arch.get("hidden"), f"{key}.hidden"))
    )
    parsed = Arch(
        input=input_shape,  # type: ignore[arg-type]
        conv=blocks,
        global_pool=global_pool,
        hidden=hidden,
        hidden_activation=_activation(arch.get("hidden_activation", "relu"), f"{key}.hidden_activation"),
        dropout=dropout_probability(arch.get("dropout", 0.0), f"{key}.dropout"),
        activation=activation,
        outputs=integer(required(arch, "outputs", key), f"{key}.outputs", 1),
        log_softmax=flag(arch.get("log_softmax", False), f"{key}.log_softmax"),
    )
    if parsed.log_softmax and parsed.outputs < 2:
        raise ParamError(
            f"{key}.log_softmax: a LogSoftmax over one output is always 0; set {key}.outputs to the "
            "number of classes, or log_softmax: false with train.loss bce"
        )
    if parsed.dropout > 0 and not parsed.hidden:
        raise ParamError(
            f"{key}.dropout: applies after hidden linear layers and {key}.hidden is empty; "
            "set it to 0 or add hidden layers"
        )
    _shapes(parsed, key)  # raises if a feature map collapses
    return parsed


# --- shapes -------------------------------------------------------------------------------


def _shapes(arch: Arch, key: str) -> list[tuple[int, int, int]]:
    channels, height, width = arch.input
    shapes = []
    for i, block in enumerate(arch.conv):
        size = (height, width)
        conv = tuple((n + 2 * block.padding - block.kernel) // block.stride + 1 for n in size)
        pooled = tuple(n // block.pool for n in conv)
        if min(pooled) < 1:
            raise ParamError(
                f"{key}.conv[{i}]: feature map shrinks from {size[0]}x{size[1]} to "
                f"{max(pooled[0], 0)}x{max(pooled[1], 0)} (kernel {block.kernel}, padding {block.padding}, "
                f"stride {block.stride}, pool {block.pool}); use a smaller kernel or pool, more padding, "
                f"or a larger {key}.input"
            )
        channels, (height, width) = block.out, pooled
        shapes.append((channels, height, width))
    return shapes


def feature_shapes(arch: Mapping[str, Any] | Arch, *, key: str = "arch") -> list[tuple[int, int, int]]:
    """(C, H, W) leaving each conv block (after its pooling), in order; empty for an MLP."""
    return _shapes(parse_arch(arch, key=key), key)


def flat_size(arch: Mapping[str, Any] | Arch, *, key: str = "arch") -> int:
    """Number of features entering the first linear layer (after flatten / global pool)."""
    parsed = parse_arch(arch, key=key)
    channels, height, width = (_shapes(parsed, key) or [parsed.input])[-1]
    return channels if parsed.global_pool else channels * height * width


# --- building -----------------------------------------------------------------------------


def _add_activation(layers: OrderedDict[str, nn.Module], name: str, activation: str) -> None:
    factory = ACTIVATIONS[activation]
    if factory is not None:
        layers[name] = factory()


def build_model(arch: Mapping[str, Any] | Arch, *, key: str = "arch") -> nn.Sequential:
    """Build the network described by ``arch`` (see the module docstring for the schema).

    ``key`` is the params prefix used in error messages, e.g. ``"models.mnist_cnn.arch"``.
    Returns ``nn.Sequential(features=..., classifier=...)`` producing logits of shape
    (batch, outputs), or log-probabilities with ``log_softmax``. Weights come from PyTorch's
    default initialisation, so seed the global RNG (``torch.manual_seed``) before calling for
    reproducible initial weights.
    """
    parsed = parse_arch(arch, key=key)

    features: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = parsed.input[0]
    for i, block in enumerate(parsed.conv, start=1):
        name = f"conv{i}"
        features[name] = nn.Conv2d(
            in_channels, block.out, block.kernel, stride=block.stride, padding=block.padding
        )
        _add_activation(features, f"{name}_act", block.activation)
        if block.pool > 1:
            features[f"{name}_pool"] = POOL_TYPES[block.pool_type](block.pool)
        if block.dropout > 0:
            features[f"{name}_drop"] = nn.Dropout(block.dropout)
        in_channels = block.out
    if parsed.global_pool:
        features["global_pool"] = nn.AdaptiveAvgPool2d(1)

    classifier: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = flat_size(parsed, key=key)
    for i, units in enumerate(parsed.hidden, start=1):
        name = f"fc{i}"
        classifier[name] = nn.Linear(width, units)
        _add_activation(classifier, f"{name}_act", parsed.hidden_activation)
        if parsed.dropout > 0:
            classifier[f"{name}_drop"] = nn.Dropout(parsed.dropout)
        width = units
    classifier["out"] = nn.Linear(width, parsed.outputs)
    if parsed.log_softmax:
        classifier["log_softmax"] = nn.LogSoftmax(dim=1)

    return nn.Sequential(OrderedDict(features=nn.Sequential(features), classifier=nn.Sequential(classifier)))


def count_parameters(model: nn.Module) -> int:
    """Total number of parameters, trainable and frozen alike."""
    return sum(p.numel() for p in model.parameters())
