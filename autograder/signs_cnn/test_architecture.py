"""Exercise 1: the CNN built by build_model, checked on the saved models.

model.keras is the student's network built with the public n-values (8, 16, 32, 64, 32, 6);
hidden_model.keras is what build_model returned for the spec's hidden n-values, saved by a
grade-time cell. Messages about the hidden model never show numbers: they would reveal the
hidden values, or the student's own constants that a check compares with them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from network import (
    INPUT,
    POOL,
    PUBLIC_N,
    conv_layers,
    dense_layers,
    expected_layers,
    expected_params,
    expected_shapes,
    show,
)

from deepgrade.checks import (
    expect_input,
    expect_layers,
    fail,
    flat_layers,
    input_shape,
    layer_table,
    of_kind,
)

INPUT_HINT = "SIGNS images are 64x64x3: use keras.Input((64, 64, 3))"


def output_shapes(model: Any) -> list[tuple[int | None, ...] | None]:
    return [row.output_shape and row.output_shape[1:] for row in layer_table(model)]


def expect_count(model: Any, kind: str) -> None:
    found = len(flat_layers(model, keep=of_kind(kind)))
    assert found == 3, f"Exercise 1 has three {kind} layers; your network has {found}"


@pytest.mark.points(2)
def test_layer_types_and_order(model: Any) -> None:
    """The network's layers are of the right types, in the right order"""
    expect_layers(
        model,
        [(kind, {}) for kind, _ in expected_layers(PUBLIC_N)],
        hint="Exercise 1 asks for Conv2D then MaxPooling2D, three times, then Flatten and "
        "three Dense layers, nothing else",
    )


@pytest.mark.points(2)
def test_conv_layers(model: Any) -> None:
    """The three Conv2D layers have the right filters, kernel, strides, padding, activation"""
    expect_count(model, "Conv2D")
    expect_layers(
        model,
        conv_layers(PUBLIC_N),
        what="your Conv2D layers",
        keep=of_kind("Conv2D"),
        hint="They should be Conv2D(8 / 16 / 32, (3, 3), strides=1, padding='valid', "
        "activation='relu')",
    )


@pytest.mark.points(1)
def test_pool_layers(model: Any) -> None:
    """The three MaxPooling2D layers pool 2x2 with stride 2"""
    expect_count(model, "MaxPooling2D")
    expect_layers(
        model,
        [("MaxPooling2D", POOL)] * 3,
        what="your MaxPooling2D layers",
        keep=of_kind("MaxPooling2D"),
        hint="Each should be MaxPooling2D((2, 2), strides=2)",
    )


@pytest.mark.points(1)
def test_dense_layers(model: Any) -> None:
    """The three Dense layers have 64, 32 and 6 units with relu, relu and softmax"""
    expect_count(model, "Dense")
    expect_layers(
        model,
        dense_layers(PUBLIC_N),
        what="your Dense layers",
        keep=of_kind("Dense"),
        hint="They should be Dense(64, relu), Dense(32, relu), Dense(6, softmax)",
    )


@pytest.mark.points(1)
def test_output_shapes(model: Any) -> None:
    """Input 64x64x3 and every layer's output shape as in Exercise 1"""
    expect_input(model, INPUT, hint=INPUT_HINT)
    shapes, expected = output_shapes(model), expected_shapes(PUBLIC_N)
    assert shapes == expected, (
        f"your layers output {', '.join(show(s or ()) for s in shapes)}; Exercise 1's output "
        f"{', '.join(map(show, expected))} (valid 3x3 convolutions, 2x2 pooling)"
    )


@pytest.mark.points(1)
def test_total_params(model: Any) -> None:
    """The network has 82,102 parameters"""
    total = int(model.count_params())
    assert total == sum(expected_params(PUBLIC_N)), (
        f"your network has {total:,} parameters, Exercise 1's has 82,102: "
        "check the number of filters, the kernel sizes and the Dense units"
    )


@pytest.mark.points(2)
def test_hidden_build_model(
    artifacts_dir: Path, load_model: Callable[[str], Any], hidden: Any
) -> None:
    """build_model uses its six arguments (called by the grader with other values)"""
    if not (artifacts_dir / "hidden_model.keras").is_file():
        fail(
            "the grader called build_model with other arguments and got no model back (it "
            "raised an error or the notebook stopped before): make build_model(n1, n2, n3, "
            "n4, n5, n6) build and return the network from its arguments"
        )
    n = [int(v) for v in hidden["build_model_n"]]
    model = load_model("hidden_model.keras")
    advice = (
        "build_model must use n1, n2, n3 as the Conv2D filters and n4, n5, n6 as the Dense "
        "units, never fixed numbers or global variables"
    )
    what = "with other arguments, build_model's network differs"
    expect_layers(model, expected_layers(n), what=what, show=False, hint=advice)
    params = [row.params for row in layer_table(model)]
    shapes_ok = input_shape(model) == INPUT and output_shapes(model) == expected_shapes(n)
    assert shapes_ok and params == expected_params(n), (
        "with other arguments, build_model's network has other output shapes or parameter "
        f"counts. {advice}"
    )
