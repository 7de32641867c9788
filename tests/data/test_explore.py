"""explore@<dataset> on datasets prepared from the sample mirror: the figures and what they show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from PIL import Image

from cnnpipe.data.arrays import load_meta, load_split
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.errors import DataFormatError
from cnnpipe.explore import explore_dataset
from cnnpipe.explore.kernels import GRAY_WEIGHTS, SOBEL_X, SOBEL_Y
from cnnpipe.paths import DATASET_PLOT_FILES as FILES

REPO = Path(__file__).resolve().parents[2]


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def root(mirror, tmp_path_factory) -> Path:
    """A workspace with mnist (gray, classes) and celeba (RGB, attributes) prepared from the mirror."""
    root = tmp_path_factory.mktemp("explore")
    prepared = root / "data" / "prepared"
    prepare_dataset("mnist", mirror / "mnist", prepared / "mnist", valid_first=20, log=_quiet)
    prepare_dataset("celeba", mirror / "celeba", prepared / "celeba", workers=1, log=_quiet)
    return root


def _check_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The PNG's pixels, after checking it is a real picture of ``size`` (width, height)."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert path.stat().st_size > 20_000, path
    with Image.open(path) as img:
        assert img.size == size, (path, img.size, size)
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200, path
    return pixels


def _gray(image: np.ndarray) -> np.ndarray:
    """The test's own luma, float64 in [0, 1]."""
    x = image.astype(np.float64) / 255.0
    return x[0] if len(x) == 1 else np.tensordot(GRAY_WEIGHTS, x[:3], axes=1)


def test_class_dataset_figures_and_their_sobel_panels(root):
    result = explore_dataset("mnist", root=root, log=_quiet)
    out = root / "plots" / "datasets" / "mnist"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert result.files == {name: out / name for name in FILES} and result.split == "train"
    for name in FILES:
        _check_png(out / name, result.sizes[name])
    width, height = result.sizes["gallery.png"]
    classes = load_meta(root / "data" / "prepared" / "mnist")["classes"]
    assert len(classes) == 10 and height > 10 * 80 and width > 6 * 80  # a row of six per class
    assert result.sizes["filters.png"][0] >= 600 and result.sizes["convolution.png"][0] >= 600

    image = np.asarray(load_split(root / "data" / "prepared" / "mnist", "train").images[0])
    gray = _gray(image)
    gx = scipy.signal.correlate2d(gray, SOBEL_X, mode="valid")
    gy = scipy.signal.correlate2d(gray, SOBEL_Y, mode="valid")
    panels = result.filters
    np.testing.assert_allclose(panels["original"], gray, atol=1e-6)
    np.testing.assert_allclose(panels["sobel_x"], gx, atol=1e-5)
    np.testing.assert_allclose(panels["sobel_y"], gy, atol=1e-5)
    np.testing.assert_allclose(panels["magnitude"], np.hypot(gx, gy), atol=1e-5)
    assert panels["sobel_x"].shape == (26, 26)  # 28 + 2·0 − 3 + 1
    assert panels["pooled"].shape == (14, 14)  # 2×2 max pooling halves 28
    np.testing.assert_allclose(panels["pooled"], gray.reshape(14, 2, 14, 2).max(axis=(1, 3)), atol=1e-6)
    assert np.abs(gx).max() > 0.5  # a digit has edges

    conv = result.convolution
    np.testing.assert_allclose(conv["correlation"], gx, atol=1e-5)
    np.testing.assert_allclose(
        conv["convolution"], scipy.signal.convolve2d(gray, SOBEL_X, "valid"), atol=1e-5
    )


def test_attribute_dataset_through_the_stage_script(root):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(REPO / "stages" / "explore.py"), "celeba"],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = root / "plots" / "datasets" / "celeba"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert "celeba: gallery.png, filters.png, convolution.png written" in done.stdout
    for name in FILES:
        with Image.open(out / name) as img:
            size = img.size
        assert size[0] >= 500 and size[1] >= 400, (name, size)
        _check_png(out / name, size)


def test_missing_dataset_says_what_to_run(tmp_path):
    with pytest.raises(DataFormatError, match=r"classes.json is missing: run `dvc repro` to prepare mnist"):
        explore_dataset("mnist", root=tmp_path, log=_quiet)
    assert not (tmp_path / "plots").exists()
