"""Question 1: the first layer's four vectors before and after training.

Before training they are Keras' initial values. After training, gamma and beta are whatever
back-propagation made them, but the moving mean and variance follow the data: the grader
computes where they must be from its own copy of the training images, the number of update
steps (N_TRAIN, EPOCHS, batch 100) and Keras' momentum, with a tolerance derived from the
spread of the batch statistics plus what float32 arithmetic may add
(conftest.expected_moving_stats).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

INITIAL = ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def vectors(artifact: Callable[[str], Path], name: str) -> list[np.ndarray]:
    """The four vectors saved by a locked cell (np.savez: arr_0 ... arr_3)."""
    try:
        with np.load(artifact(name), allow_pickle=False) as saved:
            found = [np.asarray(saved[f"arr_{i}"], dtype=np.float64) for i in range(4)]
    except (OSError, ValueError, EOFError, KeyError):
        _fail(
            f"{name} does not hold the first layer's four vectors: the first layer of your "
            "model must be BatchNormalization(); do not edit the locked cells"
        )
    if any(v.shape != (3,) for v in found):
        _fail(
            f"the first layer's vectors in {name} have shapes "
            f"{', '.join(str(v.shape) for v in found)}, not (3,): the first layer must be "
            "BatchNormalization() on the 32x32x3 input"
        )
    return found


def _steps_problem(answers: dict[str, Any], expected: Any) -> str:
    steps = answers.get("train_steps") if isinstance(answers, dict) else None
    if isinstance(steps, int) and steps != expected.steps:
        return (
            f"; your training made {steps} update steps where the grader's run needs "
            f"{expected.steps}: train once, on all of ax, with batch_size=100 and epochs=EPOCHS"
        )
    return ""


def _check_moving(
    name: str,
    found: np.ndarray,
    want: np.ndarray,
    sd: np.ndarray,
    slack: np.ndarray,
    sigmas: float,
    advice: str,
) -> tuple[float, float]:
    """(standard deviations off, share of the tolerance used) of the worst channel; fails
    beyond `sigmas` standard deviations plus the float32 slack."""
    if not np.all(np.isfinite(found)):
        _fail(f"the {name} after training is not finite: {advice}")
    off = np.abs(found - want)
    tolerance = sigmas * sd + slack
    if np.all(off <= tolerance):
        return float(np.max(off / np.maximum(sd, 1e-12))), float(np.max(off / tolerance))
    _fail(
        f"the {name} after training is {np.array2string(found, precision=4)}, not where the "
        f"grader's data puts it: {advice}"
    )


@pytest.mark.points(2)
def test_before_training(artifact: Callable[[str], Path]) -> None:
    """Before training the vectors are [1,1,1], [0,0,0], [0,0,0], [1,1,1]"""
    found = vectors(artifact, "bn_before.npz")
    wrong = [i + 1 for i, (v, w) in enumerate(zip(found, INITIAL, strict=True)) if list(v) != w]
    assert not wrong, (
        f"vector {', '.join(map(str, wrong))} before training is not Keras' initial value: "
        "use keras.layers.BatchNormalization() with its default initializers as the first "
        "layer, and save the vectors before calling fit"
    )


@pytest.mark.points(3)
def test_moving_mean(
    artifact: Callable[[str], Path],
    answers: dict[str, Any],
    expected: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """After training the third vector (moving mean) follows the images' per-channel mean"""
    found = vectors(artifact, "bn_after.npz")[2]
    z, used = _check_moving(
        "moving mean (third vector)",
        found,
        expected.mean,
        expected.mean_sd,
        expected.mean_slack,
        threshold("moving_stats_sigmas"),
        "scale the images to [0, 1] (divide by 255, nothing else), keep "
        "BatchNormalization() first with its default momentum, and train on ax"
        + _steps_problem(answers, expected),
    )
    measure("moving_mean_sigmas", z)
    measure("moving_mean_tolerance_used", used)


@pytest.mark.points(3)
def test_moving_variance(
    artifact: Callable[[str], Path],
    answers: dict[str, Any],
    expected: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """After training the fourth vector (moving variance) follows the images' variance"""
    found = vectors(artifact, "bn_after.npz")[3]
    z, used = _check_moving(
        "moving variance (fourth vector)",
        found,
        expected.variance,
        expected.variance_sd,
        expected.variance_slack,
        threshold("moving_stats_sigmas"),
        "scale the images to [0, 1] (divide by 255, nothing else), keep "
        "BatchNormalization() first with its default momentum, and train on ax"
        + _steps_problem(answers, expected),
    )
    measure("moving_variance_sigmas", z)
    measure("moving_variance_tolerance_used", used)
