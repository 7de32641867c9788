"""MaskDropout: nn.Dropout's distribution with a faster CPU mask, swapped in without state changes."""

import torch
from torch import nn

from cnnpipe.config.train import parse_config
from cnnpipe.models import build_model
from cnnpipe.train.dropout import MaskDropout, use_mask_dropout
from cnnpipe.train.runtime import build_runtime
from tests.helpers.params_archs import params_arch
from tests.helpers.toydata import toy_params


def test_drops_p_of_the_elements_and_rescales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = MaskDropout(0.3).train()(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.01  # expectation preserved, as nn.Dropout


def test_identity_in_eval_mode_and_for_p_zero():
    x = torch.randn(4, 3)
    assert torch.equal(MaskDropout(0.5).eval()(x), x)
    assert torch.equal(MaskDropout(0.0).train()(x), x)


def test_gradient_flows_only_through_kept_elements():
    torch.manual_seed(1)
    x = torch.randn(1000, requires_grad=True)
    y = MaskDropout(0.5).train()(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 2.0))
    assert torch.all(x.grad[~kept] == 0)


def test_swap_replaces_every_dropout_and_keeps_the_state_dict():
    model = build_model(params_arch("smile_cnn"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ps = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    use_mask_dropout(model)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert [m.p for m in model.modules() if isinstance(m, MaskDropout)] == ps == [0.5, 0.5]
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_same_seed_same_mask():
    x = torch.ones(64, 8)
    torch.manual_seed(3)
    a = MaskDropout(0.5).train()(x)
    torch.manual_seed(3)
    b = MaskDropout(0.5).train()(x)
    assert torch.equal(a, b)


def test_cpu_runtime_trains_with_mask_dropout(toy_root):
    """The CPU runtime swaps the dropout, so the loop's determinism and resume tests cover it."""
    rt = build_runtime(parse_config("toy_cnn", toy_params()), root=toy_root, log=lambda _line: None)
    assert rt.device.type == "cpu"
    assert [type(m) for m in rt.model.modules() if isinstance(m, (nn.Dropout, MaskDropout))] == [MaskDropout]
    assert not any(type(m) is nn.Dropout for m in rt.model.modules())
