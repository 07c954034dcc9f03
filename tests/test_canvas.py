"""Canvas: reading its gradebook export as the roster, writing the CSV its import accepts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from deepgrade.canvas import read_roster
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.export import export_canvas
from deepgrade.gradebook import Gradebook
from deepgrade.results import CheckResult, SubmissionResult, Verdict

# As Canvas's Grades > Export writes it: a byte-order mark, the identity columns, a Points
# Possible row, the test student Canvas adds, existing assignments and read-only totals.
CANVAS_EXPORT = (
    "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,SIGNS CNN (4411),Quiz 1 (4410),"
    "Current Score,Final Score\n"
    "    Points Possible,,,,,25.00,10.00,(read only),(read only)\n"
    '"Silva, Ana",101,20231001,ana.silva,CNN 2026,,8.00,80.00,32.00\n'
    '"Souza, Bruno",102,20231002,bruno,CNN 2026,,9.00,90.00,36.00\n'
    '"Lima, Caio",103,20231003,caio,CNN 2026,,,,\n'
    '"Student, Test",199,,,CNN 2026,,,,\n'
)


def roster_file(tmp_path: Path, text: str = CANVAS_EXPORT) -> Path:
    path = tmp_path / "canvas_export.csv"
    path.write_text(text, encoding="utf-8")
    return path


def result(
    student: str, points: float, verdict: Verdict = Verdict.GRADED, exercise: str = "signs_cnn"
) -> tuple[SubmissionResult, str]:
    return (
        SubmissionResult(
            student=student,
            exercise=exercise,
            profile="smoke",
            content_hash=f"h-{student}",
            verdict=verdict,
            detail="" if verdict is Verdict.GRADED else "hidden checks could not start",
            checks=(CheckResult("a.py::test_one", "First check", points, 25.0, points == 25.0),),
            stage1_seconds=10.0,
            stage2_seconds=2.0,
        ),
        "2026-11-30T12:00:00+00:00",
    )


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_the_roster_keeps_identity_columns_and_students_not_the_points_row(tmp_path: Path) -> None:
    roster = read_roster(roster_file(tmp_path))
    assert roster.columns == ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
    assert [s["Student"] for s in roster.students] == [
        "Silva, Ana",
        "Souza, Bruno",
        "Lima, Caio",
        "Student, Test",
    ]
    assert roster.assignments == (
        "SIGNS CNN (4411)",
        "Quiz 1 (4410)",
        "Current Score",
        "Final Score",
    )
    assert roster.match("ana.silva") == 0  # SIS Login ID
    assert roster.match("20231002") == 1  # SIS User ID
    assert roster.match("103") == 2  # Canvas ID
    assert roster.match("ANA.SILVA") == 0  # case does not matter
    assert roster.match("nobody") is None
    assert roster.assignment_column("SIGNS CNN") == "SIGNS CNN (4411)"  # updates the assignment
    assert roster.assignment_column("signs_cnn") == "signs_cnn"  # a new one


def test_export_writes_canvas_import_with_one_assignment_column(tmp_path: Path) -> None:
    roster = read_roster(roster_file(tmp_path))
    graded = [
        result("ana.silva", 23.5),
        result("bruno", 0.0, Verdict.GRADER_ERROR),  # not a grade: blank, listed
        result("zeca", 25.0),  # not in the roster: listed
    ]
    out = tmp_path / "out" / "canvas.csv"
    exported = export_canvas(graded, out, roster=roster, assignment="SIGNS CNN")
    assert exported.files == [out]
    assert rows(out) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "SIGNS CNN (4411)"],
        ["Points Possible", "", "", "", "", "25"],
        ["Silva, Ana", "101", "20231001", "ana.silva", "CNN 2026", "23.5"],
        ["Souza, Bruno", "102", "20231002", "bruno", "CNN 2026", ""],
        ["Lima, Caio", "103", "20231003", "caio", "CNN 2026", ""],
        ["Student, Test", "199", "", "", "CNN 2026", ""],
    ]
    assert len(exported.left_out) == 2
    assert exported.left_out[0].startswith("signs_cnn/bruno: grader_error")
    assert exported.left_out[1].startswith("signs_cnn/zeca: not one student in canvas_export.csv")
    assert "3 student(s) of the roster have no result here" in exported.notes[1]


def test_two_submissions_of_one_student_never_both_reach_canvas(tmp_path: Path) -> None:
    roster = read_roster(roster_file(tmp_path))
    graded = [result("bruno", 20.0), result("20231002", 25.0)]  # login, then SIS id: one person
    out = tmp_path / "canvas.csv"
    exported = export_canvas(graded, out, roster=roster)
    assert rows(out)[3][-1] == "20"
    assert exported.left_out == [
        "signs_cnn/20231002: the same roster student as bruno; neither should be exported "
        "twice, so this one is left out"
    ]


def test_one_exercise_per_canvas_file(tmp_path: Path) -> None:
    roster = read_roster(roster_file(tmp_path))
    graded = [result("ana.silva", 20.0), result("bruno", 5.0, exercise="fashion_vgg")]
    with pytest.raises(DeepgradeError, match=r"2 exercises \(fashion_vgg, signs_cnn\).*--exercise"):
        export_canvas(graded, tmp_path / "canvas.csv", roster=roster)
    assert not (tmp_path / "canvas.csv").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("student,exercise,points\nana,signs_cnn,3\n", "no 'Student' or 'ID' column"),
        (b"Student,ID\n\xff\xfe,1\n", "not UTF-8 text"),
        ("Student,ID,ID\nAna,1,2\n", "a column name appears twice"),
    ],
)
def test_a_file_that_is_not_a_canvas_export_is_named_with_what_is_wrong(
    tmp_path: Path, content: str | bytes, problem: str
) -> None:
    path = tmp_path / "roster.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=problem) as raised:
        read_roster(path)
    assert str(path) in str(raised.value)


def test_cli_canvas_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deepgrade.cli import main

    gradebook = tmp_path / "gb.db"
    with Gradebook(gradebook) as book:
        for graded, _ in (result("ana.silva", 25.0), result("caio", 12.0)):
            book.record(graded)
    out = tmp_path / "canvas.csv"
    argv = ["export", "--format", "canvas", "--gradebook", str(gradebook), "--out", str(out)]
    assert main(argv) == 2  # no roster: a usage mistake, nothing written
    assert "--format canvas needs --roster" in capsys.readouterr().err
    assert not out.exists()
    assert main([*argv, "--roster", str(roster_file(tmp_path)), "--assignment", "SIGNS CNN"]) == 0
    printed = capsys.readouterr().out
    assert "exported 2 results to 1 file(s)" in printed
    assert "column 'SIGNS CNN (4411)': 2 score(s) of 25 points" in printed
    assert [row[-1] for row in rows(out)] == ["SIGNS CNN (4411)", "25", "25", "", "12", ""]
