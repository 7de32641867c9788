"""Batched image ops: torchvision parity for deterministic ops, per-sample randomness, output sizes."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cnnpipe.transforms.color import _ColorJitter
from cnnpipe.transforms.containers import BatchTransform, as_float_images
from cnnpipe.transforms.geometry import (
    _Affine,
    _homographies,
    _RandomResizedCrop,
    _Resize,
    _WarpedResizedCrop,
)
from cnnpipe.transforms.spec import _parse_list, build_transform


def op(name: str, **kwargs) -> dict:
    return {"op": name, **kwargs}


SEA = [  # SPEC sea_cnn
    op("hflip", p=0.5),
    op("vflip", p=0.5),
    op("rotation", degrees=15),
    op(
        "random_apply",
        p=0.5,
        ops=[
            op(
                "random_choice",
                ops=[
                    op("color_jitter", brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
                    op("perspective", distortion=0.4),
                ],
            )
        ],
    ),
]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, c: int = 3, h: int = 21, w: int = 17, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen(seed))


def smooth_images(n: int = 4, h: int = 24, w: int = 20) -> torch.Tensor:
    """Float RGB images with no exact symmetries, so flips and rotations are detectable."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx * yy, (xx**2 + 0.3 * yy) / 1.3, (1 - yy) * (0.2 + 0.8 * xx)])
    return base.expand(n, 3, h, w).clone()


def run(spec, x, seed: int = 0, key: str = "aug"):
    return build_transform(spec, key=key)(x, gen(seed))


# ---------------------------------------------------------------- deterministic ops vs torchvision


@pytest.mark.parametrize("size", [16, 40, [20, 13], [50, 60], [21, 17]])
def test_resize_matches_torchvision(size):
    x = as_float_images(images(h=37, w=29))
    expected = TF.resize(x, size if isinstance(size, list) else [size], antialias=True)
    out = run([{"op": "resize", "size": size}], x)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_resize_of_uint8_images_is_torchvisions_uint8_resize(interpolation):
    x = images(h=37, w=29)
    spec = [{"op": "resize", "size": [20, 13], "interpolation": interpolation}]
    mode = getattr(InterpolationMode, interpolation.upper())
    expected = TF.resize(x, [20, 13], interpolation=mode, antialias=True)
    assert expected.dtype == torch.uint8
    out = run(spec, x)
    assert torch.equal(out, as_float_images(expected))  # rounded to whole levels, as torchvision and PIL
    # and within 1.5 levels of the float resize (the uint8 kernels' weights are fixed-point, like PIL's)
    assert (out - run(spec, as_float_images(x))).abs().max() <= 1.5 / 255


@pytest.mark.parametrize("size", [[20, 13], 15, [40, 40], [38, 10], [21, 17]])
def test_center_crop_matches_torchvision_exactly(size):
    x = as_float_images(images(h=37, w=29))
    expected = TF.center_crop(x, size if isinstance(size, list) else [size])
    assert torch.equal(run([{"op": "center_crop", "size": size}], x), expected)


def test_flips_with_p1_equal_torch_flip_and_p0_is_identity():
    x = images()
    xf = as_float_images(x)
    assert torch.equal(run([{"op": "hflip", "p": 1}], x), torch.flip(xf, dims=[-1]))
    assert torch.equal(run([{"op": "vflip", "p": 1.0}], x), torch.flip(xf, dims=[-2]))
    assert torch.equal(run([{"op": "hflip", "p": 0}, {"op": "vflip", "p": 0}], x), xf)


@pytest.mark.parametrize(
    "spec",
    [
        {"op": "rotation", "degrees": 0},
        {"op": "affine"},
        {"op": "affine", "degrees": 0, "translate": [0, 0], "scale": [1, 1], "shear": 0},
        {"op": "perspective", "distortion": 0, "p": 1},
        {"op": "random_resized_crop", "size": [21, 17], "scale": [1, 1], "ratio": [17 / 21, 17 / 21]},
    ],
)
def test_identity_parameters_give_identity(spec):
    x = as_float_images(images())
    assert torch.allclose(run([spec], x), x, atol=1e-5, rtol=0)


def test_fixed_rotation_and_affine_match_torchvision():
    x = smooth_images(2)
    out = run([{"op": "rotation", "degrees": [30, 30]}], x)
    expected = TF.rotate(x, 30.0, interpolation=InterpolationMode.BILINEAR)
    assert torch.allclose(out, expected, atol=1e-5, rtol=0)
    spec = {"op": "affine", "degrees": [10, 10], "scale": [1.2, 1.2], "shear": [5, 5, -3, -3]}
    bilinear = InterpolationMode.BILINEAR
    expected = TF.affine(
        x, angle=10.0, translate=[0, 0], scale=1.2, shear=[5.0, -3.0], interpolation=bilinear
    )
    assert torch.allclose(run([spec], x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("arg", "value", "reference"),
    [
        ("brightness", 1.3, TF.adjust_brightness),
        ("contrast", 0.6, TF.adjust_contrast),
        ("saturation", 1.7, TF.adjust_saturation),
        ("hue", 0.2, TF.adjust_hue),
        ("hue", -0.45, TF.adjust_hue),
    ],
)
def test_color_jitter_with_fixed_factor_matches_torchvision(arg, value, reference):
    x = as_float_images(images())
    x[:, :, 0] = x[:, :1, 0]  # a grey row: no hue to turn
    x[:, 1, 1] = x[:, 0, 1]  # a row where red and green tie
    out = run([{"op": "color_jitter", arg: [value, value]}], x)
    assert torch.allclose(out, reference(x, value), atol=1e-5, rtol=0)


def test_color_jitter_on_grayscale_skips_saturation_and_hue():
    x = images(c=1)
    assert torch.equal(run([{"op": "color_jitter", "saturation": 0.5, "hue": 0.3}], x), as_float_images(x))
    out = run([{"op": "color_jitter", "brightness": 0.5, "contrast": 0.5}], x)
    assert out.shape == x.shape and not torch.equal(out, as_float_images(x))


# ---------------------------------------------------------------- random ops


def test_random_crop_outputs_are_crops_of_the_input():
    x = images(n=6, h=15, w=12)
    out = run([{"op": "random_crop", "size": [9, 7]}], x)
    assert out.shape == (6, 3, 9, 7)
    xf = as_float_images(x)
    offsets = set()
    for i in range(6):
        hits = [
            (t, left)
            for t in range(15 - 9 + 1)
            for left in range(12 - 7 + 1)
            if torch.equal(out[i], xf[i, :, t : t + 9, left : left + 7])
        ]
        assert hits, f"sample {i} is not a crop of its input"
        offsets.add(hits[0])
    assert len(offsets) > 1  # each sample has its own offset


def test_random_crop_with_padding_and_fill_crops_the_padded_image():
    x = images(n=5, h=8, w=8)
    out = run([{"op": "random_crop", "size": 8, "padding": 2, "fill": 255}], x)
    padded = torch.nn.functional.pad(as_float_images(x), (2, 2, 2, 2), value=1.0)
    for i in range(5):
        windows = [padded[i, :, t : t + 8, left : left + 8] for t in range(5) for left in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_hflip_is_drawn_per_sample_and_about_half_the_time():
    x = smooth_images(2000, h=2, w=3)
    out = run([{"op": "hflip", "p": 0.5}], x)
    flipped = (out - x.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-7
    kept = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-7
    assert torch.all(flipped ^ kept)
    assert 0.4 <= flipped.float().mean().item() <= 0.6


def test_rotation_differs_per_sample():
    x = smooth_images(8)
    out = run([{"op": "rotation", "degrees": 30}], x)
    flat = out.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(8) * 1e3
    assert distances.min().item() > 1e-3


def test_color_jitter_factors_differ_per_sample():
    out = run([{"op": "color_jitter", "brightness": 0.4, "hue": 0.1}], smooth_images(6))
    flat = out.flatten(1)
    assert (torch.cdist(flat, flat) + torch.eye(6) * 1e3).min().item() > 1e-4


@pytest.mark.parametrize("size", [12, 181])  # 181²: reductions of one sample large enough to run on threads
def test_color_jitter_applies_each_samples_factors_in_its_own_order_like_torchvision(size):
    ranges = ((0.5, 1.5), (0.5, 1.5), (0.2, 1.8), (-0.2, 0.2))
    jitter = _ColorJitter("aug[0]", ranges=ranges)
    x = as_float_images(images(n=9, h=size, w=size))
    active, factors, order = jitter.draw(gen(4), 9, 3)
    assert active == [0, 1, 2, 3] and len({tuple(o) for o in order.tolist()}) > 1
    adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    out = jitter(x, gen(4))
    for i in range(9):
        expected = x[i]
        for position in order[i].tolist():
            expected = adjust[active[position]](expected, factors[i, active[position]].item())
        assert torch.allclose(out[i], expected, atol=1e-5, rtol=0), f"sample {i}, order {order[i].tolist()}"


def test_same_seed_same_output_other_seed_other_output():
    x = images(n=8, h=24, w=24)
    spec = [*SEA, {"op": "random_resized_crop", "size": 16}, {"op": "affine", "translate": [0.1, 0.1]}]
    a, b, c = run(spec, x, seed=3), run(spec, x, seed=3), run(spec, x, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == torch.float32 and a.min() >= 0.0 and a.max() <= 1.0


def test_random_choice_weights_and_random_apply_probability():
    x = images()
    xf = as_float_images(x)
    first_only = [op("random_choice", ops=[op("hflip", p=1), op("vflip", p=1)], p=[1, 0])]
    assert torch.equal(run(first_only, x), xf.flip(-1))
    never = [op("random_apply", p=0, ops=[op("rotation", degrees=40)])]
    assert torch.equal(run(never, x), xf)


def _matches(out: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    return (out - expected).abs().amax(dim=(1, 2, 3)) < 1e-7


def test_random_apply_and_random_choice_pick_per_sample():
    x = smooth_images(2000, h=2, w=3)
    out = run([op("random_apply", p=0.5, ops=[op("hflip", p=1)])], x)
    flipped, kept = _matches(out, x.flip(-1)), _matches(out, x)
    assert torch.all(flipped ^ kept) and 0.45 <= flipped.float().mean().item() <= 0.55
    out = run([op("random_choice", ops=[op("hflip", p=1), op("vflip", p=1)], p=[3, 1])], x)
    across, down = _matches(out, x.flip(-1)), _matches(out, x.flip(-2))
    assert torch.all(across ^ down) and 0.7 <= across.float().mean().item() <= 0.8
    crops = [op("random_choice", ops=[op("center_crop", size=4), op("random_crop", size=4)])]
    assert run(crops, images(n=6, h=9, w=7)).shape == (6, 3, 4, 4)


def test_random_resized_crop_shape_and_range():
    x = images(n=5, h=40, w=30)
    t = build_transform([{"op": "random_resized_crop", "size": 12}], key="k")
    out = t(x, gen())
    assert out.shape == (5, 3, 12, 12) and t.output_size((40, 30)) == (12, 12)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_random_resized_crop_is_torchvisions_resized_crop_of_its_boxes():
    rrc = _RandomResizedCrop("k", size=(12, 10), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), mode="bilinear",
                             antialias=True)  # fmt: skip
    x = images(n=8, h=40, w=30)
    boxes = rrc.boxes(gen(2), 8, 40, 30)
    out = rrc(x, gen(2))
    assert len(set(boxes)) == 8
    for i, (top, left, height, width) in enumerate(boxes):
        assert 0 <= top <= 40 - height and 0 <= left <= 30 - width
        assert 0.08 * 1200 * 0.8 <= height * width <= 1200
        expected = TF.resized_crop(as_float_images(x[i]), top, left, height, width, [12, 10], antialias=True)
        assert torch.allclose(out[i], expected, atol=1e-6, rtol=0)
    # no draw fits a 2:1 box of the whole area into 30×40: torchvision's centred fallback
    wide = _RandomResizedCrop("k", size=(5, 5), scale=(1.0, 1.0), ratio=(2.0, 2.0), mode="bilinear",
                              antialias=True)  # fmt: skip
    assert wide.boxes(gen(), 3, 40, 30) == [(12, 0, 15, 30)] * 3


@pytest.mark.parametrize(
    "warp",
    [
        op("rotation", degrees=25, fill=[40, 200, 90]),
        op("affine", degrees=10, translate=[0.1, 0.2], scale=[0.8, 1.2], shear=8),
        op("rotation", degrees=25, interpolation="nearest"),
    ],
    ids=["rotation-fill", "affine", "rotation-nearest"],
)
def test_a_warp_before_random_resized_crop_warps_only_the_crop_box(warp):
    crop = op("random_resized_crop", size=[14, 11])
    spec = [op("hflip"), warp, crop]
    fused = build_transform(spec, key="k")
    assert isinstance(fused._pipeline.ops[1], _WarpedResizedCrop)
    assert fused.ops == ("k[0]", "k[1]", "k[2]")
    separate = BatchTransform(_parse_list(spec, "k"), "k")  # the whole image warped, then cropped
    x = images(n=8, h=40, w=30)
    expected = separate(x, gen(3))
    for images_in in (x, as_float_images(x)):
        out = fused(images_in, gen(3))
        if warp.get("interpolation") == "nearest":  # a grid point on a pixel boundary may round apart
            assert (out - expected).abs().gt(1e-4).float().mean() < 0.01
        else:
            assert torch.allclose(out, expected, atol=1e-4, rtol=0)
    # the same in random_apply's list; random_choice's ops are alternatives, never fused
    applied = build_transform([op("random_apply", ops=[warp, crop])], key="k")._pipeline.ops[0]
    assert isinstance(applied.ops.ops[0], _WarpedResizedCrop)
    choice = build_transform([op("random_choice", ops=[warp, op("resize", size=[40, 30])])], key="k")
    assert [type(o) for o in choice._pipeline.ops[0].ops] == [_Affine, _Resize]


def test_homographies_map_the_given_corners():
    src = torch.tensor([[[1.0, 2.0], [30.0, 0.5], [28.0, 20.0], [3.0, 25.0]]], dtype=torch.float64)
    dst = torch.tensor([[[0.0, 0.0], [31.0, 0.0], [31.0, 24.0], [0.0, 24.0]]], dtype=torch.float64)
    m = _homographies(src, dst)[0]
    pts = torch.cat([src[0], torch.ones(4, 1, dtype=torch.float64)], dim=1) @ m.T
    assert torch.allclose(pts[:, :2] / pts[:, 2:], dst[0], atol=1e-9)


def test_input_handling():
    x = images()
    t = build_transform(SEA, key="k")
    before = x.clone()
    xf = as_float_images(x)
    assert torch.allclose(t(x, gen()), t(xf, gen()), atol=1e-6)
    assert torch.equal(x, before)
    assert t(x[0], gen()).shape == x.shape[1:]  # a single C×H×W image
    assert t(x[:0], gen()).shape == (0, 3, 21, 17)
    assert torch.equal(build_transform([], key="k")(x), xf)
    assert len(build_transform(None, key="k")) == 0


def test_output_size_for_spec_pipelines():
    smile = [op("random_crop", size=[178, 178]), op("hflip", p=0.5), op("resize", size=[64, 64])]
    assert build_transform(smile, key="k").output_size((218, 178)) == (64, 64)
    horses_eval = [{"op": "resize", "size": 150}, {"op": "center_crop", "size": 150}]
    assert build_transform(horses_eval, key="k").output_size((300, 400)) == (150, 150)
    assert build_transform([{"op": "resize", "size": 256}], key="k").output_size((300, 400)) == (256, 341)
    assert build_transform(SEA, key="k").output_size((100, 100)) == (100, 100)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_cpu_generator():
    x = images(n=6, h=32, w=32)
    spec = [*SEA, {"op": "random_crop", "size": 28}, {"op": "random_resized_crop", "size": 20}]
    cpu = run(spec, x)
    cuda = run(spec, x.cuda())
    assert cuda.device.type == "cuda"
    assert torch.allclose(cuda.cpu(), cpu, atol=1e-4)


def test_random_crop_pad_if_needed():
    t = build_transform([{"op": "random_crop", "size": [30, 10], "pad_if_needed": True}], key="k")
    assert t(images(h=21, w=17), gen()).shape == (4, 3, 30, 10)
