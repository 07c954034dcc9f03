"""Exercises 2 to 4: scaling, cnn1.py for two classes, training, the six examples.

The test accuracy and the examples' probabilities are computed here by the grader, with the
saved model on the grader's own split of its test set; what the notebook printed earns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from conftest import scale

from deepgrade.exercise import ProfileSpec

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
CNN1 = [
    "Conv2D",
    "MaxPooling2D",
    "Conv2D",
    "MaxPooling2D",
    "Flatten",
    "Dropout",
    "Dense",
    "Dropout",
    "Dense",
]
PROBABILITY_TOLERANCE = 0.02  # GPU vs CPU round-off


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


@pytest.fixture(scope="module")
def model(load_model: Callable[[str], Any]) -> Any:
    return load_model("model.keras")


@pytest.fixture(scope="module")
def probabilities(model: Any, catsdogs: Any) -> np.ndarray:
    """The grader's own predictions of the saved model on its split test set."""
    try:
        output = np.asarray(model.predict(scale(catsdogs.x_test), batch_size=250, verbose=0))
    except Exception as exc:  # any Keras error on a well-formed 32x32x3 batch
        _fail(
            f"your saved model could not predict 32x32x3 images ({type(exc).__name__}): "
            "start it with keras.Input((32, 32, 3))"
        )
    if output.shape != (catsdogs.n_test, 2):
        _fail(
            f"your model outputs shape {output.shape[1:]} per image; it should output 2 "
            "probabilities (dog, cat): end with Dense(2, activation='softmax')"
        )
    return output


@pytest.mark.points(1)
def test_data_scaled(answers: dict[str, Any], catsdogs: Any) -> None:
    """The images are scaled to [-0.5, 0.5] and the labels one-hot with 2 classes"""
    value = answers["x_train_range"]
    assert isinstance(value, list) and len(value) == 2, (
        "x_train_range must be [min, max] of AX: do not edit the locked cell that saves it"
    )
    low, high = value
    assert -0.5 <= low < -0.25 and 0.25 < high <= 0.5, (
        f"AX's values go from {low:g} to {high:g}; as in cnn1.py they should lie in "
        "[-0.5, 0.5]: convert to float32, divide by 255 and subtract 0.5"
    )
    shape = answers["y_train_shape"]
    assert shape == [catsdogs.n_train, 2], (
        f"AY has shape {shape}; it should have one row per training image and 2 columns "
        "(dog, cat): keras.utils.to_categorical(ay, 2)"
    )


@pytest.mark.points(2)
def test_architecture(model: Any) -> None:
    """The network is cnn1.py's, with a 2-class softmax output"""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    found = [type(layer).__name__ for layer in layers]
    assert found == CNN1, (
        f"your network's layers are {', '.join(found) or 'none'}; cnn1.py's are {', '.join(CNN1)}"
    )
    shape = tuple(model.inputs[0].shape[1:])
    assert shape == (32, 32, 3), f"the input is {shape}; CIFAR-10 images are (32, 32, 3)"
    conv1, conv2 = layers[0].get_config(), layers[2].get_config()
    dense1, dense2 = layers[6].get_config(), layers[8].get_config()
    problems = []
    for name, conv, filters in (("first", conv1, 20), ("second", conv2, 40)):
        if (conv["filters"], _pair(conv["kernel_size"]), conv["activation"]) != (
            filters,
            (5, 5),
            "relu",
        ):
            problems.append(f"the {name} Conv2D should be Conv2D({filters}, (5, 5), relu)")
    if (dense1["units"], dense1["activation"]) != (1000, "relu"):
        problems.append("the first Dense should be Dense(1000, relu)")
    if (dense2["units"], dense2["activation"]) != (2, "softmax"):
        problems.append("the output should be Dense(2, softmax): two classes, dog and cat")
    assert not problems, "; ".join(problems)


@pytest.mark.points(1)
def test_history(history: dict[str, list[float]], profile: ProfileSpec) -> None:
    """Training ran for EPOCHS epochs with the test set as validation data"""
    epochs = int(profile.parameters["EPOCHS"])
    missing = [key for key in HISTORY_KEYS if key not in history]
    assert not missing, (
        f"the training history has no {', '.join(missing)}: compile with "
        "metrics=['accuracy'] and pass validation_data=(QX, QY) to model.fit"
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
    probabilities: np.ndarray,
    catsdogs: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """The trained model tells the grader's test dogs from its test cats"""
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == catsdogs.y_test))
    measure("test_accuracy", accuracy)
    required = threshold("test_accuracy")
    assert accuracy >= required, (
        f"your trained model classifies {accuracy:.1%} of the grader's test dogs and cats "
        f"correctly, below the required {required:.0%}: check the split's new classes (dog 0, "
        "cat 1), the scaling, the network, and train for all EPOCHS epochs"
    )


@pytest.mark.points(2)
def test_examples(
    artifact: Callable[[str], Path], probabilities: np.ndarray, catsdogs: Any
) -> None:
    """The first 3 dogs and first 3 cats of the test set, with the model's probabilities"""
    try:
        saved = np.load(artifact("examples.npz"), allow_pickle=False)
        images, shown = saved["images"], saved["probabilities"]
    except (OSError, ValueError, EOFError, KeyError):
        _fail("examples.npz is not readable: do not edit the locked cell that saves it")
    order = np.concatenate(
        [np.flatnonzero(catsdogs.y_test == 0)[:3], np.flatnonzero(catsdogs.y_test == 1)[:3]]
    )
    expected = catsdogs.x_test[order]
    assert images.shape == expected.shape and np.array_equal(images, expected), (
        "example_indices should point at the first 3 dogs, then the first 3 cats, of the split "
        "test set qx: np.flatnonzero(qy == 0)[:3] and np.flatnonzero(qy == 1)[:3]"
    )
    assert shown.shape == (6, 2) and np.allclose(
        shown, probabilities[order], atol=PROBABILITY_TOLERANCE
    ), (
        "example_probabilities should be model.predict(QX[example_indices]): the softmax "
        "output of your trained model for those 6 scaled images, shape (6, 2)"
    )
