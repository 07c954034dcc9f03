"""Exercises 4 and 5: compile and train the VGG, judged by the grader itself.

The test accuracy is measured here, with the grader's own padding, on its copy of the test
set; the accuracy the notebook printed (answers.json "vgg_test_accuracy") earns nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deepgrade.checks import (
    compile_config,
    expect_accuracy,
    expect_history,
    expect_loss,
    expect_optimizer,
)
from deepgrade.profiles import GradingProfile

ADAM = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999}  # Adam()'s defaults


@pytest.mark.points(1)
def test_optimizer(artifact: Callable[[str], Path]) -> None:
    """The VGG is compiled with Adam (learning rate 0.001) and categorical cross-entropy"""
    config = compile_config(artifact("model.keras"))
    expect_optimizer(config, "Adam", ADAM, spelled="keras.optimizers.Adam() with its defaults")
    expect_loss(config, "categorical_crossentropy", hint="on softmax outputs, one-hot labels")


@pytest.mark.points(1)
def test_history(history: dict[str, list[float]], profile: GradingProfile) -> None:
    """Training ran for EPOCHS epochs with the test set as validation data"""
    expect_history(
        history,
        epochs=int(profile.parameters["EPOCHS"]),
        fit_hint="compile with metrics=['accuracy'] and pass validation_data=(X_test, "
        "Y_test_hot) to model.fit",
    )


@pytest.mark.points(4)
def test_test_accuracy(
    accuracy_of: Callable[[str], float],
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """The trained VGG's accuracy on the grader's test set"""
    expect_accuracy(
        accuracy_of("model.keras"),
        required=threshold("test_accuracy"),
        measure=measure,
        what="your trained VGG classifies {accuracy} of the grader's test images correctly",
        hint="check the padding, the architecture, the distortions (too strong ones hurt) and "
        "train for all EPOCHS epochs",
    )
