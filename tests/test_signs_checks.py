"""The SIGNS hidden checks, run through run_checks on artifacts built here with Keras.

The grader's test labels are the reference model's own predictions on random images, so the
right model scores 100% without training and a model forced to one class scores almost 0%:
every accuracy outcome is known in advance, and no test waits for a fit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade.checks.warm import CheckServers
from deepgrade.exercise import ExerciseSpec, load_spec
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckReport

# Keras 3.15 with TensorFlow under numpy 2 warns on every weight save; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPO = Path(__file__).resolve().parents[1]
PUBLIC_N = (8, 16, 32, 64, 32, 6)
N_TRAIN, N_TEST = 1080, 120
CHECKS = {  # check id -> points: the SIGNS exercise is worth 25
    "test_activations::test_activation_model_outputs": 2,
    "test_activations::test_expand_dims": 1,
    "test_answers::test_data_scaled": 1,
    "test_answers::test_labels_one_hot": 1,
    "test_answers::test_params_per_layer": 2,
    "test_architecture::test_layer_types_and_order": 2,
    "test_architecture::test_conv_layers": 2,
    "test_architecture::test_pool_layers": 1,
    "test_architecture::test_dense_layers": 1,
    "test_architecture::test_output_shapes": 1,
    "test_architecture::test_total_params": 1,
    "test_architecture::test_hidden_build_model": 2,
    "test_training::test_optimizer": 1,
    "test_training::test_history": 1,
    "test_training::test_evaluation": 2,
    "test_training::test_test_accuracy": 3,
    "test_training::test_predictions": 1,
}
GOOD_ANSWERS = {
    "x_train_range": [0.0, 1.0],
    "y_train_shape": [960, 6],
    "params_per_layer": {
        "conv1": 224,
        "conv2": 1168,
        "conv3": 4640,
        "dense1": 73792,
        "dense2": 2080,
        "dense3": 198,
    },
    "total_params": 82102,
    "img_tensor_shape": [1, 64, 64, 3],
    "first_activation_shape": [1, 62, 62, 8],
}


def build(keras: Any, n: Sequence[int], padding: str = "valid", regularizer: Any = None) -> Any:
    """build_model as a student writes it (padding is the mistake some make; an L2 penalty on
    the dense layers, a choice some make)."""
    from keras import layers

    n1, n2, n3, n4, n5, n6 = n
    model = keras.Sequential([keras.Input((64, 64, 3))])
    for filters in (n1, n2, n3):
        model.add(layers.Conv2D(filters, (3, 3), padding=padding, activation="relu"))
        model.add(layers.MaxPooling2D((2, 2), strides=2))
    model.add(layers.Flatten())
    model.add(layers.Dense(n4, activation="relu", kernel_regularizer=regularizer))
    model.add(layers.Dense(n5, activation="relu", kernel_regularizer=regularizer))
    model.add(layers.Dense(n6, activation="softmax", kernel_regularizer=regularizer))
    return model


def compile_adam(keras: Any, model: Any, learning_rate: float = 0.001, loss: str = "") -> Any:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999),
        loss=loss or "categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def evaluation(keras: Any, model: Any, sets: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Exercise 4's answer as the locked cell saves it: [loss, accuracy] of each set."""
    return {
        name: [float(v) for v in model.evaluate(x, keras.utils.to_categorical(y, 6), verbose=0)]
        for name, (x, y) in sets.items()
    }


def history(epochs: int) -> dict[str, list[float]]:
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    return {key: [0.5] * epochs for key in keys}


def write_artifacts(
    folder: Path,
    *,
    answers: dict[str, Any] | None,
    hist: dict[str, list[float]],
    model: Any,
    predictions: np.ndarray | None,
    activation_model: Any,
    hidden_model: Any | None,
) -> Path:
    folder.mkdir()
    if answers is not None:
        (folder / "answers.json").write_text(json.dumps(answers))
    (folder / "history.json").write_text(json.dumps(hist))
    model.save(folder / "model.keras")
    if predictions is not None:
        np.save(folder / "predictions.npy", predictions)
    activation_model.save(folder / "activation_model.keras")
    if hidden_model is not None:
        hidden_model.save(folder / "hidden_model.keras")
    return folder


@pytest.fixture(scope="module")
def spec() -> ExerciseSpec:
    return load_spec(REPO / "autograder" / "signs_cnn")


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, spec: ExerciseSpec, warm_checks: CheckServers
) -> dict[str, Any]:
    """The grader's data and three submissions' artifacts: right, wrong, refused."""
    import h5py
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("signs")
    rng = np.random.default_rng(0)
    x_test = rng.integers(0, 256, size=(N_TEST, 64, 64, 3), dtype=np.uint8)
    reference = compile_adam(keras, build(keras, PUBLIC_N))
    predicted = np.argmax(reference.predict(x_test.astype("float32") / 255, verbose=0), axis=1)
    data = root / "data"
    data.mkdir()
    with h5py.File(data / "train_signs.h5", "w") as train:
        train["train_set_x"] = np.zeros((N_TRAIN, 64, 64, 3), dtype=np.uint8)
        train["train_set_y"] = np.arange(N_TRAIN, dtype=np.int64) % 6
        train["list_classes"] = np.arange(6, dtype=np.int64)
    with h5py.File(data / "test_signs.h5", "w") as test:
        test["test_set_x"] = x_test
        test["test_set_y"] = predicted.astype(np.int64)
        test["list_classes"] = np.arange(6, dtype=np.int64)
    epochs = int(spec.profile("smoke").parameters["EPOCHS"])
    hidden_n = [int(v) for v in spec.hidden["build_model_n"]]

    def activations(model: Any, count: int = 6) -> Any:
        return keras.Model(model.inputs, [layer.output for layer in model.layers[:count]])

    train_x = np.zeros((N_TRAIN, 64, 64, 3), dtype=np.float32)
    train_y = np.arange(N_TRAIN, dtype=np.int64) % 6
    scaled = x_test.astype("float32") / 255
    sets = {
        "train": (train_x[:960], train_y[:960]),
        "val": (train_x[960:], train_y[960:]),
        "test": (scaled, predicted),
    }
    good_answers = dict(GOOD_ANSWERS, evaluation=evaluation(keras, reference, sets))
    good = write_artifacts(
        root / "good",
        answers=good_answers,
        hist=history(epochs),
        model=reference,
        predictions=predicted.astype(np.int64),
        activation_model=activations(reference),
        hidden_model=build(keras, hidden_n),
    )

    # Wrong: 'same' padding, lr 0.01 and MSE, forced to the rarest class, short training...
    same = compile_adam(keras, build(keras, PUBLIC_N, "same"), 0.01, "mean_squared_error")
    rarest = int(np.argmin(np.bincount(predicted, minlength=6)))
    kernel, bias = same.layers[-1].get_weights()
    bias[rarest] = 1e4
    same.layers[-1].set_weights([kernel, bias])
    same_predicted = np.argmax(same.predict(x_test.astype("float32") / 255, verbose=0), axis=1)
    wrong_answers = dict(
        good_answers,
        evaluation={"train": 1.0, "val": 0.9, "test": 0.9},  # accuracies alone, no loss
        x_train_range=[0.0, 255.0],
        y_train_shape=[960],
        params_per_layer=dict(GOOD_ANSWERS["params_per_layer"], conv2=1152, dense1=73728),
        img_tensor_shape=[64, 64, 3],
    )
    wrong = write_artifacts(
        root / "wrong",
        answers=wrong_answers,
        hist=history(3),
        model=same,
        predictions=same_predicted.astype(np.int64),
        activation_model=activations(same, 3),
        hidden_model=build(keras, PUBLIC_N),  # build_model ignored its arguments
    )

    # Misscaled: right in everything but Exercise 4, which evaluated X_test divided by 127.5.
    misscaled_sets = dict(sets, test=(x_test.astype("float32") / 127.5, predicted))
    misscaled = write_artifacts(
        root / "misscaled",
        answers=dict(good_answers, evaluation=evaluation(keras, reference, misscaled_sets)),
        hist=history(epochs),
        model=reference,
        predictions=predicted.astype(np.int64),
        activation_model=activations(reference),
        hidden_model=build(keras, hidden_n),
    )

    # Regularized: the reference's weights under an L2 penalty, which evaluate adds to the loss.
    penalized = compile_adam(keras, build(keras, PUBLIC_N, regularizer=keras.regularizers.L2(0.1)))
    penalized.set_weights(reference.get_weights())
    regularized = write_artifacts(
        root / "regularized",
        answers=dict(good_answers, evaluation=evaluation(keras, penalized, sets)),
        hist=history(epochs),
        model=penalized,
        predictions=predicted.astype(np.int64),
        activation_model=activations(penalized),
        hidden_model=build(keras, hidden_n),
    )

    # Refused: a Lambda layer in model.keras; answers, predictions, hidden model missing.
    lam = keras.Sequential([keras.Input((64, 64, 3)), layers.Lambda(lambda x: x * 1.0)])
    for layer in reference.layers:
        lam.add(layer)
    refused = write_artifacts(
        root / "refused",
        answers=None,
        hist=history(epochs),
        model=compile_adam(keras, lam),
        predictions=None,
        activation_model=activations(reference),
        hidden_model=None,
    )
    return {
        "data": [data / "train_signs.h5", data / "test_signs.h5"],
        "good": good,
        "misscaled": misscaled,
        "regularized": regularized,
        "wrong": wrong,
        "refused": refused,
        "root": root,
        "checks": warm_checks,  # run_checks' contract, on a warm server (tests/conftest.py)
        "rarest_share": float(np.mean(predicted == rarest)),
    }


def grade(
    spec: ExerciseSpec, world: dict[str, Any], name: str, *, unsafe: bool, tag: str = ""
) -> CheckReport:
    workdir = world["root"] / f"work-{name}-{tag or unsafe}"
    profile = resolve_profile(spec, "smoke", data_files=world["data"], model_files=())
    return world["checks"].run_checks(spec, profile, world[name], workdir=workdir, unsafe=unsafe)


def outcome(report: CheckReport) -> dict[str, bool]:
    return {check.check_id: check.passed for check in report.checks}


def messages(report: CheckReport) -> dict[str, str]:
    return {check.check_id.split("::")[1]: check.message for check in report.checks}


def test_signs_checks_are_worth_25_points(spec: ExerciseSpec) -> None:
    from deepgrade.checks.runner import static_checks

    found = {check.check_id: check.max_points for check in static_checks(spec.directory)}
    assert found == CHECKS
    assert sum(found.values()) == 25


@pytest.mark.parametrize("unsafe", [True, False], ids=["unsafe", "sandboxed"])
def test_reference_submission_scores_full_marks(
    spec: ExerciseSpec, world: dict[str, Any], unsafe: bool
) -> None:
    report = grade(spec, world, "good", unsafe=unsafe)
    assert report.error is None, report.error
    failed = {c.check_id: c.message for c in report.checks if not c.passed}
    assert failed == {}
    assert {c.check_id: c.max_points for c in report.checks} == CHECKS
    assert (report.points, report.max_points) == (25.0, 25.0)


def test_wrong_submission_fails_exactly_the_wrong_parts(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(spec, world, "wrong", unsafe=True)
    assert report.error is None, report.error
    passed = sorted(check for check, ok in outcome(report).items() if ok)
    assert passed == [
        "test_architecture::test_dense_layers",
        "test_architecture::test_layer_types_and_order",
        "test_architecture::test_pool_layers",
        "test_training::test_predictions",
    ]
    assert report.points == 5.0
    said = messages(report)
    assert (
        "layer 1 (Conv2D): padding should be 'valid', yours is 'same'" in said["test_conv_layers"]
    )
    assert "your layers output 64x64x8, 32x32x8" in said["test_output_shapes"]
    assert said["test_total_params"].startswith("your network has 139,446 parameters")
    assert "yours differs in learning_rate" in said["test_optimizer"]
    assert said["test_history"].startswith("the history has 3 epochs")
    accuracy = f"{world['rarest_share']:.1%}"
    required = (
        load_spec(REPO / "autograder" / "signs_cnn").profile("smoke").thresholds["test_accuracy"]
    )
    assert said["test_test_accuracy"].startswith(
        f"your trained model classifies {accuracy} of the grader's test images correctly, "
        f"below the required {required:.0%}"
    )
    assert said["test_data_scaled"].startswith("X_train's values go from 0 to 255")
    assert said["test_evaluation"].startswith(
        "the evaluation of the training, validation, test set is not [loss, accuracy]"
    )
    assert "[960, 6]" in said["test_labels_one_hot"]
    assert said["test_params_per_layer"] == (
        "the count for conv2, dense1 is wrong or missing: a Conv2D layer has k*k*c_in*filters"
        " + filters (k: kernel size, c_in: input channels); a Dense layer has (inputs + 1) *"
        " units (inputs: the previous layer's output size)"
    )
    assert said["test_activation_model_outputs"].startswith(
        "your activation model has 3 outputs shaped 64x64x8, 32x32x8, 32x32x16"
    )
    assert said["test_expand_dims"].startswith("img_tensor has shape [64, 64, 3]")
    hidden = said["test_hidden_build_model"]
    assert hidden.startswith(
        "with other arguments, build_model's network differs: layer 1 (Conv2D) has the wrong "
        "filters"
    )
    # The hidden n-values never show: no digit but n1..n6, Conv2D and how many layers differ.
    assert not re.search(r"\d", re.sub(r"\bn[1-6]\b|Conv2D|layer \d+ |and \d+ more", "", hidden))


def test_evaluation_of_misscaled_test_images_loses_only_its_check(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    """X_test / 127.5 leaves the argmax of a ReLU network nearly as it is; the loss shows it."""
    report = grade(spec, world, "misscaled", unsafe=True)
    assert report.error is None, report.error
    failed = {c.check_id.split("::")[1]: c.message for c in report.checks if not c.passed}
    assert list(failed) == ["test_evaluation"]
    assert failed["test_evaluation"].startswith("your evaluation of the test set (loss ")
    assert "divided by 255" in failed["test_evaluation"]
    assert report.points == 23.0


def test_the_evaluation_loss_counts_the_models_regularization_as_evaluate_does(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    answers = json.loads((world["regularized"] / "answers.json").read_text())
    plain = json.loads((world["good"] / "answers.json").read_text())
    assert answers["evaluation"]["test"][0] > 1.1 * plain["evaluation"]["test"][0]  # material
    report = grade(spec, world, "regularized", unsafe=True)
    assert report.error is None, report.error
    assert outcome(report)["test_training::test_evaluation"], messages(report)["test_evaluation"]


def test_refused_model_and_missing_artifacts_fail_closed(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(spec, world, "refused", unsafe=False)
    assert report.error is None, report.error
    passed = sorted(check for check, ok in outcome(report).items() if ok)
    assert passed == [
        "test_activations::test_activation_model_outputs",
        "test_training::test_history",
    ]
    said = messages(report)
    refused = (
        "this check could not run: InputError (model.keras: the saved model uses a Lambda "
        "layer, which runs code the grader cannot check; build the model from Keras' built-in "
        "layers only)"
    )
    for check in ("test_layer_types_and_order", "test_test_accuracy", "test_optimizer"):
        assert said[check] == refused
    assert said["test_data_scaled"] == (
        "missing artifact answers.json: the locked cell that saves it did not run"
    )
    assert said["test_hidden_build_model"].startswith(
        "the grader called build_model with other arguments and got no model back"
    )
