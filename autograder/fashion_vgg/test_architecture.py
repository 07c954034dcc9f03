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

from deepgrade.checks import expect_input, expect_layers, fail, flat_layers, of_kind
from deepgrade.profiles import GradingProfile

BLOCKS = ((64, 64), (128, 128), (256, 256), (512, 512, 512), (512, 512, 512))
CONV = {"kernel_size": 3, "strides": 1, "padding": "same", "activation": "relu"}
DROPOUT = ("Dropout", {"rate": 0.3})
VGG_HINT = (
    "Each block is conv, BN, (Dropout(0.3), conv, BN)..., MaxPooling2D((2, 2)); then Flatten, "
    "Dense(512 // width, relu), BN, Dropout(0.3), Dense(10, softmax)"
)


def expected_layers(width: int) -> list[tuple[str, dict[str, Any]]]:
    """Program 8's VGG, `width` times thinner, with the settings the exercise fixes."""
    found: list[tuple[str, dict[str, Any]]] = []
    for block in BLOCKS:
        for index, filters in enumerate(block):
            found += [DROPOUT] if index else []
            found += [("Conv2D", {"filters": filters // width, **CONV}), ("BatchNormalization", {})]
        found.append(("MaxPooling2D", {"pool_size": 2, "strides": 2, "padding": "valid"}))
    return [
        *found,
        ("Flatten", {}),
        ("Dense", {"units": 512 // width, "activation": "relu"}),
        ("BatchNormalization", {}),
        DROPOUT,
        ("Dense", {"units": 10, "activation": "softmax"}),
    ]


def is_augmentation(layer: Any) -> bool:
    return type(layer).__name__.startswith("Random")


def not_augmentation(layer: Any) -> bool:
    return not is_augmentation(layer)


def _width(profile: GradingProfile) -> int:
    return int(profile.parameters.get("WIDTH", 1))


@pytest.mark.points(1)
def test_input_and_output(model: Any) -> None:
    """The network takes 32x32x1 images and ends with Dense(10, softmax)"""
    expect_input(model, (32, 32, 1), hint="the padded images: start with keras.Input((32, 32, 1))")
    layers = flat_layers(model)
    last = layers[-1].get_config() if layers else {}
    assert (
        layers
        and type(layers[-1]).__name__ == "Dense"
        and last.get("units") == 10
        and last.get("activation") == "softmax"
    ), "the last layer should be Dense(10, activation='softmax'): one probability per class"


@pytest.mark.points(2)
def test_conv_layers(model: Any, profile: GradingProfile) -> None:
    """Twelve 3x3 'same' ReLU convolutions with program 8's filters"""
    convs = flat_layers(model, keep=of_kind("Conv2D"))
    assert len(convs) == 12, (
        f"your network has {len(convs)} Conv2D layers; program 8 has 12: "
        "2, 2, 2, 3 and 3 in its five blocks"
    )
    expect_layers(
        model,
        [layer for layer in expected_layers(_width(profile)) if layer[0] == "Conv2D"],
        what="your convolutions",
        keep=of_kind("Conv2D"),
        hint="VGG uses only 3x3 convolutions with padding='same', stride 1 and ReLU (a larger "
        "field of view comes from stacking them), with 64, 64, 128, 128, 256, 256 and 6 x 512 "
        "filters, each divided by width",
    )


@pytest.mark.points(2)
def test_vgg_layers(model: Any, profile: GradingProfile) -> None:
    """Program 8's layers in order: BN after each conv, dropout, pooling, the dense head"""
    width = _width(profile)
    # The convolutions' settings are test_conv_layers' business: only their place here.
    expected = [(k, {} if k == "Conv2D" else c) for k, c in expected_layers(width)]
    expect_layers(
        model,
        expected,
        what=f"after the augmentation layers, with WIDTH = {width}, your network differs",
        keep=not_augmentation,
        hint=VGG_HINT,
    )


@pytest.mark.points(2)
def test_hidden_width(artifacts_dir: Path, load_model: Callable[[str], Any], hidden: Any) -> None:
    """build_vgg uses its width argument (called by the grader with another width)"""
    if not (artifacts_dir / "hidden_vgg.keras").is_file():
        fail(
            "the grader called build_vgg with another width and got no model back (it raised "
            "an error or the notebook stopped before): make build_vgg(width) build and return "
            "the network"
        )
    sizes = [
        (kind, {key: config[key] for key in ("filters", "units") if key in config})
        for kind, config in expected_layers(int(hidden["width"]))
        if kind in ("Conv2D", "Dense")
    ]
    expect_layers(
        load_model("hidden_vgg.keras"),
        sizes,
        what="with another width, build_vgg returned convolutions or dense layers of the wrong "
        "size",
        keep=of_kind("Conv2D", "Dense"),
        show=False,
        hint="Every convolution needs filters // width filters and the hidden Dense layer "
        "512 // width units, using the argument, never WIDTH or a fixed number",
    )


@pytest.mark.points(1)
def test_augmentation_present(model: Any) -> None:
    """Data augmentation with preprocessing layers before the first convolution"""
    layers = flat_layers(model)
    kinds = [type(layer).__name__ for layer in layers]
    first_conv = kinds.index("Conv2D") if "Conv2D" in kinds else len(layers)
    assert any(
        is_augmentation(layer) and kind != "RandomFlip"
        for layer, kind in zip(layers[:first_conv], kinds, strict=False)
    ), (
        "the network has no augmentation layer before its first convolution: start it (after "
        "keras.Input) with the layers of augmentation_layers(), e.g. a small "
        "RandomTranslation and RandomRotation"
    )


@pytest.mark.points(1)
def test_no_flip(model: Any) -> None:
    """No flip among the distortions: all the shoes face left"""
    flips = flat_layers(model, keep=of_kind("RandomFlip"))
    modes = sorted({str(layer.get_config().get("mode")) for layer in flips})
    assert not flips, (
        f"your augmentation flips the images (RandomFlip, mode {', '.join(modes)}): in "
        "Fashion-MNIST every shoe faces left and no garment is upside down, so a flipped "
        "image is not a plausible test image; remove RandomFlip and keep shifts and small "
        "rotations"
    )
