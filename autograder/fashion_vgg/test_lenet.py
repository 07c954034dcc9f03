"""Exercise 6: the comparison with LeNet, present and plausible.

The LeNet is saved as lenet.keras: its layers and compile settings must be Exercise 6's, the
grader measures its accuracy itself, requires a trained network (the profile's
lenet_test_accuracy threshold, well under the course's 91%) trained as Exercise 6 says
(LENET_EPOCHS epochs in batches of 100, read from the optimizer's step count in lenet.keras)
and the accuracy the notebook reported to agree with what it measured, so the comparison rests
on a real run, not a number copied from the course.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepgrade.checks import (
    compile_config,
    expect_input,
    expect_layers,
    expect_loss,
    expect_optimizer,
    optimizer_steps,
)
from deepgrade.profiles import GradingProfile

ADAM = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999}  # Adam()'s defaults
AGREEMENT = 0.02  # the notebook evaluated the same images; GPU vs CPU round-off only
CONV = {"kernel_size": 5, "strides": 1, "padding": "valid", "activation": "relu"}
POOL = ("MaxPooling2D", {"pool_size": 2, "strides": 2, "padding": "valid"})
LENET = [
    ("Conv2D", {"filters": 20, **CONV}),
    POOL,
    ("Conv2D", {"filters": 40, **CONV}),
    POOL,
    ("Flatten", {}),
    ("Dense", {"units": 200, "activation": "relu"}),
    ("Dense", {"units": 10, "activation": "softmax"}),
]


@pytest.mark.points(2)
def test_lenet_comparison(
    answers: dict[str, Any],
    load_model: Callable[[str], Any],
    artifact: Callable[[str], Path],
    accuracy_of: Callable[[str], float],
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
    profile: GradingProfile,
    steps_per_epoch: int,
) -> None:
    """Exercise 6's LeNet, trained LENET_EPOCHS epochs, its test accuracy reported"""
    lenet = load_model("lenet.keras")
    expect_input(lenet, (32, 32, 1), hint="start lenet with keras.Input((32, 32, 1))")
    expect_layers(
        lenet,
        LENET,
        what="your lenet",
        hint="Exercise 6's LeNet is Conv2D(20, (5, 5), relu), MaxPooling2D((2, 2)), "
        "Conv2D(40, (5, 5), relu), MaxPooling2D((2, 2)), Flatten(), Dense(200, relu), "
        "Dense(10, softmax)",
    )
    config = compile_config(artifact("lenet.keras"))
    expect_optimizer(config, "Adam", ADAM, spelled="keras.optimizers.Adam() (like the VGG)")
    expect_loss(config, "categorical_crossentropy", hint="compile lenet like the VGG")
    measured = accuracy_of("lenet.keras")
    measure("lenet_test_accuracy", measured)
    required = threshold("lenet_test_accuracy")
    assert measured >= required, (
        f"your LeNet classifies {measured:.1%} of the grader's test images correctly, below "
        f"{required:.0%}: train it with lenet.fit(X_train, Y_train_hot, batch_size=100, "
        "epochs=LENET_EPOCHS) before evaluating it"
    )
    epochs = int(profile.parameters["LENET_EPOCHS"])
    steps, expected = optimizer_steps(artifact("lenet.keras")), steps_per_epoch * epochs
    assert steps == expected, (
        f"your LeNet's optimizer made {steps or 0} training steps where LENET_EPOCHS = {epochs} "
        f"epochs of the training images in batches of 100 make {expected}: train it once, "
        "with lenet.fit(X_train, Y_train_hot, batch_size=100, epochs=LENET_EPOCHS)"
    )
    reported = answers["lenet_test_accuracy"]
    valid = isinstance(reported, int | float) and not isinstance(reported, bool)
    assert valid and math.isfinite(reported) and abs(reported - measured) <= AGREEMENT, (
        f"the LeNet accuracy you reported ({reported!r}) is not what your saved LeNet scores "
        f"on the grader's test set ({measured:.1%}): set lenet_eval = lenet.evaluate(X_test, "
        "Y_test_hot) after training and report that; if you did, your pad_images pads the "
        "images differently from the grader (see the padding check)"
    )
