"""The sample mirror's images, per dataset: learnable class templates, posed and noised.

Strokes (MNIST-like) and silhouettes (Fashion-MNIST-like) at 28×28 grey, CIFAR-like objects
at 32×32, CelebA-like faces drawn from their 40 attributes at 218×178, 300×300 horses,
humans, hands and sea creatures for the ImageFolder sets, and cats and dogs at photo-like
sizes that vary from one image to the next (Dogs vs Cats).
"""

from __future__ import annotations

import numpy as np

from cnnpipe.data.sources import CELEBA_ATTRIBUTES, CELEBA_IMAGE_SIZE
from cnnpipe.sample.canvas import _F, _affine_points, _Canvas, _cos_sin, _random_pose

# Approximate prevalence of each attribute in the real CelebA (fraction of +1).
_CELEBA_PREVALENCE = (
    0.11, 0.27, 0.51, 0.20, 0.02, 0.15, 0.24, 0.23, 0.24, 0.15,
    0.05, 0.21, 0.14, 0.06, 0.05, 0.07, 0.06, 0.04, 0.39, 0.45,
    0.42, 0.48, 0.04, 0.12, 0.83, 0.28, 0.04, 0.28, 0.08, 0.07,
    0.06, 0.48, 0.21, 0.32, 0.19, 0.05, 0.47, 0.12, 0.07, 0.77,
)  # fmt: skip

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


# ---- 218×178 colour: CelebA-like faces driven by their attributes


_HAIR_COLORS = {
    "Black_Hair": (28, 22, 20),
    "Blond_Hair": (222, 190, 120),
    "Brown_Hair": (112, 70, 40),
    "Gray_Hair": (172, 170, 168),
}
_SKIN_TONES = np.array([(242, 205, 180), (226, 182, 150), (198, 150, 115), (160, 112, 80), (112, 76, 52)], _F)


def _celeba_attributes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n×40`` attributes in {-1, 1}, roughly as frequent and consistent as upstream."""
    idx = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    on = rng.random((n, 40)) < np.asarray(_CELEBA_PREVALENCE)
    male = on[:, idx["Male"]]
    for name in ("Wearing_Lipstick", "Heavy_Makeup", "Wearing_Earrings", "Wearing_Necklace"):
        on[male, idx[name]] = on[male, idx[name]] & (rng.random(male.sum()) < 0.05)
    for name in ("Goatee", "Mustache", "Sideburns", "5_o_Clock_Shadow", "Bald"):
        on[~male, idx[name]] = False
    on[~male, idx["No_Beard"]] = True
    on[on[:, idx["Goatee"]] | on[:, idx["Mustache"]], idx["No_Beard"]] = False
    hair = [idx[name] for name in _HAIR_COLORS]
    choice = rng.choice(5, size=n, p=[0.26, 0.16, 0.22, 0.05, 0.31])  # last: none named
    on[:, hair] = False
    has_color = choice < 4
    on[np.flatnonzero(has_color), np.asarray(hair)[choice[has_color]]] = True
    on[on[:, idx["Bald"]], idx["Bangs"]] = False
    return np.where(on, 1, -1).astype(np.int8)


def _render_faces(rng: np.random.Generator, attrs: np.ndarray) -> np.ndarray:
    n = len(attrs)
    a = {name: attrs[:, i] > 0 for i, name in enumerate(CELEBA_ATTRIBUTES)}
    h, w = CELEBA_IMAGE_SIZE
    canvas = _Canvas(n, h, w, 3)
    canvas.gradient(rng.uniform(30, 230, (n, 3)), rng.uniform(30, 230, (n, 3)))
    cx = 89 + rng.normal(0, 3, n)
    cy = 122 + rng.normal(0, 3, n)
    rx = rng.uniform(44, 50, n) + 4 * a["Male"] + 5 * a["Chubby"]
    ry = rng.uniform(58, 64, n) + 4 * a["Oval_Face"]
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES), n)] + rng.normal(0, 8, (n, 3))
    skin = np.where(a["Pale_Skin"][:, None], np.minimum(skin + 45, 250), skin)

    # hair behind and above the face, unless bald
    hair = np.tile(np.asarray((70, 48, 32), _F), (n, 1)) + rng.normal(0, 10, (n, 3))
    for name, color in _HAIR_COLORS.items():
        hair[a[name]] = np.asarray(color, _F) + rng.normal(0, 8, (a[name].sum(), 3))
    long_hair = (~a["Male"]).astype(_F) * 30
    alpha = canvas.ellipse(cx, cy - 12 + long_hair / 2, rx + 12, ry + 8 + long_hair / 2)
    canvas.paint(alpha, hair, opacity=np.where(a["Bald"], 0.0, 1.0))

    # neck, shoulders, then the face
    canvas.paint(canvas.segment(cx, cy + 40, cx, h + 20, rx * 0.8), skin * 0.9)
    canvas.paint(canvas.ellipse(cx, h + 30, rx * 1.9, np.full(n, 48.0)), rng.uniform(20, 230, (n, 3)))
    canvas.paint(canvas.ellipse(cx, cy, rx, ry), skin)
    fringe = a["Bangs"] & ~a["Bald"]
    canvas.paint(canvas.ellipse(cx, cy - ry * 0.75, rx * 0.95, ry * 0.32), hair, opacity=fringe)
    canvas.paint(canvas.ellipse(cx, cy - ry * 1.0, rx * 1.05, ry * 0.45), hair, opacity=~a["Bald"] & ~fringe)
    cheeks = np.asarray((220, 90, 90), _F)[None].repeat(n, 0)
    for side in (-1, 1):
        canvas.paint(
            canvas.ellipse(cx + side * rx * 0.55, cy + 12, 10, 7), cheeks, opacity=0.45 * a["Rosy_Cheeks"]
        )

    # beard shade, then the mouth
    beard = ~a["No_Beard"] | a["5_o_Clock_Shadow"]
    canvas.paint(
        canvas.ellipse(cx, cy + ry * 0.55, rx * 0.72, ry * 0.42),
        hair * 0.7,
        opacity=np.where(a["No_Beard"], 0.35, 0.8) * beard,
    )
    my = cy + 28 + rng.normal(0, 1.5, n)
    smile = a["Smiling"]
    half = np.where(smile, rng.uniform(25, 30, n), rng.uniform(13, 18, n))
    sag = np.where(smile, rng.uniform(16, 20, n), rng.uniform(-3, 1, n))
    lips = np.where(a["Wearing_Lipstick"][:, None], (200, 40, 70), (150, 75, 75)).astype(_F)
    thick = 3.5 + 2 * a["Big_Lips"] + 2.5 * a["Mouth_Slightly_Open"]
    # a smile is a wide open crescent (lips around a dark mouth and a broad row of teeth) that
    # lifts the cheeks, creases them beside the mouth and narrows the eyes; large enough to
    # stay visible at 64×64 after the 178×178 crop
    crescent = canvas.arc(cx, my + sag * 0.3, half, sag * 0.7, sag * 0.75 + thick)
    canvas.paint(crescent, lips, opacity=smile)
    mouth = canvas.arc(cx, my + sag * 0.3, half * 0.9, sag * 0.7, sag * 0.65)
    canvas.paint(mouth, np.tile(np.asarray((60, 21, 24), _F), (n, 1)), opacity=smile)
    teeth = canvas.arc(cx, my + sag * 0.2, half * 0.85, sag * 0.55, sag * 0.4)
    canvas.paint(teeth, np.full((n, 3), 240, _F), opacity=smile)
    blush = np.tile(np.asarray((235, 120, 110), _F), (n, 1))
    for side in (-1, 1):
        crease = canvas.segment(cx + side * (half + 3), my + 2, cx + side * (half + 7), my - 14, 2.5)
        canvas.paint(crease, skin * 0.7, opacity=smile)
        apple = canvas.ellipse(cx + side * rx * 0.5, cy + 4, 14, 10)
        canvas.paint(apple, blush, opacity=0.7 * smile)
    canvas.paint(canvas.arc(cx, my, half, sag, thick), lips, opacity=~smile)
    canvas.paint(canvas.segment(cx - 14, my - 9, cx + 14, my - 9, 5), hair * 0.6, opacity=a["Mustache"])

    # nose, eyes, eyebrows, glasses
    nose_w = 5 + 3 * a["Big_Nose"]
    canvas.paint(canvas.segment(cx, cy - 6, cx + 2, cy + 12, nose_w), skin * 0.8)
    ey = cy - 14 + rng.normal(0, 1, n)
    eye_h = np.where(a["Narrow_Eyes"], 2.2, 3.8) * np.where(smile, 0.6, 1.0)  # a smile narrows the eyes
    iris = rng.uniform(20, 120, (n, 3))
    white = np.full((n, 3), 240, _F)
    for side in (-1, 1):
        ex = cx + side * 19
        canvas.paint(canvas.ellipse(ex, ey, 8, eye_h), white)
        canvas.paint(canvas.ellipse(ex, ey, 3.2, np.minimum(eye_h, 3.2)), iris)
        brow_y = ey - 9 - 2 * a["Arched_Eyebrows"]
        canvas.paint(
            canvas.segment(ex - 8, brow_y + 1, ex + 8, brow_y - 1, 2.5 + 2.5 * a["Bushy_Eyebrows"]),
            hair * 0.8,
        )
        canvas.paint(canvas.ring(ex, ey, 12, 9, 2), np.full((n, 3), 25, _F), opacity=a["Eyeglasses"])
    canvas.paint(canvas.segment(cx - 7, ey, cx + 7, ey, 2), np.full((n, 3), 25, _F), opacity=a["Eyeglasses"])

    # hat on top
    hat = rng.uniform(20, 230, (n, 3))
    canvas.paint(canvas.ellipse(cx, cy - ry * 0.95, rx * 1.15, ry * 0.5), hat, opacity=a["Wearing_Hat"])
    canvas.paint(
        canvas.segment(cx - rx * 1.3, cy - ry * 0.6, cx + rx * 1.3, cy - ry * 0.6, 8),
        hat,
        opacity=a["Wearing_Hat"],
    )
    return canvas.finish(
        rng,
        noise=5,
        contrast=rng.uniform(0.85, 1.1, n),
        brightness=rng.normal(0, 10, n),
    )


# ---- 300×300 RGBA: horses or humans, rock/paper/scissors hands


def _outdoor_background(rng, canvas: _Canvas) -> np.ndarray:
    n = canvas.n
    horizon = rng.uniform(150, 215, n)
    sky = np.asarray((120, 170, 230), _F) + rng.normal(0, 15, (n, 3))
    canvas.gradient(sky + 40, sky, 0, horizon)
    ground = np.asarray((80, 140, 60), _F) + rng.normal(0, 18, (n, 3))
    canvas.gradient(ground + 20, ground - 25, horizon, 300)
    return horizon


def _render_horses(rng, n: int) -> np.ndarray:
    canvas = _Canvas(n, 300, 300, 3)
    horizon = _outdoor_background(rng, canvas)
    s = rng.uniform(0.8, 1.15, n)
    facing = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    cx = rng.uniform(120, 180, n)
    cy = np.minimum(horizon + 10, 235) - 70 * s
    coats = np.asarray([(120, 72, 38), (90, 55, 30), (150, 100, 60), (40, 32, 28), (200, 196, 190)])
    coat = coats[rng.choice(5, n, p=[0.35, 0.25, 0.2, 0.1, 0.1])] + rng.normal(0, 10, (n, 3))
    dark = coat * 0.6
    for dx in (-50, -30, 30, 50):  # legs
        x = cx + dx * s
        canvas.paint(canvas.segment(x, cy, x + rng.normal(0, 4, n), cy + 95 * s, 12 * s), dark)
    canvas.paint(
        canvas.segment(cx - facing * 72 * s, cy - 10 * s, cx - facing * 90 * s, cy + 50 * s, 10 * s), dark
    )  # tail
    canvas.paint(canvas.ellipse(cx, cy, 78 * s, 34 * s), coat)  # body
    nx, ny = cx + facing * 62 * s, cy - 15 * s
    hx, hy = cx + facing * 95 * s, cy - 80 * s
    canvas.paint(canvas.segment(nx, ny, hx, hy, 26 * s), coat)  # neck
    c, sn = _cos_sin(np.where(facing > 0, 0.5, np.pi - 0.5))
    canvas.paint(canvas.ellipse(hx + facing * 18 * s, hy + 10 * s, 30 * s, 13 * s, c, sn), coat)
    canvas.paint(
        canvas.segment(nx - facing * 5 * s, ny - 10 * s, hx - facing * 8 * s, hy, 8 * s), dark
    )  # mane
    return canvas.finish(rng, noise=0, contrast=rng.uniform(0.85, 1.1, n), shade=rng.uniform(-0.2, 0.2, n))


def _render_humans(rng, n: int) -> np.ndarray:
    canvas = _Canvas(n, 300, 300, 3)
    horizon = _outdoor_background(rng, canvas)
    s = rng.uniform(0.8, 1.1, n)
    cx = rng.uniform(115, 185, n)
    feet = np.minimum(horizon + rng.uniform(20, 70, n), 292)
    hip = feet - 100 * s
    shoulder = hip - 85 * s
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES), n)] + rng.normal(0, 8, (n, 3))
    shirt = rng.uniform(20, 235, (n, 3))
    trousers = rng.uniform(20, 200, (n, 3))
    for side in (-1, 1):  # legs, arms
        canvas.paint(
            canvas.segment(cx + side * 12 * s, hip, cx + side * rng.uniform(12, 30, n) * s, feet, 20 * s),
            trousers,
        )
        hand_x = cx + side * rng.uniform(30, 70, n) * s
        hand_y = shoulder + rng.uniform(40, 95, n) * s
        canvas.paint(canvas.segment(cx + side * 28 * s, shoulder + 8 * s, hand_x, hand_y, 15 * s), shirt)
        canvas.paint(canvas.ellipse(hand_x, hand_y, 8 * s, 8 * s), skin)
    canvas.paint(canvas.ellipse(cx, (hip + shoulder) / 2, 32 * s, 50 * s), shirt)  # torso
    canvas.paint(canvas.segment(cx, shoulder - 14 * s, cx, shoulder + 4 * s, 14 * s), skin)
    head_y = shoulder - 32 * s
    canvas.paint(canvas.ellipse(cx, head_y - 4 * s, 23 * s, 24 * s), rng.uniform(20, 200, (n, 3)))
    canvas.paint(canvas.ellipse(cx, head_y + 2 * s, 19 * s, 23 * s), skin)
    return canvas.finish(rng, noise=0, contrast=rng.uniform(0.85, 1.1, n), shade=rng.uniform(-0.2, 0.2, n))


def _render_hands(rng, n: int, fingers: int) -> np.ndarray:
    """Hands on a white background: 0 extended fingers (rock), 2 (scissors) or 5 (paper)."""
    canvas = _Canvas(n, 300, 300, 3)
    canvas.img[:] = 250
    s = rng.uniform(0.85, 1.1, n)
    cx, cy = rng.uniform(130, 170, n), rng.uniform(130, 170, n)
    theta = rng.uniform(-0.6, 0.6, n) + np.where(rng.random(n) < 0.5, 0.0, np.pi)
    skin = _SKIN_TONES[rng.integers(0, len(_SKIN_TONES), n)] + rng.normal(0, 8, (n, 3))
    edge = skin * 0.75

    def point(along, across):
        """A point ``along`` the pointing direction and ``across`` it (scaled)."""
        c, sn = _cos_sin(theta)
        return cx + s * (along * c - across * sn), cy + s * (along * sn + across * c)

    c, sn = _cos_sin(theta)
    ax, ay = point(-220, 0)
    bx, by = point(-30, 0)
    canvas.paint(canvas.segment(ax, ay, bx, by, 62 * s), skin)  # forearm and wrist
    canvas.paint(canvas.ellipse(cx, cy, 50 * s + 3, 43 * s + 3, c, sn), edge)
    canvas.paint(canvas.ellipse(cx, cy, 50 * s, 43 * s, c, sn), skin)  # palm
    if fingers == 0:
        for across in (-27, -9, 9, 27):  # knuckles of the fist
            kx, ky = point(40, across)
            canvas.paint(canvas.ellipse(kx, ky, 13 * s, 13 * s), edge)
            canvas.paint(canvas.ellipse(kx, ky, 11 * s, 11 * s), skin)
        tx, ty = point(18, -36)
        canvas.paint(canvas.segment(*point(-10, -38), tx, ty, 17 * s), skin)
        return canvas.finish(
            rng, noise=0, contrast=rng.uniform(0.9, 1.05, n), shade=rng.uniform(-0.12, 0.12, n)
        )
    if fingers == 2:
        tips = [(118, -30), (118, 24)]
        for across in (-9, 9, 27):  # folded fingers
            kx, ky = point(42, across)
            canvas.paint(canvas.ellipse(kx, ky, 11 * s, 11 * s), edge)
    else:
        tips = [(105, -42), (125, -15), (122, 12), (100, 36), (20, -95)]
    for k, (along, across) in enumerate(tips):
        along = along + rng.normal(0, 4, n)
        base_across = across * (0.35 if k < 4 else 0.5)
        bx, by = point(30 if k < 4 else -10, base_across)
        tx, ty = point(along, across)
        canvas.paint(canvas.segment(bx, by, tx, ty, 22 * s), edge)
        canvas.paint(canvas.segment(bx, by, tx, ty, 18 * s), skin)
    return canvas.finish(rng, noise=0, contrast=rng.uniform(0.9, 1.05, n), shade=rng.uniform(-0.12, 0.12, n))


def _render_sea(rng, n: int, kind: str) -> np.ndarray:
    """100×100 sea creatures on a blue-green water gradient, one shape family per class."""
    canvas = _Canvas(n, 100, 100, 3)
    water = np.asarray((20, 90, 140), _F) + rng.normal(0, 12, (n, 3))
    canvas.gradient(water + 40, water - 30)
    s = rng.uniform(0.8, 1.15, n)
    cx, cy = rng.uniform(40, 60, n), rng.uniform(40, 60, n)
    body = {
        "crab": (200, 60, 40),
        "fish": (240, 190, 40),
        "jellyfish": (220, 170, 230),
        "octopus": (170, 70, 120),
        "starfish": (240, 120, 50),
    }[kind] + rng.normal(0, 14, (n, 3))
    if kind == "crab":
        for side in (-1, 1):
            for dy in (-6, 0, 6):  # legs
                canvas.paint(
                    canvas.segment(
                        cx + side * 14 * s, cy + dy * s, cx + side * 30 * s, cy + (dy + 8) * s, 3 * s
                    ),
                    body * 0.8,
                )
            canvas.paint(canvas.ellipse(cx + side * 22 * s, cy - 18 * s, 7 * s, 5 * s), body)  # claws
        canvas.paint(canvas.ellipse(cx, cy, 20 * s, 12 * s), body)
    elif kind == "fish":
        canvas.paint(canvas.segment(cx + 18 * s, cy, cx + 32 * s, cy - 10 * s, 7 * s), body * 0.85)
        canvas.paint(canvas.segment(cx + 18 * s, cy, cx + 32 * s, cy + 10 * s, 7 * s), body * 0.85)
        canvas.paint(canvas.ellipse(cx, cy, 22 * s, 10 * s), body)
        canvas.paint(canvas.ellipse(cx - 13 * s, cy - 3 * s, 2.5 * s, 2.5 * s), np.zeros((n, 3)))
    elif kind == "jellyfish":
        for dx in (-10, -4, 2, 8):  # trailing tentacles
            canvas.paint(
                canvas.segment(cx + dx * s, cy, cx + (dx + rng.normal(0, 2, n)) * s, cy + 30 * s, 2 * s),
                body,
                0.7,
            )
        canvas.paint(canvas.ellipse(cx, cy - 4 * s, 18 * s, 12 * s), body, 0.85)
    elif kind == "octopus":
        for k in range(8):  # tentacles curling downwards
            angle = np.pi * (0.15 + 0.7 * k / 7) + rng.normal(0, 0.08, n)
            c, sn = _cos_sin(angle)
            canvas.paint(
                canvas.segment(cx, cy + 6 * s, cx + 28 * s * c, cy + 6 * s + 28 * s * sn, 4 * s), body * 0.9
            )
        canvas.paint(canvas.ellipse(cx, cy - 6 * s, 15 * s, 17 * s), body)
    else:  # starfish: five arms
        turn = rng.uniform(0, 2 * np.pi / 5, n)
        for k in range(5):
            c, sn = _cos_sin(turn + 2 * np.pi * k / 5)
            canvas.paint(canvas.segment(cx, cy, cx + 26 * s * c, cy + 26 * s * sn, 9 * s), body)
        canvas.paint(canvas.ellipse(cx, cy, 9 * s, 9 * s), body)
    return canvas.finish(rng, noise=6, contrast=rng.uniform(0.85, 1.1, n), shade=rng.uniform(-0.2, 0.2, n))


# ---- Dogs vs Cats: one pet per photo, each photo its own size

_FUR = np.asarray([(40, 36, 34), (120, 82, 50), (200, 150, 90), (150, 146, 140), (235, 228, 215)], _F)


def _render_pet(rng, kind: str, height: int, width: int) -> np.ndarray:
    """A cat or a dog (``kind``) in a room, as uint8 ``3×height×width``.

    Both share fur colours; a cat has pointed upright ears, slit pupils and whiskers, a dog
    hanging ears, a long light muzzle and a big dark nose.
    """
    canvas = _Canvas(1, height, width, 3)
    wall = rng.uniform(60, 220, (1, 3))
    floor_y = height * rng.uniform(0.6, 0.8)
    canvas.gradient(wall + 25, wall - 25, 0, floor_y)
    floor = rng.uniform(50, 170, (1, 3))
    canvas.gradient(floor, floor - 30, floor_y, height)
    r = min(height, width) * rng.uniform(0.16, 0.22)  # head radius
    cx = width * rng.uniform(0.38, 0.62)
    cy = height * rng.uniform(0.35, 0.5)
    fur = _FUR[rng.integers(0, len(_FUR))][None] + rng.normal(0, 12, (1, 3))
    dark = fur * 0.55
    canvas.paint(canvas.ellipse(cx, cy + 1.9 * r, 1.3 * r, 1.1 * r), fur * 0.9)  # body
    if kind == "cat":
        for side in (-1, 1):
            c, sn = _cos_sin(np.asarray([np.pi / 2 - side * 0.35]))
            ear_x, ear_y = cx + side * 0.62 * r, cy - 0.85 * r
            canvas.paint(canvas.ellipse(ear_x, ear_y, 0.55 * r, 0.2 * r, c, sn), fur)
            canvas.paint(canvas.ellipse(ear_x, ear_y + 0.05 * r, 0.35 * r, 0.1 * r, c, sn), [(230, 150, 160)])
        canvas.paint(canvas.ellipse(cx, cy, r, 0.9 * r), fur)  # head
        eye = rng.uniform((150, 170, 20), (220, 230, 90), (1, 3))
        for side in (-1, 1):
            ex = cx + side * 0.4 * r
            canvas.paint(canvas.ellipse(ex, cy - 0.1 * r, 0.2 * r, 0.15 * r), eye)
            canvas.paint(canvas.ellipse(ex, cy - 0.1 * r, 0.04 * r, 0.14 * r), [(10, 10, 10)])  # slit
            for dy in (-0.05, 0.08, 0.2):  # whiskers
                canvas.paint(
                    canvas.segment(
                        cx + side * 0.2 * r, cy + 0.35 * r, cx + side * 1.2 * r, cy + (0.3 + dy) * r, 2
                    ),
                    [(240, 240, 235)],
                )
        canvas.paint(canvas.ellipse(cx, cy + 0.28 * r, 0.1 * r, 0.07 * r), [(220, 120, 130)])  # nose
    else:
        canvas.paint(canvas.ellipse(cx, cy, 0.95 * r, r), fur)  # head
        for side in (-1, 1):  # hanging ears
            c, sn = _cos_sin(np.asarray([np.pi / 2 + side * 0.25]))
            canvas.paint(canvas.ellipse(cx + side * 0.95 * r, cy + 0.25 * r, 0.8 * r, 0.28 * r, c, sn), dark)
        canvas.paint(
            canvas.ellipse(cx, cy + 0.55 * r, 0.45 * r, 0.5 * r), np.minimum(fur + 60, 255)
        )  # muzzle
        canvas.paint(canvas.ellipse(cx, cy + 0.35 * r, 0.22 * r, 0.15 * r), [(15, 12, 12)])  # nose
        if rng.random() < 0.5:
            canvas.paint(canvas.ellipse(cx, cy + 1.0 * r, 0.15 * r, 0.2 * r), [(210, 70, 80)])  # tongue
        for side in (-1, 1):
            canvas.paint(
                canvas.ellipse(cx + side * 0.38 * r, cy - 0.25 * r, 0.12 * r, 0.12 * r), [(25, 18, 12)]
            )
    return canvas.finish(rng, noise=4, contrast=rng.uniform(0.85, 1.1, 1), shade=rng.uniform(-0.2, 0.2, 1))[0]
