"""Exercises 2 to 4: scaling, cnn1.py for two classes, training, the six examples.

The test accuracy and the examples' probabilities are computed here by the grader, with the
saved model on the grader's own split of its test set; what the notebook printed earns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade.checks import (
    compile_config,
    expect_accuracy,
    expect_history,
    expect_layers,
    expect_loss,
    expect_optimizer,
    fail,
    optimizer_steps,
)
from deepgrade.profiles import GradingProfile

# cnn1.py's network, every setting it fixes (Keras' defaults included) but the initializers.
CONV = {"kernel_size": 5, "strides": 1, "padding": "valid", "dilation_rate": 1, "use_bias": True}
POOL = {"pool_size": 2, "strides": 2, "padding": "valid"}
CNN1 = [
    ("Conv2D", {"filters": 20, **CONV, "activation": "relu"}),
    ("MaxPooling2D", POOL),
    ("Conv2D", {"filters": 40, **CONV, "activation": "relu"}),
    ("MaxPooling2D", POOL),
    ("Flatten", {}),
    ("Dropout", {"rate": 0.25}),
    ("Dense", {"units": 1000, "activation": "relu", "use_bias": True}),
    ("Dropout", {"rate": 0.25}),
    ("Dense", {"units": 2, "activation": "softmax", "use_bias": True}),
]
ADAM = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}  # Adam()
BATCH = 100
PROBABILITY_TOLERANCE = 0.02  # GPU vs CPU round-off


@pytest.fixture(scope="module")
def probabilities(predict: Callable[[np.ndarray], np.ndarray], split_test: Any) -> np.ndarray:
    """The grader's own predictions of the saved model on its split test set."""
    return predict(split_test[0])


@pytest.mark.points(1)
def test_data_scaled(answers: dict[str, Any], n_train: int) -> None:
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
    assert shape == [n_train, 2], (
        f"AY has shape {shape}; it should have one row per training image and 2 columns "
        "(dog, cat): keras.utils.to_categorical(ay, 2)"
    )


@pytest.mark.points(2)
def test_architecture(model: Any) -> None:
    """The network is cnn1.py's, with a 2-class softmax output"""
    shape = tuple(model.inputs[0].shape[1:])
    assert shape == (32, 32, 3), f"the input is {shape}; CIFAR-10 images are (32, 32, 3)"
    expect_layers(model, CNN1, what="your network differs from cnn1.py's")


@pytest.mark.points(1)
def test_history(
    history: dict[str, list[float]],
    profile: GradingProfile,
    artifact: Callable[[str], Path],
    answers: dict[str, Any],
    n_train: int,
) -> None:
    """Trained as cnn1.py: Adam(), cross-entropy, batch 100, EPOCHS epochs, validated on QX"""
    epochs = int(profile.parameters["EPOCHS"])
    expect_history(
        history,
        epochs=epochs,
        fit_hint="compile with metrics=['accuracy'] and pass validation_data=(QX, QY) to model.fit",
    )
    config = compile_config(artifact("model.keras"))
    expect_optimizer(config, "Adam", ADAM, spelled="keras.optimizers.Adam() with its defaults")
    expect_loss(config, "categorical_crossentropy", hint="two one-hot classes")
    rows = answers["y_train_shape"]  # the training images fit saw, as the notebook split them
    n = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], int) else n_train
    steps = optimizer_steps(artifact("model.keras"))
    assert steps is None or steps == math.ceil(n / BATCH) * epochs, (
        f"your model made {steps} training steps where {n} images in batches of {BATCH} for "
        f"{epochs} epochs make {math.ceil(n / BATCH) * epochs}: train once, with "
        f"model.fit(AX, AY, batch_size={BATCH}, epochs=EPOCHS, ...)"
    )


@pytest.mark.points(3)
def test_test_accuracy(
    probabilities: np.ndarray,
    split_test: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
    confusion: Callable[..., None],
) -> None:
    """The trained model tells the grader's test dogs from its test cats"""
    predicted = np.argmax(probabilities, axis=1)
    confusion(predicted, split_test[1], ["dog", "cat"])
    expect_accuracy(
        float(np.mean(predicted == split_test[1])),
        required=threshold("test_accuracy"),
        measure=measure,
        what="your trained model classifies {accuracy} of the grader's test dogs and cats "
        "correctly",
        hint="check the split's new classes (dog 0, cat 1), the scaling, the network, and "
        "train for all EPOCHS epochs",
    )


@pytest.mark.points(2)
def test_examples(
    artifact: Callable[[str], Path], probabilities: np.ndarray, split_test: Any
) -> None:
    """The first 3 dogs and first 3 cats of the test set, with the model's probabilities"""
    try:
        saved = np.load(artifact("examples.npz"), allow_pickle=False)
        images, shown = saved["images"], saved["probabilities"]
    except (OSError, ValueError, EOFError, KeyError):
        fail("examples.npz is not readable: do not edit the locked cell that saves it")
    x_test, y_test = split_test
    order = np.concatenate([np.flatnonzero(y_test == 0)[:3], np.flatnonzero(y_test == 1)[:3]])
    assert images.shape == x_test[order].shape and np.array_equal(images, x_test[order]), (
        "example_indices should point at the first 3 dogs, then the first 3 cats, of the split "
        "test set qx: np.flatnonzero(qy == 0)[:3] and np.flatnonzero(qy == 1)[:3]"
    )
    assert shown.shape == (6, 2) and np.allclose(
        shown, probabilities[order], atol=PROBABILITY_TOLERANCE
    ), (
        "example_probabilities should be model.predict(QX[example_indices]): the softmax "
        "output of your trained model for those 6 scaled images, shape (6, 2)"
    )
