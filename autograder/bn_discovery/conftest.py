"""Fixtures of the bn_discovery hidden checks: the moving statistics the grader expects.

The moving mean and variance are judged against what the grader computes from its own copy of
the data (the first N_TRAIN training images, scaled to [0, 1]; moving_stats.py), never against
the notebook's printout. deepgrade's plugin provides the other fixtures (model, dataset...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from moving_stats import Expected, expected_moving_stats, pixel_stats, training_steps

from deepgrade.profiles import GradingProfile


@pytest.fixture(scope="session")
def expected(profile: GradingProfile, dataset: Any) -> Expected:
    """The moving statistics after training on the first N_TRAIN images (or all, if there are
    fewer) for EPOCHS epochs."""
    images = np.asarray(dataset.x_train)[: int(profile.parameters["N_TRAIN"])]
    steps = training_steps(len(images), int(profile.parameters["EPOCHS"]))
    return expected_moving_stats(pixel_stats(images), steps)
