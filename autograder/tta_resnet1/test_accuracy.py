"""Exercises 2, 4 and 5: the accuracies, measured by the grader on its own test set.

The plain accuracy is the grader's own prediction with its own scaling; the TTA accuracy is
the grader's argmax of the probabilities the notebook's locked cell saved (tta_predict on the
whole test set) against the grader's labels. What the notebook printed only earns the points
for reporting it correctly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tta_views import N_CLASSES

from deepgrade.checks import fail

# GPU vs CPU round-off can flip the argmax of a few near-ties: 3 images in 1000.
REPORT_TOLERANCE = 0.003


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def tta_accuracy(artifact: Callable[[str], Path], grader: Any) -> float:
    """The grader's accuracy of the saved TTA probabilities of the whole test set."""
    try:
        saved = np.load(artifact("tta_probabilities.npy"), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        fail("tta_probabilities.npy is not a numpy array file: do not edit the locked cell")
    n = len(grader.y_test)
    if saved.shape != (n, N_CLASSES) or not np.issubdtype(saved.dtype, np.number):
        fail(
            f"tta_predict on the whole test set gave shape {saved.shape}; it should give "
            f"({n}, 10): one row of mean probabilities per test image"
        )
    return float(np.mean(np.argmax(saved, axis=1) == grader.y_test))


@pytest.mark.points(1)
def test_plain_accuracy(answers: dict[str, Any], grader: Any) -> None:
    """The accuracy without TTA, as the grader measures it"""
    reported = answers["plain_accuracy"]
    assert _number(reported), "plain_accuracy must be a number (a fraction, e.g. 0.91)"
    assert abs(float(reported) - grader.plain_accuracy) <= REPORT_TOLERANCE, (
        f"your plain_accuracy {float(reported):.4f} differs from the grader's measurement of "
        "resnet1 on the preprocessed test images: predict X_test (preprocessed to [-0.5, 0.5]) "
        "and compare the argmax of each row with y_test; give a fraction, not a percentage"
    )


@pytest.mark.points(3)
def test_tta_accuracy(
    tta_accuracy: float,
    grader: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """TTA's accuracy on the grader's test set beats the plain accuracy by the required margin"""
    plain = grader.plain_accuracy
    gain = tta_accuracy - plain
    measure("plain_accuracy", plain)
    measure("tta_accuracy", tta_accuracy)
    measure("tta_gain", gain)
    required = threshold("tta_gain")
    expected = (
        f"at least {required * 100:+.1f} points are expected"
        if required >= 0
        else f"it may lose at most {-required * 100:.1f} points with this profile's network"
    )
    assert gain >= required - 1e-9, (
        f"with your TTA, resnet1 classifies {tta_accuracy:.2%} of the grader's test images "
        f"correctly, {gain * 100:+.2f} points from its {plain:.2%} without TTA; {expected}: "
        "preprocess to [-0.5, 0.5], use distortions the network was trained with (mirror, "
        "shifts of a few pixels) and average the probabilities of the 11 views"
    )


@pytest.mark.points(1)
def test_accuracy_increased(answers: dict[str, Any], tta_accuracy: float, grader: Any) -> None:
    """The answer to "did the accuracy increase?" matches the grader's measurements"""
    answer = answers["accuracy_increased"]
    assert isinstance(answer, bool), "accuracy_increased must be True or False"
    truth = tta_accuracy > grader.plain_accuracy
    assert answer == truth, (
        f"you answered accuracy_increased = {answer}, but on the grader's test set your TTA "
        f"{'did' if truth else 'did not'} classify more images correctly than the plain "
        "prediction: compare tta_accuracy with plain_accuracy"
    )
