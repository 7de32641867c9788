"""The sample mirror's small images: MNIST-like strokes and Fashion-MNIST-like silhouettes at
28×28 grey, CIFAR-like objects at 32×32 colour; each class a learnable template, posed and noised.
"""

from __future__ import annotations

import numpy as np

from cnnpipe.sample.canvas import _affine_points, _Canvas, _cos_sin, _random_pose

# ---- 28×28 grey: MNIST-like strokes, Fashion-MNIST-like silhouettes


def _stroke_templates(rng: np.random.Generator, n_classes: int = 10) -> np.ndarray:
    """One 4-point polyline per class (``classes×4×2``), consecutive points >= 6 px apart."""
    templates = np.empty((n_classes, 4, 2))
    for c in range(n_classes):
        points = [rng.uniform(6, 22, 2)]
        while len(points) < 4:
            p = rng.uniform(6, 22, 2)
            if np.sum((p - points[-1]) ** 2) >= 36:
                points.append(p)
        templates[c] = points
    return templates


def _render_strokes(rng, templates, labels) -> np.ndarray:
    n = len(labels)
    scale, cos, sin, shift = _random_pose(rng, n, 2.5, (0.85, 1.1), 12)
    points = templates[labels] + rng.normal(0, 0.8, (n, 4, 2))
    points = _affine_points(points, (13.5, 13.5), scale, cos, sin, shift)
    width = rng.uniform(2.2, 3.4, n)
    canvas = _Canvas(n, 28, 28, 1)
    ink = rng.uniform(190, 255, (n, 1))
    for k in range(3):
        a, b = points[:, k], points[:, k + 1]
        canvas.paint(canvas.segment(a[:, 0], a[:, 1], b[:, 0], b[:, 1], width), ink)
    canvas.img -= 6  # keep most of the background at exactly 0 after the noise
    return canvas.finish(rng, noise=10)[:, 0]


def _blob_templates(rng: np.random.Generator, n_classes: int = 10) -> np.ndarray:
    """Three ellipses per class: ``classes×3×(cx, cy, rx, ry, angle, level)``."""
    t = np.empty((n_classes, 3, 6))
    t[..., 0:2] = rng.uniform(8, 20, (n_classes, 3, 2))
    t[..., 2:4] = rng.uniform(3, 9, (n_classes, 3, 2))
    t[..., 4] = rng.uniform(0, np.pi, (n_classes, 3))
    t[..., 5] = rng.uniform(0.4, 1.0, (n_classes, 3))
    return t


def _render_blobs(rng, templates, labels) -> np.ndarray:
    n = len(labels)
    scale, cos, sin, shift = _random_pose(rng, n, 2.5, (0.85, 1.12), 12)
    t = templates[labels]
    centers = _affine_points(t[..., 0:2], (13.5, 13.5), scale, cos, sin, shift)
    canvas = _Canvas(n, 28, 28, 1)
    gain = rng.uniform(0.8, 1.1, n)
    for k in range(3):
        ck, sk = _cos_sin(t[:, k, 4])
        ck, sk = ck * cos - sk * sin, sk * cos + ck * sin  # template angle + pose rotation
        alpha = canvas.ellipse(
            centers[:, k, 0], centers[:, k, 1], t[:, k, 2] * scale, t[:, k, 3] * scale, ck, sk
        )
        canvas.paint(alpha, (t[:, k, 5] * gain * 230)[:, None])
    canvas.img -= 5
    return canvas.finish(rng, noise=12)[:, 0]


# ---- 32×32 colour: CIFAR-like objects on random backgrounds


def _cifar_templates(rng: np.random.Generator, n_classes: int = 10) -> dict[str, np.ndarray]:
    return {
        "body": np.concatenate(
            [rng.uniform(12, 20, (n_classes, 2)), rng.uniform(5, 11, (n_classes, 2))], axis=1
        ),
        "body_angle": rng.uniform(0, np.pi, n_classes),
        "strokes": rng.uniform(5, 27, (n_classes, 2, 4)),
        "widths": rng.uniform(2.0, 5.0, (n_classes, 2)),
        "colors": rng.uniform(0, 255, (n_classes, 3, 3)),
    }


def _render_cifar(rng, t, labels) -> np.ndarray:
    n = len(labels)
    canvas = _Canvas(n, 32, 32, 3)
    canvas.gradient(rng.uniform(40, 220, (n, 3)), rng.uniform(40, 220, (n, 3)))
    scale, cos, sin, shift = _random_pose(rng, n, 3.5, (0.8, 1.2), 20)
    colors = t["colors"][labels] + rng.normal(0, 28, (n, 3, 3))
    body = t["body"][labels]
    center = _affine_points(body[:, None, 0:2], (15.5, 15.5), scale, cos, sin, shift)[:, 0]
    bc, bs = _cos_sin(t["body_angle"][labels])
    bc, bs = bc * cos - bs * sin, bs * cos + bc * sin
    alpha = canvas.ellipse(center[:, 0], center[:, 1], body[:, 2] * scale, body[:, 3] * scale, bc, bs)
    canvas.paint(alpha, colors[:, 0])
    strokes = t["strokes"][labels].reshape(n, 4, 2) + rng.normal(0, 0.7, (n, 4, 2))
    strokes = _affine_points(strokes, (15.5, 15.5), scale, cos, sin, shift)
    widths = t["widths"][labels] * scale[:, None]
    for k in range(2):
        a, b = strokes[:, 2 * k], strokes[:, 2 * k + 1]
        alpha = canvas.segment(a[:, 0], a[:, 1], b[:, 0], b[:, 1], widths[:, k])
        canvas.paint(alpha, colors[:, k + 1])
    return canvas.finish(rng, noise=10, contrast=rng.uniform(0.75, 1.15, n), brightness=rng.normal(0, 12, n))
