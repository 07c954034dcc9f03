"""The hidden inputs of bn_discovery, built from spec.toml's [hidden] bn_forward seed.

One recipe for both sides: the grade-time cell calls it (as `_dg_inputs`) to give the student's
bn_forward its arrays, and test_bn_forward.py imports it to rebuild them and compute the right
output. numpy only, since it also runs in the student's kernel; the values stay in spec.toml.
"""

from __future__ import annotations

import numpy as np


def bn_forward_inputs(seed: int, channels: int) -> dict[str, np.ndarray]:
    """x to normalize, channels last (`images` (6, 4, 4, C), `rows` (7, C)), and the layer's
    vectors gamma, beta, mean, var (C,), drawn in this order from one generator."""
    rng = np.random.default_rng(int(seed))
    c = int(channels)
    return {
        "images": rng.normal(0.5, 0.3, size=(6, 4, 4, c)),
        "rows": rng.normal(0.0, 1.0, size=(7, c)),
        "gamma": rng.uniform(0.5, 1.5, size=c),
        "beta": rng.uniform(-0.5, 0.5, size=c),
        "mean": rng.uniform(0.2, 0.8, size=c),
        "var": rng.uniform(0.01, 0.1, size=c),
    }
