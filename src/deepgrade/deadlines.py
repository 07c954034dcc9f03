"""A course's deadlines (`deadlines.toml`): due dates, extensions and the late policy.

```toml
timezone = "America/Sao_Paulo"    # for times written without an offset (default UTC)

[due]
signs_cnn = 2026-12-07T23:59:00   # a TOML date-time, or a string "2026-12-07 23:59"

[extensions.signs_cnn]            # per student: a new due date, or days added to the due date
ana = 2026-12-09T23:59:00
bo = 2

[late]
per_day = 0.1                     # of the exercise's points, per started day late
cap = 0.5                         # at most this fraction is lost
cutoff_days = 7                   # later than this: not accepted, no points
grace_minutes = 5                 # a submission this close past its due date is on time
```

The penalty is worked out from the submission's time and this file whenever results are shown
or exported (`assess`), never stored in place of the points earned: an extension granted after
grading counts without grading again, and the points the checks gave stay what they were.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deepgrade.errors import InputError
from deepgrade.results import Lateness, SubmissionResult

FILE_NAME = "deadlines.toml"
TOP_KEYS = frozenset({"timezone", "due", "extensions", "late"})
LATE_KEYS = frozenset({"per_day", "cap", "cutoff_days", "grace_minutes"})


@dataclass(frozen=True)
class LatePolicy:
    """How much a late submission loses, as fractions of the exercise's points."""

    per_day: float = 0.0
    cap: float = 1.0
    cutoff_days: float | None = None  # None: accepted however late
    grace: timedelta = timedelta()

    def describe(self) -> str:
        parts = [f"{self.per_day:.0%} of the points per started day late, at most {self.cap:.0%}"]
        if self.cutoff_days is not None:
            parts.append(f"not accepted more than {self.cutoff_days:g} day(s) late")
        return "; ".join(parts)


@dataclass(frozen=True)
class Deadlines:
    """deadlines.toml, parsed once: every time aware, every value checked."""

    path: Path
    zone: tzinfo
    due: Mapping[str, datetime]  # exercise -> due date
    extensions: Mapping[str, Mapping[str, datetime]]  # exercise -> student -> own due date
    policy: LatePolicy

    def due_for(self, exercise: str, student: str) -> tuple[datetime, bool] | None:
        """The student's due date for `exercise` and whether it is an extension (None: the
        exercise has no due date)."""
        own = self.extensions.get(exercise, {}).get(student)
        if own is not None:
            return own, True
        due = self.due.get(exercise)
        return None if due is None else (due, False)

    def assess(self, result: SubmissionResult) -> Lateness | None:
        """How late `result` was and what it loses; None when nothing is due for it."""
        found = self.due_for(result.exercise, result.student)
        if found is None:
            return None
        due, extended = found
        if not result.submitted_at:
            return Lateness(due=due.isoformat(), extended=extended, known=False)
        policy = self.policy
        late_by = datetime.fromisoformat(result.submitted_at) - due - policy.grace
        days = math.ceil(late_by / timedelta(days=1)) if late_by > timedelta() else 0
        accepted = policy.cutoff_days is None or late_by <= timedelta(days=policy.cutoff_days)
        fraction = min(policy.per_day * days, policy.cap)
        earned = result.points
        penalty = earned if not accepted else min(earned, fraction * result.max_points)
        return Lateness(
            due=due.isoformat(),
            extended=extended,
            known=True,
            days_late=days,
            penalty=round(penalty, 6),
            accepted=accepted,
            policy=policy.describe() if days else "",
        )

    def apply(
        self, results: Iterable[tuple[SubmissionResult, str]]
    ) -> list[tuple[SubmissionResult, str]]:
        """Each result with its lateness worked out from this file (see `assess`)."""
        return [
            (dataclasses.replace(result, late=self.assess(result)), when)
            for result, when in results
        ]


def parse_time(value: str, zone: tzinfo, where: Path) -> datetime:
    """ISO 8601 ("2026-12-07T23:59:00-03:00", "2026-12-07 23:59") or nbgrader's timestamp
    ("2026-12-07 23:10:00.123456 UTC"); a time without an offset is in `zone`."""
    text = value.strip()
    head, _, last = text.rpartition(" ")
    named = bool(head) and last.isalpha()  # nbgrader writes the zone's name last
    try:
        moment = datetime.fromisoformat(head if named else text)
    except ValueError:
        raise InputError(
            where, f"{value!r} is not a date and time (write 2026-12-07T23:59:00-03:00)"
        ) from None
    if named:
        try:
            zone = UTC if last.upper() in ("UTC", "Z", "GMT") else ZoneInfo(last)
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(where, f"unknown time zone {last!r} in {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _moment(value: object, zone: tzinfo, path: Path, key: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):  # a bare date is due at its end
        return datetime.combine(value, datetime.max.time().replace(microsecond=0), zone)
    if isinstance(value, str):
        try:
            return parse_time(value, zone, path)
        except InputError as exc:
            raise InputError(path, f"{key}: {exc.problem}") from None
    raise InputError(path, f"{key}: expected a date and time, got {value!r}")


def _fraction(table: Mapping[str, object], key: str, default: float, path: Path) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError(path, f"late.{key}: expected a fraction from 0 to 1, got {value!r}")
    return float(value)


def _days(value: object, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(path, f"{key}: expected a number of days (0 or more), got {value!r}")
    return float(value)


def _policy(table: object, path: Path) -> LatePolicy:
    if not isinstance(table, dict):
        raise InputError(path, "late: expected a table ([late])")
    unknown = sorted(set(table) - LATE_KEYS)
    if unknown:
        raise InputError(path, f"late: unknown key(s) {', '.join(unknown)}")
    cutoff = table.get("cutoff_days")
    grace = _days(table.get("grace_minutes", 0), path, "late.grace_minutes")
    return LatePolicy(
        per_day=_fraction(table, "per_day", 0.0, path),
        cap=_fraction(table, "cap", 1.0, path),
        cutoff_days=None if cutoff is None else _days(cutoff, path, "late.cutoff_days"),
        grace=timedelta(minutes=grace),
    )


def read_deadlines(path: Path, exercises: Iterable[str] | None = None) -> Deadlines:
    """Parse deadlines.toml; InputError naming the file and the key that is wrong. With
    `exercises`, a due date for an exercise the course does not have is an error too."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read the deadlines: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InputError(path, f"unknown key(s) {', '.join(unknown)}: expected {sorted(TOP_KEYS)}")
    try:
        zone: tzinfo = ZoneInfo(str(raw.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(path, f"timezone: unknown time zone {raw.get('timezone')!r}") from None
    due_table = raw.get("due", {})
    if not isinstance(due_table, dict):
        raise InputError(path, "due: expected a table of exercise = date and time")
    known = None if exercises is None else set(exercises)
    due = {}
    for exercise, value in due_table.items():
        if known is not None and exercise not in known:
            raise InputError(path, f"due.{exercise}: no such exercise ({', '.join(sorted(known))})")
        due[exercise] = _moment(value, zone, path, f"due.{exercise}")
    extensions: dict[str, dict[str, datetime]] = {}
    ext_table = raw.get("extensions", {})
    if not isinstance(ext_table, dict):
        raise InputError(path, "extensions: expected [extensions.<exercise>] tables")
    for exercise, students in ext_table.items():
        if not isinstance(students, dict):
            raise InputError(path, f"extensions.{exercise}: expected student = date or days")
        if exercise not in due:
            raise InputError(path, f"extensions.{exercise}: the exercise has no due date")
        own: dict[str, datetime] = {}
        for student, value in students.items():
            key = f"extensions.{exercise}.{student}"
            if isinstance(value, int | float) and not isinstance(value, bool):
                own[student] = due[exercise] + timedelta(days=_days(value, path, key))
            else:
                own[student] = _moment(value, zone, path, key)
        extensions[exercise] = own
    return Deadlines(path, zone, due, extensions, _policy(raw.get("late", {}), path))
