"""Fixtures of the Fashion-MNIST VGG hidden checks: the grader's own test set, padded by the
grader itself (never by the student's pad_images), and its accuracy measurements.

Accuracy is measured here on this copy, never read from what the notebook printed.
deepgrade's plugin (`-p deepgrade.checks.plugin`) provides the other fixtures: answers,
history, artifact, load_model, threshold, measure, hidden, profile, data_dir.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

N_CLASSES = 10
BORDER = 2  # 28 + 2 + 2 = 32: five halvings down to 1x1


def pad(images: np.ndarray) -> np.ndarray:
    """The grader's padding: (n, 28, 28) -> (n, 32, 32, 1), 2 zero pixels on every side."""
    border = ((0, 0), (BORDER, BORDER), (BORDER, BORDER))
    return np.pad(images, border, mode="constant", constant_values=0)[..., np.newaxis]


@pytest.fixture(scope="session")
def grader_pad() -> Callable[[np.ndarray], np.ndarray]:
    """The grader's own padding, for the checks (never the student's pad_images)."""
    return pad


@dataclass(frozen=True)
class Fashion:
    """The grader's test set, ready for a model trained by the notebook."""

    x_test: np.ndarray  # (n, 32, 32, 1) float32 in [0, 1]
    y_test: np.ndarray  # (n,) int64 labels 0..9


@pytest.fixture(scope="session")
def fashion(data_dir: Path) -> Fashion:
    """The test images padded and scaled as the notebook's locked cell does, with labels."""
    from deepgrade.datasets import fashion_mnist

    data = fashion_mnist.load(data_dir)
    return Fashion(
        x_test=pad(np.asarray(data.x_test, dtype=np.uint8)).astype(np.float32) / 255.0,
        y_test=np.asarray(data.y_test, dtype=np.int64).reshape(-1),
    )


@pytest.fixture(scope="session")
def accuracy_of(load_model: Callable[[str], Any], fashion: Fashion) -> Callable[[str], float]:
    """accuracy_of(name) -> the saved model's accuracy on the grader's test set (cached)."""
    cache: dict[str, float] = {}

    def measure(name: str) -> float:
        if name not in cache:
            model = load_model(name)
            try:
                probabilities = np.asarray(model.predict(fashion.x_test, batch_size=256, verbose=0))
            except Exception as exc:  # any Keras error on a well-formed 32x32x1 batch
                pytest.fail(
                    f"{name} could not predict 32x32x1 images ({type(exc).__name__}): its input "
                    "should be keras.Input((32, 32, 1))",
                    pytrace=False,
                )
            if probabilities.shape != (len(fashion.y_test), N_CLASSES):
                pytest.fail(
                    f"{name} outputs shape {probabilities.shape[1:]} per image; it should "
                    "output 10 class probabilities: end with Dense(10, activation='softmax')",
                    pytrace=False,
                )
            cache[name] = float(np.mean(np.argmax(probabilities, axis=1) == fashion.y_test))
        return cache[name]

    return measure
