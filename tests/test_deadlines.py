"""Deadlines, extensions and the late policy: parsed once, shown beside the points earned."""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from deepgrade.deadlines import read_deadlines
from deepgrade.errors import InputError
from deepgrade.export import export_canvas, export_csv, gradescope_results
from deepgrade.feedback import render_page
from deepgrade.gradebook import Gradebook, SubmittedAt
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.submission_times import read_times
from deepgrade.submissions import discover

DEADLINES = """\
timezone = "America/Sao_Paulo"

[due]
signs_cnn = 2026-12-07T23:59:00
fashion_vgg = "2026-12-14 23:59"
catdog_split = 2026-12-21

[extensions.signs_cnn]
ana = 2026-12-09T23:59:00
bo = 2

[late]
per_day = 0.1
cap = 0.3
cutoff_days = 5
grace_minutes = 5
"""
SAO_PAULO = timezone(timedelta(hours=-3))  # no daylight saving time in December since 2019
DUE = datetime(2026, 12, 7, 23, 59, tzinfo=SAO_PAULO)
EXERCISES = ["signs_cnn", "fashion_vgg", "catdog_split"]


def deadlines_file(tmp_path: Path, text: str = DEADLINES) -> Path:
    path = tmp_path / "deadlines.toml"
    path.write_text(text, encoding="utf-8")
    return path


def result(student: str, submitted: datetime | None, points: float = 20.0) -> SubmissionResult:
    return SubmissionResult(
        student=student,
        exercise="signs_cnn",
        profile="smoke",
        content_hash=f"h-{student}",
        verdict=Verdict.GRADED,
        detail="",
        checks=(CheckResult("a.py::test_one", "First check", points, 25.0, points == 25.0),),
        stage1_seconds=1.0,
        stage2_seconds=1.0,
        submitted_at=submitted.isoformat() if submitted else "",
    )


def test_due_dates_in_the_courses_zone_and_extensions(tmp_path: Path) -> None:
    deadlines = read_deadlines(deadlines_file(tmp_path), EXERCISES)
    assert deadlines.due["signs_cnn"] == DUE
    assert deadlines.due["fashion_vgg"] == datetime(2026, 12, 14, 23, 59, tzinfo=SAO_PAULO)
    assert deadlines.due["catdog_split"] == datetime(2026, 12, 21, 23, 59, 59, tzinfo=SAO_PAULO)
    assert deadlines.due_for("signs_cnn", "ana") == (
        datetime(2026, 12, 9, 23, 59, tzinfo=SAO_PAULO),
        True,
    )
    assert deadlines.due_for("signs_cnn", "bo") == (DUE + timedelta(days=2), True)
    assert deadlines.due_for("signs_cnn", "cy") == (DUE, False)
    assert deadlines.due_for("bn_discovery", "cy") is None


@pytest.mark.parametrize(
    ("student", "after_due", "days", "penalty", "accepted"),
    [
        ("cy", timedelta(hours=-1), 0, 0.0, True),  # early
        ("cy", timedelta(minutes=4), 0, 0.0, True),  # within the 5 minutes of grace
        ("cy", timedelta(minutes=6), 1, 2.5, True),  # a started day: 10% of 25 points
        ("cy", timedelta(days=2, hours=1), 3, 7.5, True),
        ("cy", timedelta(days=4, hours=1), 5, 7.5, True),  # capped at 30%
        ("cy", timedelta(days=5, hours=1), 6, 20.0, False),  # past the cutoff: nothing counts
        ("ana", timedelta(days=1), 0, 0.0, True),  # her extension
        ("bo", timedelta(days=2, hours=2), 1, 2.5, True),  # late even with two more days
    ],
)
def test_the_penalty_is_the_policys_share_of_the_points(
    tmp_path: Path, student: str, after_due: timedelta, days: int, penalty: float, accepted: bool
) -> None:
    deadlines = read_deadlines(deadlines_file(tmp_path))
    late = deadlines.assess(result(student, DUE + after_due))
    assert late is not None and late.known
    assert (late.days_late, late.penalty, late.accepted) == (days, penalty, accepted)
    graded = deadlines.apply([(result(student, DUE + after_due), "t")])[0][0]
    assert graded.points == 20.0  # what the checks gave is kept
    assert graded.final_points == 20.0 - penalty


def test_an_unknown_time_is_not_taken_as_on_time(tmp_path: Path) -> None:
    late = read_deadlines(deadlines_file(tmp_path)).assess(result("cy", None))
    assert late is not None and not late.known and late.penalty == 0
    assert late.describe() == "submission time unknown: lateness not assessed"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[due]\nnope = 2026-12-07T23:59:00\n", "due.nope: no such exercise"),
        ("timezone = 'Mars/Olympus'\n", "timezone: unknown time zone 'Mars/Olympus'"),
        ("[late]\nper_day = 10\n", "late.per_day: expected a fraction from 0 to 1, got 10"),
        ("[late]\nper_hour = 0.1\n", "late: unknown key(s) per_hour"),
        ("[due]\nsigns_cnn = 'next friday'\n", "due.signs_cnn: 'next friday' is not a date"),
        ("[extensions.signs_cnn]\nana = 2\n", "extensions.signs_cnn: the exercise has no due"),
        ("deadline = 1\n", "unknown key(s) deadline"),
        ("[due\n", "not valid TOML"),
    ],
)
def test_a_wrong_deadlines_file_is_named_with_the_key(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = deadlines_file(tmp_path, text)
    with pytest.raises(InputError, match=re.escape(problem)) as raised:
        read_deadlines(path, EXERCISES)
    assert raised.value.path == path


def test_times_from_nbgrader_gradescope_and_a_csv(tmp_path: Path) -> None:
    """nbgrader's submitted/<student>/<assignment>/ with its timestamp.txt, Gradescope's
    metadata beside a notebook, a CSV over both; a broken file is reported, not fatal."""
    submitted = tmp_path / "submitted"
    notebook = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    for student, extra in [
        ("ana", ("timestamp.txt", "2026-12-08 02:30:00.123456 UTC\n")),
        ("bo", ("submission_metadata.json", '{"created_at": "2026-12-09T10:00:00.5-03:00"}')),
        ("cy", ("timestamp.txt", "yesterday\n")),
        ("di", ("timestamp.txt", "2026-12-01 10:00:00 UTC")),
    ]:
        folder = submitted / student / "signs"
        folder.mkdir(parents=True)
        (folder / "signs_cnn.ipynb").write_text(notebook)
        (folder / extra[0]).write_text(extra[1])
    times_csv = tmp_path / "times.csv"
    times_csv.write_text("student,submitted_at\ndi,2026-12-07T20:00:00\n")
    found = discover(submitted, "signs_cnn.ipynb", "signs")
    assert [s.student for s in found.submissions] == ["ana", "bo", "cy", "di"]
    assert found.submissions[0].path == submitted / "ana" / "signs" / "signs_cnn.ipynb"
    times = read_times(found.submissions, "signs_cnn", SAO_PAULO, times_csv)
    by_student = {t.student: (t.submitted_at, t.source) for t in times.found}
    assert by_student == {
        "ana": (datetime(2026, 12, 8, 2, 30, 0, 123456, tzinfo=UTC), "timestamp.txt"),
        "bo": (
            datetime(2026, 12, 9, 10, 0, 0, 500000, tzinfo=SAO_PAULO),
            "submission_metadata.json",
        ),
        "di": (datetime(2026, 12, 7, 20, 0, tzinfo=SAO_PAULO), "times.csv"),  # the CSV wins
    }
    assert len(times.problems) == 1
    assert times.problems[0].startswith("cy: submission time unknown: ")
    assert "timestamp.txt: 'yesterday' is not a date" in times.problems[0]


def test_the_gradebook_keeps_times_apart_from_grading(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "gb.db") as book:
        book.record(result("ana", None))
        assert book.latest()[0][0].submitted_at == ""
        moment = DUE + timedelta(days=1)
        book.record_times([SubmittedAt("ana", "signs_cnn", "h-ana", moment, "times.csv")])
        assert book.latest()[0][0].submitted_at == moment.isoformat()  # learnt after grading


def test_exports_and_the_page_show_the_penalty_beside_the_points(tmp_path: Path) -> None:
    deadlines = read_deadlines(deadlines_file(tmp_path))
    graded = deadlines.apply(
        [
            (result("cy", DUE + timedelta(days=1, hours=1)), "t"),  # 2 days late: -5
            (result("ana", DUE), "t"),  # on time
            (result("di", None), "t"),  # time unknown
        ]
    )
    export_csv(graded, tmp_path / "grades.csv")
    with (tmp_path / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert [rows["cy"][k] for k in ("points", "days_late", "late_penalty", "final_points")] == [
        "20", "2", "5", "15",
    ]  # fmt: skip
    assert [rows["ana"][k] for k in ("days_late", "late_penalty", "final_points")] == [
        "0",
        "0",
        "20",
    ]
    assert rows["di"]["final_points"] == "" and rows["di"]["due"] == DUE.isoformat()

    data = gradescope_results(graded[0][0])
    assert data["score"] == 15.0
    assert "Submission: 2 day(s) late: -5 point(s)" in str(data["output"])

    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS Login ID\nC,1,cy\nA,2,ana\nD,3,di\n")
    from deepgrade.canvas import read_roster

    exported = export_canvas(graded, tmp_path / "canvas.csv", roster=read_roster(roster))
    with (tmp_path / "canvas.csv").open() as handle:
        scores = [row[-1] for row in csv.reader(handle)][2:]
    assert scores == ["15", "20", ""]  # di's penalty is unknown: left out, and said
    assert "signs_cnn/di: its submission time is unknown" in exported.left_out[0]

    page = render_page(graded[0][0], "t", "SIGNS")
    assert 'id="late"' in page and "2 day(s) late: -5 point(s)" in page
    assert "Points that count: 15 / 25" in page and "20 / 25 points" in page


def test_grade_reads_nbgrader_layout_and_shows_who_was_late(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deepgrade grade` on nbgrader's submitted/ folder, with the course's deadlines.toml:
    the times are stored, the late table and the export show the penalty."""
    from deepgrade import tinycourse
    from deepgrade.cli import main

    course = tinycourse.write_course(tmp_path / "course")
    flat = tmp_path / "flat"
    tinycourse.write_submissions(flat, ["ana", "bo"])
    for student, stamp in [("ana", "2026-12-07 12:00:00 UTC"), ("bo", "2026-12-09 12:00:00 UTC")]:
        folder = course / "submitted" / student / "tiny"
        folder.mkdir(parents=True)
        shutil.copy(flat / f"{student}.ipynb", folder / "tiny.ipynb")
        (folder / "timestamp.txt").write_text(stamp)
    (course / "deadlines.toml").write_text(
        "[due]\ntiny = 2026-12-07T23:59:00Z\n[late]\nper_day = 0.25\n"
    )
    gradebook = str(course / "gb.db")
    common = ["--root", str(course)]
    code = main([*common, "grade", str(course / "submitted"), "--exercise", "tiny",
                 "--gradebook", gradebook, "--workdir", str(tmp_path / "runs")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "late submissions (deadlines.toml)" in printed and "bo" in printed
    out = tmp_path / "grades.csv"
    assert (
        main([*common, "export", "--format", "csv", "--gradebook", gradebook, "--out", str(out)])
        == 0
    )
    with out.open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert rows["ana"]["days_late"] == "0" and rows["ana"]["final_points"] == rows["ana"]["points"]
    assert (
        rows["bo"]["days_late"] == "2" and rows["bo"]["submitted_at"] == "2026-12-09T12:00:00+00:00"
    )
    earned = float(rows["bo"]["points"])
    assert earned > 0 and float(rows["bo"]["final_points"]) == pytest.approx(earned / 2)
