"""Finding submissions in a folder and naming their students.

Three layouts are accepted, the ones LMS exports produce: `DIR/<student>.ipynb`,
`DIR/<student>/<anything>.ipynb` with one notebook per folder (the exercise's own notebook name
wins when a folder holds several), and nbgrader's `submitted/<student>/<assignment>/` (a student
folder without a notebook of its own, holding the assignment's folder: the one named
`assignment`, or its only folder). Anything else is reported, never silently skipped; symbolic
links are never followed, so nothing outside the folder is read.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from deepgrade.errors import InputError

_SAFE_ID = re.compile(r"[^\w.@-]+")  # \w: letters and digits of any script, and "_"
LINK_SKIPPED = "a symbolic link, skipped (links are never followed; copy the notebook in instead)"


@dataclass(frozen=True)
class Submission:
    """One student's notebook, identified by the student and the file's content hash."""

    student: str
    path: Path
    in_folder: bool = False  # the notebook came in a folder of its own (files beside it count)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Discovery:
    submissions: tuple[Submission, ...]
    problems: tuple[str, ...]  # entries that are not a submission, each naming the path


def student_id(name: str) -> str:
    """A filesystem- and CSV-safe id from a file or folder name (letters of any script kept)."""
    cleaned = _SAFE_ID.sub("_", unicodedata.normalize("NFC", name)).strip("._")
    return cleaned or "unnamed"


def display_path(path: Path | str) -> str:
    """A path as text safe to print: control characters and undecodable bytes escaped."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in str(path)
    )


def _readable(path: Path) -> str | None:
    """Why a regular file cannot be opened for reading (without following a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    os.close(fd)
    return None


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as listing:
        return sorted(listing, key=lambda entry: entry.name)


def _assignment_folder(entries: list[os.DirEntry[str]], assignment: str | None) -> Path | None:
    """nbgrader's `<student>/<assignment>/`: the folder named `assignment`, else the only one."""
    folders = [e for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    named = [e for e in folders if e.name == assignment]
    chosen = named or (folders if len(folders) == 1 else [])
    return Path(chosen[0].path) if chosen else None


def _pick_notebook(
    folder: Path, notebook_name: str, assignment: str | None = None, depth: int = 0
) -> tuple[Path | None, list[str]]:
    """The one notebook of a student folder (or of its nbgrader assignment folder), and a
    problem line for anything skipped."""
    problems: list[str] = []
    try:
        entries = _entries(folder)
    except OSError as exc:
        return None, [f"{display_path(folder)}: cannot be read ({exc.strerror})"]
    has_notebook = any(e.name.endswith(".ipynb") and not e.name.startswith(".") for e in entries)
    inner = None if has_notebook or depth else _assignment_folder(entries, assignment)
    if inner is not None:
        return _pick_notebook(inner, notebook_name, assignment, depth + 1)
    notebooks = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith(".ipynb"):
            continue
        if entry.is_symlink():
            problems.append(f"{display_path(entry.path)}: {LINK_SKIPPED}")
        elif entry.is_file(follow_symlinks=False):
            notebooks.append(Path(entry.path))
        else:
            problems.append(f"{display_path(entry.path)}: not a regular file, skipped")
    named = [p for p in notebooks if p.name == notebook_name]
    if named:
        return named[0], problems
    if len(notebooks) == 1:
        return notebooks[0], problems
    what = "no notebook" if not notebooks else f"{len(notebooks)} notebooks"
    problems.append(f"{display_path(folder)}: {what} (expected one, ideally named {notebook_name})")
    return None, problems


def discover(directory: Path, notebook_name: str, assignment: str | None = None) -> Discovery:
    """All submissions under `directory`, sorted by student (`assignment`: the folder name
    nbgrader's layout gives the exercise, when a student folder holds several).

    Symbolic links are never followed, at either level (a link to the reference solution is
    not a submission), nor is anything that is not a regular file or folder: each is reported.
    """
    if not directory.is_dir():
        raise InputError(directory, "is not a folder of submissions")
    found: dict[str, Submission] = {}
    problems: list[str] = []
    try:
        entries = _entries(directory)
    except OSError as exc:
        raise InputError(directory, f"cannot be read ({exc.strerror})") from None
    for entry in entries:
        where = display_path(entry.path)
        if entry.name.startswith("."):
            continue
        path: Path | None
        if entry.is_symlink():
            problems.append(f"{where}: {LINK_SKIPPED}")
            continue
        if entry.is_file(follow_symlinks=False) and entry.name.endswith(".ipynb"):
            path, student = Path(entry.path), student_id(Path(entry.name).stem)
        elif entry.is_dir(follow_symlinks=False):
            path, skipped = _pick_notebook(Path(entry.path), notebook_name, assignment)
            problems.extend(skipped)
            if path is None:
                continue
            student = student_id(entry.name)
        elif entry.is_file(follow_symlinks=False):
            problems.append(f"{where}: not a notebook (.ipynb) nor a student folder")
            continue
        else:
            problems.append(f"{where}: not a regular file or folder, skipped")
            continue
        unreadable = _readable(path)
        if unreadable:
            problems.append(f"{display_path(path)}: {unreadable}")
            continue
        if student in found:
            problems.append(f"{where}: a second submission for student {student!r}, skipped")
            continue
        found[student] = Submission(student, path, in_folder=entry.is_dir(follow_symlinks=False))
    return Discovery(tuple(found.values()), tuple(problems))
