"""The checks plugin: points, titles, student-safe messages and the results file.

Tiny throwaway exercises are written with pytester and run in a subprocess, as the runner
does; nothing imports keras.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from deepgrade.checks.plugin import student_message
from deepgrade.checks.snapshots import Snapshot, encode_snapshot, read_results
from deepgrade.errors import InputError
from deepgrade.exercise import load_spec
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckResult, Verdict

pytest_plugins = ["pytester"]

SPEC = """\
name = "{name}"
title = "A throwaway exercise"
notebook = "ex.ipynb"
datasets = []
artifacts = ["answers.json"]
[profiles.smoke]
data = "synth"
cell_timeout_s = 10
notebook_timeout_s = 10
memory_mb = 512
artifact_cap_mb = 1
parameters = {{ EPOCHS = 3 }}
thresholds = {{ accuracy = 0.5 }}
[hidden]
n = [6, 12]
"""


def _exercise(pytester: pytest.Pytester, checks: str, name: str = "ex") -> Path:
    directory = pytester.path / name
    directory.mkdir()
    (directory / "spec.toml").write_text(SPEC.format(name=name))
    (directory / "test_hidden.py").write_text(textwrap.dedent(checks))
    return directory


def _run(
    pytester: pytest.Pytester, directory: Path, artifacts: dict[str, str] | None = None
) -> tuple[dict[str, CheckResult], str | None, Any]:
    art = pytester.path / "artifacts"
    art.mkdir(exist_ok=True)
    for name, text in (artifacts or {}).items():
        (art / name).write_text(text)
    results = pytester.path / "out" / "results.json"
    profile = pytester.path / "profile.json"
    resolve_profile(load_spec(directory), "smoke", {"SEED": 4}, data_files=()).write(profile)
    outcome = pytester.runpytest_subprocess(
        "-p",
        "deepgrade.checks.plugin",
        "-p",
        "no:cacheprovider",
        f"--rootdir={directory}",
        f"--dg-exercise-dir={directory}",
        f"--dg-artifacts={art}",
        f"--dg-data={pytester.path}",
        f"--dg-profile-file={profile}",
        f"--dg-results={results}",
        str(directory),
    )
    snapshot = read_results(results)
    assert snapshot.complete
    return {c.check_id.split("::")[1]: c for c in snapshot.checks}, snapshot.error, outcome


def test_points_titles_ids_and_fixtures(pytester: pytest.Pytester) -> None:
    directory = _exercise(
        pytester,
        '''
        import pytest

        @pytest.mark.points(2)
        def test_good(answers, hidden, profile, threshold, spec, data_dir, artifacts_dir):
            """The answer is right.

            Longer text the student does not need.
            """
            assert answers["x"] == 1
            assert list(hidden["n"]) == [6, 12]
            assert dict(profile.parameters) == {"EPOCHS": 3, "SEED": 4, "PROFILE": "smoke"}
            assert profile.name == "smoke" and profile.spec.memory_mb == 512
            assert threshold("accuracy") == 0.5
            assert spec.name == "ex"
            assert (artifacts_dir / "answers.json").is_file() and data_dir.is_dir()

        @pytest.mark.points(1.5)
        def test_bad(answers):
            """The answer is wrong."""
            assert answers["x"] == 2, "x must be 2:\\nrecompute it"
        ''',
    )
    checks, error, outcome = _run(pytester, directory, {"answers.json": '{"x": 1}'})
    assert error is None
    assert list(checks) == ["test_good", "test_bad"]
    good, bad = checks["test_good"], checks["test_bad"]
    assert good == CheckResult("test_hidden::test_good", "The answer is right.", 2.0, 2.0, True)
    assert (bad.points, bad.max_points, bad.passed) == (0.0, 1.5, False)
    assert bad.message == "x must be 2:\nrecompute it"
    outcome.assert_outcomes(passed=1, failed=1)


def test_messages_never_show_code_or_tracebacks(pytester: pytest.Pytester) -> None:
    directory = _exercise(
        pytester,
        """
        import pytest
        from deepgrade.errors import InputError

        @pytest.mark.points(1)
        def test_bare_assert(hidden):
            assert hidden["n"][0] == 7

        @pytest.mark.points(1)
        def test_exception(hidden):
            {}[hidden["n"][0]]

        @pytest.mark.points(1)
        def test_input_error():
            raise InputError("/artifacts/model.keras", "the saved model uses a Lambda layer")

        @pytest.mark.points(1)
        def test_fail():
            pytest.fail("train for more epochs")

        @pytest.mark.points(1)
        def test_missing_answer(answers):
            assert answers["y"] == 1

        @pytest.mark.points(1)
        def test_missing_artifact(history):
            pass

        @pytest.mark.points(1)
        def test_skipped():
            pytest.skip(reason="not today")
        """,
    )
    checks, error, _ = _run(pytester, directory, {"answers.json": '{"x": 1}'})
    assert error is None
    messages = {name: check.message for name, check in checks.items()}
    assert messages == {
        "test_bare_assert": "this check failed",
        "test_exception": "this check could not run: KeyError",
        "test_input_error": (
            "this check could not run: InputError "
            "(model.keras: the saved model uses a Lambda layer)"
        ),
        "test_fail": "train for more epochs",
        "test_missing_answer": (
            "answers.json has no 'y': the locked cell that saves it did not run "
            "(an earlier cell may have failed)"
        ),
        "test_missing_artifact": (
            "missing artifact history.json: the locked cell that saves it did not run"
        ),
        "test_skipped": "this check was skipped: not today",
    }
    assert not any("6" in m or "hidden" in m for m in messages.values())
    assert sum(c.points for c in checks.values()) == 0


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        ({}, "missing artifact answers.json"),
        ({"answers.json": "{oops"}, "answers.json is not valid JSON"),
        ({"answers.json": "[1, 2]"}, "answers.json must hold a JSON object"),
    ],
)
def test_answers_fail_closed(
    pytester: pytest.Pytester, artifacts: dict[str, str], message: str
) -> None:
    directory = _exercise(
        pytester,
        """
        import pytest

        @pytest.mark.points(1)
        def test_one(answers):
            pass

        @pytest.mark.points(1)
        def test_two(answers):
            pass
        """,
    )
    checks, error, _ = _run(pytester, directory, artifacts)
    assert error is None
    assert [c.passed for c in checks.values()] == [False, False]
    assert all(c.message.startswith(message) for c in checks.values())


def test_history_and_model_fixtures_fail_closed(pytester: pytest.Pytester) -> None:
    directory = _exercise(
        pytester,
        """
        import pytest

        @pytest.mark.points(1)
        def test_history(history):
            pass

        @pytest.mark.points(1)
        def test_model(load_model):
            load_model("model.keras")

        @pytest.mark.points(1)
        def test_threshold(threshold):
            threshold("no_such_threshold")
        """,
    )
    artifacts = {"history.json": '{"loss": ["a"]}', "model.keras": "not a zip"}
    checks, _, _ = _run(pytester, directory, artifacts)
    assert checks["test_history"].message.startswith("history.json must map each metric")
    assert checks["test_model"].message == (
        "this check could not run: InputError (model.keras: not a Keras .keras file "
        "(not a zip archive); save with model.save)"
    )
    assert "no threshold 'no_such_threshold'" in checks["test_threshold"].message


def test_check_without_points_is_a_collection_error(pytester: pytest.Pytester) -> None:
    directory = _exercise(
        pytester,
        """
        import pytest

        @pytest.mark.points(1)
        def test_marked():
            pass

        def test_forgotten():
            pass

        @pytest.mark.points(0)
        def test_zero():
            pass
        """,
    )
    checks, error, outcome = _run(pytester, directory)
    assert error is not None
    assert "test_forgotten: no @pytest.mark.points(n) marker" in error
    assert "test_zero: points must be a positive number" in error
    assert list(checks) == ["test_marked"]
    assert not checks["test_marked"].passed  # nothing runs when the checks are broken
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR


def test_broken_check_file_sets_error(pytester: pytest.Pytester) -> None:
    directory = _exercise(
        pytester,
        """
        import pytest

        @pytest.mark.points(1)
        def test_fine():
            pass
        """,
    )
    (directory / "test_broken.py").write_text("def oops(:\n")
    checks, error, _ = _run(pytester, directory)
    assert error == "could not collect test_broken.py"
    assert checks["test_fine"].message.startswith("this check did not run")


def test_results_file_lists_checks_before_they_run(pytester: pytest.Pytester) -> None:
    """If pytest dies mid-run, the runner still knows every check and its points."""
    directory = _exercise(
        pytester,
        """
        import json, pytest

        @pytest.mark.points(3)
        def test_peek(pytestconfig):
            lines = open(pytestconfig.getoption("--dg-results")).read().splitlines()
            data = json.loads(lines[-1])
            assert len(lines) == 1 and data["complete"] is False and data["error"] is None
            assert [c["max_points"] for c in data["checks"]] == [3.0, 1.0]
            assert [c["done"] for c in data["checks"]] == [False, False]

        @pytest.mark.points(1)
        def test_later():
            pass
        """,
    )
    checks, error, _ = _run(pytester, directory)
    assert error is None
    assert [c.passed for c in checks.values()] == [True, True]


def test_student_message_cuts_long_text() -> None:
    message = student_message(AssertionError("x" * 2000))
    assert len(message) <= 600 and message.endswith("...")
    assert student_message(InputError(Path("/a/b.json"), "bad")) == (
        "this check could not run: InputError (b.json: bad)"
    )


def test_results_round_trip_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    check = CheckResult("t::a", "A", 1.0, 1.0, True)
    line = encode_snapshot([check], [True], error=None, complete=True, measurements={"a": 0.5})
    path.write_bytes(line + line[:10])  # a crash mid-line leaves the last whole one readable
    assert read_results(path) == Snapshot((check,), (True,), True, None, {"a": 0.5})
    path.write_text(json.dumps({"version": 99, "checks": []}) + "\n")
    with pytest.raises(InputError, match="not version 2"):
        read_results(path)
    with pytest.raises(InputError, match="no results file"):
        read_results(tmp_path / "absent.json")


# ---------------------------------------------------------------- the runner

FACTS = '''
import json, os, socket, sys
from pathlib import Path
import pytest
import deepgrade

@pytest.mark.points(1)
def test_facts(artifacts_dir, data_dir):
    """Reports what the check process sees, as its failure message."""
    try:
        (artifacts_dir / "forged.json").write_text("{}")
        artifacts_writable = True
    except OSError:
        artifacts_writable = False
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1).close()
        network = "connected"
    except OSError as exc:
        network = type(exc).__name__
    facts = {
        "deepgrade": deepgrade.__file__,
        "repo_visible": sorted(p.name for p in Path(REPO).glob("*")) if Path(REPO).exists() else [],
        "artifacts_writable": artifacts_writable,
        "data": sorted(p.name for p in data_dir.iterdir()),
        "data_text": (data_dir / "labels.txt").read_text(),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }
    pytest.fail(json.dumps(facts))
'''


def _spec_dir(tmp_path: Path, checks: str, conftest: str = "") -> Path:
    directory = tmp_path / "ex"
    directory.mkdir()
    (directory / "spec.toml").write_text(SPEC.format(name="ex"))
    (directory / "test_hidden.py").write_text(textwrap.dedent(checks))
    if conftest:
        (directory / "conftest.py").write_text(textwrap.dedent(conftest))
    (tmp_path / "artifacts").mkdir()
    return directory


def _run_checks(tmp_path: Path, directory: Path, **kwargs: Any) -> Any:
    from deepgrade.checks.runner import run_checks
    from deepgrade.exercise import load_spec

    data = tmp_path / "labels.txt"
    data.write_text("0 1 2")
    spec = load_spec(directory)
    return run_checks(
        spec,
        resolve_profile(spec, "smoke", data_files=[data]),
        tmp_path / "artifacts",
        workdir=tmp_path / "work",
        **kwargs,
    )


def test_sandboxed_checks_see_only_their_inputs(tmp_path: Path) -> None:
    from deepgrade.sandbox import find_bwrap, unavailable_reason

    assert find_bwrap() is not None, unavailable_reason()
    repo = Path(__file__).resolve().parents[1]
    directory = _spec_dir(tmp_path, FACTS.replace("REPO", repr(str(repo))))
    report = _run_checks(tmp_path, directory)
    assert report.error is None
    facts = json.loads(report.checks[0].message)
    assert facts == {
        "deepgrade": "/opt/deepgrade/lib/deepgrade/__init__.py",
        "repo_visible": [".venv"],  # only the interpreter, bound at its own path
        "artifacts_writable": False,
        "data": ["labels.txt"],
        "data_text": "0 1 2",
        "pythonpath": "/opt/deepgrade/lib",
    }
    assert (tmp_path / "work" / "checks" / "pytest.log").read_text().strip()


def test_unsafe_checks_run_the_same_plugin_on_host_paths(tmp_path: Path) -> None:
    import deepgrade

    directory = _spec_dir(tmp_path, FACTS.replace("REPO", repr(str(tmp_path / "absent"))))
    report = _run_checks(tmp_path, directory, unsafe=True)
    assert report.error is None
    facts = json.loads(report.checks[0].message)
    assert facts["deepgrade"] == deepgrade.__file__
    assert facts["data"] == ["labels.txt"] and facts["data_text"] == "0 1 2"
    assert facts["artifacts_writable"] is True  # unsafe: nothing is read-only


def test_crash_mid_run_keeps_finished_checks_and_sets_error(tmp_path: Path) -> None:
    directory = _spec_dir(
        tmp_path,
        """
        import os, pytest

        @pytest.mark.points(2)
        def test_first():
            pass

        @pytest.mark.points(1)
        def test_crash():
            os._exit(3)

        @pytest.mark.points(1)
        def test_after():
            pass
        """,
    )
    report = _run_checks(tmp_path, directory, unsafe=True)
    assert report.verdict is Verdict.ARTIFACT_REJECTED
    assert report.error.startswith(
        "the hidden checks stopped at 'test_crash': they crashed or were stopped (exit status 3)"
    )
    assert [(c.check_id, c.passed) for c in report.checks] == [
        ("test_hidden::test_first", True),
        ("test_hidden::test_crash", False),
        ("test_hidden::test_after", False),
    ]
    assert (report.points, report.max_points) == (2.0, 4.0)


def test_no_results_file_falls_back_to_the_checks_in_source(tmp_path: Path) -> None:
    directory = _spec_dir(
        tmp_path,
        '''
        import pytest

        @pytest.mark.points(3)
        def test_one():
            """First check."""

        @pytest.mark.points(1.5)
        def test_two():
            pass

        def helper():
            pass
        ''',
        conftest="import os\nos._exit(5)\n",
    )
    report = _run_checks(tmp_path, directory, unsafe=True)
    assert report.error == "pytest reported no checks (exit status 5)"
    assert report.verdict is Verdict.GRADER_ERROR
    assert [(c.check_id, c.title, c.max_points, c.passed) for c in report.checks] == [
        ("test_hidden::test_one", "First check.", 3.0, False),
        ("test_hidden::test_two", "test_two", 1.5, False),
    ]


def test_another_exercises_profile_is_the_graders_error(tmp_path: Path) -> None:
    from deepgrade.checks.runner import run_checks
    from deepgrade.errors import DeepgradeError
    from deepgrade.exercise import load_spec

    spec = load_spec(_spec_dir(tmp_path, ""))
    other = resolve_profile(replace(spec, name="other"), "smoke", data_files=())
    with pytest.raises(DeepgradeError, match="the other profile cannot check ex"):
        run_checks(spec, other, tmp_path, workdir=tmp_path, unsafe=True)


def test_missing_artifact_folder_fails_every_check_closed(tmp_path: Path) -> None:
    from deepgrade.checks.runner import run_checks
    from deepgrade.exercise import load_spec

    directory = _spec_dir(
        tmp_path,
        """
        import pytest

        @pytest.mark.points(1)
        def test_needs_answers(answers):
            pass
        """,
    )
    spec = load_spec(directory)
    profile = resolve_profile(spec, "smoke", data_files=())
    report = run_checks(spec, profile, tmp_path / "never-made", workdir=tmp_path / "work")
    assert report.error is None
    assert [c.message for c in report.checks] == [
        "missing artifact answers.json: the locked cell that saves it did not run"
    ]


def test_measurements_reach_the_results_file_without_changing_points(
    pytester: pytest.Pytester,
) -> None:
    directory = _exercise(
        pytester,
        """
        import pytest

        @pytest.mark.points(2)
        def test_accuracy(measure):
            '''Accuracy'''
            measure("test_accuracy", 0.25)
            assert 0.25 >= 0.5, "too low"
        """,
    )
    checks, error, _ = _run(pytester, directory)
    assert error is None
    assert checks["test_accuracy"].points == 0.0
    measured = read_results(pytester.path / "out" / "results.json").measurements
    assert measured == {"test_accuracy": 0.25}
