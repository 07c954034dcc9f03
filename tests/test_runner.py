"""The batch runner, with a fake grader: order-free, resumable, never stopped by a failure."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from deepgrade import runner
from deepgrade.errors import SandboxUnavailable
from deepgrade.exercise import load_exercise
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import Gradebook
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path) -> GradeSettings:
    spec = load_exercise(ROOT / "autograder", "signs_cnn")
    return GradeSettings(
        spec=spec,
        profile=resolve_profile(spec, "smoke", data_files=()),
        release_notebook=tmp_path / "release.ipynb",
        workdir=tmp_path / "runs",
    )


@pytest.fixture
def submissions(tmp_path: Path) -> list[Submission]:
    made = []
    for name in ("ana", "bo", "crash", "dee"):
        path = tmp_path / f"{name}.ipynb"
        path.write_text(name)
        made.append(Submission(name, path))
    return made


class FakeGrader:
    """Stands in for grade_submission: records calls and GPU slots, crashes on 'crash'."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, submission: Submission, settings: GradeSettings) -> SubmissionResult:
        with self.lock:
            self.calls.append((submission.student, settings.gpu))
        if submission.student == "crash":
            raise RuntimeError("grader bug")
        check = CheckResult("t.py::test_x", "X", 1.0, 1.0, True)
        return SubmissionResult(
            submission.student,
            settings.spec.name,
            settings.profile.name,
            submission.content_hash,
            Verdict.GRADED,
            "",
            (check,),
            1.0,
            1.0,
        )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGrader:
    grader = FakeGrader()
    monkeypatch.setattr(runner, "grade_submission", grader)
    monkeypatch.setattr(runner, "require_sandbox", lambda unsafe: None)
    return grader


def test_batch_goes_on_after_a_grader_crash(
    tmp_path: Path, settings: GradeSettings, submissions: list[Submission], fake: FakeGrader
) -> None:
    events = []
    with Gradebook(tmp_path / "gb.db") as book:
        results = runner.grade_batch(submissions, settings, book, workers=2, on_event=events.append)
        stored = {r.student: r for r, _ in book.latest()}
    assert [r.student for r in results] == ["ana", "bo", "crash", "dee"]
    assert stored["crash"].verdict is Verdict.GRADER_ERROR
    assert "RuntimeError: grader bug" in stored["crash"].detail
    assert stored["dee"].points == 1.0
    assert [e.done for e in events] == [1, 2, 3, 4]


def test_batch_is_resumable(
    tmp_path: Path, settings: GradeSettings, submissions: list[Submission], fake: FakeGrader
) -> None:
    with Gradebook(tmp_path / "gb.db") as book:
        runner.grade_batch(submissions[:2], settings, book)
        fake.calls.clear()
        runner.grade_batch(submissions, settings, book)
        assert sorted(s for s, _ in fake.calls) == ["crash", "dee"]
        fake.calls.clear()
        (submissions[0].path).write_text("ana resubmits")  # new content: graded again
        runner.grade_batch(submissions, settings, book)
        assert sorted(s for s, _ in fake.calls) == ["ana", "crash"]  # grader errors are retried
        fake.calls.clear()
        runner.grade_batch(submissions, settings, book, force=True)
        assert len(fake.calls) == 4


def test_gpus_are_shared_out_to_workers(
    tmp_path: Path, settings: GradeSettings, submissions: list[Submission], fake: FakeGrader
) -> None:
    with Gradebook(tmp_path / "gb.db") as book:
        runner.grade_batch(submissions, settings, book, workers=2, gpus=("0", "1"))
    assert {gpu for _, gpu in fake.calls} <= {"0", "1"}
    assert all(gpu is not None for _, gpu in fake.calls)


def test_no_sandbox_refuses_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepgrade.sandbox

    monkeypatch.setattr(deepgrade.sandbox, "find_bwrap", lambda: None)
    with pytest.raises(SandboxUnavailable, match="--unsafe"):
        runner.require_sandbox(unsafe=False)
    runner.require_sandbox(unsafe=True)  # the explicit flag lets trusted regression run
