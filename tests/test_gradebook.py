"""The gradebook and its exports: idempotent per content hash, latest per student."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deepgrade.errors import InputError
from deepgrade.export import export_csv, export_gradescope
from deepgrade.gradebook import Gradebook
from deepgrade.results import CheckResult, SubmissionResult, Verdict


def result(
    student: str, content: str, points: float, verdict: Verdict = Verdict.GRADED
) -> SubmissionResult:
    return SubmissionResult(
        student=student,
        exercise="signs_cnn",
        profile="smoke",
        content_hash=content,
        verdict=verdict,
        detail="" if verdict is Verdict.GRADED else "cell 3 raised ValueError: bad",
        checks=(
            CheckResult(
                "a.py::test_one",
                "First check",
                points,
                2.0,
                points == 2.0,
                "" if points == 2.0 else "fix the first thing",
            ),
            CheckResult("a.py::test_two", "Second check", 1.0, 1.0, True),
        ),
        stage1_seconds=12.5,
        stage2_seconds=4.25,
        limits=("memory 4096 MiB",),
    )


def when(minute: int) -> datetime:
    return datetime(2026, 11, 23, 12, minute, tzinfo=UTC)


def test_record_is_idempotent_per_content_hash(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "gb.db") as book:
        book.record(result("ana", "h1", 0.0), when(0))
        book.record(result("ana", "h1", 2.0), when(1))  # same content re-graded: replaced
        assert book.has("ana", "signs_cnn", "smoke", "h1")
        assert not book.has("ana", "signs_cnn", "smoke", "h2")
        latest = book.latest()
    assert len(latest) == 1
    assert latest[0][0].points == 3.0


def test_latest_takes_each_students_newest_submission(tmp_path: Path) -> None:
    path = tmp_path / "gb.db"
    with Gradebook(path) as book:
        book.record(result("ana", "h1", 2.0), when(0))
        book.record(result("ana", "h2", 0.0, Verdict.CELL_ERROR), when(5))
        book.record(result("bo", "h3", 2.0), when(1))
    with Gradebook(path) as book:  # survives reopening
        latest = {r.student: (r, t) for r, t in book.latest("signs_cnn", "smoke")}
        assert book.latest("other") == []
    assert latest["ana"][0].content_hash == "h2"
    assert latest["ana"][0].verdict is Verdict.CELL_ERROR
    assert latest["ana"][1] == when(5).isoformat(timespec="seconds")
    assert latest["bo"][0].checks[0].passed


def test_not_a_gradebook_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "gb.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not a deepgrade gradebook"):
        Gradebook(bad)


def test_csv_export(tmp_path: Path) -> None:
    rows = [
        (result("ana", "h1", 2.0), "2026-11-23T12:00:00+00:00"),
        (result("bo", "h2", 0.0, Verdict.TIMEOUT), "2026-11-23T12:01:00+00:00"),
    ]
    export_csv(rows, tmp_path / "out" / "grades.csv")
    with (tmp_path / "out" / "grades.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [(r["student"], r["points"], r["max_points"], r["verdict"]) for r in table] == [
        ("ana", "3", "3", "graded"),
        ("bo", "1", "3", "timeout"),
    ]


def test_gradescope_export(tmp_path: Path) -> None:
    written = export_gradescope([(result("ana", "h1", 0.0), "t")], tmp_path).files
    assert written == [tmp_path / "signs_cnn" / "ana" / "results.json"]
    data = json.loads(written[0].read_text())
    assert data["score"] == 1.0
    assert data["tests"][0] == {
        "name": "First check",
        "number": "a.py::test_one",
        "score": 0.0,
        "max_score": 2.0,
        "status": "failed",
        "output": "fix the first thing",
        "output_format": "text",
        "visibility": "after_published",  # a hidden check: shown when grades are published
    }
    assert data["execution_time"] == 16.8
    assert data["output_format"] == "text" and "What to do:" in data["output"]


def test_gradescope_shows_the_specs_visible_checks_at_once(tmp_path: Path) -> None:
    graded = [(result("ana", "h1", 0.0), "t")]
    shown = {"signs_cnn": frozenset({"a.py::test_two"})}
    files = export_gradescope(graded, tmp_path, visible_checks=shown).files
    tests = json.loads(files[0].read_text())["tests"]
    assert [t["visibility"] for t in tests] == ["after_published", "visible"]


@pytest.mark.parametrize("value", ['"test_a::test_b"', '["architecture"]', "[1]"])
def test_visible_checks_must_be_check_ids(tmp_path: Path, value: str) -> None:
    import shutil

    from deepgrade.exercise import load_spec

    folder = tmp_path / "signs_cnn"
    shutil.copytree(Path(__file__).resolve().parents[1] / "autograder" / "signs_cnn", folder)
    spec = folder / "spec.toml"
    spec.write_text(f"visible_checks = {value}\n" + spec.read_text())
    with pytest.raises(InputError) as error:
        load_spec(folder)
    assert "spec.toml" in str(error.value) and "visible_checks" in str(error.value)
    spec.write_text(spec.read_text().replace(value, '["test_architecture::test_layers"]', 1))
    assert load_spec(folder).visible_checks == {"test_architecture::test_layers"}


def test_result_json_round_trip() -> None:
    original = result("ana", "h1", 2.0, Verdict.CELL_ERROR)
    again = SubmissionResult.from_json(json.loads(json.dumps(original.to_json())))
    assert again == original


def test_grader_errors_do_not_count_as_graded(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "gb.db") as book:
        book.record(result("ana", "h1", 0.0, Verdict.GRADER_ERROR))
        assert not book.has("ana", "signs_cnn", "smoke", "h1")
