"""Fixtures of the SIGNS hidden checks: the grader's own copy of the data, split and scaled to
[0, 1] as the notebook's cells do. Accuracy, predictions and the evaluation are judged on this
copy, never on what the notebook printed; deepgrade's plugin provides the other fixtures (model,
dataset, answers, history, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

TRAINING = 960  # the locked split cell: the first 960 training images train, the rest validate
CLASSES = 6


@pytest.fixture(scope="session")
def x_test(dataset: Any) -> np.ndarray:
    """The grader's test images, (n, 64, 64, 3) float32 in [0, 1]."""
    return np.asarray(dataset.x_test, dtype=np.float32) / 255.0


@pytest.fixture(scope="session")
def y_test(dataset: Any) -> np.ndarray:
    """The grader's test labels, (n,) int64 in 0..5."""
    return np.asarray(dataset.y_test, dtype=np.int64).reshape(-1)


@pytest.fixture(scope="session")
def prepared(
    dataset: Any, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three sets as Exercise 4 evaluates them: name -> (images / 255, one-hot labels)."""
    images = np.asarray(dataset.x_train, dtype=np.float32) / 255.0
    labels = np.asarray(dataset.y_train, dtype=np.int64).reshape(-1)

    def one_hot(y: np.ndarray) -> np.ndarray:
        return np.eye(CLASSES, dtype=np.float32)[y]

    return {
        "train": (images[:TRAINING], one_hot(labels[:TRAINING])),
        "val": (images[TRAINING:], one_hot(labels[TRAINING:])),
        "test": (x_test, one_hot(y_test)),
    }
