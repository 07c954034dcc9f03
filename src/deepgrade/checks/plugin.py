"""deepgrade's pytest plugin: what hidden checks may use, and the results file they produce.

Used as `pytest -p deepgrade.checks.plugin --dg-exercise-dir DIR --dg-artifacts DIR
--dg-data DIR --dg-profile-file FILE --dg-results-fd N` (the host's private channel; the profile
the host resolved, which a graded run leaves in checks/profile.json; `--dg-results FILE` writes
the same snapshots to a file, for running the checks by hand). Every check carries
`@pytest.mark.points(n)`; a check without one is an error at collection, so an instructor's
forgotten marker cannot silently shrink the maximum. The first line of a check's docstring is
its title in the student's feedback, and its message is the check's own words only: the text
of `assert ..., "message"` or `pytest.fail("message")`, or for an unexpected exception a line
naming its type. Never the traceback or the check's source, which could reveal hidden values.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from deepgrade.checks.expect import fail as _fail
from deepgrade.checks.snapshots import (
    MAX_CLASSES,
    MAX_MESSAGE,
    MAX_SUMMARY_ROWS,
    MAX_SUMMARY_TEXT,
    NOT_RUN,
    encode_snapshot,
    write_all,
)
from deepgrade.errors import InputError
from deepgrade.exercise import ExerciseSpec, load_spec
from deepgrade.profiles import GradingProfile
from deepgrade.results import CheckResult, Confusion, SummaryRow


@dataclass
class _Check:
    """One collected check, filled in as its phases report."""

    check_id: str
    title: str
    max_points: float
    passed: bool = False
    ran: bool = False  # its call phase ran
    done: bool = False  # setup, call and teardown are over: its points are final
    message: str = ""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deepgrade", "deepgrade hidden checks")
    group.addoption("--dg-exercise-dir", help="the exercise's autograder folder (spec.toml)")
    group.addoption("--dg-artifacts", help="the folder of the submission's artifacts")
    group.addoption("--dg-data", help="the grader's data folder")
    group.addoption("--dg-profile-file", help="JSON file: the grading profile the host resolved")
    group.addoption("--dg-results-fd", type=int, help="file descriptor of the results channel")
    group.addoption("--dg-results", help="a file for the results snapshots (runs by hand)")
    group.addoption(
        "--dg-stage1-usage", help="JSON file: what stage 1's runner measured of measured cells"
    )


def _channel(config: pytest.Config) -> int | None:
    """The results channel as a close-on-exec descriptor only this process holds: the one handed
    in is moved to a non-inheritable copy before any check runs, so nothing a check starts
    inherits it."""
    fd = config.getoption("--dg-results-fd", None)
    if fd is not None:
        channel = os.dup(fd)  # os.dup makes non-inheritable (close-on-exec) descriptors
        os.close(fd)
        return channel
    path = config.getoption("--dg-results", None)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): what a hidden check is worth (required)")
    exercise = config.getoption("--dg-exercise-dir", None)
    recorder = _Recorder(
        channel=_channel(config),
        exercise_dir=Path(exercise).resolve() if exercise else None,
    )
    config.pluginmanager.register(recorder, "deepgrade-recorder")


# ---------------------------------------------------------------- student-facing messages


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3].rstrip() + "..."


def student_message(exc: BaseException) -> str:
    """What a student may read about a failed check: its own message, never its code."""
    if isinstance(exc, pytest.fail.Exception):
        return _shorten(exc.msg or "this check failed")
    if isinstance(exc, pytest.skip.Exception):
        return _shorten(f"this check was skipped: {exc.msg}" if exc.msg else "check skipped")
    if isinstance(exc, AssertionError):
        text = str(exc)
        if text.startswith("assert ") or not text.strip():
            return "this check failed"  # a bare assert: its expression is the check's code
        if "\nassert " in text:
            # Assertion rewriting appends "\nassert <expression>" (dropped here) and indents
            # the message's own continuation lines by two spaces (undone here).
            lines = text.split("\nassert ", 1)[0].split("\n")
            text = "\n".join([lines[0], *(line.removeprefix("  ") for line in lines[1:])])
        return _shorten(text)
    line = f"this check could not run: {type(exc).__name__}"
    if isinstance(exc, InputError):
        line += f" ({exc.path.name}: {exc.problem})"
    return _shorten(line)


# ---------------------------------------------------------------- collection and reporting


def _check_id(item: pytest.Item, exercise_dir: Path | None) -> str:
    """`test_architecture::test_total_params`: stable across machines and mount points."""
    if exercise_dir is not None:
        try:
            relative = item.path.resolve().relative_to(exercise_dir)
        except ValueError:
            pass
        else:
            return f"{relative.with_suffix('').as_posix()}::{item.name}"
    return item.nodeid


def _title(item: pytest.Item) -> str:
    doc = inspect.getdoc(getattr(item, "obj", None)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else item.name


def _points(item: pytest.Item) -> float | str:
    """The marker's points, or why the marker is missing or wrong."""
    marker = item.get_closest_marker("points")
    if marker is None:
        return "no @pytest.mark.points(n) marker"
    if len(marker.args) != 1 or marker.kwargs:
        return "points marker needs exactly one number: @pytest.mark.points(n)"
    value = marker.args[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return f"points must be a positive number, got {value!r}"
    return float(value)


class _Recorder:
    """The plugin's hooks and what they gathered: one instance per pytest run."""

    def __init__(self, channel: int | None, exercise_dir: Path | None) -> None:
        self.channel = channel
        self.exercise_dir = exercise_dir
        self.checks: dict[str, _Check] = {}  # by nodeid, in collection order
        self.errors: list[str] = []
        self.measurements: dict[str, float] = {}
        self.summary: list[SummaryRow] = []  # model.keras's layers, once it is loaded
        self.confusion: Confusion | None = None  # the first one a check records

    def write(self, *, complete: bool) -> None:
        """One snapshot of every check on the channel (the host keeps the last whole one)."""
        if self.channel is None:
            return
        checks = [
            CheckResult(
                check_id=c.check_id,
                title=c.title,
                points=c.max_points if c.passed else 0.0,
                max_points=c.max_points,
                passed=c.passed,
                message="" if c.passed else (c.message or NOT_RUN),
            )
            for c in self.checks.values()
        ]
        error = "; ".join(self.errors) or None
        done = [c.done for c in self.checks.values()]
        line = encode_snapshot(
            checks,
            done,
            error=error,
            complete=complete,
            measurements=self.measurements,
            summary=self.summary,
            confusion=self.confusion,
        )
        write_all(self.channel, line)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        problems = []
        for item in items:
            points = _points(item)
            if isinstance(points, str):
                problems.append(f"{item.nodeid}: {points}")
                continue
            check_id = _check_id(item, self.exercise_dir)
            self.checks[item.nodeid] = _Check(check_id, _title(item), points)
        if problems:
            self.errors.append("bad points markers: " + "; ".join(problems))
            raise pytest.UsageError("deepgrade: " + "; ".join(problems))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            # The instructor reads pytest's own output in the log; the gradebook gets one line.
            self.errors.append(f"could not collect {report.nodeid or 'the checks'}")

    def pytest_collection_finish(self) -> None:
        if not self.checks and not self.errors:
            self.errors.append("no checks found")
        self.write(complete=False)  # the list of checks survives even if pytest dies later

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        check = self.checks.get(item.nodeid)
        if check is None:
            return report
        if call.when == "call":
            check.ran = True
            check.passed = report.passed
        if (report.failed or report.skipped) and call.excinfo is not None:
            if not check.message:  # the first failure is the one to fix
                check.message = student_message(call.excinfo.value)
            check.passed = False
        return report

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        check = self.checks.get(nodeid)
        if check is not None:
            check.done = True
        self.write(complete=False)  # each finished check survives a crash of a later one

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        stopped = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        if stopped and not self.errors:
            self.errors.append(f"pytest stopped ({pytest.ExitCode(exitstatus).name})")
        self.write(complete=True)


# ---------------------------------------------------------------- fixtures


def _option(config: pytest.Config, name: str) -> str:
    value = config.getoption(name, None)
    if not value:
        raise pytest.UsageError(f"deepgrade's checks need {name}")
    return str(value)


def _missing(name: str) -> NoReturn:
    _fail(f"missing artifact {name}: the locked cell that saves it did not run")


@pytest.fixture(scope="session")
def spec(pytestconfig: pytest.Config) -> ExerciseSpec:
    """The exercise's spec.toml."""
    return load_spec(Path(_option(pytestconfig, "--dg-exercise-dir")))


@pytest.fixture(scope="session")
def profile(spec: ExerciseSpec, pytestconfig: pytest.Config) -> GradingProfile:
    """The profile being graded, as the host resolved it: `parameters` are exactly what the
    notebook ran with (e.g. EPOCHS, SEED, PROFILE), `thresholds`, `name`, `spec` (limits)."""
    path = Path(_option(pytestconfig, "--dg-profile-file"))
    resolved = GradingProfile.read(path, Path(_option(pytestconfig, "--dg-data")))
    if resolved.exercise != spec.name:
        raise InputError(path, f"a profile of {resolved.exercise}, not of {spec.name}")
    return resolved


@pytest.fixture(scope="session")
def hidden(spec: ExerciseSpec) -> Any:
    """The spec's [hidden] table: values the student never sees; keep them out of messages."""
    return spec.hidden


@pytest.fixture(scope="session")
def artifacts_dir(pytestconfig: pytest.Config) -> Path:
    """The submission's artifact folder (read-only in the sandbox)."""
    return Path(_option(pytestconfig, "--dg-artifacts"))


@pytest.fixture(scope="session")
def data_dir(pytestconfig: pytest.Config) -> Path:
    """The grader's own copy of the exercise's data files."""
    return Path(_option(pytestconfig, "--dg-data"))


@pytest.fixture(scope="session")
def stage1_usage(pytestconfig: pytest.Config) -> dict[str, dict[str, float]]:
    """{cell name: {"cpu_s", "wall_s", "nonce"}}: what stage 1's runner measured, outside the
    student's kernel, of each grade-time cell marked `# deepgrade-measure: NAME` (CPU time of
    every process in the sandbox but the runner). Empty when nothing was measured."""
    path = pytestconfig.getoption("--dg-stage1-usage", None)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    found: dict[str, dict[str, float]] = {}
    for name, entry in data.items() if isinstance(data, dict) else ():
        if isinstance(entry, dict) and all(
            isinstance(entry.get(key), int | float) for key in ("cpu_s", "wall_s", "nonce")
        ):
            found[str(name)] = {key: float(entry[key]) for key in ("cpu_s", "wall_s", "nonce")}
    return found


@pytest.fixture(scope="session")
def artifact(artifacts_dir: Path) -> Callable[[str], Path]:
    """artifact(name) -> its path; fails the check when the notebook did not save it."""

    def find(name: str) -> Path:
        path = artifacts_dir / name
        if path.is_symlink() or not path.is_file():
            _missing(name)
        return path

    return find


def _read_json(artifact: Callable[[str], Path], name: str) -> Any:
    try:
        return json.loads(artifact(name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        _fail(
            f"{name} is not valid JSON: run the whole notebook from the top so its locked "
            "cells write it again"
        )


class Answers(dict[str, Any]):
    """answers.json; a missing key fails the check naming the answer, not a KeyError."""

    def __missing__(self, key: str) -> NoReturn:
        _fail(
            f"answers.json has no {key!r}: the locked cell that saves it did not run "
            "(an earlier cell may have failed)"
        )


@pytest.fixture(scope="session")
def answers(artifact: Callable[[str], Path]) -> Answers:
    """The student's answers.json as a dict (fails closed when missing or malformed)."""
    data = _read_json(artifact, "answers.json")
    if not isinstance(data, dict):
        _fail("answers.json must hold a JSON object: do not edit the locked cells that write it")
    return Answers(data)


@pytest.fixture(scope="session")
def history(artifact: Callable[[str], Path]) -> dict[str, list[float]]:
    """history.json: {metric: [one number per epoch]}, as Keras' History.history."""
    data = _read_json(artifact, "history.json")
    if not isinstance(data, dict) or not all(
        isinstance(values, list)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        for values in data.values()
    ):
        _fail("history.json must map each metric to a list of numbers (model.fit's history)")
    return {str(key): [float(v) for v in values] for key, values in data.items()}


@pytest.fixture(scope="session")
def load_model(
    artifact: Callable[[str], Path], pytestconfig: pytest.Config
) -> Callable[[str], Any]:
    """load_model(name) -> the validated Keras model (loaded once per session). model.keras's
    layer table goes back with the results, for the student's feedback page."""
    from deepgrade import artifacts

    cache: dict[str, Any] = {}
    recorder = pytestconfig.pluginmanager.get_plugin("deepgrade-recorder")

    def load(name: str) -> Any:
        if name not in cache:
            cache[name] = artifacts.load_model(artifact(name))
            if name == "model.keras" and isinstance(recorder, _Recorder):
                recorder.summary = summary_rows(cache[name])
        return cache[name]

    return load


@pytest.fixture(scope="session")
def threshold(profile: GradingProfile, spec: ExerciseSpec) -> Callable[[str], float]:
    """threshold(key) -> the profile's threshold, e.g. threshold("test_accuracy")."""

    def get(key: str) -> float:
        try:
            return profile.thresholds[key]
        except KeyError:
            raise InputError(
                spec.directory / "spec.toml", f"profile {profile.name!r} has no threshold {key!r}"
            ) from None

    return get


@pytest.fixture
def measure(pytestconfig: pytest.Config) -> Callable[[str, float], None]:
    """Record a number the check measured (e.g. the test accuracy) for the gradebook and for
    threshold calibration; it never changes the points."""
    recorder = pytestconfig.pluginmanager.get_plugin("deepgrade-recorder")

    def record(name: str, value: float) -> None:
        if isinstance(recorder, _Recorder) and math.isfinite(float(value)):  # NaN is no number
            recorder.measurements[name] = float(value)

    return record


@pytest.fixture(scope="session")
def model(load_model: Callable[[str], Any]) -> Any:
    """model.keras, the network the notebook trained: validated, then loaded uncompiled."""
    return load_model("model.keras")


@pytest.fixture(scope="session")
def confusion(pytestconfig: pytest.Config) -> Callable[..., None]:
    """confusion(predicted, expected, labels): record the confusion matrix of the model's
    predicted classes against the true ones on the grader's data (an aggregate, for the
    student's feedback page). The first recorded per run is kept; it never changes points."""
    recorder = pytestconfig.pluginmanager.get_plugin("deepgrade-recorder")

    def record(predicted: Any, expected: Any, labels: Sequence[str]) -> None:
        if not isinstance(recorder, _Recorder) or recorder.confusion is not None:
            return
        names = tuple(str(label)[:40] for label in labels)[:MAX_CLASSES]
        n = len(names)
        counts = [[0] * n for _ in range(n)]
        for truth, guess in zip(list(expected), list(predicted), strict=True):
            t, g = int(truth), int(guess)
            if 0 <= t < n and 0 <= g < n:
                counts[t][g] += 1
        recorder.confusion = (names, tuple(tuple(row) for row in counts))

    return record


def summary_rows(model: Any) -> list[SummaryRow]:
    """(layer, type, output shape, parameters) of each flat layer, bounded for the channel."""
    from deepgrade.checks.layers import layer_table

    def shape(value: tuple[int | None, ...] | None) -> str:
        return "?" if value is None else "(" + ", ".join(map(str, value)) + ")"

    return [
        (
            row.name[:MAX_SUMMARY_TEXT],
            row.kind[:MAX_SUMMARY_TEXT],
            shape(row.output_shape)[:MAX_SUMMARY_TEXT],
            row.params,
        )
        for row in layer_table(model)[:MAX_SUMMARY_ROWS]
    ]


@pytest.fixture(scope="session")
def dataset(spec: ExerciseSpec, data_dir: Path) -> Any:
    """The grader's own copy of the exercise's first data set, as its loader returns it (e.g.
    x_train, y_train, x_test, y_test); prepare it in the exercise's conftest as the notebook's
    locked cells do. The student's process never touched these files."""
    from deepgrade import datasets

    if not spec.datasets:
        raise pytest.UsageError(f"{spec.directory / 'spec.toml'}: the spec names no data set")
    return datasets.get(spec.datasets[0]).load(data_dir)
