"""Learning-rate range test: log-spaced sweep, suggestion, restored weights, plot."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cnnpipe.config.train import parse_config
from cnnpipe.train.lr_find import lr_find, lr_range_test, save_lr_plot, smooth, suggest
from cnnpipe.train.runtime import build_runtime
from tests.helpers.toydata import toy_params


def test_suggest_picks_the_steepest_descent():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert suggest(lrs, [2.0, 1.9, 1.0, 0.9, 3.0]) in (1, 2)
    assert suggest(lrs, [2.0, 1.9, 1.8, 0.5, 0.4]) in (2, 3)
    assert suggest([1e-3], [1.0]) == 0
    assert smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # bias-corrected


def test_range_test_restores_weights_and_optimizer(toy_root):
    params = toy_params(augment=[{"op": "hflip", "p": 0.5}], train={"optimizer": "sgd", "momentum": 0.9})
    rt = build_runtime(parse_config("toy_cnn", params), root=toy_root, log=lambda _: None)
    before = copy.deepcopy(rt.model.state_dict())
    optimizer_before = copy.deepcopy(rt.optimizer.state_dict())
    rng_before = torch.get_rng_state()

    from cnnpipe.train.lr_find import _cycle_batches

    result = lr_range_test(
        rt.model,
        rt.optimizer,
        rt.loss_fn,
        _cycle_batches(rt, 40),
        start_lr=1e-5,
        end_lr=10.0,
        num_lrs=20,
        batches_per_lr=2,
    )
    after = rt.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert rt.optimizer.state_dict() == optimizer_before  # no momentum buffers kept, lr back to 0.01
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert 1 < len(result.lrs) <= 20 and len(result.losses) == len(result.lrs) == len(result.smoothed)
    assert np.allclose(np.diff(np.log10(result.lrs)), np.log10(10.0 / 1e-5) / 19)  # log-spaced
    assert 1e-5 <= result.suggestion <= 10.0 and result.suggestion == result.lrs[result.suggestion_index]
    assert result.suggestion < result.lrs[-1]  # not where the loss blew up


def test_lr_find_from_params_and_plot(toy_root, tmp_path):
    lines: list[str] = []
    result = lr_find(
        parse_config("toy_cnn", toy_params()),
        root=toy_root,
        start_lr=1e-6,
        end_lr=1.0,
        num_lrs=16,
        log=lines.append,
    )
    assert 1e-6 <= result.suggestion <= 1.0
    assert any("steepest descent at lr" in line for line in lines)
    path = save_lr_plot(result, tmp_path / "plots" / "lr_find.png", title="toy_cnn")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_range_test_rejects_bad_ranges(toy_root):
    rt = build_runtime(parse_config("toy_cnn", toy_params()), root=toy_root, log=lambda _: None)
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_range_test(rt.model, rt.optimizer, rt.loss_fn, iter(()), start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="no batches"):
        lr_range_test(rt.model, rt.optimizer, rt.loss_fn, iter(()))
