"""The hidden inputs of fashion_vgg, made from spec.toml's [hidden] values (never written here).

One definition for both sides: the checks `import hidden_inputs`, the grade-time cells call it
as `_dg_inputs` (the grader renders this file into its notebook). numpy only.
"""

from __future__ import annotations

import numpy as np


def images(seed: int, count: int) -> np.ndarray:
    """`count` random 28x28 uint8 images for pad_images, none with a black pixel, so a border
    in the wrong place or a resize shows."""
    rng = np.random.default_rng(int(seed))
    return rng.integers(1, 256, size=(int(count), 28, 28), dtype=np.uint8)
