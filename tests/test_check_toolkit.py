"""deepgrade.checks, the toolkit hidden checks are written with: each helper passes what the
exercise asks for, in every spelling Keras saves, and fails anything else with a student-facing
message that names what to fix (and, for hidden inputs, no values)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade import checks
from deepgrade.checks.layers import layer_differences
from deepgrade.checks.predict import predict_and_score, predict_eagerly

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def failure(call: Callable[[], Any]) -> str:
    """The message a helper fails the check with (and that it was a pytest failure)."""
    with pytest.raises(pytest.fail.Exception) as raised:
        call()
    assert raised.value.pytrace is False  # the plugin shows the message, never a traceback
    return str(raised.value.msg)


def test_importing_the_toolkit_loads_no_heavy_module() -> None:
    code = (
        "import sys, deepgrade.checks; "
        "print(sorted({'keras', 'numpy', 'pytest', 'tensorflow'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fail_shows_only_its_message() -> None:
    assert failure(lambda: checks.fail("train for EPOCHS epochs")) == "train for EPOCHS epochs"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0010000000474974513, True),
        (0.001, True),
        (0.0011, False),
        (True, False),
        ("0.001", False),
    ],
)
def test_close_accepts_float32_round_off_only(value: Any, expected: bool) -> None:
    assert checks.close(value, 0.001) is expected


GOOD_HISTORY = {key: [1.0, 0.5, 0.25] for key in ("loss", "accuracy", "val_loss", "val_accuracy")}


def test_history_of_the_right_length_passes() -> None:
    checks.expect_history(GOOD_HISTORY, epochs=3)


@pytest.mark.parametrize(
    ("history", "words"),
    [
        ({k: v for k, v in GOOD_HISTORY.items() if k != "val_loss"}, "has no val_loss: pass X"),
        ({**GOOD_HISTORY, "loss": [1.0]}, "1 / 3 epochs"),
        ({**GOOD_HISTORY, "loss": [1.0, math.nan, 2.0]}, "NaN or infinite"),
    ],
)
def test_history_names_what_is_wrong(history: dict[str, list[float]], words: str) -> None:
    message = failure(lambda: checks.expect_history(history, epochs=3, fit_hint="pass X"))
    assert words in message


def test_accuracy_is_measured_pass_or_fail() -> None:
    seen: dict[str, float] = {}
    checks.expect_accuracy(0.9, required=0.85, measure=seen.__setitem__)
    message = failure(
        lambda: checks.expect_accuracy(0.5, required=0.85, measure=seen.__setitem__, hint="fix")
    )
    assert seen == {"test_accuracy": 0.5}
    assert "50.0%" in message and "85%" in message and message.endswith(": fix")
    failure(lambda: checks.expect_accuracy(math.nan, required=0.1, measure=seen.__setitem__))


@pytest.mark.parametrize(
    ("loss", "name"),
    [
        ("categorical_crossentropy", "categorical_crossentropy"),
        (
            {"class_name": "function", "config": "categorical_crossentropy"},
            "categorical_crossentropy",
        ),
        (
            {"module": "keras.losses", "class_name": "CategoricalCrossentropy", "config": {}},
            "categorical_crossentropy",
        ),
        (
            {"module": "keras.losses", "class_name": "BinaryCrossentropy", "config": {}},
            "binary_crossentropy",
        ),
        (
            {
                "module": "keras.losses",
                "class_name": "CategoricalCrossentropy",
                "config": {"from_logits": True},
            },
            None,
        ),
        (
            {
                "module": "keras.losses",
                "class_name": "CategoricalCrossentropy",
                "config": {"label_smoothing": 0.1},
            },
            None,
        ),
        ({"module": "evil", "class_name": "CategoricalCrossentropy", "config": {}}, None),
        (None, None),
    ],
)
def test_loss_name_reads_every_spelling(loss: Any, name: str | None) -> None:
    assert checks.loss_name(loss) == name


def test_expect_loss_and_optimizer() -> None:
    adam = {"class_name": "Adam", "config": {"learning_rate": 0.0010000000474974513}}
    config = {"optimizer": adam, "loss": "categorical_crossentropy"}
    checks.expect_loss(config, "categorical_crossentropy")
    checks.expect_optimizer(config, "Adam", {"learning_rate": 0.001})
    message = failure(lambda: checks.expect_loss(config, "mean_squared_error", hint="why"))
    assert message == "the loss should be loss='mean_squared_error' (why)"
    message = failure(lambda: checks.expect_optimizer(config, "Adam", {"learning_rate": 0.01}))
    assert "Adam(learning_rate=0.01)" in message and "differs in learning_rate" in message
    message = failure(lambda: checks.expect_optimizer(config, "SGD", {}))
    assert "keras.optimizers.SGD()" in message and "differs" not in message


@pytest.fixture(scope="module")
def small_model() -> Any:
    import keras

    inner = keras.Sequential([keras.layers.Dense(4, activation="relu")])
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.RandomFlip("vertical"),
            keras.layers.Conv2D(2, 3, padding="same"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            inner,
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def not_augmentation(layer: Any) -> bool:
    return not type(layer).__name__.startswith("Random")


EXPECTED = [
    ("Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}),
    ("MaxPooling2D", {"pool_size": (2, 2)}),
    ("Flatten", {}),
    ("Dense", {"units": 4, "activation": "relu"}),
    ("Dense", {"units": 3, "activation": "softmax"}),
]


def test_layers_are_flattened_and_compared(small_model: Any) -> None:
    kinds = [type(layer).__name__ for layer in checks.flat_layers(small_model)]
    assert kinds == ["RandomFlip", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    checks.expect_layers(small_model, EXPECTED, keep=not_augmentation)
    table = checks.layer_table(small_model, keep=not_augmentation)
    assert [row.params for row in table] == [20, 0, 0, 132, 15]
    assert table[0].output_shape == (None, 8, 8, 2) and table[0].kind == "Conv2D"


def test_layer_differences_name_the_layer_and_key(small_model: Any) -> None:
    layers = checks.flat_layers(small_model, keep=not_augmentation)
    wrong = [*EXPECTED[:3], ("Dense", {"units": 5, "activation": "relu"}), EXPECTED[4]]
    assert layer_differences(layers, wrong) == ["layer 4 (Dense): units should be 5, yours is 4"]
    assert layer_differences(layers, wrong, show=False) == ["layer 4 (Dense) has the wrong units"]
    message = failure(lambda: checks.expect_layers(small_model, EXPECTED))  # augmentation kept
    assert message.startswith("your network: the layers are RandomFlip, Conv2D")


def test_predict_or_fail(small_model: Any) -> None:
    x = np.zeros((5, 8, 8, 1), dtype="float32")
    assert checks.predict_or_fail(small_model, x, outputs=3, input_hint="", output_hint="").shape
    message = failure(
        lambda: checks.predict_or_fail(
            small_model, x, outputs=6, input_hint="8x8", output_hint="end with Dense(6)"
        )
    )
    assert message.endswith("it should output 6 values per image: end with Dense(6)")
    message = failure(
        lambda: checks.predict_or_fail(
            small_model,
            np.zeros((5, 12, 12, 1)),
            outputs=3,
            input_hint="8x8x1 images",
            output_hint="",
        )
    )
    assert message.startswith("your saved model could not predict 8x8x1 images (")


def test_predictions_are_model_predicts_in_batches_without_tracing(small_model: Any) -> None:

    x = np.random.default_rng(0).random((70, 8, 8, 1), dtype=np.float32)
    expected = small_model.predict(x, batch_size=32, verbose=0)
    found = predict_eagerly(small_model, x, batch_size=32)  # 3 batches, the last one short
    assert found.shape == (70, 3)
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    assert predict_eagerly(small_model, x[:0]).shape == (0, 3)  # no images: no rows


def test_the_loss_is_evaluates_even_for_a_confident_mistake() -> None:
    """A softmax model sure of a wrong class: evaluate (on TensorFlow) takes the loss from the
    logits, -log p unclipped; the grader's loss must be the same, not the clipped one."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.layers[0].set_weights([np.array([[40.0, 0, 0], [0, 1, 0]]), np.zeros(3)])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 5, dtype="float32")  # 3 sure, 5 unsure
    y = keras.utils.to_categorical([1, 1, 0, 1, 1, 1, 0, 2], 3)  # the 3 sure ones: 2 wrong
    expected = model.evaluate(x, y, batch_size=3, verbose=0)
    loss = keras.losses.get("categorical_crossentropy")
    predicted, found = predict_and_score(model, x, y, loss, batch_size=3)
    assert found is not None and predicted.shape == (8, 3)
    assert found == pytest.approx(expected, rel=1e-5)
    clipped = float(np.mean(keras.ops.convert_to_numpy(loss(y, predicted))))
    if keras.backend.backend() == "tensorflow":  # the others clip in evaluate too
        assert abs(clipped - expected) > 1.0  # what scoring the numpy array would have said
    assert predict_and_score(model, x, y, None)[1] is None  # no loss: none computed
    assert predict_and_score(model, x[:0], y[:0], loss)[1] is None  # no images: no mean


def test_a_model_with_two_outputs_is_told_to_have_one() -> None:
    import keras

    inputs = keras.Input((4,))
    two = keras.Model(inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)])
    message = failure(
        lambda: checks.predict_or_fail(
            two, np.zeros((2, 4)), outputs=3, input_hint="", output_hint="end with Dense(3)"
        )
    )
    assert message == "your saved model has 2 outputs; it should have one: end with Dense(3)"


def test_compile_config_of_a_saved_model(small_model: Any, tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    small_model.save(path)
    config = checks.compile_config(path)
    checks.expect_loss(config, "categorical_crossentropy")
    checks.expect_optimizer(config, "Adam", {"learning_rate": 0.001, "beta_1": 0.9})
    import keras

    uncompiled = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    uncompiled.save(tmp_path / "bare.keras")
    assert "without compile settings" in failure(
        lambda: checks.compile_config(tmp_path / "bare.keras")
    )


def test_layers_of_a_kind_and_a_hint(small_model: Any) -> None:
    convs = checks.flat_layers(small_model, keep=checks.of_kind("Conv2D", "MaxPooling2D"))
    assert [type(layer).__name__ for layer in convs] == ["Conv2D", "MaxPooling2D"]
    wrong = [("Conv2D", {"kernel_size": 5})]
    message = failure(
        lambda: checks.expect_layers(
            small_model, wrong, what="your convolutions", keep=checks.of_kind("Conv2D"), hint="Do X"
        )
    )
    assert (
        message
        == "your convolutions: layer 1 (Conv2D): kernel_size should be 5x5, yours is 3x3. Do X"
    )


def test_a_long_list_of_layer_types_names_the_first_difference(small_model: Any) -> None:
    layers = checks.flat_layers(small_model, keep=not_augmentation)
    long = [*EXPECTED[:3], ("Dense", {}), ("Dense", {}), *[("Dropout", {})] * 10]
    assert layer_differences(layers, long) == [
        "layer 6 is nothing where the exercise has Dropout (5 layers; the exercise has 15)"
    ]
    swapped = [EXPECTED[1], EXPECTED[0], *long[2:]]
    assert layer_differences(layers, swapped)[0].startswith(
        "layer 1 is Conv2D where the exercise has MaxPooling2D"
    )
    assert layer_differences(layers, swapped, show=False) == [
        "it has 5 layers of other types or order than the exercise asks"
    ]


def test_input_shape(small_model: Any) -> None:
    assert checks.input_shape(small_model) == (8, 8, 1)
    assert checks.input_shape(object()) is None
    checks.expect_input(small_model, (8, 8, 1), hint="")
    message = failure(lambda: checks.expect_input(small_model, (9, 9, 1), hint="use Input"))
    assert message == "the network's input is 8x8x1; it should be 9x9x1: use Input"


def test_optimizer_steps_counts_the_batches_of_fit(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.save(tmp_path / "untrained.keras")
    x, y = np.zeros((250, 4)), keras.utils.to_categorical(np.zeros(250), 2)
    model.fit(x, y, batch_size=100, epochs=3, verbose=0)  # ceil(250 / 100) = 3 per epoch
    model.save(tmp_path / "trained.keras")
    uncompiled = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    uncompiled.save(tmp_path / "bare.keras")
    assert checks.optimizer_steps(tmp_path / "trained.keras") == 9
    assert checks.optimizer_steps(tmp_path / "untrained.keras") == 0
    assert checks.optimizer_steps(tmp_path / "bare.keras") is None
