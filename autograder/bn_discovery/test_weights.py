"""Question 1: the first layer's four vectors before and after training.

Before training they are Keras' initial values. After training, gamma and beta are whatever
back-propagation made them, but the moving mean and variance follow the data: the grader
computes where they must be from its own copy of the training images, the number of update
steps (N_TRAIN, EPOCHS, batch 100) and Keras' momentum, with a tolerance derived from the
spread of the batch statistics plus what float32 arithmetic may add
(moving_stats.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade.checks import fail

INITIAL = ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])


def vectors(artifact: Callable[[str], Path], name: str) -> list[np.ndarray]:
    """The four vectors saved by a locked cell (np.savez: arr_0 ... arr_3)."""
    try:
        with np.load(artifact(name), allow_pickle=False) as saved:
            found = [np.asarray(saved[f"arr_{i}"], dtype=np.float64) for i in range(4)]
    except (OSError, ValueError, EOFError, KeyError):
        fail(
            f"{name} does not hold the first layer's four vectors: the first layer of your "
            "model must be BatchNormalization(); do not edit the locked cells"
        )
    if any(v.shape != (3,) for v in found):
        fail(
            f"the first layer's vectors in {name} have shapes "
            f"{', '.join(str(v.shape) for v in found)}, not (3,): the first layer must be "
            "BatchNormalization() on the 32x32x3 input"
        )
    return found


def check_moving(
    stat: str,
    artifact: Callable[[str], Path],
    answers: dict[str, Any],
    expected: Any,
    sigmas: float,
    measure: Callable[[str, float], None],
) -> None:
    """The moving `stat` ("mean" or "variance") after training lies within `sigmas` standard
    deviations plus the float32 slack of where the grader's data puts it; measures the worst
    channel's deviation (in standard deviations, and as a share of the tolerance)."""
    index, name = {"mean": (2, "third"), "variance": (3, "fourth")}[stat]
    found = vectors(artifact, "bn_after.npz")[index]
    want, sd, slack = (getattr(expected, stat + suffix) for suffix in ("", "_sd", "_slack"))
    advice = (
        "scale the images to [0, 1] (divide by 255, nothing else), keep BatchNormalization() "
        "first with its default momentum, and train on ax"
    )
    steps = answers.get("train_steps")
    if isinstance(steps, int) and steps != expected.steps:
        advice += (
            f"; your training made {steps} update steps where the grader's run needs "
            f"{expected.steps}: train once, on all of ax, with batch_size=100 and epochs=EPOCHS"
        )
    what = f"the moving {stat} ({name} vector) after training"
    if not np.all(np.isfinite(found)):
        fail(f"{what} is not finite: {advice}")
    off = np.abs(found - want)
    tolerance = sigmas * sd + slack
    if not np.all(off <= tolerance):
        fail(
            f"{what} is {np.array2string(found, precision=4)}, not where the grader's data "
            f"puts it: {advice}"
        )
    measure(f"moving_{stat}_sigmas", float(np.max(off / np.maximum(sd, 1e-12))))
    measure(f"moving_{stat}_tolerance_used", float(np.max(off / tolerance)))


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
    check_moving("mean", artifact, answers, expected, threshold("moving_stats_sigmas"), measure)


@pytest.mark.points(3)
def test_moving_variance(
    artifact: Callable[[str], Path],
    answers: dict[str, Any],
    expected: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """After training the fourth vector (moving variance) follows the images' variance"""
    check_moving("variance", artifact, answers, expected, threshold("moving_stats_sigmas"), measure)
