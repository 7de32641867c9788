"""The convolution arithmetic behind the explore figures, against scipy.signal and the sources' hand work.

The 1-D and 2-D examples are the classic ones of the PyTorch chapter on CNNs (x = [1, 3, 2, 4, 5, 6, 1, 3]
with w = [1, 0, 3, 1, 2]; a 4×4 X with a 3×3 W), whose printed results this module also checks;
the Sobel patch is a left-to-right ramp, for which Gx gives 8 as a cross-correlation and −8 as a
convolution; the 3×3 filter turns the pixel 192 of the first chapter into 577.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from cnnpipe.explore import kernels as K

X1 = [1, 3, 2, 4, 5, 6, 1, 3]
W1 = [1, 0, 3, 1, 2]
X2 = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
W2 = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]


def test_1d_convolution_is_scipys_and_the_chapters():
    same = K.convolve1d(X1, W1, padding=2).numpy()
    np.testing.assert_array_equal(same, scipy.signal.convolve(X1, W1, mode="same"))
    np.testing.assert_array_equal(same, [5, 14, 16, 26, 24, 34, 19, 22])  # as printed in the chapter
    np.testing.assert_array_equal(K.convolve1d(X1, W1, padding=4).numpy(), scipy.signal.convolve(X1, W1))
    np.testing.assert_array_equal(
        K.correlate1d(X1, W1, padding=2).numpy(), scipy.signal.correlate(X1, W1, mode="same")
    )


@pytest.mark.parametrize("padding", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_1d_padding_stride_and_output_size(padding, stride):
    out = K.convolve1d(X1, W1, padding=padding, stride=stride).numpy()
    reference = scipy.signal.convolve(np.pad(X1, padding), W1, mode="valid")[::stride]
    np.testing.assert_array_equal(out, reference)
    assert len(out) == K.conv_output_size(len(X1), len(W1), padding, stride)


def test_2d_convolution_is_scipys_and_the_chapters():
    same = K.convolve2d(X2, W2, padding=1).numpy()
    np.testing.assert_array_equal(same, scipy.signal.convolve2d(X2, W2, mode="same"))
    expected = [[11, 25, 32, 13], [19, 25, 24, 13], [13, 28, 25, 17], [11, 17, 14, 9]]  # the chapter's
    np.testing.assert_array_equal(same, expected)
    np.testing.assert_array_equal(
        K.correlate2d(X2, W2, padding=1).numpy(), scipy.signal.correlate2d(X2, W2, mode="same")
    )


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_2d_padding_stride_and_output_size(padding, stride):
    image = np.random.default_rng(padding * 10 + stride).integers(0, 9, (7, 6))
    kernel = np.random.default_rng(3).integers(-3, 4, (3, 2))
    out = K.convolve2d(image, kernel, padding=padding, stride=stride).numpy()
    reference = scipy.signal.convolve2d(np.pad(image, padding), kernel, mode="valid")[::stride, ::stride]
    np.testing.assert_array_equal(out, reference)
    assert out.shape == (
        K.conv_output_size(7, 3, padding, stride),
        K.conv_output_size(6, 2, padding, stride),
    )


def test_output_size_formula():
    assert K.conv_output_size(28, 3) == 26  # 3×3, no padding
    assert K.conv_output_size(28, 3, padding=1) == 28  # "same"
    assert K.conv_output_size(28, 5, padding=2) == 28
    assert K.conv_output_size(28, 2, stride=2) == 14  # 2×2 max pooling halves it
    assert K.conv_output_size(299, 3, stride=2) == 149  # Inception's first convolution
    assert K.conv_output_size(8, 5, padding=2, stride=2) == 4
    with pytest.raises(ValueError):
        K.conv_output_size(8, 3, stride=0)


def test_sobel_example_is_8_as_correlation_and_minus_8_as_convolution():
    patch, gx = K.SOBEL_EXAMPLE["patch"], K.SOBEL_X
    assert K.correlate2d(patch, gx).item() == 8 == K.SOBEL_EXAMPLE["correlation"]
    assert K.convolve2d(patch, gx).item() == -8 == K.SOBEL_EXAMPLE["convolution"]
    assert scipy.signal.correlate2d(patch, gx, mode="valid").item() == 8
    assert scipy.signal.convolve2d(patch, gx, mode="valid").item() == -8
    np.testing.assert_array_equal(K.flip(gx).numpy(), -np.asarray(gx))  # why: Gx rotated is −Gx


def test_a_pixel_of_192_becomes_577_by_hand():
    patch, kernel = np.asarray(K.BY_HAND["patch"]), np.asarray(K.BY_HAND["kernel"])
    assert patch[1, 1] == 192
    assert float((patch * kernel).sum()) == 577 == K.BY_HAND["value"]
    assert K.correlate2d(patch, kernel).item() == 577


def test_edge_filters_are_the_sobel_kernels_and_detect_their_edges():
    assert K.VERTICAL_EDGE == K.SOBEL_X and K.HORIZONTAL_EDGE == K.SOBEL_Y
    np.testing.assert_array_equal(np.asarray(K.SOBEL_Y), np.asarray(K.SOBEL_X).T)
    left_right = np.zeros((6, 6))
    left_right[:, 3:] = 1.0  # a vertical edge
    assert np.abs(K.correlate2d(left_right, K.VERTICAL_EDGE).numpy()).max() == 4
    assert np.abs(K.correlate2d(left_right, K.HORIZONTAL_EDGE).numpy()).max() == 0


def test_max_pool_halves_512_to_256():
    image = np.random.default_rng(0).random((512, 512)).astype(np.float32)
    pooled = K.max_pool(image, 2).numpy()
    assert pooled.shape == (256, 256)
    np.testing.assert_array_equal(pooled, image.reshape(256, 2, 256, 2).max(axis=(1, 3)))


def test_gray_and_panels_match_numpy_and_scipy():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 9, 8), dtype=np.uint8)
    gray = K.to_gray(rgb).numpy()
    np.testing.assert_allclose(gray, np.tensordot(K.GRAY_WEIGHTS, rgb / 255.0, axes=1), atol=1e-6)
    one = rgb[:1]
    np.testing.assert_allclose(K.to_gray(one).numpy(), one[0] / 255.0, atol=1e-7)

    panels = K.filter_panels(gray)
    gx = scipy.signal.correlate2d(gray, K.SOBEL_X, mode="valid")
    gy = scipy.signal.correlate2d(gray, K.SOBEL_Y, mode="valid")
    np.testing.assert_allclose(panels["sobel_x"], gx, atol=1e-5)
    np.testing.assert_allclose(panels["sobel_y"], gy, atol=1e-5)
    np.testing.assert_allclose(panels["magnitude"], np.hypot(gx, gy), atol=1e-5)
    np.testing.assert_allclose(panels["vertical"], np.clip(gx, 0, 1), atol=1e-5)
    assert panels["pooled"].shape == (4, 4) and panels["magnitude_pooled"].shape == (3, 3)
    assert all(a.dtype == np.float32 for a in panels.values())

    conv = K.convolution_panels(gray)
    np.testing.assert_allclose(
        conv["convolution"], scipy.signal.convolve2d(gray, K.SOBEL_X, "valid"), atol=1e-5
    )
    np.testing.assert_allclose(conv["difference"], -2 * conv["correlation"], atol=1e-5)


def test_float_input_keeps_its_dtype_integer_input_is_float64():
    assert K.correlate2d(torch.zeros(4, 4), K.SOBEL_X).dtype == torch.float32
    assert K.correlate2d([[1] * 4] * 4, K.SOBEL_X).dtype == torch.float64
