"""Exercises 3 to 5: compile, train, evaluate and predict, judged by the grader itself.

The test accuracy is measured here on the grader's copy of the test set; the accuracy the
notebook printed (answers.json "evaluation") is not trusted for points.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade.checks import (
    compile_config,
    expect_accuracy,
    expect_history,
    expect_loss,
    expect_optimizer,
    fail,
    predict_or_fail,
)
from deepgrade.profiles import GradingProfile

AGREEMENT = 0.98  # GPU vs CPU round-off may flip an argmax between two near-equal classes


@pytest.fixture(scope="module")
def predicted(model: Any, x_test: np.ndarray) -> np.ndarray:
    """The grader's own argmax of model.keras's predictions on its copy of the test images."""
    probabilities = predict_or_fail(
        model,
        x_test,
        outputs=6,
        input_hint="64x64x3 images: check its input shape",
        output_hint="end with Dense(6, activation='softmax')",
    )
    return np.argmax(probabilities, axis=1)


@pytest.mark.points(1)
def test_optimizer(artifact: Callable[[str], Path]) -> None:
    """The model is compiled with Adam(0.001, 0.9, 0.999) and categorical cross-entropy"""
    config = compile_config(artifact("model.keras"))
    expect_optimizer(config, "Adam", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999})
    expect_loss(config, "categorical_crossentropy", hint="on softmax outputs, one-hot labels")


@pytest.mark.points(1)
def test_history(history: dict[str, list[float]], profile: GradingProfile) -> None:
    """Training ran for EPOCHS epochs with validation data and the accuracy metric"""
    expect_history(
        history,
        epochs=int(profile.parameters["EPOCHS"]),
        fit_hint="compile with metrics=['accuracy'] and pass validation_data=(X_val, Y_val_hot) "
        "to model.fit",
    )


@pytest.mark.points(3)
def test_test_accuracy(
    predicted: np.ndarray,
    y_test: np.ndarray,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
    confusion: Callable[..., None],
) -> None:
    """The trained model's accuracy on the grader's test set"""
    confusion(predicted, y_test, [f"{n} fingers" for n in range(6)])
    accuracy = float(np.mean(predicted == y_test))
    expect_accuracy(accuracy, required=threshold("test_accuracy"), measure=measure)


@pytest.mark.points(1)
def test_predictions(
    artifact: Callable[[str], Path], predicted: np.ndarray, y_test: np.ndarray
) -> None:
    """The predicted classes are the argmax of model.predict on X_test"""
    try:
        saved = np.load(artifact("predictions.npy"), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        fail("predictions.npy is not a numpy array file: do not edit the locked cell")
    n = len(y_test)
    assert saved.shape == (n,) and np.issubdtype(saved.dtype, np.integer), (
        f"y_pred should hold one integer class per test image, shape ({n},); yours has "
        f"shape {saved.shape} and dtype {saved.dtype}: use np.argmax(probabilities, axis=1)"
    )
    agreement = float(np.mean(saved == predicted))
    assert agreement >= AGREEMENT, (
        f"your predicted classes match the grader's argmax of model.predict(X_test) for only "
        f"{agreement:.0%} of the test images: use np.argmax(model.predict(X_test), axis=1)"
    )
