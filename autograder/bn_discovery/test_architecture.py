"""The model of Question 1: program 7 with a BatchNormalization as its very first layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deepgrade.exercise import ProfileSpec

FILTERS = (40, 40, 80, 80, 160, 160, 320, 320, 320, 320)  # program 7's ten convolutions
DENSE = 1000
BLOCK = ["Conv2D", "BatchNormalization", "Conv2D", "BatchNormalization", "MaxPooling2D"]
TYPES = ["BatchNormalization", *BLOCK * 5, "Flatten", "Dense", "Dense"]
BN_DEFAULTS = {"momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}


def layers(model: Any) -> list[Any]:
    """The model's layers without the InputLayer a functional model lists."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def _axis_is_channels(axis: Any) -> bool:
    axes = axis if isinstance(axis, list | tuple) else [axis]
    return list(axes) in ([-1], [3])


@pytest.fixture(scope="module")
def model(load_model: Callable[[str], Any]) -> Any:
    return load_model("model.keras")


@pytest.mark.points(2)
def test_bn_first_layer(model: Any) -> None:
    """The very first layer is BatchNormalization() on a 32x32x3 input"""
    try:
        shape = tuple(model.inputs[0].shape)[1:]
    except (AttributeError, IndexError, ValueError):
        shape = ()
    assert shape == (32, 32, 3), (
        "the model's input should be one 32x32 colour image: start it with keras.Input((32, 32, 3))"
    )
    found = layers(model)
    assert found and type(found[0]).__name__ == "BatchNormalization", (
        "the first layer after the input must be keras.layers.BatchNormalization(); yours is "
        f"{type(found[0]).__name__ if found else 'missing'}"
    )
    config = found[0].get_config()
    changed = [key for key, value in BN_DEFAULTS.items() if config.get(key) != value]
    if not _axis_is_channels(config.get("axis")):
        changed.append("axis")
    assert not changed, (
        f"the first BatchNormalization changes {', '.join(changed)}: use "
        "keras.layers.BatchNormalization() with its default settings"
    )


@pytest.mark.points(2)
def test_program7_layers(model: Any, profile: ProfileSpec) -> None:
    """The rest is program 7: five blocks of two Conv2D+BN and a pooling, then two Dense"""
    width = int(profile.parameters["WIDTH"])
    found = [type(layer).__name__ for layer in layers(model)]
    assert found == TYPES, (
        f"your network's layers are {', '.join(found) or 'none'}; after the first "
        "BatchNormalization, program 7 has five blocks of Conv2D, BatchNormalization, Conv2D, "
        "BatchNormalization, MaxPooling2D, then Flatten, Dense, Dense"
    )
    problems = []
    convs = [layer for layer in layers(model) if type(layer).__name__ == "Conv2D"]
    for index, (layer, filters) in enumerate(zip(convs, FILTERS, strict=True)):
        config = layer.get_config()
        if config["filters"] != filters // width:
            problems.append(f"Conv2D {index + 1}'s filters")
        if _pair(config["kernel_size"]) != (3, 3):
            problems.append(f"Conv2D {index + 1}'s kernel size")
        if config["padding"] != "same" or config["activation"] != "relu":
            problems.append(f"Conv2D {index + 1}'s padding or activation")
    hidden_dense, output = [layer for layer in layers(model) if type(layer).__name__ == "Dense"]
    if hidden_dense.get_config()["units"] != DENSE // width:
        problems.append("the first Dense's units")
    if hidden_dense.get_config()["activation"] != "relu":
        problems.append("the first Dense's activation")
    if output.get_config()["units"] != 10 or output.get_config()["activation"] != "softmax":
        problems.append("the output layer (10 units, softmax)")
    assert not problems, (
        f"fix {', '.join(problems)}: program 7 uses Conv2D(f // width, (3, 3), "
        "padding='same', activation='relu') with f = 40, 40, 80, 80, 160, 160, 320, 320, 320, "
        "320, then Dense(1000 // width, relu) and Dense(10, softmax)"
    )
