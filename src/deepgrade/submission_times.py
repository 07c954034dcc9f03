"""When each submission was handed in, from what the platform left beside it or a CSV.

- nbgrader: `submitted/<student>/<assignment>/timestamp.txt` ("2026-12-07 23:10:00.123456 UTC");
- Gradescope: `submission_metadata.json` beside the notebook (its `created_at`);
- any LMS: a CSV given with `--times`, columns `student,submitted_at` (it wins over the files).

A time that cannot be read is reported with its file and left unknown: it never stops a batch,
and an unknown time is shown as such, never taken as on time or late.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from deepgrade.deadlines import parse_time
from deepgrade.errors import InputError
from deepgrade.gradebook import SubmittedAt
from deepgrade.submissions import Submission, student_id

NBGRADER_TIMESTAMP = "timestamp.txt"
GRADESCOPE_METADATA = "submission_metadata.json"
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Times:
    """The submission times found, and one line per file that could not be read."""

    found: tuple[SubmittedAt, ...]
    problems: tuple[str, ...]


def _small_text(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(path, "too large for a submission time")
    return path.read_text(encoding="utf-8")


def _from_folder(folder: Path) -> tuple[str, Path] | None:
    """(time text, file) from nbgrader's or Gradescope's file in `folder`, if one is there."""
    stamp = folder / NBGRADER_TIMESTAMP
    if stamp.is_file() and not stamp.is_symlink():
        return _small_text(stamp).strip(), stamp
    metadata = folder / GRADESCOPE_METADATA
    if metadata.is_file() and not metadata.is_symlink():
        try:
            created = json.loads(_small_text(metadata)).get("created_at")
        except (ValueError, AttributeError):
            raise InputError(metadata, "not a JSON object with created_at") from None
        if not isinstance(created, str):
            raise InputError(metadata, "no created_at time in it")
        return created, metadata
    return None


def read_csv(path: Path) -> dict[str, tuple[str, Path]]:
    """`student,submitted_at` rows: student id -> (time text, file)."""
    try:
        rows = list(csv.DictReader(_small_text(path).splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the submission times: {exc}") from None
    if rows and not {"student", "submitted_at"} <= set(rows[0]):
        raise InputError(path, "expected the columns student,submitted_at")
    return {student_id(row["student"] or ""): (row["submitted_at"] or "", path) for row in rows}


def read_times(
    submissions: Sequence[Submission],
    exercise: str,
    zone: tzinfo,
    times_csv: Path | None = None,
) -> Times:
    """Each submission's time: the CSV's row for its student, else the file beside it."""
    listed = read_csv(times_csv) if times_csv is not None else {}
    found: list[SubmittedAt] = []
    problems: list[str] = []
    for submission in submissions:
        try:
            given = listed.get(submission.student)
            if given is None and submission.in_folder:
                given = _from_folder(submission.path.parent)
            if given is None:
                continue
            text, source = given
            moment = parse_time(text, zone, source)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{submission.student}: submission time unreadable: {exc}")
            continue
        except InputError as exc:
            problems.append(f"{submission.student}: submission time unknown: {exc}")
            continue
        found.append(
            SubmittedAt(submission.student, exercise, submission.content_hash, moment, source.name)
        )
    return Times(tuple(found), tuple(problems))
