"""The bn_discovery hidden checks, run through run_checks on artifacts built here.

The grader's data are tiny CIFAR-10 python batches written here in the real format. The
"trained" vectors are made without Keras training: the test replays what BatchNormalization
does during fit (per-epoch shuffled batches of 100, moving averages with momentum 0.99) in
numpy, so the expectation and tolerance the checks derive are tested against an independent
simulation, and no test waits for a fit.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pickle
import re
import sys
from pathlib import Path
from types import ModuleType
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
EXERCISE = REPO / "autograder" / "bn_discovery"
PER_BATCH, N_TEST = 120, 20  # 600 training images: the smoke profile's N_TRAIN is larger
CHECKS = {  # check id -> points: the exercise is worth 20
    "test_answers::test_vector_order": 3,
    "test_answers::test_fourth_is_variance": 2,
    "test_architecture::test_bn_first_layer": 2,
    "test_architecture::test_program7_layers": 2,
    "test_bn_forward::test_hidden_bn_forward": 3,
    "test_weights::test_before_training": 2,
    "test_weights::test_moving_mean": 3,
    "test_weights::test_moving_variance": 3,
}
GOOD_ANSWERS = {
    "vector_names": ["gamma", "beta", "mu_B", "sigma_B"],
    "fourth_vector": "variance",
}
INITIAL = [np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)]


@functools.cache
def exercise_module(stem: str) -> ModuleType:
    """A plain module of the exercise (moving_stats, hidden_inputs), imported from its file."""
    name = f"bn_discovery_{stem}"
    spec = importlib.util.spec_from_file_location(name, EXERCISE / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_cifar(folder: Path, rng: np.random.Generator) -> tuple[list[Path], np.ndarray]:
    """CIFAR-10 python batches (data_batch_1..5, test_batch, batches.meta) of random images
    whose brightness varies from image to image, as photographs do; returns the files and
    the training images (n, 32, 32, 3) uint8 in load order."""
    folder.mkdir()

    def batch(n: int, label: str) -> tuple[dict[bytes, Any], np.ndarray]:
        base = rng.uniform(30, 220, size=(n, 1, 1, 3))
        images = np.clip(base + rng.normal(0, 45, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)
        content = {
            b"batch_label": label.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),
            b"filenames": [f"image_{i}.png".encode() for i in range(n)],
        }
        return content, images

    train = []
    for index in range(1, 6):
        content, images = batch(PER_BATCH, f"training batch {index} of 5")
        (folder / f"data_batch_{index}").write_bytes(pickle.dumps(content, protocol=2))
        train.append(images)
    content, _ = batch(N_TEST, "testing batch 1 of 1")
    (folder / "test_batch").write_bytes(pickle.dumps(content, protocol=2))
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    meta = {
        b"label_names": [n.encode() for n in names],
        b"num_cases_per_batch": PER_BATCH,
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    files = sorted(folder.iterdir())
    return files, np.concatenate(train)


def replay_fit(
    x: np.ndarray, epochs: int, rng: np.random.Generator, batch: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization's moving mean and variance after model.fit(x, shuffle=True)."""
    mean, variance = np.zeros(3), np.ones(3)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            pixels = x[order[start : start + batch]].reshape(-1, 3)
            mean = 0.99 * mean + 0.01 * pixels.mean(axis=0)
            variance = 0.99 * variance + 0.01 * pixels.var(axis=0)  # biased, as Keras
    return mean, variance


def build(
    keras: Any, width: int, bn_first: bool = True, pool: int = 2, optimizer: str | None = "Adam"
) -> Any:
    """build_model(width) as a student writes it (`pool`: its pooling strides), compiled as the
    train cell compiles it (`optimizer`: None leaves it uncompiled, as build_model returns it)."""
    from keras import layers

    model = keras.Sequential([keras.Input((32, 32, 3))])
    if bn_first:
        model.add(layers.BatchNormalization())
    for filters in (40, 80, 160, 320, 320):
        for _ in range(2):
            model.add(layers.Conv2D(filters // width, (3, 3), padding="same", activation="relu"))
            model.add(layers.BatchNormalization())
        model.add(layers.MaxPooling2D((2, 2), strides=pool))
    model.add(layers.Flatten())
    model.add(layers.Dense(1000 // width, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    if optimizer is not None:
        model.compile(
            optimizer=getattr(keras.optimizers, optimizer)(), loss="categorical_crossentropy"
        )
    return model


def write_artifacts(
    folder: Path,
    *,
    answers: dict[str, Any],
    before: list[np.ndarray],
    after: list[np.ndarray],
    model: Any,
    bn_forward: dict[str, np.ndarray] | None,
    built: Any = None,
) -> Path:
    folder.mkdir()
    (folder / "answers.json").write_text(json.dumps(answers))
    np.savez(folder / "bn_before.npz", *before)
    np.savez(folder / "bn_after.npz", *after)
    model.save(folder / "model.keras")
    if bn_forward is not None:
        np.savez(folder / "bn_forward.npz", **bn_forward)
    if built is not None:  # what the grade-time cell saves: build_model(hidden width)
        built.save(folder / "hidden_build.keras")
    return folder


def hidden_outputs(spec: ExerciseSpec, eps: float | None = None) -> dict[str, np.ndarray]:
    """What bn_forward returns on the hidden arrays, right or with another epsilon."""
    hidden = spec.hidden["bn_forward"]
    bn = exercise_module("hidden_inputs").bn_forward_inputs(hidden["seed"], hidden["channels"])
    spread = np.sqrt(bn["var"] + (hidden["eps"] if eps is None else eps))
    return {
        key: bn["gamma"] * (bn[key] - bn["mean"]) / spread + bn["beta"]
        for key in ("images", "rows")
    }


@pytest.fixture(scope="module")
def spec() -> ExerciseSpec:
    return load_spec(EXERCISE)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, spec: ExerciseSpec, warm_checks: CheckServers
) -> dict[str, Any]:
    """The grader's data and three submissions' artifacts: right, wrong, nothing saved."""
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("bn_discovery")
    rng = np.random.default_rng(0)
    files, train = write_cifar(root / "data", rng)
    smoke = spec.profile("smoke").parameters
    epochs, width = int(smoke["EPOCHS"]), int(smoke["WIDTH"])
    x = train[: int(smoke["N_TRAIN"])].astype(np.float64) / 255.0
    mean, variance = replay_fit(x, epochs, rng)
    good = write_artifacts(
        root / "good",
        answers={**GOOD_ANSWERS, "train_steps": len(x) // 100 * epochs},
        before=INITIAL,
        after=[np.array([0.97, 1.02, 0.99]), np.array([0.01, -0.02, 0.03]), mean, variance],
        model=build(keras, width),
        bn_forward=hidden_outputs(spec),
        built=build(keras, spec.hidden["build_width"], optimizer=None),
    )
    # Wrong: answers swapped and "std", moving stats of unscaled pixels after one epoch,
    # the BN after the first convolution, bn_forward without epsilon.
    raw_mean, raw_variance = replay_fit(x * 255.0, 1, rng)
    wrong = write_artifacts(
        root / "wrong",
        answers={
            "vector_names": ["beta", "gamma", "sigma_B", "mu_B"],
            "fourth_vector": "Standard deviation",
            "train_steps": len(x) // 100,
        },
        before=[np.ones(3), np.zeros(3), np.ones(3), np.ones(3)],
        after=[np.ones(3), np.zeros(3), raw_mean, raw_variance],
        model=build(keras, width, bn_first=False),
        bn_forward=hidden_outputs(spec, eps=0.0),
    )
    empty = root / "empty"
    empty.mkdir()
    return {
        "data": files,
        "good": good,
        "wrong": wrong,
        "empty": empty,
        "root": root,
        "checks": warm_checks,  # run_checks' contract, on a warm server (tests/conftest.py)
        "steps": len(x) // 100 * epochs,
    }


def grade(world: dict[str, Any], spec: ExerciseSpec, name: str, *, unsafe: bool) -> CheckReport:
    workdir = world["root"] / f"work-{name}-{unsafe}"
    profile = resolve_profile(spec, "smoke", data_files=world["data"], model_files=())
    return world["checks"].run_checks(spec, profile, world[name], workdir=workdir, unsafe=unsafe)


def messages(report: CheckReport) -> dict[str, str]:
    return {check.check_id.split("::")[1]: check.message for check in report.checks}


def test_checks_are_worth_20_points(spec: ExerciseSpec) -> None:
    from deepgrade.checks.runner import static_checks

    found = {check.check_id: check.max_points for check in static_checks(spec.directory)}
    assert found == CHECKS
    assert sum(found.values()) == 20


def test_reference_artifacts_score_full_marks_in_the_sandbox(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(world, spec, "good", unsafe=False)
    assert report.error is None, report.error
    assert {c.check_id: c.message for c in report.checks if not c.passed} == {}
    assert (report.points, report.max_points) == (20.0, 20.0)
    measured = report.measurements
    assert set(measured) == {
        f"moving_{stat}_{what}"
        for stat in ("mean", "variance")
        for what in ("sigmas", "tolerance_used")
    }
    assert 0.0 <= measured["moving_mean_sigmas"] < 6.0
    assert 0.0 <= measured["moving_variance_tolerance_used"] < 1.0


def test_wrong_artifacts_fail_every_check_with_what_to_fix(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    report = grade(world, spec, "wrong", unsafe=True)
    assert report.error is None, report.error
    assert [c.check_id for c in report.checks if c.passed] == []
    said = messages(report)
    assert said["test_vector_order"].startswith("the name of vector 1, 2, 3, 4 is wrong")
    assert said["test_fourth_is_variance"].startswith("the fourth vector is not the standard")
    assert said["test_before_training"].startswith("vector 3 before training is not Keras'")
    assert said["test_bn_first_layer"].endswith("yours is Conv2D")
    assert said["test_program7_layers"].startswith("your network's layers are Conv2D, Batch")
    steps = f"your training made {world['steps'] // 2} update steps where the grader's run "
    for check in ("test_moving_mean", "test_moving_variance"):
        assert "divide by 255" in said[check] and steps in said[check]
    assert said["test_hidden_bn_forward"] == (
        "with other arrays, bn_forward's output is wrong: it forgets epsilon, which goes under "
        "the square root with the variance"
    )
    # No hidden number shows: not the seed, the channels or epsilon.
    assert not re.search(r"\d", said["test_hidden_bn_forward"])


def test_missing_artifacts_fail_closed(spec: ExerciseSpec, world: dict[str, Any]) -> None:
    report = grade(world, spec, "empty", unsafe=True)
    assert report.error is None, report.error
    assert report.points == 0.0
    said = messages(report)
    assert said["test_before_training"] == (
        "missing artifact bn_before.npz: the locked cell that saves it did not run"
    )
    assert said["test_moving_mean"].startswith("missing artifact answers.json")
    assert said["test_hidden_bn_forward"].startswith("the grader called bn_forward with other")


@pytest.mark.parametrize("epochs", [2, 5])
def test_derived_tolerance_matches_a_simulation_of_fit(epochs: int) -> None:
    """Over many replays of fit, the moving stats' deviations from the derived expectation,
    in units of the derived standard deviation, have mean about 0 and spread about 1."""
    module = exercise_module("moving_stats")
    rng = np.random.default_rng(1)
    n = 400
    brightness = rng.uniform(0.1, 0.9, size=(n, 1, 3))
    pixels = np.clip(brightness + rng.normal(0, 0.2, size=(n, 64, 3)), 0, 1)
    stats = module.PixelStats(means=pixels.mean(axis=1), squares=(pixels**2).mean(axis=1))
    expected = module.expected_moving_stats(stats, module.training_steps(n, epochs))
    z_mean, z_var = [], []
    for _ in range(300):
        mean, variance = np.zeros(3), np.ones(3)
        for _ in range(epochs):
            order = rng.permutation(n).reshape(-1, 100)
            for rows in order:
                batch_mean = stats.means[rows].mean(axis=0)
                batch_var = stats.squares[rows].mean(axis=0) - batch_mean**2
                mean = 0.99 * mean + 0.01 * batch_mean
                variance = 0.99 * variance + 0.01 * batch_var
        z_mean.append((mean - expected.mean) / expected.mean_sd)
        z_var.append((variance - expected.variance) / expected.variance_sd)
    for z in (np.array(z_mean), np.array(z_var)):
        assert np.all(np.abs(z.mean(axis=0)) < 0.25)
        assert np.all((z.std(axis=0) > 0.8) & (z.std(axis=0) < 1.25))


def test_gradetime_cells_call_the_students_functions_with_the_hidden_inputs(
    spec: ExerciseSpec, tmp_path: Path
) -> None:
    """The grade-time cells hand bn_forward hidden_inputs.py's arrays, in the order of its
    parameters, saving each output under its input's name, and build_model the hidden width."""
    seen: list[tuple[Any, ...]] = []

    def bn_forward(*args: Any) -> np.ndarray:
        seen.append(args)
        return np.asarray(args[0]) * 2

    class Built:
        def save(self, path: str) -> None:
            Path(path).write_text("a model")

    widths: list[int] = []
    namespace = {
        "ARTIFACT_DIR": str(tmp_path),
        "bn_forward": bn_forward,
        "build_model": lambda width: widths.append(width) or Built(),
    }
    for source in gradetime_sources(spec):
        exec(compile(source, "gradetime.py", "exec"), namespace)  # the instructor's own cells
    hidden = spec.hidden["bn_forward"]
    bn = exercise_module("hidden_inputs").bn_forward_inputs(hidden["seed"], hidden["channels"])
    assert len(seen) == 2
    for call, key in zip(seen, ("images", "rows"), strict=True):
        assert np.array_equal(call[0], bn[key])
        for given, name in zip(call[1:5], ("gamma", "beta", "mean", "var"), strict=True):
            assert np.array_equal(given, bn[name])
        assert call[5] == hidden["eps"]
    with np.load(tmp_path / "bn_forward.npz") as saved:
        assert np.array_equal(saved["images"], bn["images"] * 2)
        assert np.array_equal(saved["rows"], bn["rows"] * 2)
    assert bn["images"].shape[-1] != 3  # another number of channels than CIFAR-10's
    assert widths == [spec.hidden["build_width"]] and (tmp_path / "hidden_build.keras").is_file()
    smoke, full = (int(spec.profile(name).parameters["WIDTH"]) for name in ("smoke", "full"))
    assert spec.hidden["build_width"] not in (smoke, full)  # another width than WIDTH's


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            "pool_stride",
            "your network differs from program 7 (filters and units divided by WIDTH): layer 6 "
            "(MaxPooling2D): strides should be 2x2, yours is 1x1; layer 11 (MaxPooling2D): ",
        ),
        ("sgd", "the optimizer should be keras.optimizers.Adam() with its defaults"),
        (
            "width_constant",
            "build_model(width) called by the grader with another width differs from program 7 "
            "divided by that width (use width, not WIDTH or a number, inside build_model): "
            "layer 2 (Conv2D) has the wrong filters;",
        ),
    ],
)
def test_program7_is_checked_in_every_setting_it_fixes(
    spec: ExerciseSpec, world: dict[str, Any], variant: str, message: str
) -> None:
    """Pooling with stride 1, another optimizer, or a build_model that divides by WIDTH's value
    instead of its argument: each keeps every layer type but is not program 7."""
    import shutil

    import keras

    folder = world["root"] / variant
    shutil.copytree(world["good"], folder)
    width = int(spec.profile("smoke").parameters["WIDTH"])
    if variant == "width_constant":  # build_model(4) built as build_model(WIDTH)
        build(keras, width, optimizer=None).save(folder / "hidden_build.keras")
    else:
        model = build(
            keras,
            width,
            pool=1 if variant == "pool_stride" else 2,
            optimizer=("SGD" if variant == "sgd" else "Adam"),
        )
        model.save(folder / "model.keras")
    report = grade({**world, variant: folder}, spec, variant, unsafe=True)
    assert report.error is None, report.error
    assert [c.check_id for c in report.checks if not c.passed] == [
        "test_architecture::test_program7_layers"
    ]
    said = messages(report)["test_program7_layers"]
    assert said.startswith(message)
    if variant == "width_constant":  # no value of the hidden width's network shows
        assert "should be" not in said and "yours is" not in said
