"""Exercise 1: the CNN built by build_model, checked on the saved models.

model.keras is the student's network built with the public n-values (8, 16, 32, 64, 32, 6);
hidden_model.keras is what build_model returned for the spec's hidden n-values, saved by a
grade-time cell. Messages about the hidden model never show numbers: they would reveal the
hidden values, or the student's own constants that a check compares with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

PUBLIC_N = (8, 16, 32, 64, 32, 6)
TYPES = ["Conv2D", "MaxPooling2D"] * 3 + ["Flatten", "Dense", "Dense", "Dense"]
INPUT = (64, 64, 3)
ORDINAL = ("first", "second", "third")


def expected_shapes(n: Sequence[int]) -> list[tuple[int, ...]]:
    """Output shapes of the ten layers for build_model(*n), from 64x64 valid 3x3 convs."""
    n1, n2, n3, n4, n5, n6 = n
    return [
        (62, 62, n1),
        (31, 31, n1),
        (29, 29, n2),
        (14, 14, n2),
        (12, 12, n3),
        (6, 6, n3),
        (6 * 6 * n3,),
        (n4,),
        (n5,),
        (n6,),
    ]


def expected_params(n: Sequence[int]) -> list[int]:
    """k*k*c_in*filters + filters per Conv2D, (inputs + 1) * units per Dense, 0 otherwise."""
    n1, n2, n3, n4, n5, n6 = n
    conv = [9 * 3 * n1 + n1, 9 * n1 * n2 + n2, 9 * n2 * n3 + n3]
    dense = [(36 * n3 + 1) * n4, (n4 + 1) * n5, (n5 + 1) * n6]
    return [conv[0], 0, conv[1], 0, conv[2], 0, 0, *dense]


def layers(model: Any) -> list[Any]:
    """The model's layers without the InputLayer a functional model lists."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def types(model: Any) -> list[str]:
    return [type(layer).__name__ for layer in layers(model)]


def of_type(model: Any, name: str) -> list[Any]:
    return [layer for layer in layers(model) if type(layer).__name__ == name]


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def conv_problems(model: Any, filters: Sequence[int]) -> list[tuple[int, str]]:
    """(index, what) for each Conv2D setting that differs from Exercise 1."""
    problems = []
    for index, layer in enumerate(of_type(model, "Conv2D")[:3]):
        config = layer.get_config()
        if index < len(filters) and config["filters"] != filters[index]:
            problems.append((index, "filters"))
        if _pair(config["kernel_size"]) != (3, 3):
            problems.append((index, "kernel size (3x3)"))
        if _pair(config["strides"]) != (1, 1):
            problems.append((index, "strides (1)"))
        if config["padding"] != "valid":
            problems.append((index, "padding ('valid')"))
        if config["activation"] != "relu":
            problems.append((index, "activation ('relu')"))
    return problems


def dense_problems(model: Any, units: Sequence[int]) -> list[tuple[int, str]]:
    problems = []
    activations = ("relu", "relu", "softmax")
    for index, layer in enumerate(of_type(model, "Dense")[:3]):
        config = layer.get_config()
        if index < len(units) and config["units"] != units[index]:
            problems.append((index, "units"))
        if config["activation"] != activations[index]:
            problems.append((index, f"activation ('{activations[index]}')"))
    return problems


def output_shapes(model: Any) -> tuple[tuple[int | None, ...], list[tuple[int | None, ...]]]:
    """(input shape, each layer's output shape), batch axis dropped, by propagating shapes."""
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, ValueError):
        pytest.fail(
            "the saved model has no input shape: start it with keras.Input((64, 64, 3))",
            pytrace=False,
        )
    shapes = []
    current = shape
    for layer in layers(model):
        current = tuple(layer.compute_output_shape(current))
        shapes.append(current[1:])
    return shape[1:], shapes


def _fmt(shape: Sequence[int | None]) -> str:
    return "x".join(str(d) for d in shape)


@pytest.fixture(scope="module")
def model(load_model: Callable[[str], Any]) -> Any:
    return load_model("model.keras")


@pytest.mark.points(2)
def test_layer_types_and_order(model: Any) -> None:
    """The network's layers are of the right types, in the right order"""
    found = types(model)
    assert found == TYPES, (
        f"your network's layers are {', '.join(found) or 'none'}; Exercise 1 asks for Conv2D "
        "then MaxPooling2D, three times, then Flatten and three Dense layers, nothing else"
    )


@pytest.mark.points(2)
def test_conv_layers(model: Any) -> None:
    """The three Conv2D layers have the right filters, kernel, strides, padding, activation"""
    convs = of_type(model, "Conv2D")
    assert len(convs) == 3, f"Exercise 1 has three Conv2D layers; your network has {len(convs)}"
    problems = conv_problems(model, PUBLIC_N[:3])
    assert not problems, (
        "fix "
        + "; ".join(f"the {ORDINAL[i]} Conv2D's {what}" for i, what in problems)
        + ": they should be Conv2D(8 / 16 / 32, (3, 3), strides=1, padding='valid', relu)"
    )


@pytest.mark.points(1)
def test_pool_layers(model: Any) -> None:
    """The three MaxPooling2D layers pool 2x2 with stride 2"""
    pools = of_type(model, "MaxPooling2D")
    assert len(pools) == 3, f"Exercise 1 has three MaxPooling2D layers; yours has {len(pools)}"
    wrong = [
        ORDINAL[i]
        for i, layer in enumerate(pools)
        if _pair(layer.get_config()["pool_size"]) != (2, 2)
        or _pair(layer.get_config()["strides"] or (2, 2)) != (2, 2)
    ]
    assert not wrong, (
        f"the {', '.join(wrong)} MaxPooling2D should pool 2x2 with stride 2: "
        "MaxPooling2D((2, 2), strides=2)"
    )


@pytest.mark.points(1)
def test_dense_layers(model: Any) -> None:
    """The three Dense layers have 64, 32 and 6 units with relu, relu and softmax"""
    dense = of_type(model, "Dense")
    assert len(dense) == 3, f"Exercise 1 has three Dense layers; your network has {len(dense)}"
    problems = dense_problems(model, PUBLIC_N[3:])
    assert not problems, (
        "fix "
        + "; ".join(f"the {ORDINAL[i]} Dense layer's {what}" for i, what in problems)
        + ": they should be Dense(64, relu), Dense(32, relu), Dense(6, softmax)"
    )


@pytest.mark.points(1)
def test_output_shapes(model: Any) -> None:
    """Input 64x64x3 and every layer's output shape as in Exercise 1"""
    input_shape, shapes = output_shapes(model)
    assert input_shape == INPUT, (
        f"the network's input is {_fmt(input_shape)}; SIGNS images are 64x64x3: "
        "use keras.Input((64, 64, 3))"
    )
    expected = expected_shapes(PUBLIC_N)
    assert shapes == expected, (
        f"your layers output {', '.join(_fmt(s) for s in shapes)}; Exercise 1's output "
        f"{', '.join(_fmt(s) for s in expected)} (valid 3x3 convolutions, 2x2 pooling)"
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
        pytest.fail(
            "the grader called build_model with other arguments and got no model back (it "
            "raised an error or the notebook stopped before): make build_model(n1, n2, n3, "
            "n4, n5, n6) build and return the network from its arguments",
            pytrace=False,
        )
    n = [int(v) for v in hidden["build_model_n"]]
    model = load_model("hidden_model.keras")
    advice = (
        ": build_model must use n1, n2, n3 as the Conv2D filters and n4, n5, n6 as the Dense "
        "units, never fixed numbers or global variables"
    )
    found = types(model)
    assert found == TYPES, (
        "with other arguments, build_model returned a network with different layers" + advice
    )
    problems = [f"the {ORDINAL[i]} Conv2D's {what}" for i, what in conv_problems(model, n[:3])]
    problems += [f"the {ORDINAL[i]} Dense's {what}" for i, what in dense_problems(model, n[3:])]
    input_shape, shapes = output_shapes(model)
    if input_shape != INPUT or shapes != expected_shapes(n):
        problems.append("the layers' output shapes")
    params = [int(layer.count_params()) for layer in layers(model)]
    if params != expected_params(n) or int(model.count_params()) != sum(expected_params(n)):
        problems.append("the parameter counts")
    assert not problems, (
        "with other arguments, build_model got " + ", ".join(problems) + " wrong" + advice
    )
