"""The hidden inputs of transfer_mobilenet, made once: the checks import this module and the
grader renders it into its copy of the notebook as `_dg_inputs` for the grade-time cells."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def images(spec: Mapping[str, Any]) -> np.ndarray:
    """uint8 images the student never saw: every grey level, at a size other than 32x32."""
    rng = np.random.default_rng(int(spec["seed"]))
    size = int(spec["size"])
    return rng.integers(0, 256, size=(int(spec["n_images"]), size, size, 3), dtype=np.uint8)


def expected_preprocessed(batch: np.ndarray) -> np.ndarray:
    """MobileNetV2's input scaling, the grader's own: x / 127.5 - 1 in float32."""
    return np.asarray(batch, dtype=np.float32) / np.float32(127.5) - np.float32(1)
