"""Fixtures of transfer_mobilenet's hidden checks: the grader's own cats and dogs, its own copy
of the pretrained base, and the base inside each saved model.

deepgrade's plugin provides the others (model, load_model, dataset, artifact, profile,
threshold, measure, hidden...): see docs/authoring.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade.checks import fail


@dataclass(frozen=True)
class CatsDogs:
    x_test: np.ndarray  # uint8 (n, 32, 32, 3)
    y_test: np.ndarray  # cat 0, dog 1


@pytest.fixture(scope="session")
def catsdogs(dataset: Any) -> CatsDogs:
    """The grader's test cats and dogs, split as the notebook's locked load_data cell does."""
    labels = np.asarray(dataset.y_test).reshape(-1)
    keep = (labels == 3) | (labels == 5)
    return CatsDogs(np.asarray(dataset.x_test)[keep], (labels[keep] == 5).astype(np.int64))


@pytest.fixture(scope="session")
def pretrained(data_dir: Path) -> Any:
    """The grader's own copy of the base the notebook loaded (a trusted file)."""
    import keras

    return keras.saving.load_model(data_dir / "mobilenetv2.keras", compile=False)


def find_base(model: Any, pretrained: Any, which: str) -> Any:
    """The pretrained base as one layer of `model` (the student's model.layers), or fail."""
    names = [layer.name for layer in pretrained.layers[1:]]
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if isinstance(inner, list) and [sub.name for sub in inner[1:]] == names:
            return layer
    fail(
        f"{which} does not hold the pretrained base as one of its layers: put base_model itself "
        "into the model (keras.Sequential([..., base_model, ...])), unchanged"
    )


@dataclass(frozen=True)
class Base:
    """The pretrained base inside one saved model: its layers' trainable flags and weights."""

    trainable: list[bool]  # per layer with weights, in order
    weights: list[list[np.ndarray]]  # per layer with weights, in order

    def unchanged(self, other: Base) -> list[bool]:
        """Per layer with weights: equal to `other`'s (within float round-off)."""
        return [
            len(a) == len(b)
            and all(
                x.shape == y.shape and np.allclose(x, y, rtol=0, atol=1e-6)
                for x, y in zip(a, b, strict=True)
            )
            for a, b in zip(self.weights, other.weights, strict=False)
        ]


def _base(layer: Any) -> Base:
    """The base's layers with weights: trainable flags and all weights (BN statistics too)."""
    kept = [sub for sub in layer.layers if sub.weights]
    return Base(
        [bool(sub.trainable) for sub in kept],
        [[np.asarray(w) for w in sub.get_weights()] for sub in kept],
    )


@pytest.fixture(scope="session")
def weighted_indices(pretrained: Any) -> list[int]:
    """The base layers' indices (as in base_model.layers) of those with weights, in order."""
    return [i for i, layer in enumerate(pretrained.layers) if layer.weights]


@pytest.fixture(scope="session")
def pretrained_base(pretrained: Any) -> Base:
    return _base(pretrained)


@pytest.fixture(scope="session")
def phase1(load_model: Callable[[str], Any]) -> Any:
    """model_phase1.keras: the model saved after phase 1."""
    return load_model("model_phase1.keras")


@pytest.fixture(scope="session")
def phase1_base(phase1: Any, pretrained: Any) -> Base:
    return _base(find_base(phase1, pretrained, "model_phase1.keras"))


@pytest.fixture(scope="session")
def final_base(model: Any, pretrained: Any) -> Base:
    return _base(find_base(model, pretrained, "model.keras"))


@pytest.fixture(scope="session")
def read_history(artifact: Callable[[str], Path]) -> Callable[[str], dict[str, list[float]]]:
    """read_history(name) -> a saved history; fails closed on anything else."""

    def read(name: str) -> dict[str, list[float]]:
        try:
            data = json.loads(artifact(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            fail(f"{name} is not valid JSON: run the whole notebook so its locked cells write it")
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            fail(f"{name} must map each metric to a list of numbers (model.fit's history)")
        return data

    return read
