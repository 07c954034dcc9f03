"""The Fashion-MNIST VGG hidden checks, run through run_checks on artifacts built here with Keras.

The grader's test labels are the reference VGG's own predictions on random images (padded and
scaled as the checks do), its last layer tuned so that one class wins on 95% of them: the right
VGG scores 100% without training, a LeNet that always answers that class scores exactly 70%,
and a VGG forced to another class scores almost 0%. Every accuracy outcome is known in advance
and no test waits for a fit.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade.checks.warm import CheckServers
from deepgrade.exercise import ExerciseSpec, load_spec
from deepgrade.grade import gradetime_sources
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckReport

# Keras 3.15 with TensorFlow under numpy 2 warns on every weight save; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPO = Path(__file__).resolve().parents[1]
N_TEST = 60
N_TRAIN = 20  # the grader's training images here: one step of 100 per epoch
MAJORITY = 0.95  # the share of the test labels the constant LeNet gets right
BLOCKS = ((64, 64), (128, 128), (256, 256), (512, 512, 512), (512, 512, 512))
CHECKS = {  # check id -> points: the exercise is worth 20
    "test_padding::test_pad_shape_and_dtype": 1,
    "test_padding::test_pad_values": 2,
    "test_architecture::test_input_and_output": 1,
    "test_architecture::test_conv_layers": 2,
    "test_architecture::test_vgg_layers": 2,
    "test_architecture::test_hidden_width": 2,
    "test_architecture::test_augmentation_present": 1,
    "test_architecture::test_no_flip": 1,
    "test_training::test_optimizer": 1,
    "test_training::test_history": 1,
    "test_training::test_test_accuracy": 4,
    "test_lenet::test_lenet_comparison": 2,
}


def build_vgg(keras: Any, width: int, *, kernel: int = 3, flip: bool = False) -> Any:
    """build_vgg as a student writes it (a 5x5 first kernel and a flip are mistakes)."""
    from keras import layers

    model = keras.Sequential([keras.Input((32, 32, 1))])
    if flip:
        model.add(layers.RandomFlip("horizontal"))
    model.add(layers.RandomTranslation(0.06, 0.06, fill_mode="constant"))
    for block_index, block in enumerate(BLOCKS):
        for index, filters in enumerate(block):
            if index:
                model.add(layers.Dropout(0.3))
            size = kernel if block_index == index == 0 else 3
            model.add(layers.Conv2D(filters // width, size, padding="same", activation="relu"))
            model.add(layers.BatchNormalization())
        model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Flatten())
    model.add(layers.Dense(512 // width, activation="relu"))
    model.add(layers.BatchNormalization())
    model.add(layers.Dropout(0.3))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def constant_lenet(keras: Any, label: int) -> Any:
    """A LeNet that always answers `label` (its last layer's weights zero, one large bias)."""
    from keras import layers

    lenet = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            layers.Conv2D(20, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(40, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(200, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    kernel, bias = lenet.layers[-1].get_weights()
    bias[:] = 0.0
    bias[label] = 50.0
    lenet.layers[-1].set_weights([np.zeros_like(kernel), bias])
    return lenet


def compile_adam(keras: Any, model: Any, optimizer: Any = None, *, steps: int = 0) -> Any:
    """`model` compiled as the notebook does, its optimizer having made `steps` updates (the
    count fit leaves in the saved file; no test here waits for a fit)."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(steps)
    return model


def history(epochs: int) -> dict[str, list[float]]:
    return {key: [0.5] * epochs for key in ("loss", "accuracy", "val_loss", "val_accuracy")}


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """One gzipped IDX file as the Fashion-MNIST project publishes them."""
    import gzip

    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def hidden_inputs(spec: ExerciseSpec) -> Any:
    """The exercise's hidden_module, imported from its file (every exercise has its own)."""
    assert spec.hidden_module is not None
    module_spec = importlib.util.spec_from_file_location("fashion_inputs", spec.hidden_module)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def hidden_padded(spec: ExerciseSpec, top: int = 2, left: int = 2) -> np.ndarray:
    """What pad_images returns for the grade-time images, the original at (top, left)."""
    images = hidden_inputs(spec).images(spec.hidden["pad_seed"], spec.hidden["pad_count"])
    padded = np.zeros((len(images), 32, 32, 1), dtype=np.uint8)
    padded[:, top : top + 28, left : left + 28, 0] = images
    return padded


def write_artifacts(folder: Path, **files: Any) -> Path:
    """answers/history as JSON, models with .save, arrays with np.save; None: not written."""
    folder.mkdir()
    for name, value in files.items():
        if value is None:
            continue
        if name in ("answers", "history"):
            (folder / f"{name}.json").write_text(json.dumps(value))
        elif isinstance(value, np.ndarray):
            np.save(folder / f"{name}.npy", value)
        else:
            value.save(folder / f"{name}.keras")
    return folder


@pytest.fixture(scope="module")
def spec() -> ExerciseSpec:
    return load_spec(REPO / "autograder" / "fashion_vgg")


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, spec: ExerciseSpec, warm_checks: CheckServers
) -> dict[str, Any]:
    """The grader's data and three submissions' artifacts: right, wrong, refused."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("fashion")
    smoke = spec.profile("smoke")
    width, epochs = int(smoke.parameters["WIDTH"]), int(smoke.parameters["EPOCHS"])
    lenet_epochs = int(smoke.parameters["LENET_EPOCHS"])
    assert smoke.thresholds["lenet_test_accuracy"] <= MAJORITY

    rng = np.random.default_rng(0)
    brightness = rng.uniform(0.1, 1.0, size=(N_TEST, 1, 1))
    x_test = (rng.integers(0, 256, size=(N_TEST, 28, 28)) * brightness).astype(np.uint8)
    x_scaled = np.pad(x_test, ((0, 0), (2, 2), (2, 2)))[..., None].astype("float32") / 255
    reference = compile_adam(keras, build_vgg(keras, width), steps=epochs)
    # One class wins on MAJORITY of the images: shift its bias past the others' logits.
    features = keras.Model(reference.inputs, reference.layers[-2].output).predict(
        x_scaled, verbose=0
    )
    # The untrained features barely vary between images: a last kernel scaled to their spread
    # makes the predictions depend on the image (logits spread about 3).
    spread = float(features.std(axis=0).mean())
    kernel = (rng.normal(size=(features.shape[1], 10)) * 3 / spread).astype("float32")
    kernel /= np.sqrt(features.shape[1])
    bias = (-(features.mean(axis=0) @ kernel)).astype("float32")
    logits = features @ kernel + bias
    label = 3
    gap = np.delete(logits, label, axis=1).max(axis=1) - logits[:, label]
    bias[label] += np.quantile(gap, MAJORITY) + 1e-3
    reference.layers[-1].set_weights([kernel, bias])
    predicted = np.argmax(reference.predict(x_scaled, verbose=0), axis=1)
    share = float(np.mean(predicted == label))
    assert 0.9 <= share <= 0.98 and len(set(predicted)) > 1

    data = root / "data"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte.gz", x_test[:N_TRAIN], 2051)
    write_idx(data / "train-labels-idx1-ubyte.gz", np.arange(N_TRAIN) % 10, 2049)
    write_idx(data / "t10k-images-idx3-ubyte.gz", x_test, 2051)
    write_idx(data / "t10k-labels-idx1-ubyte.gz", predicted, 2049)

    good = write_artifacts(
        root / "good",
        answers={"vgg_test_accuracy": 1.0, "lenet_test_accuracy": share},
        history=history(epochs),
        model=reference,
        lenet=compile_adam(keras, constant_lenet(keras, label), steps=lenet_epochs),
        hidden_padded=hidden_padded(spec),
        hidden_vgg=build_vgg(keras, int(spec.hidden["width"])),
    )
    # Trained otherwise: the VGG for 3 x EPOCHS epochs (its history rewritten to EPOCHS), the
    # LeNet for one epoch too many; everything else is the reference.
    reference.optimizer.iterations.assign(3 * epochs)
    retrained = write_artifacts(
        root / "retrained",
        answers={"vgg_test_accuracy": 1.0, "lenet_test_accuracy": share},
        history=history(epochs),
        model=reference,
        lenet=compile_adam(keras, constant_lenet(keras, label), steps=lenet_epochs + 1),
        hidden_padded=hidden_padded(spec),
        hidden_vgg=build_vgg(keras, int(spec.hidden["width"])),
    )

    # Wrong: padded on one side, a 5x5 kernel and a flip, SGD, forced to a rare class, short
    # training, build_vgg ignoring its width, a LeNet accuracy copied from the course.
    wrong_model = build_vgg(keras, width, kernel=5, flip=True)
    rare = int(np.argmin(np.bincount(predicted, minlength=10)))
    kernel, bias = wrong_model.layers[-1].get_weights()
    bias[rare] = 1e4
    wrong_model.layers[-1].set_weights([kernel, bias])
    wrong = write_artifacts(
        root / "wrong",
        answers={"vgg_test_accuracy": 0.9, "lenet_test_accuracy": 0.91},
        history=history(2),
        model=compile_adam(keras, wrong_model, keras.optimizers.SGD(), steps=2),
        lenet=compile_adam(keras, constant_lenet(keras, label), steps=lenet_epochs),
        hidden_padded=hidden_padded(spec, top=4, left=4),
        hidden_vgg=build_vgg(keras, width),
    )

    # Refused: a Lambda layer in model.keras; answers, padded images, hidden model missing.
    lam = keras.Sequential([keras.Input((32, 32, 1)), layers.Lambda(lambda x: x * 1.0)])
    for layer in reference.layers:
        lam.add(layer)
    refused = write_artifacts(
        root / "refused",
        history=history(epochs),
        model=compile_adam(keras, lam),
        lenet=compile_adam(keras, constant_lenet(keras, label)),
        hidden_padded=hidden_padded(spec).astype(np.float32),
    )
    files = [data / name for name in sorted(p.name for p in data.iterdir())]
    return {
        "data": files,
        "good": good,
        "wrong": wrong,
        "refused": refused,
        "retrained": retrained,
        "root": root,
        "checks": warm_checks,  # run_checks' contract, on a warm server (tests/conftest.py)
        "rare_share": float(np.mean(predicted == rare)),
        "share": share,
    }


def grade(spec: ExerciseSpec, world: dict[str, Any], name: str, *, unsafe: bool) -> CheckReport:
    workdir = world["root"] / f"work-{name}-{unsafe}"
    profile = resolve_profile(spec, "smoke", data_files=world["data"], model_files=())
    return world["checks"].run_checks(spec, profile, world[name], workdir=workdir, unsafe=unsafe)


def messages(report: CheckReport) -> dict[str, str]:
    return {check.check_id.split("::")[1]: check.message for check in report.checks}


def passed(report: CheckReport) -> list[str]:
    return sorted(check.check_id for check in report.checks if check.passed)


def test_fashion_checks_are_worth_20_points(spec: ExerciseSpec) -> None:
    from deepgrade.checks.runner import static_checks

    found = {check.check_id: check.max_points for check in static_checks(spec.directory)}
    assert found == CHECKS
    assert sum(found.values()) == 20


@pytest.mark.parametrize("unsafe", [True, False], ids=["unsafe", "sandboxed"])
def test_reference_submission_scores_full_marks(
    spec: ExerciseSpec, world: dict[str, Any], unsafe: bool
) -> None:
    report = grade(spec, world, "good", unsafe=unsafe)
    assert report.error is None, report.error
    assert {c.check_id: c.message for c in report.checks if not c.passed} == {}
    assert (report.points, report.max_points) == (20.0, 20.0)
    assert report.measurements["test_accuracy"] == 1.0
    assert report.measurements["lenet_test_accuracy"] == pytest.approx(world["share"])


def test_wrong_submission_fails_exactly_the_wrong_parts(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(spec, world, "wrong", unsafe=True)
    assert report.error is None, report.error
    assert passed(report) == [
        "test_architecture::test_augmentation_present",
        "test_architecture::test_input_and_output",
        "test_architecture::test_vgg_layers",
        "test_padding::test_pad_shape_and_dtype",
    ]
    said = messages(report)
    assert said["test_pad_values"].startswith(
        "the original pixels start at row 4 and column 4 of the padded image"
    )
    assert said["test_conv_layers"].startswith(
        "your convolutions: layer 1 (Conv2D): kernel_size should be 3x3, yours is 5x5"
    )
    assert said["test_no_flip"].startswith(
        "your augmentation flips the images (RandomFlip, mode horizontal)"
    )
    assert "the optimizer should be keras.optimizers.Adam()" in said["test_optimizer"]
    assert said["test_history"].startswith("the history has 2 epochs")
    assert said["test_test_accuracy"].startswith(
        f"your trained VGG classifies {world['rare_share']:.1%} of the grader's test images"
    )
    assert said["test_lenet_comparison"].startswith("the LeNet accuracy you reported (0.91)")
    hidden = said["test_hidden_width"]
    assert hidden.startswith("with another width, build_vgg returned convolutions")
    # The hidden width never shows: the only digits are 512 // width's and the layer numbers.
    assert not re.search(r"\d", re.sub(r"512|Conv2D|layer \d+ |and \d+ more", "", hidden))


def test_refused_model_and_missing_artifacts_fail_closed(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(spec, world, "refused", unsafe=False)
    assert report.error is None, report.error
    assert passed(report) == [
        "test_padding::test_pad_values",  # the values are right, only the dtype is not
    ]
    said = messages(report)
    refused = (
        "this check could not run: InputError (model.keras: the saved model uses a Lambda "
        "layer, which runs code the grader cannot check; build the model from Keras' built-in "
        "layers only)"
    )
    for check in ("test_conv_layers", "test_test_accuracy", "test_optimizer", "test_history"):
        assert said[check] == refused
    assert said["test_pad_shape_and_dtype"].startswith("given uint8 images, pad_images returned")
    assert said["test_lenet_comparison"] == (
        "missing artifact answers.json: the locked cell that saves it did not run"
    )
    assert said["test_hidden_width"].startswith(
        "the grader called build_vgg with another width and got no model back"
    )


def test_training_steps_tell_the_epochs_of_both_networks(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    """The optimizer's step count in each saved model is what EPOCHS (LENET_EPOCHS) epochs of
    the grader's training images in batches of 100 make; a history rewritten to look right
    does not hide a VGG trained three times as long."""
    report = grade(spec, world, "retrained", unsafe=True)
    assert report.error is None, report.error
    failed = sorted(set(CHECKS) - set(passed(report)))
    assert failed == ["test_lenet::test_lenet_comparison", "test_training::test_history"]
    smoke = spec.profile("smoke").parameters
    epochs, lenet_epochs = int(smoke["EPOCHS"]), int(smoke["LENET_EPOCHS"])
    said = messages(report)
    assert said["test_history"].startswith(
        f"your VGG's optimizer made {3 * epochs} training steps where {epochs} epochs of the "
        f"training images in batches of 100 make {epochs}"
    )
    assert said["test_lenet_comparison"].startswith(
        f"your LeNet's optimizer made {lenet_epochs + 1} training steps where LENET_EPOCHS = "
        f"{lenet_epochs} epochs of the training images in batches of 100 make {lenet_epochs}"
    )


def test_gradetime_cell_pads_the_hidden_modules_images(spec: ExerciseSpec, tmp_path: Path) -> None:
    """The grade-time cell calls pad_images on hidden_inputs.images of the [hidden] values (the
    images the checks rebuild), made in the grader's notebook from the module itself."""
    loader, pad_cell, _ = gradetime_sources(spec)
    seen: list[np.ndarray] = []

    def pad_images(images: np.ndarray) -> np.ndarray:
        seen.append(images)
        return np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None]

    namespace = {"ARTIFACT_DIR": str(tmp_path), "pad_images": pad_images}
    for source in (loader, pad_cell):
        exec(compile(source, "gradetime", "exec"), namespace)
    assert np.array_equal(np.load(tmp_path / "hidden_padded.npy"), hidden_padded(spec))
    assert seen[0].dtype == np.uint8 and seen[0].min() > 0  # no black pixel to hide a shift
