"""Params lists of ops: parsing from params.yaml, and errors that name the exact element."""

from __future__ import annotations

import pytest
import torch
import yaml

from cnnpipe.errors import ParamError
from cnnpipe.transforms.spec import OPS, build_transform

KEY = "models.horses_aug.augment"


def op(name: str, **kwargs) -> dict:
    return {"op": name, **kwargs}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, c: int = 3, h: int = 21, w: int = 17, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen(seed))


def test_pipeline_from_params_yaml():
    params = yaml.safe_load(
        """
        augment:
          - {op: random_crop, size: [178, 178]}
          - hflip
          - {op: resize, size: [64, 64]}
        eval_transform:
          - {op: center_crop, size: [178, 178]}
          - {op: resize, size: [64, 64]}
        """
    )
    x = images(n=2, h=218, w=178)
    train = build_transform(params["augment"], key="models.smile_cnn.augment")
    evaluate = build_transform(params["eval_transform"], key="models.smile_cnn.eval_transform")
    assert train(x, gen()).shape == evaluate(x).shape == (2, 3, 64, 64)
    assert train.ops[1] == "models.smile_cnn.augment[1]"


# ---------------------------------------------------------------- params errors


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([op("hflip"), op("rotation", degrees="lots")], "[1].degrees: must be a number >= 0"),
        ([op("flip")], "[0].op: unknown op 'flip'; valid ops: affine, center_crop"),
        ([{"p": 0.5}], "[0].op: missing"),
        ([op("hflip", prob=0.5)], "[0].prob: not an argument of op 'hflip'"),
        ([op("hflip", p=1.5)], "[0].p: must be a probability in [0, 1], got 1.5"),
        ([op("resize")], "[0].size: required by op 'resize'"),
        ([op("resize", size=[64])], "[0].size: must be a positive integer"),
        ([op("random_resized_crop", size=8, scale=[0.5, 2])], "[0].scale: must be a [min, max]"),
        ([op("color_jitter", hue=0.7)], "[0].hue: must be a number in [0, 0.5]"),
        ([op("affine", shear=[10, 5])], "[0].shear: must be"),
        ([op("random_crop", size=8, fill=300)], "[0].fill: must be a pixel value in [0, 255]"),
        (
            [op("random_apply", ops=[op("random_choice", ops=[op("perspective", distortion=2)])])],
            "[0].ops[0].ops[0].distortion: must be a number in [0, 1], got 2",
        ),
        ([op("random_apply", ops=[])], "[0].ops: must be a non-empty list of ops"),
        ([op("random_choice", ops=["hflip", "vflip"], p=[1])], "[0].p: must be a list of 2"),
        (["hflip", 3], "[1]: must be a mapping"),
        (op("hflip"), ": must be a list of ops"),
    ],
)
def test_bad_params_name_the_full_key(spec, message):
    with pytest.raises(ParamError) as err:
        build_transform(spec, key=KEY)
    assert str(err.value).startswith(KEY + message)
    assert "\n" not in str(err.value)


def test_unknown_op_lists_every_op():
    with pytest.raises(ParamError) as err:
        build_transform([{"op": "blur"}], key="k")
    assert all(name in str(err.value) for name in OPS)
    assert set(OPS) >= {"hflip", "vflip", "rotation", "random_crop", "random_resized_crop", "resize"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([op("random_crop", size=[40, 10])], "k[0].size: a 40×10 crop does not fit the 21×17"),
        ([op("random_apply", ops=[op("resize", size=8)])], "k[0].ops: must keep the image size"),
        (
            [op("random_choice", ops=[op("resize", size=[8, 8]), op("center_crop", size=9)])],
            "k[0].ops: every choice must give the same image size, got 8×8, 9×9",
        ),
    ],
)
def test_size_problems_are_caught_up_front(spec, message):
    t = build_transform(spec, key="k")
    with pytest.raises(ParamError) as err:
        t.output_size((21, 17))
    assert str(err.value).startswith(message)
    with pytest.raises(ParamError):
        t(images(), gen())
