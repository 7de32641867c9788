"""The sample mirror's photo-like scenes for the ImageFolder sets: 300×300 horses, humans and
rock/paper/scissors hands, 100×100 sea creatures, and cats and dogs at sizes that vary from one
image to the next (Dogs vs Cats).
"""

from __future__ import annotations

import numpy as np

from cnnpipe.sample.canvas import _F, _SKIN_TONES, _Canvas, _cos_sin

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
