"""The sample mirror's CelebA-like faces at 218×178, drawn from their 40 attributes (each with
about its prevalence in the real CelebA), so Smiling and the rest are learnable.
"""

from __future__ import annotations

import numpy as np

from cnnpipe.data.sources import CELEBA_ATTRIBUTES, CELEBA_IMAGE_SIZE
from cnnpipe.sample.canvas import _F, _SKIN_TONES, _Canvas

# Approximate prevalence of each attribute in the real CelebA (fraction of +1).
_CELEBA_PREVALENCE = (
    0.11, 0.27, 0.51, 0.20, 0.02, 0.15, 0.24, 0.23, 0.24, 0.15,
    0.05, 0.21, 0.14, 0.06, 0.05, 0.07, 0.06, 0.04, 0.39, 0.45,
    0.42, 0.48, 0.04, 0.12, 0.83, 0.28, 0.04, 0.28, 0.08, 0.07,
    0.06, 0.48, 0.21, 0.32, 0.19, 0.05, 0.47, 0.12, 0.07, 0.77,
)  # fmt: skip

# ---- 218×178 colour: CelebA-like faces driven by their attributes


_HAIR_COLORS = {
    "Black_Hair": (28, 22, 20),
    "Blond_Hair": (222, 190, 120),
    "Brown_Hair": (112, 70, 40),
    "Gray_Hair": (172, 170, 168),
}


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
