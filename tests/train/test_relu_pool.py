"""Max-pooling before the ReLU for training: bit-identical outputs and gradients, same state_dict."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from cnnpipe.models.network import build_network
from cnnpipe.train.relu_pool import pool_before_relu
from cnnpipe.train.runtime import place_model

ROOT = Path(__file__).resolve().parents[2]
MODELS = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
CONV_MODELS = [name for name, m in MODELS.items() if m["arch"].get("conv")]


def _forward_backward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(7)  # the same dropout draws on both sides
    out = model.train()(x)
    out.square().sum().backward()
    return out.detach(), [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name", CONV_MODELS)
def test_every_conv_model_trains_bit_identically(name):
    arch = MODELS[name]["arch"]
    torch.manual_seed(0)
    model = build_network(arch, key=f"models.{name}.arch")
    swapped = copy.deepcopy(model)
    max_pooled_relus = sum(
        1 for b in arch["conv"] if b.get("pool", 1) > 1 and b.get("pool_type", "max") == "max"
        and b.get("activation", arch.get("activation", "relu")) == "relu"
    )  # fmt: skip
    assert pool_before_relu(swapped) == max_pooled_relus > 0
    x = torch.rand(3, *arch["input"])
    out, grads = _forward_backward(model, x)
    swapped_out, swapped_grads = _forward_backward(swapped, x)
    assert torch.equal(swapped_out, out)
    assert all(torch.equal(a, b) for a, b in zip(swapped_grads, grads, strict=True))
    assert list(swapped.state_dict()) == list(model.state_dict())
    names = list(dict(swapped.features.named_children()))
    assert names.index("conv1_pool") < names.index("conv1_act")


def test_only_relu_then_max_pool_is_swapped():
    layers = [nn.Conv2d(1, 2, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 1), nn.ReLU(), nn.AvgPool2d(2)]
    model = nn.Sequential(*layers)
    assert pool_before_relu(model) == 0
    assert [type(m) for m in model] == [type(m) for m in layers]


def test_place_model_pools_first():
    arch = MODELS["mnist_cnn"]["arch"]
    placed = place_model(build_network(arch, key="models.mnist_cnn.arch"), torch.device("cpu"))
    kinds = [type(m) for m in placed.features]
    assert kinds[:3] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU]
