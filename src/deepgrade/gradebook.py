"""The SQLite gradebook: one row per (student, exercise, profile, submission content hash).

Only the orchestrator writes it, outside every sandbox, one transaction per submission, so a
crash or Ctrl-C never loses what was already graded and re-running a batch skips what is done.
Re-grading the same content replaces its row (idempotent); a new submission adds a row, and
exports take each student's latest.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deepgrade.errors import InputError
from deepgrade.project import Project
from deepgrade.results import SubmissionResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY,
    student TEXT NOT NULL,
    exercise TEXT NOT NULL,
    profile TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    verdict TEXT NOT NULL,
    detail TEXT NOT NULL,
    points REAL NOT NULL,
    max_points REAL NOT NULL,
    stage1_seconds REAL NOT NULL,
    stage2_seconds REAL NOT NULL,
    unsafe INTEGER NOT NULL,
    graded_at TEXT NOT NULL,
    result_json TEXT NOT NULL,
    UNIQUE (student, exercise, profile, content_hash)
);
CREATE TABLE IF NOT EXISTS checks (
    submission_id INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    title TEXT NOT NULL,
    points REAL NOT NULL,
    max_points REAL NOT NULL,
    passed INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (submission_id, check_id)
);
CREATE INDEX IF NOT EXISTS submissions_by_student
    ON submissions (exercise, profile, student, graded_at);
CREATE TABLE IF NOT EXISTS submission_times (
    student TEXT NOT NULL,
    exercise TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (student, exercise, content_hash)
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    exercise TEXT NOT NULL,
    profile TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    workers INTEGER NOT NULL,
    graded INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    gpu_json TEXT NOT NULL
);
"""


def default_gradebook(project: Project) -> Path:
    """Where a course's gradebook lives unless --gradebook says otherwise."""
    return project.root / ".deepgrade" / "gradebook.db"


@dataclass(frozen=True)
class SubmittedAt:
    """When a submission was handed in, and where that time was read (nbgrader's
    timestamp.txt, Gradescope's submission_metadata.json, a CSV): a fact about the file,
    kept apart from its grading so a time learnt later needs no re-grading."""

    student: str
    exercise: str
    content_hash: str
    submitted_at: datetime  # aware
    source: str


@dataclass(frozen=True)
class BatchRecord:
    """One batch as it ran: when, how many workers, what it graded, and each GPU's busy %
    and memory peak (gpumonitor.GpuUsage.to_json), sampled by the host."""

    exercise: str
    profile: str
    started_at: datetime
    finished_at: datetime
    workers: int
    graded: int
    cached: int = 0
    gpu_usage: tuple[dict[str, Any], ...] = ()


class Gradebook:
    """A gradebook file; use as a context manager so the connection is always closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(path, f"not a deepgrade gradebook ({exc})") from None

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def has(self, student: str, exercise: str, profile: str, content_hash: str) -> bool:
        """True when this exact submission was already graded (resumable batches)."""
        return self.stored(student, exercise, profile, content_hash) is not None

    def stored(
        self, student: str, exercise: str, profile: str, content_hash: str
    ) -> SubmissionResult | None:
        """The result of this exact submission when it was already graded, else None.

        A grader error is not the student's doing, so it does not count: resuming retries it.
        """
        row = self._db.execute(
            "SELECT result_json FROM submissions WHERE student=? AND exercise=? AND profile=? "
            "AND content_hash=? AND verdict != 'grader_error'",
            (student, exercise, profile, content_hash),
        ).fetchone()
        return None if row is None else SubmissionResult.from_json(json.loads(row[0]))

    def record(self, result: SubmissionResult, graded_at: datetime | None = None) -> None:
        """Store one result atomically, replacing an earlier grading of the same content."""
        when = (graded_at or datetime.now(UTC)).isoformat(timespec="seconds")
        with self._transaction() as db:
            db.execute(
                "DELETE FROM submissions WHERE student=? AND exercise=? AND profile=? "
                "AND content_hash=?",
                (result.student, result.exercise, result.profile, result.content_hash),
            )
            cursor = db.execute(
                "INSERT INTO submissions (student, exercise, profile, content_hash, verdict, "
                "detail, points, max_points, stage1_seconds, stage2_seconds, unsafe, graded_at, "
                "result_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.student,
                    result.exercise,
                    result.profile,
                    result.content_hash,
                    str(result.verdict),
                    result.detail,
                    result.points,
                    result.max_points,
                    result.stage1_seconds,
                    result.stage2_seconds,
                    int(result.unsafe),
                    when,
                    json.dumps(result.to_json(), sort_keys=True),
                ),
            )
            db.executemany(
                "INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cursor.lastrowid,
                        c.check_id,
                        c.title,
                        c.points,
                        c.max_points,
                        int(c.passed),
                        c.message,
                    )
                    for c in result.checks
                ],
            )

    def record_times(self, times: Iterable[SubmittedAt]) -> None:
        """Store submission times (one transaction); a submission's newer time replaces it."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO submission_times VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        t.student,
                        t.exercise,
                        t.content_hash,
                        t.submitted_at.isoformat(),
                        t.source,
                    )
                    for t in times
                ],
            )

    def _times(self, exercise: str | None) -> dict[tuple[str, str, str], str]:
        rows = self._db.execute(
            "SELECT student, exercise, content_hash, submitted_at FROM submission_times "
            "WHERE (:exercise IS NULL OR exercise = :exercise)",
            {"exercise": exercise},
        ).fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def latest(
        self, exercise: str | None = None, profile: str | None = None
    ) -> list[tuple[SubmissionResult, str]]:
        """Each student's most recent result per exercise and profile, with its time (and the
        submission's time, where one was recorded: `submitted_at`)."""
        rows = self._db.execute(
            "SELECT result_json, graded_at FROM submissions AS s WHERE "
            "(:exercise IS NULL OR exercise = :exercise) AND "
            "(:profile IS NULL OR profile = :profile) AND id = ("
            "  SELECT id FROM submissions AS t WHERE t.student = s.student AND "
            "  t.exercise = s.exercise AND t.profile = s.profile "
            "  ORDER BY graded_at DESC, id DESC LIMIT 1) "
            "ORDER BY exercise, profile, student",
            {"exercise": exercise, "profile": profile},
        ).fetchall()
        times = self._times(exercise)
        found = []
        for row in rows:
            result = SubmissionResult.from_json(json.loads(row[0]))
            key = (result.student, result.exercise, result.content_hash)
            if key in times:
                result = dataclasses.replace(result, submitted_at=times[key])
            found.append((result, row[1]))
        return found

    def record_batch(self, batch: BatchRecord) -> None:
        """Store one batch's record (its submissions are stored one by one as they finish)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (exercise, profile, started_at, finished_at, workers, "
                "graded, cached, gpu_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.exercise,
                    batch.profile,
                    batch.started_at.isoformat(timespec="seconds"),
                    batch.finished_at.isoformat(timespec="seconds"),
                    batch.workers,
                    batch.graded,
                    batch.cached,
                    json.dumps(list(batch.gpu_usage), sort_keys=True),
                ),
            )

    def batches(self, exercise: str | None = None) -> list[BatchRecord]:
        """The batches recorded, oldest first."""
        rows = self._db.execute(
            "SELECT exercise, profile, started_at, finished_at, workers, graded, cached, "
            "gpu_json FROM batches WHERE (:exercise IS NULL OR exercise = :exercise) "
            "ORDER BY id",
            {"exercise": exercise},
        ).fetchall()
        return [
            BatchRecord(
                exercise=r[0],
                profile=r[1],
                started_at=datetime.fromisoformat(r[2]),
                finished_at=datetime.fromisoformat(r[3]),
                workers=r[4],
                graded=r[5],
                cached=r[6],
                gpu_usage=tuple(json.loads(r[7])),
            )
            for r in rows
        ]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db
