"""Fixtures for the evaluation tests (builders in evalfixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.evalfixtures import MODELS, make_bundle, make_dataset, make_params, write_history


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``tmp_path`` laid out like the repository: models/, data/prepared/, dvclive/ (tiny only)."""
    for name, (dataset, _, classes, _, _, shape) in MODELS.items():
        make_bundle(tmp_path, name)
        make_dataset(tmp_path, dataset, classes, shape)
    write_history(tmp_path, "tiny")
    return tmp_path


@pytest.fixture
def params() -> dict:
    return make_params()
