"""Transfer learning: a torchvision backbone (Inception-V3, SqueezeNet, ResNet) with a new head.

The mapping lives in params.yaml under ``models.<name>.arch``; a ``backbone`` key is what
tells it apart from a from-scratch architecture (:mod:`cnnpipe.models.zoo`)::

    backbone: inception_v3      # inception_v3 | squeezenet1_0 | squeezenet1_1 | resnet18 ... resnet152
    weights: IMAGENET1K_V1      # a member of torchvision's weights enum (or DEFAULT); none = random init
    weights_file: null          # a local copy of those weights; null = torchvision's cache (TORCH_HOME)
    freeze: until_param:Mixed_7c  # none | backbone (all but the new head) | a top-level module
                                #   name: freeze it and everything registered before it |
                                #   until_param:<text>: the source's loop over named_parameters(),
                                #   frozen up to and including the first whose name contains <text>
    hidden: [1024]              # hidden linear layers of the new head (ReLU after each)
    dropout: 0.0                # dropout before each linear layer of the new head
    backbone_dropout: 0.5       # Inception only: torchvision's own dropout before fc (0.5 as built)
    aux_logits: true            # Inception only: train the auxiliary classifier too
    aux_weight: 0.4             # Inception only: loss = main + aux_weight * auxiliary
    input: [3, 299, 299]        # C, H, W the network is fed (299 for Inception, 224 for the others)
    outputs: 2                  # units of the new head (1 for BCE)

Heads, as the SPEC sources build them: Inception's ``fc`` becomes
``[dropout] → linear 2048→1024 → ReLU → [dropout] → linear 1024→n`` (``hidden: [1024]``) and
its ``AuxLogits.fc`` a linear 768→n; SqueezeNet's ``classifier[1]`` becomes a 1×1 convolution
512→n (its ``classifier[0]`` dropout takes ``dropout``; no hidden layers) and ``num_classes`` is
updated; ResNet's ``fc`` becomes the same kind of MLP head as Inception's.

With ``until_param:`` the freeze is literal, as the source's loop is: whatever comes after the
first matching parameter trains (for ``until_param:Mixed_7c``, the rest of Mixed_7c and ``fc``)
and whatever comes before it is frozen, Inception's auxiliary head included (it branches off
Mixed_6e, so under that freeze its loss reaches no trainable parameter).

Frozen parameters get ``requires_grad=False`` and, for pretrained weights, frozen BatchNorm
layers stay in eval mode during training (their running statistics are the pretrained ones),
so a frozen backbone is a fixed feature extractor. The new head is always trainable.
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

from cnnpipe.checks import dropout_probability, flag, integer, mapping, non_negative
from cnnpipe.errors import ParamError

FAMILIES = {
    "inception_v3": "inception",
    "squeezenet1_0": "squeezenet",
    "squeezenet1_1": "squeezenet",
    "resnet18": "resnet",
    "resnet34": "resnet",
    "resnet50": "resnet",
    "resnet101": "resnet",
    "resnet152": "resnet",
}
TRANSFER_KEYS = (
    "backbone",
    "weights",
    "weights_file",
    "freeze",
    "hidden",
    "dropout",
    "backbone_dropout",
    "aux_logits",
    "aux_weight",
    "input",
    "outputs",
)
# Parameter-name prefixes of the layers the head replaces (always trainable).
HEAD_PREFIXES = {
    "inception": ("fc.", "AuxLogits.fc."),
    "squeezenet": ("classifier.1.",),
    "resnet": ("fc.",),
}
# The per-channel statistics every torchvision ImageNet weight expects (``weights.transforms()``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 30
# ``freeze: until_param:<text>``: freeze in named_parameters() order through the first name holding <text>.
UNTIL_PARAM = "until_param:"


@dataclass(frozen=True)
class TransferArch:
    """A validated transfer architecture with every default filled in."""

    backbone: str
    weights: str | None  # enum member name; None = random initialisation
    weights_file: str | None
    freeze: str
    hidden: tuple[int, ...]
    dropout: float
    backbone_dropout: float
    aux_logits: bool
    aux_weight: float
    input: tuple[int, int, int]
    outputs: int

    @property
    def family(self) -> str:
        return FAMILIES[self.backbone]


def is_transfer_arch(arch: Any) -> bool:
    """True for a transfer architecture (parsed, or a mapping with a ``backbone`` key)."""
    return isinstance(arch, TransferArch) or (isinstance(arch, Mapping) and "backbone" in arch)


def _torchvision_models() -> ModuleType:
    """``torchvision.models``, imported on first use.

    Importing it takes about 1.4 s (it pulls in torch._dynamo through torchvision.ops), and
    every train and evaluate stage imports this module, from-scratch models included: only
    transfer archs pay for it.
    """
    import torchvision.models

    return torchvision.models


# --- validation ---------------------------------------------------------------------------


def _weights_name(value: Any, backbone: str, where: str) -> str | None:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    names = list(_torchvision_models().get_model_weights(backbone).__members__)
    if not isinstance(value, str) or value not in names:
        raise ParamError(f"{where}: {backbone} weights are {', '.join(names)} or none, got {value!r}")
    return value


def parse_transfer_arch(arch: Mapping[str, Any] | TransferArch, *, key: str = "arch") -> TransferArch:
    """Validate a transfer architecture mapping (see the module docstring for the schema).

    Raises ParamError naming the offending key under ``key``, e.g.
    ``models.inception_horses.arch.freeze``.
    """
    if isinstance(arch, TransferArch):
        return arch
    arch = mapping(arch, key, TRANSFER_KEYS)
    backbone = arch["backbone"]
    if backbone not in FAMILIES:
        raise ParamError(f"{key}.backbone: expected one of {', '.join(FAMILIES)}, got {backbone!r}")
    family = FAMILIES[backbone]

    weights = _weights_name(arch.get("weights", "DEFAULT"), backbone, f"{key}.weights")
    weights_file = arch.get("weights_file")
    if weights_file is not None:
        if not isinstance(weights_file, str) or not weights_file:
            raise ParamError(f"{key}.weights_file: expected a file path or null, got {weights_file!r}")
        if weights is None:
            raise ParamError(
                f"{key}.weights_file: is set but {key}.weights is none (random init); name the weights "
                "the file holds (e.g. IMAGENET1K_V1) or set weights_file to null"
            )

    freeze = arch.get("freeze", "backbone")
    if not isinstance(freeze, str) or not freeze or freeze == UNTIL_PARAM:
        raise ParamError(
            f"{key}.freeze: expected none, backbone, a module name or {UNTIL_PARAM}<name>, got {freeze!r}"
        )

    raw_hidden = arch.get("hidden") or []
    if not isinstance(raw_hidden, (list, tuple)):
        raise ParamError(f"{key}.hidden: must be a list of layer widths, got {raw_hidden!r}")
    hidden = tuple(integer(v, f"{key}.hidden[{i}]", 1) for i, v in enumerate(raw_hidden))
    if hidden and family == "squeezenet":
        raise ParamError(f"{key}.hidden: SqueezeNet's head is a single 1x1 convolution; set it to []")

    dropout = dropout_probability(arch.get("dropout", 0.0), f"{key}.dropout")
    backbone_dropout = dropout_probability(
        arch.get("backbone_dropout", 0.5 if family == "inception" else 0.0), f"{key}.backbone_dropout"
    )
    if backbone_dropout and family != "inception":
        raise ParamError(
            f"{key}.backbone_dropout: only Inception-V3 has a dropout of its own before fc "
            f"(SqueezeNet's classifier dropout is {key}.dropout); set it to 0, got {backbone_dropout!r}"
        )

    aux_logits = flag(arch.get("aux_logits", family == "inception"), f"{key}.aux_logits")
    if aux_logits and family != "inception":
        raise ParamError(f"{key}.aux_logits: only Inception-V3 has auxiliary logits; set it to false")
    aux_weight = arch.get("aux_weight", 0.4)
    aux_weight = non_negative(aux_weight, f"{key}.aux_weight")

    raw_input = arch.get("input")
    if not isinstance(raw_input, (list, tuple)) or len(raw_input) != 3:
        raise ParamError(f"{key}.input: must be [3, height, width], got {raw_input!r}")
    input_shape = tuple(integer(v, f"{key}.input[{i}]", 1) for i, v in enumerate(raw_input))
    if input_shape[0] != 3:
        raise ParamError(f"{key}.input: {backbone} takes 3-channel (RGB) images, got {input_shape[0]}")

    parsed = TransferArch(
        backbone=backbone,
        weights=weights,
        weights_file=weights_file,
        freeze=freeze,
        hidden=hidden,
        dropout=dropout,
        backbone_dropout=backbone_dropout,
        aux_logits=aux_logits,
        aux_weight=float(aux_weight),
        input=input_shape,  # type: ignore[arg-type]
        outputs=integer(arch.get("outputs"), f"{key}.outputs", 1),
    )
    if parsed.family == "squeezenet" and parsed.outputs == 1:
        raise ParamError(
            f"{key}.outputs: SqueezeNet's head ends in a ReLU, so a single logit cannot go negative; "
            "use one output per class with cross_entropy"
        )
    _check_on_meta(parsed, key)
    return parsed


def _check_on_meta(arch: TransferArch, key: str) -> None:
    """Check ``freeze`` names a module and the input is large enough, on the meta device.

    The meta device holds shapes only (no memory, no compute), so building and running the
    network there is cheap.
    """
    with torch.device("meta"):
        model = _torchvision_model(arch)
        names = [name for name, _ in model.named_children()]
        if arch.freeze.startswith(UNTIL_PARAM):
            text = arch.freeze.removeprefix(UNTIL_PARAM)
            if not any(text in name for name, _ in model.named_parameters()):
                raise ParamError(
                    f"{key}.freeze: no parameter of {arch.backbone} has {text!r} in its name; use "
                    f"{UNTIL_PARAM}<part of a name> with one of its modules: {', '.join(names)}"
                )
        elif arch.freeze not in ("none", "backbone", *names):
            raise ParamError(
                f"{key}.freeze: {arch.backbone} has no top-level module {arch.freeze!r}; use none, "
                f"backbone, {UNTIL_PARAM}<name> or one of {', '.join(names)}"
            )
        model.train(arch.aux_logits)
        try:
            model(torch.empty(2, *arch.input))
        except RuntimeError:
            native = 299 if arch.family == "inception" else 224
            raise ParamError(
                f"{key}.input: {arch.input[1]}x{arch.input[2]} is too small for {arch.backbone}"
                f"{' with aux_logits' if arch.aux_logits else ''} (made for {native}x{native}); "
                "resize to a larger input"
            ) from None


# --- weights ------------------------------------------------------------------------------


def weights_enum(arch: TransferArch) -> WeightsEnum | None:
    """The torchvision weights enum member the arch asks for (None for random init)."""
    if arch.weights is None:
        return None
    return _torchvision_models().get_model_weights(arch.backbone)[arch.weights]


def weights_label(arch: TransferArch) -> str:
    """What a backbone started from, for metrics files: e.g. ``IMAGENET1K_V1`` or ``none (random init)``."""
    return arch.weights if arch.weights is not None else "none (random init)"


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps these weights once downloaded: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def load_pretrained_state(arch: TransferArch, *, key: str) -> dict[str, torch.Tensor]:
    """The backbone's pretrained state dict: from ``weights_file``, else torchvision's cache/download.

    A missing file or a failed download raises one ParamError line naming the file and the
    two ways to provide it.
    """
    weights = weights_enum(arch)
    assert weights is not None
    if arch.weights_file is not None:
        path = Path(arch.weights_file)
        if not path.is_file():
            raise ParamError(
                f"{key}.weights_file: {path} does not exist; point it at a copy of {arch.backbone} "
                f"{arch.weights} weights ({weights.url}) or set it to null to use torchvision's cache"
            )
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a damaged file
            raise ParamError(
                f"{key}.weights_file: {path} is not a PyTorch state dict ({type(exc).__name__}); "
                f"download it again from {weights.url}"
            ) from None

    cached = cached_weights_path(weights)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub downloads without a timeout of its own
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, timeouts, hash mismatch, a damaged cache file...
        reason = str(getattr(exc, "reason", exc)) or type(exc).__name__
        raise ParamError(
            f"{key}.weights: {arch.backbone} {arch.weights} weights are needed and {cached} is missing "
            f"(download from {weights.url} failed: {reason}); copy that file to {cached.parent} "
            f"(TORCH_HOME sets the folder) or set {key}.weights_file to a local copy"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


# --- building -----------------------------------------------------------------------------


def _torchvision_model(arch: TransferArch) -> nn.Module:
    """The backbone with torchvision's own 1000-class head, shaped to hold the requested weights."""
    pretrained = arch.weights is not None
    if arch.family == "inception":
        # As torchvision builds it for its weights: aux head present (the file holds it) and the
        # input re-normalized inside the model (transform_input) for Google's original weights.
        return _torchvision_models().get_model(
            arch.backbone,
            weights=None,
            aux_logits=pretrained or arch.aux_logits,
            transform_input=pretrained,
            init_weights=not pretrained,
            dropout=arch.backbone_dropout,
        )
    if arch.family == "squeezenet":
        return _torchvision_models().get_model(arch.backbone, weights=None, dropout=arch.dropout)
    return _torchvision_models().get_model(arch.backbone, weights=None)


def _mlp_head(in_features: int, hidden: tuple[int, ...], outputs: int, dropout: float) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, units in enumerate((*hidden, outputs), start=1):
        last = i == len(hidden) + 1
        name = "out" if last else f"fc{i}"
        if dropout > 0:
            layers[f"{name}_drop"] = nn.Dropout(dropout)
        layers[name] = nn.Linear(in_features, units)
        if not last:
            layers[f"{name}_act"] = nn.ReLU()
        in_features = units
    return nn.Sequential(layers)


def _replace_head(net: nn.Module, arch: TransferArch) -> None:
    if arch.family == "inception":
        net.fc = _mlp_head(net.fc.in_features, arch.hidden, arch.outputs, arch.dropout)
        if arch.aux_logits:
            net.AuxLogits.fc = nn.Linear(net.AuxLogits.fc.in_features, arch.outputs)
        else:
            net.AuxLogits = None
            net.aux_logits = False
    elif arch.family == "squeezenet":
        old = net.classifier[1]
        net.classifier[1] = nn.Conv2d(old.in_channels, arch.outputs, kernel_size=1)
        net.num_classes = arch.outputs
    else:
        net.fc = _mlp_head(net.fc.in_features, arch.hidden, arch.outputs, arch.dropout)


def head_parameter_names(arch: TransferArch, net: nn.Module) -> list[str]:
    """Names (in ``net``) of the parameters of the new head: always trainable."""
    prefixes = HEAD_PREFIXES[arch.family]
    return [name for name, _ in net.named_parameters() if name.startswith(prefixes)]


def _freeze(net: nn.Module, arch: TransferArch) -> None:
    if arch.freeze == "none":
        return
    if arch.freeze.startswith(UNTIL_PARAM):
        text = arch.freeze.removeprefix(UNTIL_PARAM)
        for name, param in net.named_parameters():
            param.requires_grad_(False)
            if text in name:
                return
    head = set(head_parameter_names(arch, net))
    if arch.freeze == "backbone":
        frozen_children = [name for name, _ in net.named_children()]
    else:
        names = [name for name, _ in net.named_children()]
        frozen_children = names[: names.index(arch.freeze) + 1]
    for child in frozen_children:
        for name, param in getattr(net, child).named_parameters(prefix=child):
            if name not in head:
                param.requires_grad_(False)


class TransferNet(nn.Module):
    """A torchvision backbone with a new head, in ``self.net``.

    In training mode, BatchNorm layers whose parameters are all frozen stay in eval mode
    (pretrained running statistics, not batch statistics) when the backbone is pretrained.
    An Inception-V3 with auxiliary logits returns torchvision's
    ``InceptionOutputs(logits, aux_logits)`` in training mode and plain logits in eval mode.

    With ``fold_batchnorm`` set (the train stage sets it), ``train()`` also builds
    :func:`~cnnpipe.models.frozen_bn.fold_frozen_batchnorm`'s folded copy of ``net`` and the
    training forward runs that; ``eval()``, ``.to()`` and ``load_state_dict`` drop it until the
    next ``train()``.
    """

    def __init__(self, net: nn.Module, arch: TransferArch):
        super().__init__()
        self.net = net
        self.arch = arch
        self.fold_batchnorm = False
        self._drop_folded()

    def forward(self, x: torch.Tensor) -> Any:
        folded = self.__dict__["_folded"]
        return folded(x) if self.training and folded is not None else self.net(x)

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        # A random-init backbone has no statistics worth keeping: its BatchNorm layers normalize
        # with batch statistics as usual, or a frozen random network's activations explode.
        if mode and self.arch.weights is not None:
            for module in self.net.modules():
                params = list(module.parameters(recurse=False))
                if isinstance(module, _BatchNorm) and params and not any(p.requires_grad for p in params):
                    module.eval()
        self._drop_folded()
        if mode and self.fold_batchnorm:
            from cnnpipe.models.frozen_bn import fold_frozen_batchnorm

            folded, count = fold_frozen_batchnorm(self.net)
            self.__dict__["_folded"] = folded if count else None
        return self

    def _drop_folded(self) -> None:
        # Kept out of the module tree (not a submodule) so state_dict and .to() never see it.
        self.__dict__["_folded"] = None

    # The folded copy shares this model's tensors: whatever may replace them drops it.
    def _apply(self, fn, recurse=True):
        self._drop_folded()
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._drop_folded()
        super()._load_from_state_dict(*args, **kwargs)


def build_transfer_model(
    arch: Mapping[str, Any] | TransferArch, *, key: str = "arch", load_weights: bool = True
) -> TransferNet:
    """Build the backbone, load its pretrained weights, swap in the new head, freeze.

    ``load_weights=False`` skips the pretrained weights (for a model whose full state dict is
    loaded next, as when reading a trained bundle). Seed the global RNG first for
    reproducible head (and random-init backbone) weights.
    """
    parsed = parse_transfer_arch(arch, key=key)
    net = _torchvision_model(parsed)
    if load_weights and parsed.weights is not None:
        state = load_pretrained_state(parsed, key=key)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            source = parsed.weights_file or cached_weights_path(weights_enum(parsed))
            raise ParamError(
                f"{key}.weights_file: {source} does not hold {parsed.backbone} {parsed.weights} weights "
                f"({first}); point it at the right file"
            ) from None
    _replace_head(net, parsed)
    _freeze(net, parsed)
    return TransferNet(net, parsed)
