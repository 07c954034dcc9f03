"""deepgrade's grades in an nbgrader gradebook, so formgrader shows them (`deepgrade[nbgrader]`).

nbgrader keeps a notebook's points on its grade cells. deepgrade's points come from hidden
checks, which are no cells of the notebook, so each check becomes a grade cell of its own in
the gradebook (`deepgrade: <check id>`, its points as max score) beside the notebook's own
cells, and each student's submission gets the check's points as that cell's autograded score
(its message as the cell's comment is not possible: nbgrader comments belong to solution
cells). The submission's time is recorded as nbgrader's timestamp, so nbgrader's own late
policy applies in formgrader.

The assignment must already be in the gradebook (`nbgrader generate_assignment` puts it there);
nbgrader is imported only here, so its Jupyter server stack stays out of the grading
environment: install `deepgrade[nbgrader]` where you export, not where you grade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepgrade.errors import DeepgradeError
from deepgrade.export import Exported, Graded, is_no_grade, left_out_line, visible_results
from deepgrade.redact import Secrets

CELL_PREFIX = "deepgrade: "


def _nbgrader_api() -> Any:
    import importlib

    try:
        return importlib.import_module("nbgrader.api")
    except ImportError:
        raise DeepgradeError(
            "the nbgrader export needs nbgrader: pip install 'deepgrade[nbgrader]' (in the "
            "environment you export from, not the one you grade in)"
        ) from None


def _notebook_name(gradebook: Any, assignment: str, exercise: str) -> str:
    """The assignment's notebook in the gradebook: its only one, else the exercise's."""
    found = gradebook.find_assignment(assignment)
    names = sorted(notebook.name for notebook in found.notebooks)
    if len(names) == 1:
        return str(names[0])
    if exercise in names:
        return exercise
    raise DeepgradeError(
        f"nbgrader assignment {assignment!r} has the notebooks {names}: none is {exercise!r}"
    )


def export_nbgrader(
    results: Sequence[Graded],
    out: Path,
    *,
    secrets: Mapping[str, Secrets] | None = None,
    visible_checks: Mapping[str, frozenset[str]] | None = None,
    roster: object = None,
    assignment: str | None = None,
) -> Exported:
    """Write `results` (one exercise) into the nbgrader gradebook `out` under `assignment`
    (default: the exercise's name). Grader errors are left out and listed."""
    api = _nbgrader_api()
    exercises = sorted({result.exercise for result, _ in results})
    if len(exercises) != 1:
        raise DeepgradeError(
            f"an nbgrader assignment takes one exercise, and there are {len(exercises)} "
            f"({', '.join(exercises) or 'none'}): choose one with --exercise"
        )
    if not out.is_file():
        raise DeepgradeError(f"{out}: no nbgrader gradebook here (nbgrader generate_assignment)")
    name = assignment or exercises[0]
    written = 0
    with api.Gradebook(f"sqlite:///{out.resolve()}") as gradebook:
        try:
            notebook = _notebook_name(gradebook, name, exercises[0])
        except api.MissingEntry:
            raise DeepgradeError(
                f"{out}: no assignment {name!r} (run nbgrader generate_assignment {name}, or "
                "name it with --assignment)"
            ) from None
        graded = [(r, t) for r, t in visible_results(results, secrets) if not is_no_grade(r)]
        left_out = [left_out_line(r) for r, _ in results if is_no_grade(r)]
        checks: dict[str, float] = {}
        for result, _ in graded:
            for check in result.checks:
                checks[check.check_id] = max(checks.get(check.check_id, 0.0), check.max_points)
        for check_id, points in sorted(checks.items()):
            gradebook.update_or_create_grade_cell(
                CELL_PREFIX + check_id, notebook, name, max_score=points, cell_type="code"
            )
        for result, _ in graded:
            gradebook.update_or_create_student(result.student)
            times = {"timestamp": result.submitted_at} if result.submitted_at else {}
            submission = gradebook.update_or_create_submission(name, result.student, **times)
            _add_missing_grades(api, gradebook, submission, notebook)
            for check in result.checks:
                grade = gradebook.find_grade(CELL_PREFIX + check.check_id, notebook, name,
                                             result.student)  # fmt: skip
                grade.auto_score = check.points
            gradebook.db.commit()
            written += 1
    notes = [f"{written} submission(s) of {name!r} ({notebook}) with {len(checks)} check cells"]
    return Exported([out], left_out, notes)


def _add_missing_grades(api: Any, gradebook: Any, submission: Any, notebook: str) -> None:
    """A submission made before the check cells existed (an earlier export, nbgrader's own
    autograde) gets a Grade row for each, as nbgrader's add_submission would have made."""
    for submitted in submission.notebooks:
        if submitted.notebook.name != notebook:
            continue
        have = {grade.cell_id for grade in submitted.grades}
        for cell in submitted.notebook.grade_cells:
            if cell.id not in have:
                gradebook.db.add(api.Grade(cell_id=cell.id, notebook=submitted))
    gradebook.db.commit()
