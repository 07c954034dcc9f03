"""Exercises 4 and 5: compile and train the VGG, judged by the grader itself.

The test accuracy is measured here, with the grader's own padding, on its copy of the test
set; the accuracy the notebook printed (answers.json "vgg_test_accuracy") earns nothing. The
epochs and batch size are read from the optimizer's step count saved in model.keras, beside
the history the locked cell recorded.
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
    optimizer_steps,
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
def test_history(
    history: dict[str, list[float]],
    profile: GradingProfile,
    artifact: Callable[[str], Path],
    steps_per_epoch: int,
) -> None:
    """Training ran once, EPOCHS epochs in batches of 100, with the test set as validation data"""
    epochs = int(profile.parameters["EPOCHS"])
    expect_history(
        history,
        epochs=epochs,
        fit_hint="compile with metrics=['accuracy'] and pass validation_data=(X_test, "
        "Y_test_hot) to model.fit",
    )
    steps, expected = optimizer_steps(artifact("model.keras")), steps_per_epoch * epochs
    assert steps == expected, (
        f"your VGG's optimizer made {steps or 0} training steps where {epochs} epochs of the "
        f"training images in batches of 100 make {expected}: train it once, with "
        "model.fit(X_train, Y_train_hot, batch_size=100, epochs=EPOCHS, ...)"
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
