"""Paint SIGNS look-alikes: a skin-toned hand on a light wall with `label` fingers raised.

Why drawn shapes and not noise with a label-dependent tint: the look-alike stands in for the
real photos in CI and in `deepgrade demo`, so a model must learn what the course's model learns
(count the raised fingers), and a broken notebook (labels misaligned with images, say) must
still fail. The class lives only in the fingers: the palm, wrist, position, size, rotation,
handedness, colours, shadow and noise are drawn independently of the label, and for 1 to 4
fingers the raised subset is now and then unusual (a thumb with the index, say).

The ranges below are calibrated, not arbitrary: the course's CNN (960 images, 8 epochs, batch
32) reaches about 0.95 test accuracy and only 0.2-0.3 after the first epoch. Wider position or
rotation ranges, or more left hands, make 8 epochs too few (0.45 at the first attempt's
ranges). Changing anything here changes the pixels: bump signs.RECIPE_VERSION.

Everything is vectorised numpy over a chunk of images: signed distances of capsules (fingers,
thumb, wrist) and an ellipse (palm) on the 64x64 pixel grid, a one-pixel anti-aliased edge,
rim shading, a soft shadow, then noise. Every random draw comes from the generator given, in a
fixed order, so the same seed paints the same pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]

SIZE = 64
_CHUNK = 256  # images painted at once: bounds memory (~6 float32 planes of CHUNK x 64 x 64)

# Finger slots: thumb, index, middle, ring, little. Raised set per count in the usual way of
# showing numbers with one hand; `ODD_SUBSET_P` of the 1-4 cases pick another subset.
_CANONICAL = {
    0: (),
    1: (1,),
    2: (1, 2),
    3: (1, 2, 3),
    4: (1, 2, 3, 4),
    5: (0, 1, 2, 3, 4),
}
ODD_SUBSET_P = 0.05
MIRROR_P = 0.1  # left hands
# In hand units (1 unit ~ 1 px at scale 1), hand pointing up, palm centre at the origin.
_BASE_U = np.array([-9.0, -6.3, -2.1, 2.1, 6.0], dtype=np.float32)  # across the palm
_BASE_V = np.array([-1.0, 8.0, 9.4, 9.0, 7.6], dtype=np.float32)  # up the palm
_ANGLE = np.array([-52.0, -14.0, -3.0, 7.0, 18.0], dtype=np.float32)  # degrees from straight up
_LENGTH = np.array([12.0, 16.0, 17.5, 16.0, 12.5], dtype=np.float32)  # raised
_RADIUS = np.array([2.7, 2.3, 2.4, 2.3, 2.0], dtype=np.float32)


# The recipe's ranges (uniform draws); positions in pixels, scale 1 ~ a 20 px wide palm.
RANGES: dict[str, tuple[float, float]] = {
    "cx": (29.0, 35.0),  # palm centre
    "cy": (39.0, 43.0),
    "scale": (1.2, 1.35),
    "rotation_deg": (-10.0, 10.0),
    "skin": (175.0, 235.0),  # red channel of the skin before the tone factor
    "skin_tone": (0.7, 1.0),  # darker or lighter skin
    "wall": (185.0, 240.0),  # grey level of the background
    "shadow": (0.0, 0.3),
    "noise_sigma": (2.0, 6.0),
}


def _draw_parameters(labels: NDArray[np.int64], rng: np.random.Generator) -> dict[str, Array]:
    """All random choices for `labels`, drawn up front so chunking cannot change them."""
    n = len(labels)

    def draw(key: str) -> Array:
        return rng.uniform(*RANGES[key], n)

    raised = np.zeros((n, 5), dtype=bool)
    odd = rng.random(n) < ODD_SUBSET_P
    for i, k in enumerate(labels.tolist()):
        if odd[i] and 1 <= k <= 4:
            raised[i, rng.choice(5, size=k, replace=False)] = True
        else:
            raised[i, list(_CANONICAL[k])] = True
    skin = draw("skin")
    return {
        "raised": raised,
        "cx": draw("cx"),
        "cy": draw("cy"),
        "scale": draw("scale"),
        "theta": np.deg2rad(draw("rotation_deg")),
        "mirror": np.where(rng.random(n) < MIRROR_P, -1.0, 1.0),
        "angle_jitter": rng.normal(0.0, 4.0, (n, 5)),
        "length_jitter": rng.uniform(0.85, 1.12, (n, 5)),
        "palm_a": rng.uniform(9.0, 10.8, n),
        "palm_b": rng.uniform(10.0, 12.0, n),
        # Skin: reddish beige, lighter or darker; background: a light, slightly tinted wall.
        "skin_rgb": np.stack(
            [skin, skin * rng.uniform(0.66, 0.8, n), skin * rng.uniform(0.5, 0.68, n)], axis=1
        )
        * draw("skin_tone")[:, None],
        "bg_rgb": draw("wall")[:, None] + rng.normal(0, 8, (n, 3)),
        "bg_slope": rng.normal(0, 0.12, (n, 2)),
        "light": rng.normal(0, 0.08, n),
        "shadow": draw("shadow"),
        "noise_sigma": draw("noise_sigma"),
    }


def _capsule(
    px: Array, py: Array, ax: Array, ay: Array, bx: Array, by: Array, r0: Array, r1: Array
) -> Array:
    """Signed distance to a tapered segment a->b (radius r0 at a, r1 at b); negative inside."""
    ax, ay, bx, by, r0, r1 = (t[:, None, None] for t in (ax, ay, bx, by, r0, r1))
    pax, pay = px - ax, py - ay
    bax, bay = bx - ax, by - ay
    h = np.clip((pax * bax + pay * bay) / np.maximum(bax * bax + bay * bay, 1e-6), 0.0, 1.0)
    dist: Array = np.hypot(pax - bax * h, pay - bay * h) - (r0 + (r1 - r0) * h)
    return dist


def _hand_distance(p: dict[str, Array], px: Array, py: Array) -> Array:
    """Signed distance to the hand (palm, wrist, five finger slots) for a chunk of images."""
    s, th, m = p["scale"], p["theta"], p["mirror"]
    cos, sin = np.cos(th), np.sin(th)

    def world(u: Array, v: Array) -> tuple[Array, Array]:
        # hand units -> pixels: mirror for left/right hands, rotate, scale; image y points down.
        u = u * m[:, None] if u.ndim == 2 else u * m
        cs, sn, sc = (t[:, None] if u.ndim == 2 else t for t in (cos, sin, s))
        cx, cy = (p[k][:, None] if u.ndim == 2 else p[k] for k in ("cx", "cy"))
        return cx + sc * (u * cs - v * sn), cy - sc * (u * sn + v * cs)

    # Palm: ellipse in hand coordinates.
    dx, dy = px - p["cx"][:, None, None], py - p["cy"][:, None, None]
    u = (dx * cos[:, None, None] - dy * sin[:, None, None]) * m[:, None, None]
    v = -(dx * sin[:, None, None] + dy * cos[:, None, None])
    a, b = (p["palm_a"] * s)[:, None, None], (p["palm_b"] * s)[:, None, None]
    dist: Array = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * np.minimum(a, b)
    # Wrist and forearm: down to below the image edge.
    zero = np.zeros_like(s)
    wx0, wy0 = world(zero, zero - 4.0)
    wx1, wy1 = world(zero, zero - 60.0)
    dist = np.minimum(dist, _capsule(px, py, wx0, wy0, wx1, wy1, 7.5 * s, 8.5 * s))
    # Fingers: raised ones long, folded ones a short knuckle bump.
    n = len(s)
    ang = np.deg2rad(_ANGLE[None, :] + p["angle_jitter"])
    length = np.where(p["raised"], _LENGTH[None, :] * p["length_jitter"], 3.0)
    base_u, base_v = np.broadcast_to(_BASE_U, (n, 5)), np.broadcast_to(_BASE_V, (n, 5))
    tip_u, tip_v = base_u + length * np.sin(ang), base_v + length * np.cos(ang)
    x0, y0 = world(base_u, base_v)
    x1, y1 = world(tip_u, tip_v)
    for f in range(5):
        r0 = _RADIUS[f] * s
        dist = np.minimum(
            dist, _capsule(px, py, x0[:, f], y0[:, f], x1[:, f], y1[:, f], r0, 0.85 * r0)
        )
    return dist


def _box_blur(img: Array, radius: int) -> Array:
    """Mean over a (2r+1)^2 window along the last two axes (edges clamped): a cheap soft shadow."""
    k = 2 * radius + 1
    for axis in (-2, -1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(img, pad, mode="edge"), axis=axis)
        img = (
            np.take(c, range(k, c.shape[axis]), axis=axis)
            - np.take(c, range(0, c.shape[axis] - k), axis=axis)
        ) / k
    return img


def _paint(p: dict[str, Array], rng: np.random.Generator) -> NDArray[np.uint8]:
    grid = np.arange(SIZE, dtype=np.float32) + 0.5
    py, px = grid[None, :, None], grid[None, None, :]
    dist = _hand_distance(p, px, py).astype(np.float32)
    alpha = np.clip(0.5 - dist, 0.0, 1.0)
    # Light wall with an illumination gradient and the hand's soft shadow (down and right).
    ramp = (grid - SIZE / 2) / SIZE
    wall = 1.0 + p["bg_slope"][:, 0, None, None] * ramp[None, None, :]
    wall = wall + p["bg_slope"][:, 1, None, None] * ramp[None, :, None]
    shade = np.zeros_like(alpha)
    shade[:, 3:, 2:] = alpha[:, :-3, :-2]
    wall = wall * (1.0 - p["shadow"][:, None, None] * _box_blur(shade, 2))
    # Skin: darker rim (rounded fingers read as separate), side light across the hand.
    rim = 1.0 - 0.32 * np.exp(np.minimum(dist, 0.0) / 1.3)
    side = 1.0 + p["light"][:, None, None] * (px - p["cx"][:, None, None]) / 10.0
    hand = (rim * side)[..., None] * p["skin_rgb"][:, None, None, :]
    img = alpha[..., None] * hand + (1.0 - alpha[..., None]) * (
        wall[..., None] * p["bg_rgb"][:, None, None, :]
    )
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    img = img + noise * p["noise_sigma"][:, None, None, None]
    pixels: NDArray[np.uint8] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return pixels


def render(labels: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Images (N, 64, 64, 3) uint8 showing `labels[i]` raised fingers."""
    params = {
        k: v if v.dtype == bool else v.astype(np.float32)
        for k, v in _draw_parameters(labels, rng).items()
    }
    out = np.empty((len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, len(labels), _CHUNK):
        chunk = {k: v[start : start + _CHUNK] for k, v in params.items()}
        out[start : start + _CHUNK] = _paint(chunk, rng)
    return out
