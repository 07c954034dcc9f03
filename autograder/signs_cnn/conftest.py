"""Fixtures of the SIGNS hidden checks: the grader's own test set, scaled to [0, 1] as the
notebook's locked cells scale it. Accuracy and predictions are judged on this copy, never on
what the notebook printed; deepgrade's plugin provides the other fixtures (model, dataset,
answers, history, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def x_test(dataset: Any) -> np.ndarray:
    """The grader's test images, (n, 64, 64, 3) float32 in [0, 1]."""
    return np.asarray(dataset.x_test, dtype=np.float32) / 255.0


@pytest.fixture(scope="session")
def y_test(dataset: Any) -> np.ndarray:
    """The grader's test labels, (n,) int64 in 0..5."""
    return np.asarray(dataset.y_test, dtype=np.int64).reshape(-1)
