"""Optimizers, schedules, losses and the explicit L2 penalty."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cnnpipe.config.train import parse_train
from cnnpipe.models.zoo import build_model
from cnnpipe.train.optim import (
    build_loss,
    build_optimizer,
    build_schedule,
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


def test_nll_equals_cross_entropy():
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ce = build_loss("cross_entropy")(logits, labels)
    assert torch.allclose(build_loss("nll")(logits, labels), ce)
    assert torch.equal(predictions(logits, "nll"), logits.argmax(1))


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


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _settings().lr = 1.0
