"""Paint CIFAR-10 look-alikes: one drawn object of the class on a varied outdoor/indoor background.

Why drawn objects and not coloured noise: the look-alike stands in for the real photos in CI, in
`deepgrade demo` and in the smoke profiles (it also trains the `resnet1` stand-in model), so a
small CNN must learn shapes the way it would on CIFAR-10, and a broken notebook (labels shuffled
against images, channels in the wrong order) must still fail. Each class has its own silhouette
(plane: fuselage, swept wings and fin; car: low body, cabin, two wheels; truck: tall cargo box,
cab, three wheels; ship: hull and superstructure on water; bird: small body, beak and tail;
frog: squat body with eyes on top; deer: long thin legs, neck and antlers; horse: big body, long
neck and head, mane) and its usual backgrounds (sky, grass, road, water), drawn from mixtures so
no single colour gives the class away.

Cat (3) and dog (5) are deliberately confusable, as in the real set: the same four-legged body,
head, tail, palette, sizes and backgrounds; only the ears differ (pointed triangles standing up
for cats, rounded flaps hanging beside the head for dogs), a few pixels at 32x32. A small model
separates them late and imperfectly, and they are its most confused pair.

Everything is vectorised numpy over a chunk of images: signed distances (ellipses, boxes,
capsules, triangles) in object units on the 32x32 grid, a one-pixel soft edge, position, scale,
rotation and mirror jitter, low-frequency background texture, a light blur and pixel noise.
Every draw comes from the generator given, in a fixed order, so a seed paints the same pixels.
Changing anything here changes the pixels: bump cifar10.RECIPE_VERSION.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]

SIZE = 32
_CHUNK = 512
_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)

# Background families (RGB 0-1, top and bottom colour of a vertical gradient).
_BACKGROUNDS = {
    "sky": ((0.55, 0.72, 0.92), (0.80, 0.88, 0.96)),
    "cloud": ((0.78, 0.80, 0.84), (0.90, 0.91, 0.93)),
    "grass": ((0.38, 0.55, 0.28), (0.25, 0.42, 0.18)),
    "ground": ((0.62, 0.54, 0.40), (0.45, 0.37, 0.26)),
    "water": ((0.30, 0.45, 0.62), (0.16, 0.28, 0.45)),
    "road": ((0.58, 0.58, 0.58), (0.38, 0.38, 0.40)),
    "indoor": ((0.80, 0.74, 0.64), (0.62, 0.55, 0.46)),
}
_FAMILIES = tuple(_BACKGROUNDS)
# Per class: probability of each background family (order of _FAMILIES).
_BG_P = np.array(
    [
        [0.45, 0.25, 0.10, 0.05, 0.05, 0.10, 0.00],  # airplane
        [0.10, 0.05, 0.10, 0.10, 0.00, 0.55, 0.10],  # automobile
        [0.35, 0.15, 0.25, 0.15, 0.05, 0.00, 0.05],  # bird
        [0.05, 0.05, 0.25, 0.20, 0.00, 0.10, 0.35],  # cat
        [0.05, 0.05, 0.45, 0.40, 0.00, 0.00, 0.05],  # deer
        [0.05, 0.05, 0.25, 0.20, 0.00, 0.10, 0.35],  # dog: as cat
        [0.00, 0.00, 0.45, 0.40, 0.10, 0.00, 0.05],  # frog
        [0.10, 0.05, 0.45, 0.35, 0.00, 0.00, 0.05],  # horse
        [0.25, 0.15, 0.00, 0.00, 0.60, 0.00, 0.00],  # ship
        [0.10, 0.05, 0.10, 0.15, 0.00, 0.55, 0.05],  # truck
    ],
    dtype=np.float64,
)

# Object palettes (RGB 0-1); each image picks one and jitters it.
_FUR = ((0.80, 0.55, 0.30), (0.55, 0.50, 0.48), (0.15, 0.13, 0.12), (0.90, 0.88, 0.84))
_FUR += ((0.50, 0.33, 0.20), (0.70, 0.62, 0.50))
_PALETTES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "plane": ((0.92, 0.92, 0.94), (0.70, 0.72, 0.76), (0.85, 0.20, 0.18), (0.25, 0.30, 0.40)),
    "car": (
        (0.80, 0.10, 0.10),
        (0.15, 0.25, 0.70),
        (0.92, 0.92, 0.92),
        (0.10, 0.10, 0.12),
        (0.90, 0.80, 0.15),
        (0.65, 0.67, 0.70),
    ),
    "bird": (
        (0.75, 0.15, 0.12),
        (0.20, 0.35, 0.75),
        (0.90, 0.80, 0.20),
        (0.40, 0.30, 0.22),
        (0.12, 0.12, 0.12),
    ),
    "fur": _FUR,
    "deer": ((0.60, 0.42, 0.25), (0.70, 0.52, 0.32), (0.50, 0.36, 0.22)),
    "frog": ((0.30, 0.60, 0.20), (0.45, 0.55, 0.20), (0.50, 0.40, 0.25), (0.20, 0.45, 0.25)),
    "horse": ((0.45, 0.28, 0.15), (0.12, 0.10, 0.10), (0.88, 0.86, 0.82), (0.62, 0.40, 0.22)),
    "ship": ((0.85, 0.85, 0.88), (0.20, 0.22, 0.28), (0.65, 0.15, 0.12), (0.30, 0.40, 0.55)),
    "truck": (
        (0.92, 0.92, 0.92),
        (0.75, 0.12, 0.10),
        (0.90, 0.75, 0.10),
        (0.15, 0.30, 0.65),
        (0.20, 0.45, 0.25),
    ),
}


# --- signed distances in object units (negative inside) -------------------------------------


def _ellipse(u: Array, v: Array, cu: float, cv: float, ru: float, rv: float) -> Array:
    q = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return (q - 1.0) * min(ru, rv)


def _box(u: Array, v: Array, cu: float, cv: float, hu: float, hv: float) -> Array:
    return np.maximum(np.abs(u - cu) - hu, np.abs(v - cv) - hv)


def _capsule(
    u: Array, v: Array, a: tuple[float, float], b: tuple[float, float], r: float | Array
) -> Array:
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((u - a[0]) * du + (v - a[1]) * dv) / (du * du + dv * dv), 0.0, 1.0)
    return np.sqrt((u - a[0] - t * du) ** 2 + (v - a[1] - t * dv) ** 2) - r


def _triangle(u: Array, v: Array, *points: tuple[float, float]) -> Array:
    """Signed distance-like value for a triangle (exact inside the edges' half-planes)."""
    (ax, ay), (bx, by), (cx, cy) = points
    sign = 1.0 if (bx - ax) * (cy - ay) - (by - ay) * (cx - ax) > 0 else -1.0
    result = None
    for (px, py), (qx, qy) in (((ax, ay), (bx, by)), ((bx, by), (cx, cy)), ((cx, cy), (ax, ay))):
        ex, ey = qx - px, qy - py
        d = -sign * (ex * (v - py) - ey * (u - px)) / float(np.hypot(ex, ey))
        result = d if result is None else np.maximum(result, d)
    assert result is not None
    return result


class _Painter:
    """Composites parts over a chunk of canvases; `scale` (px per unit) softens edges to ~1 px."""

    def __init__(self, canvas: Array, u: Array, v: Array, scale: Array, rng: np.random.Generator):
        self.canvas, self.u, self.v, self.scale, self.rng = canvas, u, v, scale, rng
        self.n = canvas.shape[0]

    def colour(self, palette: str, jitter: float = 0.06) -> Array:
        choices = np.asarray(_PALETTES[palette], dtype=np.float32)
        picked = choices[self.rng.integers(len(choices), size=self.n)]
        noise = self.rng.uniform(-jitter, jitter, size=(self.n, 3)).astype(np.float32)
        return np.clip(picked + noise, 0.0, 1.0)

    def paint(self, distance: Array, colour: Array, opacity: float = 1.0) -> None:
        alpha = np.clip(0.5 - distance * self.scale, 0.0, 1.0)[..., None]
        if opacity != 1.0:
            alpha *= opacity
        self.canvas += alpha * (colour[:, None, None, :] - self.canvas)


def _shade(colour: Array, factor: float) -> Array:
    return np.clip(colour * factor, 0.0, 1.0)


# --- the ten classes ---------------------------------------------------------------------------


def _airplane(p: _Painter) -> None:
    u, v = p.u, p.v
    body = p.colour("plane")
    wing = _triangle(u, v, (-3.0, -0.5), (3.5, -0.5), (4.5, -10.0))
    wing = np.minimum(wing, _triangle(u, v, (-3.0, 0.5), (3.5, 0.5), (4.5, 10.0)))
    p.paint(wing, _shade(body, 0.85))
    p.paint(_ellipse(u, v, 0.0, 0.0, 12.0, 1.8), body)
    p.paint(_triangle(u, v, (8.0, -0.5), (12.0, -0.5), (12.0, -6.0)), _shade(body, 0.9))
    p.paint(_box(u, v, -7.0, -0.5, 2.0, 0.4), _shade(body, 0.45))  # cockpit windows


def _wheels(p: _Painter, centres: tuple[float, ...], cv: float, r: float) -> None:
    tyre = np.full((p.n, 3), 0.08, dtype=np.float32)
    hub = np.full((p.n, 3), 0.60, dtype=np.float32)
    for cu in centres:
        p.paint(_ellipse(p.u, p.v, cu, cv, r, r), tyre)
        p.paint(_ellipse(p.u, p.v, cu, cv, r * 0.4, r * 0.4), hub)


def _automobile(p: _Painter) -> None:
    u, v = p.u, p.v
    body = p.colour("car")
    glass = np.full((p.n, 3), 0.45, dtype=np.float32)
    p.paint(_triangle(u, v, (-7.0, -0.5), (7.0, -0.5), (3.0, -6.0)), body)
    p.paint(_triangle(u, v, (-7.0, -0.5), (3.0, -6.0), (-3.5, -6.0)), body)
    p.paint(_triangle(u, v, (-4.5, -1.2), (2.5, -1.2), (-2.8, -5.0)), glass)
    p.paint(_box(u, v, 0.0, 1.8, 12.0, 2.6), body)
    p.paint(_box(u, v, -11.3, 0.8, 0.7, 0.6), np.full((p.n, 3), 0.95, dtype=np.float32))
    _wheels(p, (-7.0, 7.0), 4.2, 2.6)


def _truck(p: _Painter) -> None:
    u, v = p.u, p.v
    cargo = p.colour("truck")
    cab = p.colour("truck")
    p.paint(_box(u, v, 3.5, -2.5, 8.5, 6.5), cargo)
    p.paint(_box(u, v, -9.0, 0.5, 3.5, 3.8), cab)
    p.paint(_box(u, v, -9.8, -1.3, 2.0, 1.5), np.full((p.n, 3), 0.40, dtype=np.float32))
    p.paint(_box(u, v, -1.0, 4.6, 12.5, 0.6), np.full((p.n, 3), 0.20, dtype=np.float32))
    _wheels(p, (-8.5, 3.0, 8.5), 5.6, 2.4)


def _ship(p: _Painter) -> None:
    u, v = p.u, p.v
    water = np.asarray(_BACKGROUNDS["water"][0], dtype=np.float32)
    water = np.clip(water + p.rng.uniform(-0.08, 0.08, size=(p.n, 3)), 0.0, 1.0).astype(np.float32)
    p.paint(3.0 - v, water)  # the sea below the water line (moves with the ship)
    hull = p.colour("ship")
    top = p.colour("ship")
    p.paint(_triangle(u, v, (-14.0, -1.0), (12.0, -1.0), (-9.0, 4.0)), hull)
    p.paint(_triangle(u, v, (12.0, -1.0), (9.0, 4.0), (-9.0, 4.0)), hull)
    p.paint(_box(u, v, 1.0, -3.5, 6.0, 2.5), top)
    p.paint(_box(u, v, 3.0, -7.5, 1.2, 2.0), _shade(top, 0.6))
    p.paint(_box(u, v, 1.0, -3.8, 5.0, 0.5), np.full((p.n, 3), 0.15, dtype=np.float32))


def _bird(p: _Painter) -> None:
    u, v = p.u, p.v
    feathers = p.colour("bird", jitter=0.08)
    p.paint(_triangle(u, v, (3.0, -0.5), (9.0, -3.0), (9.0, 2.0)), _shade(feathers, 0.7))
    p.paint(_capsule(u, v, (-5.5, 6.0), (-5.5, 3.0), 0.35), np.full((p.n, 3), 0.3, np.float32))
    p.paint(_capsule(u, v, (-2.5, 6.0), (-2.5, 3.0), 0.35), np.full((p.n, 3), 0.3, np.float32))
    p.paint(_ellipse(u, v, -1.0, 0.5, 5.5, 3.3), feathers)
    p.paint(_ellipse(u, v, 0.5, -0.2, 3.5, 1.6), _shade(feathers, 0.65))  # wing
    p.paint(_ellipse(u, v, -6.0, -3.2, 2.4, 2.4), feathers)
    beak = np.asarray((0.95, 0.70, 0.10), dtype=np.float32)[None].repeat(p.n, 0)
    p.paint(_triangle(u, v, (-8.0, -4.0), (-8.0, -2.6), (-11.0, -3.3)), beak)
    p.paint(_ellipse(u, v, -6.6, -3.8, 0.55, 0.55), np.full((p.n, 3), 0.02, np.float32))


def _frog(p: _Painter) -> None:
    u, v = p.u, p.v
    skin = p.colour("frog")
    p.paint(_ellipse(u, v, -7.0, 6.5, 3.5, 1.6), _shade(skin, 0.8))
    p.paint(_ellipse(u, v, 7.0, 6.5, 3.5, 1.6), _shade(skin, 0.8))
    p.paint(_ellipse(u, v, 0.0, 3.5, 8.5, 4.5), skin)
    p.paint(_ellipse(u, v, 0.0, 5.0, 5.0, 2.2), np.clip(skin + 0.25, 0, 1))  # belly
    for cu in (-3.5, 3.5):
        p.paint(_ellipse(u, v, cu, -0.8, 2.0, 2.0), skin)
        p.paint(_ellipse(u, v, cu, -1.0, 1.0, 1.0), np.full((p.n, 3), 0.05, np.float32))


def _legs(
    p: _Painter, colour: Array, positions: tuple[float, ...], top: float, foot: float, r: float
) -> None:
    for i, cu in enumerate(positions):
        shade = 0.8 if i % 2 else 1.0  # far legs a little darker
        p.paint(_capsule(p.u, p.v, (cu, top), (cu + 0.3, foot), r), _shade(colour, shade))


def _pet(p: _Painter, pointed_ears: bool) -> None:
    """Cat and dog: one body, one palette, one pose; only the ears differ."""
    u, v = p.u, p.v
    fur = p.colour("fur")
    _legs(p, fur, (-5.5, -3.5, 3.5, 5.5), 3.0, 9.5, 1.0)
    p.paint(_capsule(u, v, (6.5, 0.5), (10.5, -4.0), 0.9), fur)  # tail
    p.paint(_ellipse(u, v, 0.0, 1.5, 7.5, 4.0), fur)
    head = (-8.5, -3.5)
    p.paint(_ellipse(u, v, head[0], head[1], 3.6, 3.3), fur)
    if pointed_ears:
        p.paint(_triangle(u, v, (-11.8, -5.0), (-9.4, -6.0), (-11.3, -9.3)), fur)
        p.paint(_triangle(u, v, (-7.6, -6.0), (-5.2, -5.0), (-5.7, -9.3)), fur)
    else:
        ear = _shade(fur, 0.7)
        p.paint(_ellipse(u, v, -12.0, -3.0, 1.3, 2.8), ear)
        p.paint(_ellipse(u, v, -5.0, -3.0, 1.3, 2.8), ear)
    eyes = np.full((p.n, 3), 0.05, dtype=np.float32)
    p.paint(_ellipse(u, v, -9.8, -4.0, 0.55, 0.55), eyes)
    p.paint(_ellipse(u, v, -7.2, -4.0, 0.55, 0.55), eyes)


def _cat(p: _Painter) -> None:
    _pet(p, pointed_ears=True)


def _dog(p: _Painter) -> None:
    _pet(p, pointed_ears=False)


def _deer(p: _Painter) -> None:
    u, v = p.u, p.v
    coat = p.colour("deer")
    _legs(p, coat, (-5.0, -3.5, 4.0, 5.5), 1.5, 11.0, 0.6)
    p.paint(_ellipse(u, v, 0.0, 0.0, 7.0, 3.2), coat)
    p.paint(_ellipse(u, v, 6.8, -1.0, 1.2, 1.0), np.full((p.n, 3), 0.92, np.float32))  # tail
    p.paint(_capsule(u, v, (-5.0, -1.0), (-8.0, -7.0), 1.3), coat)
    p.paint(_ellipse(u, v, -9.5, -7.5, 2.5, 1.4), coat)
    antler = np.full((p.n, 3), 0.40, dtype=np.float32)
    p.paint(_capsule(u, v, (-8.0, -8.5), (-6.5, -12.5), 0.45), antler)
    p.paint(_capsule(u, v, (-7.2, -10.5), (-5.0, -11.0), 0.4), antler)
    p.paint(_capsule(u, v, (-9.0, -8.5), (-10.5, -12.5), 0.45), antler)


def _horse(p: _Painter) -> None:
    u, v = p.u, p.v
    coat = p.colour("horse")
    mane = _shade(coat, 0.45)
    _legs(p, coat, (-6.0, -4.0, 4.5, 6.5), 2.5, 11.0, 1.1)
    p.paint(_capsule(u, v, (8.0, -1.0), (10.5, 5.0), 1.0), mane)  # tail
    p.paint(_ellipse(u, v, 0.5, 0.0, 8.5, 4.0), coat)
    p.paint(_capsule(u, v, (-6.0, -1.0), (-9.0, -7.5), 2.2), coat)
    p.paint(_capsule(u, v, (-5.0, -3.0), (-8.0, -9.0), 0.8), mane)
    p.paint(_capsule(u, v, (-9.0, -8.0), (-12.5, -4.5), 1.5), coat)


_DRAW: tuple[Callable[[_Painter], None], ...] = (
    _airplane,
    _automobile,
    _bird,
    _cat,
    _deer,
    _dog,
    _frog,
    _horse,
    _ship,
    _truck,
)
# Per class: object scale range in pixels per unit (the drawings span about 24 units).
_SCALE = (
    (0.95, 1.2),
    (0.95, 1.15),
    (0.9, 1.2),
    (0.95, 1.2),
    (0.95, 1.15),
    (0.95, 1.2),
    (1.0, 1.3),
    (0.95, 1.15),
    (0.95, 1.15),
    (0.9, 1.1),
)


def _interpolation(coarse: int) -> Array:
    """(SIZE, coarse) bilinear weights: smooth texture from a few random values."""
    pos = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE * (coarse - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, coarse - 2)
    frac = pos - lo
    matrix = np.zeros((SIZE, coarse), dtype=np.float32)
    matrix[np.arange(SIZE), lo] = 1.0 - frac
    matrix[np.arange(SIZE), lo + 1] = frac
    return matrix


_SMOOTH = _interpolation(5)


def _background(labels: Array, rng: np.random.Generator) -> Array:
    n = labels.shape[0]
    cumulative = np.cumsum(_BG_P[labels], axis=1)
    family = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    family = np.minimum(family, len(_FAMILIES) - 1)
    top = np.asarray([_BACKGROUNDS[f][0] for f in _FAMILIES], dtype=np.float32)[family]
    bottom = np.asarray([_BACKGROUNDS[f][1] for f in _FAMILIES], dtype=np.float32)[family]
    jitter = rng.uniform(-0.12, 0.12, size=(n, 1, 3)).astype(np.float32)
    t = (_Y / (SIZE - 1))[None, :, :, None]
    canvas = top[:, None, None, :] * (1 - t) + bottom[:, None, None, :] * t + jitter[:, None]
    coarse = rng.normal(0.0, 1.0, size=(n, 5, 5)).astype(np.float32)
    texture = np.einsum("yi,nij,xj->nyx", _SMOOTH, coarse, _SMOOTH)
    amount = rng.uniform(0.03, 0.10, size=(n, 1, 1)).astype(np.float32)
    canvas += (texture * amount)[..., None]
    return canvas.astype(np.float32)


def _render_chunk(labels: Array, rng: np.random.Generator) -> Array:
    n = labels.shape[0]
    canvas = _background(labels, rng)
    cx = rng.uniform(12.5, 19.5, size=n).astype(np.float32)
    cy = rng.uniform(13.5, 18.5, size=n).astype(np.float32)
    flip = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    angle = np.radians(rng.uniform(-8.0, 8.0, size=n)).astype(np.float32)
    unit = rng.random(n).astype(np.float32)
    for label, draw in enumerate(_DRAW):
        idx = np.flatnonzero(labels == label)
        if idx.size == 0:
            continue
        lo, hi = _SCALE[label]
        scale = (lo + (hi - lo) * unit[idx])[:, None, None]
        dx = _X[None] - cx[idx, None, None]
        dy = _Y[None] - cy[idx, None, None]
        cos, sin = np.cos(angle[idx])[:, None, None], np.sin(angle[idx])[:, None, None]
        u = (cos * dx + sin * dy) / scale * flip[idx, None, None]
        v = (-sin * dx + cos * dy) / scale
        sub = np.ascontiguousarray(canvas[idx])
        draw(_Painter(sub, u, v, scale, rng))
        canvas[idx] = sub
    # A light blur (camera optics at 32 px), global exposure and pixel noise.
    blurred = canvas.copy()
    blurred[:, 1:-1, 1:-1] = (
        4 * canvas[:, 1:-1, 1:-1]
        + canvas[:, :-2, 1:-1]
        + canvas[:, 2:, 1:-1]
        + canvas[:, 1:-1, :-2]
        + canvas[:, 1:-1, 2:]
    ) / 8.0
    exposure = rng.uniform(0.8, 1.15, size=(n, 1, 1, 1)).astype(np.float32)
    sigma = rng.uniform(0.01, 0.035, size=(n, 1, 1, 1)).astype(np.float32)
    noisy = blurred * exposure + rng.normal(0.0, 1.0, size=canvas.shape).astype(np.float32) * sigma
    return np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)


def render(labels: Array, rng: np.random.Generator) -> Array:
    """(N, 32, 32, 3) uint8 images, one per label (0-9), painted in chunks to bound memory."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.empty((labels.shape[0], SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, labels.shape[0], _CHUNK):
        out[start : start + _CHUNK] = _render_chunk(labels[start : start + _CHUNK], rng)
    return out
