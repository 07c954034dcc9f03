"""Exports of the gradebook: a CSV for the LMS, Gradescope's results.json per submission and
the CSV Canvas's gradebook import accepts.

Exporters share one shape (results in, files out and what was left out) and are found by name
in `EXPORTERS`, the way papermill finds its I/O handlers, so a new LMS format is one function
and one registry line. A grader error is no grade: the CSV leaves its points empty and Gradescope
gets no file for it (the export says how many were left out and why), never a 0 out of 0.
Every result passes redact.withhold on its way out (its exercise's secrets when given, the
generic backstop otherwise), so even a result stored before a leak was fixed exports clean.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from deepgrade.canvas import MATCH_ORDER, CanvasColumn, Roster, write_import
from deepgrade.errors import DeepgradeError
from deepgrade.redact import Secrets, withhold
from deepgrade.results import SubmissionResult, Verdict
from deepgrade.verdicts import explain

Graded = tuple[SubmissionResult, str]  # a result and when it was graded (ISO 8601)


@dataclass(frozen=True)
class Exported:
    """What an export wrote, and the results it left out with why (one line each)."""

    files: list[Path]
    left_out: list[str]
    notes: list[str] = field(default_factory=list)  # what else the reader should know


class Exporter(Protocol):
    def __call__(
        self,
        results: Sequence[Graded],
        out: Path,
        *,
        secrets: Mapping[str, Secrets] | None = None,
        visible_checks: Mapping[str, frozenset[str]] | None = None,
        roster: Roster | None = None,
        assignment: str | None = None,
    ) -> Exported: ...


def visible_results(
    results: Sequence[Graded], secrets: Mapping[str, Secrets] | None
) -> list[Graded]:
    """The results as students may read them (see redact): by exercise name, `secrets`."""
    found = secrets or {}
    return [(withhold(result, found.get(result.exercise)), when) for result, when in results]


def is_no_grade(result: SubmissionResult) -> bool:
    """A grader error: the grader failed, not the student; grading again retries it."""
    return result.verdict is Verdict.GRADER_ERROR


def left_out_line(result: SubmissionResult) -> str:
    return (
        f"{result.exercise}/{result.student}: grader_error ({result.detail[:200]}); "
        "fix the grader's problem and grade again"
    )


CSV_COLUMNS = (
    "student",
    "exercise",
    "profile",
    "points",
    "max_points",
    "verdict",
    "detail",
    "unsafe",
    "unlimited",
    "graded_at",
    "content_hash",
    "submitted_at",
    "due",
    "days_late",
    "late_penalty",
    "final_points",
)


def _late_columns(result: SubmissionResult, blank: bool) -> tuple[str, ...]:
    """submitted_at, due, days_late, late_penalty, final_points ("" where unknown)."""
    late = result.late
    final = "" if blank else f"{result.final_points:g}"
    if late is None or not late.known:
        due = late.due if late is not None else ""
        return (result.submitted_at, due, "", "", final if late is None else "")
    penalty = "" if blank else f"{late.penalty:g}"
    return (result.submitted_at, late.due, str(late.days_late), penalty, final)


def export_csv(
    results: Sequence[Graded],
    out: Path,
    *,
    secrets: Mapping[str, Secrets] | None = None,
    visible_checks: Mapping[str, frozenset[str]] | None = None,  # no checks in a CSV row
    roster: Roster | None = None,  # every student graded is a row
    assignment: str | None = None,  # the exercise column names it
) -> Exported:
    """One row per student and exercise: what an LMS gradebook import expects (a grader
    error's row has empty points, so no import can mistake it for a zero). `points` are the
    points earned; with deadlines, the late penalty and the points that count follow."""
    results = visible_results(results, secrets)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for result, graded_at in results:
            blank = is_no_grade(result)
            writer.writerow(
                (
                    result.student,
                    result.exercise,
                    result.profile,
                    "" if blank else f"{result.points:g}",
                    "" if blank else f"{result.max_points:g}",
                    str(result.verdict),
                    result.detail,
                    "yes" if result.unsafe else "no",
                    "yes" if result.unlimited else "no",
                    graded_at,
                    result.content_hash,
                    *_late_columns(result, blank),
                )
            )
    return Exported([out], [])


def gradescope_results(
    result: SubmissionResult,
    secrets: Secrets | None = None,
    visible_checks: frozenset[str] = frozenset(),
) -> dict[str, object]:
    """Gradescope's autograder results.json for one submission (tests with name and score).

    The verdict in plain words is visible at once; each hidden check (all but the spec's
    `visible_checks`) is `after_published`, so the class sees those results together when the
    instructor publishes grades. Messages are plain text (`output_format`), never HTML."""
    result = withhold(result, secrets)
    happened, todo = explain(result.verdict)
    headline = f"{result.verdict}: {result.detail}" if result.detail else str(result.verdict)
    late = "" if result.late is None else f"\nSubmission: {result.late.describe()}"
    return {
        "score": result.final_points,
        "execution_time": round(result.stage1_seconds + result.stage2_seconds, 1),
        "output": f"{headline}\n{happened}\nWhat to do: {todo}{late}",
        "output_format": "text",
        "visibility": "visible",
        "tests": [
            {
                "name": check.title,
                "number": check.check_id,
                "score": check.points,
                "max_score": check.max_points,
                "status": "passed" if check.passed else "failed",
                "output": check.message,
                "output_format": "text",
                "visibility": (
                    "visible" if check.check_id in visible_checks else "after_published"
                ),
            }
            for check in result.checks
        ],
    }


def export_gradescope(
    results: Sequence[Graded],
    out: Path,
    *,
    secrets: Mapping[str, Secrets] | None = None,
    visible_checks: Mapping[str, frozenset[str]] | None = None,
    roster: Roster | None = None,  # Gradescope matches its own submissions
    assignment: str | None = None,
) -> Exported:
    """`out/<exercise>/<student>/results.json`, one per graded submission; grader errors are
    left out (Gradescope would show a score), and listed."""
    written, left_out = [], []
    for result, _ in visible_results(results, secrets):
        if is_no_grade(result):
            left_out.append(left_out_line(result))
            continue
        path = out / result.exercise / result.student / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        shown = (visible_checks or {}).get(result.exercise, frozenset())
        data = gradescope_results(result, visible_checks=shown)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return Exported(written, left_out)


def export_canvas(
    results: Sequence[Graded],
    out: Path,
    *,
    secrets: Mapping[str, Secrets] | None = None,
    visible_checks: Mapping[str, frozenset[str]] | None = None,  # Canvas takes a score only
    roster: Roster | None = None,
    assignment: str | None = None,
) -> Exported:
    """The CSV Canvas's gradebook import accepts, for one exercise: the roster's students as
    Canvas exported them, one assignment column (`assignment`, default the exercise's name; an
    existing `name (id)` column of the roster is reused). A grader error, or a student the
    roster does not know, gets no score and is listed; a roster student without a result keeps
    a blank cell, which Canvas's import leaves unchanged."""
    if roster is None:
        raise DeepgradeError("a Canvas export needs the course's roster: --roster FILE.csv")
    exercises = sorted({result.exercise for result, _ in results})
    if len(exercises) > 1:
        raise DeepgradeError(
            f"a Canvas import takes one assignment column, and the gradebook holds "
            f"{len(exercises)} exercises ({', '.join(exercises)}): choose one with --exercise"
        )
    if not exercises:
        raise DeepgradeError("nothing to export: no graded submission for this exercise")
    scores: dict[int, float] = {}
    claimed: dict[int, str] = {}  # roster row -> the student id whose score it holds
    left_out: list[str] = []
    possible = 0.0
    for result, _ in visible_results(results, secrets):
        if is_no_grade(result):
            left_out.append(left_out_line(result))
            continue
        row = roster.match(result.student)
        if row is None:
            left_out.append(
                f"{result.exercise}/{result.student}: not one student in {roster.path.name} "
                f"(no single {', '.join(c for c in MATCH_ORDER if c in roster.columns)} "
                "equal to it); rename the submission to the student's login or SIS id"
            )
            continue
        if row in claimed:
            left_out.append(
                f"{result.exercise}/{result.student}: the same roster student as "
                f"{claimed[row]}; neither should be exported twice, so this one is left out"
            )
            continue
        claimed[row] = result.student
        if result.late is not None and not result.late.known:
            left_out.append(
                f"{result.exercise}/{result.student}: its submission time is unknown, so its "
                "late penalty is too; give grade --times or export without deadlines"
            )
            continue
        scores[row] = result.final_points
        possible = max(possible, result.max_points)
    header = roster.assignment_column(assignment or exercises[0])
    write_import(roster, CanvasColumn(header, possible, scores), out)
    blank = len(roster.students) - len(scores)
    notes = [f"column {header!r}: {len(scores)} score(s) of {possible:g} points"]
    if blank:
        notes.append(
            f"{blank} student(s) of the roster have no result here: their cells are blank, "
            "which Canvas's import leaves unchanged"
        )
    return Exported([out], left_out, notes)


def project_visible_checks(autograder: Path, exercises: Iterable[str]) -> dict[str, frozenset[str]]:
    """Each exercise's `visible_checks` (an exercise that no longer loads: none visible)."""
    from deepgrade.errors import InputError
    from deepgrade.exercise import load_exercise

    found: dict[str, frozenset[str]] = {}
    for name in sorted(set(exercises)):
        try:
            found[name] = load_exercise(autograder, name).visible_checks
        except InputError:
            continue
    return found


EXPORTERS: dict[str, Exporter] = {
    "csv": export_csv,
    "gradescope": export_gradescope,
    "canvas": export_canvas,
}
