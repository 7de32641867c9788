"""Fixtures of the training tests: workspaces with a tiny prepared dataset (see toydata.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.toydata import write_dataset


@pytest.fixture
def toy_root(tmp_path) -> Path:
    """A workspace with the 3-class toy dataset prepared."""
    write_dataset(tmp_path)
    return tmp_path


@pytest.fixture
def binary_root(tmp_path) -> Path:
    """A workspace with a 2-class toy dataset ``toy2`` prepared."""
    write_dataset(tmp_path, "toy2", classes=2)
    return tmp_path
