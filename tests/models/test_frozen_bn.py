"""A frozen pretrained backbone's BatchNorm folded into its convolutions for the training forward.

Each case places the same model twice as the train stage does (channels-last, CPU dropout), once
with folding on and once with it off, and checks the two train alike while the folding one's
module tree, state_dict and eval forward stay torchvision's.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnpipe.models.network import build_network
from cnnpipe.train.optim import split_aux
from cnnpipe.train.runtime import place_model

CASES = {  # id -> (arch, input size)
    "resnet18-backbone": ({"backbone": "resnet18", "freeze": "backbone", "hidden": []}, 64),
    "resnet18-layer2": ({"backbone": "resnet18", "freeze": "layer2", "hidden": []}, 64),
    "inception-backbone": (
        # no dropout: its draws differ on the CPU, where the train stage uses MaskDropout
        {
            "backbone": "inception_v3",
            "freeze": "backbone",
            "hidden": [16],
            "backbone_dropout": 0.0,
        },
        299,
    ),
}


def _pretrained_like(case: str, weights: str = "IMAGENET1K_V1") -> tuple[nn.Module, int]:
    """The model with BatchNorm statistics far from the identity, as pretrained ones are."""
    arch, size = CASES[case]
    arch = {"weights": weights, "dropout": 0.0, "input": [3, size, size], "outputs": 3, **arch}
    torch.manual_seed(0)
    model = build_network(arch, key="models.m.arch", load_weights=False)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return model, size


def _batch_norms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def _placed(model: nn.Module, *, fold: bool) -> nn.Module:
    placed = place_model(copy.deepcopy(model), torch.device("cpu"))
    placed.fold_batchnorm = fold
    return placed.train()


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, aux = split_aux(model(x))
    loss = F.cross_entropy(logits, y) + (0.0 if aux is None else 0.4 * F.cross_entropy(aux, y))
    loss.backward()
    return logits.detach()


@pytest.mark.parametrize("case", list(CASES))
def test_folded_training_forward_trains_like_the_plain_model(case):
    model, size = _pretrained_like(case)
    plain, placed = _placed(model, fold=False), _placed(model, fold=True)
    assert plain.__dict__["_folded"] is None
    folded = placed.__dict__["_folded"]
    assert folded is not None
    trainable_bn = [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d) and m.weight.requires_grad]
    frozen_bn = _batch_norms(plain) - len(trainable_bn)
    assert frozen_bn > 0 and _batch_norms(folded) == len(trainable_bn)  # every frozen one folded

    torch.manual_seed(1)
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 0])
    x = x.contiguous(memory_format=torch.channels_last)
    expected = _step(plain, x, y)
    got = _step(placed, x, y)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    placed_params, plain_params = dict(placed.named_parameters()), dict(plain.named_parameters())
    assert placed_params.keys() == plain_params.keys()
    for name, param in plain_params.items():
        if param.requires_grad:
            # relative to the gradient's norm: Mixed_7c's train-mode BatchNorms over a batch of 4
            # amplify float rounding in single elements (it depends on the thread count)
            error = (placed_params[name].grad - param.grad).norm() / param.grad.norm()
            assert error < 2e-3, f"{name}: gradient off by {error:.1e} of its norm"
        else:
            assert placed_params[name].grad is None and torch.equal(placed_params[name], param), name
    # the trainable BatchNorms' running statistics moved in the model itself, as in the plain one
    plain_state, placed_state = plain.state_dict(), placed.state_dict()
    assert placed_state.keys() == plain_state.keys()
    for name, value in plain_state.items():
        torch.testing.assert_close(placed_state[name], value, rtol=1e-4, atol=1e-5, msg=name)

    placed.eval(), plain.eval()
    assert placed.__dict__["_folded"] is None  # eval runs torchvision's own modules
    with torch.no_grad():
        torch.testing.assert_close(placed(x), plain(x), rtol=1e-5, atol=1e-5)


def test_loading_weights_rebuilds_the_folded_copy():
    model, size = _pretrained_like("resnet18-backbone")
    plain, placed = _placed(model, fold=False), _placed(model, fold=True)
    state = plain.state_dict()
    with torch.no_grad():  # other frozen weights, as a checkpoint of another run would hold
        state["net.conv1.weight"] = state["net.conv1.weight"] * 2
        state["net.layer1.0.bn1.running_var"] = state["net.layer1.0.bn1.running_var"] * 3
    plain.load_state_dict(state)
    placed.load_state_dict(state, assign=True)
    assert placed.__dict__["_folded"] is None
    placed.train(), plain.train()
    x = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(placed(x), plain(x), rtol=1e-4, atol=1e-4)


def test_nothing_is_folded_without_pretrained_statistics():
    # a random-init backbone normalizes with batch statistics: no BatchNorm is a fixed map
    model, _ = _pretrained_like("resnet18-backbone", weights="none")
    placed = _placed(model, fold=True)
    assert placed.__dict__["_folded"] is None
