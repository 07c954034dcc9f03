"""Exercises 3 to 5: compile, train, evaluate and predict, judged by the grader itself.

The test accuracy is measured here on the grader's copy of the test set; the accuracy the
notebook printed (answers.json "evaluation") is not trusted for points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from deepgrade.artifacts import read_compile_config, validate_model_file
from deepgrade.exercise import ProfileSpec

ADAM = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999}
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
AGREEMENT = 0.98  # GPU vs CPU round-off may flip an argmax between two near-equal classes


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


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
        and not config.get("label_smoothing", 0.0)
    )


@pytest.fixture(scope="module")
def predicted(load_model: Callable[[str], Any], signs: Any) -> np.ndarray:
    """The grader's own argmax of model.keras's predictions on its copy of the test images."""
    model = load_model("model.keras")
    try:
        probabilities = np.asarray(model.predict(signs.x_test, batch_size=64, verbose=0))
    except Exception as exc:  # any Keras error on a well-formed 64x64x3 batch
        _fail(
            f"your saved model could not predict 64x64x3 images ({type(exc).__name__}): "
            "check its input shape"
        )
    if probabilities.shape != (len(signs.y_test), 6):
        _fail(
            f"your model outputs shape {probabilities.shape[1:]} per image; it should output "
            "6 class probabilities: end with Dense(6, activation='softmax')"
        )
    return np.argmax(probabilities, axis=1)


@pytest.mark.points(1)
def test_optimizer(artifact: Callable[[str], Path]) -> None:
    """The model is compiled with Adam(0.001, 0.9, 0.999) and categorical cross-entropy"""
    path = artifact("model.keras")
    validate_model_file(path)  # a model the grader refuses earns no points for its settings
    config = read_compile_config(path)
    if config is None:
        _fail(
            "model.keras was saved without compile settings: call model.compile(...) "
            "before model.fit"
        )
    optimizer = config.get("optimizer")
    settings = optimizer.get("config", {}) if isinstance(optimizer, dict) else {}
    is_adam = isinstance(optimizer, dict) and optimizer.get("class_name") == "Adam"
    wrong = [
        name
        for name, value in ADAM.items()
        if not _number_close(settings.get(name) if isinstance(settings, dict) else None, value)
    ]
    assert is_adam and not wrong, (
        "the optimizer should be keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, "
        "beta_2=0.999)" + (f"; yours differs in {', '.join(wrong)}" if is_adam else "")
    )
    assert _is_categorical_crossentropy(config.get("loss")), (
        "the loss should be loss='categorical_crossentropy' (on softmax outputs, one-hot labels)"
    )


def _number_close(value: Any, expected: float) -> bool:
    """Keras stores the learning rate as float32 (0.0010000000474974513)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isclose(value, expected, rel_tol=1e-5)
    )


@pytest.mark.points(1)
def test_history(history: dict[str, list[float]], profile: ProfileSpec) -> None:
    """Training ran for EPOCHS epochs with validation data and the accuracy metric"""
    epochs = int(profile.parameters["EPOCHS"])
    missing = [key for key in HISTORY_KEYS if key not in history]
    assert not missing, (
        f"the training history has no {', '.join(missing)}: compile with "
        "metrics=['accuracy'] and pass validation_data=(X_val, Y_val_hot) to model.fit"
    )
    lengths = sorted({len(history[key]) for key in HISTORY_KEYS})
    assert lengths == [epochs], (
        f"the history has {' / '.join(map(str, lengths))} epochs, but the notebook ran with "
        f"EPOCHS = {epochs}: train with model.fit(..., epochs=EPOCHS) once, in one call"
    )
    assert all(math.isfinite(v) for key in HISTORY_KEYS for v in history[key]), (
        "the training loss became NaN or infinite: check the scaling of the images"
    )


@pytest.mark.points(3)
def test_test_accuracy(
    predicted: np.ndarray,
    signs: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """The trained model's accuracy on the grader's test set"""
    accuracy = float(np.mean(predicted == signs.y_test))
    measure("test_accuracy", accuracy)
    required = threshold("test_accuracy")
    assert accuracy >= required, (
        f"your trained model classifies {accuracy:.1%} of the grader's test images correctly, "
        f"below the required {required:.0%}: check the scaling, the architecture and the "
        "optimizer, and train for all EPOCHS epochs"
    )


@pytest.mark.points(1)
def test_predictions(artifact: Callable[[str], Path], predicted: np.ndarray, signs: Any) -> None:
    """The predicted classes are the argmax of model.predict on X_test"""
    try:
        saved = np.load(artifact("predictions.npy"), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        _fail("predictions.npy is not a numpy array file: do not edit the locked cell")
    n = len(signs.y_test)
    assert saved.shape == (n,) and np.issubdtype(saved.dtype, np.integer), (
        f"y_pred should hold one integer class per test image, shape ({n},); yours has "
        f"shape {saved.shape} and dtype {saved.dtype}: use np.argmax(probabilities, axis=1)"
    )
    agreement = float(np.mean(saved == predicted))
    assert agreement >= AGREEMENT, (
        f"your predicted classes match the grader's argmax of model.predict(X_test) for only "
        f"{agreement:.0%} of the test images: use np.argmax(model.predict(X_test), axis=1)"
    )
