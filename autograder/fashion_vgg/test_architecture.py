"""Exercises 2 and 3: the augmentation layers and program 8's VGG, checked on the saved models.

model.keras is the network built with the profile's WIDTH (and trained); hidden_vgg.keras is
what build_vgg returned for the spec's hidden width, saved by a grade-time cell. Augmentation
layers (Keras' Random* preprocessing layers) are set aside before the VGG's layers are
compared. Messages about the hidden model never show numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepgrade.exercise import ProfileSpec

BLOCKS = ((64, 64), (128, 128), (256, 256), (512, 512, 512), (512, 512, 512))
INPUT = (32, 32, 1)
DROPOUT = 0.3


def expected_layers(width: int) -> list[tuple[str, Any]]:
    """(layer type, filters / units / rate) of program 8's VGG, `width` times thinner."""
    found: list[tuple[str, Any]] = []
    for block in BLOCKS:
        for index, filters in enumerate(block):
            if index > 0:
                found.append(("Dropout", DROPOUT))
            found += [("Conv2D", filters // width), ("BatchNormalization", None)]
        found.append(("MaxPooling2D", None))
    found += [
        ("Flatten", None),
        ("Dense", 512 // width),
        ("BatchNormalization", None),
        ("Dropout", DROPOUT),
        ("Dense", 10),
    ]
    return found


def flat_layers(model: Any) -> list[Any]:
    """Every layer, nested Sequential/Functional models opened, InputLayers dropped."""
    found = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        inner = getattr(layer, "layers", None)
        found.extend(flat_layers(layer) if isinstance(inner, list) else [layer])
    return found


def is_augmentation(layer: Any) -> bool:
    return type(layer).__name__.startswith("Random")


def vgg_layers(model: Any) -> list[Any]:
    return [layer for layer in flat_layers(model) if not is_augmentation(layer)]


def of_type(model: Any, name: str) -> list[Any]:
    return [layer for layer in vgg_layers(model) if type(layer).__name__ == name]


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def _describe(layer: Any) -> tuple[str, Any]:
    """(type, the number expected_layers lists for that type) of a saved layer."""
    name = type(layer).__name__
    config = layer.get_config()
    number = {"Conv2D": "filters", "Dense": "units", "Dropout": "rate"}.get(name)
    value = config.get(number) if number else None
    return name, round(value, 3) if isinstance(value, float) else value


def conv_problems(model: Any) -> list[str]:
    """Which Conv2D settings differ from 3x3, stride 1, 'same', relu (numbered from 1)."""
    problems = []
    for index, layer in enumerate(of_type(model, "Conv2D")):
        config = layer.get_config()
        wrong = [
            what
            for what, ok in (
                ("a 3x3 kernel", _pair(config["kernel_size"]) == (3, 3)),
                ("stride 1", _pair(config["strides"]) == (1, 1)),
                ("padding='same'", config["padding"] == "same"),
                ("activation='relu'", config["activation"] == "relu"),
            )
            if not ok
        ]
        if wrong:
            problems.append(f"convolution {index + 1} needs {' and '.join(wrong)}")
    return problems


def _width(profile: ProfileSpec) -> int:
    return int(profile.parameters.get("WIDTH", 1))


@pytest.fixture(scope="module")
def model(load_model: Callable[[str], Any]) -> Any:
    return load_model("model.keras")


@pytest.mark.points(1)
def test_input_and_output(model: Any) -> None:
    """The network takes 32x32x1 images and ends with Dense(10, softmax)"""
    try:
        shape = tuple(model.inputs[0].shape)[1:]
    except (AttributeError, IndexError, ValueError):
        shape = None
    assert shape == INPUT, (
        f"the network's input is {shape}; the padded images are 32x32x1: start with "
        "keras.Input((32, 32, 1))"
    )
    layers = vgg_layers(model)
    last = layers[-1].get_config() if layers else {}
    assert (
        layers
        and type(layers[-1]).__name__ == "Dense"
        and last.get("units") == 10
        and last.get("activation") == "softmax"
    ), "the last layer should be Dense(10, activation='softmax'): one probability per class"


@pytest.mark.points(2)
def test_conv_layers(model: Any, profile: ProfileSpec) -> None:
    """Twelve 3x3 'same' ReLU convolutions with program 8's filters"""
    convs = of_type(model, "Conv2D")
    assert len(convs) == 12, (
        f"your network has {len(convs)} Conv2D layers; program 8 has 12: "
        "2, 2, 2, 3 and 3 in its five blocks"
    )
    problems = conv_problems(model)
    assert not problems, (
        "; ".join(problems[:3]) + ": VGG uses only 3x3 convolutions with padding='same', "
        "stride 1 and ReLU (a larger field of view comes from stacking them)"
    )
    width = _width(profile)
    filters = [int(layer.get_config()["filters"]) for layer in convs]
    expected = [f // width for block in BLOCKS for f in block]
    assert filters == expected, (
        f"your convolutions have {filters} filters; with WIDTH = {width} they should have "
        f"{expected} (64, 64, 128, 128, 256, 256, 512 x 6, each divided by width)"
    )


@pytest.mark.points(2)
def test_vgg_layers(model: Any, profile: ProfileSpec) -> None:
    """Program 8's layers in order: BN after each conv, dropout, pooling, the dense head"""
    width = _width(profile)
    expected = expected_layers(width)
    found = [_describe(layer) for layer in vgg_layers(model)]
    # Conv2D filters and kernels are test_conv_layers' business: compare the rest here.
    found_cmp = [(n, None if n == "Conv2D" else v) for n, v in found]
    expected_cmp = [(n, None if n == "Conv2D" else v) for n, v in expected]
    if found_cmp == expected_cmp:
        pools = of_type(model, "MaxPooling2D")
        assert all(_pair(p.get_config()["pool_size"]) == (2, 2) for p in pools), (
            "every block should end with MaxPooling2D((2, 2))"
        )
        hidden_dense = of_type(model, "Dense")[0]
        assert hidden_dense.get_config()["activation"] == "relu", (
            "the hidden Dense layer should use activation='relu'"
        )
        return
    index = next(
        (
            i
            for i, pair in enumerate(zip(found_cmp, expected_cmp, strict=False))
            if pair[0] != pair[1]
        ),
        min(len(found_cmp), len(expected_cmp)),
    )

    def show(entry: tuple[str, Any] | None) -> str:
        if entry is None:
            return "nothing"
        name, value = entry
        return f"{name}({value})" if value is not None else name

    got = found_cmp[index] if index < len(found_cmp) else None
    want = expected_cmp[index] if index < len(expected_cmp) else None
    pytest.fail(
        f"after the augmentation layers, layer {index + 1} of your network is {show(got)}; "
        f"program 8 (with WIDTH = {width}) has {show(want)} there. Each block is conv, BN, "
        "(Dropout(0.3), conv, BN)..., MaxPooling2D; then Flatten, Dense(512 // width, relu), "
        "BN, Dropout(0.3), Dense(10, softmax)",
        pytrace=False,
    )


@pytest.mark.points(2)
def test_hidden_width(artifacts_dir: Path, load_model: Callable[[str], Any], hidden: Any) -> None:
    """build_vgg uses its width argument (called by the grader with another width)"""
    if not (artifacts_dir / "hidden_vgg.keras").is_file():
        pytest.fail(
            "the grader called build_vgg with another width and got no model back (it raised "
            "an error or the notebook stopped before): make build_vgg(width) build and return "
            "the network",
            pytrace=False,
        )
    width = int(hidden["width"])
    found = [_describe(layer) for layer in vgg_layers(load_model("hidden_vgg.keras"))]
    numbers = [(n, v) for n, v in found if n in ("Conv2D", "Dense")]
    expected = [(n, v) for n, v in expected_layers(width) if n in ("Conv2D", "Dense")]
    assert numbers == expected, (
        "with another width, build_vgg returned convolutions or dense layers of the wrong "
        "size: every convolution needs filters // width filters and the hidden Dense layer "
        "512 // width units, using the argument, never WIDTH or a fixed number"
    )


@pytest.mark.points(1)
def test_augmentation_present(model: Any) -> None:
    """Data augmentation with preprocessing layers before the first convolution"""
    layers = flat_layers(model)
    first_conv = next(
        (i for i, layer in enumerate(layers) if type(layer).__name__ == "Conv2D"), len(layers)
    )
    augmenting = [
        layer
        for layer in layers[:first_conv]
        if is_augmentation(layer) and type(layer).__name__ != "RandomFlip"
    ]
    assert augmenting, (
        "the network has no augmentation layer before its first convolution: start it (after "
        "keras.Input) with the layers of augmentation_layers(), e.g. a small "
        "RandomTranslation and RandomRotation"
    )


@pytest.mark.points(1)
def test_no_flip(model: Any) -> None:
    """No flip among the distortions: all the shoes face left"""
    flips = [layer for layer in flat_layers(model) if type(layer).__name__ == "RandomFlip"]
    modes = sorted({str(layer.get_config().get("mode")) for layer in flips})
    assert not flips, (
        f"your augmentation flips the images (RandomFlip, mode {', '.join(modes)}): in "
        "Fashion-MNIST every shoe faces left and no garment is upside down, so a flipped "
        "image is not a plausible test image; remove RandomFlip and keep shifts and small "
        "rotations"
    )
