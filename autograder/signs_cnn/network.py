"""Exercise 1's network for build_model(n1, ..., n6): what every check of it compares with.

The shapes and parameter counts follow from 64x64x3 inputs, valid 3x3 convolutions and 2x2
pooling; with the public n-values they are the course's figures (82,102 parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PUBLIC_N = (8, 16, 32, 64, 32, 6)
INPUT = (64, 64, 3)
CONV = {"kernel_size": 3, "strides": 1, "padding": "valid", "activation": "relu"}
POOL = {"pool_size": 2, "strides": 2, "padding": "valid"}
DENSE_ACTIVATIONS = ("relu", "relu", "softmax")


def conv_layers(n: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
    return [("Conv2D", {"filters": filters, **CONV}) for filters in n[:3]]


def dense_layers(n: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("Dense", {"units": units, "activation": activation})
        for units, activation in zip(n[3:], DENSE_ACTIVATIONS, strict=True)
    ]


def expected_layers(n: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
    """The ten layers of build_model(*n), with the settings Exercise 1 fixes."""
    convs = conv_layers(n)
    pool = ("MaxPooling2D", POOL)
    return [convs[0], pool, convs[1], pool, convs[2], pool, ("Flatten", {}), *dense_layers(n)]


def expected_shapes(n: Sequence[int]) -> list[tuple[int, ...]]:
    """Output shapes of the ten layers (batch axis left out)."""
    n1, n2, n3, n4, n5, n6 = n
    convs = [(62, 62, n1), (31, 31, n1), (29, 29, n2), (14, 14, n2), (12, 12, n3), (6, 6, n3)]
    return [*convs, (6 * 6 * n3,), (n4,), (n5,), (n6,)]


def expected_params(n: Sequence[int]) -> list[int]:
    """k*k*c_in*filters + filters per Conv2D, (inputs + 1) * units per Dense, 0 otherwise."""
    n1, n2, n3, n4, n5, n6 = n
    conv = [9 * 3 * n1 + n1, 9 * n1 * n2 + n2, 9 * n2 * n3 + n3]
    dense = [(36 * n3 + 1) * n4, (n4 + 1) * n5, (n5 + 1) * n6]
    return [conv[0], 0, conv[1], 0, conv[2], 0, 0, *dense]


def show(shape: Sequence[int | None]) -> str:
    return "x".join(str(d) for d in shape)
