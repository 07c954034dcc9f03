"""The model of Question 1: program 7 with a BatchNormalization as its very first layer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepgrade.checks import (
    compile_config,
    expect_layers,
    expect_loss,
    expect_optimizer,
    fail,
    flat_layers,
)
from deepgrade.profiles import GradingProfile

FILTERS = (40, 80, 160, 320, 320)  # program 7's five blocks of two convolutions
DENSE = 1000
ADAM = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}  # Adam()
BN_DEFAULTS = {"momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}


def program7(width: int) -> list[tuple[str, dict[str, Any]]]:
    """Program 7 after the extra first BatchNormalization, with filters and units divided by
    `width`: every setting it fixes (Keras' defaults included) but the initializers."""
    conv = {"kernel_size": 3, "strides": 1, "padding": "same", "activation": "relu"}
    block = [("BatchNormalization", BN_DEFAULTS)]
    layers: list[tuple[str, dict[str, Any]]] = []
    for filters in FILTERS:
        convolution = ("Conv2D", {"filters": filters // width, **conv, "use_bias": True})
        layers += [convolution, *block, convolution, *block]
        layers.append(("MaxPooling2D", {"pool_size": 2, "strides": 2, "padding": "valid"}))
    return [
        *layers,
        ("Flatten", {}),
        ("Dense", {"units": DENSE // width, "activation": "relu", "use_bias": True}),
        ("Dense", {"units": 10, "activation": "softmax", "use_bias": True}),
    ]


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
    found = flat_layers(model)
    assert found and type(found[0]).__name__ == "BatchNormalization", (
        "the first layer after the input must be keras.layers.BatchNormalization(); yours is "
        f"{type(found[0]).__name__ if found else 'missing'}"
    )
    config = found[0].get_config()
    changed = [key for key, value in BN_DEFAULTS.items() if config.get(key) != value]
    axis = config.get("axis")
    if list(axis if isinstance(axis, list | tuple) else [axis]) not in ([-1], [3]):
        changed.append("axis")
    assert not changed, (
        f"the first BatchNormalization changes {', '.join(changed)}: use "
        "keras.layers.BatchNormalization() with its default settings"
    )


@pytest.mark.points(2)
def test_program7_layers(
    model: Any,
    profile: GradingProfile,
    artifact: Callable[[str], Path],
    artifacts_dir: Path,
    load_model: Callable[[str], Any],
    hidden: Any,
) -> None:
    """The rest is program 7, compiled as it: 5 blocks of two Conv2D+BN and a pooling, 2 Dense"""
    expected = [("BatchNormalization", {}), *program7(int(profile.parameters["WIDTH"]))]
    found = [type(layer).__name__ for layer in flat_layers(model)]
    assert found == [kind for kind, _ in expected], (
        f"your network's layers are {', '.join(found) or 'none'}; after the first "
        "BatchNormalization, program 7 has five blocks of Conv2D, BatchNormalization, Conv2D, "
        "BatchNormalization, MaxPooling2D, then Flatten, Dense, Dense"
    )
    expect_layers(
        model,
        expected,
        what="your network differs from program 7 (filters and units divided by WIDTH)",
    )
    config = compile_config(artifact("model.keras"))
    expect_optimizer(config, "Adam", ADAM, spelled="keras.optimizers.Adam() with its defaults")
    expect_loss(config, "categorical_crossentropy", hint="ten one-hot classes, as program 7")
    # The grade-time cell called build_model with another width (a hidden one).
    if not (artifacts_dir / "hidden_build.keras").is_file():
        fail(
            "the grader called build_model with another width and got no model back (it "
            "raised an error): build_model(width) must work for any width"
        )
    expected = [("BatchNormalization", {}), *program7(int(hidden["build_width"]))]
    expect_layers(
        load_model("hidden_build.keras"),
        expected,
        what="build_model(width) called by the grader with another width differs from "
        "program 7 divided by that width (use width, not WIDTH or a number, inside "
        "build_model)",
        show=False,
    )
