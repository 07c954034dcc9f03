"""Fixtures of the SIGNS hidden checks: the grader's own copy of the data, prepared as the
notebook's locked cells prepare it (scaled to [0, 1], one-hot labels).

Accuracy and predictions are judged on this copy, never on what the notebook printed.
deepgrade's plugin (`-p deepgrade.checks.plugin`) provides the other fixtures: answers,
history, artifact, load_model, threshold, hidden, profile, data_dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

N_CLASSES = 6
VALIDATION = 120  # the locked split cell keeps the last 120 training images for validation


@dataclass(frozen=True)
class Signs:
    """The grader's SIGNS data, ready for a model trained by the notebook."""

    n_train: int  # images in the training file (validation included)
    x_test: np.ndarray  # (n, 64, 64, 3) float32 in [0, 1]
    y_test: np.ndarray  # (n,) int64 labels 0..5
    y_test_hot: np.ndarray  # (n, 6) float32

    @property
    def n_fit(self) -> int:
        """Rows the notebook trains on: the training file without the validation images."""
        return self.n_train - VALIDATION


@pytest.fixture(scope="session")
def signs(data_dir: Path) -> Signs:
    """The grader's test set, scaled like the notebook's X_test, and the training size."""
    from deepgrade.datasets import signs as dataset

    data = dataset.load(data_dir)
    y_test = np.asarray(data.y_test, dtype=np.int64).reshape(-1)
    return Signs(
        n_train=int(data.x_train.shape[0]),
        x_test=np.asarray(data.x_test, dtype=np.float32) / 255.0,
        y_test=y_test,
        y_test_hot=np.eye(N_CLASSES, dtype=np.float32)[y_test],
    )
