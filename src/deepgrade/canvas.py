"""Canvas's gradebook CSV: the course roster it exports, and the file its import accepts.

Canvas (Grades > Export) writes one row per student with the identity columns `Student`, `ID`,
`SIS User ID`, `SIS Login ID`, `Section` (and `Integration ID` where used), a `Points Possible`
row, then a column per assignment named `Title (id)`. Its import matches students by those
identity columns and reads any other column as an assignment: a header that names an existing
assignment updates it, a new header creates one, and a blank cell changes nothing. So the file
deepgrade writes keeps the roster's identity columns as exported and adds one assignment column.

A deepgrade student id (the submission's file or folder name) is matched against `SIS Login
ID`, then `SIS User ID`, then `ID`, without regard to case; the first column in which it names
exactly one student wins. A roster is parsed once (`read_roster`) and passed on.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deepgrade.errors import InputError

STUDENT = "Student"
IDENTITY_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
MATCH_ORDER = ("SIS Login ID", "SIS User ID", "ID")  # the most specific first
POINTS_POSSIBLE = "Points Possible"
MAX_ROSTER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Roster:
    """A Canvas gradebook export: its identity columns, students and assignment headers."""

    path: Path
    columns: tuple[str, ...]  # the identity columns present, in the export's order
    students: tuple[Mapping[str, str], ...]  # one row each: identity column -> value
    assignments: tuple[str, ...]  # every other header, as Canvas wrote it

    def match(self, student: str) -> int | None:
        """The index of the roster row a deepgrade student id names; None when no row, or
        more than one, has it in any matching column."""
        wanted = student.strip().casefold()
        for column in MATCH_ORDER:
            if column not in self.columns:
                continue
            rows = [
                index
                for index, row in enumerate(self.students)
                if row[column].strip().casefold() == wanted
            ]
            if len(rows) == 1:
                return rows[0]
        return None

    def assignment_column(self, name: str) -> str:
        """The header for assignment `name`: an existing `name (id)` column when the roster has
        one (so Canvas updates that assignment), else `name` (Canvas creates it)."""
        for header in self.assignments:
            if header == name or (header.startswith(f"{name} (") and header.endswith(")")):
                return header
        return name


def _is_points_possible(row: Mapping[str, str]) -> bool:
    return row.get(STUDENT, "").strip() == POINTS_POSSIBLE


def read_roster(path: Path) -> Roster:
    """Parse a Canvas gradebook export; InputError naming the file and what is wrong."""
    try:
        if path.stat().st_size > MAX_ROSTER_BYTES:
            raise InputError(path, "too large for a Canvas gradebook export (over 64 MiB)")
        text = path.read_text(encoding="utf-8-sig")  # Canvas writes a byte-order mark
    except OSError as exc:
        raise InputError(path, f"cannot read the Canvas roster: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text: export the gradebook from Canvas as CSV") from None
    try:
        table = list(csv.DictReader(text.splitlines()))
        headers = list(csv.reader(text.splitlines()[:1]))
    except csv.Error as exc:
        raise InputError(path, f"not a valid CSV file: {exc}") from None
    header = headers[0] if headers else []
    missing = [c for c in (STUDENT, "ID") if c not in header]
    if missing:
        raise InputError(
            path,
            f"no {' or '.join(repr(c) for c in missing)} column: this is not a Canvas gradebook "
            "export (Grades > Export > Export Entire Gradebook)",
        )
    if len(set(header)) != len(header):
        raise InputError(path, "a column name appears twice")
    columns = tuple(c for c in header if c in IDENTITY_COLUMNS)
    students = tuple(
        {c: (row.get(c) or "") for c in columns}
        for row in table
        if not _is_points_possible(row) and any((row.get(c) or "").strip() for c in columns)
    )
    assignments = tuple(c for c in header if c not in IDENTITY_COLUMNS)
    return Roster(path, columns, students, assignments)


@dataclass(frozen=True)
class CanvasColumn:
    """One assignment's column: its header, its points possible and each roster row's score
    (by the row's index in the roster; a row without a score stays blank)."""

    header: str
    points_possible: float
    scores: Mapping[int, float]


def write_import(roster: Roster, column: CanvasColumn, out: Path) -> None:
    """The CSV Canvas's gradebook import accepts: the roster's identity columns as exported,
    its Points Possible row, and the one assignment column."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*roster.columns, column.header])
        possible = [POINTS_POSSIBLE if c == STUDENT else "" for c in roster.columns]
        writer.writerow([*possible, f"{column.points_possible:g}"])
        for index, row in enumerate(roster.students):
            score = column.scores.get(index)
            shown = "" if score is None else f"{score:g}"
            writer.writerow([*(row[c] for c in roster.columns), shown])
