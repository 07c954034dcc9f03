"""The cat/dog hidden checks, run through run_checks on artifacts built here with Keras.

The grader's test batch is tiny: random images whose labels (dog 5 / cat 3) are an untrained
cnn1 network's own predictions, with a few other classes mixed in, so that network scores 100%
without training and the same network with its two outputs swapped scores 0%. The grade-time
cells run here for real (exec'd with the reference solution's split_cats_dogs and classify_file,
or flawed ones, and the exercise's hidden_inputs.py as `_dg_inputs`), so a full score also
proves that the cells and the checks build the same hidden inputs.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from deepgrade import notebooks
from deepgrade.checks import optimizer_steps
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
EXERCISE = REPO / "autograder" / "catdog_split"
SOLUTION = REPO / "solutions" / "catdog_split" / "catdog_split.ipynb"
N_TRAIN_PER_BATCH, N_TEST = 20, 300
CHECKS = {  # check id -> points: the exercise is worth 18
    "test_classify::test_classify_file": 3,
    "test_split::test_split_keeps_dogs_and_cats": 1,
    "test_split::test_split_labels": 2,
    "test_split::test_split_order": 2,
    "test_split::test_split_sizes": 1,
    "test_training::test_data_scaled": 1,
    "test_training::test_architecture": 2,
    "test_training::test_history": 1,
    "test_training::test_test_accuracy": 3,
    "test_training::test_examples": 2,
}


def hidden_inputs() -> ModuleType:
    """The exercise's hidden_inputs.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("catdog_hidden", EXERCISE / "hidden_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def solution_functions() -> dict[str, Any]:
    """split_cats_dogs and classify_file as the reference solution defines them."""
    import cv2
    import keras

    namespace: dict[str, Any] = {"np": np, "keras": keras, "cv2": cv2}
    for cell in notebooks.read_notebook(SOLUTION).cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in ("split", "classify_file"):
            exec(cell.source, namespace)  # our own reference solution
    return {name: namespace[name] for name in ("split_cats_dogs", "classify_file")}


def cnn1(keras: Any, dropout: float = 0.25, optimizer: str = "Adam") -> Any:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(20, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(40, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dropout(dropout),
            layers.Dense(1000, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=getattr(keras.optimizers, optimizer)(), loss="categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)  # saved as after training: loads cleanly
    return model


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A CIFAR-10 python batch: rows of 1024 R, 1024 G, 1024 B values."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    content = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": rows,
        b"filenames": [f"{i}.png".encode() for i in range(len(images))],
    }
    with path.open("wb") as handle:
        pickle.dump(content, handle, protocol=2)


def run_gradetime(
    spec: ExerciseSpec, artifacts: Path, data: Path, **functions: Callable[..., Any]
) -> None:
    """The grade-time cells, exec'd as the grader's notebook would run them."""
    namespace: dict[str, Any] = {"ARTIFACT_DIR": str(artifacts), "DATA_DIR": str(data)}
    namespace.update(functions)
    for source in gradetime_sources(spec):
        exec(source, namespace)  # the exercise's own grade-time cells


@pytest.fixture(scope="module")
def spec() -> ExerciseSpec:
    return load_spec(EXERCISE)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, spec: ExerciseSpec, warm_checks: CheckServers
) -> dict[str, Any]:
    """The grader's data and three submissions' artifacts: right, wrong, broken."""
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("catdog")
    rng = np.random.default_rng(0)
    model = cnn1(keras)
    x_test = rng.integers(0, 256, size=(N_TEST, 32, 32, 3), dtype=np.uint8)
    x_test = (x_test * rng.uniform(0.2, 1.0, size=(N_TEST, 1, 1, 1))).astype(np.uint8)
    scaled = x_test.astype("float32") / 255 - 0.5
    # Balance the untrained network: shift the output bias so half the images are dogs.
    probabilities = model.predict(scaled, verbose=0)
    ratio = float(np.median(np.log(probabilities[:, 0]) - np.log(probabilities[:, 1])))
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + np.array([-ratio, ratio]) / 2])
    predicted = np.argmax(model.predict(scaled, verbose=0), axis=1)
    y_test = np.where(predicted == 0, 5, 3)
    others = rng.choice(N_TEST, size=N_TEST // 5, replace=False)
    y_test[others] = rng.choice([0, 1, 2, 4, 6, 7, 8, 9], size=len(others))
    data = root / "data"
    data.mkdir()
    y_train = rng.integers(0, 10, size=5 * N_TRAIN_PER_BATCH)
    for i in range(5):
        part = slice(i * N_TRAIN_PER_BATCH, (i + 1) * N_TRAIN_PER_BATCH)
        images = rng.integers(0, 256, size=(N_TRAIN_PER_BATCH, 32, 32, 3), dtype=np.uint8)
        write_batch(data / f"data_batch_{i + 1}", images, y_train[part])
    write_batch(data / "test_batch", x_test, y_test)
    with (data / "batches.meta").open("wb") as handle:
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog"]
        names += [b"horse", b"ship", b"truck"]
        pickle.dump({b"label_names": names, b"num_cases_per_batch": 20, b"num_vis": 3072}, handle)

    keep = (y_test == 5) | (y_test == 3)
    n_train, n_test = int(np.sum((y_train == 5) | (y_train == 3))), int(np.sum(keep))
    split_x, split_y = x_test[keep], np.where(y_test[keep] == 5, 0, 1)
    order = np.concatenate([np.flatnonzero(split_y == 0)[:3], np.flatnonzero(split_y == 1)[:3]])
    epochs = int(spec.profile("smoke").parameters["EPOCHS"])
    good_answers = {
        "train_split_shape": [n_train, 32, 32, 3],
        "test_split_shape": [n_test, 32, 32, 3],
        "x_train_range": [-0.5, 0.5],
        "y_train_shape": [n_train, 2],
    }
    reference = solution_functions()
    load = functools.lru_cache(keras.saving.load_model)  # one load, not one per image file

    def write(
        name: str,
        *,
        answers: dict[str, Any],
        epochs: int,
        saved: Any,
        shown: Any,
        split: Callable[..., Any],
        classify: Callable[..., Any],
    ) -> Path:
        folder = root / name
        folder.mkdir()
        (folder / "answers.json").write_text(json.dumps(answers))
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        (folder / "history.json").write_text(json.dumps({k: [0.5] * epochs for k in keys}))
        saved.optimizer.iterations.assign(math.ceil(n_train / 100) * epochs)  # batches of 100
        saved.save(folder / "model.keras")
        np.savez(folder / "examples.npz", images=split_x[order], probabilities=shown)
        run_gradetime(spec, folder, data, split_cats_dogs=split, classify_file=classify)
        return folder

    def classify(model_path: str, image_path: str) -> str:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(keras.saving, "load_model", load)
            return reference["classify_file"](model_path, image_path)

    good = write(
        "good",
        answers=good_answers,
        epochs=epochs,
        saved=model,
        shown=model.predict(split_x[order].astype("float32") / 255 - 0.5, verbose=0),
        split=reference["split_cats_dogs"],
        classify=classify,
    )

    # Wrong: swapped outputs (0% accuracy), dogs first with swapped labels, unscaled BGR...
    flipped = cnn1(keras)
    kernel, bias = model.layers[-1].get_weights()
    flipped.set_weights([*model.get_weights()[:-2], kernel[:, ::-1], bias[::-1]])

    def dogs_first_swapped(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dogs, cats = x[y == 5], x[y == 3]
        return np.concatenate([dogs, cats]), np.array([1] * len(dogs) + [0] * len(cats))

    def names_swapped(model_path: str, image_path: str) -> str:
        return {"dog": "cat", "cat": "dog"}[classify(model_path, image_path)]

    wrong_answers = dict(
        good_answers,
        test_split_shape=[n_test + 1, 32, 32, 3],
        x_train_range=[0.0, 1.0],
    )
    wrong = write(
        "wrong",
        answers=wrong_answers,
        epochs=1,
        saved=flipped,
        shown=np.tile(np.float32([1.0, 0.0]), (6, 1)),
        split=dogs_first_swapped,
        classify=names_swapped,
    )

    # Broken: the split raises without cats, classify_file returns the class number.
    def no_cats_error(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not np.any(np.asarray(y) == 3):
            raise ValueError("no cats")
        return reference["split_cats_dogs"](x, y)

    broken = write(
        "broken",
        answers=good_answers,
        epochs=epochs,
        saved=model,
        shown=model.predict(split_x[order].astype("float32") / 255 - 0.5, verbose=0),
        split=no_cats_error,
        classify=lambda model_path, image_path: 0,
    )
    return {
        "data": [data / name for name in sorted(p.name for p in data.iterdir())],
        "good": good,
        "wrong": wrong,
        "broken": broken,
        "root": root,
        "checks": warm_checks,  # run_checks' contract, on a warm server (tests/conftest.py)
    }


def grade(spec: ExerciseSpec, world: dict[str, Any], name: str, *, unsafe: bool) -> CheckReport:
    workdir = world["root"] / f"work-{name}-{unsafe}"
    profile = resolve_profile(spec, "smoke", data_files=world["data"], model_files=())
    return world["checks"].run_checks(spec, profile, world[name], workdir=workdir, unsafe=unsafe)


def messages(report: CheckReport) -> dict[str, str]:
    return {check.check_id.split("::")[1]: check.message for check in report.checks}


def passed(report: CheckReport) -> list[str]:
    return sorted(check.check_id for check in report.checks if check.passed)


def test_catdog_checks_are_worth_18_points(spec: ExerciseSpec) -> None:
    from deepgrade.checks.runner import static_checks

    found = {check.check_id: check.max_points for check in static_checks(spec.directory)}
    assert found == CHECKS
    assert sum(found.values()) == 18


@pytest.mark.parametrize("seed", [0, 4242])
def test_hidden_split_cases_cover_the_edge_cases(seed: int) -> None:
    cases = hidden_inputs().split_cases(seed)
    assert list(cases) == ["mixed", "no_cats", "no_dogs", "alternating", "neither"]
    for x, y in cases.values():  # every image unique, so the checks can find each one
        assert len({image.tobytes() for image in x}) == len(y) == len(x)
    counts = {name: (int(np.sum(y == 5)), int(np.sum(y == 3))) for name, (_, y) in cases.items()}
    assert counts["no_cats"][1] == counts["no_dogs"][0] == 0 and counts["neither"] == (0, 0)
    assert min(counts["mixed"]) > 0 and min(counts["no_cats"][0], counts["no_dogs"][1]) > 0


def test_reference_submission_scores_full_marks(spec: ExerciseSpec, world: dict[str, Any]) -> None:
    report = grade(spec, world, "good", unsafe=True)
    assert report.error is None, report.error
    assert {c.check_id: c.message for c in report.checks if not c.passed} == {}
    assert (report.points, report.max_points) == (18.0, 18.0)
    assert report.measurements == {"test_accuracy": 1.0}


@pytest.mark.usefixtures("bwrap")
def test_reference_submission_scores_full_marks_sandboxed(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(spec, world, "good", unsafe=False)
    assert report.error is None, report.error
    assert (report.points, report.max_points) == (18.0, 18.0)


def test_wrong_submission_fails_exactly_the_wrong_parts(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(spec, world, "wrong", unsafe=True)
    assert report.error is None, report.error
    assert passed(report) == [
        "test_split::test_split_keeps_dogs_and_cats",
        "test_training::test_architecture",
    ]
    said = messages(report)
    assert "got the wrong new class: dogs (class 5) become class 0" in said["test_split_labels"]
    assert said["test_split_order"].startswith("on 2 of the grader's label arrays the kept")
    assert said["test_split_sizes"].startswith("after the split the test images have shape")
    assert said["test_data_scaled"].startswith("AX's values go from 0 to 1")
    assert said["test_history"].startswith("the history has 1 epochs")
    required = spec.profile("smoke").thresholds["test_accuracy"]
    assert said["test_test_accuracy"].startswith(
        f"your trained model classifies 0.0% of the grader's test dogs and cats correctly, "
        f"below the required {required:.0%}"
    )
    assert said["test_examples"].startswith("example_probabilities should be model.predict")
    assert said["test_classify_file"].startswith(
        "classify_file's answers agree with your saved model's own predictions on only 0%"
    )
    # The hidden seeds and sizes never show.
    for value in spec.hidden.values():
        assert not any(re.search(rf"\b{value}\b", text) for text in said.values())


def test_broken_functions_lose_only_their_checks(spec: ExerciseSpec, world: dict[str, Any]) -> None:
    report = grade(spec, world, "broken", unsafe=True)
    assert report.error is None, report.error
    failed = sorted(set(CHECKS) - set(passed(report)))
    assert failed == [
        "test_classify::test_classify_file",
        "test_split::test_split_keeps_dogs_and_cats",
    ]
    said = messages(report)
    assert said["test_split_keeps_dogs_and_cats"].startswith(
        "on 2 of the grader's 5 label arrays split_cats_dogs raised an error"
    )
    assert said["test_classify_file"] == (
        "classify_file must return the string 'dog' or 'cat', nothing else"
    )


@pytest.mark.parametrize(
    ("variant", "loses", "message"),
    [
        (
            "dropout",
            "test_architecture",
            "your network differs from cnn1.py's: layer 6 (Dropout): rate should be 0.25, yours "
            "is 0.5; layer 8 (Dropout): rate should be 0.25, yours is 0.5",
        ),
        ("batch_32", "test_history", "your model made {steps} training steps where"),
        (
            "sgd",
            "test_history",
            "the optimizer should be keras.optimizers.Adam() with its defaults",
        ),
    ],
)
def test_settings_cnn1_fixes_are_checked(
    spec: ExerciseSpec, world: dict[str, Any], variant: str, loses: str, message: str
) -> None:
    """The good submission's model with one setting cnn1.py fixes changed, and its predictions
    unchanged: another dropout rate, batch size or optimizer loses exactly its check."""
    import shutil

    import keras

    folder = world["root"] / variant
    shutil.copytree(world["good"], folder)
    good = world["good"] / "model.keras"
    model = cnn1(
        keras,
        dropout=0.5 if variant == "dropout" else 0.25,
        optimizer=("SGD" if variant == "sgd" else "Adam"),
    )
    model.set_weights(keras.saving.load_model(good).get_weights())
    steps = optimizer_steps(good)
    assert steps  # the good model made its updates
    if variant == "batch_32":
        steps = steps * 100 // 32 + 1
    model.optimizer.iterations.assign(steps)
    model.save(folder / "model.keras")
    profile = resolve_profile(spec, "smoke", data_files=world["data"], model_files=())
    report = world["checks"].run_checks(
        spec, profile, folder, workdir=world["root"] / f"work-{variant}", unsafe=True
    )
    assert report.error is None, report.error
    assert sorted(set(CHECKS) - set(passed(report))) == [f"test_training::{loses}"]
    assert messages(report)[loses].startswith(message.format(steps=steps))
