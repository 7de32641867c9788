"""Device choice, autocast, seeding and RNG state (cnnpipe.device)."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

from cnnpipe import device as devices
from cnnpipe.errors import ParamError


def test_select_device():
    assert devices.select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if devices.mps_available() else "cpu"
    assert devices.select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match=r"^run.device: 'cuda' requested"):
            devices.select_device("cuda")
    if not devices.mps_available():
        with pytest.raises(ParamError, match=r"^run.device: 'mps' requested"):
            devices.select_device("mps")


def test_no_autocast_on_cpu():
    with devices.autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_rng_state_round_trips_through_a_weights_only_load():
    devices.seed_everything(5)
    state = devices.rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    devices.seed_everything(99)
    devices.set_rng_state(loaded)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_derived_seeds_differ_per_part():
    seeds = {devices.derive_seed(0, e, s) for e in range(5) for s in range(3)}
    assert len(seeds) == 15 and all(0 <= s < 2**63 for s in seeds)
