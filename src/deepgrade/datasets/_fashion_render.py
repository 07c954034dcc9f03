"""Paint Fashion-MNIST look-alikes: one garment silhouette, centred, bright on a black background.

Why drawn silhouettes: the look-alike replaces the real Zalando thumbnails in CI, in `deepgrade
demo` and in smoke profiles, so a small CNN must learn garment shapes as on the real set, and
a broken notebook (labels shuffled, images not scaled) must still fail. As in the real set the
background is exactly 0, items are centred and upright, and footwear (sandal, sneaker, ankle
boot) points LEFT (toe on the left, heel and boot shaft on the right): a horizontal flip makes
images the data set never shows, which is why it is a wrong augmentation here.

The classes differ in shape (T-shirt: short sleeves; trouser: two legs; pullover: long
sleeves; dress: flared; coat: long, open front; sandal: straps over a sole; shirt: long
sleeves with collar and buttons; sneaker: low shoe; bag: box with a handle; ankle boot: shoe
with a shaft), and, like the real ones, the upper-body garments (pullover, coat, shirt) are the
hardest to tell apart. Width, height, shift, brightness, texture and stripes vary per image.
Vectorised numpy over a chunk of images, draws in a fixed order: a seed paints the same pixels.
Changing anything here changes the pixels: bump fashion_mnist.RECIPE_VERSION.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from deepgrade.datasets._cifar_render import _box, _capsule, _ellipse, _triangle

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[Any]

SIZE = 28
_CHUNK = 1024
_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _soft(distance: Array, scale: Array) -> Array:
    return np.clip(0.5 - distance * scale, 0.0, 1.0)


class _Shape:
    """A garment's mask (union of parts, minus holes) and its darker details (seams, laces).

    `a`, `b`, `c` are per-image uniform draws in [0, 1) ((m, 1, 1) arrays) that the drawings use
    for sleeve length, width and garment length, so classes overlap, as real garments do; `faint`
    scales every detail, so buttons or a coat's opening are sometimes barely visible.
    """

    def __init__(self, u: Array, v: Array, scale: Array, draws: Array, faint: Array):
        self.u, self.v, self.scale, self.faint = u, v, scale, faint
        self.a, self.b, self.c = draws
        self.mask = np.zeros_like(u)
        self.detail = np.zeros_like(u)

    def add(self, distance: Array) -> None:
        self.mask = np.maximum(self.mask, _soft(distance, self.scale))

    def cut(self, distance: Array) -> None:
        self.mask = self.mask * (1.0 - _soft(distance, self.scale))

    def mark(self, distance: Array, strength: float = 0.5) -> None:
        self.detail = np.maximum(self.detail, _soft(distance, self.scale) * strength * self.faint)


def _upper(
    s: _Shape,
    *,
    top: float,
    bottom: float,
    half: float,
    sleeve_end: tuple[float, Array | float],
    sleeve_r: float,
) -> None:
    """Torso with two sleeves and a neckline: the T-shirt, pullover, coat and shirt family."""
    u, v = s.u, s.v
    half_width = half + (s.b - 0.5) * 1.6
    low = bottom + (s.c - 0.5) * 4.0  # garment length overlaps between classes
    s.add(_box(u, v, 0.0, (top + low) / 2, half_width, (low - top) / 2))
    end_u = sleeve_end[0] + (s.b - 0.5) * 2.0
    end_v = sleeve_end[1] + (s.a - 0.5) * 4.0
    for side in (-1.0, 1.0):
        s.add(
            _capsule(u, v, (side * (half_width - 1.0), top + 1.5), (side * end_u, end_v), sleeve_r)
        )
    s.cut(_ellipse(u, v, 0.0, top - 0.3, 2.6, 1.6))


def _tshirt(s: _Shape) -> None:
    _upper(s, top=-9.0, bottom=11.0, half=6.5, sleeve_end=(11.5, -3.5), sleeve_r=2.6)


def _trouser(s: _Shape) -> None:
    u, v = s.u, s.v
    s.add(_box(u, v, 0.0, -10.5, 5.5, 2.0))
    s.add(_capsule(u, v, (-3.0, -9.0), (-3.8, 12.0), 2.6))
    s.add(_capsule(u, v, (3.0, -9.0), (3.8, 12.0), 2.6))
    s.cut(_triangle(u, v, (0.0, -4.0), (-1.4, 13.5), (1.4, 13.5)))
    s.mark(_box(u, v, 0.0, -9.0, 5.5, 0.3), 0.35)  # waistband seam


def _pullover(s: _Shape) -> None:
    _upper(s, top=-9.0, bottom=10.0, half=6.5, sleeve_end=(10.0, 10.0), sleeve_r=2.2)
    s.mark(_box(s.u, s.v, 0.0, 9.5, 6.5, 0.4), 0.3)  # ribbed hem


def _dress(s: _Shape) -> None:
    u, v = s.u, s.v
    half = 2.8 + 0.36 * np.clip(v + 12.0, 0.0, None)
    s.add(np.maximum(np.abs(u) - half, np.abs(v - 0.5) - 12.5))
    s.add(_capsule(u, v, (-2.3, -12.0), (-2.6, -13.5), 0.7))
    s.add(_capsule(u, v, (2.3, -12.0), (2.6, -13.5), 0.7))
    s.mark(_box(u, v, 0.0, -4.5, 5.0, 0.4), 0.35)  # waist seam


def _coat(s: _Shape) -> None:
    u, v = s.u, s.v
    _upper(s, top=-10.0, bottom=12.0, half=7.0, sleeve_end=(10.5, 11.0), sleeve_r=2.3)
    s.mark(_box(u, v, 0.0, 1.0, 0.35, 12.0), 0.7)  # the open front
    s.mark(_triangle(u, v, (-0.3, -9.5), (-3.5, -9.5), (-0.3, -4.0)), 0.3)  # lapels
    s.mark(_triangle(u, v, (0.3, -9.5), (3.5, -9.5), (0.3, -4.0)), 0.3)


def _sandal(s: _Shape) -> None:
    u, v = s.u, s.v
    s.add(_box(u, v, 0.0, 5.0, 12.5, 1.3))  # sole
    s.add(_box(u, v, 10.5, 3.0, 1.3, 2.5))  # heel
    for start in (-10.0, -5.0, 0.0, 5.0):  # straps over the foot, higher towards the heel
        s.add(_capsule(u, v, (start, 4.0), (start + 3.5, -1.5 - 0.3 * (start + 10.0)), 0.9))
    s.add(_capsule(u, v, (11.0, 4.0), (10.5, -7.0), 1.0))  # heel strap, on the right
    s.add(_capsule(u, v, (6.0, -5.0), (10.5, -7.0), 0.9))  # ankle strap


def _shirt(s: _Shape) -> None:
    u, v = s.u, s.v
    short = s.a < 0.3  # some shirts have short sleeves, like T-shirts
    _upper(
        s,
        top=-9.5,
        bottom=11.0,
        half=6.3,
        sleeve_end=(9.5, np.where(short, -4.0 + s.a * 6.0, 10.0)),
        sleeve_r=2.0,
    )
    s.mark(_triangle(u, v, (-0.2, -9.8), (-3.2, -9.8), (-0.5, -6.0)), 0.6)  # collar
    s.mark(_triangle(u, v, (0.2, -9.8), (3.2, -9.8), (0.5, -6.0)), 0.6)
    s.mark(_box(u, v, 0.0, 1.5, 0.25, 9.5), 0.35)  # button placket
    for button in (-5.0, -1.0, 3.0, 7.0):
        s.mark(_ellipse(u, v, 0.9, button, 0.5, 0.5), 0.6)


def _sneaker(s: _Shape) -> None:
    u, v = s.u, s.v
    s.add(_ellipse(u, v, -6.5, 3.0, 6.0, 3.0))  # toe, on the left
    s.add(_box(u, v, 2.5, 2.5, 8.5, 3.5))
    s.add(_triangle(u, v, (-3.0, -1.0), (11.0, -1.0), (11.0, -4.5)))  # rising to the heel
    s.cut(_ellipse(u, v, 7.0, -3.8, 3.2, 1.3))  # the opening for the foot
    s.add(_box(u, v, -0.5, 6.2, 12.0, 0.9))  # sole
    s.mark(_box(u, v, -0.5, 5.0, 12.0, 0.3), 0.5)
    for lace in (-3.5, -1.0, 1.5):
        s.mark(_capsule(u, v, (lace, -0.5), (lace + 1.5, 1.5), 0.35), 0.5)


def _bag(s: _Shape) -> None:
    u, v = s.u, s.v
    s.add(_box(u, v, 0.0, 4.0, 10.5, 7.5))
    ring = np.abs(np.sqrt(u**2 + (v + 3.5) ** 2) - 5.5) - 0.9
    s.add(np.maximum(ring, v + 3.5))  # the handle: the top half of a ring
    s.mark(_box(u, v, 0.0, -1.0, 10.5, 0.3), 0.35)


def _boot(s: _Shape) -> None:
    u, v = s.u, s.v
    s.add(_ellipse(u, v, -7.0, 6.0, 5.5, 3.5))  # toe, on the left
    s.add(_box(u, v, 0.0, 6.0, 7.5, 3.5))
    s.add(_box(u, v, 4.5, -2.5, 5.0, 10.0))  # the shaft, on the heel side (right)
    s.add(_box(u, v, 0.5, 10.0, 11.5, 0.9))  # sole
    s.mark(_box(u, v, 7.5, 8.5, 2.0, 1.5), 0.3)  # heel block
    s.mark(_box(u, v, 4.5, -11.5, 5.0, 0.4), 0.3)  # shaft rim


_DRAW: tuple[Callable[[_Shape], None], ...] = (
    _tshirt,
    _trouser,
    _pullover,
    _dress,
    _coat,
    _sandal,
    _shirt,
    _sneaker,
    _bag,
    _boot,
)

_COARSE = 4
_POS = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE * (_COARSE - 1)
_LO = np.clip(np.floor(_POS).astype(int), 0, _COARSE - 2)
_SMOOTH = np.zeros((SIZE, _COARSE), dtype=np.float32)
_SMOOTH[np.arange(SIZE), _LO] = 1.0 - (_POS - _LO)
_SMOOTH[np.arange(SIZE), _LO + 1] = _POS - _LO


def _render_chunk(labels: Array, rng: np.random.Generator) -> Array:
    n = labels.shape[0]
    sx = rng.uniform(0.8, 1.08, size=n).astype(np.float32)
    sy = rng.uniform(0.88, 1.05, size=n).astype(np.float32)
    cx = 13.5 + rng.uniform(-1.0, 1.0, size=n).astype(np.float32)
    cy = 13.5 + rng.uniform(-0.8, 0.8, size=n).astype(np.float32)
    brightness = rng.uniform(0.3, 1.0, size=(n, 1, 1)).astype(np.float32)
    coarse = rng.normal(0.0, 1.0, size=(n, _COARSE, _COARSE)).astype(np.float32)
    texture = np.einsum("yi,nij,xj->nyx", _SMOOTH, coarse, _SMOOTH) * 0.2
    striped = (rng.random(n) < 0.25).astype(np.float32)[:, None, None]
    period = rng.uniform(2.5, 4.5, size=(n, 1, 1)).astype(np.float32)
    noise = rng.normal(0.0, 0.06, size=(n, SIZE, SIZE)).astype(np.float32)
    draws = rng.random((3, n, 1, 1)).astype(np.float32)
    faint = rng.uniform(0.0, 1.0, size=(n, 1, 1)).astype(np.float32)
    image = np.zeros((n, SIZE, SIZE), dtype=np.float32)
    for label, draw in enumerate(_DRAW):
        idx = np.flatnonzero(labels == label)
        if idx.size == 0:
            continue
        u = (_X[None] - cx[idx, None, None]) / sx[idx, None, None]
        v = (_Y[None] - cy[idx, None, None]) / sy[idx, None, None]
        scale = np.minimum(sx[idx], sy[idx])[:, None, None]
        shape = _Shape(u, v, scale, draws[:, idx], faint[idx])
        draw(shape)
        stripes = striped[idx] * 0.2 * np.sin(2 * np.pi * _Y[None] / period[idx])
        tone = brightness[idx] * (1.0 + texture[idx] + stripes) * (1.0 - shape.detail)
        image[idx] = shape.mask * np.clip(tone + noise[idx], 0.05, 1.0)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def render(labels: Array, rng: np.random.Generator) -> Array:
    """(N, 28, 28) uint8 images, one per label (0-9), painted in chunks to bound memory."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.empty((labels.shape[0], SIZE, SIZE), dtype=np.uint8)
    for start in range(0, labels.shape[0], _CHUNK):
        out[start : start + _CHUNK] = _render_chunk(labels[start : start + _CHUNK], rng)
    return out
