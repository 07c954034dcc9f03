"""Threat model: a busy machine. A grade must not depend on how loaded the host was.

Two ways load leaked into grades: TensorFlow sizes its CPU thread pools by the host's CPUs, and
the same seed trains to different weights with 1, 2 or 4 threads (so a CI runner and a laptop
disagreed near a threshold); and a wall-clock limit turns a starved run into a timeout. The
engine pins the thread counts in both stages' environments, and stage 1 re-runs a timeout once
when the host was loaded. The policy is tested with a fake executor and a fake load: no real
timing here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from deepgrade import execute, grade
from deepgrade.checks import runner as checks_runner
from deepgrade.exercise import load_exercise
from deepgrade.grade import GradeSettings
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckReport, CheckResult, ExecutionResult, Verdict
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")

# ---------------------------------------------------------------- reproducible training

TRAIN = """
import hashlib
import numpy as np
import keras
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((512, 32, 32, 3), dtype=np.float32)
y = keras.utils.to_categorical(rng.integers(0, 10, 512), 10)
model = keras.Sequential([
    keras.Input((32, 32, 3)),
    keras.layers.Conv2D(16, 3, activation="relu"),
    keras.layers.BatchNormalization(),
    keras.layers.MaxPooling2D(),
    keras.layers.Conv2D(32, 3, activation="relu"),
    keras.layers.Flatten(),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile("adam", "categorical_crossentropy")
model.fit(x, y, batch_size=64, epochs=2, verbose=0)
print(hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest())
"""


def test_both_stages_pin_the_thread_counts() -> None:
    stage1 = execute.kernel_env("/home/grader")
    stage2 = checks_runner._env("/opt/deepgrade/lib", "/home/grader")
    for env in (stage1, stage2):
        assert {env.get(name) for name in PINNED} == {str(execute.KERNEL_THREADS)}, env
        assert env.get("TF_DETERMINISTIC_OPS") == "1"
        assert env.get("PYTHONHASHSEED") == "0"


def _train(env: dict[str, str], cpus: set[int]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN],
        env={**env, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_seeded_training_is_the_same_on_one_cpu_and_on_many(tmp_path: Path) -> None:
    """The kernel's environment, not the host's CPU count, decides TensorFlow's threads."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip(reason="needs at least 2 CPUs to compare with a 1-CPU run")
    env = execute.kernel_env(str(tmp_path))
    env["HOME"] = str(tmp_path)
    one_cpu = _train(env, {min(cpus)})
    all_cpus = _train(env, set(cpus))
    assert one_cpu == all_cpus, "the weights depend on how many CPUs the host has"


# ---------------------------------------------------------------- timeouts on a loaded host


class FakeExecutor:
    """Stands in for execute_notebook: hands out the prepared results in turn, counting calls."""

    def __init__(self, *results: ExecutionResult) -> None:
        self.results = list(results)
        self.calls = 0

    def __call__(self, notebook: Path, **kwargs: Any) -> ExecutionResult:
        self.calls += 1
        return self.results.pop(0)


def _stage1(
    tmp_path: Path, verdict: Verdict, seconds: float = 900.0, cpu: float | None = None
) -> ExecutionResult:
    return ExecutionResult(
        verdict, str(verdict), tmp_path / "artifacts", None, seconds, cpu_seconds=cpu
    )


@pytest.fixture
def settings(tmp_path: Path) -> GradeSettings:
    spec = load_exercise(ROOT / "autograder", "signs_cnn")
    return GradeSettings(
        spec=spec,
        profile=resolve_profile(spec, "smoke", data_files=()),
        release_notebook=ROOT / "release" / "signs_cnn" / spec.notebook,
        workdir=tmp_path / "runs",
    )


@pytest.fixture
def solution() -> Submission:
    return Submission("ana", ROOT / "solutions" / "signs_cnn" / "signs_cnn.ipynb")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The load average and CPUs the policy sees; a test sets them."""
    seen: dict[str, Any] = {"load": 0.2, "cpus": 2}
    monkeypatch.setattr(grade, "host_load", lambda: (seen["load"], seen["cpus"]))
    yield seen


def _run(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    *results: ExecutionResult,
) -> tuple[ExecutionResult, FakeExecutor]:
    fake = FakeExecutor(*results)
    monkeypatch.setattr(execute, "execute_notebook", fake)
    work = tmp_path / "work"
    work.mkdir(parents=True)
    return grade.run_stage1(solution, settings, work), fake


def test_a_timeout_on_a_busy_host_is_run_again_once(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    host: dict[str, Any],
) -> None:
    host.update(load=6.0, cpus=2)
    result, fake = _run(
        monkeypatch,
        settings,
        solution,
        tmp_path,
        _stage1(tmp_path, Verdict.TIMEOUT),
        _stage1(tmp_path, Verdict.GRADED, seconds=300.0),
    )
    assert fake.calls == 2
    assert result.verdict is Verdict.GRADED
    assert "ran once more" in result.rerun and "load average 6.0 on 2 CPUs" in result.rerun


def test_a_second_timeout_is_the_verdict(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    host: dict[str, Any],
) -> None:
    host.update(load=9.0, cpus=2)
    timeout = _stage1(tmp_path, Verdict.TIMEOUT)
    result, fake = _run(monkeypatch, settings, solution, tmp_path, timeout, timeout, timeout)
    assert fake.calls == 2  # once more, not until the host is quiet
    assert result.verdict is Verdict.TIMEOUT and result.rerun


def test_a_timeout_on_a_quiet_host_is_the_verdict_at_once(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    host: dict[str, Any],
) -> None:
    host.update(load=2.2, cpus=2)  # the run itself kept both CPUs busy: not a loaded host
    timeout = _stage1(tmp_path, Verdict.TIMEOUT)
    result, fake = _run(monkeypatch, settings, solution, tmp_path, timeout, timeout)
    assert fake.calls == 1
    assert result.verdict is Verdict.TIMEOUT and result.rerun == ""


def test_cpu_time_tells_a_starved_run_from_a_busy_one(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    host: dict[str, Any],
) -> None:
    host.update(load=2.6, cpus=2)  # busier than the CPUs, below the load-only threshold
    starved = _stage1(tmp_path, Verdict.TIMEOUT, seconds=900.0, cpu=200.0)
    result, fake = _run(monkeypatch, settings, solution, tmp_path, starved, starved)
    assert fake.calls == 2
    assert "got 200 s of CPU in 900 s" in result.rerun
    endless_loop = _stage1(tmp_path, Verdict.TIMEOUT, seconds=900.0, cpu=890.0)
    result, fake = _run(
        monkeypatch, settings, solution, tmp_path / "again", endless_loop, endless_loop
    )
    assert fake.calls == 1, "a run that had its CPU and still timed out is not re-run"
    assert result.rerun == ""


def test_other_verdicts_are_never_run_again(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    host: dict[str, Any],
) -> None:
    host.update(load=20.0, cpus=2)
    for index, verdict in enumerate((Verdict.GRADED, Verdict.CELL_ERROR, Verdict.OUT_OF_MEMORY)):
        once = _stage1(tmp_path, verdict)
        result, fake = _run(monkeypatch, settings, solution, tmp_path / str(index), once, once)
        assert fake.calls == 1 and result.verdict is verdict and result.rerun == ""


def test_the_gradebook_records_why_stage_1_ran_twice(
    monkeypatch: pytest.MonkeyPatch,
    settings: GradeSettings,
    solution: Submission,
    tmp_path: Path,
    host: dict[str, Any],
) -> None:
    host.update(load=6.0, cpus=2)
    fake = FakeExecutor(
        _stage1(tmp_path, Verdict.TIMEOUT), _stage1(tmp_path, Verdict.GRADED, seconds=300.0)
    )
    monkeypatch.setattr(execute, "execute_notebook", fake)
    check = CheckResult("t.py::test_x", "X", 1.0, 1.0, True)
    monkeypatch.setattr(
        checks_runner, "run_checks", lambda *args, **kwargs: CheckReport((check,), 1.0)
    )
    result = grade.grade_submission(solution, replace(settings, workdir=tmp_path / "runs"))
    assert fake.calls == 2
    assert result.verdict is not Verdict.TIMEOUT  # the second run's verdict
    assert "load average 6.0 on 2 CPUs" in result.extra["stage1_rerun"]
    assert result.to_json()["extra"]["stage1_rerun"] == result.extra["stage1_rerun"]
