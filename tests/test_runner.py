"""The batch runner, with a fake grader: order-free, resumable, never stopped by a failure."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import make_gpu_tree

from deepgrade import nvidia, runner
from deepgrade.errors import SandboxUnavailable
from deepgrade.gpubatch import GpuRequest
from deepgrade.gpuslots import GpuSlot, cpu_plan, plan_slots, workers_per_gpu
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import Gradebook
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]


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
        self.calls: list[tuple[str, GpuSlot | None]] = []
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
    plan = plan_slots(2, _views(tmp_path), fraction=0.0, profile="smoke")
    with Gradebook(tmp_path / "gb.db") as book:
        runner.grade_batch(submissions, settings, book, slots=plan)
    assert {slot.gpu.index for _, slot in fake.calls if slot is not None} <= {0, 1}
    assert all(slot is not None for _, slot in fake.calls)


def test_no_sandbox_refuses_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepgrade.sandbox

    monkeypatch.setattr(deepgrade.sandbox, "find_bwrap", lambda: None)
    with pytest.raises(SandboxUnavailable, match="--unsafe"):
        runner.require_sandbox(unsafe=False)
    runner.require_sandbox(unsafe=True)  # the explicit flag lets trusted regression run


# ---------------------------------------------------------------- GPU slots from the profile


def _views(tmp_path: Path, count: int = 2) -> list[nvidia.SandboxGpu]:
    host = nvidia.read_host(**make_gpu_tree(tmp_path / "driver", count))
    return [nvidia.sandbox_view(host, gpu) for gpu in host.gpus]


def test_slots_follow_the_profiles_fraction_of_a_gpu(tmp_path: Path) -> None:
    assert [workers_per_gpu(f) for f in (1.0, 0.5, 0.3, 0.25, 0.2)] == [1, 2, 3, 4, 5]
    views = _views(tmp_path)
    quarter = plan_slots(10, views, fraction=0.25, profile="full")
    assert len(quarter.slots) == 8
    assert "2 GPU(s) hold 8 worker(s), so 8 run instead of 10" in quarter.note
    three = plan_slots(3, views, fraction=0.25, profile="full")
    assert [s.gpu.index for s in three.slots if s] == [0, 1, 0] and three.note == ""
    whole = plan_slots(4, views[:1], fraction=1.0, profile="full")
    assert len(whole.slots) == 1 and "1 GPU(s) hold 1 worker(s)" in whole.note
    assert plan_slots(3, views, fraction=0.0, profile="smoke").note == ""
    cpu = plan_slots(2, [], fraction=0.25, profile="full")
    assert cpu.slots == (None, None)
    assert cpu.note.startswith("the full profile asks for 0.25 of a GPU per worker and no --gpus")
    assert plan_slots(0, [], fraction=0.0, profile="smoke") == cpu_plan(1)
    assert cpu_plan(1).note == ""


class Concurrency:
    """A grader that notes how many submissions run on each GPU at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[int | None, int] = {}
        self.most: dict[int | None, int] = {}

    def __call__(self, submission: Submission, settings: GradeSettings) -> SubmissionResult:
        gpu = settings.gpu.gpu.index if settings.gpu is not None else None
        with self.lock:
            self.now[gpu] = self.now.get(gpu, 0) + 1
            self.most[gpu] = max(self.most.get(gpu, 0), self.now[gpu])
        time.sleep(0.05)
        with self.lock:
            self.now[gpu] -= 1
        return FakeGrader()(submission, settings)


def test_a_gpu_never_runs_more_workers_than_the_profile_allows(
    tmp_path: Path, settings: GradeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole_gpu = replace(settings.profile, spec=replace(settings.profile.spec, gpus=1.0))
    grader = Concurrency()
    monkeypatch.setattr(runner, "grade_submission", grader)
    monkeypatch.setattr(runner, "require_sandbox", lambda unsafe: None)
    subs = []
    for index in range(8):
        path = tmp_path / f"s{index}.ipynb"
        path.write_text(str(index))
        subs.append(Submission(f"s{index}", path))
    with Gradebook(tmp_path / "gb.db") as book:
        plan = plan_slots(6, _views(tmp_path), fraction=whole_gpu.gpus, profile="full")
        results = runner.grade_batch(subs, replace(settings, profile=whole_gpu), book, slots=plan)
    assert len(results) == 8
    assert set(grader.most) <= {0, 1} and all(n == 1 for n in grader.most.values())


# ---------------------------------------------------------------- the batch as the CLI shows it


def _grade_folder(folder: Path, book: Path, **kwargs: Any) -> int:
    from deepgrade import batch
    from deepgrade.project import Project

    options: dict[str, Any] = {
        "exercise": "signs_cnn",
        "profile": "smoke",
        "workers": 2,
        "gpus": GpuRequest(),
        "gradebook_path": book,
        "unsafe": True,
        "force": False,
        "as_json": True,
    }
    return batch.grade_folder(Project(ROOT), folder, **{**options, **kwargs})


def test_grade_json_prints_cached_results_too(
    tmp_path: Path,
    settings: GradeSettings,
    fake: FakeGrader,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deepgrade import batch

    monkeypatch.setattr(batch, "batch_settings", lambda *args, **kwargs: settings)
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("ana", "bo"):
        (folder / f"{name}.ipynb").write_text(name)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert _grade_folder(folder, tmp_path / "gb.db") == 0
    first = lines()
    assert [(r["student"], r["cached"]) for r in first] == [("ana", False), ("bo", False)]
    (folder / "cy.ipynb").write_text("cy")
    assert _grade_folder(folder, tmp_path / "gb.db") == 0
    second = lines()
    assert [(r["student"], r["cached"]) for r in second] == [
        ("ana", True),
        ("bo", True),
        ("cy", False),
    ]
    assert {**second[0], "cached": False} == first[0]  # the stored line, as it was printed
    assert sorted(s for s, _ in fake.calls) == ["ana", "bo", "cy"]
    assert _grade_folder(folder, tmp_path / "gb.db", force=True) == 0
    assert [r["cached"] for r in lines()] == [False, False, False]


def test_the_batch_says_when_a_gpu_profile_gets_no_gpu(
    tmp_path: Path, settings: GradeSettings, fake: FakeGrader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from deepgrade import batch

    full = resolve_profile(settings.spec, "full", data_files=(), model_files=())
    assert full.gpus == 0.25  # signs_cnn's full profile asks for a quarter of a GPU
    console = Console(record=True, width=300)
    monkeypatch.setattr(batch, "Console", lambda **_: console)
    monkeypatch.setattr(batch, "batch_settings", lambda *a, **k: replace(settings, profile=full))
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "ana.ipynb").write_text("ana")
    assert _grade_folder(folder, tmp_path / "gb.db", as_json=False, profile="full") == 0
    said = console.export_text()
    assert "the full profile asks for 0.25 of a GPU per worker and no --gpus was given" in said
    monkeypatch.setattr(batch, "batch_settings", lambda *a, **k: settings)
    console.export_text(clear=True)
    assert _grade_folder(folder, tmp_path / "gb2.db", as_json=False) == 0
    assert "GPU" not in console.export_text()
