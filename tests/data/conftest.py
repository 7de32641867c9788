"""Shared fixtures for the data tests: one small sample mirror per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE_SIZES = {
    "mnist": {"train": 120, "test": 40},
    "fashion_mnist": {"train": 120, "test": 40},
    "cifar10": {"train": 100, "test": 40},
    "celeba": {"train": 30, "valid": 10, "test": 10},
    "horse_or_human": {"train": 24, "valid": 8},
    "rps": {"train": 24, "test": 9},
}


@pytest.fixture(scope="session")
def sample_sizes() -> dict[str, dict[str, int]]:
    """Images per dataset and split in the :func:`mirror` fixture."""
    return SAMPLE_SIZES


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """A sample mirror in the upstream formats: ``<mirror>/<dataset>/<upstream file>``."""
    from cnnpipe.data.sample import write_sample_mirror

    out = tmp_path_factory.mktemp("mirror")
    return write_sample_mirror(out, sizes=SAMPLE_SIZES, datasets=list(SAMPLE_SIZES), log=lambda _: None)
