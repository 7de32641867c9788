"""Optimizers, schedules, losses and the explicit L2 penalty."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnpipe.config.train import parse_train
from cnnpipe.errors import ParamError
from cnnpipe.models.zoo import build_model
from cnnpipe.train.optim import (
    build_loss,
    build_optimizer,
    build_schedule,
    check_l2_layers,
    current_lr,
    l2_penalty,
    penalized_parameters,
    predictions,
)
from tests.helpers.toydata import TOY_ARCH, TOY_TRAIN


def _settings(**overrides):
    return parse_train({**TOY_TRAIN, **overrides}, "models.toy.train")


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(TOY_ARCH)


def _step(model, optimizer, loss_name="cross_entropy"):
    x = torch.randn(4, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 1])
    loss = build_loss(loss_name)(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize(
    ("name", "extra", "cls"),
    [
        ("adam", {}, torch.optim.Adam),
        ("sgd", {"momentum": 0.9}, torch.optim.SGD),
        ("rmsprop", {"momentum": 0.5}, torch.optim.RMSprop),
    ],
)
def test_optimizers_build_and_step(name, extra, cls):
    model = _model()
    optimizer = build_optimizer(model.parameters(), _settings(optimizer=name, weight_decay=1e-4, **extra))
    assert isinstance(optimizer, cls)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.01, 1e-4)
    if extra:
        assert group["momentum"] == extra["momentum"]
    before = [p.detach().clone() for p in model.parameters()]
    _step(model, optimizer)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_frozen_parameters_stay_out_of_the_optimizer():
    model = _model()
    model.features.requires_grad_(False)
    optimizer = build_optimizer(model.parameters(), _settings())
    trainable = sum(p.numel() for p in model.classifier.parameters())
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trainable


def test_plateau_halves_after_patience_on_validation_loss():
    model = _model()
    settings = _settings(scheduler="plateau", plateau_factor=0.5, plateau_patience=2)
    optimizer = build_optimizer(model.parameters(), settings)
    schedule = build_schedule(optimizer, settings, epochs=10, steps_per_epoch=6)
    schedule.after_batch()  # per-epoch schedule: no effect
    assert current_lr(optimizer) == 0.01
    for _ in range(3):  # best, then 2 bad epochs: still within patience
        schedule.after_epoch(1.0)
    assert current_lr(optimizer) == 0.01
    schedule.after_epoch(1.0)  # third bad epoch
    assert current_lr(optimizer) == pytest.approx(0.005)


def test_cosine_anneals_over_all_epochs():
    model = _model()
    settings = _settings(scheduler="cosine")
    optimizer = build_optimizer(model.parameters(), settings)
    schedule = build_schedule(optimizer, settings, epochs=4, steps_per_epoch=6)
    rates = []
    for _ in range(4):
        rates.append(current_lr(optimizer))
        _step(model, optimizer)
        schedule.after_batch()
        schedule.after_epoch(0.0)
    assert rates[0] == 0.01 and rates[2] == pytest.approx(0.005)
    assert current_lr(optimizer) == pytest.approx(0.0, abs=1e-12)


def test_onecycle_steps_per_batch_and_peaks_at_lr():
    model = _model()
    settings = _settings(scheduler="onecycle", optimizer="sgd", momentum=0.9)
    optimizer = build_optimizer(model.parameters(), settings)
    schedule = build_schedule(optimizer, settings, epochs=2, steps_per_epoch=10)
    rates = []
    for _ in range(2):
        for _ in range(10):
            rates.append(current_lr(optimizer))
            _step(model, optimizer)
            schedule.after_batch()
        schedule.after_epoch(0.0)  # no effect
    assert max(rates) == pytest.approx(0.01)
    assert rates[0] < 0.001 and rates[-1] < 1e-4
    assert optimizer.param_groups[0]["momentum"] == 0.9  # not cycled
    state = schedule.state_dict()
    fresh = build_schedule(build_optimizer(_model().parameters(), settings), settings, 2, 10)
    fresh.load_state_dict(state)
    assert fresh.scheduler.last_epoch == 20


def test_no_schedule_keeps_lr():
    model = _model()
    settings = _settings()
    optimizer = build_optimizer(model.parameters(), settings)
    schedule = build_schedule(optimizer, settings, epochs=3, steps_per_epoch=2)
    schedule.after_batch()
    schedule.after_epoch(5.0)
    assert current_lr(optimizer) == 0.01 and schedule.state_dict() is None


def test_nll_of_the_log_softmax_outputs_equals_cross_entropy_of_the_logits():
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    log_probs = torch.log_softmax(logits, dim=1)  # what a network with arch.log_softmax returns
    ce = build_loss("cross_entropy")(logits, labels)
    assert torch.allclose(build_loss("nll")(log_probs, labels), ce)
    by_hand = -log_probs[torch.arange(8), labels].mean()
    assert torch.allclose(build_loss("nll")(log_probs, labels), by_hand)
    assert torch.equal(predictions(log_probs, "nll"), logits.argmax(1))


def test_mse_compares_softmax_probabilities_with_one_hot_targets():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [-2.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1, 2])
    probs = torch.softmax(logits, dim=1)
    one_hot = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    expected = ((probs - one_hot) ** 2).sum() / 9  # nn.MSELoss: the mean over every element
    assert build_loss("mse")(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert build_loss("mse")(torch.tensor([[50.0, -50.0]]), torch.tensor([0])).item() == pytest.approx(
        0.0, abs=1e-9
    )
    assert torch.equal(predictions(logits, "mse"), torch.tensor([0, 2, 1]))


def test_mse_on_a_single_logit_uses_its_sigmoid_against_0_1_labels():
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-0.2]])
    labels = torch.tensor([1, 0, 0, 1])
    p = torch.sigmoid(logits.squeeze(1))
    expected = ((p - labels.float()) ** 2).mean()
    assert build_loss("mse")(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert predictions(logits, "mse").tolist() == [1, 0, 1, 0]


def test_mse_trains_the_toy_model():
    model = _model()
    optimizer = build_optimizer(model.parameters(), _settings(loss="mse"))
    first = _step(model, optimizer, "mse")
    for _ in range(20):
        last = _step(model, optimizer, "mse")
    assert last < first


def test_bce_on_the_single_logit():
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-0.2]])
    labels = torch.tensor([1, 0, 0, 1])
    expected = F.binary_cross_entropy(torch.sigmoid(logits.squeeze(1)), labels.float())
    assert torch.allclose(build_loss("bce")(logits, labels), expected)
    assert predictions(logits, "bce").tolist() == [1, 0, 1, 0]


def test_l2_penalty_is_lambda_times_squared_weights_without_biases():
    model = _model()
    weights = penalized_parameters(model)
    assert {tuple(p.shape) for p in weights} == {(4, 1, 3, 3), (16, 144), (3, 16)}
    expected = 0.01 * sum((p.double() ** 2).sum() for p in weights)
    assert l2_penalty(model, 0.01).item() == pytest.approx(expected.item(), rel=1e-6)
    assert l2_penalty(model, 0.0) is None


def test_l2_layers_penalize_every_parameter_of_the_named_layers_biases_included():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(a=nn.Linear(2, 3), act=nn.ReLU(), b=nn.Linear(3, 1)))
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]))
        model.a.bias.copy_(torch.tensor([1.0, -2.0, 0.0]))
        model.b.weight.copy_(torch.tensor([[4.0, 0.0, 1.0]]))
        model.b.bias.copy_(torch.tensor([10.0]))
    # layer a: weights 1 + 4 + 0 + 1 + 9 + 0.25 = 15.25, bias 1 + 4 + 0 = 5
    assert l2_penalty(model, 0.1, ["a"]).item() == pytest.approx(0.1 * 20.25)
    # both layers: b adds 16 + 0 + 1 = 17 and its bias 100; listing a layer twice counts it once
    assert l2_penalty(model, 0.1, ["a", "b", "a"]).item() == pytest.approx(0.1 * 137.25)
    assert l2_penalty(model, 0.1, ["b"]).item() == pytest.approx(0.1 * 117)
    # no layers: today's form, the weight matrices of every layer and no bias
    assert l2_penalty(model, 0.1).item() == pytest.approx(0.1 * 32.25)
    assert l2_penalty(model, 0.0, ["a"]) is None
    model.b.requires_grad_(False)  # frozen parameters stay out
    assert l2_penalty(model, 0.1, ["a", "b"]).item() == pytest.approx(0.1 * 20.25)


def test_l2_layers_gradient_reaches_the_biases():
    model = _model()
    penalty = l2_penalty(model, 0.5, ["classifier.out"])
    penalty.backward()
    out = model.classifier.out
    assert torch.allclose(out.bias.grad, 0.5 * 2 * out.bias.detach())
    assert torch.allclose(out.weight.grad, 0.5 * 2 * out.weight.detach())
    assert model.classifier.fc1.weight.grad is None and model.features.conv1.bias.grad is None


def test_l2_layers_container_covers_its_layers():
    model = _model()
    chosen = penalized_parameters(model, ["classifier"])
    assert {id(p) for p in chosen} == {id(p) for p in model.classifier.parameters()}


def test_unknown_l2_layer_is_one_line_listing_the_valid_ones():
    model = _model()
    key = "models.toy.train.l2_layers"
    check_l2_layers(model, ["classifier.fc1", "features"], key)  # fine
    with pytest.raises(ParamError) as info:
        check_l2_layers(model, ["classifier.fc1", "fc9"], key)
    message = str(info.value)
    assert message == (
        f"{key}: no layer named 'fc9'; valid layers (or a container of them): "
        "features.conv1, classifier.fc1, classifier.out"
    )
    with pytest.raises(ParamError, match=r"'classifier.fc1_act' holds no trainable parameters") as info:
        check_l2_layers(model, ["classifier.fc1_act"], key)
    assert "\n" not in str(info.value)


def test_unknown_l2_layer_of_a_large_model_names_the_first_layers_and_points_at_summary():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(40)])
    with pytest.raises(ParamError) as info:
        check_l2_layers(model, ["fc"], "k")
    message = str(info.value)
    assert message.startswith("k: no layer named 'fc'; valid layers (or a container of them): 0, 1, 2,")
    assert ", 29, … (10 more: `cnnpipe summary <model>` lists every layer)" in message
    assert ", 30," not in message and "\n" not in message


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _settings().lr = 1.0
