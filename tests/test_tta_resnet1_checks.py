"""The TTA hidden checks, on artifacts made here by the real grade-time cells.

A tiny Keras network stands in for resnet1 (the checks only need a 32x32x3 -> 10 softmax file)
and a 96-image CIFAR-10 test batch is written in the real pickle format. The grader's labels are
the reference TTA's own classes, so the reference scores 100% with TTA and less without: every
accuracy outcome is known in advance. The solution's preprocess and tta_predict are taken from
solutions/tta_resnet1 and run through autograder/tta_resnet1/gradetime.py exactly as the grader
appends it (in-process here, papermill in grading), then run_checks judges the artifacts. The
measured cells get a fixed nonce here and a CPU time the test chooses, as stage 1's runner would
report them (tests/test_hostile_selfreport.py covers the runner's own measurement).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade import notebooks
from deepgrade.checks.warm import CheckServers
from deepgrade.datasets import cifar10
from deepgrade.exercise import ExerciseSpec, load_spec
from deepgrade.grade import gradetime_sources
from deepgrade.profiles import GradingProfile, resolve_profile
from deepgrade.results import CheckReport

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPO = Path(__file__).resolve().parents[1]
EXERCISE = REPO / "autograder" / "tta_resnet1"
N_TEST = 96
CHECKS = {  # check id -> points: the exercise is worth 14
    "test_accuracy::test_plain_accuracy": 1,
    "test_accuracy::test_tta_accuracy": 3,
    "test_accuracy::test_accuracy_increased": 1,
    "test_preprocess::test_preprocess_hidden": 2,
    "test_tta::test_tta_shape": 1,
    "test_tta::test_tta_mean_probabilities": 2,
    "test_tta::test_tta_views": 1,
    "test_tta::test_tta_agrees_with_plain": 1,
    "test_tta::test_tta_cost": 2,
}


def solution_code(grade_id: str) -> str:
    """The reference solution's source of one cell (its own lines, no solution markers)."""
    nb = notebooks.read_notebook(REPO / "solutions" / "tta_resnet1" / "tta_resnet1.ipynb")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return str(cell.source)
    raise AssertionError(f"no cell {grade_id!r} in the solution")


def student_functions(edits: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """preprocess and tta_predict as the solution defines them, with find/replace edits."""
    namespace: dict[str, Any] = {"np": np}
    for grade_id in ("preprocess", "tta_predict"):
        source = solution_code(grade_id)
        find, replace = (edits or {}).get(grade_id, ("", ""))
        if find:
            assert find in source, f"{find!r} not in the solution's {grade_id}"
            source = source.replace(find, replace)
        exec(compile(source, grade_id, "exec"), namespace)
    return namespace


def write_data(folder: Path) -> tuple[np.ndarray, Any]:
    """test_batch, batches.meta and a tiny resnet1.keras in the real formats."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    folder.mkdir()
    rng = np.random.default_rng(0)
    # Blocky images of random colours; a network that is nearly, not exactly, invariant to
    # shifts and mirroring (convolution, 2x2 average pooling, a Dense layer sharing most of its
    # weights across the 4 positions): TTA changes a few of its answers, not most.
    blocks = rng.integers(0, 256, size=(N_TEST, 4, 4, 3), dtype=np.uint8)
    images = blocks.repeat(8, axis=1).repeat(8, axis=2)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.AveragePooling2D(15),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([(np.tile(kernel[:8], (4, 1)) + 0.4 * kernel) * 10, bias])
    model.save(folder / "resnet1.keras")
    tta = student_functions()
    labels = np.argmax(tta["tta_predict"](model, tta["preprocess"](images)), axis=1)
    rows = images.transpose(0, 3, 1, 2).reshape(N_TEST, 3072)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in labels],
        b"data": rows,
        b"filenames": [f"image_{i}.png".encode() for i in range(N_TEST)],
    }
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"label_names": names, b"num_cases_per_batch": N_TEST, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return images, model


MEASURE = re.compile(r"^# deepgrade-measure: (\w+)$", re.MULTILINE)


def run_gradetime(
    spec: ExerciseSpec,
    data: Path,
    out: Path,
    functions: dict[str, Any],
    cpu_s: float = 1e-3,
    usage: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The grade-time cells in a namespace holding the student's functions; each cell may fail
    on its own, as in the grader's notebook run. Measured cells get the nonce 1000 + k and are
    reported into `usage` with `cpu_s`, as the runner reports them. Returns the namespace."""
    out.mkdir()
    namespace: dict[str, Any] = {"DATA_DIR": str(data), "ARTIFACT_DIR": str(out), **functions}
    for source in gradetime_sources(spec):
        measured = MEASURE.search(source)
        if measured is not None:
            nonce = 1000 + len(usage or {})
            source = source.replace("__DG_NONCE__", str(nonce))
            if usage is not None:
                usage[measured.group(1)] = {"cpu_s": cpu_s, "wall_s": cpu_s, "nonce": nonce}
        # A student's function failing costs that cell's artifact, as in the notebook run.
        with contextlib.suppress(Exception):
            exec(compile(source, "gradetime", "exec"), namespace)
    return namespace


def submission(
    root: Path,
    name: str,
    spec: ExerciseSpec,
    data: Path,
    images: np.ndarray,
    model: Any,
    *,
    edits: dict[str, tuple[str, str]] | None = None,
    answers: dict[str, Any] | None = None,
    cpu_s: float = 1e-3,
) -> tuple[Path, dict[str, dict[str, float]]]:
    """The artifacts the notebook's locked cells and the grade-time cells save, and what the
    runner would have measured of the measured cells."""
    functions = student_functions(edits)
    out = root / name
    usage: dict[str, dict[str, float]] = {}
    run_gradetime(spec, data, out, functions, cpu_s, usage)
    try:
        x = functions["preprocess"](images)
        tta = np.asarray(functions["tta_predict"](model, x), dtype=np.float32)
    except ValueError:  # the notebook's cells stop here: no locked artifact from now on
        return out, usage
    np.save(out / "tta_probabilities.npy", tta)
    labels = np.asarray(pickle.loads((data / "test_batch").read_bytes())[b"labels"])
    plain = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == labels))
    tta_accuracy = float(np.mean(np.argmax(tta, axis=1) == labels))
    computed = {
        "x_test_range": [float(x.min()), float(x.max())],
        "plain_accuracy": plain,
        "tta_accuracy": tta_accuracy,
        "accuracy_increased": tta_accuracy > plain,
    }
    (out / "answers.json").write_text(json.dumps(dict(computed, **(answers or {}))))
    return out, usage


@pytest.fixture(scope="module")
def spec() -> ExerciseSpec:
    return load_spec(EXERCISE)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, spec: ExerciseSpec, warm_checks: CheckServers
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tta")
    data = root / "data"
    images, model = write_data(data)

    usage: dict[str, dict[str, dict[str, float]]] = {}

    def make(name: str, **kwargs: Any) -> Path:
        out, usage[name] = submission(root, name, spec, data, images, model, **kwargs)
        return out

    return {
        "usage": usage,
        "root": root,
        "checks": warm_checks,  # run_checks' contract, on a warm server (tests/conftest.py)
        "data": [data / "test_batch", data / "batches.meta", data / "resnet1.keras"],
        "data_dir": data,
        "model": model,
        "good": make("good"),
        # [0, 1] inputs, votes, a per-image loop (timed slow), one view, wrong answers.
        "wrong": make(
            "wrong",
            edits={
                "preprocess": ("/ 255.0 - 0.5", "/ 255.0"),
                "tta_predict": (
                    "return probabilities.reshape(len(views), n, -1).mean(axis=0)",
                    "votes = np.eye(10)[np.argmax(probabilities, axis=1)]\n"
                    "    return votes.reshape(len(views), n, -1).sum(axis=0)",
                ),
            },
            answers={"plain_accuracy": 91.4, "accuracy_increased": True},
            cpu_s=1000.0,  # as the runner measures a per-image loop: far over 12 predicts
        ),
        "one_view": make(
            "one_view",
            edits={
                "tta_predict": (
                    "    pad = 2\n",
                    "    views = views[:1]  # the image only\n    pad = 2\n",
                )
            },
        ),
        "broken": make(
            "broken",
            edits={
                "preprocess": ("return", "raise ValueError('no')\n    return"),
                "tta_predict": (
                    "images = np.asarray",
                    "raise ValueError('no')\n    images = np.asarray",
                ),
            },
        ),
    }


def smoke(spec: ExerciseSpec, world: dict[str, Any]) -> GradingProfile:
    """The smoke profile with this world's data and model files."""
    return resolve_profile(spec, "smoke", data_files=world["data"], model_files=())


def grade(spec: ExerciseSpec, world: dict[str, Any], name: str, unsafe: bool = True) -> CheckReport:
    workdir = world["root"] / f"work-{name}-{unsafe}"
    return world["checks"].run_checks(
        spec,
        smoke(spec, world),
        world[name],
        workdir=workdir,
        unsafe=unsafe,
        stage1_usage=world["usage"][name],
    )


def failed(report: CheckReport) -> dict[str, str]:
    assert report.error is None, report.error
    return {c.check_id: c.message for c in report.checks if not c.passed}


def test_tta_checks_are_worth_14_points(spec: ExerciseSpec) -> None:
    from deepgrade.checks.runner import static_checks

    found = {check.check_id: check.max_points for check in static_checks(spec.directory)}
    assert found == CHECKS
    assert sum(found.values()) == 14


def test_gradetime_cells_give_the_functions_the_modules_images(
    spec: ExerciseSpec, world: dict[str, Any], tmp_path: Path
) -> None:
    """The grade-time cells call preprocess on hidden_inputs.pick's images of the [hidden] seed
    and each measured tta_predict on those picked with the runner's nonce, scaled by the
    grader: the images the checks rebuild with the same module."""
    assert spec.hidden_module is not None
    module_spec = importlib.util.spec_from_file_location("tta_inputs", spec.hidden_module)
    assert module_spec is not None and module_spec.loader is not None
    inputs = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(inputs)
    seen: dict[str, list[np.ndarray]] = {"preprocess": [], "tta_predict": []}
    functions = student_functions()

    def recording(name: str) -> Any:
        def call(*args: Any) -> Any:
            seen[name].append(np.array(args[-1]))
            return functions[name](*args)

        return call

    usage: dict[str, dict[str, float]] = {}
    run_gradetime(
        spec, world["data_dir"], tmp_path / "out", {n: recording(n) for n in seen}, usage=usage
    )
    x_test, _ = cifar10.load_test(world["data_dir"])
    hidden = spec.hidden["images"]
    assert np.array_equal(seen["preprocess"][0], inputs.pick(x_test, hidden))
    assert not any(np.array_equal(seen["preprocess"][0][0], image) for image in x_test)
    _warm_up, *measured = seen["tta_predict"]
    assert [entry["nonce"] for entry in usage.values()] == [1000, 1001, 1002]
    for nonce, images in zip((1000, 1001, 1002), measured, strict=True):
        assert np.array_equal(images, inputs.scale(inputs.pick(x_test, hidden, nonce)))
    assert not np.array_equal(measured[0], measured[1])


@pytest.mark.parametrize("unsafe", [True, False], ids=["unsafe", "sandboxed"])
def test_reference_scores_full_marks(
    spec: ExerciseSpec, world: dict[str, Any], unsafe: bool, request: pytest.FixtureRequest
) -> None:
    if not unsafe:
        request.getfixturevalue("bwrap")
    report = grade(spec, world, "good", unsafe=unsafe)
    assert failed(report) == {}
    assert (report.points, report.max_points) == (14.0, 14.0)
    assert sorted(p.name for p in world["good"].glob("hidden_tta_*.npy")) == [
        "hidden_tta_1.npy",
        "hidden_tta_2.npy",
        "hidden_tta_3.npy",
    ]
    assert report.measurements["tta_views_distance"] < 0.01
    assert report.measurements["tta_accuracy"] == 1.0
    assert report.measurements["tta_gain"] > 0


def test_wrong_submission_fails_exactly_the_wrong_parts(
    spec: ExerciseSpec, world: dict[str, Any]
) -> None:
    said = failed(grade(spec, world, "wrong"))
    assert sorted(said) == [
        "test_accuracy::test_accuracy_increased",
        "test_accuracy::test_plain_accuracy",
        "test_accuracy::test_tta_accuracy",
        "test_preprocess::test_preprocess_hidden",
        "test_tta::test_tta_cost",
        "test_tta::test_tta_mean_probabilities",
    ]
    assert said["test_preprocess::test_preprocess_hidden"].startswith(
        "preprocess returns images in [0, 1]"
    )
    assert said["test_tta::test_tta_mean_probabilities"].startswith(
        "tta_predict returned values from 0 to 11"
    )
    assert re.match(
        r"tta_predict took \d+\.\d times the CPU time of one model.predict",
        said["test_tta::test_tta_cost"],
    )
    assert "91.4000 differs from the grader's" in said["test_accuracy::test_plain_accuracy"]
    assert "give a fraction" in said["test_accuracy::test_plain_accuracy"]
    assert said["test_accuracy::test_tta_accuracy"].startswith("with your TTA, resnet1 classifies")
    # No hidden value (the number of hidden images, the seed) shows in any message.
    for message in said.values():
        assert not re.search(r"\b(96|128|58213)\b", message), message


def test_votes_in_fractions_are_not_mean_probabilities(
    spec: ExerciseSpec, world: dict[str, Any], tmp_path: Path
) -> None:
    """Vote fractions sum to 1 and lie in [0, 1]; the check still tells them apart."""
    votes = np.load(world["wrong"] / "hidden_tta_1.npy") / 11.0
    np.save(world["wrong"] / "hidden_tta_1.npy", votes)
    said = failed(grade(spec, world, "wrong"))
    assert said["test_tta::test_tta_mean_probabilities"].startswith("tta_predict's rows are votes")


def test_one_view_is_only_a_plain_predict(spec: ExerciseSpec, world: dict[str, Any]) -> None:
    said = failed(grade(spec, world, "one_view"))
    expected = ["test_tta::test_tta_agrees_with_plain", "test_tta::test_tta_views"]
    if spec.profile("smoke").thresholds["tta_gain"] > 0:  # no gain at all: below the margin
        expected.insert(0, "test_accuracy::test_tta_accuracy")
    assert sorted(said) == expected
    assert said["test_tta::test_tta_views"].startswith(
        "tta_predict returns one prediction per image"
    )


def test_functions_that_raise_fail_closed(spec: ExerciseSpec, world: dict[str, Any]) -> None:
    said = failed(grade(spec, world, "broken"))
    assert sorted(said) == sorted(CHECKS)  # the notebook's own cells stopped too
    hidden = [
        "test_preprocess::test_preprocess_hidden",
        "test_tta::test_tta_agrees_with_plain",
        "test_tta::test_tta_cost",
        "test_tta::test_tta_mean_probabilities",
        "test_tta::test_tta_shape",
        "test_tta::test_tta_views",
    ]
    assert set(hidden) < set(said)
    assert said["test_preprocess::test_preprocess_hidden"].startswith(
        "the grader called preprocess on images you never saw and got nothing back"
    )
    assert said["test_tta::test_tta_views"].startswith(
        "the grader called tta_predict on images you never saw and got nothing back"
    )


def test_a_cheap_wrong_round_never_sets_the_cost(
    spec: ExerciseSpec, world: dict[str, Any], tmp_path: Path
) -> None:
    """The cost is the cheapest measured call whose output is the 11-view mean: a later call
    that answers fast and wrong (uniform rows) does not count, a slow first call does."""
    import shutil

    out = tmp_path / "cheap"
    shutil.copytree(world["good"], out)
    for number in (2, 3):
        np.save(out / f"hidden_tta_{number}.npy", np.full((N_TEST, 10), 0.1))
    usage = {name: dict(entry) for name, entry in world["usage"]["good"].items()}
    usage["tta_1"]["cpu_s"] = 1000.0
    report = world["checks"].run_checks(
        spec, smoke(spec, world), out, workdir=tmp_path / "work", unsafe=True,
        stage1_usage=usage,
    )  # fmt: skip
    assert sorted(failed(report)) == ["test_tta::test_tta_cost"]
    # The same run with honest later calls: their cost counts, and it passes.
    report = world["checks"].run_checks(
        spec, smoke(spec, world), world["good"], workdir=tmp_path / "work2", unsafe=True,
        stage1_usage=usage,
    )  # fmt: skip
    assert failed(report) == {}


def test_calls_the_runner_did_not_measure_fail_closed(
    spec: ExerciseSpec, world: dict[str, Any], tmp_path: Path
) -> None:
    """Without the runner's measurement (a cell that timed out, a name measured twice) the
    images of a call are unknown: the TTA checks fail closed, naming no hidden value."""
    report = world["checks"].run_checks(
        spec, smoke(spec, world), world["good"], workdir=tmp_path / "work", unsafe=True,
        stage1_usage={},
    )  # fmt: skip
    said = failed(report)
    assert sorted(said) == [
        "test_tta::test_tta_agrees_with_plain",
        "test_tta::test_tta_cost",
        "test_tta::test_tta_mean_probabilities",
        "test_tta::test_tta_shape",
        "test_tta::test_tta_views",
    ]
    assert said["test_tta::test_tta_shape"].startswith("the grader could not call tta_predict")
