"""Exercises 4 and 5: compile and train the VGG, judged by the grader itself.

The test accuracy is measured here, with the grader's own padding, on its copy of the test
set; the accuracy the notebook printed (answers.json "vgg_test_accuracy") earns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepgrade.artifacts import read_compile_config, validate_model_file
from deepgrade.exercise import ProfileSpec

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _is_categorical_crossentropy(loss: Any) -> bool:
    """Keras saves the loss as a name, a built-in function reference or a loss object."""
    if loss == "categorical_crossentropy":
        return True
    if not isinstance(loss, dict):
        return False
    config = loss.get("config")
    if loss.get("class_name") == "function":
        return config == "categorical_crossentropy"
    return (
        loss.get("class_name") == "CategoricalCrossentropy"
        and str(loss.get("module", "")).startswith("keras")
        and isinstance(config, dict)
        and not config.get("from_logits", False)
    )


@pytest.mark.points(1)
def test_optimizer(artifact: Callable[[str], Path]) -> None:
    """The VGG is compiled with Adam (learning rate 0.001) and categorical cross-entropy"""
    path = artifact("model.keras")
    validate_model_file(path)  # a model the grader refuses earns no points for its settings
    config = read_compile_config(path)
    if config is None:
        pytest.fail(
            "model.keras was saved without compile settings: call model.compile(...) before "
            "model.fit",
            pytrace=False,
        )
    optimizer = config.get("optimizer")
    settings = optimizer.get("config", {}) if isinstance(optimizer, dict) else {}
    rate = settings.get("learning_rate") if isinstance(settings, dict) else None
    is_adam = isinstance(optimizer, dict) and optimizer.get("class_name") == "Adam"
    assert (
        is_adam
        and isinstance(rate, int | float)
        and not isinstance(rate, bool)
        and math.isclose(rate, 0.001, rel_tol=1e-5)
    ), "the optimizer should be keras.optimizers.Adam() with its default learning rate 0.001"
    assert _is_categorical_crossentropy(config.get("loss")), (
        "the loss should be loss='categorical_crossentropy' (on softmax outputs, one-hot labels)"
    )


@pytest.mark.points(1)
def test_history(history: dict[str, list[float]], profile: ProfileSpec) -> None:
    """Training ran for EPOCHS epochs with the test set as validation data"""
    epochs = int(profile.parameters["EPOCHS"])
    missing = [key for key in HISTORY_KEYS if key not in history]
    assert not missing, (
        f"the training history has no {', '.join(missing)}: compile with "
        "metrics=['accuracy'] and pass validation_data=(X_test, Y_test_hot) to model.fit"
    )
    lengths = sorted({len(history[key]) for key in HISTORY_KEYS})
    assert lengths == [epochs], (
        f"the history has {' / '.join(map(str, lengths))} epochs, but the notebook ran with "
        f"EPOCHS = {epochs} (the course's convention: 30 epochs only): train with "
        "model.fit(..., epochs=EPOCHS) once, in one call"
    )
    assert all(math.isfinite(v) for key in HISTORY_KEYS for v in history[key]), (
        "the training loss became NaN or infinite: check the scaling of the images"
    )


@pytest.mark.points(4)
def test_test_accuracy(
    accuracy_of: Callable[[str], float],
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """The trained VGG's accuracy on the grader's test set"""
    accuracy = accuracy_of("model.keras")
    measure("test_accuracy", accuracy)
    required = threshold("test_accuracy")
    assert accuracy >= required, (
        f"your trained VGG classifies {accuracy:.1%} of the grader's test images correctly, "
        f"below the required {required:.0%}: check the padding, the architecture, the "
        "distortions (too strong ones hurt) and train for all EPOCHS epochs"
    )
