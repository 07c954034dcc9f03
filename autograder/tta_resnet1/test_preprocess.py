"""Exercise 1: preprocess, called by the grader on hidden uint8 images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hidden_inputs import scale

from deepgrade.checks import fail

TOLERANCE = 1e-5  # float32 round-off of x / 255 - 0.5 written another way


@pytest.mark.points(2)
def test_preprocess_hidden(grader: Any, load_array: Callable[[str, str], np.ndarray]) -> None:
    """preprocess scales uint8 images to [-0.5, 0.5] as resnet1 was trained"""
    got = load_array("hidden_preprocessed.npy", "preprocess")
    expected = scale(grader.hidden_uint8)
    assert got.shape == expected.shape, (
        f"preprocess changed the shape of the images (it returned shape {got.shape[1:]} per "
        "batch row layout): return an array of the same shape as its input"
    )
    got = got.astype(np.float64)
    if np.allclose(got, expected + 0.5, atol=TOLERANCE):
        fail(
            "preprocess returns images in [0, 1]; resnet1 was trained on [-0.5, 0.5]: "
            "subtract 0.5 after dividing by 255"
        )
    assert np.allclose(got, expected, atol=TOLERANCE), (
        f"preprocess returns values from {got.min():g} to {got.max():g} that differ from "
        "x / 255 - 0.5: convert to float32, divide by 255, subtract 0.5"
    )
