"""Fixtures of the Fashion-MNIST VGG hidden checks: the grader's own test set, padded by the
grader itself (never by the student's pad_images), and its accuracy measurements. Accuracy is
measured here on this copy, never read from what the notebook printed; deepgrade's plugin
provides the other fixtures (model, dataset, answers, history, ...)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from deepgrade.checks import predict_or_fail
from deepgrade.datasets.fashion_mnist import CLASS_NAMES
from deepgrade.profiles import GradingProfile

BATCH = 100  # the batch size Exercises 4 and 6 fix for both networks


@pytest.fixture(scope="session")
def grader_pad() -> Callable[[np.ndarray], np.ndarray]:
    """The grader's padding: (n, 28, 28) -> (n, 32, 32, 1), 2 zero pixels on every side."""

    def pad(images: np.ndarray) -> np.ndarray:
        return np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., np.newaxis]

    return pad


@pytest.fixture(scope="session")
def steps_per_epoch(dataset: Any, profile: GradingProfile) -> int:
    """The optimizer updates one epoch of fit(X_train, ..., batch_size=100) makes: the notebook
    trains on the first N_TRAIN images of the grader's training set (counted here, on the
    grader's copy), so a saved model's step count tells its epochs and batch size."""
    n_train = min(int(profile.parameters["N_TRAIN"]), len(dataset.x_train))
    return math.ceil(n_train / BATCH)


@pytest.fixture(scope="session")
def accuracy_of(
    load_model: Callable[[str], Any],
    dataset: Any,
    grader_pad: Callable[[np.ndarray], np.ndarray],
    confusion: Callable[..., None],
) -> Callable[[str], float]:
    """accuracy_of(name) -> the saved model's accuracy on the grader's test set, padded and
    scaled as the notebook's locked cell does (cached); model.keras's confusion matrix goes to
    the student's feedback page."""
    x_test = grader_pad(np.asarray(dataset.x_test, dtype=np.uint8)).astype(np.float32) / 255.0
    y_test = np.asarray(dataset.y_test, dtype=np.int64).reshape(-1)
    cache: dict[str, float] = {}

    def measure(name: str) -> float:
        if name not in cache:
            probabilities = predict_or_fail(
                load_model(name),
                x_test,
                outputs=10,
                input_hint=f"32x32x1 images with {name}: its input should be "
                "keras.Input((32, 32, 1))",
                output_hint=f"{name} should end with Dense(10, activation='softmax')",
                batch_size=256,
            )
            predicted = np.argmax(probabilities, axis=1)
            if name == "model.keras":
                confusion(predicted, y_test, CLASS_NAMES)
            cache[name] = float(np.mean(predicted == y_test))
        return cache[name]

    return measure
