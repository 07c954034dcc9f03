"""The results channel between stage 2's check process and the host: one format, one module.

`plugin` (inside the sandbox) writes snapshots; `runner` and `verify` (on the host) read them.
The format lives here, beside neither, so writer and reader cannot drift apart, and reading it
costs no pytest import.

The channel is a stream of snapshots, one JSON object per line, written to a private file
descriptor (a pipe the host reads): first right after collection, then after each check, then
at the end, so a crash keeps what finished. Each line is a whole snapshot:
    {"version": 2, "complete": bool, "error": str | null,
     "checks": [{"check_id", "title", "points", "max_points", "passed", "message", "done"}],
     "measurements": {name: number},   # what the checks measured, e.g. the test accuracy
     "summary": [[layer, type, output shape, parameters]],  # model.keras, for feedback
     "confusion": {"labels": [str], "matrix": [[count]]}}   # rows: true class; columns: predicted
Everything in a snapshot is a claim by the check process; the host believes none of it unchecked.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepgrade.errors import InputError
from deepgrade.results import CheckResult, Confusion, SummaryRow

RESULTS_VERSION = 2
NOT_RUN = "this check did not run: the grader stopped before it"
MAX_MESSAGE = 600  # a check's message, in characters
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024  # messages are capped at 600 characters: plenty
MAX_MEASUREMENTS = 64
MAX_SUMMARY_ROWS = 300
MAX_SUMMARY_TEXT = 80
MAX_CLASSES = 20


@dataclass(frozen=True)
class Snapshot:
    """One line of the channel, decoded but not yet validated."""

    checks: tuple[CheckResult, ...]
    done: tuple[bool, ...]  # per check: finished (its points are final)
    complete: bool  # pytest reached the end of the session
    error: str | None  # why the checks could not be collected or run (the grader's words)
    measurements: dict[str, float] = field(default_factory=dict)
    summary: tuple[SummaryRow, ...] = ()
    confusion: Confusion | None = None


def encode_snapshot(
    checks: Sequence[CheckResult],
    done: Sequence[bool],
    *,
    error: str | None,
    complete: bool,
    measurements: Mapping[str, float] | None = None,
    summary: Sequence[SummaryRow] = (),
    confusion: Confusion | None = None,
) -> bytes:
    """One line (no newline inside: json.dumps escapes them) ending in a newline."""
    data = {
        "version": RESULTS_VERSION,
        "complete": complete,
        "error": error,
        "checks": [
            {**asdict(check), "done": finished}
            for check, finished in zip(checks, done, strict=True)
        ],
        "measurements": dict(measurements or {}),
        "summary": [list(row) for row in summary],
        "confusion": None
        if confusion is None
        else {"labels": list(confusion[0]), "matrix": [list(r) for r in confusion[1]]},
    }
    return json.dumps(data, allow_nan=False).encode("utf-8") + b"\n"


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a pipe may take a large line in pieces)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _number(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"{what} is not a finite number ({raw!r:.40})")
    return float(raw)


def _text(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"{what} is not text")
    return raw


def _check(raw: Any) -> tuple[CheckResult, bool]:
    if not isinstance(raw, dict):
        raise ValueError("a check entry is not an object")
    check_id = _text(raw.get("check_id"), "a check id")
    passed, done = raw.get("passed"), raw.get("done")
    if not isinstance(passed, bool) or not isinstance(done, bool):
        raise ValueError(f"{check_id[:80]!r}: passed and done must be true or false")
    check = CheckResult(
        check_id=check_id,
        title=_text(raw.get("title"), f"{check_id[:80]!r}'s title"),
        points=_number(raw.get("points"), f"{check_id[:80]!r}'s points"),
        max_points=_number(raw.get("max_points"), f"{check_id[:80]!r}'s max_points"),
        passed=passed,
        message=_text(raw.get("message", ""), f"{check_id[:80]!r}'s message"),
    )
    return check, done


def decode_snapshot(line: bytes) -> Snapshot:
    """A Snapshot from one line; ValueError saying what is malformed (never trusted data)."""
    if len(line) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"a snapshot of {len(line)} bytes (at most {MAX_SNAPSHOT_BYTES})")
    try:
        data = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"a snapshot is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("version") != RESULTS_VERSION:
        raise ValueError(f"a snapshot is not version {RESULTS_VERSION}")
    raw_checks, complete, error = data.get("checks"), data.get("complete"), data.get("error")
    if not isinstance(raw_checks, list) or not isinstance(complete, bool):
        raise ValueError("a snapshot has no list of checks or no complete flag")
    if error is not None and not isinstance(error, str):
        raise ValueError("a snapshot's error is not text")
    pairs = [_check(raw) for raw in raw_checks]
    raw_measurements = data.get("measurements", {})
    if not isinstance(raw_measurements, dict) or len(raw_measurements) > MAX_MEASUREMENTS:
        raise ValueError(f"measurements must be an object of at most {MAX_MEASUREMENTS} numbers")
    measurements = {
        _text(k, "a measurement name")[:100]: _number(v, f"measurement {k[:40]!r}")
        for k, v in raw_measurements.items()
    }
    return Snapshot(
        checks=tuple(check for check, _ in pairs),
        done=tuple(done for _, done in pairs),
        complete=complete,
        error=error,
        measurements=measurements,
        summary=_summary(data.get("summary", [])),
        confusion=_confusion(data.get("confusion")),
    )


def _confusion(raw: Any) -> Confusion | None:
    """A square table of whole counts with one short label per class, or None."""
    if raw is None:
        return None
    labels = raw.get("labels") if isinstance(raw, dict) else None
    matrix = raw.get("matrix") if isinstance(raw, dict) else None
    if not (isinstance(labels, list) and isinstance(matrix, list)):
        raise ValueError("confusion must have labels and a matrix")
    n = len(labels)
    if not 2 <= n <= MAX_CLASSES or len(matrix) != n:
        raise ValueError(f"confusion must be square with 2 to {MAX_CLASSES} classes")
    if not all(isinstance(label, str) and len(label) <= 40 for label in labels):
        raise ValueError("confusion labels must be short text")
    rows = []
    for row in matrix:
        if not (isinstance(row, list) and len(row) == n):
            raise ValueError("confusion must be square")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in row):
            raise ValueError("confusion counts must be whole numbers")
        rows.append(tuple(row))
    return tuple(labels), tuple(rows)


def _summary(raw: Any) -> tuple[SummaryRow, ...]:
    """The model summary rows: bounded text and a whole, non-negative parameter count each."""
    if not isinstance(raw, list) or len(raw) > MAX_SUMMARY_ROWS:
        raise ValueError(f"summary must be a list of at most {MAX_SUMMARY_ROWS} rows")
    rows = []
    for row in raw:
        if not (isinstance(row, list) and len(row) == 4):
            raise ValueError("a summary row must be [layer, type, output shape, parameters]")
        *texts, params = row
        if not all(isinstance(t, str) and len(t) <= MAX_SUMMARY_TEXT for t in texts):
            raise ValueError(f"a summary row's texts must be at most {MAX_SUMMARY_TEXT} characters")
        if isinstance(params, bool) or not isinstance(params, int) or params < 0:
            raise ValueError("a summary row's parameter count must be a whole number")
        rows.append((texts[0], texts[1], texts[2], params))
    return tuple(rows)


class SnapshotStream:
    """Keeps the first and the last complete line of a stream fed in chunks, in bounded memory.

    The first line is written right after collection, before any check touches a student's
    artifact, so it tells the grader's own failures apart from the student's. A line longer than
    MAX_SNAPSHOT_BYTES is dropped and remembered as `oversized` (only a forger writes one).
    """

    def __init__(self, on_line: Callable[[bytes], None] | None = None) -> None:
        self.on_line = on_line  # sees every complete line, in order
        self.first: bytes | None = None
        self.last: bytes | None = None
        self.lines = 0
        self.oversized = False
        self._partial = bytearray()
        self._skipping = False  # inside an oversized line: drop until its newline

    def feed(self, chunk: bytes) -> None:
        while chunk:
            head, newline, chunk = chunk.partition(b"\n")
            if not self._skipping:
                self._partial += head
                if len(self._partial) > MAX_SNAPSHOT_BYTES:
                    self.oversized, self._skipping = True, True
                    self._partial.clear()
            if not newline:
                return
            if not self._skipping:
                line = bytes(self._partial)
                self.first = line if self.first is None else self.first
                self.last = line
                self.lines += 1
                if self.on_line is not None:
                    self.on_line(line)
            self._partial.clear()
            self._skipping = False


def read_results(path: Path) -> Snapshot:
    """The last complete snapshot in a channel file (`--dg-results FILE`, for running the checks
    by hand); InputError when there is none or it is malformed."""
    stream = SnapshotStream()
    try:
        stream.feed(path.read_bytes())
    except FileNotFoundError:
        raise InputError(path, "no results file") from None
    except OSError as exc:
        raise InputError(path, f"unreadable results file ({type(exc).__name__})") from None
    if stream.last is None:
        raise InputError(path, "no complete snapshot in the results file")
    try:
        return decode_snapshot(stream.last)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
