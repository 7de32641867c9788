"""The augmentation preview figure: each op alone, then the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnpipe.errors import ParamError
from cnnpipe.train.preview import describe_op, save_augmentation_preview, single_op_transforms
from cnnpipe.transforms.spec import build_transform


@pytest.mark.parametrize("channels", [3, 1])
def test_preview_writes_a_png(tmp_path, channels):
    data = np.random.default_rng(0).integers(0, 256, (10, channels, 20, 16), dtype=np.uint8)
    out = tmp_path / "plots" / "augment.png"
    transform = build_transform([{"op": "random_crop", "size": 14}, {"op": "hflip"}], key="k")
    path = save_augmentation_preview(data, transform, out, n=4, title="horses_aug", draws=3)
    assert path == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as img:
        width, height = img.size
    assert 200 <= width <= 2000 and 200 <= height <= 2000
    assert width > height * 0.8  # 4 columns, 4 rows of small tiles
    assert [p.name for p in out.parent.iterdir()] == ["augment.png"]


def test_preview_shows_each_op_alone_then_the_pipeline(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (6, 3, 20, 16), dtype=np.uint8)
    ops = [{"op": "random_crop", "size": 14}, {"op": "hflip", "p": 0.5}, {"op": "rotation", "degrees": 20}]
    steps = single_op_transforms(ops, "models.m.augment")
    labels = [label for label, _ in steps]
    assert labels == ["1. random_crop size=14", "2. hflip p=0.5", "3. rotation degrees=20"]
    assert [t.key for _, t in steps] == [f"models.m.augment[{i}]" for i in range(3)]
    assert steps[0][1].output_size((20, 16)) == (14, 14) and steps[2][1].output_size((20, 16)) == (20, 16)
    transform = build_transform(ops, key="models.m.augment")
    plain = save_augmentation_preview(data, transform, tmp_path / "plain.png", n=4, draws=2)
    gallery = save_augmentation_preview(data, transform, tmp_path / "ops.png", n=4, draws=2, steps=steps)
    with Image.open(plain) as a, Image.open(gallery) as b:
        assert b.height > a.height * 1.8  # 1 + 3 + 2 rows instead of 1 + 2
        assert b.width > a.width  # room for the row labels
    nested = {"op": "random_apply", "p": 0.5, "ops": [{"op": "random_choice", "ops": ["hflip", "vflip"]}]}
    assert describe_op(nested) == "random_apply p=0.5 (random_choice)"


def test_preview_row_of_an_op_that_cannot_run_alone(tmp_path):
    data = np.random.default_rng(2).integers(0, 256, (3, 1, 20, 16), dtype=np.uint8)
    ops = [{"op": "resize", "size": [40, 40]}, {"op": "random_crop", "size": 30}]
    transform = build_transform(ops, key="k")
    steps = single_op_transforms(ops, "k")
    with pytest.raises(ParamError):
        steps[1][1].output_size((20, 16))
    out = save_augmentation_preview(data, transform, tmp_path / "p.png", steps=steps, draws=1)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
