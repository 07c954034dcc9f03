"""Fixtures of the cat/dog hidden checks: the grader's own split of its CIFAR-10 test set and
its own predictions of the saved model. Accuracy and predictions are judged on these, never on
what the notebook printed. deepgrade's plugin provides the others (model, dataset, answers...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hidden_inputs import CAT, DOG

from deepgrade.checks import predict_or_fail


@pytest.fixture(scope="session")
def split_test(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """The grader's split of its test set: dogs (5) -> 0, cats (3) -> 1, order kept."""
    keep = (dataset.y_test == DOG) | (dataset.y_test == CAT)
    return dataset.x_test[keep], np.where(dataset.y_test[keep] == DOG, 0, 1)


@pytest.fixture(scope="session")
def n_train(dataset: Any) -> int:
    """The dogs and cats in the grader's training set."""
    return int(np.sum((dataset.y_train == DOG) | (dataset.y_train == CAT)))


@pytest.fixture(scope="session")
def predict(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """predict(images) -> the saved model's probabilities (dog, cat) for uint8 images, scaled
    as the notebook scales AX: float32 in [-0.5, 0.5]."""

    def probabilities(images: np.ndarray) -> np.ndarray:
        return predict_or_fail(
            model,
            images.astype(np.float32) / 255.0 - 0.5,
            outputs=2,
            input_hint="32x32x3 images: start it with keras.Input((32, 32, 3))",
            output_hint="2 probabilities (dog, cat): end with Dense(2, activation='softmax')",
            batch_size=250,
        )

    return probabilities
