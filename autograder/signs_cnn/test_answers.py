"""Data preparation and Exercise 2, from the answers the locked cells saved."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from network import PUBLIC_N, expected_params

from deepgrade.checks import fail

NAMES = ("conv1", "conv2", "conv3", "dense1", "dense2", "dense3")
PARAMS = dict(zip(NAMES, [count for count in expected_params(PUBLIC_N) if count], strict=True))
FORMULAS = {
    "conv": "a Conv2D layer has k*k*c_in*filters + filters (k: kernel size, c_in: input channels)",
    "dense": "a Dense layer has (inputs + 1) * units (inputs: the previous layer's output size)",
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.points(1)
def test_data_scaled(answers: dict[str, Any]) -> None:
    """The images are scaled to [0, 1]"""
    value = answers["x_train_range"]
    assert isinstance(value, list) and len(value) == 2 and all(map(_number, value)), (
        "x_train_range must be [min, max] of X_train: do not edit the locked cell that saves it"
    )
    low, high = value
    assert low >= 0.0 and high <= 1.0 and high > 0.5, (
        f"X_train's values go from {low:g} to {high:g}; they should lie in [0, 1]: convert "
        "the uint8 images to float and divide by 255"
    )


@pytest.mark.points(1)
def test_labels_one_hot(
    answers: dict[str, Any], prepared: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    """The training labels are one-hot encoded"""
    shape = answers["y_train_shape"]
    expected = list(prepared["train"][1].shape)
    assert shape == expected, (
        f"Y_train after one-hot encoding has shape {shape}; it should have one row per training "
        f"image and one column per class, {expected}: use "
        "keras.utils.to_categorical(Y_train, num_classes=6)"
    )


@pytest.mark.points(2)
def test_params_per_layer(answers: dict[str, Any]) -> None:
    """The parameter count of every layer (Exercise 2)"""
    given = answers["params_per_layer"]
    assert isinstance(given, dict), "params_per_layer must be a dict from layer name to count"
    wrong = [name for name, count in PARAMS.items() if given.get(name) != count]
    if wrong:
        formulas = [text for kind, text in FORMULAS.items() if any(kind in n for n in wrong)]
        fail(f"the count for {', '.join(wrong)} is wrong or missing: " + "; ".join(formulas))
