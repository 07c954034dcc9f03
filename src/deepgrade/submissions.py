"""Finding submissions in a folder and naming their students.

Two layouts are accepted, the ones LMS exports produce: `DIR/<student>.ipynb`, and
`DIR/<student>/<anything>.ipynb` with one notebook per folder (the exercise's own notebook name
wins when a folder holds several). Anything else is reported, never silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from deepgrade.errors import InputError

_SAFE_ID = re.compile(r"[^A-Za-z0-9._@-]+")


@dataclass(frozen=True)
class Submission:
    """One student's notebook, identified by the student and the file's content hash."""

    student: str
    path: Path

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Discovery:
    submissions: tuple[Submission, ...]
    problems: tuple[str, ...]  # entries that are not a submission, each naming the path


def student_id(name: str) -> str:
    """A filesystem- and CSV-safe id from a file or folder name."""
    cleaned = _SAFE_ID.sub("_", name).strip("._")
    return cleaned or "unnamed"


def discover(directory: Path, notebook_name: str) -> Discovery:
    """All submissions under `directory`, sorted by student."""
    if not directory.is_dir():
        raise InputError(directory, "is not a folder of submissions")
    found: dict[str, Submission] = {}
    problems: list[str] = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            path = entry
        elif entry.is_dir():
            notebooks = sorted(p for p in entry.glob("*.ipynb") if not p.name.startswith("."))
            named = [p for p in notebooks if p.name == notebook_name]
            if named:
                path = named[0]
            elif len(notebooks) == 1:
                path = notebooks[0]
            else:
                what = "no notebook" if not notebooks else f"{len(notebooks)} notebooks"
                problems.append(f"{entry}: {what} (expected one, ideally named {notebook_name})")
                continue
        else:
            problems.append(f"{entry}: not a notebook (.ipynb) nor a student folder")
            continue
        student = student_id(entry.stem if entry.is_file() else entry.name)
        if student in found:
            problems.append(f"{entry}: a second submission for student {student!r}, skipped")
            continue
        found[student] = Submission(student, path)
    return Discovery(tuple(found.values()), tuple(problems))
