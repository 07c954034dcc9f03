"""`deepgrade validate`: what a student can check before submitting, without hidden checks.

It catches the mistakes that cost points for nothing: an edited or deleted locked cell, an
answer cell still raising NotImplementedError, a file that is not a notebook. It never runs
the notebook (the student already did) and never sees a hidden check.
"""

from __future__ import annotations

from pathlib import Path

from deepgrade import notebooks
from deepgrade.exercise import load_exercise
from deepgrade.project import Project

PLACEHOLDER = "raise NotImplementedError()"


def validate_submission(project: Project, path: Path, exercise: str | None) -> list[str]:
    nb = notebooks.read_notebook(path)
    name = exercise or nb.metadata.get("deepgrade", {}).get("exercise")
    if not name:
        return ["cannot tell which exercise this is: pass --exercise"]
    spec = load_exercise(project.autograder, name)
    release = notebooks.read_notebook(project.release / spec.name / spec.notebook)
    problems = list(notebooks.find_tampering(nb, release))
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code" and PLACEHOLDER in cell.source:
            grade_id = notebooks.nbgrader(cell).get("grade_id", "?")
            problems.append(f"cell {index} ({grade_id}) still has no answer ({PLACEHOLDER})")
        if cell.cell_type == "markdown" and "YOUR ANSWER HERE" in cell.source:
            problems.append(f"cell {index} still says YOUR ANSWER HERE")
    return problems
